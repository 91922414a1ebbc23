//! `ostree-composefs commit-metadata --repo REPO REV`: rewrites a commit with
//! `ostree.composefs.digest.v0` in its metadata, as `ostree commit
//! --generate-composefs-metadata` would have written it.
//!
//! The new commit keeps the tree, parent, subject, body, timestamp and every other
//! metadata key, so it differs from the old one only by the digest. Detached metadata
//! is not carried over: its signatures covered the old commit's bytes.

use anyhow::{Context, Result};
use ostree_boot::ostree::checkout::Verity;
use ostree_boot::ostree::objects::{COMPOSEFS_DIGEST_KEY, Value};
use ostree_boot::ostree::repo::Repo;
use std::path::PathBuf;

/// Adds the composefs digest to a commit's metadata (a new commit), moves the ref.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ostree repository.
    #[arg(long, value_name = "REPO")]
    pub repo: PathBuf,
    /// A ref (moved to the new commit), `remote:ref`, or a commit checksum.
    pub rev: String,
}

pub fn run(a: Args) -> Result<()> {
    let r = Repo::open(&a.repo)?;
    let old = r.resolve_rev(&a.rev)?;
    let (_, mut commit) = r.load_commit(&old)?;
    // The digest covers the commit's own tree, whatever digest it may already record.
    commit.metadata.remove(COMPOSEFS_DIGEST_KEY);
    let tree = ostree_boot::ostree::checkout::commit_tree(&r, &old, Verity::Yes)
        .with_context(|| format!("commit {}", hex::encode(old)))?;
    let image = ostree_boot::ostree::checkout::write_image(&tree)
        .map_err(|e| anyhow::anyhow!("commit {}: writing the image: {e}", hex::encode(old)))?;
    let digest = ostree_boot::fsverity::digest::digest(&image);
    commit
        .metadata
        .insert(COMPOSEFS_DIGEST_KEY, Value::bytes(&digest));
    let new = r.write_commit(&commit)?;
    if r.is_ref(&a.rev) {
        r.set_ref(&a.rev, &new)
            .with_context(|| format!("moving ref {}", a.rev))?;
    }
    println!("{}", hex::encode(new));
    Ok(())
}
