//! Models of an ostree system booting from a verified composefs root.
//!
//! Everything here is data and pure functions over data, plus the few filesystem
//! readers the models need. The binaries (`ostree-prepare-root`,
//! `ostree-system-generator`, `ostree-composefs`) are thin executors over this crate:
//! prepare-root executes the [`plan`] with syscalls, the generator renders it as units.

pub mod beneath;
pub mod bls;
pub mod bootfiles;
pub mod btrfs;
pub mod cmdline;
pub mod composefs;
pub mod config;
pub mod cpio;
pub mod deployment;
pub mod fsutil;
pub mod fsverity;
pub mod glib_hash;
pub mod grubenv;
pub mod keyfile;
pub mod layout;
pub mod logger;
pub mod mode;
pub mod ostree;
pub mod plan;
pub mod sdboot;
pub mod sign;
