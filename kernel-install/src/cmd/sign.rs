//! `ostree-composefs sign --repo REPO REV --secret FILE`: appends an Ed25519 signature of
//! the raw `.commit` bytes to the commit's detached metadata (`ostree.sign.ed25519`),
//! keeping every other key and signature. A commit that claims an
//! `ostree.composefs.digest.v0` other than its tree's is refused, as is a secret key
//! file that is not private (see `SecretKey::load_file`).

use crate::deploy::seal;
use anyhow::Result;
use ostree_boot::ostree::objects::VarDict;
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::{SecretKey, add_signature};
use std::path::PathBuf;

/// Signs a commit with an Ed25519 secret key.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ostree repository.
    #[arg(long, value_name = "REPO")]
    pub repo: PathBuf,
    /// The secret key file: one base64 line, as `ostree sign` reads it.
    #[arg(long, value_name = "FILE")]
    pub secret: PathBuf,
    /// A ref, `remote:ref` or commit checksum.
    pub rev: String,
}

pub fn run(a: Args) -> Result<()> {
    let key = SecretKey::load_file(&a.secret)?;
    let r = Repo::open(&a.repo)?;
    let c = r.resolve_rev(&a.rev)?;
    let (bytes, commit) = r.load_commit(&c)?;
    // A signature vouches for the image digest the commit claims: check the claim
    // against the tree first. A commit without a claim binds no image; it is signed as
    // `ostree sign` would.
    if commit.composefs_digest().is_some() {
        seal::checked_composefs_digest(&r, &c)?;
    }
    let mut meta = r
        .load_commitmeta(&c)?
        .map(|(_, m)| m)
        .unwrap_or_else(VarDict::new);
    add_signature(&mut meta, &key.sign(&bytes));
    r.write_commitmeta(&c, &meta)?;
    Ok(())
}
