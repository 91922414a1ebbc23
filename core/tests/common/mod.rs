//! Helpers shared by the integration tests of this crate: those of
//! `ostree-boot-test-support`.
#![allow(dead_code, unused_imports)]

pub use ostree_boot_test_support::run_args as run;
pub use ostree_boot_test_support::{have_ostree, privileged, require, vectors};
