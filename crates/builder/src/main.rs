//! `k8r-builder`: see `k8r-builder --help`.

use clap::Parser;

fn main() {
    let cli = builder::cli::Cli::parse();
    builder::logging::init(cli.verbose);
    if let Err(e) = builder::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
