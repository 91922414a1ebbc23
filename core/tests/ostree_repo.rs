//! Repositories built by the real `ostree` CLI, read back by our reader.
//!
//! Each test commits a source tree (files, an empty file, symlinks, setuid and private
//! modes, user.* xattrs, several levels) with `ostree commit`, then checks that our walk
//! prints exactly what `ostree ls -R -X -C` prints, that every object we re-serialise is
//! byte-identical (GLib's normal form), and that our checksums name the objects.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

mod common;
use common::run;
use ostree_boot::ostree::objects::{Commit, DirMeta, DirTree, ObjectType, Xattr, sha256};
use ostree_boot::ostree::repo::{Repo, RepoMode, WalkEntry};

fn setxattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

/// The source tree committed in these tests.
fn build_source(src: &Path) {
    fs::create_dir_all(src.join("usr/lib/deep/deeper/deepest")).unwrap();
    fs::create_dir_all(src.join("etc/private")).unwrap();
    fs::write(src.join("usr/lib/deep/deeper/deepest/leaf"), b"leaf\n").unwrap();
    fs::write(src.join("usr/lib/big"), vec![0x5a; 70_000]).unwrap();
    fs::write(src.join("usr/empty"), b"").unwrap();
    fs::write(src.join("etc/private/secret"), b"s3cret\n").unwrap();
    fs::write(src.join("usr/suid"), b"#!/bin/sh\n").unwrap();
    symlink("../usr/lib/big", src.join("etc/link")).unwrap();
    symlink("nonexistent", src.join("usr/dangling")).unwrap();
    fs::set_permissions(src.join("usr/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(
        src.join("etc/private/secret"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(src.join("etc/private"), fs::Permissions::from_mode(0o700)).unwrap();
    setxattr(&src.join("usr/lib/big"), "user.zeta", b"z");
    setxattr(&src.join("usr/lib/big"), "user.alpha", b"\x01\x02\xff");
    setxattr(&src.join("etc/private"), "user.dir", b"d");
}

/// `g_variant_print` of an `a(ayay)` as ostree ls prints it, for names that are
/// printable NUL-terminated strings and values that are not NUL-terminated.
fn print_xattrs(xattrs: &[Xattr]) -> String {
    if xattrs.is_empty() {
        return "@a(ayay) []".into();
    }
    let items: Vec<String> = xattrs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let bytes: Vec<String> = x.value.iter().map(|b| format!("0x{b:02x}")).collect();
            let value = match (i, bytes.is_empty()) {
                (_, true) => "@ay []".to_string(),
                (0, false) => format!("[byte {}]", bytes.join(", ")),
                _ => format!("[{}]", bytes.join(", ")),
            };
            format!("(b'{}', {})", String::from_utf8_lossy(&x.name), value)
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn type_char(mode: u32) -> char {
    match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        _ => '-',
    }
}

fn our_listing(repo: &Repo, rev: &str) -> Vec<String> {
    let c = repo.resolve_rev(rev).unwrap();
    let (_, commit) = repo.load_commit(&c).unwrap();
    let mut out = Vec::new();
    repo.walk_commit(&commit, &mut |path, e| {
        out.push(match e {
            WalkEntry::Dir {
                meta,
                dirtree,
                dirmeta,
            } => format!(
                "d0{:04o} {} {} {:6} {} {} {{ {} }} {}",
                meta.mode & 0o7777,
                meta.uid,
                meta.gid,
                0,
                hex::encode(dirtree),
                hex::encode(dirmeta),
                print_xattrs(&meta.xattrs),
                path
            ),
            WalkEntry::File { checksum, object } => {
                let h = &object.header;
                let mut l = format!(
                    "{}0{:04o} {} {} {:6} {} {{ {} }} {}",
                    type_char(h.mode),
                    h.mode & 0o7777,
                    h.uid,
                    h.gid,
                    object.size,
                    hex::encode(checksum),
                    print_xattrs(&h.xattrs),
                    path
                );
                if object.is_symlink() {
                    l.push_str(&format!(" -> {}", h.symlink_target));
                }
                // Our checksum of the object is the name ostree gave it.
                assert_eq!(object.compute_checksum().unwrap(), checksum, "{path}");
                l
            }
        });
        Ok(())
    })
    .unwrap();
    out
}

/// Re-serialises every metadata object of the commit and checks the bytes and names.
fn objects_roundtrip(repo: &Repo, rev: &str) {
    let c = repo.resolve_rev(rev).unwrap();
    let (bytes, commit) = repo.load_commit(&c).unwrap();
    assert_eq!(sha256(&bytes), c);
    assert_eq!(commit.to_bytes().unwrap(), bytes, "commit normal form");
    assert_eq!(Commit::parse(&bytes).unwrap(), commit);
    let mut n = 0;
    repo.walk_commit(&commit, &mut |_, e| {
        if let WalkEntry::Dir {
            dirtree, dirmeta, ..
        } = e
        {
            let tb = fs::read(repo.object_path(&dirtree, ObjectType::DirTree)).unwrap();
            let mb = fs::read(repo.object_path(&dirmeta, ObjectType::DirMeta)).unwrap();
            assert_eq!(DirTree::parse(&tb).unwrap().to_bytes().unwrap(), tb);
            assert_eq!(DirMeta::parse(&mb).unwrap().to_bytes(), mb);
            assert_eq!(sha256(&tb), dirtree);
            assert_eq!(sha256(&mb), dirmeta);
            n += 1;
        }
        Ok(())
    })
    .unwrap();
    assert!(n >= 7);
}

fn check_mode(mode: &str, commit_args: &[&str], expect: RepoMode) {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let repo = d.path().join("repo");
    build_source(&src);
    let repo_s = repo.to_str().unwrap();
    run(&[
        "ostree",
        "init",
        &format!("--repo={repo_s}"),
        &format!("--mode={mode}"),
    ]);
    let mut args = vec![
        "ostree",
        "commit",
        "--repo",
        repo_s,
        "-b",
        "test/main",
        "-s",
        "subject",
        "--body",
        "body",
    ];
    args.extend_from_slice(commit_args);
    args.push(src.to_str().unwrap());
    let csum = run(&args);
    let r = Repo::open(&repo).unwrap();
    assert_eq!(r.mode(), expect);
    assert_eq!(
        hex::encode(r.resolve_rev("test/main").unwrap()),
        csum.trim()
    );
    assert_eq!(
        hex::encode(r.resolve_rev(csum.trim()).unwrap()),
        csum.trim()
    );
    let theirs: Vec<String> = run(&[
        "ostree",
        "ls",
        "--repo",
        repo_s,
        "-R",
        "-X",
        "-C",
        "test/main",
    ])
    .lines()
    .map(String::from)
    .collect();
    let ours = our_listing(&r, "test/main");
    assert_eq!(ours, theirs);
    objects_roundtrip(&r, "test/main");
    let (_, commit) = r.load_commit(&r.resolve_rev("test/main").unwrap()).unwrap();
    assert_eq!(commit.subject, "subject");
    assert_eq!(commit.body, "body");
    assert!(commit.parent.is_none());
    // Stored big-endian: read right, it is within a day of now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        commit.timestamp <= now + 60 && commit.timestamp + 86_400 > now,
        "{}",
        commit.timestamp
    );
    // A second commit gets the first as parent; `^` walks back to it.
    let second = run(&[
        "ostree",
        "commit",
        "--repo",
        repo_s,
        "-b",
        "test/main",
        "--tree=ref=test/main",
        "-s",
        "again",
    ]);
    let r = Repo::open(&repo).unwrap();
    let (_, c2) = r
        .load_commit(&r.resolve_rev(second.trim()).unwrap())
        .unwrap();
    assert_eq!(c2.parent.map(hex::encode).as_deref(), Some(csum.trim()));
    assert_eq!(
        hex::encode(r.resolve_rev("test/main^").unwrap()),
        csum.trim()
    );
}

#[test]
fn bare_user_repo_matches_ostree_ls() {
    check_mode(
        "bare-user",
        &["--owner-uid=0", "--owner-gid=0"],
        RepoMode::BareUser,
    );
}

#[test]
fn bare_user_repo_with_other_owners() {
    check_mode(
        "bare-user",
        &["--owner-uid=1000", "--owner-gid=100"],
        RepoMode::BareUser,
    );
}

#[test]
fn bare_repo_matches_ostree_ls() {
    // Needs root for the ownership of bare objects: CI and this machine run as root.
    check_mode("bare", &[], RepoMode::Bare);
}

#[test]
fn bare_user_only_repo_matches_ostree_ls() {
    check_mode("bare-user-only", &["--no-xattrs"], RepoMode::BareUserOnly);
}
