//! Writing the boot configuration for a list of deployments, the way
//! `_ostree_sysroot_write_deployments_internal` does: new bootlinks and entries are
//! written and synced beside the active ones, then one atomic rename makes them active
//! (`boot/loader`, or only `ostree/boot.N` when the entries would not change), then what
//! is no longer referenced is removed.

use std::fs;
use std::path::Path;

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

/// `[sysroot] bootprefix` of the repo config (ostree's `OSTREE_SYSROOT_GLOBAL_OPT_BOOTPREFIX`):
/// entries name `/boot/ostree/...` instead of `/ostree/...`, for a bootloader that reads
/// the root filesystem holding a /boot directory (GRUB's blscfg). A value that is not a
/// boolean is an error, as ostree's `ot_keyfile_get_boolean_with_default`; absent: false.
fn bootprefix(sysroot: &Path) -> Result<bool> {
    let path = sysroot.join("ostree/repo/config");
    let Some(kf) = ostree_boot::keyfile::KeyFile::load_optional(&path)? else {
        return Ok(false);
    };
    Ok(kf
        .get_bool("sysroot", "bootprefix")
        .with_context(|| format!("{}: [sysroot] bootprefix", path.display()))?
        .unwrap_or(false))
}

/// The entry's kernel file keys with the prefix `bootprefix` asks for (ostree writes
/// every entry's paths afresh, so a changed setting applies to all of them).
fn apply_bootprefix(e: &mut layout::BootEntry, bootprefix: bool) {
    for key in ["linux", "initrd", "devicetree"] {
        let Some(v) = e.get(key) else { continue };
        let bare = v
            .strip_prefix("/boot")
            .filter(|r| r.starts_with("/ostree/"))
            .unwrap_or(v);
        if !bare.starts_with("/ostree/") {
            continue;
        }
        let new = if bootprefix {
            format!("/boot{bare}")
        } else {
            bare.to_string()
        };
        e.set(key, new);
    }
}

/// Whether the entry's paths already have the prefix `bootprefix` asks for.
fn has_bootprefix(e: &layout::BootEntry, bootprefix: bool) -> bool {
    let mut fixed = e.clone();
    apply_bootprefix(&mut fixed, bootprefix);
    &fixed == e
}

/// The entry for `planned[index]` with bootversion `bv`.
fn render_entry(planned: &[Planned], index: usize, bv: u8, bootprefix: bool) -> layout::BootEntry {
    let p = &planned[index];
    let d = &p.deployment;
    let show = planned
        .iter()
        .any(|o| o.deployment.stateroot != planned[0].deployment.stateroot);
    let mut e = d.entry.clone();
    apply_bootprefix(&mut e, bootprefix);
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
fn write_deployment_refs(sysroot: &Path, bv: u8, sub: u8, deps: &[Deployment]) -> Result<()> {
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
    let prefix = bootprefix(sysroot)?;
    // ostree's test, plus: entries whose paths lack (or have) the /boot prefix the
    // config asks for are rewritten.
    let same = old.deployments.len() == deps.len()
        && old
            .deployments
            .iter()
            .zip(&deps)
            .all(|(a, b)| a.bootconfig_equal(b) && has_bootprefix(&a.entry, prefix));
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
    let keep = |sr: &str, name: &str| {
        state
            .deployments
            .iter()
            .chain(booted)
            .any(|d| d.stateroot == sr && d.name() == name)
    };
    for sr in layout::list_stateroots(sysroot)? {
        let srdir = sysroot.join("ostree/deploy").join(&sr);
        remove_path(&srdir.join(super::STAGING_DIR))?;
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
    let kdir = boot.join("ostree");
    if let Ok(rd) = fs::read_dir(&kdir) {
        for ent in rd {
            let ent = ent.with_context(|| format!("reading {}", kdir.display()))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let Some((_, csum)) = name.rsplit_once('-') else {
                continue;
            };
            if !layout::is_hex_csum(csum) || !ent.file_type()?.is_dir() {
                continue;
            }
            let used = state
                .deployments
                .iter()
                .chain(booted)
                .any(|d| d.bootcsum == csum);
            if !used {
                remove_path(&ent.path())?;
            }
        }
    }
    Ok(())
}

/// Installs the kernel files of a new deployment under `boot/ostree/<sr>-<bootcsum>/`,
/// each only if absent (hardlink, else copy through a temp name).
pub fn install_kernel(sysroot: &Path, stateroot: &str, k: &KernelFiles) -> Result<()> {
    let boot = sysroot.join("boot");
    let dir = boot.join(format!("ostree/{stateroot}-{}", k.bootcsum));
    fsutil::mkdir_p(&dir, 0o775)?;
    let mut files = vec![(&k.kernel, format!("vmlinuz-{}", k.kver))];
    if let Some(i) = &k.initrd {
        files.push((i, format!("initramfs-{}.img", k.kver)));
    }
    if let Some(d) = &k.devicetree {
        files.push((d, format!("devicetree-{}", k.kver)));
    }
    for (src, name) in files {
        let dst = dir.join(&name);
        if fs::symlink_metadata(&dst).is_ok() {
            continue;
        }
        fsutil::link_or_copy(src, &dst)?;
        checkpoint("kernel-file-installed")?;
    }
    fsutil::fsync_path(&dir)?;
    fsutil::fsync_path(&boot.join("ostree"))
}

/// The kernel, initrd and devicetree a deployment boots, and their bootcsum.
#[derive(Clone, Debug)]
pub struct KernelFiles {
    pub kver: String,
    pub kernel: std::path::PathBuf,
    pub initrd: Option<std::path::PathBuf>,
    pub devicetree: Option<std::path::PathBuf>,
    pub bootcsum: String,
}

impl KernelFiles {
    /// `linux`, `initrd`, `devicetree` entry keys, relative to /boot.
    pub fn entry_paths(&self, stateroot: &str) -> Vec<(&'static str, String)> {
        let d = format!("/ostree/{stateroot}-{}", self.bootcsum);
        let mut v = vec![("linux", format!("{d}/vmlinuz-{}", self.kver))];
        if self.initrd.is_some() {
            v.push(("initrd", format!("{d}/initramfs-{}.img", self.kver)));
        }
        if self.devicetree.is_some() {
            v.push(("devicetree", format!("{d}/devicetree-{}", self.kver)));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(linux: &str, initrd: &str) -> layout::BootEntry {
        layout::BootEntry::parse(&format!(
            "options root=/dev/vda\nlinux {linux}\ninitrd {initrd}\n"
        ))
    }

    #[test]
    fn bootprefix_is_added_removed_and_idempotent() {
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
