//! `ostree-prepare-root --check`: would this deployment boot under this configuration?
//!
//! Runs every check the initrd run makes before it mounts (configuration, deployment,
//! image, header, signature, digest, fs-verity on the image and on the objects) without
//! mounting anything, and lists each result. Exit 0 only if the run would succeed.

use std::path::{Path, PathBuf};

use ostree_boot::cmdline::Cmdline;
use ostree_boot::deployment::{DeployName, ResolvedDeployment};
use ostree_boot::fsutil::{ReadKind, open_regular, read_regular};
use ostree_boot::fsverity::ioctl::{self as verity, VerityError};
use ostree_boot::plan::{self, ExpectedDigest, Step};

use crate::composefs_mount::{self, CfsMountError};
use crate::run::{self, Inputs};
use crate::verify;
use ostree_boot::composefs::reader;

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
/// It must be a real directory below the sysroot, reached without following any link
/// (a stateroot that is a link out of the sysroot is an error, not a deployment).
fn direct_deployment(root: &Path, spec: &str) -> Result<Option<ResolvedDeployment>, String> {
    let p = Path::new(spec);
    let rel = if p.is_absolute() {
        match p.strip_prefix(root) {
            Ok(r) => r.to_path_buf(),
            Err(_) => return Ok(None),
        }
    } else {
        p.to_path_buf()
    };
    let comps: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let [o, d, sr, d2, name] = comps.as_slice() else {
        return Ok(None);
    };
    if o != "ostree" || d != "deploy" || d2 != "deploy" {
        return Ok(None);
    }
    let Ok(name) = DeployName::parse(name) else {
        return Ok(None);
    };
    let contained = ostree_boot::beneath::Dir::open(root).and_then(|r| r.open_dir(&rel));
    match contained {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(format!("deployment {spec}: {e}")),
    }
    Ok(Some(ResolvedDeployment {
        relpath: rel,
        stateroot: sr.clone(),
        name,
    }))
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
        direct = match direct_deployment(&root, spec) {
            Ok(d) => d,
            Err(e) => {
                report.fail(e);
                return None;
            }
        };
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
            report.fail(run::error_line(&e));
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
                objects,
                require_verity,
                expected_digest,
                ..
            } => {
                check_image(
                    image,
                    objects,
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
    image: &Path,
    objects: &Path,
    require_verity: bool,
    expected: &ExpectedDigest,
    verified: Option<&[u8; 32]>,
    r: &mut Report,
) {
    let file = match open_regular(image) {
        Ok(f) => f,
        Err(e) => {
            r.fail(format!("opening composefs image {}: {e}", image.display()));
            return;
        }
    };
    match composefs_mount::read_header(&file, image) {
        Ok(h) => r.ok(format!(
            "composefs image {} (composefs version {}, acl {})",
            image.display(),
            h.composefs_version,
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
        check_objects(image, objects, r);
    }
}

/// fs-verity on every object the overlay will open with `verity=require`: each regular
/// file of the image that redirects to the object store must record a digest, and the
/// object's kernel fs-verity digest must equal it. Stops at the first failure.
fn check_objects(image: &Path, objects: &Path, r: &mut Report) {
    let bytes = match read_regular(image, ReadKind::Image) {
        Ok(b) => b,
        Err(e) => return r.fail(format!("reading {}: {e}", image.display())),
    };
    let tree = match reader::read_image(&bytes) {
        Ok(t) => t,
        Err(e) => return r.fail(format!("{}: {e}", image.display())),
    };
    let mut count = 0usize;
    for (path, id) in tree.walk() {
        let node = tree.node(id);
        let Some(payload) = node.payload.as_ref().filter(|_| node.is_reg()) else {
            continue;
        };
        let path = String::from_utf8_lossy(&path);
        let Some(want) = node.digest else {
            return r.fail(format!(
                "{path}: the image records no fs-verity digest for it, so verity=require refuses it"
            ));
        };
        let obj = objects.join(String::from_utf8_lossy(payload).as_ref());
        let measured = open_regular(&obj).map_err(|e| e.to_string()).and_then(|f| {
            verity::measure(&f).map_err(|e| match e {
                VerityError::FilesystemNotSupported => {
                    "its filesystem or the kernel does not support fs-verity".to_string()
                }
                e => e.to_string(),
            })
        });
        match measured {
            Ok(Some(got)) if got == want => count += 1,
            Ok(Some(got)) => {
                return r.fail(format!(
                    "object {} ({path}): fs-verity digest {} but the image expects {}",
                    obj.display(),
                    hex::encode(got),
                    hex::encode(want)
                ));
            }
            Ok(None) => {
                return r.fail(format!(
                    "fs-verity is required but not enabled on object {} ({path}; {count} objects verified before it)",
                    obj.display()
                ));
            }
            Err(e) => {
                return r.fail(format!(
                    "fs-verity is required but not enabled on object {} ({path}; {count} objects verified before it): {e}",
                    obj.display()
                ));
            }
        }
    }
    r.ok(format!(
        "fs-verity digests of all {count} objects match the image"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_deployment_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let rel = "ostree/deploy/os/deploy/0123abcd.1";
        std::fs::create_dir_all(root.join(rel)).unwrap();
        let d = direct_deployment(root, rel).unwrap().unwrap();
        assert_eq!(
            (
                d.stateroot.as_str(),
                d.name.checksum.as_str(),
                d.name.serial
            ),
            ("os", "0123abcd", 1)
        );
        assert_eq!(d.relpath, Path::new(rel));
        let abs = root.join(rel);
        assert_eq!(
            direct_deployment(root, &abs.to_string_lossy())
                .unwrap()
                .unwrap()
                .relpath,
            Path::new(rel)
        );
        // Not a deployment directory: left to the ostree= resolution (and its errors).
        assert!(
            direct_deployment(root, "ostree/deploy/os/deploy/missing.0")
                .unwrap()
                .is_none()
        );
        assert!(
            direct_deployment(root, "/ostree/boot.1/os/abc/0")
                .unwrap()
                .is_none()
        );
        assert!(
            direct_deployment(root, "/elsewhere/ostree/deploy/os/deploy/0123abcd.1")
                .unwrap()
                .is_none()
        );
        std::fs::create_dir_all(root.join("ostree/deploy/os/deploy/notacsum")).unwrap();
        assert!(
            direct_deployment(root, "ostree/deploy/os/deploy/notacsum")
                .unwrap()
                .is_none()
        );
        // A stateroot linked out of the sysroot is an error naming the link.
        let out = dir.path().join("outside");
        std::fs::create_dir_all(out.join("deploy/0123abcd.1")).unwrap();
        std::os::unix::fs::symlink(&out, root.join("ostree/deploy/ext")).unwrap();
        let e = direct_deployment(root, "ostree/deploy/ext/deploy/0123abcd.1").unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
    }
}
