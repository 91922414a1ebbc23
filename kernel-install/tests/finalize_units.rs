//! The finalize units under `systemd-analyze verify`, with the real binary at the path
//! their Exec lines name, and their ordering compared with ostree's own units (the
//! sid peer's ostree-boot package when it is built, build/peer-sid).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ostree-composefs");
const UNITS: [&str; 3] = [
    "ostree-composefs-finalize-staged.service",
    "ostree-composefs-finalize-staged-hold.service",
    "ostree-composefs-finalize-staged.path",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn verify(root: &Path, units: &[&str]) -> (bool, String) {
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(format!("--root={}", root.display()))
        .args(units)
        .output()
        .expect("systemd-analyze");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn units_verify() {
    if !ostree_boot_test_support::require(
        ostree_boot_test_support::have_command("systemd-analyze"),
        "needs systemd-analyze",
    ) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&dir).unwrap();
    // The host's targets, which the .path unit's default dependencies name.
    for e in fs::read_dir("/usr/lib/systemd/system").unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".target") && e.path().is_file() {
            fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    for u in UNITS {
        fs::copy(repo().join("units").join(u), dir.join(u)).unwrap();
    }
    fs::create_dir_all(root.path().join("usr/bin")).unwrap();
    fs::copy(BIN, root.path().join("usr/bin/ostree-composefs")).unwrap();
    let (ok, err) = verify(root.path(), &UNITS);
    assert!(ok && !err.contains("ostree"), "{err}");
    // The check can fail: without the binary the Exec lines are refused.
    fs::remove_file(root.path().join("usr/bin/ostree-composefs")).unwrap();
    let (ok, err) = verify(root.path(), &UNITS[..2]);
    assert!(!ok || err.contains("ostree-composefs"), "{err}");
}

/// The [Unit] dependency lines of a unit, with ostree's unit names mapped to ours.
fn ordering(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            [
                "DefaultDependencies=",
                "RequiresMountsFor=",
                "After=",
                "Before=",
                "Conflicts=",
                "Wants=",
                "ConditionPathExists=",
                "Type=",
                "RemainAfterExit=",
                "TimeoutStopSec=",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .map(|l| l.replace("ostree-finalize-staged", "ostree-composefs-finalize-staged"))
        .collect()
}

#[test]
fn ordering_as_ostree() {
    let peer = std::env::var_os("OSTREE_PEER_SID")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build/peer-sid"))
        .join("usr/lib/systemd/system");
    if !ostree_boot_test_support::require(
        peer.join("ostree-finalize-staged.service").is_file(),
        "needs the sid peer (scripts/peer-sid.sh builds it)",
    ) {
        return;
    }
    for (theirs, ours) in [
        ("ostree-finalize-staged.service", UNITS[0]),
        ("ostree-finalize-staged-hold.service", UNITS[1]),
    ] {
        let t = fs::read_to_string(peer.join(theirs)).unwrap();
        let o = fs::read_to_string(repo().join("units").join(ours)).unwrap();
        assert_eq!(ordering(&t), ordering(&o), "{ours} vs ostree's {theirs}");
    }
}
