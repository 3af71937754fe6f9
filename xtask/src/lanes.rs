//! The test programs of `cargo xtask test`, run side by side: `cargo test --no-run` builds
//! them and names them (its JSON messages), then `jobs` lanes run them, the longest first,
//! each program's output kept in `target/test-logs/<name>.log` and printed whole when it ends.
//!
//! Why: `cargo test` runs one program at a time, and a QEMU guest (TCG) keeps about one core
//! busy, so on two cores a third of the machine sat idle for most of the suite. How long each
//! program took is kept in `target/test-times.tsv` for the next run's order; a first run
//! orders by [`HINTS`].

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::test::Tally;

/// One test program cargo built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// `<crate directory>/<target name>`, e.g. `tests/qemu_install` or `card/k8r_card`.
    pub name: String,
    /// The executable.
    pub path: PathBuf,
    /// Its package's directory: `cargo test` runs a test program there.
    pub dir: PathBuf,
}

/// Seconds each program took on two cores (the fresh-clone run of `28a1cdf`, one program at a time), for the order of
/// a run that has no `target/test-times.tsv` yet (a fresh clone). Only the order depends on
/// them; a program not named here counts by its kind ([`fallback`]).
pub const HINTS: &[(&str, f64)] = &[
    ("tests/qemu_trial_rollback", 966.0),
    ("tests/qemu_node_master", 458.0),
    ("tests/qemu_power_cuts", 426.0),
    ("tests/host_readme_recipe", 250.0),
    ("tests/qemu_systemd_fixture", 216.0),
    ("tests/qemu_install", 191.0),
    ("tests/qemu_installer_faults", 174.0),
    ("tests/qemu_node_worker", 152.0),
    ("tests/qemu_trial", 78.0),
    ("node/bootstrap_standins", 67.0),
];

/// The weight of a program neither measured nor in [`HINTS`]: QEMU scenarios are long, host
/// scenarios middling, unit tests short.
fn fallback(name: &str) -> f64 {
    let target = name.rsplit('/').next().unwrap_or(name);
    if target.starts_with("qemu_") {
        120.0
    } else if target.starts_with("host_") {
        30.0
    } else {
        5.0
    }
}

/// The test programs in `cargo test --no-run --message-format=json` output: every
/// `compiler-artifact` of a test profile that has an executable.
pub fn programs_from_json(text: &str) -> Result<Vec<Program>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.starts_with('{') {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("cargo's JSON message {}: not JSON", n + 1))?;
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let (Some(target), Some(manifest)) =
            (v["target"]["name"].as_str(), v["manifest_path"].as_str())
        else {
            bail!(
                "cargo's JSON message {}: no target name or manifest path",
                n + 1
            );
        };
        let dir = Path::new(manifest)
            .parent()
            .context("a manifest path without a directory")?
            .to_path_buf();
        let crate_dir = dir
            .file_name()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Program {
            name: format!("{crate_dir}/{target}"),
            path: PathBuf::from(exe),
            dir,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// Seconds per program name, as `target/test-times.tsv` keeps them (`SECONDS<TAB>NAME`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Times(pub BTreeMap<String, f64>);

impl Times {
    /// Reads the file's text; lines that do not parse are skipped (it is only a hint).
    pub fn parse(text: &str) -> Times {
        let map = text
            .lines()
            .filter_map(|l| {
                let (secs, name) = l.split_once('\t')?;
                let secs: f64 = secs.trim().parse().ok()?;
                (secs.is_finite() && secs >= 0.0).then(|| (name.trim().to_owned(), secs))
            })
            .collect();
        Times(map)
    }

    /// The file's text, longest first.
    pub fn render(&self) -> String {
        let mut rows: Vec<(&String, &f64)> = self.0.iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        rows.iter()
            .map(|(name, secs)| format!("{secs:.1}\t{name}\n"))
            .collect()
    }

    /// How long `name` is expected to take: measured, else hinted, else by kind.
    pub fn weight(&self, name: &str) -> f64 {
        self.0
            .get(name)
            .copied()
            .or_else(|| HINTS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s))
            .unwrap_or_else(|| fallback(name))
    }
}

/// The order programs start in: the longest expected first (with lanes taking the next
/// program as each frees, the long ones do not end up alone at the end); ties by name.
pub fn order(mut programs: Vec<Program>, times: &Times) -> Vec<Program> {
    programs.sort_by(|a, b| {
        times
            .weight(&b.name)
            .total_cmp(&times.weight(&a.name))
            .then(a.name.cmp(&b.name))
    });
    programs
}

/// What one program did.
#[derive(Debug)]
struct Outcome {
    name: String,
    tally: Tally,
    took: Duration,
}

/// Runs `programs` (in this order) in `jobs` lanes, each with `args`, printing each one's
/// output when it ends; returns the summed tally and the times measured.
pub fn run(
    programs: Vec<Program>,
    jobs: usize,
    args: &[String],
    logs: &Path,
) -> Result<(Tally, Times)> {
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    let total = programs.len();
    let queue = Arc::new(Mutex::new(programs.into_iter().enumerate()));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let lanes: Vec<_> = (0..jobs.max(1))
        .map(|lane| {
            let queue = Arc::clone(&queue);
            let outcomes = Arc::clone(&outcomes);
            let args = args.to_vec();
            let logs = logs.to_path_buf();
            std::thread::spawn(move || -> Result<()> {
                loop {
                    let next = queue
                        .lock()
                        .map_err(|_| anyhow::anyhow!("lane poisoned"))?
                        .next();
                    let Some((i, program)) = next else {
                        return Ok(());
                    };
                    log::info!(
                        "test: [{}/{total}] {} (lane {}, {:.0} s into the run)",
                        i + 1,
                        program.name,
                        lane + 1,
                        started.elapsed().as_secs_f64()
                    );
                    let outcome = run_one(&program, &args, &logs)?;
                    outcomes
                        .lock()
                        .map_err(|_| anyhow::anyhow!("lane poisoned"))?
                        .push(outcome);
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.join()
            .map_err(|_| anyhow::anyhow!("a test lane panicked"))??;
    }
    let outcomes = Arc::try_unwrap(outcomes)
        .map_err(|_| anyhow::anyhow!("lanes still running"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("lane poisoned"))?;
    let mut tally = Tally::default();
    let mut times = Times::default();
    for o in outcomes {
        tally.passed += o.tally.passed;
        tally.failed += o.tally.failed;
        times.0.insert(o.name, o.took.as_secs_f64());
    }
    Ok((tally, times))
}

/// Runs one program with its output in `logs/<name>.log`, then prints that log.
fn run_one(program: &Program, args: &[String], logs: &Path) -> Result<Outcome> {
    let log_path = logs.join(format!("{}.log", program.name.replace('/', "--")));
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("opening {} twice", log_path.display()))?;
    let start = Instant::now();
    let status = Command::new(&program.path)
        .args(args)
        .current_dir(&program.dir)
        .env("CARGO_MANIFEST_DIR", &program.dir)
        .stdout(log)
        .stderr(err)
        .status()
        .with_context(|| format!("running {}", program.path.display()))?;
    let took = start.elapsed();
    let text = std::fs::read_to_string(&log_path)
        .with_context(|| format!("reading {}", log_path.display()))?;
    let mut tally = Tally::default();
    for line in text.lines() {
        tally.add_line(line);
    }
    if !status.success() && tally.failed == 0 {
        // A crash or a refused argument has no `test result:` line: one failure.
        tally.failed += 1;
    }
    println!(
        "── {}: {} passed, {} failed, {:.0} s ({})\n{text}",
        program.name,
        tally.passed,
        tally.failed,
        took.as_secs_f64(),
        log_path.display()
    );
    Ok(Outcome {
        name: program.name.clone(),
        tally,
        took,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(name: &str) -> Program {
        Program {
            name: name.into(),
            path: PathBuf::from(format!("/t/{name}")),
            dir: PathBuf::from("/w"),
        }
    }

    #[test]
    fn test_programs_are_read_from_cargo_messages() {
        let json = r#"{"reason":"compiler-artifact","package_id":"x","manifest_path":"/w/crates/card/Cargo.toml","target":{"kind":["lib"],"name":"k8r_card"},"profile":{"test":true},"executable":"/w/target/debug/deps/k8r_card-1"}
{"reason":"compiler-artifact","manifest_path":"/w/crates/card/Cargo.toml","target":{"kind":["lib"],"name":"k8r_card"},"profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","manifest_path":"/w/crates/tests/Cargo.toml","target":{"kind":["test"],"name":"qemu_install"},"profile":{"test":true},"executable":"/w/target/debug/deps/qemu_install-2"}
{"reason":"compiler-artifact","manifest_path":"/w/crates/tests/Cargo.toml","target":{"kind":["lib"],"name":"k8r_tests"},"profile":{"test":true},"executable":null}
{"reason":"build-finished","success":true}
   Compiling k8r-card v0.1.0"#;
        let got = programs_from_json(json).expect("parse");
        assert_eq!(
            got,
            vec![
                Program {
                    name: "card/k8r_card".into(),
                    path: "/w/target/debug/deps/k8r_card-1".into(),
                    dir: "/w/crates/card".into(),
                },
                Program {
                    name: "tests/qemu_install".into(),
                    path: "/w/target/debug/deps/qemu_install-2".into(),
                    dir: "/w/crates/tests".into(),
                },
            ]
        );
        assert!(programs_from_json("{not json").is_err());
    }

    #[test]
    fn measured_times_order_the_run_longest_first_and_hints_stand_in_for_a_first_run() {
        let all = vec![
            program("card/k8r_card"),
            program("tests/host_assemble"),
            program("tests/qemu_install"),
            program("tests/qemu_trial_rollback"),
            program("tests/qemu_zzz_new"),
        ];
        let first = order(all.clone(), &Times::default());
        let names: Vec<&str> = first.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tests/qemu_trial_rollback",
                "tests/qemu_install",
                "tests/qemu_zzz_new",
                "tests/host_assemble",
                "card/k8r_card"
            ]
        );
        let times = Times::parse("12.5\ttests/qemu_trial_rollback\n900\tcard/k8r_card\nbad line\n");
        let names: Vec<String> = order(all, &times).into_iter().map(|p| p.name).collect();
        assert_eq!(names[0], "card/k8r_card", "a measured time beats the hint");
        assert_eq!(names[4], "tests/qemu_trial_rollback");
    }

    #[test]
    fn times_round_trip_through_their_file() {
        let mut t = Times::default();
        t.0.insert("a/x".into(), 3.25);
        t.0.insert("b/y".into(), 40.0);
        let text = t.render();
        assert_eq!(text, "40.0\tb/y\n3.2\ta/x\n");
        let back = Times::parse(&text);
        assert_eq!(back.0.get("b/y"), Some(&40.0));
        assert!(Times::parse("-1\tneg\nNaN\tnan\n").0.is_empty());
    }

    #[test]
    fn two_lanes_run_every_program_once_and_sum_their_results() {
        let dir = std::env::temp_dir().join(format!("k8r-lanes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut programs = Vec::new();
        for (name, body) in [
            (
                "ok",
                "echo 'test result: ok. 3 passed; 0 failed; 0 ignored'",
            ),
            (
                "bad",
                "echo 'test result: FAILED. 1 passed; 2 failed;'; exit 101",
            ),
            ("crash", "exit 3"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
            let status = Command::new("chmod")
                .arg("+x")
                .arg(&path)
                .status()
                .expect("chmod");
            assert!(status.success());
            programs.push(Program {
                name: format!("t/{name}"),
                path,
                dir: dir.clone(),
            });
        }
        let (tally, times) = run(programs, 2, &[], &dir.join("logs")).expect("run");
        assert_eq!(
            tally,
            Tally {
                passed: 4,
                failed: 3
            },
            "2 failed, and a crash without a result line counts as 1"
        );
        assert_eq!(times.0.len(), 3);
        let log = std::fs::read_to_string(dir.join("logs/t--bad.log")).expect("log");
        assert!(log.contains("2 failed"), "{log}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
