//! The syscalls behind each step of the mount plan (ostree.md 1.5, `ostree-prepare-root.c`).
//!
//! Every function does one thing the plan asks for and says in its error what it tried,
//! on which path, and why it failed. No function here decides anything.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

/// An error from one step: what was attempted, and the OS's reason.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct StepError {
    pub what: String,
    pub source: std::io::Error,
}

pub type Result<T> = std::result::Result<T, StepError>;

fn errno(what: impl Into<String>, e: Errno) -> StepError {
    StepError {
        what: what.into(),
        source: e.into(),
    }
}

fn ioerr(what: impl Into<String>, e: std::io::Error) -> StepError {
    StepError {
        what: what.into(),
        source: e,
    }
}

fn d(p: &Path) -> std::path::Display<'_> {
    p.display()
}

/// `mount --make-rprivate /`: nothing we mount may propagate back into the initrd's
/// namespace before the switch-root.
pub fn make_root_private() -> Result<()> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| errno("making / a private mount (MS_REC|MS_PRIVATE)", e))
}

/// `mkdir` with `mode`, an existing directory being fine (the mode is not changed then).
pub fn mkdir_exist_ok(path: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(ioerr(format!("creating directory {}", d(path)), e)),
    }
}

/// Creates `dir` with exactly `mode` (umask does not apply), tolerating an existing
/// directory whose mode is then set to `mode`.
pub fn mkdir_exact_mode(dir: &Path, mode: u32) -> Result<()> {
    mkdir_exist_ok(dir, mode)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| ioerr(format!("setting mode {mode:04o} on {}", d(dir)), e))
}

/// `mkdir` as the plan's `Mkdir` step asks: exactly `mode` (umask does not apply), parents
/// first (0755) when `parents`, an existing directory accepted (its mode kept) when
/// `exist_ok`.
pub fn mkdir(path: &Path, mode: u32, exist_ok: bool, parents: bool) -> Result<()> {
    if parents
        && let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.is_dir()
    {
        mkdir(parent, 0o755, true, true)?;
    }
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| ioerr(format!("setting mode {mode:04o} on {}", d(path)), e)),
        Err(e) if exist_ok && e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {
            Ok(())
        }
        Err(e) => Err(ioerr(format!("creating directory {}", d(path)), e)),
    }
}

/// Fails when `booted` (`/run/ostree-booted`) exists: prepare-root already ran in this
/// boot (SYSROOT is then the deployment's root, and running again would stack a second
/// root on it).
///
/// ostree instead fails on an existing `/run/ostree` (EEXIST of its mkdir). We refuse
/// only what that protects against, a second run; a `/run/ostree` made by someone else
/// earlier in the initrd is accepted, with its mode (0755, and 0 for `.private`) enforced.
pub fn refuse_second_run(booted: &Path) -> Result<()> {
    if booted.symlink_metadata().is_ok() {
        return Err(StepError {
            what: format!(
                "{} already exists: ostree-prepare-root already ran in this boot",
                d(booted)
            ),
            source: Errno::EXIST.into(),
        });
    }
    Ok(())
}

/// Bind-mounts `src` onto `dst` (not recursive, like ostree's `MS_BIND`).
pub fn bind(src: &Path, dst: &Path) -> Result<()> {
    rustix::mount::mount_bind(src, dst)
        .map_err(|e| errno(format!("bind-mounting {} on {}", d(src), d(dst)), e))
}

/// Remounts the bind mount at `path` read-write or read-only (`MS_BIND|MS_REMOUNT`).
pub fn remount_bind(path: &Path, read_only: bool) -> Result<()> {
    let flags = MountFlags::BIND
        | if read_only {
            MountFlags::RDONLY
        } else {
            MountFlags::empty()
        };
    rustix::mount::mount_remount(path, flags, "").map_err(|e| {
        errno(
            format!(
                "remounting {} {}",
                d(path),
                if read_only { "read-only" } else { "read-write" }
            ),
            e,
        )
    })
}

/// An overlayfs mount via `mount(2)`, as ostree does for /etc and the /usr hotfix.
pub fn overlay(
    target: &Path,
    lower: &Path,
    upper: &Path,
    work: &Path,
    read_only: bool,
) -> Result<()> {
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let cdata = CString::new(data.clone()).map_err(|_| {
        ioerr(
            format!("overlay options {data}"),
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let flags = MountFlags::SILENT
        | if read_only {
            MountFlags::RDONLY
        } else {
            MountFlags::empty()
        };
    rustix::mount::mount("overlay", target, "overlay", flags, cdata.as_c_str())
        .map_err(|e| errno(format!("mounting overlay {data} on {}", d(target)), e))
}

/// `mkdtemp(<prefix>XXXXXX)` with mode 0700, like `g_mkdtemp_full`.
pub fn mkdtemp(prefix: &str) -> Result<PathBuf> {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for _ in 0..100 {
        let mut name = String::from(prefix);
        for _ in 0..6 {
            // xorshift: the name only has to be unused, not unpredictable (the parent is
            // root-owned /run/ostree).
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            name.push(CHARS[(seed % CHARS.len() as u64) as usize] as char);
        }
        let p = PathBuf::from(name);
        match fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o700))
                    .map_err(|e| ioerr(format!("setting mode 0700 on {}", d(&p)), e))?;
                return Ok(p);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(ioerr(
                    format!("creating a temporary directory {prefix}XXXXXX"),
                    e,
                ));
            }
        }
    }
    Err(ioerr(
        format!("creating a temporary directory {prefix}XXXXXX"),
        std::io::ErrorKind::AlreadyExists.into(),
    ))
}

/// Lazily detaches the mount at `path` (`umount2(MNT_DETACH)`).
pub fn detach(path: &Path) -> Result<()> {
    rustix::mount::unmount(path, UnmountFlags::DETACH)
        .map_err(|e| errno(format!("detaching the mount at {}", d(path)), e))
}

/// `mount(src, dst, MS_MOVE)`.
pub fn move_mount(src: &Path, dst: &Path) -> Result<()> {
    rustix::mount::mount_move(src, dst)
        .map_err(|e| errno(format!("moving the mount {} to {}", d(src), d(dst)), e))
}

/// Writes `bytes` to `path` atomically with mode 0644 ([`ostree_boot::fsutil::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ostree_boot::fsutil::write_atomic(path, bytes, 0o644)
        .map_err(|e| ioerr(format!("writing {}", d(path)), e.source))
}

/// The block device that backs the physical root, for `/run/systemd/volatile-root`:
/// `/dev/gpt-auto-root` when it is a block device, else the root's `st_dev` when it is a
/// real (non-anonymous) device, else (btrfs's anonymous device numbers) the one device of
/// a single-device btrfs, as ostree asks it (BTRFS_IOC_FS_INFO). None: the link is
/// skipped, as ostree does when nothing is found.
pub fn physical_root_device(root: &Path) -> Option<(u32, u32)> {
    if let Ok(m) = fs::metadata("/dev/gpt-auto-root")
        && m.file_type().is_block_device()
    {
        let r = m.rdev();
        return Some((rustix::fs::major(r), rustix::fs::minor(r)));
    }
    let dev = fs::metadata(root).ok()?.dev();
    let (maj, min) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    if maj != 0 {
        return Some((maj, min));
    }
    ostree_boot::btrfs::single_device(root)
}

/// `link` (`/run/systemd/volatile-root`) `-> /dev/block/MAJ:MIN` of the physical root, so
/// that systemd-gpt-auto-generator finds the ESP when / is an overlay. Not fatal (as in
/// ostree): returns a warning instead.
pub fn volatile_root_symlink(link: &Path, root: &Path) -> Option<String> {
    let Some((maj, min)) = physical_root_device(root) else {
        return Some(format!(
            "no block device found for {}; not creating {}",
            d(root),
            d(link)
        ));
    };
    if let Some(parent) = link.parent()
        && let Err(e) = mkdir_exist_ok(parent, 0o755)
    {
        return Some(e.to_string());
    }
    match std::os::unix::fs::symlink(format!("/dev/block/{maj}:{min}"), link) {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
        Err(e) => Some(format!("creating {}: {e}", d(link))),
    }
}

/// `(st_dev, st_ino)` of the deployment directory (not following a final symlink).
pub fn device_inode(path: &Path) -> Result<(u64, u64)> {
    let m = fs::symlink_metadata(path).map_err(|e| ioerr(format!("lstat {}", d(path)), e))?;
    Ok((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdtemp_makes_private_unique_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("{}/transient-etc.", dir.path().display());
        let a = mkdtemp(&prefix).unwrap();
        let b = mkdtemp(&prefix).unwrap();
        assert_ne!(a, b);
        for p in [&a, &b] {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(
                name.starts_with("transient-etc.") && name.len() == "transient-etc.".len() + 6,
                "{name}"
            );
            assert_eq!(
                fs::metadata(p).unwrap().permissions().mode() & 0o7777,
                0o700
            );
        }
        assert!(
            mkdtemp("/nonexistent-dir/x.")
                .unwrap_err()
                .to_string()
                .contains("/nonexistent-dir/x.XXXXXX")
        );
    }

    #[test]
    fn write_atomic_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ostree-booted");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left behind"
        );
    }

    #[test]
    fn mkdir_modes_parents_and_exist_ok() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/private");
        assert!(
            mkdir(&p, 0, false, false).is_err(),
            "no parents without `parents`"
        );
        mkdir(&p, 0, false, true).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&p), 0);
        assert_eq!(mode(&dir.path().join("a/b")), 0o755);
        let err = mkdir(&p, 0o700, false, false).unwrap_err().to_string();
        assert!(
            err.contains("creating directory") && err.contains("a/b/private"),
            "{err}"
        );
        mkdir(&p, 0o700, true, false).unwrap();
        assert_eq!(mode(&p), 0, "an existing directory keeps its mode");
        mkdir_exact_mode(&p, 0o700).unwrap();
        assert_eq!(mode(&p), 0o700);
    }

    #[test]
    fn a_second_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let booted = dir.path().join("ostree-booted");
        refuse_second_run(&booted).unwrap();
        fs::write(&booted, b"").unwrap();
        let err = refuse_second_run(&booted).unwrap_err().to_string();
        assert!(err.contains("already ran in this boot"), "{err}");
    }
}
