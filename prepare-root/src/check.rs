//! `ostree-prepare-root --check`: would this deployment boot under this configuration?
//!
//! Runs every check the initrd run makes before it mounts (configuration, deployment,
//! image, header, signature, digest, fs-verity on the image and on the objects) without
//! mounting anything, and lists each result. Exit 0 only if the run would succeed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ostree_boot::cmdline::Cmdline;
use ostree_boot::deployment::{DeployName, ResolvedDeployment};
use ostree_boot::fsverity::ioctl::{self as verity, VerityError};
use ostree_boot::plan::{self, ExpectedDigest, Step};

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
        "configuration: composefs.enabled={} (verity {}, signed {}), etc.transient={}, root.transient={}, root.transient-ro={}",
        rc.composefs,
        if rc.require_verity { "required" } else { "not required" },
        rc.is_signed,
        rc.etc_transient,
        rc.root_transient,
        rc.root_transient_ro
    ));
    r.ok(format!("deployment {}", inp.deploy_path.display()));
    let plan = match plan::plan(rc, &inp.deployment, &inp.root, &inp.facts) {
        Ok(p) => p,
        Err(e) => {
            r.fail(e.to_string());
            return r;
        }
    };
    r.ok(format!(
        "root: {}, sysroot {}",
        if plan.using_composefs {
            "composefs"
        } else {
            "legacy bind mount of the deployment"
        },
        if plan.sysroot_readonly {
            "read-only"
        } else {
            "read-write"
        }
    ));

    let mut verified = None;
    for step in &plan.steps {
        match step {
            Step::VerifyCommit {
                repo,
                checksum,
                keypath,
            } => {
                match verify::load_keys(&args.config_root, keypath)
                    .and_then(|keys| verify::verify_commit(repo, checksum, &keys, keypath))
                {
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
                        verified = Some(v.digest);
                    }
                    Err(e) => r.fail(e.to_string()),
                }
            }
            Step::MountComposefs {
                image,
                require_verity,
                expected_digest,
                ..
            } => {
                check_image(
                    &inp,
                    image,
                    *require_verity,
                    expected_digest,
                    verified.as_ref(),
                    &mut r,
                );
            }
            Step::BindDeployment { source, .. } => {
                for d in ["usr", "etc"] {
                    if !source.join(d).is_dir() {
                        r.fail(format!("{} has no {d} directory", source.display()));
                    }
                }
            }
            Step::EtcBind { source, .. } if !source.is_dir() => {
                r.fail(format!("{} is not a directory", source.display()));
            }
            Step::UsrHotfixOverlay { upper, .. } => {
                r.ok(format!("/usr hotfix overlay from {}", upper.display()))
            }
            _ => {}
        }
    }
    r
}

fn check_image(
    inp: &Inputs,
    image: &Path,
    require_verity: bool,
    expected: &ExpectedDigest,
    verified: Option<&[u8; 32]>,
    r: &mut Report,
) {
    let file = match std::fs::File::open(image) {
        Ok(f) => f,
        Err(e) => {
            r.fail(format!("opening composefs image {}: {e}", image.display()));
            return;
        }
    };
    match composefs_mount::read_header(&file, image) {
        Ok(h) => r.ok(format!(
            "composefs image {} (format {}, acl {})",
            image.display(),
            h.version,
            h.has_acl()
        )),
        Err(e) => r.fail(e.to_string()),
    }
    // Signed: without a verified commit there is no digest to compare; the signature
    // failure is reported already, and verity is still required.
    let expected = match expected {
        ExpectedDigest::FromVerifiedCommit => verified,
        ExpectedDigest::None => None,
    };
    if !require_verity && expected.is_none() {
        return;
    }
    match composefs_mount::check_image_verity(&file, image, expected, true) {
        Ok(Some(d)) => r.ok(format!("fs-verity digest of the image: {}", hex::encode(d))),
        Ok(None) => {}
        Err(e @ CfsMountError::NoVerity { .. }) => {
            r.fail(format!("{e}: cannot confirm the image would mount"))
        }
        Err(e) => r.fail(e.to_string()),
    }
    if require_verity {
        check_objects(inp, r);
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
