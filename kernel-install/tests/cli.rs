//! The `ostree-composefs` subcommands mkcomposefs, dump and digest, run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ostree-composefs"))
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    bin().args(args).output().unwrap()
}

fn vectors() -> PathBuf {
    ostree_boot_test_support::vectors::composefs_dir()
}

fn sha256_file(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn fsverity(p: &Path) -> String {
    let out = Command::new("fsverity")
        .arg("digest")
        .arg(p)
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    s.split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

#[test]
fn mkcomposefs_from_file_matches_upstream_and_prints_digest() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("special.img");
    let v = vectors();
    let out = run(&[
        "mkcomposefs".as_ref(),
        "--from-file".as_ref(),
        "--strict".as_ref(),
        "--min-version=0".as_ref(),
        "--max-version=0".as_ref(),
        v.join("special.dump").as_os_str(),
        img.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(v.join("special.dump.sha256")).unwrap();
    assert_eq!(sha256_file(&img), want.trim());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        fsverity(&img)
    );
    // No temporary file left beside the output.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("special.img")]);

    // dump, then mkcomposefs of that dump, gives the same image.
    let d = run(&["dump".as_ref(), img.as_os_str()]);
    assert!(d.status.success());
    let dumpf = dir.path().join("again.dump");
    std::fs::write(&dumpf, &d.stdout).unwrap();
    let img2 = dir.path().join("again.img");
    let out = run(&[
        "mkcomposefs".as_ref(),
        "--from-file".as_ref(),
        "--min-version=0".as_ref(),
        "--max-version=0".as_ref(),
        dumpf.as_os_str(),
        img2.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&img).unwrap(), std::fs::read(&img2).unwrap());
}

#[test]
fn errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.dump");
    std::fs::write(
        &bad,
        "/ 4096 40755 2 0 0 0 0.0 - - -\n/x 0 100644 1 0 0 0 zz - - -\n",
    )
    .unwrap();
    let img = dir.path().join("x.img");
    let out = run(&[
        "mkcomposefs".as_ref(),
        "--from-file".as_ref(),
        bad.as_os_str(),
        img.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.dump:2:") && err.contains("mtime"),
        "{err}"
    );
    assert!(!img.exists());

    let strict = dir.path().join("nonl.dump");
    std::fs::write(&strict, "/ 4096 40755 2 0 0 0 0.0 - - -").unwrap();
    let ok = run(&[
        "mkcomposefs".as_ref(),
        "--from-file".as_ref(),
        strict.as_os_str(),
        img.as_os_str(),
    ]);
    assert!(ok.status.success(), "lenient by default");
    let out = run(&[
        "mkcomposefs".as_ref(),
        "--from-file".as_ref(),
        "--strict".as_ref(),
        strict.as_os_str(),
        img.as_os_str(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonl.dump:1: missing trailing newline"));

    let out = run(&["dump".as_ref(), bad.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a composefs image"));
}

#[test]
fn digest_prints_like_fsverity() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::write(&a, b"moo\n").unwrap();
    std::fs::write(&b, vec![7u8; 600_000]).unwrap();
    let out = run(&["digest".as_ref(), a.as_os_str(), b.as_os_str()]);
    assert!(out.status.success());
    let want = Command::new("fsverity")
        .arg("digest")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(want.stdout).unwrap()
    );
    let out = run(&["digest".as_ref(), dir.path().join("missing").as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

#[test]
fn mkcomposefs_from_directory_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("small"), b"tiny\n").unwrap();
    std::fs::write(src.join("d/big"), vec![1u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("d/big", src.join("link")).unwrap();
    let i1 = dir.path().join("1.img");
    let i2 = dir.path().join("2.img");
    let o1 = run(&["mkcomposefs".as_ref(), src.as_os_str(), i1.as_os_str()]);
    let o2 = run(&[
        "mkcomposefs".as_ref(),
        "--threads=1".as_ref(),
        src.as_os_str(),
        i2.as_os_str(),
    ]);
    assert!(
        o1.status.success(),
        "{}",
        String::from_utf8_lossy(&o1.stderr)
    );
    assert_eq!(o1.stdout, o2.stdout);
    assert_eq!(std::fs::read(&i1).unwrap(), std::fs::read(&i2).unwrap());
    let d = String::from_utf8(run(&["dump".as_ref(), i1.as_os_str()]).stdout).unwrap();
    let big = Command::new("fsverity")
        .arg("digest")
        .arg(src.join("d/big"))
        .output()
        .unwrap();
    let big = String::from_utf8(big.stdout).unwrap();
    let hexd = big
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("sha256:");
    assert!(d.contains(&"/d/big 100000 100644 1 ".to_string()), "{d}");
    assert!(
        d.contains(&format!("{}/{} - {hexd}", &hexd[..2], &hexd[2..])),
        "{d}"
    );
    assert!(
        d.contains("/small 5 100644 1 ") && d.contains(" - tiny\\n "),
        "{d}"
    );
    assert!(
        d.contains("/link 5 120777 1 ") && d.contains(" d/big - -"),
        "{d}"
    );
}
