//! `ostree-prepare-root SYSROOT [KERNEL_CMDLINE]`: the initrd run (ostree.md 1.5).
//!
//! Reads the configuration, resolves the deployment, gathers the [`Facts`], asks
//! `ostree_boot::plan` what to do and executes its steps in order. Every decision is the
//! plan's; this module only turns steps into syscalls and reports what failed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use ostree_boot::cmdline::Cmdline;
use ostree_boot::config::{ComposefsMode, RootConfig};
use ostree_boot::deployment::{self, ResolvedDeployment};
use ostree_boot::plan::{self, ExpectedDigest, Facts, Plan, Step};

use crate::composefs_mount::{self, CfsMountOptions};
use crate::exec;
use crate::verify;

/// ostree's journal message id for "Resolved OSTree target".
pub const RESOLVED_MESSAGE_ID: &str = "7170336a73ba4601bad31af888aa0df7";

/// The error and its causes on one line, `a: b: c`, for stderr and the log. Typed
/// errors (ours and core's) often print their cause already (`what: reason`); a cause
/// whose text is already there is not repeated.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if out.contains(&m) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&m);
    }
    out
}

/// Everything known before anything is mounted. Shared with `--check`.
#[derive(Debug)]
pub struct Inputs {
    pub rc: RootConfig,
    /// The physical root (realpath of SYSROOT).
    pub root: PathBuf,
    pub deployment: ResolvedDeployment,
    /// `root` joined with the deployment's relative path.
    pub deploy_path: PathBuf,
    pub facts: Facts,
}

/// Loads the configuration (relative to `config_root`), resolves the deployment the
/// command line names (unless `deployment` names it already) and reads the facts.
pub fn gather(
    config_root: &Path,
    sysroot: &Path,
    cmdline: &Cmdline,
    deployment: Option<ResolvedDeployment>,
) -> Result<Inputs> {
    let rc = RootConfig::load(config_root, cmdline)?;
    let root = std::fs::canonicalize(sysroot)
        .with_context(|| format!("realpath(\"{}\")", sysroot.display()))?;
    let deployment = match deployment {
        Some(d) => d,
        None => {
            let target = cmdline
                .ostree_target()?
                .ok_or_else(|| anyhow!("No ostree target found"))?;
            deployment::resolve(&root, &target)?
        }
    };
    let deploy_path = root.join(&deployment.relpath);
    // core's reader: only ENOENT means "no image"; EACCES or EIO on it fails the boot
    // instead of quietly falling back to the legacy root.
    let facts = Facts::gather(&root, &deployment).context("reading the deployment")?;
    Ok(Inputs {
        rc,
        root,
        deployment,
        deploy_path,
        facts,
    })
}

fn journal_resolved(deploy_path: &Path, root: &Path) {
    let rel = deploy_path
        .strip_prefix(root)
        .map(|p| format!("/{}", p.display()))
        .unwrap_or_default();
    let (dev, ino) = exec::device_inode(deploy_path).unwrap_or((0, 0));
    let msg = format!("Resolved OSTree target to: {}", deploy_path.display());
    let (dev, ino) = (dev.to_string(), ino.to_string());
    crate::journal(
        &msg,
        &[
            ("MESSAGE_ID", RESOLVED_MESSAGE_ID),
            ("DEPLOYMENT_PATH", &rel),
            ("DEPLOYMENT_DEVICE", &dev),
            ("DEPLOYMENT_INODE", &ino),
        ],
    );
}

/// The whole initrd run.
pub fn run(sysroot: &Path, cmdline: &Cmdline) -> Result<()> {
    exec::refuse_second_run(Path::new(plan::RUN_OSTREE_BOOTED))?;
    let inp = gather(Path::new("/"), sysroot, cmdline, None)?;
    journal_resolved(&inp.deploy_path, &inp.root);
    let plan = plan::plan(&inp.rc, &inp.deployment, &inp.root, &inp.facts)?;

    if inp.rc.composefs == ComposefsMode::Maybe && !plan.using_composefs {
        log::info!("composefs: No image present");
    }
    if plan.sysroot_readonly && !inp.rc.sysroot_readonly {
        log::info!(
            "Found legacy sysroot.readonly flag, not configured in ostree/prepare-root.conf"
        );
    }
    log::info!(
        "sysroot.readonly configuration value: {} (fs writable: {})",
        plan.sysroot_readonly as i32,
        inp.facts.sysroot_writable as i32
    );
    if inp.rc.root_transient {
        log::info!(
            "root.transient: {} (ro: {})",
            inp.rc.root_transient as i32,
            inp.rc.root_transient_ro as i32
        );
    }
    execute(&inp, &plan)?;
    log::info!(
        "{} is ready: composefs {} (composefs.enabled={}), sysroot {}",
        inp.root.display(),
        if plan.using_composefs {
            "in use"
        } else {
            "not used"
        },
        inp.rc.composefs,
        if plan.sysroot_readonly {
            "read-only"
        } else {
            "read-write"
        }
    );
    Ok(())
}

/// Executes the plan's steps in order; the first failure stops the run.
pub fn execute(inp: &Inputs, plan: &Plan) -> Result<()> {
    let mut booted = plan.booted.clone();
    // The deployment directory's identity, taken before anything is mounted over it.
    booted.backing_root_device_inode = exec::device_inode(&plan.deploy_path)?;
    let mut verified: Option<verify::Verified> = None;

    for step in &plan.steps {
        log::debug!("step: {step:?}");
        match step {
            Step::MkdirRun { run, private } => {
                exec::mkdir_exact_mode(run, 0o755)?;
                exec::mkdir_exact_mode(private, 0)?;
            }
            Step::MakeRootPrivate => exec::make_root_private()?,
            Step::Mkdir {
                path,
                mode,
                exist_ok,
                parents,
            } => exec::mkdir(path, *mode, *exist_ok, *parents)?,
            Step::VerifyCommit {
                repo,
                checksum,
                keypath,
            } => {
                let keys = verify::load_keys(Path::new("/"), keypath)?;
                let v = verify::verify_commit(repo, checksum, &keys, keypath)?;
                log::info!(
                    "composefs+ostree: Validated commit signature using '{}'",
                    keypath.display()
                );
                log::info!("composefs: Verifying digest: {}", hex::encode(v.digest));
                verified = Some(v);
            }
            Step::MountComposefs {
                image,
                objects,
                lower_mountdir,
                target,
                require_verity,
                expected_digest,
                readonly,
                transient,
            } => {
                let expected = match expected_digest {
                    ExpectedDigest::None => None,
                    ExpectedDigest::FromVerifiedCommit => match &verified {
                        Some(v) => Some(v.digest),
                        None => {
                            bail!(
                                "composefs: the plan asks for the verified commit's digest, but no commit was verified"
                            );
                        }
                    },
                };
                let opts = CfsMountOptions {
                    image_mountdir: lower_mountdir.clone(),
                    objdirs: vec![objects.clone()],
                    upper_work: transient
                        .as_ref()
                        .map(|t| (t.upper.clone(), t.work.clone())),
                    read_only: *readonly,
                    require_verity: *require_verity,
                    expected_digest: expected,
                };
                let report = composefs_mount::mount_image(image, target, &opts)
                    .context("composefs: failed to mount")?;
                log::info!("composefs: mounted successfully (verity={require_verity})");
                log::info!("composefs: kernel features: {report}");
            }
            Step::VolatileRoot { link, sysroot } => {
                if let Some(w) = exec::volatile_root_symlink(link, sysroot) {
                    log::warn!("{w}");
                }
            }
            Step::BindDeployment { source, target } => {
                log::info!("Using legacy ostree bind mount for /");
                exec::bind(source, target)?;
            }
            Step::EtcBind { source, target } => {
                exec::bind(source, target)?;
                exec::remount_bind(target, false)?;
            }
            Step::EtcTransientOverlay {
                lower,
                target,
                template,
            } => {
                let t = template.to_string_lossy();
                let prefix = t.strip_suffix("XXXXXX").unwrap_or(&t);
                let dir = exec::mkdtemp(prefix)?;
                let (upper, work) = (dir.join("upper"), dir.join("work"));
                exec::mkdir(&upper, 0o755, false, false)?;
                exec::mkdir(&work, 0o755, false, false)?;
                exec::overlay(target, lower, &upper, &work, false)?;
                booted.transient_etc = Some(dir.to_string_lossy().into_owned());
            }
            Step::UsrReadonlyBind { target } => {
                exec::bind(target, target)?;
                exec::remount_bind(target, true)?;
            }
            Step::UsrHotfixOverlay {
                lower,
                upper,
                work,
                target,
                readonly,
            } => {
                log::info!("Using /usr hotfix overlay from {}", upper.display());
                exec::overlay(target, lower, upper, work, *readonly)?;
            }
            Step::BindPhysicalRoot { source, target } => exec::bind(source, target)?,
            Step::Detach { path } => {
                exec::detach(path)?;
                // The deployment as it is reachable from the new root from now on.
                let new_sysroot = Path::new(plan::TMP_SYSROOT).join("sysroot");
                journal_resolved(&new_sysroot.join(&inp.deployment.relpath), &new_sysroot);
            }
            Step::VarSelfBind { path } => {
                exec::bind(path, path)?;
                exec::remount_bind(path, false)?;
            }
            Step::WriteBooted { path } => {
                exec::write_atomic(path, &booted.to_bytes()?)?;
            }
            Step::MoveToSysroot { source, target } => exec::move_mount(source, target)?,
            Step::Rmdir { path } => {
                // The new root is in place; a leftover empty directory in the initrd is
                // not worth failing the boot for.
                if let Err(e) = std::fs::remove_dir(path) {
                    log::warn!("rmdir {}: {e}", path.display());
                }
            }
            Step::SysrootReadonly { path } => exec::remount_bind(path, true)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_joins_contexts_without_repeating_causes() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let step = exec::StepError {
            what: "mkdir /x".into(),
            source: io,
        };
        let e = anyhow::Error::new(step).context("composefs: failed to mount");
        assert_eq!(
            error_line(&e),
            "composefs: failed to mount: mkdir /x: permission denied"
        );
        assert_eq!(error_line(&anyhow!("plain")), "plain");
    }
}
