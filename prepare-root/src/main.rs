//! `ostree-prepare-root`: sets up an ostree deployment as the root in the initrd.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cmd = match cli::parse_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ostree-prepare-root: {e}");
            return ExitCode::from(2);
        }
    };
    match cmd {
        cli::Command::PrintConfig {
            config_root,
            cmdline,
        } => match cli::print_config(&config_root, cmdline.as_deref()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ostree-prepare-root: error: {e}");
                ExitCode::FAILURE
            }
        },
        cli::Command::Prepare { .. } => {
            eprintln!("ostree-prepare-root: error: the root setup executor is not built yet");
            ExitCode::FAILURE
        }
    }
}
