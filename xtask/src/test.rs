//! `cargo xtask test`: setup, fixtures, format and lint checks, then every test of the
//! workspace (unit, host integration and QEMU), ending with one line `N passed, N failed`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use k8r_qemu::assets::target_dir;

use crate::{fixtures, lanes, root, setup};

/// Counts from libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
}

impl Tally {
    /// Adds one libtest summary line, e.g.
    /// `test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; ...`.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(num)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = num.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                _ => {}
            }
        }
    }
}

/// Runs everything.
pub fn run(cargo_args: &[String], jobs: usize) -> Result<()> {
    setup::run()?;
    fixtures::run().context("building fixtures")?;
    build_binaries()?;
    let mut tally = Tally::default();
    for (name, args) in [
        ("cargo fmt --check", vec!["fmt", "--all", "--", "--check"]),
        (
            "cargo clippy",
            vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ] {
        log::info!("test: {name}");
        let ok = Command::new(cargo())
            .current_dir(root())
            .args(&args)
            .status()
            .with_context(|| format!("running {name}"))?
            .success();
        if ok {
            tally.passed += 1;
        } else {
            log::error!("{name} failed");
            tally.failed += 1;
        }
    }
    log::info!("test: cargo test --workspace --no-run (building the test programs)");
    let built = Command::new(cargo())
        .current_dir(root())
        .args([
            "test",
            "--workspace",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !built.status.success() {
        tally.failed += 1;
        println!("{} passed, {} failed", tally.passed, tally.failed);
        bail!("the test programs did not build");
    }
    let programs = lanes::programs_from_json(&String::from_utf8_lossy(&built.stdout))?;
    log::info!("test: cargo test --workspace --doc");
    let mut child = Command::new(cargo())
        .current_dir(root())
        .args(["test", "--workspace", "--doc", "--no-fail-fast", "--"])
        .args(cargo_args)
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test --doc")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        tally.add_line(&line);
    }
    let status = child.wait().context("waiting for cargo test --doc")?;
    if !status.success() && tally.failed == 0 {
        tally.failed += 1;
    }
    let times_file = target_dir().join("test-times.tsv");
    let mut times = lanes::Times::parse(&std::fs::read_to_string(&times_file).unwrap_or_default());
    let programs = lanes::order(programs, &times);
    log::info!(
        "test: {} test programs in {jobs} lanes, the longest first (logs in target/test-logs/)",
        programs.len()
    );
    let started = std::time::Instant::now();
    let (ran, measured) = lanes::run(programs, jobs, cargo_args, &target_dir().join("test-logs"))?;
    tally.passed += ran.passed;
    tally.failed += ran.failed;
    log::info!(
        "test: the test programs took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if cargo_args.is_empty() {
        // Only a whole run says how long each program takes.
        times.0.extend(measured.0);
        if let Err(e) = std::fs::write(&times_file, times.render()) {
            log::warn!(
                "{}: {e} (only the next run's order suffers)",
                times_file.display()
            );
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 {
        bail!("{} failed", tally.failed);
    }
    Ok(())
}

/// Builds what the tests run as programs: the programs a card carries
/// ([`build_card_programs`]), the `k8r-builder` binary (run under another uid) and the
/// Kubernetes stand-ins.
pub fn build_binaries() -> Result<()> {
    build_card_programs()?;
    cargo_build(
        "k8r-builder",
        &["build", "-p", "k8r-builder", "--bin", "k8r-builder"],
    )?;
    cargo_build(
        "the Kubernetes stand-ins for host tests",
        &["build", "-p", "k8r-standins"],
    )
}

/// The static aarch64 recovery installer (it goes into the recovery initramfs) and node agent
/// (it goes into the root), release builds: what `cargo xtask test` and `build-image` use.
pub fn build_card_programs() -> Result<()> {
    for (what, package) in [
        ("the recovery installer (aarch64-musl)", "k8r-installer"),
        ("the node agent (aarch64-musl)", "k8r-node"),
    ] {
        cargo_build(
            what,
            &[
                "build",
                "--release",
                "-p",
                package,
                "--target",
                "aarch64-unknown-linux-musl",
            ],
        )?;
    }
    Ok(())
}

/// Runs `cargo ARGS` in the workspace. `CARGO_MANIFEST_DIR` (set when this program runs
/// under `cargo run` or a test) is removed: build scripts track it, and a build from another
/// caller would otherwise start over.
pub fn cargo_build(what: &str, args: &[&str]) -> Result<()> {
    log::info!("build: {what}");
    let ok = Command::new(cargo())
        .current_dir(root())
        .args(args)
        .env_remove("CARGO_MANIFEST_DIR")
        .status()
        .with_context(|| format!("building {what}"))?
        .success();
    if !ok {
        bail!("building {what} failed");
    }
    Ok(())
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_result_lines_and_ignores_others() {
        let mut t = Tally::default();
        t.add_line("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line(
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("test foo ... ok");
        t.add_line("running 5 tests");
        assert_eq!(
            t,
            Tally {
                passed: 15,
                failed: 2
            }
        );
    }
}
