//! `ostree-composefs sign --repo REPO REV --secret FILE`: appends an Ed25519 signature of
//! the raw `.commit` bytes to the commit's detached metadata (`ostree.sign.ed25519`),
//! keeping every other key and signature.

use anyhow::{Context, Result};
use ostree_boot::ostree::objects::VarDict;
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::{SecretKey, add_signature};
use std::path::PathBuf;
use zeroize::Zeroizing;

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
    let text = Zeroizing::new(
        std::fs::read_to_string(&a.secret)
            .with_context(|| format!("reading {}", a.secret.display()))?,
    );
    let key = SecretKey::from_base64(&text).with_context(|| format!("{}", a.secret.display()))?;
    let r = Repo::open(&a.repo)?;
    let c = r.resolve_rev(&a.rev)?;
    let (bytes, _) = r.load_commit(&c)?;
    let mut meta = r
        .load_commitmeta(&c)?
        .map(|(_, m)| m)
        .unwrap_or_else(VarDict::new);
    add_signature(&mut meta, &key.sign(&bytes));
    r.write_commitmeta(&c, &meta)?;
    Ok(())
}
