//! `ostree-composefs keygen --secret FILE --public FILE`: a fresh Ed25519 key pair in
//! `ostree sign`'s formats (one base64 line each; the secret is seed ‖ public key).

use anyhow::{Context, Result};
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::SecretKey;
use std::path::PathBuf;

/// Generates an Ed25519 key pair.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the secret key (mode 0600, replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub secret: PathBuf,
    /// Where to write the public key (mode 0644, replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub public: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let key = SecretKey::generate()?;
    // Built in place so no unzeroized copy of the key is left behind by a reallocation.
    let mut line = zeroize::Zeroizing::new(String::with_capacity(90));
    line.push_str(&key.to_base64());
    line.push('\n');
    Repo::write_atomic(&a.secret, line.as_bytes(), 0o600)
        .with_context(|| format!("writing secret key {}", a.secret.display()))?;
    let public = format!("{}\n", key.public_key().to_base64());
    Repo::write_atomic(&a.public, public.as_bytes(), 0o644)
        .with_context(|| format!("writing public key {}", a.public.display()))?;
    Ok(())
}
