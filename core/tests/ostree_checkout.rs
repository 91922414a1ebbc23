//! The composefs tree of a commit built by the real `ostree` CLI, checked against the
//! expectations of ostree's tests/test-composefs.sh.

use std::fs;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

mod common;
use common::run;
use ostree_boot::composefs::tree::{Tree, mode};
use ostree_boot::fsverity::digest;
use ostree_boot::ostree::checkout::{
    DigestSource, Verity, commit_tree, commit_tree_with, write_image,
};
use ostree_boot::ostree::repo::Repo;
use sha2::{Digest, Sha256};

/// Test-only fs-verity sha256 (4 KiB blocks, no salt), to check the tree before the
/// crate's own digest module is wired in.
fn fsverity(data: &[u8]) -> [u8; 32] {
    let mut level: Vec<u8> = data.to_vec();
    let root = if data.is_empty() {
        [0u8; 32]
    } else {
        loop {
            let mut next = Vec::new();
            for block in level.chunks(4096) {
                let mut b = block.to_vec();
                b.resize(4096, 0);
                next.extend_from_slice(&Sha256::digest(&b));
            }
            if next.len() == 32 {
                break next.try_into().unwrap();
            }
            level = next;
        }
    };
    let mut desc = vec![1u8, 1, 12, 0, 0, 0, 0, 0];
    desc.extend_from_slice(&(data.len() as u64).to_le_bytes());
    desc.extend_from_slice(&root);
    desc.resize(256, 0);
    Sha256::digest(&desc).into()
}

struct TestDigests;
impl DigestSource for TestDigests {
    fn measure(&self, _file: &File) -> Option<[u8; 32]> {
        None
    }
    fn digest_files(&self, paths: &[PathBuf]) -> Vec<io::Result<[u8; 32]>> {
        paths
            .iter()
            .map(|p| fs::read(p).map(|d| fsverity(&d)))
            .collect()
    }
}

/// A composefs-dump(5)-like line: path size mode nlink uid gid rdev mtime payload
/// content digest.
fn dump_line(t: &Tree, path: &str) -> String {
    let id = t.lookup(path.as_bytes()).unwrap();
    let n = t.node(id);
    let nl = t.nlinks()[id];
    let opt = |v: &Option<Vec<u8>>| {
        v.as_ref()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or("-".into())
    };
    format!(
        "{path} {} {:o} {nl} {} {} {} {}.{} {} - {}",
        n.size,
        n.mode,
        n.uid,
        n.gid,
        n.rdev,
        n.mtime.sec,
        n.mtime.nsec,
        opt(&n.payload),
        n.digest.map(hex::encode).unwrap_or("-".into())
    )
}

fn make_repo(d: &Path) -> (PathBuf, String) {
    let src = d.join("src");
    let repo = d.join("repo");
    ostree_boot_test_support::composefs_sh_tree(&src);
    let repo_s = repo.to_str().unwrap();
    run(&["ostree", "init", "--repo", repo_s, "--mode=bare-user"]);
    let csum = run(&[
        "ostree",
        "commit",
        "--repo",
        repo_s,
        "-b",
        "test2",
        "--owner-uid=0",
        "--owner-gid=0",
        "--no-xattrs",
        "--canonical-permissions",
        "-s",
        "test",
        src.to_str().unwrap(),
    ]);
    (repo, csum.trim().to_string())
}

#[test]
fn composefs_tree_of_test_composefs_sh() {
    let d = tempfile::tempdir().unwrap();
    let (repo, _) = make_repo(d.path());
    let r = Repo::open(&repo).unwrap();
    let c = r.resolve_rev("test2").unwrap();
    let t = commit_tree_with(&r, &c, Verity::Yes, &TestDigests).unwrap();
    assert_eq!(
        dump_line(&t, "/baz/cow"),
        "/baz/cow 4 100644 1 0 0 0 0.0 f6/a517d53831a40cff3886a965c70d57aa50797a8e5ea965b2c49cc575a6ff51.file - ebaa23af194a798df610e5fe2bd10725c9c4a3a56a6b62d4d0ee551d4fc4be27"
    );
    let t0 = commit_tree_with(&r, &c, Verity::No, &TestDigests).unwrap();
    assert_eq!(
        dump_line(&t0, "/baz/cow"),
        "/baz/cow 4 100644 1 0 0 0 0.0 f6/a517d53831a40cff3886a965c70d57aa50797a8e5ea965b2c49cc575a6ff51.file - -"
    );
    // Without kernel verity, Maybe records no digest.
    let tm = commit_tree_with(&r, &c, Verity::Maybe, &TestDigests).unwrap();
    assert_eq!(tm, t0);
    // No hardlinks: equal content, separate inodes, one link each, same payload.
    let a = t.lookup(b"/baz/sub1/duplicate_a").unwrap();
    let c2 = t.lookup(b"/baz/sub2/duplicate_c").unwrap();
    assert_ne!(a, c2);
    assert_eq!(t.nlinks()[a], 1);
    assert_eq!(t.node(a).payload, t.node(c2).payload);
    // Symlinks carry their target; the forced root directories exist.
    let l = t.node(t.lookup(b"/somelink").unwrap());
    assert!(l.is_symlink());
    assert_eq!(l.payload.as_deref(), Some(&b"nosuchfile"[..]));
    assert_eq!(l.size, 10);
    for dir in ["usr", "etc", "boot", "var", "sysroot"] {
        let n = t.node(t.lookup(dir.as_bytes()).unwrap());
        assert_eq!(n.mode, mode::S_IFDIR | 0o755);
        assert_eq!((n.uid, n.gid), (0, 0));
    }
    // Every entry of the commit is there, with the forced directories on top.
    let paths: Vec<String> = t
        .walk()
        .into_iter()
        .map(|(p, _)| String::from_utf8(p).unwrap())
        .collect();
    // root, 5 directories, 10 files, 2 symlinks, 5 forced directories
    assert_eq!(paths.len(), 1 + 5 + 10 + 2 + 5);
    assert!(
        t.walk()
            .iter()
            .all(|(_, id)| t.node(*id).content.is_none() && t.node(*id).mtime.sec == 0)
    );

    // The images, byte for byte what ostree writes (test-composefs.sh).
    let sys = commit_tree(&r, &c, Verity::Yes).unwrap();
    assert_eq!(sys, t);
    let image = write_image(&sys).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&image)),
        "031fab2c7f390b752a820146dc89f6880e5739cba7490f64024e0c7d11aad7c9"
    );
    assert_eq!(
        hex::encode(digest::digest(&image)),
        "be956966c70970ea23b1a8043bca58cfb0d011d490a35a7817b36d04c0210954"
    );
    let image0 = write_image(&commit_tree(&r, &c, Verity::No).unwrap()).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&image0)),
        "78f873a76ccfea3ad7c86312ba0e06f8e0bca54ab4912b23871b31caafe59c24"
    );
}

#[test]
fn user_xattrs_are_copied() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir_all(src.join("usr")).unwrap();
    fs::write(src.join("usr/f"), b"data").unwrap();
    fs::write(src.join("usr/empty"), b"").unwrap();
    rustix::fs::setxattr(
        src.join("usr/f").as_path(),
        "user.test",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        src.join("usr").as_path(),
        "user.dir",
        b"dv",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let repo = d.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    run(&["ostree", "init", "--repo", repo_s, "--mode=bare-user"]);
    run(&[
        "ostree",
        "commit",
        "--repo",
        repo_s,
        "-b",
        "x",
        "--owner-uid=0",
        "--owner-gid=0",
        src.to_str().unwrap(),
    ]);
    let r = Repo::open(&repo).unwrap();
    let t = commit_tree_with(&r, &r.resolve_rev("x").unwrap(), Verity::Yes, &TestDigests).unwrap();
    let f = t.node(t.lookup(b"/usr/f").unwrap());
    assert_eq!(f.xattr(b"user.test"), Some(&b"v"[..]));
    assert_eq!(f.digest, Some(fsverity(b"data")));
    assert_eq!(
        t.node(t.lookup(b"/usr").unwrap()).xattr(b"user.dir"),
        Some(&b"dv"[..])
    );
    let e = t.node(t.lookup(b"/usr/empty").unwrap());
    assert_eq!((e.payload.as_ref(), e.digest, e.size), (None, None, 0));
}

/// A hand-made bare-user-only repository whose root dirtree holds `entries`.
fn hostile_repo(
    d: &Path,
    files: Vec<(String, [u8; 32])>,
    dirs: Vec<(String, [u8; 32], [u8; 32])>,
) -> (Repo, [u8; 32]) {
    use ostree_boot::ostree::objects::{Commit, DirMeta, DirTree, ObjectType, VarDict};
    fs::create_dir_all(d.join("objects")).unwrap();
    fs::write(
        d.join("config"),
        "[core]\nrepo_version=1\nmode=bare-user-only\n",
    )
    .unwrap();
    let r = Repo::open(d).unwrap();
    let meta = DirMeta {
        uid: 0,
        gid: 0,
        mode: 0o40755,
        xattrs: vec![],
    };
    let m = r
        .write_metadata_object(ObjectType::DirMeta, &meta.to_bytes())
        .unwrap();
    let tree = DirTree {
        files,
        dirs: dirs.into_iter().map(|(n, t, _)| (n, t, m)).collect(),
    };
    let t = r
        .write_metadata_object(ObjectType::DirTree, &tree.to_bytes().unwrap())
        .unwrap();
    let commit = Commit {
        metadata: VarDict::new(),
        parent: None,
        related: vec![],
        subject: String::new(),
        body: String::new(),
        timestamp: 0,
        root_contents: t,
        root_metadata: m,
    };
    let c = r.write_commit(&commit).unwrap();
    (r, c)
}

#[test]
fn hostile_trees_are_refused() {
    let file = |d: &Path| {
        let p = d.join("objects/aa");
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join(format!("{}.file", "b".repeat(62))), b"x").unwrap();
    };
    let mut csum = [0xbb; 32];
    csum[0] = 0xaa;
    // A file and a directory of the same name: ostree's "already exist".
    let d = tempfile::tempdir().unwrap();
    file(d.path());
    let empty = {
        use ostree_boot::ostree::objects::{DirTree, ObjectType};
        fs::create_dir_all(d.path().join("objects")).unwrap();
        fs::write(d.path().join("config"), "[core]\nmode=bare-user-only\n").unwrap();
        Repo::open(d.path())
            .unwrap()
            .write_metadata_object(ObjectType::DirTree, &DirTree::default().to_bytes().unwrap())
            .unwrap()
    };
    let (r, c) = hostile_repo(
        d.path(),
        vec![("x".into(), csum)],
        vec![("x".into(), empty, [0; 32])],
    );
    let e = commit_tree_with(&r, &c, Verity::No, &TestDigests).unwrap_err();
    assert!(e.to_string().contains("/x"), "{e}");
    // A name ostree would refuse, written by a hostile tool.
    let d = tempfile::tempdir().unwrap();
    file(d.path());
    let (r, c) = hostile_repo(d.path(), vec![("..".into(), csum)], vec![]);
    assert!(
        commit_tree_with(&r, &c, Verity::No, &TestDigests)
            .unwrap_err()
            .to_string()
            .contains("invalid file name")
    );
    // A missing object names its path.
    let d = tempfile::tempdir().unwrap();
    let (r, c) = hostile_repo(d.path(), vec![("f".into(), csum)], vec![]);
    let e = commit_tree_with(&r, &c, Verity::No, &TestDigests)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("aa/{}.file", "b".repeat(62))), "{e}");
    // A healthy one of these works, with the forced directories added.
    let d = tempfile::tempdir().unwrap();
    file(d.path());
    let (r, c) = hostile_repo(d.path(), vec![("f".into(), csum)], vec![]);
    let t = commit_tree_with(&r, &c, Verity::Yes, &TestDigests).unwrap();
    assert_eq!(
        t.node(t.lookup(b"/f").unwrap()).digest,
        Some(fsverity(b"x"))
    );
    assert_eq!(t.walk().len(), 1 + 1 + 5);
}
