//! `ostree-composefs verify --repo REPO REV --public FILE`: succeeds only when a key of
//! FILE made a valid signature of the commit, checked as ostree-prepare-root checks it
//! (libsodium's strictness, keys outer and signatures inner).

use anyhow::{Context, Result, bail};
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::{parse_public_keys, verify_commit};
use std::path::PathBuf;

/// Verifies a commit's Ed25519 signatures against a public key file.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ostree repository.
    #[arg(long, value_name = "REPO")]
    pub repo: PathBuf,
    /// Public keys, one base64 line each.
    #[arg(long, value_name = "FILE")]
    pub public: PathBuf,
    /// A ref, `remote:ref` or commit checksum.
    pub rev: String,
}

pub fn run(a: Args) -> Result<()> {
    let text = std::fs::read_to_string(&a.public)
        .with_context(|| format!("reading {}", a.public.display()))?;
    let keys = parse_public_keys(&text).with_context(|| format!("{}", a.public.display()))?;
    let r = Repo::open(&a.repo)?;
    let c = r.resolve_rev(&a.rev)?;
    let csum = hex::encode(c);
    let (bytes, _) = r.load_commit(&c)?;
    let Some((_, meta)) = r.load_commitmeta(&c)? else {
        bail!("commit {csum}: no detached metadata, so no signatures");
    };
    let i = verify_commit(&bytes, &meta, &keys).with_context(|| format!("commit {csum}"))?;
    println!(
        "commit {csum}: valid signature by key {} ({}) of {}",
        i + 1,
        keys[i].to_base64(),
        a.public.display()
    );
    Ok(())
}
