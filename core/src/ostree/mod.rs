//! ostree repositories without libostree: GVariant objects, reading a repo, the
//! composefs tree of a commit, and `/run/ostree-booted`.

pub mod booted;
pub mod checkout;
pub mod objects;
pub mod repo;
pub mod staged;
