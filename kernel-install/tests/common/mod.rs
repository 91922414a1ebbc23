//! Fixtures for the deploy tests: the shared ones of `ostree-boot-test-support`, and the
//! path of this crate's binary.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::{Command, Output};

pub use ostree_boot_test_support::deploy::{
    Scratch, assert_same, commit, copy_tree, deployment_dirs, make_sysroot, make_tree,
    remove_sysroot, snapshot, snapshot_2022, snapshot_content, snapshot_content_2022, status,
    theirs, unseal,
};
pub use ostree_boot_test_support::{
    have_command, have_ostree, printed_bytes, privileged, require, run, run_stdout as stdout, write,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_ostree-composefs");

/// Our deploy with 2022.7's entry names (`ostree-N-STATEROOT.conf`), as the host's
/// `ostree admin deploy` writes them; must succeed.
pub fn ours(sysroot: &Path, args: &[&str]) -> Output {
    run(Command::new(BIN)
        .arg("deploy")
        .arg("--bootloader-naming-1")
        .arg("--sysroot")
        .arg(sysroot)
        .args(args))
}

/// Our deploy with its defaults (the entry names of ostree ≥ 2024.5); must succeed.
pub fn ours_default(sysroot: &Path, args: &[&str]) -> Output {
    run(Command::new(BIN)
        .arg("deploy")
        .arg("--sysroot")
        .arg(sysroot)
        .args(args))
}

/// `dir/sysroot` with one deployment of a tree with kernel `kver`, made by the host's
/// `ostree admin deploy` (stateroot testos, ref testos/stable, `root=LABEL=OLD`).
pub fn sysroot_deployed_by_ostree(dir: &Path, kver: &str) -> std::path::PathBuf {
    let tree = dir.join("tree");
    make_tree(&tree, kver, "a kernel\n");
    let sysroot = dir.join("sysroot");
    make_sysroot(&sysroot, &tree, "1.0");
    theirs(
        &sysroot,
        &["--os=testos", "--karg=root=LABEL=OLD", "testos/stable"],
    );
    sysroot
}

/// A gzip-compressed newc initrd in `out`, as initramfs-tools or dracut make them (its
/// tree is built in `dir/initrd-root`).
pub fn make_initrd(dir: &Path, out: &Path) {
    let root = dir.join("initrd-root");
    write(&root.join("init"), "#!/bin/sh\n");
    write(&root.join("etc/initrd-release"), "ID=test\n");
    run(Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . | cpio -o -H newc --quiet | gzip -9 > \"$2\"")
        .arg("sh")
        .arg(&root)
        .arg(out));
}
