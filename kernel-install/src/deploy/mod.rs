//! Writing deployments the way `ostree admin deploy` lays them out, so that the real
//! ostree tools keep working on a sysroot we wrote.
//!
//! Crash safety: the new deployment is built under `ostree/deploy/<sr>/.staging/` and
//! renamed into `deploy/` only when complete; bootlinks and entries for the new
//! configuration are written and synced beside the active ones; a single rename of
//! `boot/loader` (or `ostree/boot.N`) switches. Until that rename the previous
//! configuration and everything it references is untouched. Leftovers of an
//! interrupted run are removed by the next one.

pub mod boot;
pub mod cfs;
pub mod checkout;
pub mod etc;
pub mod fsutil;
pub mod seal;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use ostree_boot::deployment::DeployName;
use ostree_boot::keyfile::KeyFile;
use ostree_boot::layout::{self, BootEntry, Deployment, EntryNaming, Kargs, SysrootState};
use ostree_boot::ostree::repo::Repo;

use boot::{KernelFiles, Planned};

/// Where a deployment is assembled before it is renamed into `deploy/`. Outside
/// `deploy/` because libostree refuses directories there that are not `<csum>.<serial>`.
pub const STAGING_DIR: &str = ".staging";

/// Fault injection for the crash-safety tests: `OSTREE_COMPOSEFS_FAULT=<name>[:<n>]`
/// kills the process with SIGKILL at the n-th (default first) pass through checkpoint
/// `<name>`; `OSTREE_COMPOSEFS_FAULT_TRACE=1` prints every checkpoint passed.
pub fn checkpoint(name: &str) -> Result<()> {
    static HITS: AtomicU32 = AtomicU32::new(0);
    if std::env::var_os("OSTREE_COMPOSEFS_FAULT_TRACE").is_some() {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let t = START.get_or_init(std::time::Instant::now).elapsed();
        eprintln!("checkpoint {name} {:.1}ms", t.as_secs_f64() * 1000.0);
    }
    if let Ok(spec) = std::env::var("OSTREE_COMPOSEFS_FAULT") {
        let (want, nth) = match spec.split_once(':') {
            Some((w, n)) => (w.to_string(), n.parse::<u32>().unwrap_or(1)),
            None => (spec.clone(), 1),
        };
        if want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL)
                .context("fault injection: kill")?;
        }
    }
    Ok(())
}

/// How the new deployment's kernel arguments are made.
#[derive(Clone, Debug)]
pub enum KargsSpec {
    /// As `ostree admin deploy --karg`: the merge deployment's arguments, each given
    /// argument replacing those with its key (or appended).
    Merge(Vec<String>),
    /// Exactly these (the kernel-install plugin's `/etc/kernel/cmdline`).
    Exact(Kargs),
}

/// An explicit kernel instead of the one in the tree.
#[derive(Clone, Debug)]
pub struct KernelArg {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub kver: Option<String>,
}

#[derive(Clone, Debug)]
pub struct DeployOptions {
    pub sysroot: PathBuf,
    pub stateroot: Option<String>,
    pub rev: String,
    pub kargs: KargsSpec,
    /// How many deployments of the stateroot to keep, the new one included; `None` is
    /// ostree's rule (new, booted, merge/rollback).
    pub keep: Option<usize>,
    pub kernel: Option<KernelArg>,
    /// The origin's refspec; default: `rev`.
    pub origin_refspec: Option<String>,
    pub naming: EntryNaming,
}

#[derive(Debug)]
pub struct DeployResult {
    pub stateroot: String,
    pub csum: String,
    pub deployserial: u32,
    pub bootcsum: String,
    pub removed: Vec<String>,
    /// Modified, removed and added paths of the /etc merge, when there was one.
    pub etc_changes: Option<(usize, usize, usize)>,
}

/// The sysroot lock libostree takes (`ostree/lock`, an fcntl write lock on the whole
/// file; libglnx uses OFD locks, which conflict with these).
pub struct SysrootLock {
    _file: fs::File,
    path: PathBuf,
}

impl Drop for SysrootLock {
    fn drop(&mut self) {
        // As libglnx: the holder of the write lock removes the file before unlocking.
        let _ = fs::remove_file(&self.path);
    }
}

pub fn lock_sysroot(sysroot: &Path) -> Result<SysrootLock> {
    let path = sysroot.join("ostree/lock");
    loop {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        rustix::fs::fcntl_lock(&f, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", path.display()))?;
        // libglnx unlinks the file when releasing it; a lock on an unlinked file is
        // worthless, so take it again on the new one.
        use std::os::unix::fs::MetadataExt;
        if f.metadata().map(|m| m.nlink()).unwrap_or(0) > 0 {
            return Ok(SysrootLock { _file: f, path });
        }
    }
}

/// Checks that `sysroot` looks like an ostree sysroot with a writable /boot.
pub fn check_sysroot(sysroot: &Path) -> Result<()> {
    if !sysroot.join("ostree").is_dir() {
        bail!(
            "{} is not an ostree sysroot (no ostree/ directory; see ostree admin init-fs)",
            sysroot.display()
        );
    }
    if !sysroot.join("ostree/repo/config").is_file() {
        bail!("{}: no ostree repository at ostree/repo", sysroot.display());
    }
    let boot = sysroot.join("boot");
    if !boot.is_dir() {
        bail!("{}: no boot/ directory", sysroot.display());
    }
    if let Err(e) = rustix::fs::access(&boot, rustix::fs::Access::WRITE_OK) {
        if e == rustix::io::Errno::ROFS {
            bail!(
                "{} is read-only: remount it read-write to install a kernel",
                boot.display()
            );
        }
        bail!("{} is not writable: {e}", boot.display());
    }
    Ok(())
}

/// The mount point holding `path` (the longest mount point in /proc/self/mountinfo
/// that is a prefix of it), with mountinfo's octal escapes undone.
fn mount_point_of(path: &Path) -> Result<PathBuf> {
    let info =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let unescape = |s: &str| -> String {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\'
                && i + 3 < b.len()
                && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            {
                out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let mut best = PathBuf::from("/");
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape(mp));
        if path.starts_with(&mp) && mp.components().count() > best.components().count() {
            best = mp;
        }
    }
    Ok(best)
}

/// A read-only sysroot (ostree's `sysroot.readonly`, the default with composefs) is made
/// writable for this process only, as libostree does: a private mount namespace in
/// which its mount is remounted read-write. The rest of the system keeps it read-only.
pub fn ensure_writable_sysroot(sysroot: &Path) -> Result<()> {
    ensure_writable_dir(&sysroot.join("ostree/deploy"))
}

/// Like [`ensure_writable_sysroot`] for any directory (`/boot/grub` for the GRUB boot
/// counter): made writable for this process only if it sits on a read-only mount.
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    let dir = dir.to_path_buf();
    match rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::ROFS) => {}
        Err(e) => return Err(e).with_context(|| format!("{} is not writable", dir.display())),
    }
    let real = fs::canonicalize(&dir).with_context(|| format!("resolving {}", dir.display()))?;
    let mp = mount_point_of(&real)?;
    // SAFETY: only a new mount namespace is asked for (no CLONE_FILES), so no file
    // descriptor table is split between threads; this runs before any thread is made.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .context("a private mount namespace to make the sysroot writable")?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    )
    .context("making / a downstream mount in the private namespace")?;
    // Superblock-level read-only (a plain remount) or mount-level (a bind remount).
    let _ = rustix::mount::mount_remount(&mp, rustix::mount::MountFlags::RELATIME, "");
    if rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK).is_err() {
        rustix::mount::mount_remount(&mp, rustix::mount::MountFlags::BIND, "")
            .with_context(|| format!("remounting {} read-write", mp.display()))?;
    }
    rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK).with_context(|| {
        format!(
            "{} is still read-only after remounting {}",
            dir.display(),
            mp.display()
        )
    })?;
    Ok(())
}

/// What every change of the boot configuration starts with: a usable, writable sysroot,
/// its lock (held until the returned guard drops), the current state, the booted
/// deployment, and the leftovers of an interrupted earlier run removed.
fn begin_change(sysroot: &Path) -> Result<(SysrootLock, SysrootState, Option<Deployment>)> {
    check_sysroot(sysroot)?;
    ensure_writable_sysroot(sysroot)?;
    let lock = lock_sysroot(sysroot)?;
    let state = SysrootState::read(sysroot).context("reading the current boot configuration")?;
    let booted = find_booted(sysroot, &state);
    boot::cleanup(sysroot, booted.as_ref()).context("removing leftovers of an earlier run")?;
    Ok((lock, state, booted))
}

/// The booted deployment, found as libostree does: the (dev, ino) that prepare-root
/// recorded in `/run/ostree-booted`, else those of `/` (a non-composefs boot).
pub fn find_booted(sysroot: &Path, state: &SysrootState) -> Option<Deployment> {
    let bytes = fs::read("/run/ostree-booted").ok()?;
    use std::os::unix::fs::MetadataExt;
    let (dev, ino) = match ostree_boot::ostree::booted::OstreeBooted::from_bytes(&bytes) {
        Ok(b) if b.backing_root_device_inode != (0, 0) => b.backing_root_device_inode,
        _ => {
            let m = fs::metadata("/").ok()?;
            (m.dev(), m.ino())
        }
    };
    state
        .find_by_dev_ino(sysroot, dev, ino)
        .map(|i| state.deployments[i].clone())
}

/// Which stateroot: the given one, the booted one, or the only one.
pub fn resolve_stateroot(
    sysroot: &Path,
    given: Option<&str>,
    booted: Option<&Deployment>,
) -> Result<String> {
    let all = layout::list_stateroots(sysroot)?;
    let sr = match (given, booted) {
        (Some(s), _) => s.to_string(),
        (None, Some(b)) => b.stateroot.clone(),
        (None, None) => match all.as_slice() {
            [one] => one.clone(),
            [] => bail!(
                "no stateroot in {} (see ostree admin os-init)",
                sysroot.join("ostree/deploy").display()
            ),
            _ => bail!(
                "several stateroots ({}): choose one with --stateroot",
                all.join(", ")
            ),
        },
    };
    layout::validate_stateroot(&sr)?;
    if !all.contains(&sr) {
        bail!(
            "stateroot '{sr}' does not exist in {} (see ostree admin os-init {sr})",
            sysroot.display()
        );
    }
    Ok(sr)
}

/// libostree's merge deployment: the booted one if it is of this stateroot, else the
/// first (default) of the stateroot.
pub fn merge_deployment<'a>(
    state: &'a SysrootState,
    sr: &str,
    booted: Option<&Deployment>,
) -> Option<&'a Deployment> {
    if let Some(b) = booted.filter(|b| b.stateroot == sr) {
        return state.deployments.iter().find(|d| d.same(b));
    }
    state.deployments.iter().find(|d| d.stateroot == sr)
}

/// `[libostree-transient] pinned` of the origin file. libostree reads it with
/// `g_key_file_get_boolean` ignoring errors (an odd value is not pinned); an origin file
/// GKeyFile cannot parse fails libostree's sysroot load, so it fails here too rather than
/// letting a pinned deployment be pruned. A missing origin file is not pinned.
fn pinned(sysroot: &Path, d: &Deployment) -> Result<bool> {
    let Some(kf) = KeyFile::load_optional(&sysroot.join(d.origin_path()))? else {
        return Ok(false);
    };
    Ok(kf
        .get_bool("libostree-transient", "pinned")
        .ok()
        .flatten()
        .unwrap_or(false))
}

/// Which existing deployments stay beside the new one (which goes first).
pub fn retained<'a>(
    sysroot: &Path,
    state: &'a SysrootState,
    sr: &str,
    booted: Option<&Deployment>,
    merge: Option<&Deployment>,
    keep: Option<usize>,
) -> Result<Vec<&'a Deployment>> {
    let mut out = Vec::new();
    let mut same_sr = 1; // the new deployment
    for d in &state.deployments {
        let is_booted = booted.is_some_and(|b| b.same(d));
        let keep_it = if d.stateroot != sr || is_booted || pinned(sysroot, d)? {
            true
        } else {
            match keep {
                None => merge.is_some_and(|m| m.same(d)),
                Some(n) => same_sr < n,
            }
        };
        if keep_it {
            if d.stateroot == sr {
                same_sr += 1;
            }
            out.push(d);
        }
    }
    Ok(out)
}

fn allocate_deployserial(sysroot: &Path, sr: &str, csum: &str) -> Result<u32> {
    let dir = sysroot.join("ostree/deploy").join(sr).join("deploy");
    let mut next = 0;
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd {
            let e = e.with_context(|| format!("reading {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(n) = DeployName::parse(&name)
                && n.checksum == csum
            {
                next = next.max(n.serial + 1);
            }
        }
    }
    Ok(next)
}

fn os_release_title(deploy: &Path) -> Result<String> {
    let p = if deploy.join("usr/lib/os-release").exists() {
        "usr/lib/os-release"
    } else {
        "etc/os-release"
    };
    let text = fs::read_to_string(deploy.join(p)).with_context(|| format!("Reading /{p}"))?;
    layout::os_release_title(&text).context("No PRETTY_NAME or ID in /etc/os-release")
}

fn kernel_files(deploy: &Path, arg: Option<&KernelArg>) -> Result<KernelFiles> {
    let tree = layout::find_kernel_in_tree(deploy)?;
    match arg {
        None => {
            let k = tree.context(
                "Failed to find kernel in /usr/lib/modules of the tree (and no --kernel given)",
            )?;
            Ok(KernelFiles {
                kver: k.kver,
                kernel: k.vmlinuz,
                initrd: k.initramfs,
                devicetree: k.devicetree,
                bootcsum: k.bootcsum,
            })
        }
        Some(a) => {
            if !a.kernel.is_file() {
                bail!(
                    "kernel {} does not exist or is not a regular file",
                    a.kernel.display()
                );
            }
            if let Some(i) = &a.initrd
                && !i.is_file()
            {
                bail!(
                    "initrd {} does not exist or is not a regular file",
                    i.display()
                );
            }
            let kver = match (&a.kver, tree) {
                (Some(v), _) => v.clone(),
                (None, Some(t)) => t.kver,
                (None, None) => a
                    .kernel
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("vmlinuz-"))
                    .map(str::to_string)
                    .context("cannot tell the kernel version: give --kver, or name the kernel vmlinuz-<kver>")?,
            };
            if kver.is_empty() || kver.contains('/') {
                bail!("invalid kernel version {kver:?}");
            }
            let bootcsum = layout::bootcsum(&a.kernel, a.initrd.as_deref(), None)?;
            Ok(KernelFiles {
                kver,
                kernel: a.kernel.clone(),
                initrd: a.initrd.clone(),
                devicetree: None,
                bootcsum,
            })
        }
    }
}

/// Seeds the stateroot's `var` from the commit's `/var` when it is empty, as upstream
/// (Docker `VOLUME` semantics: never merged afterwards).
fn seed_var(sysroot: &Path, sr: &str, deploy: &Path) -> Result<()> {
    let var = sysroot.join("ostree/deploy").join(sr).join("var");
    let src = deploy.join("var");
    if !src.is_dir() || !fsutil::dir_is_empty(&var)? {
        return Ok(());
    }
    let staging = sysroot
        .join("ostree/deploy")
        .join(sr)
        .join(STAGING_DIR)
        .join("var");
    fsutil::remove_tree(&staging)?;
    fsutil::copy_dir(&src, &staging)?;
    fsutil::remove_tree(&var)?;
    fs::rename(&staging, &var)
        .with_context(|| format!("renaming {} to {}", staging.display(), var.display()))
}

/// `ostree-composefs deploy`.
pub fn deploy(opts: &DeployOptions) -> Result<DeployResult> {
    let sysroot = opts.sysroot.as_path();
    let (_lock, state, booted) = begin_change(sysroot)?;
    checkpoint("start")?;
    let sr = resolve_stateroot(sysroot, opts.stateroot.as_deref(), booted.as_ref())?;

    let repo = Repo::open(sysroot.join("ostree/repo")).context("opening the repository")?;
    let csum_b = repo
        .resolve_rev(&opts.rev)
        .with_context(|| format!("resolving {:?}", opts.rev))?;
    let csum = hex::encode(csum_b);
    let (_commit_bytes, commit) = repo
        .load_commit(&csum_b)
        .with_context(|| format!("loading commit {csum}"))?;
    let version = commit.metadata.get("version").and_then(|v| v.as_str());

    let merge = merge_deployment(&state, &sr, booted.as_ref()).cloned();
    let serial = allocate_deployserial(sysroot, &sr, &csum)?;
    let name = format!("{csum}.{serial}");
    let staging_root = sysroot.join("ostree/deploy").join(&sr).join(STAGING_DIR);
    fs::create_dir_all(&staging_root)
        .with_context(|| format!("mkdir {}", staging_root.display()))?;

    if let Some(k) = &opts.kernel {
        // Fail before the checkout on what can be checked without it.
        for p in std::iter::once(&k.kernel).chain(k.initrd.as_ref()) {
            if !p.is_file() {
                bail!("{} does not exist or is not a regular file", p.display());
            }
        }
    }
    let result = (|| -> Result<DeployResult> {
        let staged = stage(
            sysroot,
            opts,
            &repo,
            &csum_b,
            &commit,
            &sr,
            &name,
            merge.as_ref(),
            version.as_deref(),
        );
        let (kernel, title_base, etc_changes, _final_dir) = staged?;

        boot::install_kernel(sysroot, &sr, &kernel)?;

        let kargs = match &opts.kargs {
            KargsSpec::Exact(k) => {
                let mut k = k.clone();
                k.remove_key("ostree");
                k
            }
            KargsSpec::Merge(args) => {
                // The merge deployment's `ostree=` stays where it is: ostree replaces it
                // in place when it writes the entry.
                let mut k = merge
                    .as_ref()
                    .map(|m| Kargs::parse(m.entry.get("options").unwrap_or("")))
                    .unwrap_or_default();
                for a in args {
                    k.replace(a);
                }
                k
            }
        };
        let mut entry = BootEntry::default();
        entry.set("options", kargs.to_string());
        for (k, v) in kernel.entry_paths(&sr) {
            entry.set(k, v);
        }
        let new = Deployment {
            stateroot: sr.clone(),
            csum: csum.clone(),
            deployserial: serial,
            bootcsum: kernel.bootcsum.clone(),
            bootserial: 0,
            entry,
        };

        let kept = retained(
            sysroot,
            &state,
            &sr,
            booted.as_ref(),
            merge.as_ref(),
            opts.keep,
        )?;
        let removed: Vec<String> = state
            .deployments
            .iter()
            .filter(|d| !kept.iter().any(|k| k.same(d)))
            .map(|d| format!("{}/{}", d.stateroot, d.name()))
            .collect();
        let mut planned = vec![Planned {
            deployment: new,
            title_base,
        }];
        planned.extend(kept.into_iter().map(Planned::existing));
        boot::write_deployments(sysroot, &state, &mut planned, opts.naming)?;
        Ok(DeployResult {
            stateroot: sr.clone(),
            csum: csum.clone(),
            deployserial: serial,
            bootcsum: kernel.bootcsum,
            removed,
            etc_changes,
        })
    })();
    // Whatever happened, nothing unreferenced stays: after a failure before the switch
    // that is the new deployment itself (no half-written deployment is left behind).
    let cleaned = boot::cleanup(sysroot, booted.as_ref());
    let result = result?;
    cleaned?;
    checkpoint("done")?;
    Ok(result)
}

/// Checkout, /etc, /var and origin of the new deployment, renamed into `deploy/` when
/// complete. Returns its kernel, title text, /etc merge counts and directory.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn stage(
    sysroot: &Path,
    opts: &DeployOptions,
    repo: &Repo,
    csum: &ostree_boot::ostree::objects::Checksum,
    commit: &ostree_boot::ostree::objects::Commit,
    sr: &str,
    name: &str,
    merge: Option<&Deployment>,
    version: Option<&str>,
) -> Result<(KernelFiles, String, Option<(usize, usize, usize)>, PathBuf)> {
    let srdir = sysroot.join("ostree/deploy").join(sr);
    let staging = srdir.join(STAGING_DIR).join(name);
    checkout::checkout(repo, commit, &staging).context("checking out the commit")?;
    checkpoint("checked-out")?;
    let pol = cfs::policy(repo, &staging, commit.composefs_digest().is_some())?;
    cfs::write(repo, csum, commit, &staging, &pol)?;
    checkpoint("composefs-written")?;
    etc::prepare_etc(&staging)?;
    let mut etc_changes = None;
    if let Some(m) = merge {
        let d = etc::merge(&sysroot.join(m.dir()), &staging)?;
        etc_changes = Some((d.modified.len(), d.removed.len(), d.added.len()));
    }
    checkpoint("etc-merged")?;
    seed_var(sysroot, sr, &staging)?;
    // Debian's ostree (2022.7) relabels the stateroot /var on first deploy and leaves
    // this stamp; without SELinux there is nothing to relabel, the stamp is the same.
    let selabeled = srdir.join("var/.ostree-selabeled");
    if srdir.join("var").is_dir() && !selabeled.exists() {
        fsutil::write_atomic(&selabeled, b"", 0o644)?;
    }
    let var_updated = srdir.join("var/.updated");
    if var_updated.exists() {
        fs::remove_file(&var_updated)
            .with_context(|| format!("removing {}", var_updated.display()))?;
    }

    let kernel = kernel_files(&staging, opts.kernel.as_ref())?;
    let title_base = {
        let t = os_release_title(&staging)?;
        match version.filter(|v| !v.is_empty() && !t.contains(*v)) {
            Some(v) => format!("{t} {v}"),
            None => t,
        }
    };

    fsutil::syncfs(&staging)?;
    checkpoint("staged")?;
    let deploy_dir = srdir.join("deploy");
    fsutil::mkdir_p(&deploy_dir, 0o775)?;
    let refspec = opts
        .origin_refspec
        .clone()
        .unwrap_or_else(|| opts.rev.clone());
    fsutil::write_atomic(
        &deploy_dir.join(format!("{name}.origin")),
        layout::render_origin(&refspec).as_bytes(),
        0o644,
    )?;
    checkpoint("origin-written")?;
    let final_dir = deploy_dir.join(name);
    // A kernel installed from the tree is linked from the deployment, so take the
    // paths from their final place.
    let kernel = KernelFiles {
        kernel: rebase(&kernel.kernel, &staging, &final_dir),
        initrd: kernel
            .initrd
            .as_ref()
            .map(|p| rebase(p, &staging, &final_dir)),
        devicetree: kernel
            .devicetree
            .as_ref()
            .map(|p| rebase(p, &staging, &final_dir)),
        ..kernel
    };
    fs::rename(&staging, &final_dir)
        .with_context(|| format!("renaming {} to {}", staging.display(), final_dir.display()))?;
    fsutil::fsync_path(&deploy_dir)?;
    fsutil::set_immutable(&final_dir)?;
    checkpoint("deployment-in-place")?;

    Ok((kernel, title_base, etc_changes, final_dir))
}

fn rebase(p: &Path, from: &Path, to: &Path) -> PathBuf {
    match p.strip_prefix(from) {
        Ok(rel) => to.join(rel),
        Err(_) => p.to_path_buf(),
    }
}

/// `ostree-composefs undeploy INDEX`: drops deployment INDEX (0 = default) from the boot
/// configuration and removes it; the booted one is refused.
pub fn undeploy(sysroot: &Path, index: usize, naming: EntryNaming) -> Result<Deployment> {
    let (_lock, state, booted) = begin_change(sysroot)?;
    let Some(target) = state.deployments.get(index).cloned() else {
        bail!(
            "Out of range deployment index {index}, expected < {}",
            state.deployments.len()
        );
    };
    if booted.as_ref().is_some_and(|b| b.same(&target)) {
        bail!("Cannot undeploy currently booted deployment {index}");
    }
    let mut planned: Vec<Planned> = state
        .deployments
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, d)| Planned::existing(d))
        .collect();
    boot::write_deployments(sysroot, &state, &mut planned, naming)?;
    boot::cleanup(sysroot, booted.as_ref())?;
    Ok(target)
}

/// Removes every deployment of `stateroot` whose kernel version is `kver` (never the
/// booted one); returns what was removed.
pub fn undeploy_kver(
    sysroot: &Path,
    stateroot: &str,
    kver: &str,
    naming: EntryNaming,
) -> Result<Vec<Deployment>> {
    let (_lock, state, booted) = begin_change(sysroot)?;
    let suffix = format!("/vmlinuz-{kver}");
    let (gone, stay): (Vec<&Deployment>, Vec<&Deployment>) =
        state.deployments.iter().partition(|d| {
            d.stateroot == stateroot
                && d.entry.get("linux").is_some_and(|l| l.ends_with(&suffix))
                && !booted.as_ref().is_some_and(|b| b.same(d))
        });
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    let mut planned: Vec<Planned> = stay.into_iter().map(Planned::existing).collect();
    boot::write_deployments(sysroot, &state, &mut planned, naming)?;
    boot::cleanup(sysroot, booted.as_ref())?;
    Ok(gone.into_iter().cloned().collect())
}
