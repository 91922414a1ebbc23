//! `ostree-composefs mkcomposefs --repo REPO REV OUT [--no-verity]` (the `--repo` form of
//! [`super::mkcomposefs`]): the `.ostree.cfs` image of a commit, byte-identical to `ostree checkout --composefs`, and its fs-verity
//! digest on standard output.

use anyhow::{Context, Result, bail};
use ostree_boot::fsverity::digest;
use ostree_boot::ostree::checkout::{Verity, commit_tree, write_image};
use ostree_boot::ostree::objects::Checksum;
use ostree_boot::ostree::repo::Repo;
use std::path::Path;

/// The image of `commit` and its fs-verity digest. With verity, a digest already in the
/// commit's metadata must match, as ostree checks at deploy.
pub fn build(repo: &Repo, commit: &Checksum, verity: Verity) -> Result<(Vec<u8>, [u8; 32])> {
    let c = hex::encode(commit);
    let tree = commit_tree(repo, commit, verity).with_context(|| format!("commit {c}"))?;
    let image =
        write_image(&tree).map_err(|e| anyhow::anyhow!("commit {c}: writing the image: {e}"))?;
    let d = digest::digest(&image);
    if verity == Verity::Yes {
        let (_, commit_obj) = repo.load_commit(commit)?;
        match commit_obj.composefs_digest() {
            Some(Ok(expected)) if expected != d => bail!(
                "commit {c}: Generated composefs image digest ({}) doesn't match expected digest ({})",
                hex::encode(d),
                hex::encode(expected)
            ),
            Some(Err(len)) => {
                bail!(
                    "commit {c}: Expected composefs fs-verity in metadata has the wrong size ({len} bytes)"
                )
            }
            _ => {}
        }
    }
    Ok((image, d))
}

pub fn run(repo: &Path, rev: &str, output: &Path, no_verity: bool) -> Result<()> {
    let r = Repo::open(repo)?;
    let commit = r.resolve_rev(rev)?;
    let verity = if no_verity { Verity::No } else { Verity::Yes };
    let (image, d) = build(&r, &commit, verity)?;
    Repo::write_atomic(output, &image, 0o644)?;
    println!("{}", hex::encode(d));
    Ok(())
}
