//! `cargo xtask demo`: the story so far, for a newcomer. Today: boot the Ubuntu 26.04-shaped
//! fixture card the way a Pi 4's firmware would, show its console, run a command, power off.

use std::time::Duration;

use anyhow::{Context, Result};
use k8r_qemu::assets::target_dir;
use k8r_qemu::{Machine, MachineConfig, Profile};

use crate::{fixtures, setup};

/// Runs the demo.
pub fn run() -> Result<()> {
    setup::run()?;
    let images = fixtures::run()?;
    let base = images.first().context("no fixture image")?;
    let card = target_dir().join("demo").join("card.img");
    std::fs::create_dir_all(card.parent().context("card path")?)?;
    std::fs::copy(base, &card).with_context(|| format!("copying {}", base.display()))?;
    println!(
        "\n== k8r demo: booting {} (a copy of the Ubuntu 26.04-shaped fixture)",
        card.display()
    );
    println!(
        "== the harness reads the card's MBR and FAT, applies the Pi firmware model, starts QEMU\n"
    );
    let mut cfg = MachineConfig::new("demo", &card, Profile::Virt);
    cfg.echo = true;
    let mut vm = Machine::start(cfg)?;
    let boot = vm.boots().first().context("no boot")?.choice.clone();
    vm.expect("K8R-FIXTURE-ROOT", Duration::from_secs(120))?;
    vm.expect("# ", Duration::from_secs(30))?;
    vm.send("cat /etc/os-release; uname -r; ls /boot/firmware; echo DEMO-DONE")?;
    vm.expect("DEMO-DONE\r", Duration::from_secs(30))
        .or_else(|_| vm.expect("DEMO-DONE", Duration::from_secs(5)))?;
    vm.send("poweroff")?;
    vm.wait_for_poweroff(Duration::from_secs(60))?;
    println!("\n== demo done: the firmware model chose partition {} via {} (os_prefix {:?}), kernel {}, initramfs {:?}",
        boot.partition, boot.config_file, boot.os_prefix, boot.kernel, boot.initramfs);
    println!("== transcript: {}", vm.transcript_path().display());
    Ok(())
}
