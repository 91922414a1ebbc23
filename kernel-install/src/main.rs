use clap::Parser;

mod cmd;

/// Builds composefs images for ostree, signs commits and writes deployments.
#[derive(Parser)]
#[command(name = "ostree-composefs", version)]
enum Cli {
    Mkcomposefs(cmd::mkcomposefs::Args),
    Dump(cmd::dump::Args),
    Digest(cmd::digest::Args),
    CommitMetadata(cmd::commit_metadata::Args),
    Keygen(cmd::keygen::Args),
    Sign(cmd::sign::Args),
    Verify(cmd::verify::Args),
}

fn main() {
    let res = match Cli::parse() {
        Cli::Mkcomposefs(a) => cmd::mkcomposefs::run(a),
        Cli::Dump(a) => cmd::dump::run(a),
        Cli::Digest(a) => cmd::digest::run(a),
        Cli::CommitMetadata(a) => cmd::commit_metadata::run(a),
        Cli::Keygen(a) => cmd::keygen::run(a),
        Cli::Sign(a) => cmd::sign::run(a),
        Cli::Verify(a) => cmd::verify::run(a),
    };
    if let Err(e) = res {
        eprintln!("ostree-composefs: {e:#}");
        std::process::exit(1);
    }
}
