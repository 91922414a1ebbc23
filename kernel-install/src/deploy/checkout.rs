//! The hardlink checkout of a commit into a deployment directory, as
//! `ostree_repo_checkout_at` does for a sysroot: files of a `bare` repo are hardlinks to
//! their objects (same inode, so owner, mode and xattrs come along); other repo modes
//! and cross-device or link-limit cases copy the content and apply the metadata ostree
//! recorded for the object.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ostree_boot::ostree::objects::{Checksum, Commit, DirMeta, ObjectType, valid_filename};
use ostree_boot::ostree::repo::{FileObject, MAX_RECURSION, Repo, RepoMode};
use rustix::fs::XattrFlags;

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;

/// Opens what the checkout just created at `path` without following a link, so that
/// owner and mode go onto that inode and never onto a link's target.
fn open_nofollow(path: &Path, dir: bool) -> Result<std::os::fd::OwnedFd> {
    use rustix::fs::OFlags;
    let kind = if dir {
        OFlags::DIRECTORY
    } else {
        OFlags::NONBLOCK | OFlags::NOCTTY
    };
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | kind,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", path.display()))
}

fn apply_dirmeta(path: &Path, meta: &DirMeta) -> Result<()> {
    let fd = open_nofollow(path, true)?;
    for x in &meta.xattrs {
        rustix::fs::fsetxattr(
            &fd,
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
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(meta.uid)),
        Some(rustix::fs::Gid::from_raw(meta.gid)),
    )
    .with_context(|| format!("chown {}", path.display()))?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(meta.mode & 0o7777))
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
    let made = match h.mode & S_IFMT {
        S_IFLNK => Made::Symlink,
        _ => Made::File,
    };
    set_recorded_meta(obj, dest, made)
}

/// What the checkout created at a path, which decides how its mode can be set.
#[derive(Clone, Copy)]
enum Made {
    /// Linux has no permissions on a symlink to set.
    Symlink,
    /// Opened without following a link, so the mode goes onto this inode.
    File,
    /// A whiteout device cannot be opened (it is 0:0): set by path, just after mknod.
    Whiteout,
}

/// Gives what the checkout created at `dest` for `obj` the xattrs, owner and
/// permission bits ostree recorded for the object.
fn set_recorded_meta(obj: &FileObject, dest: &Path, made: Made) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let h = &obj.header;
    let xattrs: Vec<_> = h
        .xattrs
        .iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    super::fsutil::set_xattrs(dest, &xattrs)?;
    std::os::unix::fs::lchown(dest, Some(h.uid), Some(h.gid))
        .with_context(|| format!("chown {}", dest.display()))?;
    let perms = h.mode & 0o7777;
    match made {
        Made::Symlink => Ok(()),
        Made::File => rustix::fs::fchmod(
            open_nofollow(dest, false)?,
            rustix::fs::Mode::from_raw_mode(perms),
        )
        .map_err(Into::into),
        Made::Whiteout => fs::set_permissions(dest, fs::Permissions::from_mode(perms)),
    }
    .with_context(|| format!("chmod {}", dest.display()))
}

/// How ostree stores an overlayfs whiteout in a commit: an empty file `.ostree-wh.NAME`.
const OVERLAY_WHITEOUT_PREFIX: &str = ".ostree-wh.";

/// The overlayfs whiteout NAME (a 0:0 character device) a `.ostree-wh.NAME` file stands
/// for, with the file's mode, owner and xattrs: upstream's deploy checks out with
/// `process_passthrough_whiteouts`.
fn whiteout(obj: &FileObject, dest: &Path) -> Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dest,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(obj.header.mode & 0o7777),
        0,
    )
    .with_context(|| format!("creating the whiteout {}", dest.display()))?;
    set_recorded_meta(obj, dest, Made::Whiteout)
}

/// What a checkout did, for the summary line.
#[derive(Debug, Default)]
pub struct CheckoutStats {
    pub files: u64,
    pub linked: u64,
    pub dirs: u64,
}

/// Checks out `commit` into the new directory `dest` (which must not exist).
///
/// Directories are created in one pass over the dirtrees; the files are then linked
/// (or copied) by a few threads: a deployment has tens of thousands of them and each is
/// one metadata operation.
pub fn checkout(repo: &Repo, commit: &Commit, dest: &Path) -> Result<CheckoutStats> {
    let mut stats = CheckoutStats::default();
    // Directory modes are applied after their contents exist: a 0555 directory would
    // otherwise refuse its own children when not running as root.
    let mut dirs: Vec<(PathBuf, DirMeta)> = Vec::new();
    let mut files: Vec<(Checksum, PathBuf)> = Vec::new();
    let mut todo = vec![(
        commit.root_contents,
        commit.root_metadata,
        dest.to_path_buf(),
        0usize,
    )];
    while let Some((tree_csum, meta_csum, path, depth)) = todo.pop() {
        if depth > MAX_RECURSION {
            bail!(
                "{}: directories nested deeper than {MAX_RECURSION}",
                path.display()
            );
        }
        let meta = repo.load_dirmeta(&meta_csum)?;
        let tree = repo.load_dirtree(&tree_csum)?;
        fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        stats.dirs += 1;
        for (name, csum) in &tree.files {
            if !valid_filename(name) {
                bail!("{}: invalid file name {name:?} in dirtree", path.display());
            }
            files.push((*csum, path.join(name)));
        }
        for (name, t, m) in &tree.dirs {
            if !valid_filename(name) {
                bail!(
                    "{}: invalid directory name {name:?} in dirtree",
                    path.display()
                );
            }
            todo.push((*t, *m, path.join(name), depth + 1));
        }
        dirs.push((path, meta));
    }
    stats.files = files.len() as u64;
    let hardlink = repo.mode() == RepoMode::Bare;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let chunk = files.len().div_ceil(threads).max(1);
    let linked = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let linked = &linked;
                s.spawn(move || -> Result<()> {
                    for (csum, p) in part {
                        if place_file(repo, csum, p, hardlink)? {
                            linked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("checkout worker panicked"))??;
        }
        Ok(())
    })?;
    stats.linked = linked.into_inner();
    for (p, meta) in dirs.iter().rev() {
        apply_dirmeta(p, meta)?;
    }
    Ok(stats)
}

/// Hardlinks the object of a `bare` repo (whose inode carries owner, mode and xattrs),
/// except an empty file, else copies it with its recorded metadata. True when linked.
fn place_file(repo: &Repo, csum: &Checksum, dest: &Path, hardlink: bool) -> Result<bool> {
    if let Some(name) = dest
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(OVERLAY_WHITEOUT_PREFIX))
    {
        let object = repo.load_file(csum)?;
        if object.header.mode & S_IFMT != S_IFLNK {
            if name.is_empty() {
                bail!("invalid empty overlayfs whiteout {}", dest.display());
            }
            whiteout(&object, &dest.with_file_name(name))?;
            return Ok(false);
        }
    }
    let obj = repo.object_path(csum, ObjectType::File);
    // Upstream copies empty regular files instead of linking them (since 2023): one
    // object shared by every empty file of every deployment would hit EMLINK.
    let empty = hardlink && fs::symlink_metadata(&obj).is_ok_and(|m| m.is_file() && m.len() == 0);
    if hardlink && !empty {
        match fs::hard_link(&obj, dest) {
            Ok(()) => return Ok(true),
            Err(e)
                if [rustix::io::Errno::XDEV, rustix::io::Errno::MLINK]
                    .iter()
                    .any(|x| e.raw_os_error() == Some(x.raw_os_error())) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("missing object {} for {}", obj.display(), dest.display())
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("linking {} to {}", obj.display(), dest.display()));
            }
        }
    }
    let object = repo.load_file(csum)?;
    copy_object(&object, dest)?;
    Ok(false)
}
