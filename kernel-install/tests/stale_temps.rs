//! A SIGKILL in the middle of an atomic write leaves `.NAME.tmp-HEX` behind (issue #12);
//! the next run that owns the directory removes it, and nothing else there.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;

fn age(p: &Path, by: Duration) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn the_next_deploy_removes_what_a_killed_one_left() {
    if !have_ostree() {
        eprintln!("skipped: needs ostree");
        return;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1.0", "a kernel\n");
    let s = t.path().join("sysroot");
    make_sysroot(&s, &tree, "1.0");
    ours(&s, &["--stateroot=testos", "testos/stable"]);

    let var = s.join("ostree/deploy/testos/var");
    let kdir = fs::read_dir(s.join("boot/ostree"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let objdir = s.join("ostree/repo/objects/ab");
    fs::create_dir_all(&objdir).unwrap();
    let stale = [
        var.join(".ostree-selabeled.tmp-0a1b2c3d4e5f"),
        kdir.join(".vmlinuz-6.1.0.tmp"),
        kdir.join(".vmlinuz-6.1.0.tmp-00ff00ff00ff"),
        s.join("ostree/deploy/testos/deploy/.x.0.origin.tmp-00ff00ff00ff"),
        objdir.join(".abcd.commitmeta.tmp-00ff00ff00ff"),
    ];
    // Not ours, or possibly still being written: kept.
    let kept = [
        var.join(".admin.tmp-00ff00ff00ff"),
        var.join("data.tmp"),
        objdir.join(".abce.commitmeta.tmp-00ff00ff00ff"),
        kdir.join("vmlinuz-keep"),
    ];
    for p in stale.iter().chain(&kept) {
        fs::write(p, "x").unwrap();
    }
    age(&stale[4], Duration::from_secs(7200));

    ours(&s, &["--stateroot=testos", "testos/stable"]);
    for p in &stale {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    for p in &kept {
        assert!(p.exists(), "{} removed", p.display());
    }
}
