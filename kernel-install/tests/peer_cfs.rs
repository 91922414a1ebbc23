//! `.ostree.cfs` and the commit's composefs digest against the composefs-enabled upstream
//! (Debian sid's ostree 2026.x, `tests/src/peer.rs`), same commits, byte for byte: the
//! images `ostree admin deploy` writes and ours, for a plain commit (no fs-verity on the
//! objects: "maybe", no digests) and for one carrying `ostree.composefs.digest.v0` (every
//! digest computed); `ostree commit --generate-composefs-metadata` vs our
//! `commit-metadata`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ostree_boot_tests::peer::{Peer, peer};

const DIGEST_KEY: &str = "ostree.composefs.digest.v0";

fn sh(script: &str) {
    run(Command::new("sh").arg("-ec").arg(script));
}

/// The trees: the deploy tests' OS tree; a tree in the style of upstream's
/// tests/test-composefs.sh (nested dirs, symlinks, empty and large files, modes); one with
/// an overlay whiteout (ostree stores it as `.ostree-wh.NAME`), an opaque dir, hardlinks and xattrs.
fn trees(base: &Path) -> Vec<PathBuf> {
    let os = base.join("os");
    make_tree(&os, "6.1.0-test", "a kernel\n");
    let up = base.join("upstream-style");
    make_tree(&up, "6.1.0-test", "a kernel\n");
    sh(&format!(
        "cd {d}; mkdir -p usr/share/a/b/c usr/lib/empty; : > usr/share/empty-file
         head -c 70000 /dev/zero | tr '\\0' x > usr/share/big; echo s > usr/share/a/b/c/leaf
         ln -s a/b/c/leaf usr/share/link; ln -s /nonexistent usr/share/dangling
         chmod 4755 usr/bin/tool; chmod 0600 usr/share/a/b/c/leaf; chmod 1777 usr/lib/empty",
        d = up.display()
    ));
    let wo = base.join("whiteouts");
    make_tree(&wo, "6.1.0-test", "a kernel\n");
    sh(&format!(
        "cd {d}; mkdir -p usr/share/opaque usr/share/w; echo o > usr/share/opaque/f
         : > usr/share/w/.ostree-wh.gone
         setfattr -n trusted.overlay.opaque -v y usr/share/opaque
         echo shared > usr/share/h1; ln usr/share/h1 usr/share/h2; ln usr/share/h1 usr/lib/h3
         setfattr -n user.a -v 1 usr/share/h1; setfattr -n security.test -v x usr/share/opaque/f 2>/dev/null || true
         setfattr -n user.b -v 'two words' usr/share/w",
        d = wo.display()
    ));
    vec![os, up, wo]
}

struct Fix {
    _t: Scratch,
    p: Peer,
    dir: PathBuf,
}

impl Fix {
    fn ostree(&self, args: &[&str]) -> String {
        self.p.ostree(&[&self.dir], args)
    }
    /// A sysroot made by the peer with `tree` committed on testos/stable, `extra` commit
    /// arguments.
    fn sysroot(&self, name: &str, tree: &Path, extra: &[&str]) -> (PathBuf, String) {
        let s = self.dir.join(name);
        fs::create_dir(&s).unwrap();
        self.ostree(&["admin", "init-fs", s.to_str().unwrap()]);
        self.ostree(&[
            "admin",
            "os-init",
            &format!("--sysroot={}", s.display()),
            "testos",
        ]);
        let repo = format!("--repo={}/ostree/repo", s.display());
        let mut args = vec![
            repo.as_str(),
            "commit",
            "-b",
            "testos/stable",
            "--timestamp=2024-01-01T00:00:00Z",
        ];
        let treearg = format!("--tree=dir={}", tree.display());
        args.push(&treearg);
        args.extend_from_slice(extra);
        let c = self.ostree(&args).trim().to_string();
        (s, c)
    }
    fn digest(&self, sysroot: &Path, rev: &str) -> String {
        self.ostree(&[
            &format!("--repo={}/ostree/repo", sysroot.display()),
            "show",
            &format!("--print-metadata-key={DIGEST_KEY}"),
            rev,
        ])
        .trim()
        .to_string()
    }
}

fn fixture() -> Option<Fix> {
    let p = peer()?;
    let t = Scratch::new();
    let dir = t.path().to_path_buf();
    Some(Fix { _t: t, p, dir })
}

fn cfs_of(s: &Path) -> Vec<u8> {
    let d = deployment_dirs(s);
    assert_eq!(d.len(), 1, "one deployment in {}", s.display());
    fs::read(d[0].join(".ostree.cfs"))
        .unwrap_or_else(|e| panic!("{}: {e}", d[0].join(".ostree.cfs").display()))
}

/// `ostree-composefs dump` of an image.
fn dump(dir: &Path, image: &[u8]) -> String {
    let p = dir.join("dump.cfs");
    fs::write(&p, image).unwrap();
    stdout(Command::new(BIN).arg("dump").arg(&p))
}

/// A dump with the fs-verity digest field (the 11th) of every entry blanked.
fn strip_digests(d: &str) -> Vec<String> {
    d.lines()
        .map(|l| {
            let mut w: Vec<&str> = l.split(' ').collect();
            if w.len() > 10 {
                w[10] = "*";
            }
            w.join(" ")
        })
        .collect()
}

#[test]
fn commit_metadata_digest_matches_generate_composefs_metadata() {
    let Some(f) = fixture() else { return };
    for (i, tree) in trees(&f.dir.join("trees")).iter().enumerate() {
        let (theirs, _) = f.sysroot(&format!("t{i}"), tree, &["--generate-composefs-metadata"]);
        let (mine, _) = f.sysroot(&format!("o{i}"), tree, &[]);
        run(Command::new(BIN)
            .arg("commit-metadata")
            .arg("--repo")
            .arg(mine.join("ostree/repo"))
            .arg("testos/stable"));
        let (a, b) = (
            f.digest(&theirs, "testos/stable"),
            f.digest(&mine, "testos/stable"),
        );
        assert!(a.starts_with("[byte "), "upstream's digest: {a}");
        assert_eq!(a, b, "composefs digest of {}", tree.display());
    }
}

#[test]
fn deployed_images_match_2026_both_verity_states() {
    let Some(f) = fixture() else { return };
    for (i, tree) in trees(&f.dir.join("trees")).iter().enumerate() {
        for (state, extra) in [
            ("maybe", &[][..]),
            ("digest", &["--generate-composefs-metadata"][..]),
        ] {
            let (a, _) = f.sysroot(&format!("a{i}{state}"), tree, extra);
            let b = f.dir.join(format!("b{i}{state}"));
            copy_tree(&a, &b);
            f.ostree(&[
                "admin",
                "deploy",
                &format!("--sysroot={}", a.display()),
                "--os=testos",
                "testos/stable",
            ]);
            ours_default(&b, &["--stateroot", "testos", "testos/stable"]);
            let (x, y) = (cfs_of(&a), cfs_of(&b));
            if state == "maybe" {
                assert!(
                    x == y,
                    "image of {} differs: upstream {} bytes, ours {}",
                    tree.display(),
                    x.len(),
                    y.len()
                );
            } else {
                // Deliberate difference: upstream's deploy records digests only of objects
                // that already have fs-verity, even when the commit carries its composefs
                // digest; ours computes them all, so that the image is the one the commit
                // names (what signed mode checks). Same entries otherwise.
                let (da, db) = (dump(&f.dir, &x), dump(&f.dir, &y));
                assert_eq!(strip_digests(&da), strip_digests(&db), "{}", tree.display());
                let img = f.dir.join("ours.cfs");
                fs::write(&img, &y).unwrap();
                let ours_digest = stdout(Command::new(BIN).arg("digest").arg(&img));
                let commit_digest = f.digest(&a, "testos/stable");
                let hexd = ours_digest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_start_matches("sha256:");
                let bytes: Vec<String> = (0..32)
                    .map(|i| format!("0x{}", &hexd[2 * i..2 * i + 2]))
                    .collect();
                assert_eq!(
                    commit_digest,
                    format!("[byte {}]", bytes.join(", ")),
                    "our image is the commit's"
                );
            }
            assert_same(
                &snapshot(&a),
                &snapshot(&b),
                &format!("{state} deploy of {}", tree.display()),
            );
        }
    }
}

/// Upstream's own composefs test, run by upstream and by us on the same commit: both give
/// the digest tests/test-composefs.sh pins.
#[test]
fn test_composefs_sh_digest_matches_2026() {
    let Some(f) = fixture() else { return };
    let src = f.dir.join("test2");
    ostree_boot_test_support::composefs_sh_tree(&src);
    let repo = f.dir.join("repo");
    let r = format!("--repo={}", repo.display());
    f.ostree(&[&r, "init", "--mode=bare-user"]);
    let args = [
        "--owner-uid=0",
        "--owner-gid=0",
        "--no-xattrs",
        "--canonical-permissions",
    ];
    let commit = |branch: &str, extra: &[&str]| {
        let mut v = vec![r.as_str(), "commit", "-b", branch];
        v.extend_from_slice(&args);
        v.extend_from_slice(extra);
        let s = src.display().to_string();
        v.push(&s);
        f.ostree(&v);
    };
    commit("theirs", &["--generate-composefs-metadata"]);
    commit("ours", &[]);
    run(Command::new(BIN)
        .arg("commit-metadata")
        .arg("--repo")
        .arg(&repo)
        .arg("ours"));
    let hex = |b: &str| {
        f.ostree(&[
            &r,
            "show",
            "--print-hex",
            &format!("--print-metadata-key={DIGEST_KEY}"),
            b,
        ])
        .trim()
        .to_string()
    };
    let pinned = "be956966c70970ea23b1a8043bca58cfb0d011d490a35a7817b36d04c0210954";
    assert_eq!(hex("theirs"), pinned);
    assert_eq!(hex("ours"), pinned);
}
