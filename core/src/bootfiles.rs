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

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum BootFilesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
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

fn exists_nofollow(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

fn is_regular(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
}

/// `openat` that follows symlinks and treats only ENOENT as absent, as
/// `ot_openat_ignore_enoent`.
fn open_optional(p: &Path) -> Result<Option<std::fs::File>> {
    match std::fs::File::open(p) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(p)(e)),
    }
}

fn hash_reader(h: &mut Sha256, mut f: impl Read, p: &Path) -> Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io(p))?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// `checksum_dir_recurse`: entries sorted by name (byte order, as strcmp), directories
/// recursed into, anything else opened and hashed.
fn hash_dir(h: &mut Sha256, dir: &Path) -> Result<()> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io(dir))?;
    names.sort_by(|a, b| {
        use std::os::unix::ffi::OsStrExt;
        a.as_bytes().cmp(b.as_bytes())
    });
    for n in names {
        let p = dir.join(&n);
        let md = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        if md.is_dir() {
            hash_dir(h, &p)?;
        } else if let Some(f) = open_optional(&p)? {
            hash_reader(h, f, &p)?;
        }
    }
    Ok(())
}

fn modules_layout(root: &Path) -> Result<Option<TreeKernel>> {
    let modules = root.join("usr/lib/modules");
    let rd = match std::fs::read_dir(&modules) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&modules)(e)),
    };
    let mut found = None;
    for e in rd {
        let e = e.map_err(io(&modules))?;
        if is_regular(&e.path().join("vmlinuz")) {
            found = Some((e.file_name().to_string_lossy().into_owned(), e.path()));
            break;
        }
    }
    let Some((kver, dir)) = found else {
        return Ok(None);
    };
    let mut h = Sha256::new();
    let vmlinuz = dir.join("vmlinuz");
    let f = std::fs::File::open(&vmlinuz).map_err(io(&vmlinuz))?;
    hash_reader(&mut h, f, &vmlinuz)?;
    let mut initramfs = None;
    for n in ["initramfs.img", "initramfs"] {
        let p = dir.join(n);
        if let Some(f) = open_optional(&p)? {
            hash_reader(&mut h, f, &p)?;
            initramfs = Some(BootFile {
                src: p,
                name: format!("initramfs-{kver}.img"),
            });
            break;
        }
    }
    let aboot = exists_nofollow(&dir.join("aboot.img")).then(|| BootFile {
        src: dir.join("aboot.img"),
        name: format!("aboot-{kver}.img"),
    });
    let dt = dir.join("devicetree");
    let devicetree = if let Some(f) = open_optional(&dt)? {
        hash_reader(&mut h, f, &dt)?;
        Some(Devicetree::File(BootFile {
            src: dt,
            name: format!("devicetree-{kver}"),
        }))
    } else if std::fs::metadata(dir.join("dtb")).is_ok_and(|m| m.is_dir()) {
        hash_dir(&mut h, &dir.join("dtb"))?;
        Some(Devicetree::Dir(dir.join("dtb")))
    } else {
        None
    };
    let hmac = exists_nofollow(&dir.join(".vmlinuz.hmac")).then(|| BootFile {
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
    let mut dir = None;
    for p in ["usr/lib/ostree-boot", "boot"] {
        let d = root.join(p);
        match std::fs::read_dir(&d) {
            Ok(rd) => {
                dir = Some((d, rd));
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&d)(e)),
        }
    }
    let Some((dir, rd)) = dir else {
        return Ok(None);
    };
    let (mut kernel, mut initramfs, mut devicetree) = (None, None, None);
    for e in rd {
        let e = e.map_err(io(&dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        // As upstream, the first of each kind in readdir order; a name with a
        // malformed checksum is skipped, and nothing else is looked at.
        if kernel.is_none() && name.starts_with("vmlinuz-") {
            if let Some((nv, c)) = split_csum(&name, "vmlinuz-") {
                kernel = Some((e.path(), nv.to_string(), c.to_string()));
            }
        } else if initramfs.is_none() && name.starts_with("initramfs-") {
            if let Some((nv, c)) = split_csum(&name, "initramfs-") {
                initramfs = Some((e.path(), nv.to_string(), c.to_string()));
            }
        } else if devicetree.is_none()
            && name.starts_with("devicetree-")
            && let Some((nv, c)) = split_csum(&name, "devicetree-")
        {
            devicetree = Some((e.path(), nv.to_string(), c.to_string()));
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
    use std::fs;

    fn w(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

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
}
