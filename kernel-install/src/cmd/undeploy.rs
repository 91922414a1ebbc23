//! `ostree-composefs undeploy`: remove a deployment by index, as `ostree admin undeploy`.

use std::path::PathBuf;

use anyhow::Result;

/// Remove deployment INDEX (0 is the default) from the boot configuration and disk.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "/")]
    sysroot: PathBuf,
    /// Entry file names of ostree <= 2024.4 (ostree-N-STATEROOT.conf) for the rewritten
    /// entries (also chosen by OSTREE_SYSROOT_OPTS=bootloader-naming-1).
    #[arg(long, conflicts_with = "bootloader_naming_2")]
    bootloader_naming_1: bool,
    /// ostree-N.conf entry names: the default, kept for scripts that ask for it.
    #[arg(long, hide = true)]
    bootloader_naming_2: bool,
    /// The vfat partition mirrored for systemd-boot (see deploy --vfat-boot): its
    /// entries and kernels follow the removal.
    #[arg(long, value_name = "PATH")]
    vfat_boot: Option<PathBuf>,
    index: usize,
}

pub fn run(a: Args) -> Result<i32> {
    let naming = super::deploy::entry_naming(a.bootloader_naming_1, a.bootloader_naming_2);
    let mirror = super::deploy::vfat_mirror(a.vfat_boot.as_deref(), &a.sysroot)?;
    let d = crate::deploy::undeploy(&a.sysroot, a.index, naming, mirror.as_ref())?;
    println!("Deleted deployment {}/{}", d.stateroot, d.name());
    Ok(0)
}
