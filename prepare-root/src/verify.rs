//! Signed mode (ostree.md 1.7): the deployed commit, or its bootc base, must carry a
//! valid Ed25519 signature by one of the keys in `composefs.keypath`; its
//! `ostree.composefs.digest.v0` is then the fs-verity digest the image must have.

use std::path::{Path, PathBuf};

use ostree_boot::fsutil::{ReadKind, read_regular};
use ostree_boot::ostree::objects::parse_checksum;
use ostree_boot::ostree::repo::{Repo, RepoError};
use ostree_boot::sign::{self, SignError};

/// A commit that passed the signature check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The key file that held the key that verified the signature.
    pub keypath: PathBuf,
    /// 0-based index of that key in the file.
    pub key_index: usize,
    /// The commit whose signature and digest were used (the deployed one or its base).
    pub commit: String,
    /// The bootc base commit was used.
    pub used_base: bool,
    /// `ostree.composefs.digest.v0` of that commit.
    pub digest: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("Reading public key file '{path}': {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("public key file '{path}': {source}")]
    Keys { path: PathBuf, source: SignError },
    #[error("{0:?} is not a commit checksum (64 hex digits)")]
    BadDeployName(String),
    #[error("Error loading signatures from repo: {0}")]
    Repo(#[from] RepoError),
    #[error("Checking commit signature: {source} (commit {commit}, keys from '{keypath}')")]
    Signature {
        commit: String,
        keypath: PathBuf,
        source: SignError,
    },
    #[error("Signature validation requested, but no valid digest in commit {commit}: {reason}")]
    NoDigest { commit: String, reason: String },
}

/// Reads and parses the public keys at `keypath` (absolute, in the initrd), relative to
/// `config_root` (`/` in the initrd, another root for `--check`).
pub fn load_keys(config_root: &Path, keypath: &Path) -> Result<Vec<sign::PublicKey>, VerifyError> {
    let rel = keypath.strip_prefix("/").unwrap_or(keypath);
    let path = config_root.join(rel);
    let text = read_regular(&path, ReadKind::Key).map_err(|source| VerifyError::KeyFile {
        path: keypath.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    sign::parse_public_keys(&text).map_err(|source| VerifyError::Keys {
        path: keypath.to_path_buf(),
        source,
    })
}

/// Checks the signature of commit `checksum` (the deployment's) in the repository at
/// `repo_path`, with ostree's commit selection (bootc base fallback) and key loop.
pub fn verify_commit(
    repo_path: &Path,
    checksum: &str,
    keys: &[sign::PublicKey],
    keypath: &Path,
) -> Result<Verified, VerifyError> {
    let csum =
        parse_checksum(checksum).map_err(|_| VerifyError::BadDeployName(checksum.to_string()))?;
    let repo = Repo::open(repo_path)?;
    let loaded = sign::load_commit_for_deploy(&repo, &csum)?;
    let deploy_path = format!("{}: commit {checksum}", repo_path.display());
    let selected = loaded
        .select(&deploy_path)
        .map_err(|source| VerifyError::Signature {
            commit: hex::encode(csum),
            keypath: keypath.to_path_buf(),
            source,
        })?;
    let commit_hex = hex::encode(selected.commit.checksum);
    if selected.is_base {
        log::info!("composefs+ostree: Validating composefs using bootc base commit {commit_hex}");
    }
    let key_index = sign::verify_commit(&selected.commit.bytes, selected.commitmeta, keys)
        .map_err(|source| VerifyError::Signature {
            commit: commit_hex.clone(),
            keypath: keypath.to_path_buf(),
            source,
        })?;
    let digest = match selected.commit.commit.composefs_digest() {
        Some(Ok(d)) => d,
        Some(Err(len)) => {
            return Err(VerifyError::NoDigest {
                commit: commit_hex,
                reason: format!("ostree.composefs.digest.v0 is {len} bytes, expected 32"),
            });
        }
        None => {
            return Err(VerifyError::NoDigest {
                commit: commit_hex,
                reason: "no ostree.composefs.digest.v0 (an ay of 32 bytes) in its metadata".into(),
            });
        }
    };
    Ok(Verified {
        keypath: keypath.to_path_buf(),
        key_index,
        commit: commit_hex,
        used_base: selected.is_base,
        digest,
    })
}
