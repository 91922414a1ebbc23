//! `ostree-composefs mkcomposefs`: writes an EROFS composefs image, byte-identical to
//! upstream `mkcomposefs`, from a dump file (`--from-file`) or from a directory, and
//! prints the image's fs-verity digest.

use anyhow::{Context, Result};
use ostree_boot::composefs::{dump, fromdir, writer};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Writes a composefs image from a dump file or a directory and prints its fs-verity
/// digest.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// SOURCE is a composefs dump file (`-` for standard input), not a directory.
    #[arg(long)]
    from_file: bool,
    /// Lowest format version to write (default 0).
    #[arg(long, value_name = "N")]
    min_version: Option<u32>,
    /// Highest format version to write, used only when the tree needs it (default 1).
    #[arg(long, value_name = "N")]
    max_version: Option<u32>,
    /// Parse the dump file as upstream does with CFS_PARSE_STRICT=1.
    #[arg(long, requires = "from_file")]
    strict: bool,
    /// Threads computing digests in directory mode (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// SOURCE is a commit (ref, remote:ref or checksum) of this ostree repository: the
    /// image is `.ostree.cfs` as `ostree checkout --composefs` writes it.
    #[arg(long, value_name = "REPO", conflicts_with_all = ["from_file", "min_version", "max_version", "threads"])]
    repo: Option<PathBuf>,
    /// With --repo: record no fs-verity digests (`--composefs-noverity`).
    #[arg(long, requires = "repo")]
    no_verity: bool,
    /// A dump file (with --from-file), a directory, or a commit (with --repo).
    source: PathBuf,
    /// The image to write (replaced atomically).
    output: PathBuf,
}

/// Upstream's version options: with neither given 0..1, otherwise an unset bound is 0
/// (and a maximum below the minimum is raised to it).
fn options(a: &Args) -> writer::WriteOptions {
    if a.min_version.is_none() && a.max_version.is_none() {
        return writer::WriteOptions::default();
    }
    writer::WriteOptions {
        min_version: a.min_version.unwrap_or(0),
        max_version: a.max_version.unwrap_or(0),
    }
}

pub fn run(a: Args) -> Result<()> {
    if let Some(repo) = &a.repo {
        let rev = a.source.to_str().context("the commit name is not UTF-8")?;
        return super::repo_image::run(repo, rev, &a.output, a.no_verity);
    }
    let tree = if a.from_file {
        let (text, name) = if a.source.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .context("reading the dump from standard input")?;
            (v, "<stdin>".to_string())
        } else {
            let v = std::fs::read(&a.source)
                .with_context(|| format!("reading {}", a.source.display()))?;
            (v, a.source.display().to_string())
        };
        dump::parse(&text, a.strict).map_err(|e| anyhow::anyhow!("{name}:{}: {}", e.line, e.msg))?
    } else {
        let opts = fromdir::FromDirOptions {
            threads: a.threads.unwrap_or(0),
            ..Default::default()
        };
        fromdir::tree_from_dir(&a.source, &opts)?
    };
    let image = writer::write_image(&tree, &options(&a))
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.source.display()))?;
    write_atomic(&a.output, &image)?;
    let digest = ostree_boot::fsverity::digest::digest(&image);
    println!("{}", hex::encode(digest));
    Ok(())
}

/// [`ostree_boot::fsutil::write_atomic`] with mode 0644.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    ostree_boot::fsutil::write_atomic(path, data, 0o644)
        .with_context(|| format!("writing {}", path.display()))
}
