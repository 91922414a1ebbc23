//! Filesystem steps of a deployment: atomic writes, copies that keep ownership, modes,
//! times and xattrs, removal of sealed (immutable) trees, syncs.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::{IFlags, XattrFlags};

/// All xattrs of a path (not following symlinks), in the order the kernel lists them.
pub fn list_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = OsStr::from_bytes(name);
        let mut val = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname, &mut val[..]) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) => val.resize(val.len() * 4, 0),
                Err(e) => return Err(e.into()),
            }
        };
        val.truncate(len);
        out.push((name.to_vec(), val));
    }
    Ok(out)
}

pub fn set_xattrs(path: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    for (k, v) in xattrs {
        rustix::fs::lsetxattr(path, OsStr::from_bytes(k), v, XattrFlags::empty()).with_context(
            || {
                format!(
                    "setting xattr {} on {}",
                    String::from_utf8_lossy(k),
                    path.display()
                )
            },
        )?;
    }
    Ok(())
}

/// Ownership, permission bits and xattrs of `src` onto `dst` (a directory or file).
pub fn copy_attrs(src: &Path, dst: &Path, md: &fs::Metadata) -> Result<()> {
    let xattrs =
        list_xattrs(src).with_context(|| format!("listing xattrs of {}", src.display()))?;
    set_xattrs(dst, &xattrs)?;
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
        .with_context(|| format!("chown {}", dst.display()))?;
    if !md.file_type().is_symlink() {
        // fchmod on a descriptor opened without following: if `dst` were a link, a
        // path chmod would change the link's target.
        let fd = rustix::fs::open(
            dst,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::NONBLOCK
                | rustix::fs::OFlags::NOCTTY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("opening {} to chmod it", dst.display()))?;
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(md.mode() & 0o7777))
            .with_context(|| format!("chmod {}", dst.display()))?;
    }
    Ok(())
}

fn copy_times(dst: &Path, md: &fs::Metadata) -> Result<()> {
    use rustix::fs::{Timespec, Timestamps, UTIME_OMIT};
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        dst,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("setting times of {}", dst.display()))
}

/// Copies one regular file or symlink, replacing `dst`, keeping owner, mode, mtime and
/// xattrs (libglnx's `glnx_file_copy_at` with OVERWRITE, as ostree's /etc merge does).
pub fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    let md = fs::symlink_metadata(src).with_context(|| format!("stat {}", src.display()))?;
    remove_if_exists(dst)?;
    if md.file_type().is_symlink() {
        let target = fs::read_link(src).with_context(|| format!("readlink {}", src.display()))?;
        std::os::unix::fs::symlink(&target, dst)
            .with_context(|| format!("symlink {}", dst.display()))?;
    } else if md.file_type().is_file() {
        fs::copy(src, dst)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    } else {
        anyhow::bail!(
            "Unsupported non-regular/non-symlink file '{}'",
            src.display()
        );
    }
    copy_attrs(src, dst, &md)?;
    copy_times(dst, &md)
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// Clears the immutable flag ostree seals deployment roots with.
pub fn clear_immutable(dir: &Path) -> Result<()> {
    let f = match File::open(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", dir.display())),
    };
    match rustix::fs::ioctl_getflags(&f) {
        Ok(flags) if flags.contains(IFlags::IMMUTABLE) => {
            rustix::fs::ioctl_setflags(&f, flags - IFlags::IMMUTABLE)
                .with_context(|| format!("clearing the immutable flag of {}", dir.display()))
        }
        // Filesystems without inode flags (tmpfs) cannot have set it either.
        _ => Ok(()),
    }
}

/// `chattr +i`, as ostree seals a finished deployment; a filesystem that cannot is fine.
pub fn set_immutable(dir: &Path) -> Result<()> {
    let f = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    match rustix::fs::ioctl_getflags(&f) {
        Ok(flags) => match rustix::fs::ioctl_setflags(&f, flags | IFlags::IMMUTABLE) {
            Ok(()) => Ok(()),
            Err(
                rustix::io::Errno::NOTTY | rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL,
            ) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("sealing {} (chattr +i)", dir.display())),
        },
        Err(_) => Ok(()),
    }
}

/// `rm -rf` that also unseals: a removed deployment was made immutable.
pub fn remove_tree(p: &Path) -> Result<()> {
    let md = match fs::symlink_metadata(p) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("stat {}", p.display())),
    };
    if md.is_dir() {
        clear_immutable(p)?;
        fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))
    } else {
        fs::remove_file(p).with_context(|| format!("removing {}", p.display()))
    }
}

pub fn fsync_path(p: &Path) -> Result<()> {
    File::open(p)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync {}", p.display()))
}

pub use ostree_boot::fsutil::is_temp_name;

/// Writes `data` to `path` atomically ([`ostree_boot::fsutil::write_atomic`]).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    ostree_boot::fsutil::write_atomic(path, data, mode)
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates `link` pointing at `target` atomically: a temp symlink renamed over it.
pub fn symlink_atomic(target: &str, link: &Path) -> Result<()> {
    let dir = link.parent().context("link without parent")?;
    let tmp = dir.join(format!(
        "{}.tmp",
        link.file_name()
            .context("link without name")?
            .to_string_lossy()
    ));
    remove_if_exists(&tmp)?;
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("symlink {}", tmp.display()))?;
    fsync_path(dir)?;
    fs::rename(&tmp, link)
        .with_context(|| format!("renaming {} over {}", tmp.display(), link.display()))?;
    fsync_path(dir)
}

/// syncfs on the filesystem holding `p`: what ostree's "full sync" does before the swap.
pub fn syncfs(p: &Path) -> Result<()> {
    let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
    rustix::fs::syncfs(&f).with_context(|| format!("syncfs {}", p.display()))
}

/// Hardlinks `src` to `dst`, or copies it (keeping attributes) across filesystems or at
/// the link limit, as ostree's `install_into_boot`. The copy goes through a temp name
/// so that a crash never leaves a truncated kernel behind.
pub fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    match fs::hard_link(src, dst) {
        Ok(()) => Ok(()),
        Err(e)
            if [
                rustix::io::Errno::XDEV,
                rustix::io::Errno::MLINK,
                rustix::io::Errno::PERM,
            ]
            .iter()
            .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
        {
            let tmp = dst.with_file_name(format!(
                ".{}.tmp",
                dst.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            copy_file(src, &tmp)?;
            File::open(&tmp)
                .and_then(|f| f.sync_data())
                .with_context(|| format!("fdatasync {}", tmp.display()))?;
            fs::rename(&tmp, dst)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dst.display()))
        }
        Err(e) => Err(e).with_context(|| format!("linking {} to {}", src.display(), dst.display())),
    }
}

/// Whether a directory is empty (a missing one counts as empty).
pub fn dir_is_empty(p: &Path) -> Result<bool> {
    match fs::read_dir(p) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// `mkdir -p` with `mode` for the directories it creates (the umask applies, as for
/// ostree's `glnx_shutil_mkdir_p_at`).
pub fn mkdir_p(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .with_context(|| format!("mkdir {}", p.display()))
}
