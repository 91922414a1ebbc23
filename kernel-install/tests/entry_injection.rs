//! Nothing a commit carries adds lines to a boot entry: a `version` or a kernel
//! version with a newline (upstream writes `options init=/bin/sh` into the entry then)
//! is refused, naming the field and the commit, and no entry is written.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn have_ostree() -> bool {
    Command::new("ostree").arg("--version").output().is_ok()
}

/// Every line of every entry file under `boot/`.
fn entry_text(sysroot: &Path) -> String {
    let mut out = String::new();
    if let Ok(rd) = fs::read_dir(sysroot.join("boot")) {
        for l in rd.flatten() {
            if let Ok(entries) = fs::read_dir(l.path().join("entries")) {
                for e in entries.flatten() {
                    out += &fs::read_to_string(e.path()).unwrap_or_default();
                }
            }
        }
    }
    out
}

fn deploy(sysroot: &Path) -> (bool, String) {
    let o = Command::new(BIN)
        .args(["deploy", "--sysroot"])
        .arg(sysroot)
        .args(["--stateroot", "testos", "testos/stable"])
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn newline_in_commit_version_is_refused() {
    if !have_ostree() {
        return;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1.0-test", "a kernel\n");
    let sysroot = t.path().join("sysroot");
    let csum = make_sysroot(&sysroot, &tree, "1.0\noptions init=/bin/sh");
    let (ok, err) = deploy(&sysroot);
    assert!(!ok, "deployed: {}", entry_text(&sysroot));
    assert!(
        err.contains(&format!("boot entry for commit {csum}: version \"1.0\\noptions init=/bin/sh\" refused: it contains a control character")),
        "{err}"
    );
    assert!(!entry_text(&sysroot).contains("init=/bin/sh"));
}

#[test]
fn newline_in_kernel_version_is_refused() {
    if !have_ostree() {
        return;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1\noptions init=", "a kernel\n");
    let sysroot = t.path().join("sysroot");
    let csum = make_sysroot(&sysroot, &tree, "1.0");
    let (ok, err) = deploy(&sysroot);
    assert!(!ok, "deployed: {}", entry_text(&sysroot));
    assert!(
        err.contains(&format!(
            "boot entry for commit {csum}: linux \"/ostree/testos-"
        )),
        "{err}"
    );
    assert!(err.contains("control character"), "{err}");
    assert!(!entry_text(&sysroot).contains("options init="));
}
