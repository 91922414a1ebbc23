//! Writing the boot configuration for a list of deployments, the way
//! `_ostree_sysroot_write_deployments_internal` does: new bootlinks and entries are
//! written and synced beside the active ones, then one atomic rename makes them active
//! (`boot/loader`, or only `ostree/boot.N` when the entries would not change), then what
//! is no longer referenced is removed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ostree_boot::deployment::{Bootlink, DeployName};
use ostree_boot::layout::{self, Deployment, EntryNaming, SysrootState};

use super::{checkpoint, fsutil};

/// A deployment to write, with the title text before ` (ostree…)`.
#[derive(Clone, Debug)]
pub struct Planned {
    pub deployment: Deployment,
    pub title_base: String,
}

impl Planned {
    /// A deployment already in the configuration keeps its title text.
    pub fn existing(d: &Deployment) -> Self {
        let title = d.entry.get("title").unwrap_or("");
        let base = title
            .rfind(" (ostree")
            .map_or(title, |i| &title[..i])
            .to_string();
        Planned {
            deployment: d.clone(),
            title_base: base,
        }
    }
}

fn remove_path(p: &Path) -> Result<()> {
    fsutil::remove_tree(p)
}

/// `ostree/boot.BV.SUB/<sr>/<bootcsum>/<serial> -> ../../../deploy/<sr>/deploy/<name>`,
/// written from scratch and synced.
fn create_bootlinks(sysroot: &Path, bv: u8, sub: u8, deps: &[Deployment]) -> Result<()> {
    let dir = sysroot.join(format!("ostree/boot.{bv}.{sub}"));
    remove_path(&dir)?;
    fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    for d in deps {
        let parent = dir.join(&d.stateroot).join(&d.bootcsum);
        fs::create_dir_all(&parent).with_context(|| format!("mkdir {}", parent.display()))?;
        let target = format!("../../../deploy/{}/deploy/{}", d.stateroot, d.name());
        let link = parent.join(d.bootserial.to_string());
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("symlink {}", link.display()))?;
    }
    // Every directory of the new tree is synced so the bootlinks survive a crash.
    for d in deps {
        fsutil::fsync_path(&dir.join(&d.stateroot).join(&d.bootcsum))?;
        fsutil::fsync_path(&dir.join(&d.stateroot))?;
    }
    fsutil::fsync_path(&dir)?;
    fsutil::fsync_path(&sysroot.join("ostree"))
}

/// An entry's paths into /boot (`linux`, `initrd` and the overlay initrds, `devicetree`,
/// `fdtdir`) with the prefix `bootprefix` asks for. libostree writes every entry afresh
/// at each swap, so a changed setting, or an entry an ostree that ignores the setting
/// wrote (2022.7), takes it too. Paths outside ostree's layout are left alone.
fn apply_bootprefix(e: &mut layout::BootEntry, bootprefix: bool) {
    let fix = |v: &str| -> Option<String> {
        let bare = v
            .strip_prefix("/boot")
            .filter(|r| r.starts_with("/ostree/"))
            .unwrap_or(v);
        bare.starts_with("/ostree/").then(|| {
            if bootprefix {
                format!("/boot{bare}")
            } else {
                bare.to_string()
            }
        })
    };
    for key in ["linux", "initrd", "devicetree", "fdtdir"] {
        if let Some(new) = e.get(key).and_then(fix) {
            e.set(key, new);
        }
    }
    let overlays = e
        .overlay_initrds()
        .iter()
        .map(|v| fix(v).unwrap_or_else(|| v.clone()))
        .collect();
    e.set_overlay_initrds(overlays);
}

/// Whether the entry's paths already carry the prefix `bootprefix` asks for.
fn has_bootprefix(e: &layout::BootEntry, bootprefix: bool) -> bool {
    let mut fixed = e.clone();
    apply_bootprefix(&mut fixed, bootprefix);
    &fixed == e
}

/// The entry for `planned[index]` with bootversion `bv`.
fn render_entry(planned: &[Planned], index: usize, bv: u8, prefix: bool) -> layout::BootEntry {
    let p = &planned[index];
    let d = &p.deployment;
    let show = planned
        .iter()
        .any(|o| o.deployment.stateroot != planned[0].deployment.stateroot);
    let mut e = d.entry.clone();
    apply_bootprefix(&mut e, prefix);
    e.set(
        "title",
        layout::entry_title(
            &p.title_base,
            None,
            show.then_some(d.stateroot.as_str()),
            index,
        ),
    );
    e.set("version", (planned.len() - index).to_string());
    let mut kargs = layout::Kargs::parse(e.get("options").unwrap_or(""));
    if e.get("initrd").is_none() {
        kargs.replace(&format!(
            "init=/ostree/boot.{bv}/{}/{}/{}/usr/lib/ostree/ostree-prepare-root",
            d.stateroot, d.bootcsum, d.bootserial
        ));
    }
    let link = Bootlink {
        bootversion: bv,
        stateroot: d.stateroot.clone(),
        bootcsum: d.bootcsum.clone(),
        treeserial: d.bootserial,
    };
    kargs.replace(&format!("ostree={link}"));
    e.set("options", kargs.to_string());
    e
}

/// `repo/refs/heads/ostree/BV/SUB/I` for every deployment: the refs libostree keeps so
/// that `ostree prune` never collects a deployed commit.
pub(crate) fn write_deployment_refs(
    sysroot: &Path,
    bv: u8,
    sub: u8,
    deps: &[Deployment],
) -> Result<()> {
    let base = sysroot.join("ostree/repo/refs/heads/ostree");
    // libostree deletes the old refs one by one and leaves their directories.
    remove_files_below(&base)?;
    let dir = base.join(format!("{bv}/{sub}"));
    fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    for (i, d) in deps.iter().enumerate() {
        fsutil::write_atomic(
            &dir.join(i.to_string()),
            format!("{}\n", d.csum).as_bytes(),
            0o644,
        )?;
    }
    Ok(())
}

fn remove_files_below(dir: &Path) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in rd {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if e.file_type()?.is_dir() {
            remove_files_below(&e.path())?;
        } else {
            fs::remove_file(e.path())
                .with_context(|| format!("removing {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Makes `planned` (newest first) the boot configuration of `sysroot`.
pub fn write_deployments(
    sysroot: &Path,
    old: &SysrootState,
    planned: &mut [Planned],
    naming: EntryNaming,
) -> Result<()> {
    let mut deps: Vec<Deployment> = planned.iter().map(|p| p.deployment.clone()).collect();
    layout::assign_bootserials(&mut deps);
    for (p, d) in planned.iter_mut().zip(&deps) {
        p.deployment.bootserial = d.bootserial;
    }
    // ostree's deployment_bootconfigs_equal: the title carries the commit's version, so
    // a pair with another version (or stateroot) needs new entries, not only bootlinks.
    let repo = ostree_boot::ostree::repo::Repo::open(sysroot.join("ostree/repo")).ok();
    let version = |d: &Deployment| -> Option<String> {
        let csum = ostree_boot::ostree::objects::parse_checksum(&d.csum).ok()?;
        let (_, c) = repo.as_ref()?.load_commit(&csum).ok()?;
        c.metadata.get("version").and_then(|v| v.as_str())
    };
    let prefix = bootprefix(sysroot)?;
    let same = old.deployments.len() == deps.len()
        && old.deployments.iter().zip(&deps).all(|(a, b)| {
            a.bootconfig_equal(b)
                && a.stateroot == b.stateroot
                && version(a) == version(b)
                && has_bootprefix(&a.entry, prefix)
        });
    let bv = old.bootversion;
    if same && !deps.is_empty() {
        // Only the bootlinks move: the entries keep pointing at ostree/boot.BV.
        let sub = 1 - old.subbootversion;
        create_bootlinks(sysroot, bv, sub, &deps)?;
        checkpoint("bootlinks-written")?;
        fsutil::symlink_atomic(
            &format!("boot.{bv}.{sub}"),
            &sysroot.join(format!("ostree/boot.{bv}")),
        )?;
        checkpoint("bootlinks-swapped")?;
        write_deployment_refs(sysroot, bv, sub, &deps)?;
        remove_path(&sysroot.join(format!("ostree/boot.{bv}.{}", old.subbootversion)))?;
        return Ok(());
    }

    let nbv = 1 - bv;
    let nsub = 1 - layout::read_subbootversion(sysroot, nbv)?;
    create_bootlinks(sysroot, nbv, nsub, &deps)?;
    checkpoint("bootlinks-written")?;
    fsutil::symlink_atomic(
        &format!("boot.{nbv}.{nsub}"),
        &sysroot.join(format!("ostree/boot.{nbv}")),
    )?;
    checkpoint("bootlinks-swapped")?;

    let boot = sysroot.join("boot");
    let loader = boot.join(format!("loader.{nbv}"));
    remove_path(&loader)?;
    let entries = loader.join("entries");
    fs::create_dir_all(&entries).with_context(|| format!("mkdir {}", entries.display()))?;
    for i in 0..planned.len() {
        let e = render_entry(planned, i, nbv, prefix);
        // Every value of the entry (title, kernel paths, options) came from a commit or
        // a command line: none may add lines to it.
        ostree_boot::bls::check_entry(&e, &planned[i].deployment.csum)?;
        let name =
            layout::entry_filename(naming, i, planned.len(), &planned[i].deployment.stateroot);
        fsutil::write_atomic(&entries.join(name), e.render().as_bytes(), 0o644)?;
        planned[i].deployment.entry = e;
        checkpoint("entry-written")?;
    }
    fsutil::fsync_path(&entries)?;
    fsutil::fsync_path(&loader)?;
    // `boot/boot -> .` lets the same paths work whether /boot is its own partition.
    let bootlink = boot.join("boot");
    if fs::symlink_metadata(&bootlink).is_err() {
        std::os::unix::fs::symlink(".", &bootlink)
            .with_context(|| format!("symlink {}", bootlink.display()))?;
    }
    fsutil::fsync_path(&boot)?;
    fsutil::syncfs(sysroot)?;
    fsutil::syncfs(&boot)?;
    checkpoint("before-swap")?;
    fsutil::symlink_atomic(&format!("loader.{nbv}"), &boot.join("loader"))?;
    checkpoint("after-swap")?;
    write_deployment_refs(sysroot, nbv, nsub, &deps)?;
    Ok(())
}

/// Removes what the active configuration no longer references: the other bootversion's
/// loader and bootlinks, deployments, origins and `/boot/ostree` kernel directories
/// that no entry uses, and leftovers of interrupted runs. The booted deployment is
/// kept whatever the entries say.
pub fn cleanup(sysroot: &Path, booted: Option<&Deployment>) -> Result<()> {
    super::stale::remove_stale_temps(sysroot)?;
    let state = SysrootState::read(sysroot)?;
    let (bv, sub) = (state.bootversion, state.subbootversion);
    let obv = 1 - bv;
    let boot = sysroot.join("boot");
    for p in [
        boot.join(format!("loader.{obv}")),
        boot.join("loader.tmp"),
        sysroot.join(format!("ostree/boot.{obv}")),
        sysroot.join(format!("ostree/boot.{obv}.tmp")),
        sysroot.join(format!("ostree/boot.{obv}.0")),
        sysroot.join(format!("ostree/boot.{obv}.1")),
        sysroot.join(format!("ostree/boot.{bv}.tmp")),
        sysroot.join(format!("ostree/boot.{bv}.{}", 1 - sub)),
    ] {
        remove_path(&p)?;
    }
    // A staged deployment is referenced by /run/ostree/staged-deployment only.
    let staged = super::staged::read_staged(booted)?;
    let keep = |sr: &str, name: &str| {
        state
            .deployments
            .iter()
            .chain(booted)
            .any(|d| d.stateroot == sr && d.name() == name)
            || staged
                .as_ref()
                .is_some_and(|s| s.target.osname == sr && s.target.name() == name)
    };
    for sr in layout::list_stateroots(sysroot)? {
        let srdir = sysroot.join("ostree/deploy").join(&sr);
        remove_path(&srdir.join(super::STAGING_DIR))?;
        // Backing directories go with their deployment (upstream removes them with it;
        // orphans of an interrupted deploy go too).
        let bdir = srdir.join("backing");
        if let Ok(rd) = fs::read_dir(&bdir) {
            for ent in rd {
                let ent = ent.with_context(|| format!("reading {}", bdir.display()))?;
                let name = ent.file_name().to_string_lossy().into_owned();
                if DeployName::parse(&name).is_ok() && !keep(&sr, &name) {
                    remove_path(&ent.path())?;
                }
            }
        }
        let ddir = srdir.join("deploy");
        let rd = match fs::read_dir(&ddir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", ddir.display())),
        };
        for ent in rd {
            let ent = ent.with_context(|| format!("reading {}", ddir.display()))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".origin").unwrap_or(&name);
            if DeployName::parse(base).is_err() {
                // Our own temp files (`.x.tmp`) are leftovers; anything else is not ours.
                if fsutil::is_temp_name(&name) {
                    remove_path(&ent.path())?;
                }
                continue;
            }
            if !keep(&sr, base) {
                remove_path(&ent.path())?;
            }
        }
    }
    for k in kernel_dirs(&boot)? {
        let used = state
            .deployments
            .iter()
            .chain(booted)
            .any(|d| d.bootcsum == k.bootcsum)
            || staged
                .as_ref()
                .is_some_and(|s| s.target.bootcsum == k.bootcsum);
        if !used {
            remove_path(&k.path)?;
        }
    }
    Ok(())
}

/// A kernel directory `ostree/<stateroot>-<bootcsum>/` of a boot partition.
pub(crate) struct KernelDir {
    /// `<stateroot>-<bootcsum>`.
    pub name: String,
    pub bootcsum: String,
    pub path: PathBuf,
}

/// The kernel directories under `<boot>/ostree/`: directories whose name ends in
/// `-<bootcsum>`; anything else there is not ours to judge. No `ostree/`: none.
pub(crate) fn kernel_dirs(boot: &Path) -> Result<Vec<KernelDir>> {
    let kdir = boot.join("ostree");
    let rd = match fs::read_dir(&kdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", kdir.display())),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.with_context(|| format!("reading {}", kdir.display()))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some((_, csum)) = name.rsplit_once('-') else {
            continue;
        };
        if !layout::is_hex_csum(csum) || !ent.file_type()?.is_dir() {
            continue;
        }
        let bootcsum = csum.to_owned();
        out.push(KernelDir {
            path: ent.path(),
            name,
            bootcsum,
        });
    }
    Ok(out)
}

/// Installs the kernel files of a new deployment under `boot/ostree/<sr>-<bootcsum>/`,
/// each only if absent (hardlink, else copy through a temp name); a `dtb/` directory is
/// copied whole under a temp name and renamed into place.
pub fn install_kernel(sysroot: &Path, stateroot: &str, k: &KernelFiles) -> Result<()> {
    let boot = sysroot.join("boot");
    let dir = boot.join(format!("ostree/{stateroot}-{}", k.bootcsum));
    fsutil::mkdir_p(&dir, 0o775)?;
    let mut files = vec![(&k.kernel, k.kernel_name())];
    if let Some(i) = &k.initrd {
        files.push((i, k.initrd_name()));
    }
    if let Some(d) = &k.devicetree {
        files.push((d, k.devicetree_name()));
    }
    if let Some(h) = &k.extras.hmac {
        files.push((h, format!(".{}.hmac", k.kernel_name())));
    }
    if let Some(a) = &k.extras.aboot {
        files.push((a, format!("aboot-{}.img", k.kver)));
    }
    for (src, name) in files {
        let dst = dir.join(&name);
        if fs::symlink_metadata(&dst).is_ok() {
            continue;
        }
        fsutil::link_or_copy(src, &dst)?;
        checkpoint("kernel-file-installed")?;
    }
    if let Some(src) = &k.extras.dtb_dir {
        let dst = dir.join("dtb");
        if fs::symlink_metadata(&dst).is_err() {
            let tmp = dir.join(".dtb.tmp");
            fsutil::remove_tree(&tmp)?;
            // The tree's dtb/ is copied through descriptors: a link in it stays a link.
            let parent = src
                .parent()
                .with_context(|| format!("{} has no parent", src.display()))?;
            ostree_boot::beneath::copy_tree(
                &ostree_boot::beneath::Dir::open(parent)?,
                std::ffi::OsStr::new("dtb"),
                &ostree_boot::beneath::Dir::open(&dir)?,
                std::ffi::OsStr::new(".dtb.tmp"),
            )
            .with_context(|| format!("copying {}", src.display()))?;
            fs::rename(&tmp, &dst)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dst.display()))?;
        }
    }
    fsutil::fsync_path(&dir)?;
    fsutil::fsync_path(&boot.join("ostree"))
}

/// What else goes to /boot with a kernel found in the tree (see
/// [`ostree_boot::bootfiles`]).
#[derive(Clone, Debug, Default)]
pub struct BootExtras {
    /// Names under /boot when they are not `vmlinuz-<kver>` etc. (legacy layouts).
    pub kernel_name: Option<String>,
    pub initrd_name: Option<String>,
    pub devicetree_name: Option<String>,
    /// A `dtb/` directory (entry key `fdtdir`).
    pub dtb_dir: Option<PathBuf>,
    /// `.vmlinuz.hmac`, installed as `.vmlinuz-<kver>.hmac`.
    pub hmac: Option<PathBuf>,
    /// `aboot.img` (entry keys `aboot`, `abootcfg`).
    pub aboot: Option<PathBuf>,
}

/// The kernel, initrd and devicetree a deployment boots, and their bootcsum.
#[derive(Clone, Debug)]
pub struct KernelFiles {
    pub kver: String,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub devicetree: Option<PathBuf>,
    pub bootcsum: String,
    pub extras: BootExtras,
}

/// `[sysroot] bootprefix` of the repository config: entry paths start with `/boot/`,
/// for a /boot that is a directory of the root filesystem the bootloader reads.
pub fn bootprefix(sysroot: &Path) -> Result<bool> {
    let p = sysroot.join("ostree/repo/config");
    let Some(kf) = ostree_boot::keyfile::KeyFile::load_optional(&p)? else {
        return Ok(false);
    };
    Ok(kf.get_bool("sysroot", "bootprefix")?.unwrap_or(false))
}

impl KernelFiles {
    /// From a kernel found in the tree.
    pub fn from_tree(k: ostree_boot::bootfiles::TreeKernel) -> Self {
        use ostree_boot::bootfiles::Devicetree;
        let (devicetree, devicetree_name, dtb_dir) = match k.devicetree {
            Some(Devicetree::File(f)) => (Some(f.src), Some(f.name), None),
            Some(Devicetree::Dir(d)) => (None, None, Some(d)),
            None => (None, None, None),
        };
        KernelFiles {
            extras: BootExtras {
                kernel_name: Some(k.kernel.name),
                initrd_name: k.initramfs.as_ref().map(|f| f.name.clone()),
                devicetree_name,
                dtb_dir,
                hmac: k.hmac.map(|f| f.src),
                aboot: k.aboot.map(|f| f.src),
            },
            kver: k.kver,
            kernel: k.kernel.src,
            initrd: k.initramfs.map(|f| f.src),
            devicetree,
            bootcsum: k.bootcsum,
        }
    }

    pub fn kernel_name(&self) -> String {
        self.extras
            .kernel_name
            .clone()
            .unwrap_or_else(|| format!("vmlinuz-{}", self.kver))
    }
    pub fn initrd_name(&self) -> String {
        self.extras
            .initrd_name
            .clone()
            .unwrap_or_else(|| format!("initramfs-{}.img", self.kver))
    }
    pub fn devicetree_name(&self) -> String {
        self.extras
            .devicetree_name
            .clone()
            .unwrap_or_else(|| format!("devicetree-{}", self.kver))
    }

    /// The same files after the tree moved from `from` to `to`.
    pub fn rebased(self, from: &Path, to: &Path) -> Self {
        let r = |p: PathBuf| match p.strip_prefix(from) {
            Ok(rel) => to.join(rel),
            Err(_) => p,
        };
        KernelFiles {
            kernel: r(self.kernel),
            initrd: self.initrd.map(r),
            devicetree: self.devicetree.map(r),
            extras: BootExtras {
                dtb_dir: self.extras.dtb_dir.map(r),
                hmac: self.extras.hmac.map(r),
                aboot: self.extras.aboot.map(r),
                ..self.extras
            },
            ..self
        }
    }

    /// The entry's keys for these files, as libostree writes them: `linux`, `initrd`,
    /// `aboot` and `abootcfg`, `devicetree` or `fdtdir`; paths relative to /boot, or
    /// starting with `/boot/` with `bootprefix` (except the aboot ones, as upstream).
    pub fn entry_paths(
        &self,
        stateroot: &str,
        deploy_name: &str,
        bootprefix: bool,
    ) -> Vec<(&'static str, String)> {
        let rel = format!("ostree/{stateroot}-{}", self.bootcsum);
        let d = format!("{}{rel}", if bootprefix { "/boot/" } else { "/" });
        let mut v = vec![("linux", format!("{d}/{}", self.kernel_name()))];
        if self.initrd.is_some() {
            v.push(("initrd", format!("{d}/{}", self.initrd_name())));
        }
        if self.extras.aboot.is_some() {
            v.push(("aboot", format!("/{rel}/aboot-{}.img", self.kver)));
            v.push((
                "abootcfg",
                format!(
                    "/ostree/deploy/{stateroot}/deploy/{deploy_name}/usr/lib/ostree-boot/aboot.cfg"
                ),
            ));
        }
        if self.devicetree.is_some() {
            v.push(("devicetree", format!("{d}/{}", self.devicetree_name())));
        } else if self.extras.dtb_dir.is_some() {
            v.push(("fdtdir", format!("{d}/dtb")));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootprefix_is_added_removed_and_idempotent() {
        let entry = |linux: &str, initrd: &str| {
            layout::BootEntry::parse(&format!(
                "options root=/dev/vda\nlinux {linux}\ninitrd {initrd}\ninitrd {initrd}.overlay\n"
            ))
        };
        let bare = entry("/ostree/os-abc/vmlinuz-6", "/ostree/os-abc/initramfs-6.img");
        let pre = entry(
            "/boot/ostree/os-abc/vmlinuz-6",
            "/boot/ostree/os-abc/initramfs-6.img",
        );
        let mut e = bare.clone();
        apply_bootprefix(&mut e, true);
        assert_eq!(e, pre);
        apply_bootprefix(&mut e, true);
        assert_eq!(e, pre);
        apply_bootprefix(&mut e, false);
        assert_eq!(e, bare);
        assert!(has_bootprefix(&pre, true) && !has_bootprefix(&pre, false));
        assert!(has_bootprefix(&bare, false) && !has_bootprefix(&bare, true));
        // Paths outside ostree's layout are left alone.
        let other = entry("/vmlinuz", "/bootstrap/initrd");
        let mut e = other.clone();
        apply_bootprefix(&mut e, true);
        assert_eq!(e, other);
    }

    #[test]
    fn bootprefix_config() {
        let t = tempfile::tempdir().unwrap();
        assert!(!bootprefix(t.path()).unwrap());
        fs::create_dir_all(t.path().join("ostree/repo")).unwrap();
        let cfg = t.path().join("ostree/repo/config");
        fs::write(&cfg, "[core]\nmode=bare\n").unwrap();
        assert!(!bootprefix(t.path()).unwrap());
        fs::write(&cfg, "[core]\nmode=bare\n[sysroot]\nbootprefix=true\n").unwrap();
        assert!(bootprefix(t.path()).unwrap());
        fs::write(&cfg, "[sysroot]\nbootprefix=maybe\n").unwrap();
        let e = format!("{:#}", bootprefix(t.path()).unwrap_err());
        assert!(e.contains("repo/config") && e.contains("bootprefix"), "{e}");
    }
}
