//! The peer chroot runs: its ostree is the composefs-enabled upstream the differential
//! tests compare with, and a run leaves no mount behind.

use ostree_boot_tests::peer::peer;

#[test]
fn peer_runs_and_leaves_nothing_mounted() {
    let Some(p) = peer() else { return };
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "from the host\n").unwrap();
    let out = p.ok(
        &[dir.path()],
        &format!("cat {}/f; ostree --version", dir.path().display()),
    );
    assert!(out.starts_with("from the host\n"), "{out}");
    assert!(out.contains("- composefs"), "{out}");
    let year: u32 = p.version.split('.').next().unwrap().parse().unwrap();
    assert!(year >= 2025, "peer ostree {} is older than 2025", p.version);
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(before, after, "a peer run left a mount behind");
}
