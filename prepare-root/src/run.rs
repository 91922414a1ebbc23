//! `ostree-prepare-root SYSROOT [KERNEL_CMDLINE]`: the initrd run (ostree.md 1.5).

use std::path::{Path, PathBuf};

use ostree_boot::cmdline::Cmdline;
use ostree_boot::config::{ComposefsMode, PrepareRootConfig, RootConfig};
use ostree_boot::deployment::{self, ResolvedDeployment};
use ostree_boot::ostree::booted::OstreeBooted;

use crate::composefs_mount::{self, CfsMountError, CfsMountOptions};
use crate::exec;
use crate::verify;

/// The temporary mount point of the new root, as ostree names it.
pub const TMP_SYSROOT: &str = "/sysroot.tmp";
/// ostree's journal message id for "Resolved OSTree target".
pub const RESOLVED_MESSAGE_ID: &str = "7170336a73ba4601bad31af888aa0df7";

/// A failure of the run, already worded for the user.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

macro_rules! impl_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error { Error(e.to_string()) }
        }
    )*};
}
impl_from!(
    exec::StepError,
    ostree_boot::config::ConfigError,
    ostree_boot::cmdline::CmdlineError,
    ostree_boot::deployment::DeploymentError,
    verify::VerifyError,
    ostree_boot::ostree::booted::BootedError
);

fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error(msg.into()))
}

/// Everything the run needs to know before it mounts anything: the configuration,
/// the deployment, and the facts about the disk. Shared with `--check`.
#[derive(Debug)]
pub struct Inputs {
    pub rc: RootConfig,
    /// The physical root (realpath of SYSROOT).
    pub root: PathBuf,
    pub deployment: ResolvedDeployment,
    /// `root` joined with the deployment's relative path.
    pub deploy_path: PathBuf,
    /// Effective `sysroot.readonly`, after ostree's legacy `repo/config` flag.
    pub sysroot_readonly: bool,
    /// The legacy `repo/config [sysroot] readonly=true` was used.
    pub legacy_readonly_flag: bool,
}

/// Loads the configuration (relative to `config_root`) and resolves the deployment the
/// command line names, unless `deployment` names it already.
pub fn gather(
    config_root: &Path,
    sysroot: &Path,
    cmdline: &Cmdline,
    deployment: Option<ResolvedDeployment>,
) -> Result<Inputs, Error> {
    let cfg = PrepareRootConfig::load(config_root)?;
    let rc = RootConfig::new(&cfg, cmdline)?;
    let root = std::fs::canonicalize(sysroot)
        .map_err(|e| Error(format!("realpath(\"{}\"): {e}", sysroot.display())))?;
    let deployment = match deployment {
        Some(d) => d,
        None => {
            let target = cmdline
                .ostree_target()?
                .ok_or_else(|| Error("No ostree target found".into()))?;
            deployment::resolve(&root, &target)?
        }
    };
    let deploy_path = root.join(&deployment.relpath);

    let mut sysroot_readonly = rc.sysroot_readonly;
    let mut legacy_readonly_flag = false;
    // ostree consults the deployment repo's config only when nothing enabled composefs.
    if !sysroot_readonly && !rc.composefs.is_required() && repo_config_readonly(&root) {
        sysroot_readonly = true;
        legacy_readonly_flag = true;
    }
    Ok(Inputs {
        rc,
        root,
        deployment,
        deploy_path,
        sysroot_readonly,
        legacy_readonly_flag,
    })
}

/// `[sysroot] readonly` in `<root>/ostree/repo/config`, as a GKeyFile boolean.
fn repo_config_readonly(root: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join("ostree/repo/config")) else {
        return false;
    };
    let mut in_group = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_group = l == "[sysroot]";
        } else if in_group
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == "readonly"
        {
            return matches!(v.trim(), "true" | "1");
        }
    }
    false
}

fn journal_resolved(deploy_path: &Path, root: &Path) {
    let rel = deploy_path
        .strip_prefix(root)
        .map(|p| format!("/{}", p.display()))
        .unwrap_or_default();
    let (dev, ino) = exec::device_inode(deploy_path).unwrap_or((0, 0));
    let msg = format!("Resolved OSTree target to: {}", deploy_path.display());
    crate::journal(
        &msg,
        &[
            ("MESSAGE_ID", RESOLVED_MESSAGE_ID.to_string()),
            ("DEPLOYMENT_PATH", rel),
            ("DEPLOYMENT_DEVICE", dev.to_string()),
            ("DEPLOYMENT_INODE", ino.to_string()),
        ],
    );
}

/// The whole initrd run.
pub fn run(sysroot: &Path, cmdline: &Cmdline) -> Result<(), Error> {
    let run_dir = Path::new("/run");
    exec::refuse_second_run(run_dir)?;
    let inp = gather(Path::new("/"), sysroot, cmdline, None)?;
    let rc = &inp.rc;
    let root = &inp.root;
    let deploy = &inp.deploy_path;
    journal_resolved(deploy, root);

    exec::create_run_dirs(run_dir)?;
    if inp.legacy_readonly_flag {
        log::info!(
            "Found legacy sysroot.readonly flag, not configured in ostree/prepare-root.conf"
        );
    }
    let sysroot_readonly = inp.sysroot_readonly;
    let writable = !exec::is_read_only(root)?;
    log::info!(
        "sysroot.readonly configuration value: {} (fs writable: {})",
        sysroot_readonly as i32,
        writable as i32
    );
    if rc.root_transient {
        log::info!(
            "root.transient: {} (ro: {})",
            rc.root_transient as i32,
            rc.root_transient_ro as i32
        );
    }

    exec::make_root_private()?;
    let tmp = Path::new(TMP_SYSROOT);
    exec::mkdir_exist_ok(tmp, 0o755)?;

    let mut booted = OstreeBooted {
        backing_root_device_inode: exec::device_inode(deploy)?,
        root_transient: rc.root_transient,
        root_transient_ro: rc.root_transient_ro,
        ..OstreeBooted::default()
    };

    let using_composefs = mount_composefs(&inp, run_dir, tmp, &mut booted)?;
    if !using_composefs {
        if rc.root_transient {
            return err("Must enable composefs with root.transient");
        }
        log::info!("Using legacy ostree bind mount for /");
        exec::bind(deploy, tmp)?;
    } else if let Some(warning) = exec::volatile_root_symlink(run_dir, root) {
        log::warn!("{warning}");
    }
    booted.sysroot_ro = sysroot_readonly;

    // /etc: only when something makes the root read-only or transient (ostree L379-383).
    let new_etc = tmp.join("etc");
    if sysroot_readonly || using_composefs || rc.root_transient {
        if rc.etc_transient {
            let dir = exec::mkdtemp(&run_dir.join("ostree/transient-etc.").to_string_lossy())?;
            let (upper, work) = (dir.join("upper"), dir.join("work"));
            exec::mkdir_exact_mode(&upper, 0o755)?;
            exec::mkdir_exact_mode(&work, 0o755)?;
            exec::overlay(&new_etc, &tmp.join("usr/etc"), &upper, &work, false)?;
            booted.transient_etc = Some(dir.to_string_lossy().into_owned());
        } else {
            exec::bind(&deploy.join("etc"), &new_etc)?;
            exec::remount_bind(&new_etc, false)?;
        }
    }

    // /usr: the hotfix overlay (never under a signed composefs root), else a read-only
    // bind on the legacy path; composefs is read-only already.
    let new_usr = tmp.join("usr");
    let hotfix = deploy.join(".usr-ovl-work").exists();
    if hotfix && !(using_composefs && rc.is_signed) {
        log::info!("Using /usr hotfix overlay from {}", deploy.display());
        exec::overlay(
            &new_usr,
            &new_usr,
            &deploy.join(".usr-ovl-upper"),
            &deploy.join(".usr-ovl-work"),
            !writable,
        )?;
    } else if hotfix {
        log::warn!("Ignoring the /usr hotfix overlay: not allowed with a signed composefs root");
    } else if !using_composefs {
        exec::bind(&new_usr, &new_usr)?;
        exec::remount_bind(&new_usr, true)?;
    }

    // The physical root under the new root, and the old mount detached, so that the
    // switch-root does not leave a mount cycle.
    let new_sysroot = tmp.join("sysroot");
    exec::bind(root, &new_sysroot)?;
    exec::detach(root)?;
    journal_resolved(&new_sysroot.join(&inp.deployment.relpath), &new_sysroot);

    if sysroot_readonly {
        let var = new_sysroot.join(inp.deployment.stateroot_var());
        exec::bind(&var, &var)?;
        exec::remount_bind(&var, false)?;
    }

    exec::write_atomic(&run_dir.join("ostree-booted"), &booted.to_bytes()?)?;

    exec::move_mount(tmp, root)?;
    if let Err(e) = std::fs::remove_dir(tmp) {
        log::debug!("rmdir {TMP_SYSROOT}: {e}");
    }
    if sysroot_readonly {
        exec::remount_bind(&root.join("sysroot"), true)?;
    }
    log::info!(
        "ostree-prepare-root: {} is ready: composefs {} ({}), sysroot {}",
        root.display(),
        if using_composefs {
            "in use"
        } else {
            "not used"
        },
        rc.composefs,
        if sysroot_readonly {
            "read-only"
        } else {
            "read-write"
        }
    );
    Ok(())
}

/// The composefs part of ostree's `otcore_mount_rootfs`. Returns whether composefs is the
/// new root. Never falls back to an unverified root when a signature or verity is
/// required: only `maybe` without verity tolerates a missing image.
fn mount_composefs(
    inp: &Inputs,
    run_dir: &Path,
    tmp: &Path,
    booted: &mut OstreeBooted,
) -> Result<bool, Error> {
    let rc = &inp.rc;
    if rc.composefs == ComposefsMode::No {
        return Ok(false);
    }
    let private = run_dir.join("ostree/.private");
    let lower = private.join("cfsroot-lower");
    exec::mkdir_exist_ok(&lower, 0o700)?;
    let upper_work = if rc.root_transient {
        let (u, w) = (private.join("root/upper"), private.join("root/work"));
        exec::mkdir_exist_ok(&private.join("root"), 0o755)?;
        exec::mkdir_exact_mode(&u, 0o755)?;
        exec::mkdir_exact_mode(&w, 0o700)?;
        Some((u, w))
    } else {
        None
    };

    let mut expected_digest = None;
    if rc.is_signed {
        let keys = verify::load_keys(Path::new("/"), &rc.keypath)?;
        let name = inp.deployment.name.to_string();
        let v = verify::verify_deployment(&inp.root, &name, &keys, &rc.keypath)?;
        log::info!(
            "composefs+ostree: Validated commit signature using '{}'",
            rc.keypath.display()
        );
        log::info!("composefs: Verifying digest: {}", hex::encode(v.digest));
        expected_digest = Some(v.digest);
        booted.composefs_signed = Some(rc.keypath.to_string_lossy().into_owned());
    }

    let opts = CfsMountOptions {
        image_mountdir: lower,
        objdirs: vec![inp.root.join("ostree/repo/objects")],
        read_only: !rc.root_transient || rc.root_transient_ro,
        upper_work,
        require_verity: rc.require_verity,
        expected_digest,
    };
    let image = inp.deploy_path.join(".ostree.cfs");
    match composefs_mount::mount_image(&image, tmp, &opts) {
        Ok(report) => {
            log::info!(
                "composefs: mounted successfully (verity={})",
                rc.require_verity
            );
            log::info!("composefs: kernel features: {report}");
            booted.composefs = Some(true);
            booted.composefs_verity = Some(rc.require_verity);
            Ok(true)
        }
        Err(CfsMountError::ImageMissing(_))
            if rc.composefs == ComposefsMode::Maybe && !rc.require_verity =>
        {
            log::info!("composefs: No image present");
            booted.composefs_signed = None;
            Ok(false)
        }
        Err(e @ CfsMountError::ImageMissing(_)) => err(format!(
            "composefs: failed to mount: {e} (composefs.enabled={}: an image is required)",
            rc.composefs
        )),
        Err(e) => err(format!("composefs: failed to mount: {e}")),
    }
}
