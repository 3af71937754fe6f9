//! `cargo xtask soak --trials N [--seed S]`: the random power-cut scenario
//! (`crates/tests/tests/qemu_power_cuts.rs`) with many trials. `cargo xtask test` runs it with
//! its default of two; this runs as many as asked, and a failure names the seed that replays
//! it.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, test};

/// `cargo xtask soak` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Power cuts to make (they cycle through install, staging and commit).
    #[arg(long, default_value_t = 30)]
    pub trials: u64,
    /// Replay a run: the seed its first line printed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Builds what the scenario runs, then runs it.
pub fn run(args: &SoakArgs) -> Result<()> {
    if args.trials == 0 {
        bail!("--trials must be at least 1");
    }
    crate::setup::run()?;
    crate::fixtures::run().context("building fixtures")?;
    test::build_binaries()?;
    let mut cmd = Command::new(test::cargo());
    cmd.current_dir(root())
        .args(["test", "-p", "k8r-tests", "--test", "qemu_power_cuts"])
        .args(["--", "--nocapture"])
        .env("K8R_SOAK_TRIALS", args.trials.to_string());
    if let Some(seed) = args.seed {
        cmd.env("K8R_SOAK_SEED", seed.to_string());
    }
    let status = cmd.status().context("running the power-cut scenario")?;
    if !status.success() {
        bail!("the power-cut scenario failed: its output above names the seed and the trial");
    }
    Ok(())
}
