//! `cargo xtask setup`: apt packages, the Rust target, the guest kernel, the arm64 packages of
//! the systemd fixture. Each step says what it
//! does, skips itself when its result is already there, and names itself when it fails.

use std::process::Command;

use anyhow::{bail, Context, Result};
use k8r_builder::process::run as run_cmd;

use crate::kernel;

/// Debian packages and a command each provides (present = nothing to install).
const PACKAGES: &[(&str, &str)] = &[
    ("gcc-aarch64-linux-gnu", "aarch64-linux-gnu-gcc"),
    (
        "libc6-dev-arm64-cross",
        "/usr/aarch64-linux-gnu/lib/libc.so.6",
    ),
    ("qemu-system-arm", "qemu-system-aarch64"),
    ("kmod", "depmod"),
    ("e2fsprogs", "debugfs"),
    ("dosfstools", "mkfs.vfat"),
    ("mtools", "mcopy"),
    ("fdisk", "sfdisk"),
    ("xz-utils", "xz"),
    ("cpio", "cpio"),
    // systemd-analyze verify checks unit files on the host (crates/tests/src/systemd.rs).
    ("systemd", "systemd-analyze"),
    // The QEMU harness relays the guest's forwarded HTTP connections (MachineConfig::guest_http).
    ("socat", "socat"),
    // `cargo xtask bench` compares with bmaptool and reads peak memory with GNU time.
    ("bmap-tools", "bmaptool"),
    ("time", "/usr/bin/time"),
    // The builder's zstd artefacts are read back with the real zstd (and bmaptool uses it).
    ("zstd", "zstd"),
    // host_builder_signing checks the builder's signatures with the real minisign.
    ("minisign", "minisign"),
];

/// Runs every setup step.
pub fn run() -> Result<()> {
    step("apt packages", apt_packages)?;
    step("rust target aarch64-unknown-linux-musl", rust_target)?;
    step("guest kernel (Debian arm64)", kernel::fetch)?;
    step(
        "systemd userland packages (Debian arm64)",
        crate::fixtures::systemd::fetch_packages,
    )?;
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    f().with_context(|| format!("setup step '{name}' failed"))
}

/// Whether `tool` (a command name or an absolute path) is present.
pub fn have(tool: &str) -> bool {
    if tool.starts_with('/') {
        return std::path::Path::new(tool).exists();
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .any(|dir| dir.join(tool).is_file())
    })
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, tool)| !have(tool))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        log::info!("setup: apt packages: all present");
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing packages {}; run `cargo xtask setup` as root, or: apt-get install {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    log::info!("setup: apt-get update");
    run_cmd(Command::new("apt-get").arg("update")).context("apt-get update")?;
    let mut install: Vec<String> = missing.iter().map(|s| (*s).to_owned()).collect();
    if missing.contains(&"qemu-system-arm") {
        // Installing qemu-system-* next to a newer preinstalled qemu-utils breaks (qemu-utils
        // Breaks older qemu-system-common): pin qemu-utils to the same version in one line.
        let version = candidate_version("qemu-system-arm")?;
        install.push(format!("qemu-utils={version}"));
        install.push(format!("qemu-block-extra={version}"));
    }
    log::info!("setup: apt-get install {}", install.join(" "));
    run_cmd(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "--no-install-recommends",
                "--allow-downgrades",
            ])
            .args(&install),
    )
    .context("apt-get install")?;
    let still: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, tool)| !have(tool))
        .map(|(_, tool)| *tool)
        .collect();
    if !still.is_empty() {
        bail!("installed, but still missing: {}", still.join(" "));
    }
    Ok(())
}

fn candidate_version(package: &str) -> Result<String> {
    let out = run_cmd(Command::new("apt-cache").args(["policy", package]))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Candidate:")
                .map(|v| v.trim().to_owned())
        })
        .filter(|v| v != "(none)")
        .with_context(|| format!("apt has no candidate version of {package}"))
}

fn is_root() -> bool {
    run_cmd(Command::new("id").arg("-u"))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn rust_target() -> Result<()> {
    const TARGET: &str = "aarch64-unknown-linux-musl";
    let root = crate::root();
    let installed =
        run_cmd(
            Command::new("rustup")
                .current_dir(&root)
                .args(["target", "list", "--installed"]),
        )
        .context("rustup is needed to add the aarch64-musl target")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        log::info!("setup: rust target {TARGET}: present");
        return Ok(());
    }
    log::info!("setup: rustup target add {TARGET}");
    run_cmd(
        Command::new("rustup")
            .current_dir(&root)
            .args(["target", "add", TARGET]),
    )?;
    Ok(())
}
