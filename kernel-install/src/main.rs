use clap::Parser;

/// Builds composefs images for ostree, signs commits and writes deployments.
#[derive(Parser)]
#[command(name = "ostree-composefs", version)]
enum Cli {}

fn main() {
    let _ = Cli::parse();
}
