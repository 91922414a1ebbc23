//! Differential tests against the composefs-enabled upstream (Debian sid's ostree 2026.x,
//! `tests/src/peer.rs`): the same sysroot deployed by its `ostree admin deploy` and by
//! `ostree-composefs deploy` gives the same tree, origin, bootlinks, entries, refs and
//! `ostree admin status`; the two take turns; upstream's undeploy, cleanup and fsck accept
//! what we wrote.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ostree_boot_tests::peer::{Peer, peer};

struct Pair {
    _t: Scratch,
    p: Peer,
    /// Deployed by the peer.
    a: PathBuf,
    /// Deployed by us.
    b: PathBuf,
    tree: PathBuf,
}

impl Pair {
    fn ostree(&self, args: &[&str]) -> String {
        self.p.ostree(&[self._t.path()], args)
    }
    fn sr(s: &Path) -> String {
        format!("--sysroot={}", s.display())
    }
    fn commit(&self, s: &Path, version: &str) -> String {
        self.ostree(&[
            &format!("--repo={}/ostree/repo", s.display()),
            "commit",
            "-b",
            "testos/stable",
            "--timestamp=2024-01-01T00:00:00Z",
            &format!("--add-metadata-string=version={version}"),
            &format!("--tree=dir={}", self.tree.display()),
        ])
        .trim()
        .to_string()
    }
    fn theirs(&self, s: &Path, args: &[&str]) -> String {
        let mut v = vec!["admin", "deploy"];
        let sr = Self::sr(s);
        v.push(&sr);
        v.extend_from_slice(args);
        self.ostree(&v)
    }
    fn status(&self, s: &Path) -> String {
        self.ostree(&["admin", "status", &Self::sr(s)])
    }
}

/// A sysroot made by the peer (init-fs, os-init, one commit) and a copy of it.
fn pair() -> Option<Pair> {
    let p = peer()?;
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1.0-test", "a kernel\n");
    let a = t.path().join("ref");
    let b = t.path().join("ours");
    std::fs::create_dir(&a).unwrap();
    let pr = Pair {
        _t: t,
        p,
        a: a.clone(),
        b: b.clone(),
        tree,
    };
    pr.ostree(&["admin", "init-fs", a.to_str().unwrap()]);
    pr.ostree(&["admin", "os-init", &Pair::sr(&a), "testos"]);
    pr.commit(&a, "1.0");
    copy_tree(&a, &b);
    Some(pr)
}

#[test]
fn first_deploy_matches_2026() {
    let Some(p) = pair() else { return };
    p.theirs(
        &p.a,
        &[
            "--os=testos",
            "--karg=root=LABEL=MOO",
            "--karg=quiet",
            "testos/stable",
        ],
    );
    ours_default(
        &p.b,
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
    assert_same(&snapshot(&p.a), &snapshot(&p.b), "first deploy vs 2026");
    assert_eq!(p.status(&p.a), p.status(&p.b));
}

/// The `.ostree.cfs` of every deployment, byte for byte (the snapshot leaves them out).
fn assert_cfs_same(p: &Pair) {
    let (da, db) = (deployment_dirs_of(p, &p.a), deployment_dirs_of(p, &p.b));
    assert_eq!(da.len(), db.len());
    for (x, y) in da.iter().zip(&db) {
        let (cx, cy) = (x.join(".ostree.cfs"), y.join(".ostree.cfs"));
        assert!(cx.is_file(), "upstream wrote no {}", cx.display());
        let (bx, by) = (std::fs::read(&cx).unwrap(), std::fs::read(&cy).unwrap());
        assert!(
            bx == by,
            "{} and {} differ ({} vs {} bytes)",
            cx.display(),
            cy.display(),
            bx.len(),
            by.len()
        );
    }
}

/// Deployment directories, newest first, from the peer's `ostree admin status`.
fn deployment_dirs_of(p: &Pair, s: &Path) -> Vec<PathBuf> {
    p.status(s)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(['*', ' ']);
            let (sr, rest) = l.split_once(' ')?;
            let name = rest.split_whitespace().next()?;
            let d = ostree_boot::deployment::DeployName::parse(name).ok()?;
            if !ostree_boot::layout::is_hex_csum(&d.checksum) {
                return None;
            }
            Some(s.join("ostree/deploy").join(sr).join("deploy").join(name))
        })
        .collect()
}

fn local_etc_changes(dir: &Path) {
    let etc = dir.join("etc");
    std::fs::write(etc.join("motd"), "local motd\n").unwrap();
    std::fs::remove_file(etc.join("keep")).unwrap();
    write(&etc.join("added/deep/file"), "new\n");
}

#[test]
fn upgrades_match_2026_titles_follow_versions() {
    let Some(p) = pair() else { return };
    p.theirs(
        &p.a,
        &["--os=testos", "--karg=root=LABEL=MOO", "testos/stable"],
    );
    ours_default(
        &p.b,
        &[
            "--stateroot",
            "testos",
            "--karg",
            "root=LABEL=MOO",
            "testos/stable",
        ],
    );
    assert_cfs_same(&p);
    for s in [&p.a, &p.b] {
        local_etc_changes(&deployment_dirs_of(&p, s)[0]);
    }
    write(&p.tree.join("usr/etc/keep"), "changed upstream\n");
    write(&p.tree.join("usr/etc/shipped"), "s\n");
    assert_eq!(p.commit(&p.a, "2.0"), p.commit(&p.b, "2.0"));
    p.theirs(
        &p.a,
        &["--os=testos", "--karg=console=ttyS0", "testos/stable"],
    );
    ours_default(
        &p.b,
        &[
            "--stateroot",
            "testos",
            "--karg",
            "console=ttyS0",
            "testos/stable",
        ],
    );
    assert_same(&snapshot(&p.a), &snapshot(&p.b), "upgrade vs 2026");
    assert_eq!(p.status(&p.a), p.status(&p.b));
    assert_cfs_same(&p);
    // A third commit: the oldest goes, every remaining entry is rewritten with its own
    // commit's version in the title.
    write(&p.tree.join("usr/share/doc/y"), "y\n");
    p.commit(&p.a, "3.0");
    p.commit(&p.b, "3.0");
    p.theirs(&p.a, &["--os=testos", "testos/stable"]);
    ours_default(&p.b, &["--stateroot", "testos", "testos/stable"]);
    assert_same(&snapshot(&p.a), &snapshot(&p.b), "third deploy vs 2026");
    assert_eq!(p.status(&p.a), p.status(&p.b));
    assert_cfs_same(&p);
    // The same commit again (a redeploy): a new deployment serial, the titles as upstream.
    p.theirs(&p.a, &["--os=testos", "testos/stable"]);
    ours_default(&p.b, &["--stateroot", "testos", "testos/stable"]);
    assert_same(&snapshot(&p.a), &snapshot(&p.b), "redeploy vs 2026");
    assert_eq!(p.status(&p.a), p.status(&p.b));
}

#[test]
fn upstream_undeploys_cleans_and_fscks_ours_and_we_follow_upstream() {
    let Some(p) = pair() else { return };
    let s = &p.b;
    ours_default(
        s,
        &[
            "--stateroot",
            "testos",
            "--karg",
            "root=LABEL=X",
            "testos/stable",
        ],
    );
    local_etc_changes(&deployment_dirs_of(&p, s)[0]);
    p.commit(s, "2.0");
    // upstream on top of ours: its /etc merge takes our deployment's changes.
    p.theirs(s, &["--os=testos", "testos/stable"]);
    let dirs = deployment_dirs_of(&p, s);
    assert_eq!(dirs.len(), 2);
    assert_eq!(
        std::fs::read_to_string(dirs[0].join("etc/motd")).unwrap(),
        "local motd\n"
    );
    // ours on top of upstream's, then upstream undeploys ours and cleans up.
    write(&p.tree.join("usr/etc/z"), "z\n");
    p.commit(s, "3.0");
    ours_default(s, &["--stateroot", "testos", "testos/stable"]);
    let entries: Vec<String> = std::fs::read_dir(s.join("boot/loader/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut sorted = entries.clone();
    sorted.sort();
    assert_eq!(sorted, ["ostree-1.conf", "ostree-2.conf"], "{entries:?}");
    p.ostree(&["admin", "undeploy", &Pair::sr(s), "0"]);
    assert_eq!(deployment_dirs_of(&p, s).len(), 1);
    p.ostree(&["admin", "cleanup", &Pair::sr(s)]);
    p.ostree(&[&format!("--repo={}/ostree/repo", s.display()), "fsck"]);
    // ours deploys and undeploys on what upstream left; upstream's status and fsck agree.
    ours_default(s, &["--stateroot", "testos", "testos/stable"]);
    run(Command::new(BIN)
        .args(["undeploy", "--sysroot"])
        .arg(s)
        .arg("1"));
    assert_eq!(deployment_dirs_of(&p, s).len(), 1);
    assert!(
        std::fs::read_dir(s.join("ostree/deploy/testos/backing"))
            .unwrap()
            .count()
            == 1,
        "the undeployed deployment's backing dir is gone"
    );
    p.ostree(&["admin", "cleanup", &Pair::sr(s)]);
    p.ostree(&[&format!("--repo={}/ostree/repo", s.display()), "fsck"]);
}

#[test]
fn undeploy_matches_2026() {
    let Some(p) = pair() else { return };
    p.theirs(&p.a, &["--os=testos", "testos/stable"]);
    ours_default(&p.b, &["--stateroot", "testos", "testos/stable"]);
    for s in [&p.a, &p.b] {
        p.commit(s, "2.0");
    }
    p.theirs(&p.a, &["--os=testos", "testos/stable"]);
    ours_default(&p.b, &["--stateroot", "testos", "testos/stable"]);
    p.ostree(&["admin", "undeploy", &Pair::sr(&p.a), "1"]);
    run(Command::new(BIN)
        .args(["undeploy", "--sysroot"])
        .arg(&p.b)
        .arg("1"));
    assert_same(&snapshot(&p.a), &snapshot(&p.b), "undeploy vs 2026");
    assert_eq!(p.status(&p.a), p.status(&p.b));
}
