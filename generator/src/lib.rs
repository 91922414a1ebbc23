//! ostree-system-generator and ostree-remount: the systemd side of an ostree
//! (composefs) boot. See `generate` for what the generator writes and `remount` for
//! the remount step it wires in.

pub mod context;
pub mod escape;
pub mod fstab;
pub mod generate;
pub mod output;
pub mod remount;
pub mod unit_file;
pub mod units;

use ostree_boot::logger::{self, LogTarget};

/// Sets up logging. Generators must not talk to journald, so `kmsg` sends records to
/// `/dev/kmsg` (stderr when it cannot be opened); `SYSTEMD_LOG_TARGET=console` (or
/// `stderr`) sends them to stderr, as for systemd's own generators.
pub fn log_init(name: &'static str, kmsg: bool) {
    let console =
        std::env::var("SYSTEMD_LOG_TARGET").is_ok_and(|t| t == "console" || t == "stderr");
    let target = if kmsg && !console {
        LogTarget::Kmsg
    } else {
        LogTarget::Stderr
    };
    logger::init(name, target);
}
