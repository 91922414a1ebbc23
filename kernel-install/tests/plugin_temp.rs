//! The plugin's initrd goes through a private temp directory (issue #12): the old
//! `$TMPDIR/.ostree-composefs-initrd.<pid>` was predictable, so anyone could squat it
//! (here: a directory under that name, which made the install fail).

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn a_squatted_predictable_initrd_path_is_not_used() {
    if !have_ostree() || !privileged() {
        return;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1.0-test", "a kernel\n");
    let sysroot = t.path().join("sysroot");
    make_sysroot(&sysroot, &tree, "1.0");
    theirs(&sysroot, &["--os=testos", "testos/stable"]);
    let kiroot = t.path().join("kiroot");
    write(
        &kiroot.join("etc/ostree/kernel-install.conf"),
        &format!("[kernel-install]\nsysroot={}\n", sysroot.display()),
    );
    let kernel = t.path().join("vmlinuz");
    fs::write(&kernel, "a kernel\n").unwrap();
    let initrd = t.path().join("initrd.img");
    fs::write(&initrd, "an initrd\n").unwrap();
    // In a new PID namespace the plugin is PID 1, so the old name is known in advance.
    let tmp = t.path().join("tmp");
    let squat = tmp.join(".ostree-composefs-initrd.1");
    fs::create_dir_all(&squat).unwrap();
    fs::write(squat.join("planted"), "mine\n").unwrap();
    let out = Command::new("unshare")
        .args(["--pid", "--fork"])
        .arg(BIN)
        .args(["kernel-install", "add", "6.1.0-test", "/unused"])
        .arg(&kernel)
        .arg(&initrd)
        .env("KERNEL_INSTALL_LAYOUT", "ostree")
        .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &kiroot)
        .env("TMPDIR", &tmp)
        .env_remove("KERNEL_INSTALL_STAGING_AREA")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The squatter's directory is untouched and nothing of ours is left beside it.
    assert_eq!(fs::read_to_string(squat.join("planted")).unwrap(), "mine\n");
    assert_eq!(fs::read_dir(&squat).unwrap().count(), 1);
    let left: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [squat.file_name().unwrap()], "{left:?}");
    // The deployed initrd is ours.
    let st = status(&sysroot);
    assert!(st.lines().count() > 1, "{st}");
    let bootdir = fs::read_dir(sysroot.join("boot/ostree"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            fs::read_dir(p)
                .unwrap()
                .any(|f| f.unwrap().file_name() == "initramfs-6.1.0-test.img")
        })
        .expect("an initramfs in boot/ostree");
    assert_eq!(
        fs::read_to_string(bootdir.join("initramfs-6.1.0-test.img")).unwrap(),
        "an initrd\n"
    );
}
