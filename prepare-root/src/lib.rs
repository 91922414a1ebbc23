//! ostree-prepare-root: turns the physical root at SYSROOT into the deployment's root, in
//! the initrd. The decisions live in `ostree_boot::plan`; this crate executes them.

pub mod composefs_mount;
pub mod exec;
pub mod loopdev;
