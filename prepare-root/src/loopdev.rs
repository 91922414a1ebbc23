//! Read-only loop devices for EROFS images on kernels without file-backed EROFS (< 6.12).
//!
//! Configured like libcomposefs: `LOOP_CTL_GET_FREE` then one `LOOP_CONFIGURE` (Linux
//! 5.8+) with 4096-byte logical blocks and `LO_FLAGS_READ_ONLY | LO_FLAGS_DIRECT_IO |
//! LO_FLAGS_AUTOCLEAR`, so the device goes away by itself once the mount that uses it is
//! gone and our fd is closed.
//!
//! The `unsafe` here is limited to the two `ioctl` calls, each with a `#[repr(C)]`
//! struct whose size is pinned to `<linux/loop.h>` below.

// rustix has no typed wrapper for the loop-control ioctls.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode, Updater, ioctl, opcode};

const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

/// `struct loop_info64` (232 bytes).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` (304 bytes).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

/// `LOOP_CONFIGURE = 0x4C0A` (an old-style ioctl number without size/direction bits).
const LOOP_CONFIGURE: Opcode = 0x4C0A;
/// `LOOP_CTL_GET_FREE = 0x4C82`.
const LOOP_CTL_GET_FREE: Opcode = 0x4C82;
const _: () = assert!(opcode::none(0x4C, 0x82) == LOOP_CTL_GET_FREE);

/// `LOOP_CTL_GET_FREE`: no argument, the free device number is the return value.
struct GetFree;

// SAFETY: LOOP_CTL_GET_FREE takes no argument and touches no user memory; its result is
// the ioctl's return value.
unsafe impl Ioctl for GetFree {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = false;
    fn opcode(&self) -> Opcode {
        LOOP_CTL_GET_FREE
    }
    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        core::ptr::null_mut()
    }
    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut core::ffi::c_void,
    ) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// An attached loop device; the device node fd is kept until the mount is done.
pub struct LoopDevice {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// Attaches `backing` read-only to a free loop device.
pub fn attach_readonly(backing: &File) -> std::io::Result<LoopDevice> {
    let ctl = rustix::fs::open(
        "/dev/loop-control",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ctx(e, "opening /dev/loop-control"))?;
    // Another process can grab the device between GET_FREE and CONFIGURE (EBUSY): retry.
    for _ in 0..16 {
        // SAFETY: see `GetFree`.
        let n = unsafe { ioctl(&ctl, GetFree) }.map_err(|e| ctx(e, "LOOP_CTL_GET_FREE"))?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| ctx(e, &format!("opening {}", path.display())))?;
        let mut cfg = LoopConfig {
            fd: backing.as_fd().as_raw_fd() as u32,
            block_size: 4096,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO,
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads exactly one `struct loop_config` (layout asserted
        // above) and writes nothing back.
        match unsafe { ioctl(&dev, Updater::<LOOP_CONFIGURE, LoopConfig>::new(&mut cfg)) } {
            Ok(()) => return Ok(LoopDevice { path, fd: dev }),
            Err(Errno::BUSY) => continue,
            Err(e) => return Err(ctx(e, &format!("LOOP_CONFIGURE on {}", path.display()))),
        }
    }
    Err(std::io::Error::other(
        "no free loop device after 16 attempts (all taken concurrently)",
    ))
}

fn ctx(e: Errno, what: &str) -> std::io::Error {
    let inner = std::io::Error::from(e);
    std::io::Error::new(inner.kind(), format!("{what}: {inner}"))
}
