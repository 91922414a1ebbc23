//! Making a read-only sysroot or /boot writable for this process only, in a private
//! mount namespace, as libostree does (`_ostree_sysroot_ensure_writable`, and the
//! remount of a read-only /boot in `ostree-sysroot-deploy.c`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

/// The mount point holding `path` (the longest mount point in /proc/self/mountinfo
/// that is a prefix of it), with mountinfo's octal escapes undone.
fn mount_point_of(path: &Path) -> Result<PathBuf> {
    let info =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let unescape = |s: &str| -> String {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\'
                && i + 3 < b.len()
                && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            {
                out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let mut best = PathBuf::from("/");
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape(mp));
        if path.starts_with(&mp) && mp.components().count() > best.components().count() {
            best = mp;
        }
    }
    Ok(best)
}

/// Enters a private mount namespace, once per process.
// unshare(2) is unsafe in rustix (CLONE_FILES could split the fd table under threads).
#[allow(unsafe_code)]
fn private_namespace() -> Result<()> {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.load(Ordering::SeqCst) {
        return Ok(());
    }
    // SAFETY: only a new mount namespace is asked for (no CLONE_FILES), so no file
    // descriptor table is split between threads; this runs before any thread is made.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .context("a private mount namespace to make the sysroot writable")?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    )
    .context("making / a downstream mount in the private namespace")?;
    DONE.store(true, Ordering::SeqCst);
    Ok(())
}

/// Makes `dir` writable in this process's private mount namespace if it is on a
/// read-only mount; any other reason it is not writable is an error.
pub fn ensure_writable(dir: &Path) -> Result<()> {
    match rustix::fs::access(dir, rustix::fs::Access::WRITE_OK) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::ROFS) => {}
        Err(e) => return Err(e).with_context(|| format!("{} is not writable", dir.display())),
    }
    let real = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let mp = mount_point_of(&real)?;
    private_namespace()?;
    // Superblock-level read-only (a plain remount) or mount-level (a bind remount).
    // The superblock change is shared, but every other namespace's mount keeps its
    // own read-only flag, which `mount -o ro` sets as well.
    let _ = rustix::mount::mount_remount(&mp, rustix::mount::MountFlags::RELATIME, "");
    if rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_err() {
        rustix::mount::mount_remount(&mp, rustix::mount::MountFlags::BIND, "")
            .with_context(|| format!("remounting {} read-write", mp.display()))?;
    }
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).with_context(|| {
        format!(
            "{} is still read-only after remounting {}",
            dir.display(),
            mp.display()
        )
    })?;
    Ok(())
}
