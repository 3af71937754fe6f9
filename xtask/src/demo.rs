//! `cargo xtask demo`: the story so far, for a newcomer.
//!
//! 1. Build a golden card with `k8r-builder assemble` from the Ubuntu 26.04-shaped fixture and
//!    an example configuration; the Kubernetes downloads come from a 127.0.0.1 server playing
//!    dl.k8s.io and GitHub (fixture stand-ins, checked against their published digests).
//! 2. `k8r-builder inspect` the card.
//! 3. Boot it in QEMU the way a Pi 4's firmware would: `autoboot.txt` sends the first boot to
//!    the recovery partition, whose initramfs runs the k8r installer as PID 1: it writes the
//!    root (used ranges only, verified, read back), recreates the boot partition, flips
//!    `autoboot.txt` and reboots; the second boot reaches the working system.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8r_qemu::assets::target_dir;
use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::http::Server;

use crate::{fixtures, root, setup, test};

fn say(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

/// Runs the demo.
pub fn run() -> Result<()> {
    setup::run()?;
    fixtures::run()?;
    test::build_binaries()?;
    let dir = target_dir().join("demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let server =
        Server::serve_dir(fixtures::mirror_dir()).context("starting the artefact server")?;
    let base = k8r_qemu::assets::fixtures_dir().join("base-arm64.img");
    let config = k8r_tests::test_config(
        &server,
        &base,
        "CONTROL_PLANE_ENDPOINT=\"k8s-master.lan:6443\"\nPOD_NETWORK_CIDR=\"10.244.0.0/16\"\n",
    );
    std::fs::write(dir.join("variables.cfg"), &config)?;
    say("1. k8r-builder assemble: vendor image + variables.cfg -> golden card and upgrade artefacts");
    println!("variables.cfg:\n{config}");
    let builder = target_dir().join("debug/k8r-builder");
    let installer = target_dir().join("aarch64-unknown-linux-musl/release/k8r-installer");
    let status = Command::new(&builder)
        .current_dir(&dir)
        .args([
            "assemble",
            "--config",
            "variables.cfg",
            "--out",
            "images",
            "--cache-dir",
            "cache",
        ])
        .args([
            "--trust-unpinned-manifest",
            "--xz-preset",
            "1",
            "--installer",
        ])
        .arg(&installer)
        .arg("--agent")
        .arg(target_dir().join("aarch64-unknown-linux-musl/release/k8r"))
        .status()
        .context("running k8r-builder")?;
    if !status.success() {
        bail!("k8r-builder assemble failed");
    }
    let card = dir.join("images/bootable_image.img");
    say("2. k8r-builder inspect images/bootable_image.img");
    Command::new(&builder).arg("inspect").arg(&card).status()?;
    say("3. first boot: autoboot.txt -> recovery partition -> the installer writes the working system; second boot: the working system");
    boot(&card)?;
    say("demo done");
    println!(
        "outputs in {}; console transcript in {}",
        dir.join("images").display(),
        root().join("target/qemu/demo/console.log").display()
    );
    Ok(())
}

fn boot(card: &Path) -> Result<()> {
    let mut cfg = MachineConfig::new("demo", card, Profile::Virt);
    cfg.echo = true;
    let mut vm = Machine::start(cfg)?;
    vm.expect(
        "K8R-RECOVERY: install verified, rebooting",
        Duration::from_secs(300),
    )?;
    vm.expect("K8R-FIXTURE-ROOT:", Duration::from_secs(180))?;
    vm.expect("# ", Duration::from_secs(60))?;
    vm.send("cat /proc/cmdline; ls -l /usr/local/bin /usr/lib/k8r; poweroff")?;
    vm.wait_for_poweroff(Duration::from_secs(60))?;
    println!();
    for (i, b) in vm.boots().iter().enumerate() {
        let c = &b.choice;
        println!(
            "boot {}: firmware model chose partition {} ({}{}), kernel {}, initramfs {:?}",
            i + 1,
            c.partition,
            c.config_file,
            if c.os_prefix.is_empty() {
                String::new()
            } else {
                format!(", os_prefix {}", c.os_prefix)
            },
            c.kernel,
            c.initramfs
        );
    }
    Ok(())
}
