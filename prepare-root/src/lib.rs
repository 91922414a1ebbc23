//! ostree-prepare-root: turns the physical root at SYSROOT into the deployment's root, in
//! the initrd. The decisions live in `ostree_boot`; this crate executes them.

pub mod check;
pub mod composefs_mount;
pub mod exec;
pub mod loopdev;
pub mod run;
pub mod verify;

/// Logs `msg` with structured journal fields (`MESSAGE_ID`, …) where journald runs, and
/// as a plain line elsewhere.
pub fn journal(msg: &str, fields: &[(&str, &str)]) {
    ostree_boot::logger::journal_send(msg, fields);
}
