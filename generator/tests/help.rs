//! `--help` of ostree-system-generator and ostree-remount: usage on stdout, exit 0,
//! nothing generated or remounted.

use std::process::Command;

fn help(bin: &str, arg: &str) -> String {
    let o = Command::new(bin).arg(arg).output().unwrap();
    assert!(o.status.success(), "{bin} {arg}: {}", o.status);
    assert!(
        o.stderr.is_empty(),
        "{bin} {arg}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn generator_help() {
    for arg in ["--help", "-h"] {
        let out = help(env!("CARGO_BIN_EXE_ostree-system-generator"), arg);
        assert!(
            out.contains("usage: ostree-system-generator NORMAL-DIR [EARLY-DIR LATE-DIR]"),
            "{out}"
        );
    }
}

#[test]
fn remount_help_and_bad_argument() {
    for arg in ["--help", "-h"] {
        let out = help(env!("CARGO_BIN_EXE_ostree-remount"), arg);
        assert!(out.contains("usage: ostree-remount"), "{out}");
    }
    // Anything else is a usage error, before anything is remounted.
    let o = Command::new(env!("CARGO_BIN_EXE_ostree-remount"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unexpected argument '--bogus'"));
}
