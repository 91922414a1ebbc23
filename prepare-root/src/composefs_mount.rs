//! Mounting a composefs image the way libcomposefs's `lcfs_mount_image` does for ostree.
//!
//! 1. open the image (ENOENT is reported as [`CfsMountError::ImageMissing`] so that
//!    `composefs=maybe` can fall back);
//! 2. check its kernel fs-verity digest against the expected one (signed mode), or that it
//!    has fs-verity at all when verity is required;
//! 3. read the 32-byte composefs header (magic, `HAS_ACL`);
//! 4. mount the EROFS at a private directory: new mount API straight from the file
//!    (Linux 6.12+), a loop device on `ENOTBLK`, `mount(2)` when there is no new API;
//! 5. mount overlayfs "composefs" on the target with the EROFS as the lower layer and the
//!    ostree object directories as data-only layers: `lowerdir+=`/`datadir+=` with the
//!    new API (6.7+), else the legacy option string with `::` (6.5+) and then `:`;
//! 6. detach the EROFS mount: the overlay keeps it alive.
//!
//! The kernel features found on the way are returned in a [`MountReport`] for the log.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ostree_boot::composefs::reader;
use ostree_boot::fsverity::ioctl::{self as verity, VerityError};
use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount,
};

use crate::loopdev;

/// What to mount and how.
#[derive(Debug, Clone)]
pub struct CfsMountOptions {
    /// Where the EROFS image is mounted while the overlay is built
    /// (`/run/ostree/.private/cfsroot-lower` for ostree).
    pub image_mountdir: PathBuf,
    /// Data-only layers: the ostree object directories.
    pub objdirs: Vec<PathBuf>,
    /// Writable upper and work directories (transient root).
    pub upper_work: Option<(PathBuf, PathBuf)>,
    /// Mount the overlay read-only.
    pub read_only: bool,
    /// `verity=require` on the overlay, and the image itself must have fs-verity.
    pub require_verity: bool,
    /// The fs-verity digest the image must have (signed mode).
    pub expected_digest: Option<[u8; 32]>,
}

/// How the EROFS image got mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErofsBacking {
    /// New mount API straight from the file (kernel 6.12+).
    File,
    /// Through a loop device (the kernel refused a regular file: `ENOTBLK`).
    Loop(PathBuf),
}

/// Which overlayfs option syntax the kernel took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlaySyntax {
    /// New mount API with `lowerdir+=`/`datadir+=` (6.7+).
    LowerdirPlus,
    /// `mount(2)` with `lowerdir=IMG::OBJ` (data-only layers, 6.5+).
    LegacyDataOnly,
    /// `mount(2)` with `lowerdir=IMG:OBJ` (before 6.5).
    LegacyColon,
}

/// The kernel features found while mounting, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountReport {
    pub new_mount_api: bool,
    pub erofs: ErofsBacking,
    pub overlay: OverlaySyntax,
    /// The image's measured fs-verity digest, when it was measured.
    pub image_digest: Option<[u8; 32]>,
}

impl fmt::Display for MountReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "new mount API: {}; EROFS: ",
            if self.new_mount_api { "yes" } else { "no" }
        )?;
        match &self.erofs {
            ErofsBacking::File => write!(f, "file-backed")?,
            ErofsBacking::Loop(p) => write!(f, "loop device {}", p.display())?,
        }
        let ovl = match self.overlay {
            OverlaySyntax::LowerdirPlus => "lowerdir+=/datadir+=",
            OverlaySyntax::LegacyDataOnly => "legacy lowerdir=IMG::OBJ",
            OverlaySyntax::LegacyColon => "legacy lowerdir=IMG:OBJ (no data-only layers)",
        };
        write!(f, "; overlay: {ovl}")
    }
}

/// Why a composefs mount failed. Messages follow ostree's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum CfsMountError {
    #[error("composefs image {0} not found")]
    ImageMissing(PathBuf),
    #[error("opening composefs image {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fsverity not enabled on composefs image {path}: {reason}")]
    NoVerity { path: PathBuf, reason: String },
    #[error("Wrong fsverity digest in composefs image {path}: expected {expected}, found {actual}")]
    WrongDigest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path} is not a composefs image: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("invalid composefs mount options: {0}")]
    InvalidOptions(String),
    #[error("the kernel lacks {feature}: {detail}")]
    KernelLacks {
        feature: &'static str,
        detail: String,
    },
    #[error("{what}: {source}{}", kernel_log(.log))]
    Syscall {
        what: String,
        source: std::io::Error,
        log: Vec<String>,
    },
}

fn kernel_log(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", log.join("; "))
    }
}

fn sys(what: impl Into<String>, e: Errno, fs: Option<&OwnedFd>) -> CfsMountError {
    CfsMountError::Syscall {
        what: what.into(),
        source: e.into(),
        log: fs.map(drain_fs_log).unwrap_or_default(),
    }
}

/// Reads the messages the kernel queued on an fsopen() fd ("e …", "w …", "i …").
fn drain_fs_log(fd: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; ENODATA once the queue is empty. Bounded in case.
    for _ in 0..32 {
        match rustix::io::read(fd, &mut buf) {
            Ok(n) if n > 0 => out.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string()),
            _ => break,
        }
    }
    out
}

/// Reads and checks the composefs header and the EROFS superblock magic (core's
/// reader decides; only the first bytes are read from the file).
pub fn read_header(file: &File, path: &Path) -> Result<reader::Header, CfsMountError> {
    let bad = |reason: String| CfsMountError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    const _: () = assert!(reader::HEADER_BYTES as u64 <= ostree_boot::fsutil::IMAGE_HEADER_MAX);
    let mut buf = vec![0u8; reader::HEADER_BYTES];
    let mut len = 0;
    // A short image is core's to refuse: hand it what there is.
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad(format!("reading the header: {e}"))),
        }
    }
    reader::read_header(&buf[..len]).map_err(|e| bad(e.to_string()))
}

/// Checks the image's fs-verity state: the exact digest when one is expected, or merely
/// that fs-verity is on when it is required. Returns the measured digest, if measured.
pub fn check_image_verity(
    file: &File,
    path: &Path,
    expected: Option<&[u8; 32]>,
    required: bool,
) -> Result<Option<[u8; 32]>, CfsMountError> {
    if expected.is_none() && !required {
        return Ok(None);
    }
    let no_verity = |reason: String| CfsMountError::NoVerity {
        path: path.to_path_buf(),
        reason,
    };
    let actual = match verity::measure(file) {
        Ok(Some(d)) => d,
        Ok(None) => return Err(no_verity("the file has no fs-verity digest".into())),
        Err(VerityError::FilesystemNotSupported) => {
            return Err(no_verity(
                "its filesystem or the kernel does not support fs-verity (FS_IOC_MEASURE_VERITY unsupported)".into(),
            ));
        }
        Err(VerityError::WrongAlgorithm { algorithm, size }) => {
            return Err(CfsMountError::WrongDigest {
                path: path.to_path_buf(),
                expected: expected
                    .map(hex::encode)
                    .unwrap_or_else(|| "a sha256 digest".into()),
                actual: format!("a digest of algorithm {algorithm} with {size} bytes"),
            });
        }
        Err(e) => return Err(no_verity(e.to_string())),
    };
    if let Some(exp) = expected
        && *exp != actual
    {
        return Err(CfsMountError::WrongDigest {
            path: path.to_path_buf(),
            expected: hex::encode(exp),
            actual: hex::encode(actual),
        });
    }
    Ok(Some(actual))
}

/// Mounts the composefs image `image` on `target`.
pub fn mount_image(
    image: &Path,
    target: &Path,
    opts: &CfsMountOptions,
) -> Result<MountReport, CfsMountError> {
    if opts.objdirs.is_empty() {
        // libcomposefs requires n_objdirs > 0; upper and work come as a pair by type.
        return Err(CfsMountError::InvalidOptions(
            "no object directory (data layer) given".into(),
        ));
    }
    let file = match ostree_boot::fsutil::open_regular(image) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CfsMountError::ImageMissing(image.to_path_buf()));
        }
        Err(e) => {
            return Err(CfsMountError::Open {
                path: image.to_path_buf(),
                source: e,
            });
        }
    };
    let image_digest = check_image_verity(
        &file,
        image,
        opts.expected_digest.as_ref(),
        opts.require_verity,
    )?;
    let header = read_header(&file, image)?;

    let (new_api, erofs) = mount_erofs(&file, header.has_acl(), &opts.image_mountdir)?;
    let overlay = mount_overlay(target, opts, new_api);
    // The overlay holds its own reference to the EROFS superblock; the temporary mount
    // goes away whatever happened, leaving an empty directory behind (as ostree's tests
    // expect of cfsroot-lower).
    let detach = unmount(&opts.image_mountdir, UnmountFlags::DETACH);
    let overlay = overlay?;
    detach.map_err(|e| {
        sys(
            format!("detaching {}", opts.image_mountdir.display()),
            e,
            None,
        )
    })?;
    Ok(MountReport {
        new_mount_api: new_api,
        erofs,
        overlay,
        image_digest,
    })
}

/// Mounts the EROFS image read-only at `mountdir`. Returns whether the new mount API was
/// available, and how the image is backed.
fn mount_erofs(
    file: &File,
    has_acl: bool,
    mountdir: &Path,
) -> Result<(bool, ErofsBacking), CfsMountError> {
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    match erofs_new_api(&source, has_acl, mountdir) {
        Ok(()) => Ok((true, ErofsBacking::File)),
        Err(NewApi::Unavailable) => {
            // No fsopen(): an old kernel, which cannot mount from a file either.
            let dev = attach_loop(file)?;
            erofs_legacy(&dev.path, has_acl, mountdir)?;
            Ok((false, ErofsBacking::Loop(dev.path)))
        }
        Err(NewApi::Failed(Errno::NOTBLK, _)) => {
            log::debug!(
                "composefs: EROFS cannot mount a regular file here (ENOTBLK), using a loop device"
            );
            Ok((true, erofs_on_loop(file, has_acl, mountdir)?))
        }
        Err(NewApi::Failed(Errno::NODEV, log)) => Err(CfsMountError::KernelLacks {
            feature: "EROFS",
            detail: format!(
                "fsopen(\"erofs\"): no such filesystem (module erofs not loaded?){}",
                kernel_log(&log)
            ),
        }),
        Err(NewApi::Failed(e, log)) => Err(CfsMountError::Syscall {
            what: format!("mounting EROFS at {}", mountdir.display()),
            source: e.into(),
            log,
        }),
    }
}

/// Mounts the EROFS image at `mountdir` from the file, or through a loop device when
/// `force_loop` is set (the path taken on kernels before 6.12).
pub fn mount_erofs_with(
    file: &File,
    has_acl: bool,
    mountdir: &Path,
    force_loop: bool,
) -> Result<ErofsBacking, CfsMountError> {
    if force_loop {
        erofs_on_loop(file, has_acl, mountdir)
    } else {
        mount_erofs(file, has_acl, mountdir).map(|(_, b)| b)
    }
}

fn attach_loop(file: &File) -> Result<loopdev::LoopDevice, CfsMountError> {
    loopdev::attach_readonly(file).map_err(|e| CfsMountError::Syscall {
        what: "setting up a loop device for the image".into(),
        source: e,
        log: vec![],
    })
}

fn erofs_on_loop(
    file: &File,
    has_acl: bool,
    mountdir: &Path,
) -> Result<ErofsBacking, CfsMountError> {
    let dev = attach_loop(file)?;
    let src = dev.path.to_string_lossy().into_owned();
    let res = match erofs_new_api(&src, has_acl, mountdir) {
        Ok(()) => Ok(()),
        Err(NewApi::Unavailable) => erofs_legacy(&dev.path, has_acl, mountdir),
        Err(NewApi::Failed(e, log)) => Err(CfsMountError::Syscall {
            what: format!(
                "mounting EROFS from {} at {}",
                dev.path.display(),
                mountdir.display()
            ),
            source: e.into(),
            log,
        }),
    };
    // `dev.fd` closes here; AUTOCLEAR detaches the device once the mount is gone too.
    res.map(|()| ErofsBacking::Loop(dev.path))
}

enum NewApi {
    /// fsopen() returned ENOSYS.
    Unavailable,
    Failed(Errno, Vec<String>),
}

fn erofs_new_api(source: &str, has_acl: bool, mountdir: &Path) -> Result<(), NewApi> {
    let fs = match fsopen("erofs", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Err(NewApi::Unavailable),
        Err(e) => return Err(NewApi::Failed(e, vec![])),
    };
    let fail = |e: Errno| NewApi::Failed(e, drain_fs_log(&fs));
    fsconfig_set_string(&fs, "source", source).map_err(fail)?;
    fsconfig_set_flag(&fs, "ro").map_err(fail)?;
    if !has_acl {
        fsconfig_set_flag(&fs, "noacl").map_err(fail)?;
    }
    fsconfig_create(&fs).map_err(fail)?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
    )
    .map_err(fail)?;
    move_mount(
        &mnt,
        "",
        CWD,
        mountdir,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| NewApi::Failed(e, vec![]))
}

fn erofs_legacy(dev: &Path, has_acl: bool, mountdir: &Path) -> Result<(), CfsMountError> {
    let data = CString::new(if has_acl { "" } else { "noacl" }).unwrap_or_default();
    rustix::mount::mount(
        dev,
        mountdir,
        "erofs",
        MountFlags::RDONLY | MountFlags::SILENT,
        data.as_c_str(),
    )
    .map_err(|e| {
        sys(
            format!(
                "mount(2) of EROFS {} at {}",
                dev.display(),
                mountdir.display()
            ),
            e,
            None,
        )
    })
}

/// Escapes a path for overlayfs's comma/colon separated option syntax.
fn escape_opt(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn mount_overlay(
    target: &Path,
    opts: &CfsMountOptions,
    new_api: bool,
) -> Result<OverlaySyntax, CfsMountError> {
    if new_api {
        match overlay_new_api(target, opts)? {
            true => return Ok(OverlaySyntax::LowerdirPlus),
            false => log::debug!(
                "composefs: overlayfs has no lowerdir+=, using the legacy option string"
            ),
        }
    }
    overlay_legacy(target, opts)
}

/// Returns Ok(false) when this kernel's overlayfs only has the legacy option parser or
/// rejects `lowerdir+=` (libcomposefs's ENOSYS fallback).
fn overlay_new_api(target: &Path, opts: &CfsMountOptions) -> Result<bool, CfsMountError> {
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Ok(false),
        Err(Errno::NODEV) => {
            return Err(CfsMountError::KernelLacks {
                feature: "overlayfs",
                detail: "fsopen(\"overlay\"): no such filesystem (module overlay not loaded?)"
                    .into(),
            });
        }
        Err(e) => return Err(sys("fsopen(\"overlay\")", e, None)),
    };
    // A kernel whose overlayfs still uses the legacy monolithic parser accepts any key.
    if fsconfig_set_string(&fs, "unsupported", "unsupported").is_ok() {
        return Ok(false);
    }
    let _ = drain_fs_log(&fs);
    let set = |k: &str, v: &str| {
        fsconfig_set_string(&fs, k, v)
            .map_err(|e| sys(format!("overlayfs option {k}={v}"), e, Some(&fs)))
    };
    set("source", "composefs")?;
    set("metacopy", "on")?;
    set("redirect_dir", "on")?;
    if opts.require_verity {
        fsconfig_set_string(&fs, "verity", "require").map_err(|e| CfsMountError::KernelLacks {
            feature: "overlayfs verity=require (Linux 6.6)",
            detail: format!(
                "{}{}",
                std::io::Error::from(e),
                kernel_log(&drain_fs_log(&fs))
            ),
        })?;
    }
    let lower = opts.image_mountdir.to_string_lossy();
    match fsconfig_set_string(&fs, "lowerdir+", &*lower) {
        Ok(()) => {}
        Err(Errno::INVAL) => return Ok(false),
        Err(e) => return Err(sys(format!("overlayfs lowerdir+={lower}"), e, Some(&fs))),
    }
    for obj in &opts.objdirs {
        let o = obj.to_string_lossy();
        match fsconfig_set_string(&fs, "datadir+", &*o) {
            Ok(()) => {}
            Err(Errno::INVAL) => return Ok(false),
            Err(e) => return Err(sys(format!("overlayfs datadir+={o}"), e, Some(&fs))),
        }
    }
    if let Some((upper, work)) = &opts.upper_work {
        set("upperdir", &upper.to_string_lossy())?;
        set("workdir", &work.to_string_lossy())?;
    }
    match fsconfig_create(&fs) {
        Ok(()) => {}
        Err(Errno::INVAL) => {
            log::debug!(
                "composefs: overlayfs create: {}",
                kernel_log(&drain_fs_log(&fs))
            );
            return Ok(false);
        }
        Err(e) => {
            return Err(sys(
                format!("creating the overlay for {}", target.display()),
                e,
                Some(&fs),
            ));
        }
    }
    let attrs = if opts.read_only {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| sys("fsmount(overlay)", e, Some(&fs)))?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| {
        sys(
            format!("move_mount of the overlay to {}", target.display()),
            e,
            None,
        )
    })?;
    Ok(true)
}

/// The overlay with `mount(2)` and the legacy option string, as on kernels without
/// `lowerdir+=` (before 6.7): `lowerdir=IMG::OBJ`, then `IMG:OBJ` on `EINVAL`. The EROFS
/// image must be mounted at `opts.image_mountdir` already.
pub fn overlay_legacy(
    target: &Path,
    opts: &CfsMountOptions,
) -> Result<OverlaySyntax, CfsMountError> {
    let flags = MountFlags::SILENT
        | if opts.read_only {
            MountFlags::RDONLY
        } else {
            MountFlags::empty()
        };
    let mut last = None;
    for (sep, syntax) in [
        ("::", OverlaySyntax::LegacyDataOnly),
        (":", OverlaySyntax::LegacyColon),
    ] {
        let mut lower = escape_opt(&opts.image_mountdir);
        for o in &opts.objdirs {
            lower.push_str(sep);
            lower.push_str(&escape_opt(o));
        }
        let mut data = format!("metacopy=on,redirect_dir=on,lowerdir={lower}");
        if let Some((u, w)) = &opts.upper_work {
            data.push_str(&format!(
                ",upperdir={},workdir={}",
                escape_opt(u),
                escape_opt(w)
            ));
        }
        if opts.require_verity {
            data.push_str(",verity=require");
        }
        let cdata = CString::new(data.clone()).map_err(|_| {
            CfsMountError::InvalidOptions(format!("a path in {data:?} contains a NUL byte"))
        })?;
        match rustix::mount::mount("composefs", target, "overlay", flags, cdata.as_c_str()) {
            Ok(()) => return Ok(syntax),
            Err(Errno::INVAL) => last = Some(data),
            Err(Errno::NODEV) => {
                return Err(CfsMountError::KernelLacks {
                    feature: "overlayfs",
                    detail: "mount(2): no such filesystem".into(),
                });
            }
            Err(e) => {
                return Err(sys(
                    format!("mount(2) overlay {data} on {}", target.display()),
                    e,
                    None,
                ));
            }
        }
    }
    Err(CfsMountError::KernelLacks {
        feature: "an overlayfs that accepts composefs options (metacopy, redirect_dir, data-only lower layers, verity)",
        detail: format!(
            "mount(2) overlay with \"{}\" on {}: EINVAL",
            last.unwrap_or_default(),
            target.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_overlay_separators() {
        assert_eq!(escape_opt(Path::new("/a,b:c\\d")), "/a\\,b\\:c\\\\d");
        assert_eq!(
            escape_opt(Path::new("/run/ostree/.private/cfsroot-lower")),
            "/run/ostree/.private/cfsroot-lower"
        );
    }

    #[test]
    fn header_is_checked() {
        use ostree_boot::composefs::format::{COMPOSEFS_MAGIC, EROFS_MAGIC};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let mut bytes = vec![0u8; 2048];
        std::fs::write(&p, &bytes).unwrap();
        let err = read_header(&File::open(&p).unwrap(), &p).unwrap_err();
        assert!(
            err.to_string()
                .contains("magic 0x00000000, expected 0xd078629a"),
            "{err}"
        );
        bytes[0..4].copy_from_slice(&COMPOSEFS_MAGIC.to_le_bytes());
        bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&2u32.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let err = read_header(&File::open(&p).unwrap(), &p).unwrap_err();
        assert!(err.to_string().contains("EROFS superblock magic"), "{err}");
        bytes[1024..1028].copy_from_slice(&EROFS_MAGIC.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let h = read_header(&File::open(&p).unwrap(), &p).unwrap();
        assert_eq!(
            h,
            reader::Header {
                flags: 1,
                composefs_version: 2
            }
        );
        assert!(h.has_acl());
        // Another header version is refused, as libcomposefs does.
        bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let err = read_header(&File::open(&p).unwrap(), &p).unwrap_err();
        assert!(err.to_string().contains("header version 2"), "{err}");
        std::fs::write(&p, &bytes[..10]).unwrap();
        assert!(read_header(&File::open(&p).unwrap(), &p).is_err());
    }

    #[test]
    fn verity_check_reports_missing_verity_and_skips_when_not_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        std::fs::write(&p, b"x").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(check_image_verity(&f, &p, None, false).unwrap(), None);
        let err = check_image_verity(&f, &p, None, true).unwrap_err();
        assert!(matches!(err, CfsMountError::NoVerity { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("fsverity not enabled on composefs image"),
            "{err}"
        );
        let err = check_image_verity(&f, &p, Some(&[7; 32]), false).unwrap_err();
        assert!(matches!(err, CfsMountError::NoVerity { .. }), "{err:?}");
    }
}
