//! Fixtures for the privileged prepare-root tests: the shared ones of
//! `ostree-boot-test-support`, and the binary under test.
#![allow(dead_code, unused_imports)]

pub use ostree_boot_test_support::sysroot::{SERIAL, Sysroot, in_namespace, serial};
pub use ostree_boot_test_support::{
    output_stderr as stderr, output_stdout as stdout, privileged, require, run, sh_out,
};

/// The binary under test: this build's, or another (release, static) named by
/// `OSTREE_PREPARE_ROOT_BIN`.
pub fn prepare_root_bin() -> String {
    std::env::var("OSTREE_PREPARE_ROOT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ostree-prepare-root").to_string())
}
