use std::process::ExitCode;

use clap::Parser;

mod cmd;
mod deploy;

/// Builds composefs images for ostree, signs commits and writes deployments.
#[derive(Parser)]
#[command(name = "ostree-composefs", version)]
enum Cli {
    Deploy(cmd::deploy::Args),
    Undeploy(cmd::undeploy::Args),
    /// The kernel-install(8) plugin (install.d/88-ostree-composefs.install).
    KernelInstall(cmd::kernel_install::Args),
}

fn main() -> ExitCode {
    let r = match Cli::parse() {
        Cli::Deploy(a) => cmd::deploy::run(a),
        Cli::Undeploy(a) => cmd::undeploy::run(a),
        Cli::KernelInstall(a) => cmd::kernel_install::run(a),
    };
    match r {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
