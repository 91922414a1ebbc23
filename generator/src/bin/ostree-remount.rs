//! ostree-remount: see `ostree_system_generator::remount`.

use std::path::PathBuf;
use std::process::ExitCode;

use ostree_system_generator::remount;

const HELP: &str = "Remounts /sysroot, /etc and /var of a booted ostree system as its configuration
says (ostree-remount.service runs it after systemd-remount-fs.service).

usage: ostree-remount
       ostree-remount --help

The root is OSTREE_REMOUNT_ROOT when set (tests), else /. See ostree-system-generator(8).
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match args.next() {
        None => {}
        Some(a) if a == "--help" || a == "-h" => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some(a) => {
            eprintln!(
                "ostree-remount: unexpected argument '{}'\nusage: ostree-remount [--help]",
                a.to_string_lossy()
            );
            return ExitCode::from(2);
        }
    }
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
