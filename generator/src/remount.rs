//! `ostree-remount`: the real-root half of prepare-root (ostree.md 3.1).
//!
//! In the initrd the physical root may be mounted read-only, which leaves the
//! bind mounts of /etc and /var read-only too once the remount of / happens. This
//! step, run by ostree-remount.service after systemd-remount-fs.service, makes
//! /sysroot read-only or writable as `/run/ostree-booted` records, /etc writable when
//! it is a bind mount of a read-only sysroot, and /var writable.
//!
//! Differences from ostree: no SELinux relabelling of a transient /etc (this stack
//! carries no SELinux support), and errors are reported with the path involved.

use std::io;
use std::path::{Path, PathBuf};

use ostree_boot::ostree::booted::OstreeBooted;
use rustix::fs::{Mode, OFlags, StatVfsMountFlags};
use rustix::io::Errno;
use rustix::mount::MountFlags;

pub const ENV_ROOT: &str = "OSTREE_REMOUNT_ROOT";

/// The facts the remount acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub composefs: bool,
    pub sysroot_ro: bool,
    pub transient_etc: bool,
}

impl From<&OstreeBooted> for Facts {
    fn from(b: &OstreeBooted) -> Self {
        Facts {
            composefs: b.composefs == Some(true),
            sysroot_ro: b.sysroot_ro,
            transient_etc: b.transient_etc.is_some(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RemountError(pub String);

/// One change made, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remounted {
    pub path: String,
    pub writable: bool,
}

/// Runs the remount below `root` (`/` on a real system).
pub fn run(root: &Path) -> Result<Vec<Remounted>, RemountError> {
    let at = |p: &str| -> PathBuf { root.join(p.trim_start_matches('/')) };
    let facts = read_facts(&at("/run/ostree-booted"))?;

    // Mount propagation is left as systemd set it (shared), as upstream's remount does
    // since 2025: making /sysroot private would cut it off from mounts made elsewhere.

    // A read-only / that is not composefs is what the admin chose; keep everything.
    if is_readonly(&at("/")).unwrap_or(false) && !facts.composefs {
        log::info!("/ is read-only and not composefs: leaving mounts as they are");
        return Ok(Vec::new());
    }

    let mut done = Vec::new();
    let mut step = |path: &str, writable: bool| -> Result<(), RemountError> {
        if remount(&at(path), path, writable)? {
            done.push(Remounted {
                path: path.to_owned(),
                writable,
            });
        }
        Ok(())
    };
    step("/sysroot", !facts.sysroot_ro)?;
    // Only with a read-only sysroot and a non-transient /etc is /etc a bind mount
    // that the read-only sysroot left read-only.
    if facts.sysroot_ro && !facts.transient_etc {
        step("/etc", true)?;
    }
    // A bind of the stateroot's var shares the sysroot's superblock: writable again.
    step("/var", true)?;
    Ok(done)
}

/// `/run/ostree-booted`, created empty when missing as ostree does (tools test for
/// its existence to know they run on ostree).
pub fn read_facts(path: &Path) -> Result<Facts, RemountError> {
    match ostree_boot::fsutil::read_regular(path, ostree_boot::fsutil::ReadKind::Small) {
        Ok(bytes) => OstreeBooted::from_bytes(&bytes)
            .map(|b| Facts::from(&b))
            .map_err(|e| RemountError(format!("failed to read {}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match rustix::fs::open(
                path,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOCTTY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o640),
            ) {
                Ok(_) | Err(Errno::EXIST) => {}
                Err(e) => log::warn!("creating {}: {e}", path.display()),
            }
            Ok(Facts::default())
        }
        Err(e) => Err(RemountError(format!(
            "failed to open {}: {e}",
            path.display()
        ))),
    }
}

fn is_readonly(path: &Path) -> io::Result<bool> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_flag.contains(StatVfsMountFlags::RDONLY))
}

/// Remounts `path` (shown as `shown`) to the wanted writability. Returns whether it
/// changed anything. Missing paths, symlinks (which point into /sysroot, no mount
/// there) and non-mount points (EINVAL) are left alone.
fn remount(path: &Path, shown: &str, writable: bool) -> Result<bool, RemountError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Ok(false),
        Ok(_) => {}
        Err(_) => return Ok(false),
    }
    let Ok(readonly) = is_readonly(path) else {
        return Ok(false);
    };
    if readonly != writable {
        return Ok(false);
    }
    let mut flags = MountFlags::SILENT;
    if !writable {
        flags |= MountFlags::RDONLY;
    }
    match rustix::mount::mount_remount(path, flags, "") {
        Ok(()) => Ok(true),
        Err(Errno::INVAL) => Ok(false),
        Err(e) => Err(RemountError(format!(
            "failed to remount({}) {shown}: {e}",
            if writable { "rw" } else { "ro" }
        ))),
    }
}
