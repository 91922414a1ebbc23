//! Staged deployments on a simulated booted system (tests/booted-ns.sh: a chroot into
//! the booted deployment in a private mount namespace, with its own /run), against the
//! real ostree CLI (Debian 12's 2022.7): either tool stages, either finalizes, and the
//! sysroots come out the same.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const NS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/booted-ns.sh");

/// A tree that can be the root of the chroot: mount points, and bin/lib links into the
/// host's /usr that booted-ns.sh mounts at /run/hostusr.
fn bootable_tree(dir: &Path, kver: &str, kernel: &str) {
    make_tree(dir, kver, kernel);
    for d in ["sysroot", "boot", "run", "tmp", "proc", "dev"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    for l in ["bin", "sbin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("run/hostusr/{l}"), dir.join(l)).unwrap();
    }
    std::os::unix::fs::symlink("sysroot/ostree", dir.join("ostree")).unwrap();
}

struct Booted {
    _t: Scratch,
    sysroot: PathBuf,
    tree: PathBuf,
    out: PathBuf,
}

/// A sysroot with one deployment made by `ostree admin deploy`, and a second commit.
fn booted() -> Option<Booted> {
    if !have_ostree() {
        eprintln!("skipped: no ostree CLI");
        return None;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    bootable_tree(&tree, "6.1.0-test", "a kernel\n");
    let sysroot = t.path().join("sysroot");
    make_sysroot(&sysroot, &tree, "1.0");
    theirs(
        &sysroot,
        &["--os=testos", "--karg=root=LABEL=x", "testos/stable"],
    );
    // The update: new content and a new kernel.
    write(&tree.join("usr/share/doc/v"), "2\n");
    write(&tree.join("usr/etc/new.conf"), "from the update\n");
    write(
        &tree.join("usr/lib/modules/6.1.0-test/vmlinuz"),
        "kernel 2\n",
    );
    commit(&sysroot, &tree, "2.0");
    let out = t.path().join("out");
    fs::create_dir_all(&out).unwrap();
    Some(Booted {
        _t: t,
        sysroot,
        tree,
        out,
    })
}

impl Booted {
    /// Runs `script` with the current default deployment booted; false when mount
    /// namespaces are not available.
    fn run(&self, script: &str) -> Option<String> {
        let dep = deployment_dirs(&self.sysroot)[0].clone();
        let md = fs::metadata(&dep).unwrap();
        let info = ostree_boot::ostree::booted::OstreeBooted {
            backing_root_device_inode: (md.dev(), md.ino()),
            ..Default::default()
        };
        let file = self.out.join("ostree-booted");
        fs::write(&file, info.to_bytes().unwrap()).unwrap();
        let o = Command::new("unshare")
            .args(["-m", "-p", "-f", "--propagation", "private", NS])
            .arg(&self.sysroot)
            .arg(&dep)
            .arg(&file)
            .arg(&self.out)
            .arg(BIN)
            .arg(script)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if err.contains("unshare failed") {
            eprintln!("skipped: no mount namespaces");
            return None;
        }
        assert!(
            o.status.success(),
            "script failed: {script}\nstdout: {}\nstderr: {err}",
            String::from_utf8_lossy(&o.stdout)
        );
        Some(String::from_utf8_lossy(&o.stdout).into_owned() + &err)
    }

    fn out(&self, name: &str) -> String {
        fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }
}

const OURS_STAGE: &str = "$OURS deploy --stage testos/stable";
const THEIRS_STAGE: &str = "ostree admin deploy --stage testos/stable";
const OURS_FINALIZE: &str = "$OURS finalize-staged";
const THEIRS_FINALIZE: &str = "ostree admin finalize-staged";

/// Stage, check it is staged, edit /etc, finalize: the sysroot afterwards.
fn scenario(
    stage: &str,
    finalize: &str,
) -> Option<(Booted, std::collections::BTreeMap<String, String>)> {
    let b = booted()?;
    let script = format!(
        "{stage}
ostree admin status > /tmp/status-staged
cp /run/ostree/staged-deployment /tmp/staged-file
ls /boot/loader/entries > /tmp/entries-staged
echo 'edited after staging' > /etc/motd
echo new > /etc/added-after-staging
{finalize}
test ! -e /run/ostree/staged-deployment
ostree admin status > /tmp/status-final"
    );
    b.run(&script)?;
    assert!(
        b.out("status-staged").contains("(staged)"),
        "{}",
        b.out("status-staged")
    );
    assert_eq!(b.out("entries-staged").lines().count(), 1);
    let st = b.out("status-final");
    assert!(!st.contains("staged"), "{st}");
    let dirs = deployment_dirs(&b.sysroot);
    assert_eq!(dirs.len(), 2, "{st}");
    let new = &dirs[0];
    assert_eq!(
        fs::read_to_string(new.join("etc/motd")).unwrap(),
        "edited after staging\n"
    );
    assert_eq!(
        fs::read_to_string(new.join("etc/added-after-staging")).unwrap(),
        "new\n"
    );
    assert_eq!(
        fs::read_to_string(new.join("etc/new.conf")).unwrap(),
        "from the update\n"
    );
    let snap = snapshot_content(&b.sysroot);
    Some((b, snap))
}

#[test]
fn ours_stage_and_finalize() {
    let Some((b, _)) = scenario(OURS_STAGE, OURS_FINALIZE) else {
        return;
    };
    // Staged: our file is read back by our parser and names the new deployment.
    let bytes = fs::read(b.out.join("staged-file")).unwrap();
    let s = ostree_boot::ostree::staged::Staged::from_bytes(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(s.target.osname, "testos");
    assert!(s.merge.is_some() && !s.locked && s.kargs.is_none());
    let entry =
        fs::read_to_string(b.sysroot.join("boot/loader/entries/ostree-2-testos.conf")).unwrap();
    assert!(entry.contains("root=LABEL=x"), "{entry}");
    assert!(
        entry.contains(&format!("-{}/vmlinuz-6.1.0-test", s.target.bootcsum)),
        "{entry}"
    );
    let _ = b.tree;
}

#[test]
fn stage_and_finalize_match_ostree_either_way() {
    let Some((a, reference)) = scenario(THEIRS_STAGE, THEIRS_FINALIZE) else {
        return;
    };
    let theirs_file = fs::read(a.out.join("staged-file")).unwrap();
    for (stage, finalize) in [
        (OURS_STAGE, THEIRS_FINALIZE),
        (THEIRS_STAGE, OURS_FINALIZE),
        (OURS_STAGE, OURS_FINALIZE),
    ] {
        let (b, snap) = scenario(stage, finalize).unwrap();
        assert_same(&reference, &snap, &format!("{stage} / {finalize}"));
        // Same commit, same serial, same merge deployment: the same bytes.
        assert_eq!(
            fs::read(b.out.join("staged-file")).unwrap(),
            theirs_file,
            "{stage}"
        );
    }
}
