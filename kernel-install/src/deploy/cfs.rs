//! `.ostree.cfs` of a new deployment and fs-verity on what it refers to.
//!
//! Upstream (ostree-repo-checkout.c, `checkout_deployment_tree`) always writes the
//! image, with verity YES when the deployment's prepare-root.conf requires verity and
//! MAYBE otherwise, and enables fs-verity on the image only when the repo config asks.
//! We also honour the prepare-root.conf request for fs-verity (ostree#3202), build with
//! YES whenever the commit carries `ostree.composefs.digest.v0` (that digest is computed
//! with YES, so only a YES image can match it) and refuse a mismatch.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ostree_boot::beneath::{Dir, Resolve};
use ostree_boot::config::{CONFIG_PATHS, ComposefsMode, PrepareRootConfig};
use ostree_boot::fsverity::ioctl;
use ostree_boot::keyfile::KeyFile;
use ostree_boot::ostree::checkout::{self, Verity};
use ostree_boot::ostree::objects::{Checksum, Commit};
use ostree_boot::ostree::repo::{Repo, WalkEntry};

use super::fsutil;

/// ostree's tristate words.
fn tristate(v: &str) -> Option<ComposefsMode> {
    ComposefsMode::parse_tristate(v.trim())
}

/// The largest prepare-root.conf read from a tree.
const MAX_TREE_CONFIG: u64 = 1 << 20;

/// The deployment's prepare-root.conf, read as the booted system would see it: links
/// resolved inside the tree, never on the host; only a regular file of bounded size
/// (a link to a FIFO or `/dev/zero` is an error, not a hang).
fn tree_config(tree: &Path) -> Result<PrepareRootConfig> {
    let root = Dir::open(tree)?;
    let mut kf = None;
    for rel in [CONFIG_PATHS[1], CONFIG_PATHS[0]] {
        match root.read_file(rel, Resolve::InRoot, MAX_TREE_CONFIG) {
            Ok(bytes) => {
                let path = tree.join(rel);
                let text = String::from_utf8(bytes)
                    .with_context(|| format!("{}: not UTF-8", path.display()))?;
                kf = Some(KeyFile::parse(&text, &path)?);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(PrepareRootConfig::from_keyfile(kf.as_ref())?)
}

/// What fs-verity the deployment wants, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityPolicy {
    /// Enable fs-verity on the objects and the image where the filesystem can.
    pub wanted: bool,
    /// Fail when the filesystem cannot; the reason names the setting.
    pub required: Option<String>,
    /// How the image records object digests.
    pub image: Verity,
}

/// The policy from the repo config (`[ex-integrity] composefs`/`fsverity`, legacy
/// `[ex-fsverity]`), the deployment's prepare-root.conf and the commit metadata.
pub fn policy(repo: &Repo, tree: &Path, has_digest: bool) -> Result<VerityPolicy> {
    let cfg = tree_config(tree).context("reading the deployment's prepare-root.conf")?;
    let parse = |group: &str, key: &str| -> Result<Option<ComposefsMode>> {
        match repo.config_value(group, key) {
            None => Ok(None),
            Some(v) => tristate(&v).map(Some).with_context(|| {
                format!(
                    "{}: [{group}] {key}={v:?}: expected yes, no, maybe, true, false, 1 or 0",
                    repo.path().join("config").display()
                )
            }),
        }
    };
    let composefs = parse("ex-integrity", "composefs")?.unwrap_or(ComposefsMode::No);
    let mut fsverity =
        parse("ex-integrity", "fsverity")?.unwrap_or(if composefs == ComposefsMode::No {
            ComposefsMode::No
        } else {
            ComposefsMode::Maybe
        });
    if fsverity == ComposefsMode::No {
        if repo.config_value("ex-fsverity", "required").as_deref() == Some("true") {
            fsverity = ComposefsMode::Yes;
        } else if repo.config_value("ex-fsverity", "opportunistic").as_deref() == Some("true") {
            fsverity = ComposefsMode::Maybe;
        }
    }
    let conf_requires = matches!(cfg.composefs, ComposefsMode::Verity | ComposefsMode::Signed);
    let required = if conf_requires {
        Some(format!(
            "composefs.enabled={} in {}",
            cfg.composefs,
            cfg.source
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ))
    } else if fsverity == ComposefsMode::Yes {
        Some("[ex-integrity] fsverity in the repo config".into())
    } else {
        None
    };
    let wanted = required.is_some() || fsverity != ComposefsMode::No;
    let image = if conf_requires
        || has_digest
        || fsverity == ComposefsMode::Yes
        || composefs == ComposefsMode::Yes
    {
        Verity::Yes
    } else {
        Verity::Maybe
    };
    Ok(VerityPolicy {
        wanted,
        required,
        image,
    })
}

fn enable_verity(path: &Path, required: Option<&str>) -> Result<bool> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    match ioctl::enable(&f) {
        Ok(()) => Ok(true),
        Err(e) => match required {
            Some(why) => bail!(
                "fs-verity is required ({why}) but cannot be enabled on {}: {e}",
                path.display()
            ),
            None => Ok(false),
        },
    }
}

/// Enables fs-verity on every non-empty regular file object of the commit. Stops
/// trying after the first refusal when verity is only wanted (the filesystem cannot).
pub fn enable_on_objects(repo: &Repo, commit: &Commit, required: Option<&str>) -> Result<()> {
    let mut paths = Vec::new();
    repo.walk_commit(commit, &mut |_, e| {
        if let WalkEntry::File { object, .. } = e
            && object.is_regular()
            && object.size > 0
        {
            paths.push(object.path.clone());
        }
        Ok(())
    })
    .context("walking the commit")?;
    for p in paths {
        if !enable_verity(&p, required)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes `.ostree.cfs` into `deploy_dir`; checks it against the commit's digest.
pub fn write(
    repo: &Repo,
    csum: &Checksum,
    commit: &Commit,
    deploy_dir: &Path,
    pol: &VerityPolicy,
) -> Result<[u8; 32]> {
    // A malformed claim fails before any work.
    checkout::claimed_digest(commit)?;
    if pol.wanted {
        enable_on_objects(repo, commit, pol.required.as_deref())?;
    }
    let image = checkout::commit_image(repo, csum, commit, pol.image)?;
    let path = deploy_dir.join(".ostree.cfs");
    fsutil::write_atomic(&path, &image.bytes, 0o644)?;
    if pol.wanted {
        enable_verity(&path, pol.required.as_deref())?;
    }
    Ok(image.digest)
}
