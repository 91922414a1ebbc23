//! The mount plan: what prepare-root does to turn a deployment into the root, as data.
//!
//! [`plan`] is a pure function of the effective configuration, the resolved deployment
//! and a few [`Facts`] read from the disk. It returns the ordered [`Step`]s of ostree's
//! `ostree-prepare-root.c:main` (reference: ostree.md 1.5-1.9) and the
//! [`OstreeBooted`] record that `/run/ostree-booted` will hold. prepare-root executes the steps
//! with syscalls; the generator and `--check` read the same plan, so what the initrd did
//! and what the rest of the system believes cannot drift apart.
//!
//! Departures from upstream, all fail-closed: `yes`/`verity`/`signed` with no
//! `.ostree.cfs` is a plan error rather than a mount error; `maybe` decides from the
//! fact "is there an image" instead of tolerating `ENOENT` from the mount (which upstream
//! also took from a missing `/dev/loop-control`). The dead `initramfs-mount-var` marker
//! path (upstream's `/run/ostree` mkdir makes it unreachable) is not planned.

use std::path::{Path, PathBuf};

use crate::config::{ComposefsMode, RootConfig};
use crate::deployment::ResolvedDeployment;
use crate::ostree::booted::OstreeBooted;

/// Where the new root is assembled before it is moved onto the sysroot mount point.
pub const TMP_SYSROOT: &str = "/sysroot.tmp";
pub const RUN_OSTREE: &str = "/run/ostree";
pub const RUN_OSTREE_PRIVATE: &str = "/run/ostree/.private";
pub const CFS_LOWER_MOUNTDIR: &str = "/run/ostree/.private/cfsroot-lower";
pub const TRANSIENT_ROOT_UPPER: &str = "/run/ostree/.private/root/upper";
pub const TRANSIENT_ROOT_WORK: &str = "/run/ostree/.private/root/work";
/// `mkdtemp` template for the transient /etc overlay directories.
pub const TRANSIENT_ETC_TEMPLATE: &str = "/run/ostree/transient-etc.XXXXXX";
pub const RUN_OSTREE_BOOTED: &str = "/run/ostree-booted";
pub const VOLATILE_ROOT: &str = "/run/systemd/volatile-root";
/// The composefs image inside a deployment directory.
pub const COMPOSEFS_IMAGE: &str = ".ostree.cfs";
pub const USR_OVL_UPPER: &str = ".usr-ovl-upper";
pub const USR_OVL_WORK: &str = ".usr-ovl-work";

/// What prepare-root found on the disk before planning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// The deployment has a `.ostree.cfs`.
    pub has_composefs_image: bool,
    /// The sysroot is mounted writable now (`statvfs` without `ST_RDONLY`).
    pub sysroot_writable: bool,
    /// The deployment has `.usr-ovl-work` (`ostree admin unlock --hotfix`).
    pub has_usr_overlay: bool,
    /// `<sysroot>/ostree/repo/config` has `[sysroot] readonly=true` (legacy flag).
    pub legacy_repo_readonly: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FactsError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Facts {
    /// Reads the facts for `dep` from the sysroot mounted at `sysroot`.
    ///
    /// The legacy `repo/config` flag is read as ostree's `sysroot_is_configured_ro`
    /// does: a missing, unreadable or unparsable file, or a value that is not a
    /// boolean, means "not read-only" (with a warning), never a boot failure.
    pub fn gather(sysroot: &Path, dep: &ResolvedDeployment) -> Result<Facts, FactsError> {
        let deploy = sysroot.join(&dep.relpath);
        let exists = |p: PathBuf| match std::fs::symlink_metadata(&p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(FactsError { path: p, source }),
        };
        let vfs = rustix::fs::statvfs(sysroot).map_err(|e| FactsError {
            path: sysroot.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Facts {
            has_composefs_image: exists(deploy.join(COMPOSEFS_IMAGE))?,
            sysroot_writable: !vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
            has_usr_overlay: exists(deploy.join(USR_OVL_WORK))?,
            legacy_repo_readonly: legacy_repo_readonly(&sysroot.join("ostree/repo/config"))?,
        })
    }
}

/// ostree's legacy `[sysroot] readonly` flag of `<sysroot>/ostree/repo/config`, read as
/// ostree-prepare-root does: a config GKeyFile cannot load is logged and ignored, and a
/// missing or non-boolean value is false, so a damaged repo config cannot stop the boot.
/// Beyond upstream (which blocks forever on a FIFO there): a path that is not a regular
/// file, or a file over the config size cap, is an error, not a damaged config.
pub fn legacy_repo_readonly(path: &Path) -> Result<bool, FactsError> {
    use crate::keyfile::{KeyFile, KeyFileError};
    match KeyFile::load_optional(path) {
        Ok(Some(kf)) => Ok(kf
            .get_bool("sysroot", "readonly")
            .ok()
            .flatten()
            .unwrap_or(false)),
        Ok(None) => Ok(false),
        Err(KeyFileError::Io { path, source })
            if matches!(
                source.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::FileTooLarge
            ) =>
        {
            Err(FactsError { path, source })
        }
        Err(e) => {
            log::warn!("Failed to load {}: {e}", path.display());
            Ok(false)
        }
    }
}

/// How the composefs mount gets its expected image digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedDigest {
    /// No digest pinned (unsigned modes).
    None,
    /// The `ostree.composefs.digest.v0` of the commit checked by the preceding
    /// [`Step::VerifyCommit`].
    FromVerifiedCommit,
}

/// The transient upper layer of a writable (or transient-ro) composefs root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransientUpper {
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// One action of prepare-root, in order. Paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `mkdir /run/ostree 0755` then `mkdir /run/ostree/.private 0000`; both must not
    /// exist yet (upstream's `EEXIST` is fatal: prepare-root runs once per boot).
    MkdirRun { run: PathBuf, private: PathBuf },
    /// `mount --make-rprivate /`.
    MakeRootPrivate,
    /// `mkdir` with `mode`; `exist_ok` tolerates `EEXIST`; `parents` is `mkdir -p`.
    Mkdir {
        path: PathBuf,
        mode: u32,
        exist_ok: bool,
        parents: bool,
    },
    /// Check the commit's Ed25519 signature (raw `.commit` bytes, `.commitmeta`
    /// `ostree.sign.ed25519`, bootc base-commit fallback) against the keys in `keypath`,
    /// and keep its `ostree.composefs.digest.v0` for the mount. No keys is an error.
    VerifyCommit {
        repo: PathBuf,
        checksum: String,
        keypath: PathBuf,
    },
    /// Mount the EROFS `image` at `lower_mountdir`, overlay it with `objects` as the data
    /// layer on `target`, detach the EROFS mount.
    MountComposefs {
        image: PathBuf,
        objects: PathBuf,
        lower_mountdir: PathBuf,
        target: PathBuf,
        require_verity: bool,
        expected_digest: ExpectedDigest,
        readonly: bool,
        transient: Option<TransientUpper>,
    },
    /// `/run/systemd/volatile-root -> /dev/block/MAJ:MIN` of the physical root, so that
    /// gpt-auto finds the ESP under an overlay root. Failures are logged, not fatal.
    VolatileRoot { link: PathBuf, sysroot: PathBuf },
    /// Legacy root: bind the deployment directory.
    BindDeployment { source: PathBuf, target: PathBuf },
    /// Bind the deployment's own `etc` and remount it writable.
    EtcBind { source: PathBuf, target: PathBuf },
    /// `mkdtemp(template, 0700)` with `upper`/`work` (0755) inside, overlay over `lower`
    /// on `target`. The directory name goes into `/run/ostree-booted`.
    EtcTransientOverlay {
        lower: PathBuf,
        target: PathBuf,
        template: PathBuf,
    },
    /// Bind `/usr` onto itself, then remount it read-only (legacy root).
    UsrReadonlyBind { target: PathBuf },
    /// The hotfix overlay of `ostree admin unlock --hotfix`.
    UsrHotfixOverlay {
        lower: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
        readonly: bool,
    },
    /// Bind the physical root into the new root (it becomes `/sysroot` after switch-root).
    BindPhysicalRoot { source: PathBuf, target: PathBuf },
    /// `umount2(path, MNT_DETACH)`: the old sysroot mount, now reachable in the new root.
    Detach { path: PathBuf },
    /// Bind the stateroot's `var` onto itself and remount it writable, so it stays
    /// writable under a read-only sysroot.
    VarSelfBind { path: PathBuf },
    /// Write `/run/ostree-booted` (mode 0644, atomically) from [`Plan::booted`].
    WriteBooted { path: PathBuf },
    /// `mount(source, target, MS_MOVE)`.
    MoveToSysroot { source: PathBuf, target: PathBuf },
    /// `rmdir`.
    Rmdir { path: PathBuf },
    /// Remount the bind of the physical root read-only.
    SysrootReadonly { path: PathBuf },
}

/// The ordered steps and the resulting state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// What `/run/ostree-booted` will record. The executor fills in what only execution
    /// knows: the deployment's `(st_dev, st_ino)` (left `(0, 0)` here) and the name
    /// `mkdtemp` chose for a transient /etc (here [`TRANSIENT_ETC_TEMPLATE`]).
    pub booted: OstreeBooted,
    /// The deployment directory, absolute (`<sysroot>/ostree/deploy/...`).
    pub deploy_path: PathBuf,
    pub using_composefs: bool,
    /// Effective `sysroot.readonly`, after the legacy `repo/config` flag.
    pub sysroot_readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("Must enable composefs with root.transient")]
    TransientNeedsComposefs,
    #[error(
        "composefs is required (composefs.enabled={mode}) but deployment {} has no {COMPOSEFS_IMAGE}", deploy.display()
    )]
    MissingImage {
        mode: ComposefsMode,
        deploy: PathBuf,
    },
}

/// Whether prepare-root mounts /etc on its own (a bind, or an overlay when transient):
/// with a read-only sysroot, a composefs root or a transient root. The plan decides
/// with it; the generator asks [`booted_etc_is_mount`].
pub fn etc_is_mount(sysroot_readonly: bool, composefs: bool, root_transient: bool) -> bool {
    sysroot_readonly || composefs || root_transient
}

/// [`etc_is_mount`] for the boot that `/run/ostree-booted` records.
pub fn booted_etc_is_mount(b: &OstreeBooted) -> bool {
    etc_is_mount(b.sysroot_ro, b.composefs == Some(true), b.root_transient)
        || b.transient_etc.is_some()
}

/// Plans the boot of `dep` under the sysroot mounted at `sysroot` (normally `/sysroot`).
pub fn plan(
    cfg: &RootConfig,
    dep: &ResolvedDeployment,
    sysroot: &Path,
    facts: &Facts,
) -> Result<Plan, PlanError> {
    let tmp = Path::new(TMP_SYSROOT);
    let deploy_path = sysroot.join(&dep.relpath);

    let using_composefs = match cfg.composefs {
        ComposefsMode::No => false,
        // maybe with verity still required (file `verity`, karg `maybe`) must not fall
        // back to an unverified bind mount: it needs the image like `verity` does.
        ComposefsMode::Maybe if !cfg.require_verity => facts.has_composefs_image,
        mode => {
            if !facts.has_composefs_image {
                return Err(PlanError::MissingImage {
                    mode,
                    deploy: deploy_path,
                });
            }
            true
        }
    };
    if cfg.root_transient && !using_composefs {
        return Err(PlanError::TransientNeedsComposefs);
    }
    // The legacy repo flag is consulted only when nothing made the sysroot read-only and
    // composefs is not required (upstream never reads it for composefs=yes).
    let sysroot_readonly =
        cfg.sysroot_readonly || (!cfg.composefs.is_required() && facts.legacy_repo_readonly);
    let signed = using_composefs && cfg.is_signed;

    let mut steps = vec![
        Step::MkdirRun {
            run: RUN_OSTREE.into(),
            private: RUN_OSTREE_PRIVATE.into(),
        },
        Step::MakeRootPrivate,
        Step::Mkdir {
            path: tmp.into(),
            mode: 0o755,
            exist_ok: true,
            parents: false,
        },
    ];

    let mut booted = OstreeBooted {
        root_transient: cfg.root_transient,
        root_transient_ro: cfg.root_transient_ro,
        sysroot_ro: sysroot_readonly,
        ..OstreeBooted::default()
    };

    if using_composefs {
        steps.push(Step::Mkdir {
            path: CFS_LOWER_MOUNTDIR.into(),
            mode: 0o700,
            exist_ok: true,
            parents: false,
        });
        let transient = cfg.root_transient.then(|| TransientUpper {
            upper: TRANSIENT_ROOT_UPPER.into(),
            work: TRANSIENT_ROOT_WORK.into(),
        });
        if let Some(t) = &transient {
            steps.push(Step::Mkdir {
                path: t.upper.clone(),
                mode: 0o755,
                exist_ok: true,
                parents: true,
            });
            steps.push(Step::Mkdir {
                path: t.work.clone(),
                mode: 0o700,
                exist_ok: true,
                parents: true,
            });
        }
        let expected_digest = if signed {
            steps.push(Step::VerifyCommit {
                repo: sysroot.join("ostree/repo"),
                checksum: dep.name.checksum.clone(),
                keypath: cfg.keypath.clone(),
            });
            booted.composefs_signed = Some(cfg.keypath.display().to_string());
            ExpectedDigest::FromVerifiedCommit
        } else {
            ExpectedDigest::None
        };
        let require_verity = signed || cfg.require_verity;
        steps.push(Step::MountComposefs {
            image: deploy_path.join(COMPOSEFS_IMAGE),
            objects: sysroot.join("ostree/repo/objects"),
            lower_mountdir: CFS_LOWER_MOUNTDIR.into(),
            target: tmp.into(),
            require_verity,
            expected_digest,
            // Transient roots are writable overlays unless transient-ro.
            readonly: !cfg.root_transient || cfg.root_transient_ro,
            transient,
        });
        booted.composefs = Some(true);
        booted.composefs_verity = Some(require_verity);
        steps.push(Step::VolatileRoot {
            link: VOLATILE_ROOT.into(),
            sysroot: sysroot.into(),
        });
    } else {
        steps.push(Step::BindDeployment {
            source: deploy_path.clone(),
            target: tmp.into(),
        });
    }

    if etc_is_mount(sysroot_readonly, using_composefs, cfg.root_transient) {
        if cfg.etc_transient {
            steps.push(Step::EtcTransientOverlay {
                lower: tmp.join("usr/etc"),
                target: tmp.join("etc"),
                template: TRANSIENT_ETC_TEMPLATE.into(),
            });
            booted.transient_etc = Some(TRANSIENT_ETC_TEMPLATE.to_string());
        } else {
            steps.push(Step::EtcBind {
                source: deploy_path.join("etc"),
                target: tmp.join("etc"),
            });
        }
    }

    if facts.has_usr_overlay && !signed {
        steps.push(Step::UsrHotfixOverlay {
            lower: tmp.join("usr"),
            upper: deploy_path.join(USR_OVL_UPPER),
            work: deploy_path.join(USR_OVL_WORK),
            target: tmp.join("usr"),
            readonly: !facts.sysroot_writable,
        });
    } else if !using_composefs {
        steps.push(Step::UsrReadonlyBind {
            target: tmp.join("usr"),
        });
    }

    steps.push(Step::BindPhysicalRoot {
        source: sysroot.into(),
        target: tmp.join("sysroot"),
    });
    steps.push(Step::Detach {
        path: sysroot.into(),
    });
    if sysroot_readonly {
        steps.push(Step::VarSelfBind {
            path: tmp.join("sysroot").join(dep.stateroot_var()),
        });
    }
    steps.push(Step::WriteBooted {
        path: RUN_OSTREE_BOOTED.into(),
    });
    steps.push(Step::MoveToSysroot {
        source: tmp.into(),
        target: sysroot.into(),
    });
    steps.push(Step::Rmdir { path: tmp.into() });
    if sysroot_readonly {
        steps.push(Step::SysrootReadonly {
            path: sysroot.join("sysroot"),
        });
    }

    Ok(Plan {
        steps,
        booted,
        deploy_path,
        using_composefs,
        sysroot_readonly,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::Cmdline;
    use crate::config::PrepareRootConfig;
    use crate::deployment::DeployName;
    use crate::keyfile::KeyFile;

    const CSUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn dep() -> ResolvedDeployment {
        ResolvedDeployment {
            relpath: PathBuf::from(format!("ostree/deploy/os/deploy/{CSUM}.0")),
            stateroot: "os".into(),
            name: DeployName {
                checksum: CSUM.into(),
                serial: 0,
            },
        }
    }

    fn rootcfg(file: &str, karg: &str) -> RootConfig {
        let kf = KeyFile::parse(file, Path::new("/etc/ostree/prepare-root.conf")).unwrap();
        let c = PrepareRootConfig::from_keyfile(Some(&kf)).unwrap();
        RootConfig::new(&c, &Cmdline::parse(karg)).unwrap()
    }

    fn facts(image: bool) -> Facts {
        Facts {
            has_composefs_image: image,
            sysroot_writable: true,
            ..Facts::default()
        }
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn deploy() -> PathBuf {
        p(&format!("/sysroot/ostree/deploy/os/deploy/{CSUM}.0"))
    }

    #[test]
    fn legacy_default_plan() {
        let plan = plan(
            &rootcfg("", "ostree=/x"),
            &dep(),
            Path::new("/sysroot"),
            &facts(true),
        )
        .unwrap();
        assert_eq!(
            plan.steps,
            vec![
                Step::MkdirRun {
                    run: p("/run/ostree"),
                    private: p("/run/ostree/.private")
                },
                Step::MakeRootPrivate,
                Step::Mkdir {
                    path: p("/sysroot.tmp"),
                    mode: 0o755,
                    exist_ok: true,
                    parents: false
                },
                Step::BindDeployment {
                    source: deploy(),
                    target: p("/sysroot.tmp")
                },
                Step::UsrReadonlyBind {
                    target: p("/sysroot.tmp/usr")
                },
                Step::BindPhysicalRoot {
                    source: p("/sysroot"),
                    target: p("/sysroot.tmp/sysroot")
                },
                Step::Detach {
                    path: p("/sysroot")
                },
                Step::WriteBooted {
                    path: p("/run/ostree-booted")
                },
                Step::MoveToSysroot {
                    source: p("/sysroot.tmp"),
                    target: p("/sysroot")
                },
                Step::Rmdir {
                    path: p("/sysroot.tmp")
                },
            ]
        );
        assert_eq!(
            plan.booted.keys(),
            vec![
                "backing-root-device-inode",
                "root.transient",
                "root.transient-ro",
                "sysroot-ro"
            ]
        );
        assert!(!plan.booted.sysroot_ro && !plan.using_composefs);
    }

    #[test]
    fn composefs_signed_plan() {
        let cfg = rootcfg("[composefs]\nenabled=signed\nkeypath=/etc/k.pub\n", "");
        let plan = plan(&cfg, &dep(), Path::new("/sysroot"), &facts(true)).unwrap();
        assert_eq!(
            plan.steps,
            vec![
                Step::MkdirRun {
                    run: p("/run/ostree"),
                    private: p("/run/ostree/.private")
                },
                Step::MakeRootPrivate,
                Step::Mkdir {
                    path: p("/sysroot.tmp"),
                    mode: 0o755,
                    exist_ok: true,
                    parents: false
                },
                Step::Mkdir {
                    path: p("/run/ostree/.private/cfsroot-lower"),
                    mode: 0o700,
                    exist_ok: true,
                    parents: false
                },
                Step::VerifyCommit {
                    repo: p("/sysroot/ostree/repo"),
                    checksum: CSUM.into(),
                    keypath: p("/etc/k.pub")
                },
                Step::MountComposefs {
                    image: deploy().join(".ostree.cfs"),
                    objects: p("/sysroot/ostree/repo/objects"),
                    lower_mountdir: p("/run/ostree/.private/cfsroot-lower"),
                    target: p("/sysroot.tmp"),
                    require_verity: true,
                    expected_digest: ExpectedDigest::FromVerifiedCommit,
                    readonly: true,
                    transient: None
                },
                Step::VolatileRoot {
                    link: p("/run/systemd/volatile-root"),
                    sysroot: p("/sysroot")
                },
                Step::EtcBind {
                    source: deploy().join("etc"),
                    target: p("/sysroot.tmp/etc")
                },
                Step::BindPhysicalRoot {
                    source: p("/sysroot"),
                    target: p("/sysroot.tmp/sysroot")
                },
                Step::Detach {
                    path: p("/sysroot")
                },
                Step::VarSelfBind {
                    path: p("/sysroot.tmp/sysroot/ostree/deploy/os/var")
                },
                Step::WriteBooted {
                    path: p("/run/ostree-booted")
                },
                Step::MoveToSysroot {
                    source: p("/sysroot.tmp"),
                    target: p("/sysroot")
                },
                Step::Rmdir {
                    path: p("/sysroot.tmp")
                },
                Step::SysrootReadonly {
                    path: p("/sysroot/sysroot")
                },
            ]
        );
        assert_eq!(
            plan.booted,
            OstreeBooted {
                backing_root_device_inode: (0, 0),
                root_transient: false,
                root_transient_ro: false,
                composefs_signed: Some("/etc/k.pub".into()),
                composefs: Some(true),
                composefs_verity: Some(true),
                sysroot_ro: true,
                transient_etc: None,
            }
        );
        assert_eq!(
            plan.booted.keys(),
            vec![
                "backing-root-device-inode",
                "root.transient",
                "root.transient-ro",
                "composefs.signed",
                "composefs",
                "composefs.verity",
                "sysroot-ro"
            ]
        );
    }

    #[test]
    fn transient_root_and_etc() {
        let cfg = rootcfg(
            "[composefs]\nenabled=yes\n[root]\ntransient=true\n[etc]\ntransient=true\n",
            "",
        );
        let plan = plan(&cfg, &dep(), Path::new("/sysroot"), &facts(true)).unwrap();
        let mount = plan
            .steps
            .iter()
            .find(|s| matches!(s, Step::MountComposefs { .. }))
            .unwrap();
        let Step::MountComposefs {
            readonly,
            transient,
            require_verity,
            ..
        } = mount
        else {
            unreachable!()
        };
        assert!(!readonly && !require_verity);
        assert_eq!(
            transient,
            &Some(TransientUpper {
                upper: p("/run/ostree/.private/root/upper"),
                work: p("/run/ostree/.private/root/work")
            })
        );
        assert!(plan.steps.contains(&Step::EtcTransientOverlay {
            lower: p("/sysroot.tmp/usr/etc"),
            target: p("/sysroot.tmp/etc"),
            template: p("/run/ostree/transient-etc.XXXXXX"),
        }));
        assert_eq!(
            plan.booted.transient_etc.as_deref(),
            Some("/run/ostree/transient-etc.XXXXXX")
        );
        assert_eq!(plan.booted.keys().last(), Some(&"transient-etc"));
        // The transient dirs are made before the mount.
        let pos = |f: &dyn Fn(&Step) -> bool| plan.steps.iter().position(f).unwrap();
        assert!(
            pos(
                &|s| matches!(s, Step::Mkdir { path, .. } if path == Path::new(TRANSIENT_ROOT_UPPER))
            ) < pos(&|s| matches!(s, Step::MountComposefs { .. }))
        );
    }

    #[test]
    fn transient_ro_is_readonly_with_upper() {
        let cfg = rootcfg("[composefs]\nenabled=yes\n[root]\ntransient-ro=true\n", "");
        let plan = plan(&cfg, &dep(), Path::new("/sysroot"), &facts(true)).unwrap();
        assert!(plan.steps.iter().any(|s| matches!(
            s,
            Step::MountComposefs {
                readonly: true,
                transient: Some(_),
                ..
            }
        )));
        assert!(plan.booted.root_transient && plan.booted.root_transient_ro);
    }

    #[test]
    fn required_composefs_without_image_fails_closed() {
        for mode in ["yes", "verity", "signed"] {
            let cfg = rootcfg(&format!("[composefs]\nenabled={mode}\n"), "");
            let e = plan(&cfg, &dep(), Path::new("/sysroot"), &facts(false)).unwrap_err();
            assert!(matches!(e, PlanError::MissingImage { .. }), "{mode}");
        }
        // The karg forcing composefs also fails closed.
        let cfg = rootcfg("", "ostree.prepare-root.composefs=verity");
        assert!(plan(&cfg, &dep(), Path::new("/sysroot"), &facts(false)).is_err());
    }

    #[test]
    fn maybe_without_image_is_legacy() {
        let cfg = rootcfg("[composefs]\nenabled=maybe\n", "");
        let plan = plan(&cfg, &dep(), Path::new("/sysroot"), &facts(false)).unwrap();
        assert!(!plan.using_composefs && plan.booted.composefs.is_none());
        assert!(
            plan.steps
                .iter()
                .any(|s| matches!(s, Step::BindDeployment { .. }))
        );
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::VolatileRoot { .. }))
        );
    }

    #[test]
    fn legacy_repo_readonly_flag() {
        let f = Facts {
            legacy_repo_readonly: true,
            ..facts(true)
        };
        let plan1 = plan(&rootcfg("", ""), &dep(), Path::new("/sysroot"), &f).unwrap();
        assert!(plan1.sysroot_readonly && plan1.booted.sysroot_ro);
        // Even an explicit false is overridden by the legacy flag, as upstream.
        let plan2 = plan(
            &rootcfg("[sysroot]\nreadonly=false\n", ""),
            &dep(),
            Path::new("/sysroot"),
            &f,
        )
        .unwrap();
        assert!(plan2.sysroot_readonly);
        // Not consulted when composefs is required.
        let cfg = rootcfg("[composefs]\nenabled=yes\n[sysroot]\nreadonly=false\n", "");
        let plan3 = plan(&cfg, &dep(), Path::new("/sysroot"), &f).unwrap();
        assert!(!plan3.sysroot_readonly);
    }

    #[test]
    fn hotfix_overlay() {
        let f = Facts {
            has_usr_overlay: true,
            sysroot_writable: false,
            has_composefs_image: true,
            ..Facts::default()
        };
        let plan1 = plan(&rootcfg("", ""), &dep(), Path::new("/sysroot"), &f).unwrap();
        assert!(plan1.steps.contains(&Step::UsrHotfixOverlay {
            lower: p("/sysroot.tmp/usr"),
            upper: deploy().join(".usr-ovl-upper"),
            work: deploy().join(".usr-ovl-work"),
            target: p("/sysroot.tmp/usr"),
            readonly: true,
        }));
        assert!(
            !plan1
                .steps
                .iter()
                .any(|s| matches!(s, Step::UsrReadonlyBind { .. }))
        );
        let plan2 = plan(
            &rootcfg("[composefs]\nenabled=yes\n", ""),
            &dep(),
            Path::new("/sysroot"),
            &f,
        )
        .unwrap();
        assert!(
            plan2
                .steps
                .iter()
                .any(|s| matches!(s, Step::UsrHotfixOverlay { .. }))
        );
        // Never over a signed root.
        let plan3 = plan(
            &rootcfg("[composefs]\nenabled=signed\n", ""),
            &dep(),
            Path::new("/sysroot"),
            &f,
        )
        .unwrap();
        assert!(!plan3.steps.iter().any(|s| matches!(
            s,
            Step::UsrHotfixOverlay { .. } | Step::UsrReadonlyBind { .. }
        )));
    }

    #[test]
    fn gather_facts() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let depdir = r.join(&dep().relpath);
        std::fs::create_dir_all(&depdir).unwrap();
        std::fs::create_dir_all(r.join("ostree/repo")).unwrap();
        let f = Facts::gather(r, &dep()).unwrap();
        assert_eq!(
            (
                f.has_composefs_image,
                f.has_usr_overlay,
                f.legacy_repo_readonly
            ),
            (false, false, false)
        );
        // A temp dir on a writable filesystem.
        assert!(f.sysroot_writable);
        std::fs::write(depdir.join(".ostree.cfs"), "").unwrap();
        std::fs::create_dir(depdir.join(".usr-ovl-work")).unwrap();
        let cfg = r.join("ostree/repo/config");
        std::fs::write(
            &cfg,
            "[core]\nrepo_version=1\n[remote \"o\"]\nurl=x\n[sysroot]\nreadonly=true\n",
        )
        .unwrap();
        let f = Facts::gather(r, &dep()).unwrap();
        assert_eq!(
            (
                f.has_composefs_image,
                f.has_usr_overlay,
                f.legacy_repo_readonly
            ),
            (true, true, true)
        );
        // ostree ignores a broken repo/config or value here.
        for bad in [
            "[sysroot]\nreadonly=yes\n",
            "readonly=true\n",
            "[sysroot]\nreadonly\n",
        ] {
            std::fs::write(&cfg, bad).unwrap();
            assert!(
                !Facts::gather(r, &dep()).unwrap().legacy_repo_readonly,
                "{bad:?}"
            );
        }
        assert!(Facts::gather(&r.join("nonexistent"), &dep()).is_err());
    }

    /// tests-unit-container/test-prepare-root.sh, whose command line forces
    /// `ostree.prepare-root.composefs=0`.
    #[test]
    fn upstream_test_prepare_root_sh_cases() {
        let karg = "root=UUID=cafebabe ostree.prepare-root.composefs=0 ostree=/boot/ostree.0";
        let f = facts(true);
        let has = |plan: &Plan, f: &dyn Fn(&Step) -> bool| plan.steps.iter().any(f);
        // 1. Image config with readonly=true: /etc and /usr mounted, /sysroot ro, no
        //    transient /etc.
        let p1 = plan(
            &rootcfg("[sysroot]\nreadonly=true\n", karg),
            &dep(),
            Path::new("/sysroot"),
            &f,
        )
        .unwrap();
        assert!(has(&p1, &|s| matches!(s, Step::EtcBind { .. })));
        assert!(has(&p1, &|s| matches!(s, Step::UsrReadonlyBind { .. })));
        assert!(has(&p1, &|s| matches!(s, Step::SysrootReadonly { .. })));
        assert!(p1.booted.transient_etc.is_none() && !p1.using_composefs);
        // 2. Without prepare-root.conf: /sysroot stays rw.
        let p2 = plan(&rootcfg("", karg), &dep(), Path::new("/sysroot"), &f).unwrap();
        assert!(!has(&p2, &|s| matches!(s, Step::SysrootReadonly { .. })));
        assert!(!p2.booted.sysroot_ro);
        // 3. [etc] transient = true appended: the /etc overlay.
        let p3 = plan(
            &rootcfg("[sysroot]\nreadonly=true\n[etc]\ntransient = true\n", karg),
            &dep(),
            Path::new("/sysroot"),
            &f,
        )
        .unwrap();
        assert!(has(&p3, &|s| matches!(s, Step::EtcTransientOverlay { .. })));
        // 4. /boot is never mounted by prepare-root.
        for p in [&p1, &p2, &p3] {
            assert!(!p.steps.iter().any(|s| format!("{s:?}").contains("/boot")));
        }
    }

    /// The plan properties an independent reading of ostree.md 1.4-1.8 predicts.
    #[derive(Debug, PartialEq)]
    struct Expect {
        composefs: bool,
        verity: bool,
        signed: bool,
        root_writable: bool,
        etc: &'static str,
        usr: &'static str,
        ro: bool,
    }

    fn oracle(
        enabled: Option<&str>,
        karg: Option<&str>,
        etc_t: bool,
        root: Option<&str>,
        ro: Option<bool>,
        f: &Facts,
    ) -> Result<Expect, &'static str> {
        // Config table (1.4), then the karg.
        let (mut mode, mut verity, mut signed) = match enabled {
            None | Some("no") => ("no", false, false),
            Some("maybe") => ("maybe", false, false),
            Some("yes") => ("yes", false, false),
            Some("verity") => ("yes", true, false),
            Some("signed") => ("yes", true, true),
            _ => unreachable!(),
        };
        match karg {
            None => {}
            Some("signed") => (mode, verity, signed) = ("yes", true, true),
            Some("verity") => (mode, verity, signed) = ("yes", true, false),
            Some(m) => (mode, signed) = (m, false),
        }
        let composefs = match mode {
            "no" => false,
            "maybe" if !verity => f.has_composefs_image,
            _ if f.has_composefs_image => true,
            _ => return Err("missing image"),
        };
        let transient = root.is_some();
        if transient && !composefs {
            return Err("transient needs composefs");
        }
        let mut sysro = ro.unwrap_or(mode == "yes");
        if !sysro && mode != "yes" && f.legacy_repo_readonly {
            sysro = true;
        }
        let etc = if !(sysro || composefs || transient) {
            "none"
        } else if etc_t {
            "overlay"
        } else {
            "bind"
        };
        let usr = if f.has_usr_overlay && !(composefs && signed) {
            "hotfix"
        } else if !composefs {
            "robind"
        } else {
            "none"
        };
        Ok(Expect {
            composefs,
            verity: composefs && verity,
            signed: composefs && signed,
            root_writable: root == Some("transient"),
            etc,
            usr,
            ro: sysro,
        })
    }

    fn observe(plan: &Plan) -> Expect {
        let has = |f: &dyn Fn(&Step) -> bool| plan.steps.iter().any(f);
        let mount = plan.steps.iter().find_map(|s| match s {
            Step::MountComposefs {
                require_verity,
                readonly,
                ..
            } => Some((*require_verity, *readonly)),
            _ => None,
        });
        Expect {
            composefs: mount.is_some(),
            verity: mount.is_some_and(|m| m.0),
            signed: has(&|s| matches!(s, Step::VerifyCommit { .. })),
            root_writable: mount.is_some_and(|m| !m.1),
            etc: if has(&|s| matches!(s, Step::EtcTransientOverlay { .. })) {
                "overlay"
            } else if has(&|s| matches!(s, Step::EtcBind { .. })) {
                "bind"
            } else {
                "none"
            },
            usr: if has(&|s| matches!(s, Step::UsrHotfixOverlay { .. })) {
                "hotfix"
            } else if has(&|s| matches!(s, Step::UsrReadonlyBind { .. })) {
                "robind"
            } else {
                "none"
            },
            ro: has(&|s| matches!(s, Step::SysrootReadonly { .. })),
        }
    }

    /// Every combination of the config keys, the karg override and the facts.
    #[test]
    fn all_combinations_match_oracle() {
        let mut checked = 0;
        for enabled in [
            None,
            Some("no"),
            Some("maybe"),
            Some("yes"),
            Some("verity"),
            Some("signed"),
        ] {
            for karg in [
                None,
                Some("no"),
                Some("yes"),
                Some("maybe"),
                Some("verity"),
                Some("signed"),
            ] {
                for etc_t in [false, true] {
                    for root in [None, Some("transient"), Some("transient-ro")] {
                        for ro in [None, Some(true), Some(false)] {
                            for bits in 0..16u8 {
                                let f = Facts {
                                    has_composefs_image: bits & 1 != 0,
                                    sysroot_writable: bits & 2 != 0,
                                    has_usr_overlay: bits & 4 != 0,
                                    legacy_repo_readonly: bits & 8 != 0,
                                };
                                let mut file = String::new();
                                if let Some(e) = enabled {
                                    file += &format!("[composefs]\nenabled={e}\n");
                                }
                                file += &format!("[etc]\ntransient={etc_t}\n");
                                if let Some(r) = root {
                                    file += &format!("[root]\n{r}=true\n");
                                }
                                if let Some(r) = ro {
                                    file += &format!("[sysroot]\nreadonly={r}\n");
                                }
                                let karg_s = karg
                                    .map(|k| format!("ostree=/x ostree.prepare-root.composefs={k}"))
                                    .unwrap_or_default();
                                // A karg lowering the file's verity or signed is
                                // refused before any plan (config.rs).
                                let lowering = match (enabled, karg) {
                                    (Some("signed"), Some(k)) => k != "signed",
                                    (Some("verity"), Some(k)) => matches!(k, "no" | "maybe"),
                                    _ => false,
                                };
                                let kf = KeyFile::parse(&file, Path::new("/etc/x.conf")).unwrap();
                                let c = PrepareRootConfig::from_keyfile(Some(&kf)).unwrap();
                                let cfg = match RootConfig::new(&c, &Cmdline::parse(&karg_s)) {
                                    Ok(cfg) => {
                                        assert!(!lowering, "{file:?} {karg:?} accepted");
                                        cfg
                                    }
                                    Err(e) => {
                                        assert!(lowering, "{file:?} {karg:?}: {e}");
                                        checked += 1;
                                        continue;
                                    }
                                };
                                let got = plan(&cfg, &dep(), Path::new("/sysroot"), &f);
                                let want = oracle(enabled, karg, etc_t, root, ro, &f);
                                let ctx = format!("{file:?} karg={karg:?} {f:?}");
                                match (got, want) {
                                    (Ok(plan), Ok(want)) => {
                                        assert_eq!(observe(&plan), want, "{ctx}");
                                        check_invariants(&plan, &cfg, &ctx);
                                    }
                                    (Err(_), Err(_)) => {}
                                    (got, want) => panic!("{ctx}: got {got:?}, want {want:?}"),
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 6 * 6 * 2 * 3 * 3 * 16);
    }

    /// Order and record properties every successful plan has.
    fn check_invariants(plan: &Plan, cfg: &RootConfig, ctx: &str) {
        let pos = |f: &dyn Fn(&Step) -> bool| plan.steps.iter().position(f);
        let root = pos(&|s| matches!(s, Step::MountComposefs { .. } | Step::BindDeployment { .. }))
            .unwrap_or_else(|| panic!("{ctx}: no root"));
        assert_eq!(
            plan.steps.first(),
            Some(&Step::MkdirRun {
                run: p(RUN_OSTREE),
                private: p(RUN_OSTREE_PRIVATE)
            }),
            "{ctx}"
        );
        assert_eq!(plan.steps.get(1), Some(&Step::MakeRootPrivate), "{ctx}");
        let etc = pos(&|s| matches!(s, Step::EtcBind { .. } | Step::EtcTransientOverlay { .. }));
        let bind_phys = pos(&|s| matches!(s, Step::BindPhysicalRoot { .. })).unwrap();
        let detach = pos(&|s| matches!(s, Step::Detach { .. })).unwrap();
        let write = pos(&|s| matches!(s, Step::WriteBooted { .. })).unwrap();
        let mv = pos(&|s| matches!(s, Step::MoveToSysroot { .. })).unwrap();
        assert!(etc.is_none_or(|e| root < e && e < bind_phys), "{ctx}");
        assert!(
            root < bind_phys && bind_phys + 1 == detach && detach < write && write < mv,
            "{ctx}"
        );
        if let Some(v) = pos(&|s| matches!(s, Step::VarSelfBind { .. })) {
            assert!(detach < v && v < write, "{ctx}");
        }
        if let Some(r) = pos(&|s| matches!(s, Step::SysrootReadonly { .. })) {
            assert_eq!(r, plan.steps.len() - 1, "{ctx}");
        }
        if let Some(v) = pos(&|s| matches!(s, Step::VerifyCommit { .. })) {
            assert!(v < root, "{ctx}");
        }
        assert_eq!(
            plan.steps
                .iter()
                .any(|s| matches!(s, Step::VarSelfBind { .. })),
            plan.sysroot_readonly,
            "{ctx}"
        );
        let b = &plan.booted;
        // What the generator concludes from the record is what the plan did.
        assert_eq!(
            booted_etc_is_mount(b),
            plan.steps
                .iter()
                .any(|s| matches!(s, Step::EtcBind { .. } | Step::EtcTransientOverlay { .. })),
            "{ctx}"
        );
        assert_eq!(b.composefs == Some(true), plan.using_composefs, "{ctx}");
        assert_eq!(b.sysroot_ro, plan.sysroot_readonly, "{ctx}");
        assert_eq!(
            (b.root_transient, b.root_transient_ro),
            (cfg.root_transient, cfg.root_transient_ro),
            "{ctx}"
        );
        assert_eq!(
            b.composefs_signed.is_some(),
            plan.steps
                .iter()
                .any(|s| matches!(s, Step::VerifyCommit { .. })),
            "{ctx}"
        );
        assert_eq!(
            b.transient_etc.is_some(),
            etc.is_some_and(|e| matches!(plan.steps[e], Step::EtcTransientOverlay { .. })),
            "{ctx}"
        );
        assert_eq!(
            plan.using_composefs,
            pos(&|s| matches!(s, Step::VolatileRoot { .. })).is_some(),
            "{ctx}"
        );
    }
}
