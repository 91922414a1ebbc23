//! fs-verity: the userspace digest (as the kernel computes it) and the kernel ioctls.

#[cfg(feature = "writer")]
pub mod digest;
pub mod ioctl;
