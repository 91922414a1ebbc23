//! The block device behind a btrfs filesystem, which `stat` cannot give: btrfs reports an
//! anonymous `st_dev` (major 0). Asked as systemd's `btrfs_get_block_device_fd()` and
//! ostree-prepare-root (2025+) ask it, through `BTRFS_IOC_FS_INFO` and
//! `BTRFS_IOC_DEV_INFO`; a filesystem over several devices has no single answer.
//!
//! The only `unsafe` here is the two `rustix::ioctl::ioctl` calls: each passes a
//! `#[repr(C)]` struct whose size is pinned against `<linux/btrfs.h>` below, with the
//! opcodes asserted against the header's values.

#![allow(unsafe_code)]

use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use rustix::io::Errno;
use rustix::ioctl::{Opcode, Updater, ioctl, opcode};

/// `BTRFS_SUPER_MAGIC` from `<linux/magic.h>`.
const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;
/// `BTRFS_IOCTL_MAGIC`.
const BTRFS_IOCTL_MAGIC: u8 = 0x94;

/// `struct btrfs_ioctl_fs_info_args` (1024 bytes): only the first two fields are read;
/// `flags` (inside `rest`) stays 0, asking for nothing optional.
#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    rest: [u8; 1008],
}

/// `struct btrfs_ioctl_dev_info_args` (4096 bytes): `devid` in, `path` out.
#[repr(C)]
struct DevInfoArgs {
    devid: u64,
    uuid: [u8; 16],
    bytes_used: u64,
    total_bytes: u64,
    unused: [u64; 379],
    path: [u8; 1024],
}

const _: () = assert!(std::mem::size_of::<FsInfoArgs>() == 1024);
const _: () = assert!(std::mem::size_of::<DevInfoArgs>() == 4096);

/// `BTRFS_IOC_FS_INFO = _IOR(BTRFS_IOCTL_MAGIC, 31, struct btrfs_ioctl_fs_info_args)`.
const BTRFS_IOC_FS_INFO: Opcode = opcode::read::<FsInfoArgs>(BTRFS_IOCTL_MAGIC, 31);
/// `BTRFS_IOC_DEV_INFO = _IOWR(BTRFS_IOCTL_MAGIC, 30, struct btrfs_ioctl_dev_info_args)`.
const BTRFS_IOC_DEV_INFO: Opcode = opcode::read_write::<DevInfoArgs>(BTRFS_IOCTL_MAGIC, 30);

const _: () = assert!(BTRFS_IOC_FS_INFO == 0x8400_941f);
const _: () = assert!(BTRFS_IOC_DEV_INFO == 0xd000_941e);

/// `(major, minor)` of the one block device of the btrfs filesystem holding `path`, or
/// None: not btrfs, several devices, an ioctl refused, or the device node is not a block
/// device with a real major.
pub fn single_device(path: &Path) -> Option<(u32, u32)> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .ok()?;
    let sfs = rustix::fs::fstatfs(&fd).ok()?;
    #[allow(clippy::unnecessary_cast)]
    if sfs.f_type as u64 != BTRFS_SUPER_MAGIC {
        return None;
    }
    let mut fsi = FsInfoArgs {
        max_id: 0,
        num_devices: 0,
        rest: [0; 1008],
    };
    // SAFETY: BTRFS_IOC_FS_INFO takes exactly `struct btrfs_ioctl_fs_info_args` (size
    // asserted above); the kernel reads `flags` (zero) and writes within the struct.
    unsafe {
        ioctl(
            fd.as_fd(),
            Updater::<BTRFS_IOC_FS_INFO, FsInfoArgs>::new(&mut fsi),
        )
    }
    .ok()?;
    if fsi.num_devices != 1 {
        return None;
    }
    for id in 1..=fsi.max_id {
        let mut di = DevInfoArgs {
            devid: id,
            uuid: [0; 16],
            bytes_used: 0,
            total_bytes: 0,
            unused: [0; 379],
            path: [0; 1024],
        };
        // SAFETY: BTRFS_IOC_DEV_INFO takes exactly `struct btrfs_ioctl_dev_info_args`
        // (size asserted above); the kernel reads `devid` and `uuid` and writes within it.
        match unsafe {
            ioctl(
                fd.as_fd(),
                Updater::<BTRFS_IOC_DEV_INFO, DevInfoArgs>::new(&mut di),
            )
        } {
            Ok(()) => {}
            Err(Errno::NODEV) => continue,
            Err(_) => return None,
        }
        let len = di
            .path
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(di.path.len());
        let dev = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&di.path[..len]);
        let md = std::fs::metadata(dev).ok()?;
        if !md.file_type().is_block_device() {
            return None;
        }
        use std::os::unix::fs::MetadataExt;
        let (maj, min) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
        return (maj != 0).then_some((maj, min));
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn not_btrfs_is_none() {
        assert_eq!(super::single_device(std::path::Path::new("/proc")), None);
        assert_eq!(
            super::single_device(std::path::Path::new("/nonexistent")),
            None
        );
    }
}
