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
pub mod staged;
pub mod stale;
pub mod vfat;
pub mod writable;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use ostree_boot::beneath::{Dir, Resolve};
use ostree_boot::deployment::DeployName;
use ostree_boot::keyfile::KeyFile;
use ostree_boot::layout::{self, BootEntry, Deployment, EntryNaming, Kargs, SysrootState};
use ostree_boot::ostree::repo::Repo;
use rustix::fs::FileType;
use std::ffi::OsStr;

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
    /// The systemd-boot mirror on a vfat partition, when there is one ([`vfat`]).
    pub vfat: Option<vfat::Mirror>,
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
    vfat::check_boot_not_vfat(sysroot)?;
    match rustix::fs::access(&boot, rustix::fs::Access::WRITE_OK) {
        // A read-only /boot is made writable privately (ensure_writable_sysroot).
        Ok(()) | Err(rustix::io::Errno::ROFS) => Ok(()),
        Err(e) => bail!("{} is not writable: {e}", boot.display()),
    }
}

/// A read-only sysroot (ostree's `sysroot.readonly`, the default with composefs) or
/// /boot (as Fedora CoreOS mounts it) is made writable for this process only, as
/// libostree does: a private mount namespace in which its mount is remounted
/// read-write. The rest of the system keeps it read-only: the other namespaces' mounts
/// keep their own read-only flag even when the superblock is remounted.
pub fn ensure_writable_sysroot(sysroot: &Path) -> Result<()> {
    for dir in [sysroot.join("ostree/deploy"), sysroot.join("boot")] {
        writable::ensure_writable(&dir)?;
    }
    Ok(())
}

/// A change of the boot configuration under way: the sysroot lock, held until this
/// drops, and the state read under it. Whoever decides something from the state before
/// deploying (the kernel-install plugin) reads it here once and hands it on, so the
/// decision and the deploy see the same configuration.
pub struct Change {
    _lock: SysrootLock,
    sysroot: PathBuf,
    pub state: SysrootState,
    pub booted: Option<Deployment>,
}

/// What every change of the boot configuration starts with: a usable, writable sysroot,
/// its lock, the current state, the booted deployment, and the leftovers of an
/// interrupted earlier run removed.
pub fn begin_change(sysroot: &Path) -> Result<Change> {
    begin_change_with(sysroot, None)
}

/// [`begin_change`] for a sysroot mirrored onto a vfat partition: the mirror is brought
/// up to date with the sysroot's active entries before the leftovers go, since a run
/// interrupted between the sysroot's switch and the mirror's leaves the mirror booting
/// deployments that only the leftovers still hold.
pub fn begin_change_with(sysroot: &Path, mirror: Option<&vfat::Mirror>) -> Result<Change> {
    check_sysroot(sysroot)?;
    ensure_writable_sysroot(sysroot)?;
    let lock = lock_sysroot(sysroot)?;
    let state = SysrootState::read(sysroot).context("reading the current boot configuration")?;
    let booted = find_booted(sysroot, &state);
    if let Some(m) = mirror {
        vfat::sync(sysroot, m).with_context(|| {
            format!(
                "bringing the systemd-boot mirror on {} up to date",
                m.root.display()
            )
        })?;
    }
    boot::cleanup(sysroot, booted.as_ref()).context("removing leftovers of an earlier run")?;
    Ok(Change {
        _lock: lock,
        sysroot: sysroot.to_path_buf(),
        state,
        booted,
    })
}

impl Change {
    /// The lock and state are of one sysroot: refuse to apply them to another.
    fn check_for(&self, sysroot: &Path) -> Result<()> {
        if self.sysroot != sysroot {
            bail!(
                "internal error: a change begun on {} applied to {}",
                self.sysroot.display(),
                sysroot.display()
            );
        }
        Ok(())
    }
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

pub(crate) fn allocate_deployserial(sysroot: &Path, sr: &str, csum: &str) -> Result<u32> {
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

/// The largest os-release read from a tree.
const MAX_OS_RELEASE: u64 = 64 * 1024;

/// The entry title from the tree's os-release, read as the booted system would see it:
/// links resolved inside the tree ([`Resolve::InRoot`]), never to the host's files, and
/// only a regular file of bounded size.
pub(crate) fn os_release_title(deploy: &Path) -> Result<String> {
    let root = Dir::open(deploy)?;
    let mut found = None;
    for p in ["usr/lib/os-release", "etc/os-release"] {
        match root.read_file(p, Resolve::InRoot, MAX_OS_RELEASE) {
            Ok(b) => {
                found = Some((p, b));
                break;
            }
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e).with_context(|| format!("Reading /{p}")),
        }
    }
    let (p, bytes) = found.context(
        "Reading /etc/os-release: neither /usr/lib/os-release nor /etc/os-release is in the tree (links in it resolve inside the tree)",
    )?;
    let text = String::from_utf8(bytes).with_context(|| format!("Reading /{p}: not UTF-8"))?;
    layout::os_release_title(&text).context("No PRETTY_NAME or ID in /etc/os-release")
}

pub(crate) fn kernel_files(deploy: &Path, arg: Option<&KernelArg>) -> Result<KernelFiles> {
    let tree = ostree_boot::bootfiles::find_kernel(deploy)?;
    match arg {
        None => {
            let k = tree.context(
                "Failed to find kernel in /usr/lib/modules, /usr/lib/ostree-boot or /boot of the tree (and no --kernel given)",
            )?;
            Ok(KernelFiles::from_tree(k))
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
                extras: Default::default(),
            })
        }
    }
}

/// Seeds the stateroot's `var` from the commit's `/var` when it is empty, as upstream
/// (Docker `VOLUME` semantics: never merged afterwards). The commit's `var` is read
/// through descriptors: a link (at `var` or inside it) is copied as a link, never
/// followed; a `var` that is not a directory is refused.
fn seed_var(sysroot: &Path, sr: &str, deploy: &Path) -> Result<()> {
    let var = sysroot.join("ostree/deploy").join(sr).join("var");
    let tree = Dir::open(deploy)?;
    match tree.metadata("var")? {
        None => return Ok(()),
        Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
        Some(st) => bail!(
            "the commit's /var is a {}, not a directory; refusing to deploy it",
            ostree_boot::beneath::kind_name(FileType::from_raw_mode(st.st_mode))
        ),
    }
    if !fsutil::dir_is_empty(&var)? {
        return Ok(());
    }
    let staging_root = sysroot.join("ostree/deploy").join(sr).join(STAGING_DIR);
    let staging = staging_root.join("var");
    fsutil::remove_tree(&staging)?;
    let dst = Dir::open(&staging_root)?;
    ostree_boot::beneath::copy_tree(&tree, OsStr::new("var"), &dst, OsStr::new("var"))
        .context("copying the commit's /var")?;
    if tree.metadata("usr/lib/tmpfiles.d")?.is_none() {
        legacy_var_init(&dst.open_dir("var")?)?;
    }
    fsutil::remove_tree(&var)?;
    fs::rename(&staging, &var)
        .with_context(|| format!("renaming {} to {}", staging.display(), var.display()))
}

/// The core of `/var` upstream (≥ 2024) creates in a freshly seeded stateroot `var` when
/// the tree has no `usr/lib/tmpfiles.d` to create it at boot: `tmp` (1777), `lib`, `log`
/// (journald flushes there before tmpfiles runs), `run` → `../run`, `lock` → `../run/lock`.
fn legacy_var_init(var: &Dir) -> Result<()> {
    // Only what is absent is made: an entry the commit ships (even a link) is its data,
    // never followed or re-moded.
    for (name, mode) in [("tmp", 0o1777), ("lib", 0o755), ("log", 0o755)] {
        let name = OsStr::new(name);
        if var.stat_child(name)?.is_none() {
            var.mkdir(name, 0o700)?;
            let d = var.open_dir(name)?;
            rustix::fs::fchmod(d.fd(), rustix::fs::Mode::from_raw_mode(mode))
                .with_context(|| format!("chmod {:o} {}", mode, var.path().join(name).display()))?;
        }
    }
    for (name, target) in [("run", "../run"), ("lock", "../run/lock")] {
        let name = OsStr::new(name);
        if var.stat_child(name)?.is_none() {
            var.symlink(Path::new(target), name)?;
        }
    }
    Ok(())
}

/// The deployment's backing directory as upstream (≥ 2025) prepares it at deploy time:
/// `ostree/deploy/<sr>/backing/<name>/root-transient/{upper,work}`, the persistent
/// overlay directories a transient root may use; `upper` takes the root's mode.
fn init_backing(srdir: &Path, name: &str, deploy_root: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let mode = fs::metadata(deploy_root)
        .with_context(|| format!("stat {}", deploy_root.display()))?
        .mode()
        & 0o7777;
    let ovl = srdir.join("backing").join(name).join("root-transient");
    fsutil::mkdir_p(&ovl.join("work"), 0o700)?;
    let upper = ovl.join("upper");
    match fs::DirBuilder::new().mode(mode).create(&upper) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).with_context(|| format!("mkdir {}", upper.display()))
        }
        _ => Ok(()),
    }
}

/// `ostree-composefs deploy`.
pub fn deploy(opts: &DeployOptions) -> Result<DeployResult> {
    deploy_in(opts, begin_change_with(&opts.sysroot, opts.vfat.as_ref())?)
}

/// Writes the mirror after the sysroot's switch. When that fails, nothing may be
/// cleaned up: the mirror still boots deployments the sysroot no longer lists.
fn sync_mirror(sysroot: &Path, mirror: Option<&vfat::Mirror>, failed: &mut bool) -> Result<()> {
    if let Some(m) = mirror {
        let r = vfat::sync(sysroot, m).with_context(|| {
            format!(
                "writing the systemd-boot mirror on {} (the sysroot is switched; the next run completes the mirror)",
                m.root.display()
            )
        });
        *failed = r.is_err();
        r?;
    }
    Ok(())
}

/// [`deploy`] within a change already begun (lock held, state read).
pub fn deploy_in(opts: &DeployOptions, change: Change) -> Result<DeployResult> {
    let sysroot = opts.sysroot.as_path();
    change.check_for(sysroot)?;
    let Change {
        _lock,
        state,
        booted,
        ..
    } = change;
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
    // The version goes into the entry's title: refuse a hostile one before any work.
    if let Some(v) = &version {
        ostree_boot::bls::check_field("version", v, &csum)?;
    }

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
    let mut mirror_failed = false;
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
            true,
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
        // Keys in the order libostree sets them, which decides the order of those it
        // does not know (see BootEntry::render): the options first when they are
        // given or inherited, then title and version (filled in when written), the
        // files, and otherwise the options last.
        let options_first =
            merge.is_some() || !matches!(&opts.kargs, KargsSpec::Merge(a) if a.is_empty());
        let mut entry = BootEntry::default();
        if options_first {
            entry.set("options", kargs.to_string());
        }
        entry.set("title", "");
        entry.set("version", "");
        for (k, v) in kernel.entry_paths(&sr, &name, boot::bootprefix(sysroot)?) {
            entry.set(k, v);
        }
        entry.set("options", kargs.to_string());
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
        staged::drop_staged(booted.as_ref())?;
        boot::write_deployments(sysroot, &state, &mut planned, opts.naming)?;
        sync_mirror(sysroot, opts.vfat.as_ref(), &mut mirror_failed)?;
        staged::send_complete(sysroot, &state);
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
    // Unless the mirror could not follow the switch: it still boots what would go.
    if mirror_failed {
        return result;
    }
    let cleaned = boot::cleanup(sysroot, booted.as_ref());
    let result = result?;
    cleaned?;
    checkpoint("done")?;
    Ok(result)
}

/// Checkout, /etc, /var and origin of the new deployment, renamed into `deploy/` when
/// complete. Returns its kernel, title text, /etc merge counts and directory. Without
/// `seal` the deployment stays mutable, as libostree leaves a staged one until its /etc
/// is merged at shutdown.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn stage(
    sysroot: &Path,
    opts: &DeployOptions,
    repo: &Repo,
    csum: &ostree_boot::ostree::objects::Checksum,
    commit: &ostree_boot::ostree::objects::Commit,
    sr: &str,
    name: &str,
    merge: Option<&Deployment>,
    version: Option<&str>,
    seal: bool,
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
        staged::send_configmerge(&d);
    }
    checkpoint("etc-merged")?;
    seed_var(sysroot, sr, &staging)?;
    init_backing(&srdir, name, &staging)?;
    // Debian's ostree (2022.7) relabels the stateroot /var on first deploy and leaves
    // this stamp; without SELinux there is nothing to relabel, the stamp is the same.
    let selabeled = srdir.join("var/.ostree-selabeled");
    // A stamp the seeded /var ships as a link counts as present: nothing is written
    // through it (and the rename of write_atomic would replace the link, not follow it).
    if srdir.join("var").is_dir() && fs::symlink_metadata(&selabeled).is_err() {
        fsutil::write_atomic(&selabeled, b"", 0o644)?;
    }
    let var_updated = srdir.join("var/.updated");
    if fs::symlink_metadata(&var_updated).is_ok() {
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
    let kernel = kernel.rebased(&staging, &final_dir);
    fs::rename(&staging, &final_dir)
        .with_context(|| format!("renaming {} to {}", staging.display(), final_dir.display()))?;
    fsutil::fsync_path(&deploy_dir)?;
    if seal {
        fsutil::set_immutable(&final_dir)?;
    }
    checkpoint("deployment-in-place")?;

    Ok((kernel, title_base, etc_changes, final_dir))
}

/// `ostree-composefs undeploy INDEX`: drops deployment INDEX (0 = default) from the boot
/// configuration and removes it; the booted one is refused.
pub fn undeploy(
    sysroot: &Path,
    index: usize,
    naming: EntryNaming,
    mirror: Option<&vfat::Mirror>,
) -> Result<Deployment> {
    let Change {
        _lock,
        state,
        booted,
        ..
    } = begin_change_with(sysroot, mirror)?;
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
    staged::drop_staged(booted.as_ref())?;
    boot::write_deployments(sysroot, &state, &mut planned, naming)?;
    sync_mirror(sysroot, mirror, &mut false)?;
    boot::cleanup(sysroot, booted.as_ref())?;
    Ok(target)
}

/// Removes every deployment of `stateroot` whose kernel version is `kver` (never the
/// booted one), within a change begun by the caller (who chose `stateroot` from its
/// state); returns what was removed.
pub fn undeploy_kver(
    change: Change,
    stateroot: &str,
    kver: &str,
    naming: EntryNaming,
    mirror: Option<&vfat::Mirror>,
) -> Result<Vec<Deployment>> {
    let Change {
        _lock,
        sysroot,
        state,
        booted,
    } = change;
    let sysroot = sysroot.as_path();
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
    staged::drop_staged(booted.as_ref())?;
    boot::write_deployments(sysroot, &state, &mut planned, naming)?;
    sync_mirror(sysroot, mirror, &mut false)?;
    boot::cleanup(sysroot, booted.as_ref())?;
    Ok(gone.into_iter().cloned().collect())
}
