//! `cargo xtask build-image [ASSEMBLE ARGS]`: the README's build recipe as one command. It
//! builds what a card carries (the static aarch64 recovery installer and node agent) and
//! `k8r-builder` itself, all release builds, then runs `k8r-builder assemble` with them and
//! every argument given (e.g. `--config variables.cfg --out images`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::test;

/// The aarch64 target the card's programs are built for.
const TARGET: &str = "aarch64-unknown-linux-musl";

/// Host tools the build needs, with the Debian package that has each.
const TOOLS: [(&str, &str); 5] = [
    ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    ("mcopy", "mtools"),
    ("mkfs.vfat", "dosfstools"),
    ("debugfs", "e2fsprogs"),
    ("xz", "xz-utils"),
];

/// Builds the programs, then runs `k8r-builder assemble ARGS` in the current directory.
pub fn run(args: &[String]) -> Result<()> {
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|(tool, package)| format!("{tool} (Debian package {package})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing: {}; run `sudo cargo xtask setup` once (it installs them)",
            missing.join(", ")
        );
    }
    test::build_card_programs()?;
    test::cargo_build(
        "k8r-builder (release)",
        &["build", "--release", "-p", "k8r-builder"],
    )?;
    let target = k8r_qemu::assets::target_dir();
    let programs = target.join(TARGET).join("release");
    let mut cmd = Command::new(target.join("release/k8r-builder"));
    cmd.arg("assemble").args(args);
    if !given(args, "--installer") {
        cmd.arg("--installer").arg(programs.join("k8r-installer"));
    }
    if !given(args, "--agent") {
        cmd.arg("--agent").arg(programs.join("k8r"));
    }
    if !given(args, "--busybox") {
        // The recovery menu's shell: Debian's static arm64 busybox, if setup fetched it.
        match k8r_qemu::assets::Assets::discover().busybox() {
            Ok(busybox) => {
                cmd.arg("--busybox").arg(busybox);
            }
            Err(_) => log::warn!(
                "no static arm64 busybox (run `cargo xtask setup`): the recovery menu will \
                 have no shell"
            ),
        }
    }
    log::info!("build-image: k8r-builder assemble {}", args.join(" "));
    let status = cmd.status().context("running k8r-builder")?;
    if !status.success() {
        // k8r-builder said why.
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// Whether `flag` (or `flag=…`) is among `args`.
fn given(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| is_executable(&dir.join(tool))))
}

fn is_executable(path: &PathBuf) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_flags_are_not_added_twice() {
        let args: Vec<String> = ["--config", "v.cfg", "--agent=/a/k8r"]
            .map(str::to_owned)
            .to_vec();
        assert!(given(&args, "--agent"));
        assert!(given(&args, "--config"));
        assert!(!given(&args, "--installer"));
        assert!(!given(&args, "--agent-x"));
    }
}
