//! `k8r-builder`: see `k8r-builder --help`.

use clap::Parser;

fn main() {
    let cli = k8r_builder::cli::Cli::parse();
    k8r_builder::logging::init(cli.verbose);
    if let Err(e) = k8r_builder::cli::run(cli) {
        eprintln!("error: {}", k8r_builder::logging::error_chain(&e));
        std::process::exit(1);
    }
}
