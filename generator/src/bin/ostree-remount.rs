//! ostree-remount: see `ostree_system_generator::remount`.

use std::path::PathBuf;
use std::process::ExitCode;

use ostree_system_generator::remount;

fn main() -> ExitCode {
    ostree_system_generator::log_init("ostree-remount", false);
    let root = std::env::var_os(remount::ENV_ROOT)
        .filter(|r| !r.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    match remount::run(&root) {
        Ok(done) => {
            for r in done {
                println!(
                    "Remounted {}: {}",
                    if r.writable { "rw" } else { "ro" },
                    r.path
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
