//! `cargo xtask setup|fixtures|test|demo|build-image|bench|fuzz|soak`: everything a newcomer
//! runs, in one place.

mod apt;
mod bench;
mod build_image;
mod demo;
mod fixtures;
mod fuzz;
mod kernel;
mod lanes;
mod setup;
mod soak;
mod test;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// k8r project tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    /// More output (-v: commands run, -vv: everything).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what the project needs on a Debian 12 machine (apt packages as root, the
    /// aarch64-musl Rust target, Debian's arm64 kernel for the QEMU guests). Idempotent: skips
    /// what is already there, so it also works without root once the tools are installed.
    Setup,
    /// Build the fixture base images under target/fixtures (Ubuntu 26.04 and 24.04 shapes).
    Fixtures,
    /// Setup, fixtures, formatting and lint checks, then every test (unit and QEMU); ends
    /// with one line `N passed, N failed`.
    Test {
        /// How many test programs run at once (default: the number of CPUs). Each QEMU
        /// guest keeps about one core busy.
        #[arg(long, short, env = "K8R_TEST_JOBS")]
        jobs: Option<usize>,
        /// Extra arguments for every test program (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Build a card for real use, in one command: builds the static recovery installer and
    /// node agent (aarch64-musl) and k8r-builder, all release, then runs
    /// `k8r-builder assemble` with every argument given, e.g.
    /// `cargo xtask build-image --config variables.cfg --out images`.
    /// See `k8r-builder assemble --help` for the arguments.
    BuildImage {
        /// Arguments for `k8r-builder assemble`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Time k8r's install data path against the seed's `xz | dd`, `xz -T0 | dd` and
    /// `bmaptool copy` on the same realistic root image, with the floors (decode, hash,
    /// write); prints medians, peak memory and the ratios. Needs `cargo xtask setup` first.
    Bench(bench::BenchArgs),
    /// Run the parser fuzz targets (docs/fuzzing.md) one after the other, each for `--secs`
    /// seconds; prints per target the executions, the time and the findings, and fails on a
    /// finding. `--list` names the targets.
    Fuzz(fuzz::FuzzArgs),
    /// Cut the power at random moments (seeded) in the first install, `update-image` staging
    /// and a trial's commit, in QEMU, and check after each that the node ends committed with
    /// every filesystem clean; a failure prints the seed that replays it.
    Soak(soak::SoakArgs),
    /// Show the story so far: boot the fixture card through the QEMU harness and show its
    /// console.
    Demo,
}

fn main() {
    let cli = Cli::parse();
    k8r_builder::logging::init(cli.verbose);
    if let Err(e) = run(cli.task) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::run(),
        Task::Fixtures => {
            setup::run()?;
            fixtures::run().map(|_| ())
        }
        Task::Test { jobs, cargo_args } => {
            let jobs = jobs
                .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
                .unwrap_or(2)
                .max(1);
            test::run(&cargo_args, jobs)
        }
        Task::Demo => demo::run(),
        Task::BuildImage { args } => build_image::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Soak(args) => soak::run(&args),
    }
}

/// The workspace root.
fn root() -> PathBuf {
    k8r_qemu::assets::workspace_root()
}
