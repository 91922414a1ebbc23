//! ostree repositories without libostree: GVariant objects, reading a repo, the
//! composefs tree of a commit, and `/run/ostree-booted`.

pub mod booted;
#[cfg(feature = "writer")]
pub mod checkout;
pub mod objects;
pub mod repo;
#[cfg(feature = "writer")]
pub mod staged;
