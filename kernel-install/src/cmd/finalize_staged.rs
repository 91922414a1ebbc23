//! `ostree-composefs finalize-staged`: the `ExecStop` of
//! ostree-composefs-finalize-staged.service, as `ostree admin finalize-staged`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ostree_boot::layout::EntryNaming;

use crate::deploy::staged::{self, Finalized};

/// Finalize the staged deployment (/etc merge from the running deployment, boot
/// entries, atomic swap); run at shutdown by ostree-composefs-finalize-staged.service.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The physical root holding ostree/ and boot/.
    #[arg(long, default_value = "/")]
    sysroot: PathBuf,
    /// Keep /boot and the sysroot open until SIGTERM (the -hold unit), so that an
    /// automounted /boot stays mounted until finalization.
    #[arg(long)]
    hold: bool,
}

/// Entries named as the current ones: `ostree-N.conf` (ostree >= 2024.5) or
/// `ostree-N-STATEROOT.conf`.
fn naming(sysroot: &Path) -> EntryNaming {
    let Ok(rd) = std::fs::read_dir(sysroot.join("boot/loader/entries")) else {
        return EntryNaming::V1;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(mid) = n
            .strip_prefix("ostree-")
            .and_then(|r| r.strip_suffix(".conf"))
            && !mid.is_empty()
            && mid.bytes().all(|b| b.is_ascii_digit())
        {
            return EntryNaming::V2;
        }
    }
    EntryNaming::V1
}

pub fn run(a: Args) -> Result<i32> {
    if !Path::new("/run/ostree-booted").exists() {
        // As ostree: nothing to do outside a booted ostree system.
        return Ok(0);
    }
    if a.hold {
        let boot = a.sysroot.join("boot");
        let _sysroot = std::fs::File::open(&a.sysroot)
            .with_context(|| format!("opening {}", a.sysroot.display()))?;
        let _boot =
            std::fs::File::open(&boot).with_context(|| format!("opening {}", boot.display()))?;
        // SIGTERM from systemd at shutdown ends the process (after the finalize unit,
        // ordered after this one, has stopped).
        loop {
            std::thread::park();
        }
    }
    match staged::finalize(&a.sysroot, naming(&a.sysroot))? {
        Finalized::Done(d) => println!("Finalized {d}"),
        Finalized::NotBooted | Finalized::NothingStaged | Finalized::Locked => {}
    }
    Ok(0)
}
