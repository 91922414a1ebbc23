//! Models of an ostree system booting from a verified composefs root.
//!
//! Everything here is data and pure functions over data, plus the few filesystem
//! readers the models need. The binaries (`ostree-prepare-root`,
//! `ostree-system-generator`, `ostree-composefs`) are thin executors over this crate:
//! prepare-root executes the [`plan`] with syscalls, the generator renders it as units.
//!
//! The crate has two halves. Without features it is what the initrd binaries
//! (`ostree-prepare-root`, `ostree-system-generator`, `ostree-remount`) link: the
//! configuration and command line, deployments, the mount plan, reading a repository's
//! commits and verifying their signatures, reading a composefs image's header and tree,
//! and the fs-verity ioctls. The `writer` feature adds what only writers of a sysroot need
//! (`ostree-composefs`, the tests, fuzzing, benchmarks): composefs image writing and the
//! dump format, the userspace fs-verity digest, checkout and repository writes, the boot
//! directory layout, BLS entries, boot files, cpio, grubenv, staged deployments, signing
//! and key generation. `make lint` checks that the initrd binaries build without it
//! (`scripts/check-initrd-features.sh`); `make release` builds them apart for that.

pub mod beneath;
#[cfg(feature = "writer")]
pub mod bls;
#[cfg(feature = "writer")]
pub mod bootfiles;
pub mod btrfs;
pub mod cmdline;
pub mod composefs;
pub mod config;
#[cfg(feature = "writer")]
pub mod cpio;
pub mod deployment;
pub mod fsutil;
pub mod fsverity;
#[cfg(feature = "writer")]
pub mod glib_hash;
#[cfg(feature = "writer")]
pub mod grubenv;
pub mod keyfile;
#[cfg(feature = "writer")]
pub mod layout;
pub mod logger;
pub mod mode;
pub mod ostree;
pub mod plan;
#[cfg(feature = "writer")]
pub mod sdboot;
pub mod sign;
