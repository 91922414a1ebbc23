//! ostree-system-generator: see `ostree_system_generator::generate`.

use std::path::PathBuf;
use std::process::ExitCode;

use ostree_system_generator::context::Context;
use ostree_system_generator::generate;
use ostree_system_generator::output::OutputDir;

const HELP: &str = "Writes the systemd units of an ostree boot (var.mount, boot.mount, remount and
initrd wiring); systemd runs it as a generator.

usage: ostree-system-generator NORMAL-DIR [EARLY-DIR LATE-DIR]
       ostree-system-generator --help

Units go to NORMAL-DIR only. See ostree-system-generator(8).
";

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if matches!(args.first(), Some(a) if a == "--help" || a == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    ostree_system_generator::log_init("ostree-system-generator", true);
    // systemd passes normal, early and late dirs; tests may pass just one. Everything
    // goes to the normal dir, which loses to /etc and /run so admins can override.
    let normal = match args.as_slice() {
        [normal] | [normal, _, _] => PathBuf::from(normal),
        _ => {
            log::error!(
                "expected 1 or 3 arguments (normal-dir [early-dir late-dir]), got {}",
                args.len()
            );
            return ExitCode::FAILURE;
        }
    };
    let out = match OutputDir::open(&normal) {
        Ok(o) => o,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Context::from_env(|k| std::env::var_os(k));
    if generate::run(&ctx, &out).success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
