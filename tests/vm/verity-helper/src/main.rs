//! `vm-verity-enable PATH...`: enables fs-verity (SHA-256, 4 KiB blocks) on every regular
//! file under each PATH, skipping files that already have it, and prints a summary line.
//! Runs inside the test VM (the host kernel cannot do it), so it only uses std and the two
//! fs-verity ioctls, and is linked statically for a busybox initramfs.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

// struct fsverity_enable_arg from <linux/fsverity.h>; 128 bytes.
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

// _IOW('f', 133, struct fsverity_enable_arg)
const FS_IOC_ENABLE_VERITY: u64 = 0x4080_6685;
const FS_VERITY_HASH_ALG_SHA256: u32 = 1;
const EEXIST: i32 = 17;

unsafe extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
}

#[derive(Default)]
struct Counts {
    enabled: u64,
    already: u64,
    bytes: u64,
}

fn enable(path: &Path, counts: &mut Counts) -> io::Result<()> {
    // Verity can only be enabled on a file that nobody has open for writing: open read-only.
    let file = File::open(path)?;
    let arg = EnableArg {
        version: 1,
        hash_algorithm: FS_VERITY_HASH_ALG_SHA256,
        block_size: 4096,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: the fd is open for the duration of the call and `arg` is a properly laid out
    // struct fsverity_enable_arg that outlives it.
    let rc = unsafe {
        ioctl(
            file.as_raw_fd(),
            FS_IOC_ENABLE_VERITY,
            &arg as *const EnableArg,
        )
    };
    if rc == 0 {
        counts.enabled += 1;
        counts.bytes += file.metadata()?.len();
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(EEXIST) {
        counts.already += 1;
        return Ok(());
    }
    Err(err)
}

fn walk(path: &Path, counts: &mut Counts) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            walk(&entry?.path(), counts)?;
        }
    } else if meta.is_file() {
        enable(path, counts)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: vm-verity-enable PATH...");
        return ExitCode::from(2);
    }
    let start = Instant::now();
    let mut counts = Counts::default();
    for p in &paths {
        if let Err(e) = walk(Path::new(p), &mut counts) {
            eprintln!("vm-verity-enable: {p}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "vm-verity-enable: enabled {} files ({} MiB), {} already had verity, {:.1} s",
        counts.enabled,
        counts.bytes >> 20,
        counts.already,
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
