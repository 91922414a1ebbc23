//! `ostree-prepare-root`: sets up an ostree deployment as the root in the initrd.

mod cli;

use std::process::ExitCode;

use ostree_boot::logger::{self, LogTarget};
use ostree_prepare_root::{check, run};

fn main() -> ExitCode {
    let cmd = match cli::parse_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ostree-prepare-root: {e}");
            return ExitCode::from(2);
        }
    };
    match cmd {
        cli::Command::Help => {
            print!("{}", cli::HELP);
            ExitCode::SUCCESS
        }
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
        cli::Command::Check {
            sysroot,
            config_root,
            cmdline,
            deployment,
        } => {
            let cmdline = match cli::kernel_cmdline(cmdline.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ostree-prepare-root: error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let report = check::check(&check::CheckArgs {
                sysroot,
                config_root,
                cmdline,
                deployment,
            });
            for l in &report.lines {
                println!("{l}");
            }
            println!(
                "would boot: {}",
                if report.would_boot() { "yes" } else { "no" }
            );
            for f in &report.failures {
                eprintln!("ostree-prepare-root --check: {f}");
            }
            if report.would_boot() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        cli::Command::Prepare { sysroot, cmdline } => {
            // Kmsg in the initrd (the journal is not up yet), the journal or stderr
            // elsewhere; errors are always on stderr too, for the unit's status.
            logger::init("ostree-prepare-root", LogTarget::Auto);
            let res = cli::kernel_cmdline(cmdline.as_deref())
                .map_err(anyhow::Error::msg)
                .and_then(|c| run::run(&sysroot, &c));
            match res {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // On stderr, not only in the log: systemd shows it with the unit.
                    eprintln!("ostree-prepare-root: error: {}", run::error_line(&e));
                    ExitCode::FAILURE
                }
            }
        }
    }
}
