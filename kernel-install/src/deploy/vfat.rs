//! The systemd-boot mirror: the sysroot's active entries and the kernels they boot,
//! copied onto a vfat partition (ESP or XBOOTLDR) that systemd-boot reads.
//!
//! Why a mirror: ostree (every version) refuses a vfat /boot and needs `boot/loader` to
//! be a symlink, and FAT has no symlinks. So the sysroot's `boot/` keeps ostree's layout
//! (what `ostree admin status` reads) and the partition gets, on every change of the
//! boot configuration, the same entries (paths relative to the partition root) and
//! copies of their kernels and initrds, switched by one `renameat2(RENAME_EXCHANGE)` of
//! `loader/entries` with a fully written and synced staging directory. Until that
//! exchange the old entries and every file they name are untouched; the files only the
//! old entries named are removed after it.
//!
//! The sysroot is the source of truth: the mirror is rewritten from its active entries,
//! after each switch and at the start of each change (so that a run interrupted between
//! the sysroot's switch and the mirror's is completed before anything the old mirror
//! still boots is cleaned up).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ostree_boot::deployment::{Bootlink, DeployName};
use ostree_boot::layout::{BootEntry, Kargs};
use ostree_boot::sdboot::{self, Counter};

use super::{boot, checkpoint, fsutil};

/// The staging directory of a new entry set, beside `loader/entries`.
pub const STAGING: &str = "entries.ostree-new";

/// `MSDOS_SUPER_MAGIC` of statfs(2): vfat and msdos.
const MSDOS_SUPER_MAGIC: u64 = 0x4d44;

/// What `loader/loader.conf` gets when there is none. systemd-boot sorts entries
/// without `sort-key` by id, highest first, so another OS's entry (`other.conf`) would
/// come before `ostree-N`: the `default` pattern picks the first ostree entry in that
/// order, the newest deployment unless its tries are used up (`+0` entries sort last),
/// which is what makes the fallback to the previous deployment automatic.
pub const LOADER_CONF: &str = "# Written by ostree-composefs because there was no loader.conf; never\n# overwritten. The first ostree entry in systemd-boot's order boots: the newest\n# deployment, unless its boot counter reached +0.\ndefault ostree-*\ntimeout 3\n";

/// `vfat-boot=` of ostree-kernel-install.conf, `--vfat-boot` of `deploy`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum VfatSetting {
    /// kernel-install's `$KERNEL_INSTALL_BOOT_ROOT` when it is a vfat filesystem other
    /// than the sysroot's own boot/.
    #[default]
    Auto,
    /// Never mirror.
    None,
    /// This mount point, which must be vfat.
    Path(PathBuf),
}

impl VfatSetting {
    /// `auto`, `none` or an absolute path; `None` for anything else.
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "auto" => Some(VfatSetting::Auto),
            "none" => Some(VfatSetting::None),
            p if p.starts_with('/') => Some(VfatSetting::Path(PathBuf::from(p))),
            _ => None,
        }
    }
}

/// Where the mirror goes and how many tries a new deployment's entry gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub root: PathBuf,
    pub tries: Option<u32>,
}

/// Whether `p` is on a vfat filesystem.
pub fn is_vfat(p: &Path) -> Result<bool> {
    let st = rustix::fs::statfs(p).with_context(|| format!("statfs {}", p.display()))?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(st.f_type as u64 == MSDOS_SUPER_MAGIC)
}

/// Tests on a kernel without vfat (the CI host's) set this to mirror onto another
/// filesystem; the layout written is the same (no symlinks, an exchange of directories).
pub const ANY_FS_ENV: &str = "OSTREE_COMPOSEFS_VFAT_ANY_FS";

fn mirror_fs_ok(p: &Path) -> Result<bool> {
    Ok(is_vfat(p)? || std::env::var_os(ANY_FS_ENV).is_some_and(|v| v == "1"))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// ostree cannot use a vfat boot/ (no symlinks): refused with what to do instead.
pub fn check_boot_not_vfat(sysroot: &Path) -> Result<()> {
    let boot = sysroot.join("boot");
    if is_vfat(&boot)? {
        bail!(
            "{} is a vfat filesystem: ostree needs boot/ on a Linux filesystem (it switches \
             entries with a symlink). Keep /boot on a Linux filesystem and mount the vfat \
             partition at /efi (or /boot/efi): the entries and kernels are mirrored there \
             for systemd-boot (vfat-boot= in ostree-kernel-install.conf, --vfat-boot of deploy)",
            boot.display()
        );
    }
    Ok(())
}

/// The partition to mirror to, from the setting and kernel-install's
/// `$KERNEL_INSTALL_BOOT_ROOT` (`boot_root`), or none.
pub fn resolve(
    setting: &VfatSetting,
    sysroot: &Path,
    boot_root: Option<&Path>,
) -> Result<Option<PathBuf>> {
    let sysboot = sysroot.join("boot");
    match setting {
        VfatSetting::None => Ok(None),
        VfatSetting::Auto => {
            let Some(p) = boot_root else { return Ok(None) };
            if !p.is_dir() || same_dir(p, &sysboot) || !mirror_fs_ok(p)? {
                return Ok(None);
            }
            Ok(Some(p.to_path_buf()))
        }
        VfatSetting::Path(p) => {
            if !p.is_dir() {
                bail!("vfat boot partition {}: not a directory", p.display());
            }
            if !mirror_fs_ok(p)? {
                bail!(
                    "vfat boot partition {}: not a vfat filesystem (mount the ESP or XBOOTLDR partition there, or set vfat-boot=none)",
                    p.display()
                );
            }
            if same_dir(p, &sysboot) {
                bail!(
                    "vfat boot partition {} is the sysroot's own boot/",
                    p.display()
                );
            }
            Ok(Some(p.clone()))
        }
    }
}

/// kernel-install's tries file: `$KERNEL_INSTALL_CONF_ROOT/tries` when that variable is
/// set, else `/etc/kernel/tries`; `None` when it does not exist.
pub fn read_tries() -> Result<Option<u32>> {
    let path = match std::env::var_os("KERNEL_INSTALL_CONF_ROOT").filter(|v| !v.is_empty()) {
        Some(r) => PathBuf::from(r).join("tries"),
        None => PathBuf::from("/etc/kernel/tries"),
    };
    let bytes =
        match ostree_boot::fsutil::read_regular(&path, ostree_boot::fsutil::ReadKind::Config) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
    let text = String::from_utf8_lossy(&bytes);
    Ok(Some(sdboot::parse_tries(
        &text,
        &path.display().to_string(),
    )?))
}

/// One active entry of the sysroot.
struct Active {
    /// File name without `.conf`.
    base: String,
    text: String,
    stateroot: String,
    /// `<csum>.<serial>`.
    deploy_name: String,
}

impl Active {
    /// `<stateroot>/<csum>.<serial>`, as the identity line names it.
    fn identity(&self) -> String {
        format!("{}/{}", self.stateroot, self.deploy_name)
    }
}

fn read_active(sysroot: &Path) -> Result<Vec<Active>> {
    let dir = sysroot.join("boot/loader/entries");
    let mut out = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for ent in rd {
        let ent = ent.with_context(|| format!("reading {}", dir.display()))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        // An ostree that counts boots itself (`boot-counting-tries`) names the
        // sysroot's entries with a counter too: the mirror keeps its own.
        let Some((base, _)) = sdboot::split_entry_name(&name) else {
            continue;
        };
        if !ent.file_type()?.is_file() {
            continue;
        }
        let p = ent.path();
        if !base.starts_with(sdboot::ENTRY_PREFIX) {
            // The mirror tells its entries from other systems' by this prefix.
            bail!(
                "{}: not an ostree entry name (ostree-*.conf); cannot mirror it",
                p.display()
            );
        }
        let bytes = ostree_boot::fsutil::read_regular(&p, ostree_boot::fsutil::ReadKind::Config)
            .with_context(|| format!("reading {}", p.display()))?;
        let text =
            String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", p.display()))?;
        let entry = BootEntry::parse(&text);
        let kargs = Kargs::parse(entry.get("options").unwrap_or(""));
        let link = kargs
            .get("ostree")
            .with_context(|| format!("{}: no ostree= kernel argument", p.display()))?;
        let bl = Bootlink::parse(link).with_context(|| format!("{}", p.display()))?;
        let lp = sysroot.join(link.trim_start_matches('/'));
        let target = fs::read_link(&lp).with_context(|| format!("reading {}", lp.display()))?;
        let dname = target
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        DeployName::parse(&dname)
            .map_err(|_| anyhow::anyhow!("{}: bootlink target {target:?}", lp.display()))?;
        out.push(Active {
            base: base.to_string(),
            text,
            stateroot: bl.stateroot,
            deploy_name: dname,
        });
    }
    out.sort_by(|a, b| a.base.cmp(&b.base));
    Ok(out)
}

/// A path an entry names under /boot (`/ostree/...`, or `/boot/ostree/...` with
/// `sysroot.bootprefix`), as a path relative to the boot root; only plain components.
fn boot_relative(v: &str, file: &str) -> Result<PathBuf> {
    let bare = v
        .strip_prefix("/boot")
        .filter(|r| r.starts_with("/ostree/"))
        .unwrap_or(v);
    let rel = bare.strip_prefix("/ostree/").with_context(|| {
        format!("{file}: {v:?} is not under /ostree/ of /boot; cannot mirror it")
    })?;
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("{file}: {v:?} is not a plain path under /ostree/");
    }
    Ok(Path::new("ostree").join(rel))
}

/// The entry's text for the partition: the identity line, then every line of the
/// sysroot's entry, the file paths made relative to the partition root.
fn mirror_text(a: &Active, files: &mut BTreeSet<PathBuf>) -> Result<String> {
    let file = format!("{}.conf", a.base);
    let mut out = sdboot::identity_line(&a.stateroot, &a.deploy_name);
    out.push('\n');
    for line in a.text.lines() {
        let key_end = line.find([' ', '\t']);
        let key = key_end.map_or(line, |i| &line[..i]);
        match (key, key_end) {
            ("linux" | "initrd" | "devicetree", Some(i)) => {
                let rel = boot_relative(line[i + 1..].trim(), &file)?;
                out.push_str(&format!("{key} /{}\n", rel.display()));
                files.insert(rel);
            }
            ("fdtdir", _) => bail!("{file}: fdtdir is not supported on the vfat mirror"),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Writes `data` to `path` through a temp name, synced; no chmod/chown (FAT has none).
fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = tmp_name(path);
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Copies `src` to `dst` through a temp name, synced: streamed, so a file of any size
/// (another system's entry is not ours to bound) costs no memory.
fn copy_synced(src: &Path, dst: &Path) -> Result<()> {
    let tmp = tmp_name(dst);
    let mut from = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut to = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    std::io::copy(&mut from, &mut to)
        .and_then(|_| to.sync_all())
        .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
    drop(to);
    fs::rename(&tmp, dst)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dst.display()))
}

fn tmp_name(path: &Path) -> PathBuf {
    path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ))
}

/// Copies a kernel file onto the partition unless it is there already. Directories
/// are named by the boot checksum of their content and files only appear complete
/// (temp name, sync, rename), so one of the right size is the right one.
fn copy_kernel_file(src: &Path, dst: &Path) -> Result<()> {
    let len = fs::metadata(src)
        .with_context(|| format!("stat {}", src.display()))?
        .len();
    if fs::metadata(dst).is_ok_and(|m| m.is_file() && m.len() == len) {
        return Ok(());
    }
    let parent = dst.parent().context("kernel path without parent")?;
    fs::create_dir_all(parent).with_context(|| format!("mkdir {}", parent.display()))?;
    copy_synced(src, dst)?;
    fsutil::fsync_path(parent)?;
    checkpoint("vfat-kernel-copied")
}

/// The entries now on the partition.
#[derive(Default)]
struct Live {
    /// Boot counters of the ostree entries by deployment (`<stateroot>/<csum>.<serial>`);
    /// `None`: blessed (or never counted).
    counters: HashMap<String, Option<Counter>>,
    /// The ostree entries: name → text.
    ours: BTreeMap<String, String>,
    /// The names of the other entries, carried over as they are.
    foreign: Vec<String>,
}

fn read_mirror(entries: &Path) -> Result<Live> {
    let mut live = Live::default();
    let rd = match fs::read_dir(entries) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(live),
        Err(e) => return Err(e).with_context(|| format!("reading {}", entries.display())),
    };
    for ent in rd {
        let ent = ent.with_context(|| format!("reading {}", entries.display()))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let p = ent.path();
        if !ent.file_type()?.is_file() {
            bail!(
                "{}: not a regular file; refusing to replace {} (move it away)",
                p.display(),
                entries.display()
            );
        }
        let ours = name.starts_with(sdboot::ENTRY_PREFIX) && name.ends_with(".conf");
        if !ours {
            if !fsutil::is_temp_name(&name) {
                live.foreign.push(name);
            }
            continue;
        }
        let bytes = ostree_boot::fsutil::read_regular(&p, ostree_boot::fsutil::ReadKind::Config)
            .with_context(|| format!("reading {}", p.display()))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let (Some(id), Some((_, counter))) = (
            sdboot::read_identity(&text),
            sdboot::split_entry_name(&name),
        ) {
            live.counters.insert(id.to_string(), counter);
        }
        live.ours.insert(name, text);
    }
    live.foreign.sort();
    Ok(live)
}

/// Makes the partition at `m.root` mirror the sysroot's active entries.
pub fn sync(sysroot: &Path, m: &Mirror) -> Result<()> {
    let root = &m.root;
    let boot = sysroot.join("boot");
    let active = read_active(sysroot)?;
    let loader = root.join("loader");
    let entries = loader.join("entries");
    let staging = loader.join(STAGING);
    // Whatever is at the staging name is a leftover: a partial new set, or the old set
    // of an exchange whose cleanup did not happen. loader/entries is the live one.
    fsutil::remove_tree(&staging)?;
    let live = read_mirror(&entries)?;

    let mut files = BTreeSet::new();
    let mut texts = Vec::new();
    for a in &active {
        let text = mirror_text(a, &mut files)?;
        let counter = match live.counters.get(&a.identity()) {
            Some(c) => *c,
            None => m.tries.map(|left| Counter { left, done: None }),
        };
        texts.push((sdboot::entry_name(&a.base, counter), text));
    }
    let conf = loader.join("loader.conf");
    // Already the mirror of this configuration (every change begins by bringing the
    // partition up to date, and mostly finds it so): nothing is rewritten.
    let wanted: BTreeMap<String, String> = texts.iter().cloned().collect();
    if live.ours == wanted
        && fs::symlink_metadata(&conf).is_ok()
        && files.iter().all(|rel| {
            match (fs::metadata(boot.join(rel)), fs::metadata(root.join(rel))) {
                (Ok(a), Ok(b)) => b.is_file() && a.len() == b.len(),
                _ => false,
            }
        })
    {
        return remove_unreferenced(root, &files);
    }
    for rel in &files {
        copy_kernel_file(&boot.join(rel), &root.join(rel))?;
    }
    if !files.is_empty() {
        fsutil::fsync_path(&root.join("ostree"))?;
    }

    fs::create_dir_all(&loader).with_context(|| format!("mkdir {}", loader.display()))?;
    if fs::symlink_metadata(&conf).is_err() {
        write_synced(&conf, LOADER_CONF.as_bytes())?;
        checkpoint("vfat-loader-conf-written")?;
    }

    fs::create_dir(&staging).with_context(|| format!("mkdir {}", staging.display()))?;
    for name in &live.foreign {
        copy_synced(&entries.join(name), &staging.join(name))?;
    }
    for (name, text) in &texts {
        write_synced(&staging.join(name), text.as_bytes())?;
        checkpoint("vfat-entry-written")?;
    }
    fsutil::fsync_path(&staging)?;
    fsutil::fsync_path(&loader)?;
    fsutil::syncfs(root)?;
    checkpoint("vfat-before-swap")?;
    if fs::symlink_metadata(&entries).is_ok() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &staging,
            rustix::fs::CWD,
            &entries,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .with_context(|| {
            format!(
                "exchanging {} with {} (renameat2 RENAME_EXCHANGE; vfat supports it since Linux 6.0)",
                staging.display(),
                entries.display()
            )
        })?;
    } else {
        fs::rename(&staging, &entries)
            .with_context(|| format!("renaming {} to {}", staging.display(), entries.display()))?;
    }
    fsutil::fsync_path(&loader)?;
    checkpoint("vfat-after-swap")?;
    fsutil::remove_tree(&staging)?;
    fsutil::fsync_path(&loader)?;
    checkpoint("vfat-old-removed")?;
    remove_unreferenced(root, &files)
}

/// Removes the kernel directories under `ostree/` of the partition that no entry names,
/// and temp files left in the others.
fn remove_unreferenced(root: &Path, files: &BTreeSet<PathBuf>) -> Result<()> {
    let kdir = root.join("ostree");
    if !kdir.exists() {
        return Ok(());
    }
    for k in boot::kernel_dirs(root)? {
        let rel = Path::new("ostree").join(&k.name);
        if !files.iter().any(|f| f.starts_with(&rel)) {
            fsutil::remove_tree(&k.path)?;
            continue;
        }
        for f in fs::read_dir(&k.path).with_context(|| format!("reading {}", k.path.display()))? {
            let f = f?;
            if fsutil::is_temp_name(&f.file_name().to_string_lossy()) {
                fsutil::remove_tree(&f.path())?;
            }
        }
    }
    fsutil::fsync_path(&kdir)?;
    checkpoint("vfat-done")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        assert_eq!(VfatSetting::parse("auto"), Some(VfatSetting::Auto));
        assert_eq!(VfatSetting::parse("none"), Some(VfatSetting::None));
        assert_eq!(
            VfatSetting::parse("/efi"),
            Some(VfatSetting::Path("/efi".into()))
        );
        assert_eq!(VfatSetting::parse("efi"), None);
        assert_eq!(VfatSetting::parse("yes"), None);
    }

    /// On a filesystem that is not vfat (this host's kernel has none; the VM cases
    /// mount real ones): `auto` finds nothing, a given path is refused naming it.
    #[test]
    fn resolve_outside_vfat() {
        if std::env::var_os(ANY_FS_ENV).is_some() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let sysroot = t.path().join("sysroot");
        let esp = t.path().join("esp");
        fs::create_dir_all(sysroot.join("boot")).unwrap();
        fs::create_dir(&esp).unwrap();
        if is_vfat(&esp).unwrap() {
            return;
        }
        let auto = VfatSetting::Auto;
        assert_eq!(resolve(&auto, &sysroot, None).unwrap(), None);
        assert_eq!(resolve(&auto, &sysroot, Some(&esp)).unwrap(), None);
        assert_eq!(
            resolve(&auto, &sysroot, Some(&sysroot.join("boot"))).unwrap(),
            None
        );
        assert_eq!(
            resolve(&VfatSetting::None, &sysroot, Some(&esp)).unwrap(),
            None
        );
        let e = resolve(&VfatSetting::Path(esp.clone()), &sysroot, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a vfat filesystem") && e.contains("esp"),
            "{e}"
        );
        let e = resolve(&VfatSetting::Path(t.path().join("nope")), &sysroot, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope: not a directory"), "{e}");
        check_boot_not_vfat(&sysroot).unwrap();
    }

    #[test]
    fn paths_relative_to_the_partition() {
        assert_eq!(
            boot_relative("/ostree/os-abc/vmlinuz-6", "e").unwrap(),
            Path::new("ostree/os-abc/vmlinuz-6")
        );
        assert_eq!(
            boot_relative("/boot/ostree/os-abc/vmlinuz-6", "e").unwrap(),
            Path::new("ostree/os-abc/vmlinuz-6")
        );
        for bad in [
            "/vmlinuz",
            "/ostree/../x",
            "/ostree//x",
            "ostree/x",
            "/boot/vmlinuz",
        ] {
            let e = boot_relative(bad, "ostree-1.conf").unwrap_err().to_string();
            assert!(e.contains("ostree-1.conf"), "{bad}: {e}");
        }
    }

    #[test]
    fn entry_text_rewritten() {
        let a = Active {
            base: "ostree-1".into(),
            text: "title T\nversion 1\noptions root=x ostree=/ostree/boot.1/os/abc/0\nlinux /boot/ostree/os-abc/vmlinuz-6\ninitrd /ostree/os-abc/initramfs-6.img\n".into(),
            stateroot: "os".into(),
            deploy_name: "abc.0".into(),
        };
        let mut files = BTreeSet::new();
        let t = mirror_text(&a, &mut files).unwrap();
        assert_eq!(
            t,
            "# ostree-deployment: os/abc.0\ntitle T\nversion 1\noptions root=x ostree=/ostree/boot.1/os/abc/0\nlinux /ostree/os-abc/vmlinuz-6\ninitrd /ostree/os-abc/initramfs-6.img\n"
        );
        assert_eq!(files.len(), 2);
    }
}
