//! The hardlink checkout of a commit into a deployment directory, as
//! `ostree_repo_checkout_at` does for a sysroot: files of a `bare` repo are hardlinks to
//! their objects (same inode, so owner, mode and xattrs come along); other repo modes
//! and cross-device or link-limit cases copy the content and apply the metadata ostree
//! recorded for the object.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ostree_boot::ostree::objects::{Commit, DirMeta};
use ostree_boot::ostree::repo::{FileObject, Repo, RepoMode, WalkEntry};
use rustix::fs::XattrFlags;

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;

fn set_meta_xattrs(path: &Path, xattrs: &[ostree_boot::ostree::objects::Xattr]) -> Result<()> {
    for x in xattrs {
        rustix::fs::lsetxattr(
            path,
            OsStr::from_bytes(&x.name),
            &x.value,
            XattrFlags::empty(),
        )
        .with_context(|| {
            format!(
                "setting xattr {} on {}",
                String::from_utf8_lossy(&x.name),
                path.display()
            )
        })?;
    }
    Ok(())
}

fn apply_dirmeta(path: &Path, meta: &DirMeta) -> Result<()> {
    set_meta_xattrs(path, &meta.xattrs)?;
    std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))
        .with_context(|| format!("chown {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode & 0o7777))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Copies a file object, giving it the metadata ostree recorded (bare-user's
/// `user.ostreemeta`, bare-user-only's implied root ownership).
fn copy_object(obj: &FileObject, dest: &Path) -> Result<()> {
    let h = &obj.header;
    match h.mode & S_IFMT {
        S_IFLNK => {
            std::os::unix::fs::symlink(&h.symlink_target, dest)
                .with_context(|| format!("symlink {}", dest.display()))?;
        }
        S_IFREG => {
            fs::copy(&obj.path, dest)
                .with_context(|| format!("copying {} to {}", obj.path.display(), dest.display()))?;
        }
        m => bail!("{}: unsupported file type {:o}", obj.path.display(), m),
    }
    let xattrs: Vec<_> = h
        .xattrs
        .iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    super::fsutil::set_xattrs(dest, &xattrs)?;
    std::os::unix::fs::lchown(dest, Some(h.uid), Some(h.gid))
        .with_context(|| format!("chown {}", dest.display()))?;
    if h.mode & S_IFMT == S_IFREG {
        fs::set_permissions(dest, fs::Permissions::from_mode(h.mode & 0o7777))
            .with_context(|| format!("chmod {}", dest.display()))?;
    }
    Ok(())
}

fn rel(dest: &Path, path: &str) -> PathBuf {
    dest.join(path.trim_start_matches('/'))
}

/// What a checkout did, for the summary line.
#[derive(Debug, Default)]
pub struct CheckoutStats {
    pub files: u64,
    pub linked: u64,
    pub dirs: u64,
}

/// Checks out `commit` into the new directory `dest` (which must not exist).
pub fn checkout(repo: &Repo, commit: &Commit, dest: &Path) -> Result<CheckoutStats> {
    let mut stats = CheckoutStats::default();
    let hardlink = repo.mode() == RepoMode::Bare;
    // Directory modes are applied after their contents exist: a 0555 directory would
    // otherwise refuse its own children when not running as root.
    let mut dirs: Vec<(PathBuf, DirMeta)> = Vec::new();
    let mut err: Option<anyhow::Error> = None;
    let walk = repo.walk_commit(commit, &mut |path, entry| {
        let r: Result<()> = (|| {
            match entry {
                WalkEntry::Dir { meta, .. } => {
                    let p = rel(dest, path);
                    fs::create_dir(&p).with_context(|| format!("mkdir {}", p.display()))?;
                    dirs.push((p, meta.clone()));
                    stats.dirs += 1;
                }
                WalkEntry::File { object, .. } => {
                    let p = rel(dest, path);
                    stats.files += 1;
                    if hardlink {
                        match fs::hard_link(&object.path, &p) {
                            Ok(()) => {
                                stats.linked += 1;
                                return Ok(());
                            }
                            Err(e)
                                if [rustix::io::Errno::XDEV, rustix::io::Errno::MLINK]
                                    .iter()
                                    .any(|x| e.raw_os_error() == Some(x.raw_os_error())) => {}
                            Err(e) => {
                                return Err(e).with_context(|| {
                                    format!("linking {} to {}", object.path.display(), p.display())
                                });
                            }
                        }
                    }
                    copy_object(object, &p)?;
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                err = Some(e);
                Err(ostree_boot::ostree::repo::RepoError::Corrupt {
                    path: rel(dest, path),
                    msg,
                })
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    walk.context("walking the commit")?;
    for (p, meta) in dirs.iter().rev() {
        apply_dirmeta(p, meta)?;
    }
    Ok(stats)
}
