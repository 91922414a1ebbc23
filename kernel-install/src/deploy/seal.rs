//! Binding a commit to its composefs image and signing it: the commit gets
//! `ostree.composefs.digest.v0` (as `ostree commit --generate-composefs-metadata`
//! computes it: verity YES over the commit root), and an Ed25519 signature over its
//! exact bytes goes into the detached metadata under `ostree.sign.ed25519`.

use anyhow::{Context, Result};
use ostree_boot::fsverity::digest;
use ostree_boot::ostree::checkout::{Verity, commit_tree, write_image};
use ostree_boot::ostree::objects::{COMPOSEFS_DIGEST_KEY, Checksum, Value};
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::{self, SecretKey};

/// The fs-verity digest of the commit's composefs image.
pub fn composefs_digest(repo: &Repo, csum: &Checksum) -> Result<[u8; 32]> {
    let tree = commit_tree(repo, csum, Verity::Yes).context("building the composefs tree")?;
    let image = write_image(&tree).context("writing the composefs image")?;
    Ok(digest::digest(&image))
}

/// A commit with the same content as `csum` that carries its composefs digest: `csum`
/// itself when it already has one and no `extra` metadata is asked for, else a new
/// commit object (same parent, tree, subject, body and timestamp, plus `extra`); refs
/// are not moved.
pub fn with_composefs_digest(
    repo: &Repo,
    csum: &Checksum,
    extra: Option<(&str, Value)>,
) -> Result<Checksum> {
    let (_, mut commit) = repo.load_commit(csum)?;
    if commit.composefs_digest().is_some() && extra.is_none() {
        return Ok(*csum);
    }
    if commit.composefs_digest().is_none() {
        let d = composefs_digest(repo, csum)?;
        commit
            .metadata
            .insert(COMPOSEFS_DIGEST_KEY, Value::bytes(&d));
    }
    if let Some((k, v)) = extra {
        commit.metadata.insert(k, v);
    }
    repo.write_commit(&commit)
        .context("writing the commit with its composefs digest")
}

/// Adds a signature by `key` to the commit's detached metadata.
pub fn sign_commit(repo: &Repo, csum: &Checksum, key: &SecretKey) -> Result<()> {
    let (bytes, _) = repo.load_commit(csum)?;
    let mut meta = repo
        .load_commitmeta(csum)?
        .map(|(_, m)| m)
        .unwrap_or_default();
    sign::add_signature(&mut meta, &key.sign(&bytes));
    repo.write_commitmeta(csum, &meta)
        .context("writing the signature")
}
