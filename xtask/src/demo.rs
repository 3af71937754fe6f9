//! `cargo xtask demo`: the whole story so far, on the console, for a newcomer.
//!
//! 1. `k8r-builder assemble` a golden card from the Ubuntu 26.04-shaped base (its root is real
//!    systemd from Debian's arm64 packages) and an example configuration; the Kubernetes
//!    downloads come from a 127.0.0.1 server playing dl.k8s.io and GitHub.
//! 2. Boot it as the master, the way a Pi 4's firmware would: the recovery installer writes
//!    the working system, which boots; the node agent `k8r` grows the data partition and runs
//!    `kubeadm init`. Show the join command and `k8r status`.
//! 3. `k8r-builder inject` that join command into a copy of the card (seconds, no rebuild)
//!    and boot it as a worker: it joins.
//! 4. Build a newer image (Kubernetes 1.32.1), hand it to the master on a USB stick (a second
//!    disk), `k8r update-image /mnt`, `k8r reinstall`: the master comes back through recovery
//!    with its cluster and upgrades it.
//!
//! `kubeadm`, `kubectl`, the kubelet and containerd are the project's recording stand-ins
//! (docs/standins.md); everything of k8r's is real.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8r_builder::image::{fat, MIB};
use k8r_qemu::assets::{fixtures_dir, target_dir};
use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::http::Server;
use k8r_tests::node::{grow_card, wait_bootstrap, EXTRA_CARD};

use crate::{fixtures, root, setup, test};

const WAIT: Duration = Duration::from_secs(900);
const CMD: Duration = Duration::from_secs(180);

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
    let base = fixtures_dir().join(k8r_tests::BASE_2604_SYSTEMD);
    let config = k8r_tests::test_config(&server, &base, "POD_NETWORK_CIDR=\"10.244.0.0/16\"\n");
    std::fs::write(dir.join("variables.cfg"), &config)?;

    say("1. k8r-builder assemble: vendor image + variables.cfg -> golden card and upgrade artefacts");
    println!("variables.cfg:\n{config}");
    assemble(&dir, "variables.cfg", "images")?;
    let card = dir.join("images/bootable_image.img");
    builder(&dir, &["inspect", &card.display().to_string()])?;

    say("2. the master: flash the card (onto a larger SD card) and boot it");
    let master = dir.join("master.img");
    std::fs::copy(&card, &master)?;
    grow_card(&master, EXTRA_CARD);
    let guest_net = Server::start().context("starting the guest network's server")?;
    let mut vm = machine("demo-master", &master, &guest_net, None)?;
    vm.expect("K8R-RECOVERY: install verified", WAIT)?;
    wait_bootstrap(&mut vm)?;
    let join = command(&mut vm, "k8r join-command")?;
    command(&mut vm, "k8r status; ls -l /usr/lib/k8r/join_string")?;

    say("3. a worker: k8r-builder inject the join command into a copy of the card, boot it");
    let worker = dir.join("worker.img");
    std::fs::copy(&card, &worker)?;
    grow_card(&worker, EXTRA_CARD);
    let worker_cfg = format!("{config}KUBEADM_JOIN_STRING=\"{}\"\n", join.trim());
    std::fs::write(dir.join("worker.cfg"), worker_cfg)?;
    builder(
        &dir,
        &[
            "inject",
            "--image",
            &worker.display().to_string(),
            "--config",
            "worker.cfg",
        ],
    )?;
    {
        let mut w = machine("demo-worker", &worker, &guest_net, None)?;
        w.expect("K8R-RECOVERY: install verified", WAIT)?;
        wait_bootstrap(&mut w)?;
        command(
            &mut w,
            "k8r status; grep '^kubeadm join' /var/log/k8r-standin.log",
        )?;
        w.send("poweroff")?;
        w.wait_for_poweroff(WAIT)?;
    }

    say("4. an upgrade: a newer image on a USB stick, k8r update-image, k8r reinstall");
    let next_cfg = config.replace("K8S_VERSION=\"1.31.2\"", "K8S_VERSION=\"1.32.1\"");
    std::fs::write(dir.join("next.cfg"), &next_cfg)?;
    assemble(&dir, "next.cfg", "next")?;
    let stick = usb_stick(&dir, &dir.join("next"))?;
    vm.send("poweroff")?;
    vm.wait_for_poweroff(WAIT)?;
    drop(vm);
    let mut vm = machine("demo-master-upgrade", &master, &guest_net, Some(stick))?;
    wait_bootstrap(&mut vm)?;
    command(
        &mut vm,
        "mkdir -p /mnt/usb && mount -o ro /dev/vdb /mnt/usb && ls /mnt/usb",
    )?;
    command(&mut vm, "k8r update-image /mnt/usb && k8r status")?;
    vm.send("umount /mnt/usb; k8r reinstall")?;
    vm.expect("K8R-RECOVERY: install verified", WAIT)?;
    wait_bootstrap(&mut vm)?;
    command(
        &mut vm,
        "k8r status; grep image: /etc/kubernetes/manifests/kube-apiserver.yaml",
    )?;
    vm.send("poweroff")?;
    vm.wait_for_poweroff(WAIT)?;
    println!();
    for (i, b) in vm.boots().iter().enumerate() {
        println!(
            "master boot {}: the firmware model chose partition {} ({}{})",
            i + 1,
            b.choice.partition,
            b.choice.config_file,
            if b.choice.os_prefix.is_empty() {
                String::new()
            } else {
                format!(", os_prefix {}", b.choice.os_prefix)
            }
        );
    }
    say("demo done");
    println!(
        "outputs in {}; console transcripts in {}",
        dir.display(),
        root().join("target/qemu/demo-*/console.log").display()
    );
    Ok(())
}

/// `k8r-builder assemble --config CONFIG --out OUT` in `dir`.
fn assemble(dir: &Path, config: &str, out: &str) -> Result<()> {
    let agent = target_dir().join("aarch64-unknown-linux-musl/release/k8r");
    let installer = target_dir().join("aarch64-unknown-linux-musl/release/k8r-installer");
    builder(
        dir,
        &[
            "assemble",
            "--config",
            config,
            "--out",
            out,
            "--cache-dir",
            "cache",
            "--xz-preset",
            "1",
            "--installer",
            &installer.display().to_string(),
            "--agent",
            &agent.display().to_string(),
        ],
    )
}

fn builder(dir: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new(target_dir().join("debug/k8r-builder"))
        .current_dir(dir)
        .args(args)
        .status()
        .context("running k8r-builder")?;
    if !status.success() {
        bail!("k8r-builder {} failed", args.first().unwrap_or(&""));
    }
    Ok(())
}

fn machine(name: &str, card: &Path, net: &Server, stick: Option<PathBuf>) -> Result<Machine> {
    let port = k8r_tests::node::port(&net.url());
    let mut cfg = MachineConfig::new(name, card, Profile::Virt).with_guest_http(port);
    cfg.echo = true;
    cfg.extra_disks.extend(stick);
    Ok(Machine::start(cfg)?)
}

/// Runs `line` on the guest's console; its output (already echoed) is returned.
fn command(vm: &mut Machine, line: &str) -> Result<String> {
    let (status, out) = vm.run_command(line, CMD)?;
    if status != 0 {
        bail!("`{line}` failed ({status}): {out}");
    }
    Ok(out)
}

/// A FAT "USB stick" holding the build's three files.
fn usb_stick(dir: &Path, build: &Path) -> Result<PathBuf> {
    let tree = dir.join("stick");
    std::fs::create_dir_all(&tree)?;
    let mut size = 0;
    for f in ["manifest.toml", "image.img.xz", "boot.tar.xz"] {
        size += std::fs::copy(build.join(f), tree.join(f))?;
    }
    let img = dir.join("stick.img");
    let stick = fat::format(
        &img,
        &fat::FatSpec {
            size: (size + 64 * MIB).div_ceil(MIB) * MIB,
            label: "K8R-UPDATE".into(),
            volume_id: 0x6b38_7203,
        },
    )?;
    stick.copy_tree(&tree, fixtures::EPOCH)?;
    Ok(img)
}
