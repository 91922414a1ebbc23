//! `ostree-prepare-root --check`: would this deployment boot under this configuration?
//!
//! Runs every check the initrd run makes before it mounts (configuration, deployment,
//! image, header, signature, digest, fs-verity on the image and on the objects) without
//! mounting anything, and lists each result. Exit 0 only if the run would succeed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ostree_boot::cmdline::Cmdline;
use ostree_boot::config::ComposefsMode;
use ostree_boot::deployment::{DeployName, ResolvedDeployment};
use ostree_boot::fsverity::ioctl::{self as verity, VerityError};

use crate::composefs_mount::{self, CfsMountError};
use crate::run::{self, Inputs};
use crate::verify;

/// What `--check` was asked.
#[derive(Debug, Clone)]
pub struct CheckArgs {
    pub sysroot: PathBuf,
    pub config_root: PathBuf,
    pub cmdline: Cmdline,
    /// A deployment directory (absolute, or relative to the sysroot), or an `ostree=`
    /// style link under the sysroot; `None`: the one the command line names.
    pub deployment: Option<String>,
}

/// The outcome: each line is one finding; `ok` is false when any of them is fatal.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

impl Report {
    fn ok(&mut self, s: impl Into<String>) {
        self.lines.push(format!("ok: {}", s.into()));
    }
    fn fail(&mut self, s: impl Into<String>) {
        let s = s.into();
        self.lines.push(format!("FAIL: {s}"));
        self.failures.push(s);
    }
    pub fn would_boot(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A deployment named directly: `ostree/deploy/<stateroot>/deploy/<csum>.<serial>`.
fn direct_deployment(root: &Path, spec: &str) -> Option<ResolvedDeployment> {
    let p = Path::new(spec);
    let rel = if p.is_absolute() {
        p.strip_prefix(root).ok()?.to_path_buf()
    } else {
        p.to_path_buf()
    };
    let comps: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let [o, d, sr, d2, name] = comps.as_slice() else {
        return None;
    };
    if o != "ostree" || d != "deploy" || d2 != "deploy" || !root.join(&rel).is_dir() {
        return None;
    }
    Some(ResolvedDeployment {
        relpath: rel,
        stateroot: sr.clone(),
        name: DeployName::parse(name).ok()?,
    })
}

fn gather(args: &CheckArgs, report: &mut Report) -> Option<Inputs> {
    let root = match std::fs::canonicalize(&args.sysroot) {
        Ok(r) => r,
        Err(e) => {
            report.fail(format!("sysroot {}: {e}", args.sysroot.display()));
            return None;
        }
    };
    // A named deployment replaces the command line's `ostree=` target.
    let mut cmdline = args.cmdline.clone();
    let mut direct = None;
    if let Some(spec) = &args.deployment {
        direct = direct_deployment(&root, spec);
        if direct.is_none() {
            let words: Vec<String> = cmdline
                .args()
                .iter()
                .filter(|a| !a.starts_with("ostree="))
                .cloned()
                .chain(std::iter::once(format!("ostree={spec}")))
                .collect();
            cmdline = Cmdline::parse(&words.join(" "));
        }
    }
    match run::gather(&args.config_root, &root, &cmdline, direct) {
        Ok(i) => Some(i),
        Err(e) => {
            report.fail(e.0);
            None
        }
    }
}

/// Runs the checks.
pub fn check(args: &CheckArgs) -> Report {
    let mut r = Report::default();
    let Some(inp) = gather(args, &mut r) else {
        return r;
    };
    let rc = &inp.rc;
    r.ok(format!(
        "configuration: composefs.enabled={} (verity {}, signed {}), sysroot.readonly={}, etc.transient={}, root.transient={}, root.transient-ro={}",
        rc.composefs,
        if rc.require_verity { "required" } else { "not required" },
        rc.is_signed,
        inp.sysroot_readonly,
        rc.etc_transient,
        rc.root_transient,
        rc.root_transient_ro
    ));
    r.ok(format!("deployment {}", inp.deploy_path.display()));

    if rc.composefs == ComposefsMode::No {
        check_legacy(&inp, &mut r);
        return r;
    }
    let image = inp.deploy_path.join(".ostree.cfs");
    let file = match std::fs::File::open(&image) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if rc.composefs == ComposefsMode::Maybe && !rc.require_verity {
                r.ok(format!(
                    "no composefs image {}: composefs=maybe boots with the legacy bind mount",
                    image.display()
                ));
                check_legacy(&inp, &mut r);
            } else {
                r.fail(format!(
                    "composefs image {} not found (composefs.enabled={}: an image is required)",
                    image.display(),
                    rc.composefs
                ));
            }
            return r;
        }
        Err(e) => {
            r.fail(format!("opening composefs image {}: {e}", image.display()));
            return r;
        }
    };
    match composefs_mount::read_header(&file, &image) {
        Ok(h) => r.ok(format!(
            "composefs image {} (format {}, acl {})",
            image.display(),
            h.version,
            h.has_acl()
        )),
        Err(e) => r.fail(e.to_string()),
    }

    let mut expected = None;
    if rc.is_signed {
        match verify::load_keys(&args.config_root, &rc.keypath).and_then(|keys| {
            verify::verify_deployment(
                &inp.root,
                &inp.deployment.name.to_string(),
                &keys,
                &rc.keypath,
            )
        }) {
            Ok(v) => {
                r.ok(format!(
                    "commit {} signed by key {} of '{}'{}; expected image digest {}",
                    v.commit,
                    v.key_index + 1,
                    v.keypath.display(),
                    if v.used_base {
                        " (bootc base commit)"
                    } else {
                        ""
                    },
                    hex::encode(v.digest)
                ));
                expected = Some(v.digest);
            }
            Err(e) => r.fail(e.to_string()),
        }
    }

    if rc.require_verity || expected.is_some() {
        match composefs_mount::check_image_verity(&file, &image, expected.as_ref(), true) {
            Ok(Some(d)) => r.ok(format!("fs-verity digest of the image: {}", hex::encode(d))),
            Ok(None) => {}
            Err(e @ CfsMountError::NoVerity { .. }) => {
                r.fail(format!("{e}: cannot confirm the image would mount"))
            }
            Err(e) => r.fail(e.to_string()),
        }
        check_objects(&inp, &mut r);
    } else if rc.is_signed {
        // Signature failed above; nothing to compare the image with.
    }
    if rc.root_transient && !rc.composefs.is_required() && rc.composefs != ComposefsMode::Maybe {
        r.fail("Must enable composefs with root.transient");
    }
    r
}

fn check_legacy(inp: &Inputs, r: &mut Report) {
    if inp.rc.root_transient {
        r.fail("Must enable composefs with root.transient (the root would be a legacy bind mount)");
        return;
    }
    for d in ["usr", "etc"] {
        if !inp.deploy_path.join(d).is_dir() {
            r.fail(format!(
                "{} has no {d} directory",
                inp.deploy_path.display()
            ));
        }
    }
    if r.would_boot() {
        r.ok("legacy bind mount of the deployment as /");
    }
}

/// fs-verity on every object the root reads: the deployment's files below /usr and the
/// other top-level trees are hard links to the repository's objects in bare repositories,
/// so measuring them measures the objects. Stops at the first file that fails.
fn check_objects(inp: &Inputs, r: &mut Report) {
    let mut stack: Vec<PathBuf> = Vec::new();
    for e in std::fs::read_dir(&inp.deploy_path)
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name();
        // /etc is a per-deployment copy, not objects; dotfiles are ostree's own.
        if n != "etc" && !n.to_string_lossy().starts_with('.') {
            stack.push(e.path());
        }
    }
    let mut count = 0usize;
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
            continue;
        }
        if !m.is_file() || m.size() == 0 {
            continue;
        }
        let res = std::fs::File::open(&p).map_err(|e| e.to_string()).and_then(|f| match verity::measure(&f) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("the object has no fs-verity".to_string()),
            Err(VerityError::FilesystemNotSupported) => {
                Err("its filesystem or the kernel does not support fs-verity, so verity=require would fail".to_string())
            }
            Err(e) => Err(e.to_string()),
        });
        if let Err(e) = res {
            r.fail(format!("fs-verity is required but not enabled on object {} ({} objects verified before it): {e}", p.display(), count));
            return;
        }
        count += 1;
    }
    r.ok(format!(
        "fs-verity enabled on all {count} objects of the deployment"
    ));
}
