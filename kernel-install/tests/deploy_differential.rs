//! Differential tests: the same repo and commit deployed by `ostree admin deploy`
//! (Debian 12's ostree 2022.7) and by `ostree-composefs deploy` give the same sysroot
//! (but for the backing directories 2022.7 predates; tests/peer_deploy.rs compares with
//! 2026.x), and the two tools can take turns on one sysroot.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// Two identical sysroots with one commit: `(tmp, ref, ours, tree)`.
fn pair() -> Option<(
    Scratch,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
)> {
    if !have_ostree() {
        return None;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1.0-test", "a kernel\n");
    let a = t.path().join("ref");
    make_sysroot(&a, &tree, "1.0");
    let b = t.path().join("ours");
    copy_tree(&a, &b);
    Some((t, a, b, tree))
}

/// Local changes an admin makes in the default deployment's /etc.
fn local_etc_changes(sysroot: &Path) {
    let d = &deployment_dirs(sysroot)[0];
    let etc = d.join("etc");
    fs::write(etc.join("motd"), "local motd\n").unwrap();
    fs::remove_file(etc.join("keep")).unwrap();
    write(&etc.join("added/deep/file"), "new\n");
    std::os::unix::fs::symlink("motd", etc.join("motd-link")).unwrap();
    fs::set_permissions(
        etc.join("conf.d/a.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

#[test]
fn first_deploy_matches_ostree() {
    let Some((_t, a, b, _)) = pair() else { return };
    theirs(
        &a,
        &[
            "--os=testos",
            "--karg=root=LABEL=MOO",
            "--karg=quiet",
            "testos/stable",
        ],
    );
    ours(
        &b,
        &[
            "--stateroot",
            "testos",
            "--karg",
            "root=LABEL=MOO",
            "--karg",
            "quiet",
            "testos/stable",
        ],
    );
    assert_same(&snapshot_2022(&a), &snapshot_2022(&b), "first deploy");
    assert_eq!(status(&a), status(&b));
    // Our deployment has the composefs image beside the tree.
    assert!(
        deployment_dirs(&b)[0].join(".ostree.cfs").is_file(),
        "no .ostree.cfs"
    );
}

#[test]
fn upgrade_with_local_etc_changes_matches_ostree() {
    let Some((_t, a, b, tree)) = pair() else {
        return;
    };
    theirs(
        &a,
        &["--os=testos", "--karg=root=LABEL=MOO", "testos/stable"],
    );
    ours(
        &b,
        &[
            "--stateroot",
            "testos",
            "--karg",
            "root=LABEL=MOO",
            "testos/stable",
        ],
    );
    for s in [&a, &b] {
        local_etc_changes(s);
    }
    // The new commit changes a file the admin deleted and adds one.
    write(&tree.join("usr/etc/keep"), "changed upstream\n");
    write(&tree.join("usr/etc/shipped"), "s\n");
    let c1 = commit(&a, &tree, "2.0");
    let c2 = commit(&b, &tree, "2.0");
    assert_eq!(c1, c2);
    theirs(
        &a,
        &["--os=testos", "--karg=console=ttyS0", "testos/stable"],
    );
    let out = ours(
        &b,
        &[
            "--stateroot",
            "testos",
            "--karg",
            "console=ttyS0",
            "testos/stable",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("Copying /etc changes: 2 modified, 1 removed, 2 added")
    );
    assert_same(
        &snapshot_2022(&a),
        &snapshot_2022(&b),
        "upgrade with /etc merge",
    );
    assert_eq!(status(&a), status(&b));
    let etc = deployment_dirs(&b)[0].join("etc");
    assert_eq!(
        fs::read_to_string(etc.join("motd")).unwrap(),
        "local motd\n"
    );
    assert!(!etc.join("keep").exists());

    // A third deploy drops the oldest: new + rollback stay, with only a bootlink swap.
    write(&tree.join("usr/share/doc/y"), "y\n");
    commit(&a, &tree, "3.0");
    commit(&b, &tree, "3.0");
    theirs(&a, &["--os=testos", "testos/stable"]);
    ours(&b, &["--stateroot", "testos", "testos/stable"]);
    assert_same(&snapshot_2022(&a), &snapshot_2022(&b), "third deploy");
    assert_eq!(status(&a), status(&b));
}

#[test]
fn new_kernel_and_keep() {
    let Some((_t, a, b, tree)) = pair() else {
        return;
    };
    theirs(&a, &["--os=testos", "testos/stable"]);
    ours(&b, &["--stateroot", "testos", "testos/stable"]);
    fs::write(
        tree.join("usr/lib/modules/6.1.0-test/vmlinuz"),
        "another kernel\n",
    )
    .unwrap();
    commit(&a, &tree, "2.0");
    commit(&b, &tree, "2.0");
    theirs(&a, &["--os=testos", "--retain", "testos/stable"]);
    ours(
        &b,
        &["--stateroot", "testos", "--keep", "3", "testos/stable"],
    );
    commit(&a, &tree, "3.0");
    commit(&b, &tree, "3.0");
    theirs(&a, &["--os=testos", "--retain", "testos/stable"]);
    ours(
        &b,
        &["--stateroot", "testos", "--keep", "5", "testos/stable"],
    );
    assert_same(
        &snapshot_2022(&a),
        &snapshot_2022(&b),
        "three kept deployments, two kernels",
    );
    assert_eq!(status(&a), status(&b));
    assert_eq!(deployment_dirs(&b).len(), 3);
    // --keep 1 leaves only the new one (nothing is booted here).
    ours(
        &b,
        &["--stateroot", "testos", "--keep", "1", "testos/stable"],
    );
    assert_eq!(deployment_dirs(&b).len(), 1);
    assert_eq!(
        fs::read_dir(b.join("boot/ostree")).unwrap().count(),
        1,
        "unused kernel dir removed"
    );
}

#[test]
fn mixed_sequences() {
    let Some((_t, a, _b, tree)) = pair() else {
        return;
    };
    // ours, then ostree's on top of ours.
    ours(
        &a,
        &[
            "--stateroot",
            "testos",
            "--karg",
            "root=LABEL=X",
            "testos/stable",
        ],
    );
    local_etc_changes(&a);
    commit(&a, &tree, "2.0");
    theirs(&a, &["--os=testos", "testos/stable"]);
    let st = status(&a);
    assert_eq!(deployment_dirs(&a).len(), 2, "{st}");
    let etc = deployment_dirs(&a)[0].join("etc");
    assert_eq!(
        fs::read_to_string(etc.join("motd")).unwrap(),
        "local motd\n",
        "ostree merged our /etc"
    );
    // ours on top of ostree's.
    write(&tree.join("usr/etc/z"), "z\n");
    commit(&a, &tree, "3.0");
    ours(&a, &["--stateroot", "testos", "testos/stable"]);
    assert_eq!(deployment_dirs(&a).len(), 2);
    let entries: Vec<String> = fs::read_dir(a.join("boot/loader/entries"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        entries.iter().all(|e| e.contains("root=LABEL=X")),
        "kargs carried over: {entries:?}"
    );
    // ostree undeploys ours (index 0), fsck and status still work.
    run(Command::new("ostree")
        .args(["admin", "undeploy", "0"])
        .arg(format!("--sysroot={}", a.display())));
    assert_eq!(deployment_dirs(&a).len(), 1);
    run(Command::new("ostree")
        .arg(format!("--repo={}", a.join("ostree/repo").display()))
        .arg("fsck"));
    // and ours undeploys what ostree left.
    ours(&a, &["--stateroot", "testos", "testos/stable"]);
    run(Command::new(BIN)
        .args(["undeploy", "--bootloader-naming-1", "--sysroot"])
        .arg(&a)
        .arg("1"));
    assert_eq!(deployment_dirs(&a).len(), 1);
    status(&a);
    run(Command::new("ostree")
        .args(["admin", "cleanup"])
        .arg(format!("--sysroot={}", a.display())));
}

#[test]
fn undeploy_matches_ostree() {
    let Some((_t, a, b, tree)) = pair() else {
        return;
    };
    for s in [&a, &b] {
        theirs(s, &["--os=testos", "testos/stable"]);
        commit(s, &tree, "2.0");
        theirs(s, &["--os=testos", "testos/stable"]);
    }
    run(Command::new("ostree")
        .args(["admin", "undeploy", "1"])
        .arg(format!("--sysroot={}", a.display())));
    run(Command::new(BIN)
        .args(["undeploy", "--bootloader-naming-1", "--sysroot"])
        .arg(&b)
        .arg("1"));
    assert_same(&snapshot_2022(&a), &snapshot_2022(&b), "undeploy");
    assert_eq!(status(&a), status(&b));
}

#[test]
fn clear_errors() {
    let Some((t, _a, b, _)) = pair() else { return };
    let err = |args: &[&str]| {
        let o = Command::new(BIN).arg("deploy").args(args).output().unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let bs = b.to_str().unwrap();
    assert!(err(&["--sysroot", t.path().to_str().unwrap(), "x"]).contains("not an ostree sysroot"));
    assert!(err(&["--sysroot", bs, "no/such/ref"]).contains("no/such/ref"));
    assert!(
        err(&["--sysroot", bs, "--stateroot", "nope", "testos/stable"])
            .contains("stateroot 'nope' does not exist")
    );
    assert!(
        err(&["--sysroot", bs, "--kernel", "/nonexistent", "testos/stable"])
            .contains("/nonexistent")
    );
    // Nothing half-written was left by the failures.
    assert!(deployment_dirs(&b).is_empty());
    assert!(
        fs::read_dir(b.join("ostree/deploy/testos/deploy"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

/// Userspace digests only: this kernel's filesystems have no fs-verity.
struct Userspace;
impl ostree_boot::ostree::checkout::DigestSource for Userspace {
    fn measure(&self, _: &fs::File) -> Option<[u8; 32]> {
        None
    }
    fn digest_files(&self, paths: &[std::path::PathBuf]) -> Vec<std::io::Result<[u8; 32]>> {
        paths
            .iter()
            .map(ostree_boot::fsverity::digest::digest_file)
            .collect()
    }
}

/// Re-commits `testos/stable` with `ostree.composefs.digest.v0` = `digest` (or the
/// right one) as `ostree commit --generate-composefs-metadata` would.
fn commit_with_digest(sysroot: &Path, digest: Option<[u8; 32]>) -> [u8; 32] {
    use ostree_boot::ostree::{checkout, objects, repo::Repo};
    let repo = Repo::open(sysroot.join("ostree/repo")).unwrap();
    let c = repo.resolve_rev("testos/stable").unwrap();
    let (_, mut commit) = repo.load_commit(&c).unwrap();
    let tree = checkout::commit_tree_with(&repo, &c, checkout::Verity::Yes, &Userspace).unwrap();
    let image = ostree_boot::composefs::writer::write_image(&tree, &Default::default()).unwrap();
    let d = digest.unwrap_or_else(|| ostree_boot::fsverity::digest::digest(&image));
    commit
        .metadata
        .insert(objects::COMPOSEFS_DIGEST_KEY, objects::Value::bytes(&d));
    commit.parent = Some(c);
    let n = repo.write_commit(&commit).unwrap();
    repo.set_ref("testos/stable", &n).unwrap();
    d
}

#[test]
fn composefs_image_matches_commit_digest() {
    let Some((_t, _a, b, _)) = pair() else { return };
    let want = commit_with_digest(&b, None);
    ours(&b, &["--stateroot", "testos", "testos/stable"]);
    let img = deployment_dirs(&b)[0].join(".ostree.cfs");
    assert_eq!(
        ostree_boot::fsverity::digest::digest_file(&img).unwrap(),
        want
    );
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&img).unwrap().permissions())
            & 0o7777,
        0o644
    );
    status(&b);

    // A commit whose recorded digest is not its image's is refused, and nothing of it stays.
    commit_with_digest(&b, Some([7u8; 32]));
    let o = Command::new(BIN)
        .args(["deploy", "--sysroot"])
        .arg(&b)
        .arg("testos/stable")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("doesn't match expected digest"), "{e}");
    assert_eq!(deployment_dirs(&b).len(), 1);
    assert_eq!(
        fs::read_dir(b.join("ostree/deploy/testos/deploy"))
            .unwrap()
            .count(),
        2
    );
    assert!(!b.join("ostree/deploy/testos/.staging").exists());
}

#[test]
fn verity_required_but_unsupported_is_a_clear_error() {
    let Some((_t, _a, b, tree)) = pair() else {
        return;
    };
    write(
        &tree.join("usr/lib/ostree/prepare-root.conf"),
        "[composefs]\nenabled=signed\n",
    );
    commit(&b, &tree, "2.0");
    let o = Command::new(BIN)
        .args(["deploy", "--sysroot"])
        .arg(&b)
        .arg("testos/stable")
        .output()
        .unwrap();
    // This host's filesystems have no fs-verity; on one that has it the deploy succeeds.
    if o.status.success() {
        eprintln!("filesystem supports fs-verity; nothing to refuse");
        return;
    }
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("fs-verity is required (composefs.enabled=signed"),
        "{e}"
    );
    assert!(deployment_dirs(&b).is_empty());
}

#[test]
fn booted_deployment_survives_keep() {
    let Some((_t, _a, b, tree)) = pair() else {
        return;
    };
    ours(&b, &["--stateroot", "testos", "testos/stable"]);
    let booted = deployment_dirs(&b)[0].clone();
    write(&tree.join("usr/share/doc/v"), "2");
    commit(&b, &tree, "2.0");
    ours(&b, &["--stateroot", "testos", "testos/stable"]);
    write(&tree.join("usr/share/doc/v"), "3");
    commit(&b, &tree, "3.0");
    // The first deployment (now the rollback) is booted, per /run/ostree-booted in a
    // private namespace; --keep 1 keeps it besides the new one.
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(&booted).unwrap();
    let info = ostree_boot::ostree::booted::OstreeBooted {
        backing_root_device_inode: (md.dev(), md.ino()),
        ..Default::default()
    };
    let file = b.parent().unwrap().join("ostree-booted");
    fs::write(&file, info.to_bytes().unwrap()).unwrap();
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /run && cp \"$1\" /run/ostree-booted && shift && exec \"$@\"",
        ])
        .arg("sh")
        .arg(&file)
        .arg(BIN)
        .args(["deploy", "--keep", "1", "--sysroot"])
        .arg(&b)
        .arg("testos/stable")
        .output()
        .unwrap();
    if !require(
        !String::from_utf8_lossy(&o.stderr).contains("unshare failed"),
        "needs mount namespaces (unshare)",
    ) {
        return;
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dirs = deployment_dirs(&b);
    assert_eq!(dirs.len(), 2, "{}", status(&b));
    assert_eq!(dirs[1], booted);
    // And undeploy refuses it.
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /run && cp \"$1\" /run/ostree-booted && shift && exec \"$@\"",
        ])
        .arg("sh")
        .arg(&file)
        .arg(BIN)
        .args(["undeploy", "--bootloader-naming-1", "--sysroot"])
        .arg(&b)
        .arg("1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Cannot undeploy currently booted deployment")
    );
}

#[test]
fn stateroot_var_seeded_only_when_empty() {
    let Some((_t, _a, b, tree)) = pair() else {
        return;
    };
    // A stateroot made without `ostree admin os-init`: its var is empty.
    fs::create_dir_all(b.join("ostree/deploy/fresh/var")).unwrap();
    ours(&b, &["--stateroot", "fresh", "testos/stable"]);
    let var = b.join("ostree/deploy/fresh/var");
    assert_eq!(
        fs::read_to_string(var.join("lib/foo/state")).unwrap(),
        "s\n"
    );
    // Never merged afterwards: local state stays, new /var content is not copied.
    fs::write(var.join("lib/foo/state"), "local\n").unwrap();
    write(&tree.join("var/lib/foo/other"), "o\n");
    commit(&b, &tree, "2.0");
    ours(&b, &["--stateroot", "fresh", "testos/stable"]);
    assert_eq!(
        fs::read_to_string(var.join("lib/foo/state")).unwrap(),
        "local\n"
    );
    assert!(!var.join("lib/foo/other").exists());
    // os-init's var (not empty) is left alone, as by ostree 2022.7.
    ours(&b, &["--stateroot", "testos", "testos/stable"]);
    assert!(!b.join("ostree/deploy/testos/var/lib/foo").exists());
    status(&b);
}

#[test]
fn read_only_sysroot_is_made_writable_privately() {
    let Some((_t, _a, b, _)) = pair() else { return };
    // The sysroot read-only in a private namespace (as sysroot.readonly leaves /sysroot),
    // /boot a separate writable mount as usual.
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && mount --bind \"$1/boot\" \"$1/boot\" \
             && mount -o remount,bind,rw \"$1/boot\" && ! touch \"$1/ostree/probe\" 2>/dev/null && shift && exec \"$@\"",
        ])
        .arg("sh")
        .arg(&b)
        .arg(BIN)
        .args(["deploy", "--sysroot"])
        .arg(&b)
        .arg("testos/stable")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !require(
        !err.contains("unshare failed"),
        "needs mount namespaces (unshare)",
    ) {
        return;
    }
    assert!(o.status.success(), "{err}");
    assert_eq!(deployment_dirs(&b).len(), 1);
    status(&b);
}
