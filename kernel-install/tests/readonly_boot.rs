//! A read-only /boot (as Fedora CoreOS mounts it: its own filesystem, `ro`) and a
//! read-only sysroot, with real mounts in a private mount namespace: deploy and stage
//! write through their own private remount, and the mounts stay read-only for the rest
//! of the system (checked from the namespace that made them, after the command).

mod common;

use std::process::Command;

use common::*;

const SCRIPT: &str = r#"
set -eu
sysroot=$1 scratch=$2 bin=$3
truncate -s 64M "$scratch/boot.img"
mkfs.ext4 -q -F "$scratch/boot.img"
mkdir "$scratch/bootcopy"
cp -a "$sysroot/boot/." "$scratch/bootcopy/"
mount -o loop "$scratch/boot.img" "$sysroot/boot"
cp -a "$scratch/bootcopy/." "$sysroot/boot/"
mount -o remount,ro "$sysroot/boot"
# The sysroot read-only as sysroot.readonly leaves it; --rbind keeps /boot under it.
mount --rbind "$sysroot" "$sysroot"
trap 'umount -R "$sysroot"; umount "$sysroot/boot"' EXIT
mount -o remount,bind,ro "$sysroot"
if touch "$sysroot/boot/probe" 2>/dev/null; then echo "boot not read-only"; exit 1; fi
if touch "$sysroot/ostree/probe" 2>/dev/null; then echo "sysroot not read-only"; exit 1; fi
"$bin" deploy --sysroot "$sysroot" testos/stable
# Still read-only here: the remount happened in the command's own namespace.
if touch "$sysroot/boot/probe" 2>/dev/null; then echo "boot writable after deploy"; exit 1; fi
if touch "$sysroot/ostree/probe" 2>/dev/null; then echo "sysroot writable after deploy"; exit 1; fi
ls "$sysroot/boot/loader/entries" > "$scratch/entries"
cat "$sysroot"/boot/loader/entries/*.conf > "$scratch/entry-text"
ls "$sysroot/boot/ostree" > "$scratch/kernels"
"#;

#[test]
fn read_only_boot_and_sysroot() {
    if !have_ostree()
        || !require(
            Command::new("mkfs.ext4").arg("-V").output().is_ok(),
            "needs mkfs.ext4 (e2fsprogs)",
        )
        || !privileged()
    {
        return;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1.0-test", "a kernel\n");
    let sysroot = t.path().join("sysroot");
    make_sysroot(&sysroot, &tree, "1.0");
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh"])
        .arg(&sysroot)
        .arg(t.path())
        .arg(BIN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("unshare failed") && !require(false, format!("needs mount namespaces: {err}")) {
        return;
    }
    assert!(
        o.status.success(),
        "{}\n{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    let entries = std::fs::read_to_string(t.path().join("entries")).unwrap();
    assert_eq!(entries.trim(), "ostree-1.conf");
    let text = std::fs::read_to_string(t.path().join("entry-text")).unwrap();
    assert!(text.contains("linux /ostree/testos-"), "{text}");
    assert_eq!(
        std::fs::read_to_string(t.path().join("kernels"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    // Written to the loop filesystem only: the sysroot's own boot/ was hidden under it.
    assert!(!sysroot.join("boot/loader/entries").exists());
}
