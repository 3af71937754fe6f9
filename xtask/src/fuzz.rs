//! `cargo xtask fuzz [--secs N] [TARGET…]`: runs the parser fuzz targets (`docs/fuzzing.md`)
//! one after the other, each for a bounded time, and prints per target the executions, the
//! time and the findings.
//!
//! Each target is a `#[test]` in its crate's `src/fuzz.rs`; a run is that test with
//! `K8R_FUZZ_SECS` set (see the `k8r-fuzzkit` crate), so the same code runs a short seeded
//! pass in `cargo test` and a long one here. One target at a time, on one thread.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{root, test};

/// A target: its name (the test `fuzz::NAME`), its package and the package's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// The package that holds it.
    pub package: &'static str,
    /// The package's directory under the workspace root.
    pub dir: &'static str,
}

const fn t(name: &'static str, package: &'static str, dir: &'static str) -> Target {
    Target { name, package, dir }
}

/// Every target, in the order a run takes them.
pub const TARGETS: &[Target] = &[
    t("config_txt", "k8r-boot-config", "crates/boot-config"),
    t("config_effective", "k8r-boot-config", "crates/boot-config"),
    t("autoboot", "k8r-boot-config", "crates/boot-config"),
    t("cmdline", "k8r-boot-config", "crates/boot-config"),
    t("mbr", "k8r-boot-config", "crates/boot-config"),
    t("manifest", "k8r-manifest", "crates/manifest"),
    t("variables_cfg", "k8r-config", "crates/config"),
    t("config_toml", "k8r-config", "crates/config"),
    t("card_records", "k8r-card", "crates/card"),
    t("install_log", "k8r-card", "crates/card"),
    t("zstd_stream", "k8r-card", "crates/card"),
    t("tar_path", "k8r-installer", "crates/installer"),
    t("boot_archive", "k8r-installer", "crates/installer"),
    t("content_range", "k8r-node", "crates/node"),
];

/// `cargo xtask fuzz` options.
#[derive(Debug, Clone, clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Replay a run: the seed a report line printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the targets and exit.
    #[arg(long)]
    pub list: bool,
    /// Targets to run (default: all).
    pub targets: Vec<String>,
}

/// One target's result, from its report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The target.
    pub name: String,
    /// Executions of its property.
    pub executions: u64,
    /// Seconds it ran.
    pub secs: String,
    /// Distinct findings.
    pub findings: u64,
    /// The seed of the run.
    pub seed: String,
    /// Everything else on the line (`label=count` hits).
    pub hits: String,
}

/// Reads a `k8r-fuzz: NAME executions=… secs=… findings=… seed=… [label=count…]` line.
pub fn parse_report(line: &str) -> Option<Outcome> {
    let rest = line.trim().strip_prefix("k8r-fuzz: ")?;
    let mut words = rest.split_whitespace();
    let name = words.next()?.to_owned();
    let mut field = |key: &str| {
        words
            .next()
            .and_then(|w| w.strip_prefix(key))
            .and_then(|w| w.strip_prefix('='))
            .map(str::to_owned)
    };
    let executions = field("executions")?.parse().ok()?;
    let secs = field("secs")?;
    let findings = field("findings")?.parse().ok()?;
    let seed = field("seed")?;
    let hits = words.collect::<Vec<_>>().join(" ");
    Some(Outcome {
        name,
        executions,
        secs,
        findings,
        seed,
        hits,
    })
}

fn selected(args: &FuzzArgs) -> Result<Vec<Target>> {
    if args.targets.is_empty() {
        return Ok(TARGETS.to_vec());
    }
    args.targets
        .iter()
        .map(|name| {
            TARGETS
                .iter()
                .find(|t| t.name == name)
                .copied()
                .with_context(|| format!("no fuzz target {name} (`cargo xtask fuzz --list`)"))
        })
        .collect()
}

fn spawn(target: &Target, args: &FuzzArgs) -> Result<Child> {
    let mut cmd = Command::new(test::cargo());
    cmd.current_dir(root())
        .args(["test", "-q", "-p", target.package, "--lib", "--"])
        .arg(format!("fuzz::{}", target.name))
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .env("K8R_FUZZ_SECS", args.secs.to_string())
        .env_remove("CARGO_MANIFEST_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(seed) = args.seed {
        cmd.env("K8R_FUZZ_SEED", seed.to_string());
    }
    cmd.spawn()
        .with_context(|| format!("starting fuzz target {}", target.name))
}

/// Reads a child's pipe to its end on a thread of its own.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut text);
        }
        text
    })
}

/// Runs one target to its end, or kills it as hung two minutes past its time.
fn run_one(target: &Target, args: &FuzzArgs) -> Result<(Option<Outcome>, String)> {
    let mut child = spawn(target, args)?;
    let out = read_all(child.stdout.take());
    let err = read_all(child.stderr.take());
    let limit = Duration::from_secs(args.secs) + Duration::from_secs(120);
    let start = Instant::now();
    let hung = loop {
        if child
            .try_wait()
            .context("waiting for a fuzz target")?
            .is_some()
        {
            break false;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let outcome = stdout.lines().find_map(parse_report);
    let mut detail: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" finding: "))
        .collect();
    if hung {
        detail.push("hung: killed two minutes past its time (an input that never ends)");
    }
    if outcome.is_none() && !hung {
        detail.extend(
            stderr
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev(),
        );
    }
    Ok((outcome, detail.join("\n")))
}

/// Builds the test binaries, runs the targets, prints the table.
pub fn run(args: &FuzzArgs) -> Result<()> {
    let targets = selected(args)?;
    if args.list {
        for t in &targets {
            println!("{:<18} {}", t.name, t.package);
        }
        return Ok(());
    }
    let mut packages: Vec<&str> = targets.iter().map(|t| t.package).collect();
    packages.dedup();
    let mut build = vec!["test", "--no-run", "-q", "--lib"];
    for p in &packages {
        build.extend(["-p", p]);
    }
    test::cargo_build("fuzz targets", &build)?;
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for target in &targets {
        log::info!("fuzz: {} for {} s", target.name, args.secs);
        let (outcome, detail) = run_one(target, args)?;
        if !detail.is_empty() {
            println!("{}:\n{detail}", target.name);
        }
        match outcome {
            Some(o) => {
                println!(
                    "{}: {} executions in {} s, {} findings (seed {})",
                    o.name, o.executions, o.secs, o.findings, o.seed
                );
                if o.findings > 0 {
                    failed.push(target.name);
                }
                rows.push(o);
            }
            None => failed.push(target.name),
        }
    }
    println!("\n| target | executions | seconds | findings | hits |");
    println!("|---|---:|---:|---:|---|");
    for o in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            o.name, o.executions, o.secs, o.findings, o.hits
        );
    }
    if !failed.is_empty() {
        bail!("fuzz: findings or failures in {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_report_line_is_read() {
        let o = parse_report("k8r-fuzz: mbr executions=68210 secs=15.0 findings=2 seed=17 valid=3")
            .expect("a report line");
        assert_eq!(o.name, "mbr");
        assert_eq!(o.executions, 68210);
        assert_eq!(o.secs, "15.0");
        assert_eq!(o.findings, 2);
        assert_eq!(o.seed, "17");
        assert_eq!(o.hits, "valid=3");
        assert_eq!(
            parse_report("k8r-fuzz: mbr finding: x; minimal input: b\"\""),
            None
        );
        assert_eq!(parse_report("test result: ok."), None);
    }

    /// Every `#[test] fn NAME` in a crate's `src/fuzz.rs` is in [`TARGETS`], and back.
    #[test]
    fn fuzz_targets_match_the_crates() {
        let mut found = Vec::new();
        let mut dirs: Vec<&str> = TARGETS.iter().map(|t| t.dir).collect();
        dirs.dedup();
        for dir in dirs {
            let path = root().join(dir).join("src/fuzz.rs");
            let text = std::fs::read_to_string(&path).expect("fuzz.rs");
            let mut after_test = false;
            for line in text.lines() {
                if after_test {
                    if let Some(rest) = line.strip_prefix("fn ") {
                        let name = rest.split('(').next().unwrap_or("");
                        found.push((name.to_owned(), dir));
                    }
                }
                after_test = line.trim() == "#[test]";
            }
        }
        let listed: Vec<(String, &str)> =
            TARGETS.iter().map(|t| (t.name.to_owned(), t.dir)).collect();
        found.sort();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        assert_eq!(found, listed_sorted);
    }
}
