//! `ostree-composefs` as a library: the subcommands (`cmd`, including the kernel-install
//! plugin) and the deploy engine (`deploy`), so tests can drive them in-process. The
//! binary (`main.rs`) only calls [`main`].

#![warn(unreachable_pub)]

use std::process::ExitCode;

use clap::Parser;

pub mod cmd;
pub mod deploy;
mod journal;

/// Builds composefs images for ostree, signs commits and writes deployments.
#[derive(Parser)]
#[command(name = "ostree-composefs", version)]
pub enum Cli {
    Mkcomposefs(cmd::mkcomposefs::Args),
    Dump(cmd::dump::Args),
    Digest(cmd::digest::Args),
    Deploy(cmd::deploy::Args),
    Undeploy(cmd::undeploy::Args),
    FinalizeStaged(cmd::finalize_staged::Args),
    /// The kernel-install(8) plugin (install.d/88-ostree-composefs.install).
    KernelInstall(cmd::kernel_install::Args),
    CommitMetadata(cmd::commit_metadata::Args),
    Keygen(cmd::keygen::Args),
    Sign(cmd::sign::Args),
    Verify(cmd::verify::Args),
    Grubenv(cmd::grubenv::Args),
    /// Marks the booted deployment good for the GRUB boot assessment (ostree-grub-bless.service).
    GrubBless(cmd::grubenv::BlessArgs),
}

impl Cli {
    /// Runs the subcommand; the result is the process exit status. Subcommands that
    /// only succeed or fail give 0; those with a meaningful status (the kernel-install
    /// plugin's 77) give it.
    pub fn run(self) -> anyhow::Result<i32> {
        match self {
            Cli::Mkcomposefs(a) => cmd::mkcomposefs::run(a).map(|()| 0),
            Cli::Dump(a) => cmd::dump::run(a).map(|()| 0),
            Cli::Digest(a) => cmd::digest::run(a).map(|()| 0),
            Cli::Deploy(a) => cmd::deploy::run(a),
            Cli::Undeploy(a) => cmd::undeploy::run(a),
            Cli::FinalizeStaged(a) => cmd::finalize_staged::run(a),
            Cli::KernelInstall(a) => cmd::kernel_install::run(a),
            Cli::CommitMetadata(a) => cmd::commit_metadata::run(a).map(|()| 0),
            Cli::Keygen(a) => cmd::keygen::run(a).map(|()| 0),
            Cli::Sign(a) => cmd::sign::run(a).map(|()| 0),
            Cli::Verify(a) => cmd::verify::run(a).map(|()| 0),
            Cli::Grubenv(a) => cmd::grubenv::run(a).map(|()| 0),
            Cli::GrubBless(a) => cmd::grubenv::run_bless(a).map(|()| 0),
        }
    }
}

/// The process: parses the command line, runs it, reports an error on stderr.
pub fn main() -> ExitCode {
    match Cli::parse().run() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("ostree-composefs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
