//! The README's "Building images" recipe, run as a user would: its shell lines, in order, in a
//! directory holding `variables.cfg.example`. The user's edit ("set IMAGE and K8S_VERSION")
//! points IMAGE at the fixture base; K8S_VERSION is set to a version the mirror serves, and the
//! three download URL keys are pointed at the 127.0.0.1 mirror (dl.k8s.io and GitHub cannot be
//! reached here). Every other key keeps the example's value or its default: no trust flag, no
//! pinned versions.
//!
//! `cargo xtask` is `cargo run -p xtask --`: the test runs the xtask program that alias runs
//! (a `cargo` inside `cargo test` would wait for the build lock the test run holds). The
//! program then runs `cargo build --release` itself, as it does for a user.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8r_qemu::assets::{target_dir, workspace_root};
use k8r_tests::{fixture, mirror_server, scratch, BASE_2604, TEST_EPOCH};

/// The shell lines of the first ```sh block under `## Building images`, comments removed.
fn recipe(readme: &str) -> Vec<String> {
    let section = readme
        .split("## Building images")
        .nth(1)
        .expect("README has a Building images section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in Building images");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn xtask_bin() -> PathBuf {
    let path = target_dir().join("debug/xtask");
    assert!(
        path.exists(),
        "{} is missing: run this through `cargo xtask test`",
        path.display()
    );
    path
}

/// The user's edit of the copied example: IMAGE, K8S_VERSION and the mirror URLs.
fn set_keys(config: &Path, base: &Path, mirror: &str) {
    let text = std::fs::read_to_string(config).expect("variables.cfg");
    let mut out = String::new();
    for line in text.lines() {
        let line = if line.starts_with("IMAGE=") {
            format!("IMAGE=\"{}\"", base.display())
        } else if line.starts_with("K8S_VERSION=") {
            "K8S_VERSION=\"1.31.2\"".to_owned()
        } else if let Some(key) = ["K8S_RELEASE_URL", "GITHUB_URL", "GITHUB_RAW_URL"]
            .iter()
            .find(|k| line.starts_with(&format!("#{k}=")))
        {
            let path = match *key {
                "K8S_RELEASE_URL" => "k8s",
                "GITHUB_URL" => "github",
                _ => "raw",
            };
            format!("{key}=\"{mirror}/{path}\"")
        } else {
            line.to_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    for key in [
        "IMAGE=",
        "K8S_VERSION=",
        "K8S_RELEASE_URL=",
        "GITHUB_URL=",
        "GITHUB_RAW_URL=",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(key)),
            "variables.cfg.example has no {key} line to set"
        );
    }
    std::fs::write(config, out).expect("write variables.cfg");
}

#[test]
fn the_readme_build_recipe_works_with_the_default_keys() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let lines = recipe(&readme);
    assert_eq!(
        lines,
        [
            "cp variables.cfg.example variables.cfg",
            "cargo xtask build-image --config variables.cfg"
        ],
        "the recipe this test runs"
    );
    let dir = scratch("readme-recipe");
    std::fs::copy(
        root.join("variables.cfg.example"),
        dir.join("variables.cfg.example"),
    )
    .expect("example");
    let cache = dir.join("cache");
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut cmd = match words.as_slice() {
            ["cargo", "xtask", rest @ ..] => {
                let mut c = Command::new(xtask_bin());
                c.args(rest);
                c
            }
            [program, rest @ ..] => {
                let mut c = Command::new(program);
                c.args(rest);
                c
            }
            [] => unreachable!("empty lines are filtered"),
        };
        // What cargo sets for this test is not the user's environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("CARGO_") && key != "CARGO_HOME" {
                cmd.env_remove(key);
            }
        }
        let out = cmd
            .current_dir(&dir)
            .env("XDG_CACHE_HOME", &cache)
            .env("SOURCE_DATE_EPOCH", TEST_EPOCH.to_string())
            .output()
            .expect(line);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "`{line}` failed:\n{stderr}");
        if line.starts_with("cp ") {
            set_keys(
                &dir.join("variables.cfg"),
                &fixture(BASE_2604),
                &mirror_server().url(),
            );
        } else {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("build ") && stdout.contains(" done:"),
                "{stdout}"
            );
        }
    }
    let images = dir.join("images");
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&images)
        .output()
        .expect("sha256sum");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let lock = std::fs::read_to_string(dir.join("variables.lock")).expect("variables.lock");
    for name in ["calico.yaml", "crictl", "kubeadm"] {
        assert!(lock.contains(name), "{name} locked: {lock}");
    }
    assert!(
        lock.contains("first-download"),
        "calico's digest was recorded on first download: {lock}"
    );
}
