//! `ostree-composefs dump IMAGE`: prints an image as a composefs dump file.

use anyhow::{Context, Result};
use ostree_boot::composefs::{dump, reader};
use std::io::Write;
use std::path::PathBuf;

/// Prints the composefs dump of an image.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The EROFS composefs image.
    image: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let bytes =
        std::fs::read(&a.image).with_context(|| format!("reading {}", a.image.display()))?;
    let tree = reader::read_image(&bytes).with_context(|| a.image.display().to_string())?;
    let text = dump::write(&tree);
    let mut out = std::io::stdout().lock();
    out.write_all(&text)
        .and_then(|_| out.flush())
        .context("writing to standard output")?;
    Ok(())
}
