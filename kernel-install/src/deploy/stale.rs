//! Leftovers of a run killed in the middle of a write: `.NAME.tmp-HEX` (the temporary
//! file of an atomic write) and `.NAME.tmp` (a kernel being copied into /boot). Each
//! change of the boot configuration removes them, under the sysroot lock, from the
//! directories this tool writes into; nothing else in those directories is touched.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use ostree_boot::layout;

use super::fsutil::is_temp_name;

/// How old a temporary file in the repository must be to count as abandoned: sealing
/// writes commit objects without the sysroot lock, so a young one may still be in use.
pub const REPO_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Removes the regular files and symlinks of `dir` that `stale` names and that are at
/// least `min_age` old. A missing directory has nothing stale.
fn sweep(dir: &Path, stale: impl Fn(&str) -> bool, min_age: Option<Duration>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let now = SystemTime::now();
    for ent in rd {
        let ent = ent.with_context(|| format!("reading {}", dir.display()))?;
        let Some(name) = ent.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !stale(&name) {
            continue;
        }
        let md = ent
            .metadata()
            .with_context(|| format!("stat {}", ent.path().display()))?;
        if md.is_dir() {
            continue;
        }
        if let Some(age) = min_age {
            let mtime = md.modified().unwrap_or(now);
            if now.duration_since(mtime).unwrap_or_default() < age {
                continue;
            }
        }
        match fs::remove_file(ent.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing {}", ent.path().display()));
            }
        }
    }
    Ok(())
}

fn copy_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes what a killed run left in the stateroots' `var` (the selabel stamp), the
/// kernel directories of /boot, the current entries and the repository's objects and
/// refs.
pub fn remove_stale_temps(sysroot: &Path) -> Result<()> {
    for sr in layout::list_stateroots(sysroot)? {
        let var = sysroot.join("ostree/deploy").join(&sr).join("var");
        // /var belongs to the admin: only the stamp this tool writes there.
        sweep(
            &var,
            |n| n.starts_with(".ostree-selabeled.tmp-") && is_temp_name(n),
            None,
        )?;
    }
    let kdirs = sysroot.join("boot/ostree");
    if let Ok(rd) = fs::read_dir(&kdirs) {
        for ent in rd {
            let ent = ent.with_context(|| format!("reading {}", kdirs.display()))?;
            if ent.file_type().is_ok_and(|t| t.is_dir()) {
                sweep(&ent.path(), |n| is_temp_name(n) || copy_temp(n), None)?;
            }
        }
    }
    sweep(&sysroot.join("boot/loader/entries"), is_temp_name, None)?;
    let objects = sysroot.join("ostree/repo/objects");
    if let Ok(rd) = fs::read_dir(&objects) {
        for ent in rd {
            let ent = ent.with_context(|| format!("reading {}", objects.display()))?;
            let name = ent.file_name();
            let is_fanout = name.len() == 2
                && name
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
            if is_fanout && ent.file_type().is_ok_and(|t| t.is_dir()) {
                sweep(&ent.path(), is_temp_name, Some(REPO_TEMP_AGE))?;
            }
        }
    }
    sweep(
        &sysroot.join("ostree/repo/refs/heads"),
        is_temp_name,
        Some(REPO_TEMP_AGE),
    )?;
    Ok(())
}
