//! `ostree-composefs mkcomposefs --repo REPO REV OUT [--no-verity]` (the `--repo` form of
//! [`super::mkcomposefs`]): the `.ostree.cfs` image of a commit, byte-identical to `ostree checkout --composefs`, and its fs-verity
//! digest on standard output.

use anyhow::{Context, Result};
use ostree_boot::ostree::checkout::{Verity, commit_image};
use ostree_boot::ostree::objects::Checksum;
use ostree_boot::ostree::repo::Repo;
use std::path::Path;

/// The image of `commit` and its fs-verity digest. With verity, a digest already in the
/// commit's metadata must match, as ostree checks at deploy.
pub fn build(repo: &Repo, commit: &Checksum, verity: Verity) -> Result<(Vec<u8>, [u8; 32])> {
    let c = hex::encode(commit);
    let (_, obj) = repo.load_commit(commit)?;
    let i = commit_image(repo, commit, &obj, verity).with_context(|| format!("commit {c}"))?;
    Ok((i.bytes, i.digest))
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
