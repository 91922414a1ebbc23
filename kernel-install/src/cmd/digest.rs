//! `ostree-composefs digest FILE...`: the fs-verity digest of each file, computed in
//! userspace on all cores, printed like `fsverity digest` does.

use anyhow::{Result, bail};
use ostree_boot::fsverity::digest::digest_files_parallel;
use std::path::PathBuf;

/// Prints `sha256:<fs-verity digest> FILE` for each file.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files to digest.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let mut failed = 0;
    for (path, r) in a.files.iter().zip(digest_files_parallel(&a.files)) {
        match r {
            Ok(d) => println!("sha256:{} {}", hex::encode(d), path.display()),
            Err(e) => {
                eprintln!("ostree-composefs: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files could not be digested", a.files.len());
    }
    Ok(())
}
