//! Staged deployments, as `ostree admin deploy --stage` and `ostree admin
//! finalize-staged`: the deployment is checked out while the system runs, and its /etc
//! merge and boot entries are done at shutdown, so /etc changes made after the update
//! are carried over.
//!
//! The state between the two is `/run/ostree/staged-deployment` in libostree's format
//! ([`ostree_boot::ostree::staged`]), so either tool finalizes what the other staged.
//! Like libostree the file is only looked at when the sysroot is the booted one; after
//! a reboot without finalization /run is empty and the next change's cleanup removes
//! the unreferenced deployment.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ostree_boot::layout::{BootEntry, Deployment, EntryNaming, Kargs, SysrootState};
use ostree_boot::ostree::repo::Repo;
use ostree_boot::ostree::staged::{
    FINALIZE_FAILURE_STAMP, RUN_STAGED, RUN_STAGED_INITRDS, RUN_STAGED_LOCKED, Staged, StagedRef,
};

use super::boot::{self, KernelFiles, Planned};
use super::{DeployOptions, KargsSpec, checkpoint, fsutil};
use crate::journal;

/// The staged deployment of this boot, if `booted` (the sysroot is the running one) and
/// a deployment is staged. A file that cannot be read is an error, as in libostree,
/// rather than a reason to remove a deployment someone staged.
pub fn read_staged(booted: Option<&Deployment>) -> Result<Option<Staged>> {
    if booted.is_none() {
        return Ok(None);
    }
    let f = match fs::File::open(RUN_STAGED) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {RUN_STAGED}")),
    };
    let mut bytes = Vec::new();
    use std::io::Read;
    f.take(ostree_boot::ostree::staged::MAX_SIZE as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {RUN_STAGED}"))?;
    Staged::from_bytes(&bytes).with_context(|| format!("loading {RUN_STAGED}"))
}

/// A change of the boot configuration other than finalization drops the staged
/// deployment, as `_ostree_sysroot_write_deployments_internal`: its state file and lock
/// go now, its directory with the cleanup that follows.
pub fn drop_staged(booted: Option<&Deployment>) -> Result<Option<StagedRef>> {
    let Some(s) = read_staged(booted)? else {
        return Ok(None);
    };
    fs::remove_file(RUN_STAGED).with_context(|| format!("removing {RUN_STAGED}"))?;
    remove_if_present(Path::new(RUN_STAGED_LOCKED))?;
    Ok(Some(s.target))
}

/// Whether `d` is the deployment `r` names.
pub fn names(r: &StagedRef, d: &Deployment) -> bool {
    r.osname == d.stateroot && r.csum == d.csum && r.deployserial == d.deployserial
}

fn to_ref(d: &Deployment) -> StagedRef {
    StagedRef {
        osname: d.stateroot.clone(),
        csum: d.csum.clone(),
        deployserial: d.deployserial,
        bootcsum: d.bootcsum.clone(),
    }
}

#[derive(Debug)]
pub struct StageResult {
    pub target: StagedRef,
    pub locked: bool,
    /// The deployment staged before, now removed.
    pub replaced: Option<String>,
}

/// `ostree-composefs deploy --stage`: check out `opts.rev` as a deployment and leave its
/// finalization to shutdown. Only a booted system stages, as libostree.
pub fn stage(opts: &DeployOptions, lock_finalization: bool) -> Result<StageResult> {
    stage_in(opts, lock_finalization, super::begin_change(&opts.sysroot)?)
}

/// [`stage`] within a change already begun (lock held, state read).
pub fn stage_in(
    opts: &DeployOptions,
    lock_finalization: bool,
    change: super::Change,
) -> Result<StageResult> {
    let sysroot = opts.sysroot.as_path();
    change.check_for(sysroot)?;
    let super::Change {
        _lock,
        state,
        booted,
        ..
    } = change;
    let Some(booted) = booted else {
        bail!("Cannot stage deployment: Not currently booted into an OSTree system");
    };
    let previous = read_staged(Some(&booted))?;
    let sr = super::resolve_stateroot(sysroot, opts.stateroot.as_deref(), Some(&booted))?;
    let super::Source {
        repo,
        csum: csum_b,
        hex: csum,
        commit,
        version,
    } = super::load_source(sysroot, &opts.rev)?;
    let merge = super::merge_deployment(&state, &sr, Some(&booted)).cloned();
    let serial = super::allocate_deployserial(sysroot, &sr, &csum)?;
    let name = format!("{csum}.{serial}");
    fs::create_dir_all(
        sysroot
            .join("ostree/deploy")
            .join(&sr)
            .join(super::STAGING_DIR),
    )
    .context("creating the staging directory")?;

    let result = (|| -> Result<StageResult> {
        // No /etc merge and no seal now: both happen at finalization.
        let (kernel, _title, _etc, _dir) = super::stage(
            sysroot,
            opts,
            &repo,
            &csum_b,
            &commit,
            &sr,
            &name,
            None,
            version.as_deref(),
            false,
        )?;
        if opts.kernel.is_some() {
            // libostree finds the kernel in the tree again at finalization; one given
            // on the command line is not in the tree, so it goes to /boot now, where
            // finalization finds it by its bootcsum.
            boot::install_kernel(sysroot, &sr, &kernel)?;
        }
        let kargs = match &opts.kargs {
            KargsSpec::Exact(k) => {
                let mut k = k.clone();
                k.remove_key("ostree");
                Some(k.args().to_vec())
            }
            // As `ostree admin deploy --karg`: the merge deployment's arguments with the
            // given ones replacing, stored whole; none given leaves the choice to
            // finalization (the merge deployment's arguments then).
            KargsSpec::Merge(args) if !args.is_empty() => {
                let mut k = merge
                    .as_ref()
                    .map(|m| Kargs::parse(m.entry.get("options").unwrap_or("")))
                    .unwrap_or_default();
                for a in args {
                    k.replace(a);
                }
                Some(k.args().to_vec())
            }
            KargsSpec::Merge(_) => None,
        };
        let target = StagedRef {
            osname: sr.clone(),
            csum: csum.clone(),
            deployserial: serial,
            bootcsum: kernel.bootcsum.clone(),
        };
        let staged = Staged {
            target: target.clone(),
            locked: lock_finalization,
            merge: merge.as_ref().map(to_ref),
            kargs,
            overlay_initrds: None,
            bootconfig_extra: None,
        };
        let bytes = staged
            .to_bytes()
            .context("serialising the staged deployment")?;
        fsutil::mkdir_p(Path::new("/run/ostree"), 0o755)?;
        checkpoint("before-staged-file")?;
        // libostree writes it without fsync (GLNX_FILE_REPLACE_NODATASYNC): /run is tmpfs.
        fsutil::write_atomic(Path::new(RUN_STAGED), &bytes, 0o644)?;
        checkpoint("staged-file-written")?;
        // As libostree's cleanup after staging: the deployment refs list the staged
        // deployment first, so `ostree prune` keeps its commit until finalization.
        let mut refs = vec![Deployment {
            stateroot: sr.clone(),
            csum: csum.clone(),
            deployserial: serial,
            bootcsum: kernel.bootcsum.clone(),
            bootserial: 0,
            entry: BootEntry::default(),
        }];
        refs.extend(state.deployments.iter().cloned());
        boot::write_deployment_refs(sysroot, state.bootversion, state.subbootversion, &refs)?;
        let mut replaced = None;
        if let Some(p) = previous.filter(|p| p.target != target) {
            // The deployment staged before is no longer referenced: the cleanup below
            // removes it. Its lock goes with it (ostree#3025).
            replaced = Some(format!("{}/{}", p.target.osname, p.target.name()));
            remove_if_present(Path::new(RUN_STAGED_LOCKED))?;
        }
        if lock_finalization {
            // The legacy lock file too, for ostree < 2023.8 which ignores the key.
            fsutil::write_atomic(Path::new(RUN_STAGED_LOCKED), b"", 0o640)?;
        }
        Ok(StageResult {
            target,
            locked: lock_finalization,
            replaced,
        })
    })();
    let cleaned = boot::cleanup(sysroot, Some(&booted));
    let r = result?;
    cleaned?;
    start_finalize_service()?;
    Ok(r)
}

fn remove_if_present(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// The unit that finalizes at shutdown is started now, as libostree >= 2023 does with
/// its own: a started oneshot with `RemainAfterExit` whose `ExecStop` runs at shutdown.
/// Outside systemd (no /run/systemd/system) there is nothing to start.
fn start_finalize_service() -> Result<()> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Ok(());
    }
    let unit = "ostree-composefs-finalize-staged.service";
    let st = std::process::Command::new("systemctl")
        .args(["start", "--quiet", unit])
        .status()
        .with_context(|| format!("running systemctl start {unit}"))?;
    if !st.success() {
        bail!("Failed to start {unit}: systemctl {st}");
    }
    Ok(())
}

/// What `finalize-staged` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Finalized {
    NotBooted,
    NothingStaged,
    Locked,
    Done(String),
}

/// `ostree-composefs finalize-staged` (the unit's `ExecStop`): the counterpart of
/// libostree's `_ostree_sysroot_finalize_staged`. A failure leaves its message in
/// `/boot/ostree/finalize-failure.stamp`, a success removes the stamp.
pub fn finalize(sysroot: &Path, naming: EntryNaming) -> Result<Finalized> {
    if !Path::new("/run/ostree-booted").exists() {
        return Ok(Finalized::NotBooted);
    }
    let r = finalize_inner(sysroot, naming);
    let stamp = sysroot.join("boot").join(FINALIZE_FAILURE_STAMP);
    match &r {
        Err(e) => {
            let msg = format!("{e:#}");
            if let Err(w) = fsutil::write_atomic(&stamp, msg.as_bytes(), 0o644) {
                eprintln!("Failed to write {}: {w:#}", stamp.display());
            }
        }
        Ok(_) => remove_if_present(&stamp)?,
    }
    r
}

fn finalize_inner(sysroot: &Path, naming: EntryNaming) -> Result<Finalized> {
    let super::Change {
        _lock,
        state,
        booted,
        ..
    } = super::begin_change(sysroot)?;
    let Some(booted) = booted else {
        return Ok(Finalized::NotBooted);
    };
    let Some(staged) = read_staged(Some(&booted))? else {
        journal::print("No deployment staged for finalization");
        return Ok(Finalized::NothingStaged);
    };
    if staged.locked || Path::new(RUN_STAGED_LOCKED).exists() {
        journal::print("Not finalizing; deployment is locked for finalization");
        return Ok(Finalized::Locked);
    }
    let t = &staged.target;
    journal::send(
        journal::DEPLOYMENT_FINALIZING_ID,
        "Finalizing staged deployment",
        &[
            ("OSTREE_OSNAME", t.osname.clone()),
            ("OSTREE_CHECKSUM", t.csum.clone()),
            ("OSTREE_DEPLOYSERIAL", t.deployserial.to_string()),
        ],
    );
    let merge = match &staged.merge {
        Some(m) => Some(
            state
                .deployments
                .iter()
                .find(|d| names(m, d))
                .cloned()
                .with_context(|| {
                    format!(
                        "Failed to find merge deployment {}.{} for staged",
                        m.csum, m.deployserial
                    )
                })?,
        ),
        None => None,
    };
    let dir = sysroot
        .join("ostree/deploy")
        .join(&t.osname)
        .join("deploy")
        .join(t.name());
    if !dir.is_dir() {
        bail!("staged deployment {} does not exist", dir.display());
    }
    // As libostree: the state goes first, so an interrupted finalization never runs a
    // second /etc merge over a half-merged one; the deployment is then unreferenced
    // and removed by the next cleanup, the old entries untouched.
    fs::remove_file(RUN_STAGED).with_context(|| format!("removing {RUN_STAGED}"))?;
    checkpoint("staged-file-removed")?;

    let repo = Repo::open(sysroot.join("ostree/repo")).context("opening the repository")?;
    let csum_b = ostree_boot::ostree::objects::parse_checksum(&t.csum)
        .with_context(|| format!("staged checksum {}", t.csum))?;
    let (_bytes, commit) = repo
        .load_commit(&csum_b)
        .with_context(|| format!("loading commit {}", t.csum))?;
    let version = commit.metadata.get("version").and_then(|v| v.as_str());

    // The deployment may be sealed already (an earlier run died after the seal).
    fsutil::clear_immutable(&dir)?;
    if let Some(m) = &merge {
        let d = super::etc::merge(&sysroot.join(m.dir()), &dir)?;
        send_configmerge(&d);
    }
    checkpoint("etc-merged")?;
    remove_if_present(&dir.join("etc/.updated"))?;
    remove_if_present(
        &sysroot
            .join("ostree/deploy")
            .join(&t.osname)
            .join("var/.updated"),
    )?;
    fsutil::syncfs(&dir)?;
    fsutil::set_immutable(&dir)?;

    let kernel = staged_kernel(sysroot, t, &dir)?;
    boot::install_kernel(sysroot, &t.osname, &kernel)?;
    let options = match &staged.kargs {
        Some(k) => k.join(" "),
        None => merge
            .as_ref()
            .and_then(|m| m.entry.get("options"))
            .unwrap_or("")
            .to_string(),
    };
    // Keys in libostree's order (see deploy): options, title, version, files.
    let mut entry = BootEntry::default();
    if let Some(k) = &staged.kargs {
        entry.set("options", k.join(" "));
    }
    // Extension keys right after the staged kernel arguments, as libostree restores
    // them when it reads the staged file.
    for (k, v) in staged.bootconfig_extra.iter().flatten() {
        entry.set(k, v.clone());
    }
    if merge.is_some() {
        entry.set("options", options.clone());
    }
    entry.set("title", "");
    entry.set("version", "");
    for (k, v) in kernel.entry_paths(&t.osname, &t.name(), boot::bootprefix(sysroot)?) {
        entry.set(k, v);
    }
    entry.set("options", options);
    // Overlay initrds staged with the deployment (`ostree admin deploy --stage
    // --overlay-initrd`), copied from /run/ostree/staged-initrds/ to
    // /boot/ostree/initramfs-overlays/<sha256>.img as libostree does; only with an
    // initramfs to overlay.
    let overlays = staged.overlay_initrds.clone().unwrap_or_default();
    if !overlays.is_empty() && kernel.initrd.is_some() {
        let prefix = if boot::bootprefix(sysroot)? {
            "/boot/"
        } else {
            "/"
        };
        let dir = sysroot.join("boot/ostree/initramfs-overlays");
        fsutil::mkdir_p(&dir, 0o755)?;
        let mut paths = Vec::new();
        for c in &overlays {
            if !ostree_boot::layout::is_hex_csum(c) {
                bail!("staged overlay initrd {c:?} is not a sha256 checksum");
            }
            let dst = dir.join(format!("{c}.img"));
            if fs::symlink_metadata(&dst).is_err() {
                let src = Path::new(RUN_STAGED_INITRDS).join(c);
                fsutil::link_or_copy(&src, &dst)
                    .with_context(|| format!("installing overlay initrd {}", src.display()))?;
            }
            paths.push(format!("{prefix}ostree/initramfs-overlays/{c}.img"));
        }
        fsutil::fsync_path(&dir)?;
        entry.set_overlay_initrds(paths);
    }
    let new = Deployment {
        stateroot: t.osname.clone(),
        csum: t.csum.clone(),
        deployserial: t.deployserial,
        bootcsum: kernel.bootcsum.clone(),
        bootserial: 0,
        entry,
    };
    let title_base = {
        let tt = super::os_release_title(&dir)?;
        match version.filter(|v| !v.is_empty() && !tt.contains(v.as_str())) {
            Some(v) => format!("{tt} {v}"),
            None => tt,
        }
    };
    // ostree_sysroot_simple_write_deployment with the merge deployment: the new one,
    // then every other deployment but the older ones of the stateroot other than the
    // booted and the merge deployment.
    let kept = super::retained(
        sysroot,
        &state,
        &t.osname,
        Some(&booted),
        merge.as_ref(),
        None,
    )?;
    let mut planned = vec![Planned {
        deployment: new,
        title_base,
    }];
    planned.extend(kept.into_iter().map(Planned::existing));
    boot::write_deployments(sysroot, &state, &mut planned, naming)?;
    send_complete(sysroot, &state);
    boot::cleanup(sysroot, Some(&booted))?;
    journal::print("Finalized deployment");
    Ok(Finalized::Done(format!("{}/{}", t.osname, t.name())))
}

/// The config-merge message with libostree's fields. The deploy command prints the same
/// line itself, so nothing goes to stdout here.
pub fn send_configmerge(d: &super::etc::EtcDiff) {
    let (m, r, a) = (d.modified.len(), d.removed.len(), d.added.len());
    journal::send_quiet(
        journal::CONFIGMERGE_ID,
        &format!("Copying /etc changes: {m} modified, {r} removed, {a} added"),
        &[
            ("ETC_N_MODIFIED", m.to_string()),
            ("ETC_N_REMOVED", r.to_string()),
            ("ETC_N_ADDED", a.to_string()),
        ],
    );
}

/// The deployment-complete message with libostree's fields, after a change of the
/// boot configuration from `old` (which had `before` deployments).
pub fn send_complete(sysroot: &Path, old: &SysrootState) {
    let Ok(new) = SysrootState::read(sysroot) else {
        return;
    };
    let swap = new.bootversion != old.bootversion;
    let msg = format!(
        "Transaction complete; bootconfig swap: {}; bootversion: boot.{}.{}, deployment count change: {}",
        if swap { "yes" } else { "no" },
        new.bootversion,
        new.subbootversion,
        new.deployments.len() as i64 - old.deployments.len() as i64
    );
    journal::send_quiet(
        journal::DEPLOYMENT_COMPLETE_ID,
        &msg,
        &[
            ("OSTREE_BOOTLOADER", "none".into()),
            ("OSTREE_BOOTLOADER_ATOMIC", "yes".into()),
            (
                "OSTREE_DID_BOOTSWAP",
                if swap { "yes" } else { "no" }.into(),
            ),
            ("OSTREE_N_DEPLOYMENTS", new.deployments.len().to_string()),
        ],
    );
}

/// The staged deployment's kernel: installed at stage time under its bootcsum (a kernel
/// given on the command line), else found in the tree, whose bootcsum must be the
/// staged one.
fn staged_kernel(sysroot: &Path, t: &StagedRef, dir: &Path) -> Result<KernelFiles> {
    let kdir = sysroot
        .join("boot/ostree")
        .join(format!("{}-{}", t.osname, t.bootcsum));
    if let Some(tree) = ostree_boot::bootfiles::find_kernel(dir)?
        && tree.bootcsum == t.bootcsum
    {
        return Ok(KernelFiles::from_tree(tree));
    }
    if let Ok(rd) = fs::read_dir(&kdir) {
        for e in rd {
            let e = e.with_context(|| format!("reading {}", kdir.display()))?;
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(kver) = n.strip_prefix("vmlinuz-") else {
                continue;
            };
            let initrd = kdir.join(format!("initramfs-{kver}.img"));
            let devicetree = kdir.join(format!("devicetree-{kver}"));
            return Ok(KernelFiles {
                kver: kver.to_string(),
                kernel: e.path(),
                initrd: initrd.is_file().then_some(initrd),
                devicetree: devicetree.is_file().then_some(devicetree),
                bootcsum: t.bootcsum.clone(),
                extras: Default::default(),
            });
        }
    }
    bail!(
        "no kernel with bootcsum {} for the staged deployment (neither in its tree nor in {})",
        t.bootcsum,
        kdir.display()
    )
}
