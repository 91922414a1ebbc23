//! The kernel of a tree and the files that go with it to /boot, found as libostree's
//! `get_kernel_from_tree` finds them (`ostree-sysroot-deploy.c`, 2025+):
//!
//! - `usr/lib/modules/<kver>/`: `vmlinuz`, `initramfs.img` (or `initramfs`),
//!   `aboot.img`, `devicetree` or else a `dtb/` directory, and `.vmlinuz.hmac` (FIPS),
//!   installed as `vmlinuz-<kver>`, `initramfs-<kver>.img`, `aboot-<kver>.img`,
//!   `devicetree-<kver>` (or `dtb/`) and `.vmlinuz-<kver>.hmac`. The bootcsum is the
//!   sha256 of kernel, initramfs, then devicetree or every file of `dtb/` in sorted
//!   order, recursively;
//! - the legacy layouts `usr/lib/ostree-boot/` and else `boot/`: `vmlinuz-<x>-<csum>`,
//!   `initramfs-<x>-<csum>`, `devicetree-<x>-<csum>`, the checksum in the names being
//!   the bootcsum (kernel and initramfs must agree); installed without the checksum.
//!
//! When both exist, the module layout wins unless only the legacy one has an initramfs.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;
use sha2::{Digest, Sha256};

use crate::beneath::{BeneathError, Dir, Resolve};
use crate::layout::MAX_BOOT_FILE;

#[derive(Debug, thiserror::Error)]
pub enum BootFilesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Contained(#[from] crate::beneath::BeneathError),
    #[error("{0}: Mismatched kernel checksum vs initrd")]
    InitrdMismatch(PathBuf),
    #[error("{0}: Mismatched kernel checksum vs device tree in tree")]
    DevicetreeMismatch(PathBuf),
}

type Result<T> = std::result::Result<T, BootFilesError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootFilesError + '_ {
    move |source| BootFilesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file of the tree and its name under `/boot/ostree/<os>-<bootcsum>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootFile {
    pub src: PathBuf,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Devicetree {
    /// One device tree (`devicetree` key).
    File(BootFile),
    /// A directory of them, copied whole as `dtb/` (`fdtdir` key).
    Dir(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeKernel {
    pub kver: String,
    pub kernel: BootFile,
    pub initramfs: Option<BootFile>,
    pub devicetree: Option<Devicetree>,
    /// `.vmlinuz.hmac`, installed as `.vmlinuz-<kver>.hmac` as dracut's fips module
    /// expects it.
    pub hmac: Option<BootFile>,
    pub aboot: Option<BootFile>,
    pub bootcsum: String,
}

/// A regular file `name` directly in `dir` (a link there is data, not a boot file).
fn is_regular_child(dir: &Dir, name: &str) -> Result<bool> {
    Ok(dir
        .stat_child(OsStr::new(name))?
        .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile))
}

fn is_dir_child(dir: &Dir, name: &OsStr) -> Result<bool> {
    Ok(dir
        .stat_child(name)?
        .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory))
}

/// Hashes the regular file `name` of `dir`, opened without following links and capped
/// at [`MAX_BOOT_FILE`].
fn hash_child(h: &mut Sha256, dir: &Dir, name: &OsStr) -> Result<()> {
    let path = dir.path().join(name);
    let f = dir.open_file(Path::new(name), Resolve::NoSymlinks)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let mut f = f;
    loop {
        let n = f.read(&mut buf).map_err(io(&path))?;
        if n == 0 {
            return Ok(());
        }
        total += n as u64;
        if total > MAX_BOOT_FILE {
            return Err(BeneathError::TooLarge {
                path,
                max: MAX_BOOT_FILE,
            }
            .into());
        }
        h.update(&buf[..n]);
    }
}

/// `checksum_dir_recurse`: entries sorted by name (byte order, as strcmp), directories
/// recursed into, regular files hashed. Unlike upstream, which opens whatever else it
/// finds, a link is data and is left out (it is never followed out of the tree).
fn hash_dir(h: &mut Sha256, dir: &Dir) -> Result<()> {
    let mut entries = dir.entries()?;
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, st) in entries {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => hash_dir(h, &dir.open_dir(Path::new(&name))?)?,
            FileType::RegularFile => hash_child(h, dir, &name)?,
            _ => {}
        }
    }
    Ok(())
}

/// The module layout, contained in the tree: a link at `usr`, `usr/lib` or
/// `usr/lib/modules` is an error, a `<kver>` that is a link is skipped, and the boot
/// files count only as regular files.
fn modules_layout(root: &Path) -> Result<Option<TreeKernel>> {
    let tree = Dir::open(root)?;
    let modules = match tree.open_dir(Path::new("usr/lib/modules")) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut found = None;
    for (name, st) in modules.entries()? {
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            continue;
        }
        let kdir = modules.open_dir(Path::new(&name))?;
        if is_regular_child(&kdir, "vmlinuz")? {
            found = Some((name.to_string_lossy().into_owned(), kdir));
            break;
        }
    }
    let Some((kver, kdir)) = found else {
        return Ok(None);
    };
    let dir = kdir.path().to_path_buf();
    let mut h = Sha256::new();
    let vmlinuz = dir.join("vmlinuz");
    hash_child(&mut h, &kdir, OsStr::new("vmlinuz"))?;
    let mut initramfs = None;
    for n in ["initramfs.img", "initramfs"] {
        if is_regular_child(&kdir, n)? {
            hash_child(&mut h, &kdir, OsStr::new(n))?;
            initramfs = Some(BootFile {
                src: dir.join(n),
                name: format!("initramfs-{kver}.img"),
            });
            break;
        }
    }
    let aboot = is_regular_child(&kdir, "aboot.img")?.then(|| BootFile {
        src: dir.join("aboot.img"),
        name: format!("aboot-{kver}.img"),
    });
    let devicetree = if is_regular_child(&kdir, "devicetree")? {
        hash_child(&mut h, &kdir, OsStr::new("devicetree"))?;
        Some(Devicetree::File(BootFile {
            src: dir.join("devicetree"),
            name: format!("devicetree-{kver}"),
        }))
    } else if is_dir_child(&kdir, OsStr::new("dtb"))? {
        hash_dir(&mut h, &kdir.open_dir(Path::new("dtb"))?)?;
        Some(Devicetree::Dir(dir.join("dtb")))
    } else {
        None
    };
    let hmac = is_regular_child(&kdir, ".vmlinuz.hmac")?.then(|| BootFile {
        src: dir.join(".vmlinuz.hmac"),
        name: format!(".vmlinuz-{kver}.hmac"),
    });
    Ok(Some(TreeKernel {
        kernel: BootFile {
            src: vmlinuz,
            name: format!("vmlinuz-{kver}"),
        },
        kver,
        initramfs,
        devicetree,
        hmac,
        aboot,
        bootcsum: hex::encode(h.finalize()),
    }))
}

/// `<prefix><x>-<csum>` with a valid sha256 checksum: (`<prefix><x>`, csum).
fn split_csum<'a>(name: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    if !name.starts_with(prefix) {
        return None;
    }
    let (namever, csum) = name.rsplit_once('-')?;
    crate::layout::is_hex_csum(csum).then_some((namever, csum))
}

fn legacy_layout(root: &Path) -> Result<Option<TreeKernel>> {
    let tree = Dir::open(root)?;
    let mut found = None;
    for p in ["usr/lib/ostree-boot", "boot"] {
        // Only a real directory is a legacy layout: a link (or a file) the commit ships
        // at these names is data.
        match tree.metadata(p) {
            Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                found = Some(tree.open_dir(Path::new(p))?);
                break;
            }
            Ok(_) => continue,
            Err(e) if e.is_not_found() || e.is_symlink() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let Some(ldir) = found else {
        return Ok(None);
    };
    let dir = ldir.path().to_path_buf();
    let (mut kernel, mut initramfs, mut devicetree) = (None, None, None);
    for (name, st) in ldir.entries()? {
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            continue;
        }
        let path = dir.join(&name);
        let name = name.to_string_lossy().into_owned();
        // As upstream, the first of each kind in readdir order; a name with a
        // malformed checksum is skipped, and nothing else is looked at.
        if kernel.is_none() && name.starts_with("vmlinuz-") {
            if let Some((nv, c)) = split_csum(&name, "vmlinuz-") {
                kernel = Some((path, nv.to_string(), c.to_string()));
            }
        } else if initramfs.is_none() && name.starts_with("initramfs-") {
            if let Some((nv, c)) = split_csum(&name, "initramfs-") {
                initramfs = Some((path, nv.to_string(), c.to_string()));
            }
        } else if devicetree.is_none()
            && name.starts_with("devicetree-")
            && let Some((nv, c)) = split_csum(&name, "devicetree-")
        {
            devicetree = Some((path, nv.to_string(), c.to_string()));
        }
        if kernel.is_some() && initramfs.is_some() && devicetree.is_some() {
            break;
        }
    }
    let Some((ksrc, kname, kcsum)) = kernel else {
        return Ok(None);
    };
    if let Some((_, _, c)) = &initramfs
        && *c != kcsum
    {
        return Err(BootFilesError::InitrdMismatch(dir));
    }
    if let Some((_, _, c)) = &devicetree
        && *c != kcsum
    {
        return Err(BootFilesError::DevicetreeMismatch(dir));
    }
    let kver = kname.trim_start_matches("vmlinuz-").to_string();
    Ok(Some(TreeKernel {
        kver,
        kernel: BootFile {
            src: ksrc,
            name: kname,
        },
        initramfs: initramfs.map(|(src, name, _)| BootFile { src, name }),
        devicetree: devicetree.map(|(src, name, _)| Devicetree::File(BootFile { src, name })),
        hmac: None,
        aboot: None,
        bootcsum: kcsum,
    }))
}

/// The kernel of the tree at `root`, `None` when it has none in any layout.
pub fn find_kernel(root: &Path) -> Result<Option<TreeKernel>> {
    let modules = modules_layout(root)?;
    let legacy = legacy_layout(root)?;
    Ok(match (modules, legacy) {
        (None, l) => l,
        (Some(m), Some(l)) if m.initramfs.is_none() && l.initramfs.is_some() => Some(l),
        (Some(m), _) => Some(m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ostree_boot_test_support::write as w;

    #[test]
    fn modules_layout_with_extras() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("usr/lib/modules/6.1");
        w(&m.join("vmlinuz"), "k");
        w(&m.join("initramfs.img"), "i");
        w(&m.join(".vmlinuz.hmac"), "h");
        w(&m.join("aboot.img"), "a");
        w(&m.join("dtb/b/y.dtb"), "y");
        w(&m.join("dtb/a.dtb"), "x");
        let k = find_kernel(t.path()).unwrap().unwrap();
        assert_eq!(k.kernel.name, "vmlinuz-6.1");
        assert_eq!(k.hmac.unwrap().name, ".vmlinuz-6.1.hmac");
        assert_eq!(k.aboot.unwrap().name, "aboot-6.1.img");
        assert_eq!(k.devicetree, Some(Devicetree::Dir(m.join("dtb"))));
        // kernel, initramfs, then dtb files sorted by name, depth first.
        assert_eq!(k.bootcsum, hex::encode(Sha256::digest(b"kixy")));
        // A devicetree file wins over dtb/.
        w(&m.join("devicetree"), "d");
        let k = find_kernel(t.path()).unwrap().unwrap();
        assert!(
            matches!(k.devicetree, Some(Devicetree::File(ref f)) if f.name == "devicetree-6.1")
        );
        assert_eq!(k.bootcsum, hex::encode(Sha256::digest(b"kid")));
    }

    #[test]
    fn legacy_layouts() {
        let t = tempfile::tempdir().unwrap();
        let c = "ab".repeat(32);
        let b = t.path().join("usr/lib/ostree-boot");
        w(&b.join(format!("vmlinuz-6.1-{c}")), "k");
        w(&b.join(format!("initramfs-6.1.img-{c}")), "i");
        w(&b.join("vmlinuz-bad-checksum"), "x");
        let k = find_kernel(t.path()).unwrap().unwrap();
        assert_eq!(k.bootcsum, c);
        assert_eq!(k.kernel.name, "vmlinuz-6.1");
        assert_eq!(k.initramfs.unwrap().name, "initramfs-6.1.img");
        // Modules layout without an initramfs loses to a legacy one with it.
        w(&t.path().join("usr/lib/modules/6.2/vmlinuz"), "m");
        assert_eq!(find_kernel(t.path()).unwrap().unwrap().bootcsum, c);
        w(&t.path().join("usr/lib/modules/6.2/initramfs.img"), "n");
        assert_eq!(find_kernel(t.path()).unwrap().unwrap().kver, "6.2");
        // Mismatched checksums are refused.
        let t = tempfile::tempdir().unwrap();
        let b = t.path().join("boot");
        w(&b.join(format!("vmlinuz-6.1-{c}")), "k");
        w(
            &b.join(format!("initramfs-6.1.img-{}", "cd".repeat(32))),
            "i",
        );
        assert!(matches!(
            find_kernel(t.path()),
            Err(BootFilesError::InitrdMismatch(_))
        ));
    }

    #[test]
    fn bootcsum_vector() {
        // tests/libtest.sh's kernel and initramfs give this bootcsum upstream.
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("usr/lib/modules/5.0");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("vmlinuz"), "a kernel\n").unwrap();
        std::fs::write(m.join("initramfs.img"), "an initramfs\n").unwrap();
        let k = find_kernel(d.path()).unwrap().unwrap();
        assert_eq!(
            k.bootcsum,
            "7bd091ad6955c0e7ef41bab65adb016275664b55efc0d10a0c8cb263da3c1e4e"
        );
        assert_eq!(k.kver, "5.0");
    }

    /// Issue #12: links the commit ships in `usr/lib/modules` were followed, so a host
    /// kernel (or any host file) could be hashed and copied into /boot.
    #[test]
    fn kernel_lookup_follows_no_link() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host/6.1");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("vmlinuz"), "host kernel\n").unwrap();
        let tree = |name: &str| {
            let t = d.path().join(name);
            std::fs::create_dir_all(t.join("usr/lib/modules")).unwrap();
            t
        };
        // The modules directory itself a link: an error naming it.
        let t = tree("modules-link");
        std::fs::remove_dir(t.join("usr/lib/modules")).unwrap();
        std::os::unix::fs::symlink(d.path().join("host"), t.join("usr/lib/modules")).unwrap();
        let e = find_kernel(&t).unwrap_err().to_string();
        assert!(
            e.contains("usr/lib/modules") && e.contains("symbolic link"),
            "{e}"
        );
        // A <kver> link and a vmlinuz link are not kernels.
        let t = tree("kver-link");
        std::os::unix::fs::symlink(&host, t.join("usr/lib/modules/6.1")).unwrap();
        assert!(find_kernel(&t).unwrap().is_none());
        let t = tree("vmlinuz-link");
        std::fs::create_dir(t.join("usr/lib/modules/6.1")).unwrap();
        std::os::unix::fs::symlink(host.join("vmlinuz"), t.join("usr/lib/modules/6.1/vmlinuz"))
            .unwrap();
        assert!(find_kernel(&t).unwrap().is_none());
        // An initramfs link is ignored, the kernel still found.
        std::fs::remove_file(t.join("usr/lib/modules/6.1/vmlinuz")).unwrap();
        std::fs::write(t.join("usr/lib/modules/6.1/vmlinuz"), "k\n").unwrap();
        std::os::unix::fs::symlink("/dev/zero", t.join("usr/lib/modules/6.1/initramfs.img"))
            .unwrap();
        let k = find_kernel(&t).unwrap().unwrap();
        assert!(k.initramfs.is_none());
    }
}
