//! The kernel's fs-verity ioctls: `FS_IOC_ENABLE_VERITY` and `FS_IOC_MEASURE_VERITY`.
//!
//! Parameters are the ones ostree and composefs use everywhere: SHA-256, 4096-byte
//! Merkle tree blocks, no salt, no builtin signature. Errors are mapped like
//! composefs-ioctls and libcomposefs do, so callers can tell "this filesystem cannot do
//! fs-verity" from "this file has none" from "this file has the wrong kind".
//!
//! The only `unsafe` in this module is the two `rustix::ioctl::ioctl` calls: each passes a
//! `#[repr(C)]` struct whose layout is pinned against `<linux/fsverity.h>` by size
//! assertions below, with opcodes computed from that same header.

// rustix has no typed wrapper for the fs-verity ioctls.
#![allow(unsafe_code)]

use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::ioctl::{Direction, Opcode, Updater, ioctl, opcode};

/// `FS_VERITY_HASH_ALG_SHA256` in `<linux/fsverity.h>`.
pub const HASH_ALG_SHA256: u32 = 1;
/// `FS_VERITY_HASH_ALG_SHA512`.
pub const HASH_ALG_SHA512: u32 = 2;
/// The Merkle tree block size ostree and composefs use.
pub const BLOCK_SIZE: u32 = 4096;
/// The largest digest the kernel can return (SHA-512).
const MAX_DIGEST_SIZE: usize = 64;

/// Why an fs-verity ioctl failed.
#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    /// `ENOTTY`/`EOPNOTSUPP`: the kernel or this filesystem has no fs-verity support (for
    /// ext4 also: the filesystem was made without `-O verity`).
    #[error(
        "the filesystem does not support fs-verity (kernel without CONFIG_FS_VERITY, or a filesystem without the verity feature)"
    )]
    FilesystemNotSupported,
    /// `ETXTBSY` on enable: some process still has the file open for writing.
    #[error("cannot enable fs-verity: the file is still open for writing somewhere")]
    FileOpenForWrite,
    /// `EKEYREJECTED`/`EBADMSG`: a builtin-signature policy refused the file.
    #[error("cannot enable fs-verity: the kernel's builtin signature policy rejected the file")]
    SignatureRejected,
    /// `EFBIG`: the file is too large for a Merkle tree with this block size.
    #[error("cannot enable fs-verity: the file is too large")]
    FileTooLarge,
    /// `EINVAL` on enable: the block size or algorithm is not supported here (for
    /// example a 4096-byte Merkle block on a filesystem with a smaller page size).
    #[error(
        "cannot enable fs-verity: sha256 with {BLOCK_SIZE}-byte blocks is not supported on this filesystem"
    )]
    ParametersNotSupported,
    /// The file's verity uses a different hash than SHA-256 (or a digest size that does
    /// not belong to SHA-256).
    #[error(
        "the file's fs-verity digest uses algorithm {algorithm} with {size} bytes, expected sha256 (algorithm 1, 32 bytes)"
    )]
    WrongAlgorithm { algorithm: u16, size: u16 },
    /// Any other errno, kept as is.
    #[error("{op}: {errno}")]
    Other {
        op: &'static str,
        errno: std::io::Error,
    },
}

/// `struct fsverity_enable_arg` from `<linux/fsverity.h>` (128 bytes).
#[repr(C)]
struct EnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

/// `struct fsverity_digest` (a 4-byte header) followed by room for the largest digest.
#[repr(C)]
struct DigestArg {
    digest_algorithm: u16,
    digest_size: u16,
    digest: [u8; MAX_DIGEST_SIZE],
}

const _: () = assert!(std::mem::size_of::<EnableArg>() == 128);
const _: () = assert!(std::mem::size_of::<DigestArg>() == 4 + MAX_DIGEST_SIZE);

/// `FS_IOC_ENABLE_VERITY = _IOW('f', 133, struct fsverity_enable_arg)`.
const FS_IOC_ENABLE_VERITY: Opcode = opcode::write::<EnableArg>(b'f', 133);
/// `FS_IOC_MEASURE_VERITY = _IOWR('f', 134, struct fsverity_digest)`: the size in the
/// opcode is the 4-byte header only; the kernel writes `digest_size` bytes after it.
const FS_IOC_MEASURE_VERITY: Opcode = opcode::from_components(Direction::ReadWrite, b'f', 134, 4);

const _: () = assert!(FS_IOC_ENABLE_VERITY == 0x4080_6685);
const _: () = assert!(FS_IOC_MEASURE_VERITY == 0xc004_6686);

/// Enables fs-verity on `fd` (SHA-256, 4096-byte blocks, no salt, no signature).
///
/// The fd must be open read-only and no writable fd to the file may exist anywhere.
/// A file that already has fs-verity (`EEXIST`) counts as success: callers that need a
/// particular digest check it with [`measure`].
pub fn enable(fd: impl AsFd) -> Result<(), VerityError> {
    let mut arg = EnableArg {
        version: 1,
        hash_algorithm: HASH_ALG_SHA256,
        block_size: BLOCK_SIZE,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: the opcode is FS_IOC_ENABLE_VERITY, whose argument is exactly
    // `struct fsverity_enable_arg` (layout asserted above); salt and signature pointers
    // are null with zero sizes, so the kernel reads nothing else from our memory.
    let res = unsafe {
        ioctl(
            fd.as_fd(),
            Updater::<FS_IOC_ENABLE_VERITY, EnableArg>::new(&mut arg),
        )
    };
    match res {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Ok(()),
        Err(Errno::NOTTY | Errno::OPNOTSUPP) => Err(VerityError::FilesystemNotSupported),
        Err(Errno::TXTBSY) => Err(VerityError::FileOpenForWrite),
        Err(Errno::KEYREJECTED | Errno::BADMSG) => Err(VerityError::SignatureRejected),
        Err(Errno::FBIG) => Err(VerityError::FileTooLarge),
        Err(Errno::INVAL) => Err(VerityError::ParametersNotSupported),
        Err(e) => Err(VerityError::Other {
            op: "FS_IOC_ENABLE_VERITY",
            errno: e.into(),
        }),
    }
}

/// Reads the kernel's fs-verity digest of `fd`.
///
/// `Ok(None)` means the filesystem supports fs-verity but this file does not have it
/// (`ENODATA`). A filesystem or kernel without fs-verity is
/// [`VerityError::FilesystemNotSupported`]; a file measured with another algorithm than
/// SHA-256 is [`VerityError::WrongAlgorithm`].
pub fn measure(fd: impl AsFd) -> Result<Option<[u8; 32]>, VerityError> {
    let mut arg = DigestArg {
        digest_algorithm: 0,
        digest_size: MAX_DIGEST_SIZE as u16,
        digest: [0; MAX_DIGEST_SIZE],
    };
    // SAFETY: the opcode is FS_IOC_MEASURE_VERITY; the kernel reads the 4-byte header,
    // and writes at most `digest_size` (= 64, the size of our trailing array) digest
    // bytes after it, failing with EOVERFLOW if the digest would not fit.
    let res = unsafe {
        ioctl(
            fd.as_fd(),
            Updater::<FS_IOC_MEASURE_VERITY, DigestArg>::new(&mut arg),
        )
    };
    match res {
        Ok(()) => {}
        Err(Errno::NODATA) => return Ok(None),
        Err(Errno::NOTTY | Errno::OPNOTSUPP) => return Err(VerityError::FilesystemNotSupported),
        Err(Errno::OVERFLOW) => {
            return Err(VerityError::WrongAlgorithm {
                algorithm: 0,
                size: u16::MAX,
            });
        }
        Err(e) => {
            return Err(VerityError::Other {
                op: "FS_IOC_MEASURE_VERITY",
                errno: e.into(),
            });
        }
    }
    if u32::from(arg.digest_algorithm) != HASH_ALG_SHA256 || arg.digest_size != 32 {
        return Err(VerityError::WrongAlgorithm {
            algorithm: arg.digest_algorithm,
            size: arg.digest_size,
        });
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&arg.digest[..32]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Whether the filesystem holding `dir` can do fs-verity, probed with a scratch file.
    fn fs_supports_verity(dir: &std::path::Path) -> bool {
        let path = dir.join("probe");
        std::fs::write(&path, b"probe").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        !matches!(enable(&f), Err(VerityError::FilesystemNotSupported))
    }

    #[test]
    fn opcodes_match_the_uapi_header() {
        // Values from <linux/fsverity.h> as compiled on x86_64/aarch64.
        assert_eq!(FS_IOC_ENABLE_VERITY, 0x4080_6685);
        assert_eq!(FS_IOC_MEASURE_VERITY, 0xc004_6686);
    }

    #[test]
    fn measure_reports_unsupported_or_missing_on_a_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"moo\n")
            .unwrap();
        let f = std::fs::File::open(&path).unwrap();
        match measure(&f) {
            // Kernel or filesystem without fs-verity (this project's build host).
            Err(VerityError::FilesystemNotSupported) => {}
            // Filesystem with fs-verity, file without.
            Ok(None) => {}
            other => panic!("unexpected result for a file without verity: {other:?}"),
        }
    }

    #[test]
    fn measure_on_tmpfs_or_proc_is_a_clear_error() {
        // /proc files never support fs-verity: the ioctl is ENOTTY there.
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let err = measure(&f).unwrap_err();
        assert!(
            matches!(err, VerityError::FilesystemNotSupported),
            "{err:?}"
        );
        assert!(err.to_string().contains("does not support fs-verity"));
        let err = enable(&f).unwrap_err();
        assert!(
            matches!(
                err,
                VerityError::FilesystemNotSupported | VerityError::Other { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn enable_then_measure_matches_the_known_digest_where_supported() {
        let dir = tempfile::tempdir().unwrap();
        if !fs_supports_verity(dir.path()) {
            // No fs-verity here: enable must say so rather than claim success.
            let path = dir.path().join("f");
            std::fs::write(&path, b"moo\n").unwrap();
            let f = std::fs::File::open(&path).unwrap();
            assert!(matches!(
                enable(&f),
                Err(VerityError::FilesystemNotSupported)
            ));
            return;
        }
        let path = dir.path().join("f");
        std::fs::write(&path, b"moo\n").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        assert_eq!(measure(&f).unwrap(), None);
        enable(&f).unwrap();
        // Enabling twice is not an error.
        enable(&f).unwrap();
        let d = measure(&f).unwrap().unwrap();
        // fs-verity sha256 of "moo\n" (ostree's tests/test-composefs.sh).
        assert_eq!(
            hex::encode(d),
            "ebaa23af194a798df610e5fe2bd10725c9c4a3a56a6b62d4d0ee551d4fc4be27"
        );
    }

    #[test]
    fn enable_on_a_writable_fd_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        if !fs_supports_verity(dir.path()) {
            return;
        }
        let path = dir.path().join("w");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(matches!(enable(&f), Err(VerityError::FileOpenForWrite)));
    }
}
