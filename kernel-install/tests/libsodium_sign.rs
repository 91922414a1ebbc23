//! Ed25519 against libsodium (Debian's python3-nacl, the library ostree's
//! `sign-ed25519` uses): keys in `ostree sign` format both ways (secret: base64 of
//! seed‖public; public: base64), our signatures verified by libsodium, and libsodium's
//! signature of the same commit identical to ours (Ed25519 is deterministic), so that our
//! `verify` accepts what libsodium signs.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

const PY: &str = "/usr/bin/python3";

const HELPER: &str = r#"
import base64, sys, nacl.signing, nacl.exceptions
cmd = sys.argv[1]
if cmd == "keygen":
    sk = nacl.signing.SigningKey.generate()
    open(sys.argv[2], "w").write(base64.b64encode(bytes(sk) + bytes(sk.verify_key)).decode() + "\n")
    open(sys.argv[3], "w").write(base64.b64encode(bytes(sk.verify_key)).decode() + "\n")
elif cmd == "pub-of":
    raw = base64.b64decode(open(sys.argv[2]).read().strip())
    assert len(raw) == 64, len(raw)
    sk = nacl.signing.SigningKey(raw[:32])
    assert bytes(sk.verify_key) == raw[32:], "public half does not match the seed"
    print(base64.b64encode(bytes(sk.verify_key)).decode())
elif cmd == "sign":
    raw = base64.b64decode(open(sys.argv[2]).read().strip())
    msg = open(sys.argv[3], "rb").read()
    print(nacl.signing.SigningKey(raw[:32]).sign(msg).signature.hex())
elif cmd == "verify":
    vk = nacl.signing.VerifyKey(base64.b64decode(open(sys.argv[2]).read().strip()))
    msg = open(sys.argv[3], "rb").read()
    try:
        vk.verify(msg, bytes.fromhex(sys.argv[4]))
        print("ok")
    except nacl.exceptions.BadSignatureError:
        print("bad")
"#;

/// None (with `OSTREE_TEST_ALLOW_SKIP=1`) or a panic when python3-nacl is missing.
fn nacl() -> Option<()> {
    let ok = Command::new(PY)
        .args(["-c", "import nacl.signing"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(());
    }
    let why = "libsodium's Python binding is missing: scripts/setup.sh installs python3-nacl";
    if std::env::var("OSTREE_TEST_ALLOW_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("skipped: {why}");
        return None;
    }
    panic!("{why}");
}

fn py(dir: &Path, args: &[&str]) -> String {
    let h = dir.join("nacl-helper.py");
    if !h.exists() {
        fs::write(&h, HELPER).unwrap();
    }
    stdout(Command::new(PY).arg(&h).args(args))
        .trim()
        .to_string()
}

/// The signatures in the commit's detached metadata, hex.
fn signatures(repo: &Path, csum: &str) -> Vec<String> {
    let text = stdout(
        Command::new("ostree")
            .arg(format!("--repo={}", repo.display()))
            .args([
                "show",
                "--print-detached-metadata-key=ostree.sign.ed25519",
                csum,
            ]),
    );
    // Every signature is 64 bytes, in either of GLib's printed forms.
    printed_bytes(&text).chunks(64).map(hex::encode).collect()
}

#[test]
fn ed25519_interoperates_with_libsodium() {
    if nacl().is_none() || !have_ostree() {
        assert!(
            have_ostree(),
            "no ostree CLI (scripts/setup.sh installs it)"
        );
        return;
    }
    let t = Scratch::new();
    let d = t.path();
    let tree = d.join("tree");
    make_tree(&tree, "6.1.0-test", "a kernel\n");
    let sysroot = d.join("sysroot");
    let csum = make_sysroot(&sysroot, &tree, "1.0");
    let repo = sysroot.join("ostree/repo");
    let object = repo.join(format!("objects/{}/{}.commit", &csum[..2], &csum[2..]));
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Our key pair, read by libsodium; our signature, verified by libsodium.
    let (our_sec, our_pub) = (d.join("ours.sec"), d.join("ours.pub"));
    run(Command::new(BIN)
        .arg("keygen")
        .arg("--secret")
        .arg(&our_sec)
        .arg("--public")
        .arg(&our_pub));
    assert_eq!(
        py(d, &["pub-of", &s(&our_sec)]),
        fs::read_to_string(&our_pub).unwrap().trim()
    );
    run(Command::new(BIN)
        .args(["sign", "--repo"])
        .arg(&repo)
        .arg("--secret")
        .arg(&our_sec)
        .arg(&csum));
    let sigs = signatures(&repo, &csum);
    assert_eq!(sigs.len(), 1, "{sigs:?}");
    assert_eq!(
        py(d, &["verify", &s(&our_pub), &s(&object), &sigs[0]]),
        "ok"
    );
    // A flipped bit is refused by libsodium.
    let mut bad = hex::decode(&sigs[0]).unwrap();
    bad[10] ^= 1;
    assert_eq!(
        py(
            d,
            &["verify", &s(&our_pub), &s(&object), &hex::encode(&bad)]
        ),
        "bad"
    );

    // libsodium's key pair in ostree sign's format, used by us; libsodium's signature of
    // the commit is byte for byte the one we write, which our verify accepts.
    let (na_sec, na_pub) = (d.join("nacl.sec"), d.join("nacl.pub"));
    py(d, &["keygen", &s(&na_sec), &s(&na_pub)]);
    // A secret key must be private to be used (ssh's rule).
    fs::set_permissions(&na_sec, fs::Permissions::from_mode(0o600)).unwrap();
    let theirs = py(d, &["sign", &s(&na_sec), &s(&object)]);
    run(Command::new(BIN)
        .args(["sign", "--repo"])
        .arg(&repo)
        .arg("--secret")
        .arg(&na_sec)
        .arg(&csum));
    let sigs = signatures(&repo, &csum);
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    assert_eq!(sigs[1], theirs, "libsodium's signature and ours differ");
    run(Command::new(BIN)
        .args(["verify", "--repo"])
        .arg(&repo)
        .arg("--public")
        .arg(&na_pub)
        .arg(&csum));
    // A key that signed nothing is refused by our verify.
    let (x_sec, x_pub) = (d.join("x.sec"), d.join("x.pub"));
    py(d, &["keygen", &s(&x_sec), &s(&x_pub)]);
    let o = Command::new(BIN)
        .args(["verify", "--repo"])
        .arg(&repo)
        .arg("--public")
        .arg(&x_pub)
        .arg(&csum)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "verify accepted a key that signed nothing"
    );
}
