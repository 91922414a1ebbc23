//! `ostree-composefs` on repositories built by the real `ostree` CLI: images, the
//! composefs digest metadata, and Ed25519 signatures checked by OpenSSL.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_ostree-composefs");

// Runs a command that must succeed and returns its stdout.
use ostree_boot_test_support::{printed_bytes, run_args as run};

fn ours(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ours_ok(args: &[&str]) -> String {
    let out = ours(args);
    assert!(
        out.status.success(),
        "ostree-composefs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// ostree's tests/test-composefs.sh tree, committed as that test does.
fn test_repo(d: &Path) -> PathBuf {
    let src = d.join("src");
    ostree_boot_test_support::composefs_sh_tree(&src);
    let repo = d.join("repo");
    let r = repo.to_str().unwrap();
    run(&["ostree", "init", "--repo", r, "--mode=bare-user"]);
    let flags = [
        "--owner-uid=0",
        "--owner-gid=0",
        "--no-xattrs",
        "--canonical-permissions",
    ];
    let mut args = vec![
        "ostree", "commit", "--repo", r, "-b", "test2", "-s", "first",
    ];
    args.extend(flags);
    args.push(src.to_str().unwrap());
    run(&args);
    // A second commit, so the one commit-metadata rewrites has a parent.
    let mut args = vec![
        "ostree",
        "commit",
        "--repo",
        r,
        "-b",
        "test2",
        "-s",
        "second",
        "--add-metadata-string=version=42",
    ];
    args.extend(flags);
    args.push(src.to_str().unwrap());
    run(&args);
    repo
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(p).unwrap()))
}

#[test]
fn mkcomposefs_repo_matches_ostree_images() {
    let d = tempfile::tempdir().unwrap();
    let repo = test_repo(d.path());
    let r = repo.to_str().unwrap();
    let out = d.path().join("out.cfs");
    let o = out.to_str().unwrap();
    let digest = ours_ok(&["mkcomposefs", "--repo", r, "test2", o]);
    assert_eq!(
        digest.trim(),
        "be956966c70970ea23b1a8043bca58cfb0d011d490a35a7817b36d04c0210954"
    );
    assert_eq!(
        sha256_file(&out),
        "031fab2c7f390b752a820146dc89f6880e5739cba7490f64024e0c7d11aad7c9"
    );
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o644
    );
    ours_ok(&["mkcomposefs", "--repo", r, "--no-verity", "test2", o]);
    assert_eq!(
        sha256_file(&out),
        "78f873a76ccfea3ad7c86312ba0e06f8e0bca54ab4912b23871b31caafe59c24"
    );
    // The image's fs-verity digest, as the fsverity tool computes it.
    ours_ok(&["mkcomposefs", "--repo", r, "test2", o]);
    let measured = run(&["fsverity", "digest", "--compact", o]);
    assert_eq!(measured.trim(), digest.trim());
    let bad = ours(&["mkcomposefs", "--repo", r, "nosuchref", o]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nosuchref"));
}

#[test]
fn commit_metadata_passes_ostree_fsck_and_matches_the_image() {
    let d = tempfile::tempdir().unwrap();
    let repo = test_repo(d.path());
    let r = repo.to_str().unwrap();
    let old = run(&["ostree", "rev-parse", "--repo", r, "test2"])
        .trim()
        .to_string();
    let old_parent = run(&["ostree", "rev-parse", "--repo", r, "test2^"])
        .trim()
        .to_string();
    let new = ours_ok(&["commit-metadata", "--repo", r, "test2"])
        .trim()
        .to_string();
    assert_ne!(new, old);
    assert_eq!(
        run(&["ostree", "rev-parse", "--repo", r, "test2"]).trim(),
        new,
        "the ref moved"
    );
    run(&["ostree", "fsck", "--repo", r]);
    // Same parent, subject and other metadata; the new key is there.
    assert_eq!(
        run(&["ostree", "rev-parse", "--repo", r, "test2^"]).trim(),
        old_parent
    );
    let log = run(&["ostree", "log", "--repo", r, "test2"]);
    assert!(
        log.contains(&new) && log.contains(&old_parent) && log.contains("second"),
        "{log}"
    );
    let show = run(&["ostree", "show", "--repo", r, "test2"]);
    assert!(show.contains("second"), "{show}");
    assert_eq!(
        run(&[
            "ostree",
            "show",
            "--repo",
            r,
            "--print-metadata-key=version",
            "test2"
        ])
        .trim(),
        "'42'"
    );
    let printed = run(&[
        "ostree",
        "show",
        "--repo",
        r,
        "--print-metadata-key=ostree.composefs.digest.v0",
        "test2",
    ]);
    let meta_digest = hex::encode(printed_bytes(&printed));
    // ostree's own expectation for this tree, and the digest of the image we write.
    assert_eq!(
        meta_digest,
        "be956966c70970ea23b1a8043bca58cfb0d011d490a35a7817b36d04c0210954"
    );
    let out = d.path().join("new.cfs");
    let image_digest = ours_ok(&["mkcomposefs", "--repo", r, "test2", out.to_str().unwrap()]);
    assert_eq!(image_digest.trim(), meta_digest);
    assert_eq!(
        run(&["fsverity", "digest", "--compact", out.to_str().unwrap()]).trim(),
        meta_digest
    );
    // Rewriting by checksum leaves the ref alone and is idempotent on the digest.
    let again = ours_ok(&["commit-metadata", "--repo", r, &new])
        .trim()
        .to_string();
    assert_eq!(again, new, "same tree, same metadata: the same commit");
    assert_eq!(
        run(&["ostree", "rev-parse", "--repo", r, "test2"]).trim(),
        new
    );
}

#[test]
fn mkcomposefs_refuses_a_wrong_digest_in_metadata() {
    let d = tempfile::tempdir().unwrap();
    let repo = test_repo(d.path());
    let r = repo.to_str().unwrap();
    // test-composefs.sh's bad digest, written with the real ostree.
    let bad = "13aeaeedc034d139effcd66fe3db08d3328aec2f02c5a78aeea60f346d7a226d";
    let bytes: Vec<String> = (0..32)
        .map(|i| format!("0x{}", &bad[2 * i..2 * i + 2]))
        .collect();
    let meta = format!(
        "--add-metadata=ostree.composefs.digest.v0=[byte {}]",
        bytes.join(", ")
    );
    run(&[
        "ostree",
        "commit",
        "--repo",
        r,
        "-b",
        "bad",
        "--tree=ref=test2",
        &meta,
        "-s",
        "bad",
    ]);
    let out = d.path().join("x.cfs");
    let o = ours(&["mkcomposefs", "--repo", r, "bad", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("doesn't match expected digest"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
}

/// An Ed25519 public key (raw 32 bytes) as a PEM SubjectPublicKeyInfo for OpenSSL.
fn pem_of(raw: &[u8]) -> String {
    use base64::Engine;
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend_from_slice(raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

#[test]
fn sign_and_verify_with_openssl_and_tampering() {
    use base64::Engine;
    let d = tempfile::tempdir().unwrap();
    let repo = test_repo(d.path());
    let r = repo.to_str().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    ours_ok(&["keygen", "--secret", &p("k1.sec"), "--public", &p("k1.pub")]);
    ours_ok(&["keygen", "--secret", &p("k2.sec"), "--public", &p("k2.pub")]);
    assert_eq!(
        fs::metadata(p("k1.sec")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sec = fs::read_to_string(p("k1.sec")).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(sec.trim())
            .unwrap()
            .len(),
        64
    );

    // Unsigned: verify fails and says why.
    let o = ours(&["verify", "--repo", r, "--public", &p("k1.pub"), "test2"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no detached metadata"));

    ours_ok(&["sign", "--repo", r, "--secret", &p("k2.sec"), "test2"]);
    ours_ok(&["sign", "--repo", r, "--secret", &p("k1.sec"), "test2"]);
    run(&["ostree", "fsck", "--repo", r]);
    let v = ours_ok(&["verify", "--repo", r, "--public", &p("k1.pub"), "test2"]);
    assert!(v.contains("valid signature by key 1"), "{v}");
    // Both keys in one file: the first key in file order that has a signature wins.
    fs::write(
        p("both.pub"),
        fs::read_to_string(p("k2.pub")).unwrap() + &fs::read_to_string(p("k1.pub")).unwrap(),
    )
    .unwrap();
    assert!(
        ours_ok(&["verify", "--repo", r, "--public", &p("both.pub"), "test2"]).contains("key 1")
    );

    // OpenSSL checks each signature (read by ostree itself) over the raw commit bytes.
    let csum = run(&["ostree", "rev-parse", "--repo", r, "test2"])
        .trim()
        .to_string();
    let commit_path = repo
        .join("objects")
        .join(&csum[..2])
        .join(format!("{}.commit", &csum[2..]));
    let printed = run(&[
        "ostree",
        "show",
        "--repo",
        r,
        "--print-detached-metadata-key=ostree.sign.ed25519",
        "test2",
    ]);
    let sigs = printed_bytes(&printed);
    assert_eq!(sigs.len(), 128, "two signatures, the first kept: {printed}");
    for (i, key) in ["k2.pub", "k1.pub"].iter().enumerate() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(fs::read_to_string(p(key)).unwrap().trim())
            .unwrap();
        fs::write(p("key.pem"), pem_of(&raw)).unwrap();
        fs::write(p("sig.bin"), &sigs[64 * i..64 * (i + 1)]).unwrap();
        run(&[
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            &p("key.pem"),
            "-rawin",
            "-in",
            commit_path.to_str().unwrap(),
            "-sigfile",
            &p("sig.bin"),
        ]);
    }

    // A key that signed nothing.
    ours_ok(&["keygen", "--secret", &p("k3.sec"), "--public", &p("k3.pub")]);
    let o = ours(&["verify", "--repo", r, "--public", &p("k3.pub"), "test2"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No valid (of 2) signatures found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A tampered signature.
    let meta_path = commit_path.with_extension("commitmeta");
    let good_meta = fs::read(&meta_path).unwrap();
    let pos = good_meta
        .windows(64)
        .position(|w| w == &sigs[64..128])
        .unwrap();
    let mut bad_meta = good_meta.clone();
    bad_meta[pos + 10] ^= 1;
    fs::write(&meta_path, &bad_meta).unwrap();
    assert!(
        !ours(&["verify", "--repo", r, "--public", &p("k1.pub"), "test2"])
            .status
            .success()
    );
    fs::write(&meta_path, &good_meta).unwrap();
    ours_ok(&["verify", "--repo", r, "--public", &p("k1.pub"), "test2"]);

    // A tampered commit (one subject byte changed in place).
    let good_commit = fs::read(&commit_path).unwrap();
    let mut bad_commit = good_commit.clone();
    let s = bad_commit.windows(6).position(|w| w == b"second").unwrap();
    bad_commit[s] = b'S';
    fs::set_permissions(&commit_path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&commit_path, &bad_commit).unwrap();
    let o = ours(&["verify", "--repo", r, "--public", &p("both.pub"), "test2"]);
    assert!(!o.status.success());
    // Caught before any signature is tried: the bytes no longer hash to the name.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hashes to"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    fs::write(&commit_path, &good_commit).unwrap();

    // Bad key files are refused, naming the file and line.
    fs::write(p("bad.pub"), "# a comment\n").unwrap();
    let o = ours(&["verify", "--repo", r, "--public", &p("bad.pub"), "test2"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.pub: line 1"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    fs::write(p("empty.pub"), "\n").unwrap();
    assert!(
        String::from_utf8_lossy(
            &ours(&["verify", "--repo", r, "--public", &p("empty.pub"), "test2"]).stderr
        )
        .contains("no public keys")
    );
}

#[test]
fn outputs_may_be_bare_file_names() {
    let d = tempfile::tempdir().unwrap();
    let repo = test_repo(d.path());
    let o = Command::new(BIN)
        .current_dir(d.path())
        .args([
            "mkcomposefs",
            "--repo",
            repo.to_str().unwrap(),
            "test2",
            "rel.cfs",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        sha256_file(&d.path().join("rel.cfs")),
        "031fab2c7f390b752a820146dc89f6880e5739cba7490f64024e0c7d11aad7c9"
    );
    let o = Command::new(BIN)
        .current_dir(d.path())
        .args(["keygen", "--secret", "s.key", "--public", "p.key"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // No temporary files are left beside the outputs.
    let names: Vec<String> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}
