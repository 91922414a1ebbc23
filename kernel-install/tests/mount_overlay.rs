//! A composefs image written by `ostree-composefs mkcomposefs DIR` from a real directory
//! (a few thousand files copied from /usr/share, plus entries with unusual modes,
//! owners, xattrs, devices and symlinks), mounted the way composefs mounts it: EROFS,
//! then overlayfs with the objects directory as a data-only lower layer
//! (`lowerdir=IMG::OBJS,metacopy=on,redirect_dir=on`), inside a private mount namespace.
//! Every entry must read back identical: type, mode, owner, mtime, size, content,
//! device number, symlink target and xattrs, with nothing extra (the 256 stub
//! whiteouts stay hidden). Needs root; skipped with a message otherwise.

use ostree_boot::composefs::fromdir::{FromDirOptions, read_xattrs, tree_from_dir};
use ostree_boot::composefs::writer::{WriteOptions, write_image};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const CHILD_ENV: &str = "OSTREE_COMPOSEFS_MOUNT_TEST_DIR";

/// Copies entries of `from` into `to`, depth-first in name order, until `budget` runs out.
fn copy_some(from: &Path, to: &Path, budget: &mut usize) {
    let Ok(rd) = std::fs::read_dir(from) else {
        return;
    };
    let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        if *budget == 0 {
            return;
        }
        let (src, dst) = (from.join(&name), to.join(&name));
        let Ok(md) = std::fs::symlink_metadata(&src) else {
            continue;
        };
        if md.is_dir() {
            if std::fs::create_dir(&dst).is_ok() {
                *budget -= 1;
                copy_some(&src, &dst, budget);
            }
        } else if md.file_type().is_symlink() {
            if let Ok(t) = std::fs::read_link(&src)
                && std::os::unix::fs::symlink(t, &dst).is_ok()
            {
                *budget -= 1;
            }
        } else if md.is_file() && md.len() < 4 << 20 && std::fs::copy(&src, &dst).is_ok() {
            *budget -= 1;
        }
    }
}

fn set_xattr(p: &Path, k: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, k, v, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {k} on {}: {e}", p.display()));
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn build_source(src: &Path) {
    std::fs::create_dir(src).unwrap();
    let mut budget = 3000;
    copy_some(Path::new("/usr/share"), src, &mut budget);
    assert!(budget < 1000, "/usr/share has too few files for this test");

    // Names that sort around "." and "..", and a root entry that replaces a stub
    // whiteout: the kernel looks names up by binary search, so the order must be exact.
    for name in [".#lock", "-dash", "!bang", ".-dot-dash", "..."] {
        std::fs::write(
            src.join(name),
            format!("{name} is a file whose name sorts near the dot entries\n"),
        )
        .unwrap();
    }
    std::fs::create_dir(src.join("ab")).unwrap();
    std::fs::write(
        src.join("ab/inside"),
        b"replaces the stub whiteout named ab\n",
    )
    .unwrap();
    std::fs::create_dir(src.join("deep")).unwrap();
    for i in 0..400 {
        // Enough entries for a directory spanning several blocks.
        std::fs::write(
            src.join(format!("deep/entry-with-a-longish-name-{i:04}")),
            [b'x'; 70],
        )
        .unwrap();
    }

    let x = src.join("zz-test");
    std::fs::create_dir(&x).unwrap();
    std::fs::write(x.join("empty"), b"").unwrap();
    std::fs::write(x.join("inline"), b"small enough to be inlined\n").unwrap();
    std::fs::write(x.join("exactly64"), [b'a'; 64]).unwrap();
    std::fs::write(x.join("just65"), [b'b'; 65]).unwrap();
    std::fs::write(
        x.join("big"),
        (0..300_000u32)
            .map(|i| (i * 31 % 253) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(
        x.join("setuid"),
        b"#!/bin/sh\necho this is a setuid test file, longer than 64 bytes\n",
    )
    .unwrap();
    std::fs::set_permissions(x.join("setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(x.join("inline"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::hard_link(x.join("big"), x.join("big-hardlink")).unwrap();
    std::os::unix::fs::symlink("big", x.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/usr/share/nonexistent/dangling", x.join("dangling")).unwrap();
    std::os::unix::fs::symlink("t".repeat(3000), x.join("long-link")).unwrap();
    let private = x.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::write(private.join("secret"), vec![9u8; 5000]).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&private, 1234, 5678);
    chown(&private.join("secret"), 1234, 5678);
    chown(&x.join("just65"), 100_000, 100_001); // needs an extended inode
    rustix::fs::mknodat(
        rustix::fs::CWD,
        x.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        x.join("null-dev"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    set_xattr(&x.join("big"), "user.test", b"hello");
    set_xattr(&x.join("big"), "user.binary", b"\x00\xff=\n ");
    set_xattr(&x.join("just65"), "trusted.overlay.foo", b"escaped");
    set_xattr(&x.join("just65"), "trusted.test", b"t");
    set_xattr(&x.join("inline"), "user.test", b"hello");
    set_xattr(&private, "user.dir", b"d");
    // Many files sharing one xattr exercise the shared xattr table.
    for i in 0..40 {
        let p = x.join(format!("shared-{i:02}"));
        std::fs::write(
            &p,
            format!("file {i} with a shared xattr, and long enough not to be inlined....\n"),
        )
        .unwrap();
        set_xattr(&p, "user.shared", b"same value everywhere");
    }
    // A non-zero nanosecond mtime on one file forces extended inodes elsewhere too.
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_600_000_000,
            tv_nsec: 123_456_789,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_600_000_000,
            tv_nsec: 123_456_789,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        x.join("big"),
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Stores each external file under `objs/<payload>`, as the data-only layer.
fn fill_objects(src: &Path, objs: &Path) -> usize {
    let tree = tree_from_dir(src, &FromDirOptions::default()).unwrap();
    let mut n = 0;
    for (path, _, _, id) in tree.walk_entries() {
        let node = tree.node(id);
        if node.is_reg() && node.content.is_none() && node.size > 0 {
            let payload = String::from_utf8(node.payload.clone().unwrap()).unwrap();
            let dst = objs.join(&payload);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            let rel = String::from_utf8(path).unwrap();
            std::fs::copy(src.join(rel.trim_start_matches('/')), &dst).unwrap();
            n += 1;
        }
    }
    n
}

#[test]
fn image_from_directory_mounts_identically() {
    if !ostree_boot_test_support::privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (src, objs, img) = (
        tmp.path().join("src"),
        tmp.path().join("objects"),
        tmp.path().join("image.cfs"),
    );
    build_source(&src);
    std::fs::create_dir(&objs).unwrap();
    let n_objs = fill_objects(&src, &objs);
    assert!(n_objs > 1000, "only {n_objs} external files");

    let out = Command::new(env!("CARGO_BIN_EXE_ostree-composefs"))
        .arg("mkcomposefs")
        .arg(&src)
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkcomposefs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The library gives the same bytes as the CLI.
    let tree = tree_from_dir(&src, &FromDirOptions::default()).unwrap();
    assert_eq!(
        write_image(&tree, &WriteOptions::default()).unwrap(),
        std::fs::read(&img).unwrap()
    );

    // Mount and compare in a child running this test binary inside `unshare -m`, so
    // the mounts die with the namespace whatever happens.
    let child = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "mount_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, tmp.path())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(
        child.status.success() && log.contains("1 passed"),
        "child failed:\n{log}"
    );
    assert!(log.contains("compared"), "{log}");
}

/// The part of `image_from_directory_mounts_identically` that runs inside the private
/// mount namespace; does nothing when run on its own.
#[test]
#[ignore = "run by image_from_directory_mounts_identically inside unshare -m"]
fn mount_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let (src, objs, img) = (dir.join("src"), dir.join("objects"), dir.join("image.cfs"));
    let (lower, mnt) = (dir.join("lower"), dir.join("mnt"));
    std::fs::create_dir_all(&lower).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "erofs", "-o", "ro,loop"])
        .arg(&img)
        .arg(&lower)
        .status()
        .unwrap();
    assert!(st.success(), "mounting the erofs image failed");
    let opts = format!(
        "ro,metacopy=on,redirect_dir=on,lowerdir={}::{}",
        lower.display(),
        objs.display()
    );
    let st = Command::new("mount")
        .args(["-t", "overlay", "composefs", "-o", &opts])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mounting overlayfs with {opts} failed");
    let n = compare(&src, &mnt);
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = Command::new("umount").arg(&lower).status();
    println!("compared {n} entries");
}

fn xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    read_xattrs(p).unwrap().into_iter().collect()
}

fn compare(src: &Path, mnt: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let (a, b) = (src.join(&rel), mnt.join(&rel));
        let (ma, mb) = (
            std::fs::symlink_metadata(&a).unwrap(),
            std::fs::symlink_metadata(&b).unwrap(),
        );
        let what = rel.display().to_string();
        count += 1;
        assert_eq!(ma.mode(), mb.mode(), "mode of {what}");
        assert_eq!(
            (ma.uid(), ma.gid()),
            (mb.uid(), mb.gid()),
            "owner of {what}"
        );
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {what}"
        );
        assert_eq!(xattrs(&a), xattrs(&b), "xattrs of {what}");
        let ft = ma.file_type();
        if ft.is_dir() {
            let names = |d: &Path| {
                let mut v: Vec<_> = std::fs::read_dir(d)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                v.sort();
                v
            };
            let (na, nb) = (names(&a), names(&b));
            assert_eq!(na, nb, "entries of {what}");
            for n in na {
                stack.push(rel.join(n));
            }
        } else if ft.is_symlink() {
            assert_eq!(
                std::fs::read_link(&a).unwrap(),
                std::fs::read_link(&b).unwrap(),
                "target of {what}"
            );
        } else if ft.is_file() {
            assert_eq!(ma.len(), mb.len(), "size of {what}");
            assert!(
                std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
                "content of {what}"
            );
        } else {
            assert_eq!(ma.rdev(), mb.rdev(), "device of {what}");
        }
    }
    count
}

const DUMP_CHILD_ENV: &str = "OSTREE_COMPOSEFS_MOUNT_DUMP_DIR";

/// Inline data of every layout (tails, a full block, block + tail), a multi-block
/// directory, long symlinks, extended inodes and dump hardlinks: the kernel's EROFS
/// must read back exactly what the dump says.
fn layout_dump() -> String {
    let mut d = String::from("/ 4096 40755 2 0 0 0 1000.0 - - - user.root=r\n");
    d += "/a 0 40755 2 0 0 0 1000.0 - - -\n";
    let mut names: Vec<String> = Vec::new();
    for (i, n) in [1usize, 100, 2047, 2048, 2049, 3000, 4095, 4096, 4097, 5000]
        .iter()
        .enumerate()
    {
        let content: String = (0..*n)
            .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
            .collect();
        names.push(format!(
            "/a/inline-{n:04} {n} 100644 1 {i} {i} 0 1000.0 - {content} -"
        ));
    }
    for i in 0..300 {
        names.push(format!("/a/many-{i:03}-with-a-long-name-to-fill-blocks 0 100600 1 70000 0 0 {}.{} - - - user.shared=v", 1000 + i, i));
    }
    names.push(format!(
        "/a/long-link 4000 120777 1 0 0 0 1000.0 {} - -",
        "L".repeat(4000)
    ));
    names.push("/a/hard 5 100644 2 0 0 0 1000.0 - hello -".into());
    names.push("/a/hard2 5 @100644 2 0 0 0 1000.0 /a/hard - -".into());
    names.sort();
    for n in names {
        d += &n;
        d.push('\n');
    }
    d
}

#[test]
fn dump_layouts_read_back_through_the_kernel() {
    if !ostree_boot_test_support::privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("layouts.dump"), layout_dump()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ostree-composefs"))
        .args(["mkcomposefs", "--from-file", "--strict"])
        .arg(tmp.path().join("layouts.dump"))
        .arg(tmp.path().join("layouts.img"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "mount_child_dump",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DUMP_CHILD_ENV, tmp.path())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(
        child.status.success() && log.contains("1 passed") && log.contains("checked"),
        "child failed:\n{log}"
    );
}

#[test]
#[ignore = "run by dump_layouts_read_back_through_the_kernel inside unshare -m"]
fn mount_child_dump() {
    let Some(dir) = std::env::var_os(DUMP_CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "erofs", "-o", "ro,loop"])
        .arg(dir.join("layouts.img"))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mounting the erofs image failed");
    let mut checked = 0;
    for line in layout_dump().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let p = mnt.join(f[0].trim_start_matches('/'));
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(
            format!("{:o}", md.mode()),
            f[2].trim_start_matches('@'),
            "mode of {}",
            f[0]
        );
        assert_eq!(md.uid().to_string(), f[4], "uid of {}", f[0]);
        let mtime: Vec<&str> = f[7].split('.').collect();
        assert_eq!(
            (md.mtime().to_string(), md.mtime_nsec().to_string()),
            (mtime[0].into(), mtime[1].into()),
            "mtime of {}",
            f[0]
        );
        if md.is_file() {
            assert_eq!(md.nlink().to_string(), f[3], "nlink of {}", f[0]);
            let want = if f[9] == "-" {
                String::new()
            } else {
                f[9].to_string()
            };
            let content = std::fs::read_to_string(&p).unwrap();
            if f[2].starts_with('@') {
                assert_eq!(content, "hello");
            } else {
                assert_eq!(content, want, "content of {}", f[0]);
            }
        } else if md.file_type().is_symlink() {
            assert_eq!(std::fs::read_link(&p).unwrap().as_os_str().len(), 4000);
        }
        checked += 1;
    }
    let a = std::fs::metadata(mnt.join("a/hard")).unwrap();
    let b = std::fs::metadata(mnt.join("a/hard2")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlinks share an inode");
    assert_eq!(
        xattrs(&mnt.join("a/many-007-with-a-long-name-to-fill-blocks"))
            .get(&b"user.shared"[..])
            .map(|v| v.as_slice()),
        Some(&b"v"[..])
    );
    let _ = Command::new("umount").arg(&mnt).status();
    println!("checked {checked} entries");
}
