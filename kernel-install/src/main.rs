use clap::Parser;

mod cmd;

/// Builds composefs images for ostree, signs commits and writes deployments.
#[derive(Parser)]
#[command(name = "ostree-composefs", version)]
enum Cli {
    Mkcomposefs(cmd::mkcomposefs::Args),
    Dump(cmd::dump::Args),
    Digest(cmd::digest::Args),
}

fn main() {
    let res = match Cli::parse() {
        Cli::Mkcomposefs(a) => cmd::mkcomposefs::run(a),
        Cli::Dump(a) => cmd::dump::run(a),
        Cli::Digest(a) => cmd::digest::run(a),
    };
    if let Err(e) = res {
        eprintln!("ostree-composefs: {e:#}");
        std::process::exit(1);
    }
}
