//! `ostree-composefs undeploy`: remove a deployment by index, as `ostree admin undeploy`.

use std::path::PathBuf;

use anyhow::Result;
use ostree_boot::layout::EntryNaming;

/// Remove deployment INDEX (0 is the default) from the boot configuration and disk.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "/")]
    sysroot: PathBuf,
    /// Entry file names of ostree >= 2024.5 (ostree-N.conf).
    #[arg(long)]
    bootloader_naming_2: bool,
    index: usize,
}

pub fn run(a: Args) -> Result<i32> {
    let naming = if a.bootloader_naming_2 {
        EntryNaming::V2
    } else {
        EntryNaming::V1
    };
    let d = crate::deploy::undeploy(&a.sysroot, a.index, naming)?;
    println!("Deleted deployment {}/{}", d.stateroot, d.name());
    Ok(0)
}
