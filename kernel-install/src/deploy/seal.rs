//! Binding a commit to its composefs image and signing it: the commit gets
//! `ostree.composefs.digest.v0` (as `ostree commit --generate-composefs-metadata`
//! computes it: verity YES over the commit root), and an Ed25519 signature over its
//! exact bytes goes into the detached metadata under `ostree.sign.ed25519`.
//!
//! Only what was computed here is signed: the digest is always recomputed from the
//! commit's tree, and a commit that already claims a different one is refused (whoever
//! can write to the repo must not get a signature over an image digest of their choice).

use anyhow::{Context, Result, bail};
use ostree_boot::ostree::checkout::{ImageError, Verity, commit_image};
use ostree_boot::ostree::objects::{COMPOSEFS_DIGEST_KEY, Checksum, Value};
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::{self, SecretKey};

/// The commit's composefs digest, recomputed from its tree, after checking that the
/// digest the commit claims (if any) is that one.
pub fn checked_composefs_digest(repo: &Repo, csum: &Checksum) -> Result<[u8; 32]> {
    let (_, commit) = repo.load_commit(csum)?;
    match commit_image(repo, csum, &commit, Verity::Yes) {
        Ok(i) => Ok(i.digest),
        Err(ImageError::Mismatch { computed, claimed }) => bail!(
            "commit {} claims {COMPOSEFS_DIGEST_KEY} {}, but its tree gives {}: refusing to sign a digest that was not computed here",
            hex::encode(csum),
            hex::encode(claimed),
            hex::encode(computed)
        ),
        Err(ImageError::ClaimSize(len)) => bail!(
            "commit {} has a {COMPOSEFS_DIGEST_KEY} of {len} bytes (expected 32): refusing to sign it",
            hex::encode(csum)
        ),
        Err(e) => Err(e.into()),
    }
}

/// A commit with the same content as `csum` that carries its composefs digest, as
/// computed here: `csum` itself when it already claims that digest and no `extra`
/// metadata is asked for, else a new commit object (same parent, tree, subject, body
/// and timestamp, plus `extra`); refs are not moved. A commit claiming another digest
/// is an error.
pub fn with_composefs_digest(
    repo: &Repo,
    csum: &Checksum,
    extra: Option<(&str, Value)>,
) -> Result<Checksum> {
    let d = checked_composefs_digest(repo, csum)?;
    let (_, mut commit) = repo.load_commit(csum)?;
    if commit.composefs_digest().is_some() && extra.is_none() {
        return Ok(*csum);
    }
    commit
        .metadata
        .insert(COMPOSEFS_DIGEST_KEY, Value::bytes(&d));
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
