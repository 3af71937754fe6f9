//! The fixture base images boot through the harness: on `virt` (both Ubuntu shapes) and on
//! `raspi3b` (26.04 shape) to the root filesystem's marker; a command runs on the console;
//! `poweroff` ends QEMU.

use std::time::Duration;

use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::{scratch_card, BASE_2404, BASE_2604};

const BOOT: Duration = Duration::from_secs(180);
const CMD: Duration = Duration::from_secs(30);

fn boot_run_poweroff(test: &str, fixture: &str, profile: Profile, shape: &str, root_dev: &str) {
    let card = scratch_card(test, fixture);
    let mut vm = Machine::start(MachineConfig::new(test, &card, profile)).expect("boot");
    let marker = vm.expect("K8R-FIXTURE-ROOT:", BOOT).expect("root marker");
    assert!(
        marker.contains("K8R-FIXTURE-INITRD"),
        "the initrd ran first"
    );
    let line = vm.expect("\n", CMD).expect("marker line");
    assert!(line.contains(shape), "{line}");
    vm.expect("# ", CMD).expect("shell prompt");

    let (status, out) = vm
        .run_command("grep -c . /etc/os-release; cat /proc/mounts", CMD)
        .expect("command");
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains(&format!("{root_dev} / ext4")),
        "root on {root_dev}: {out}"
    );
    let (status, _) = vm.run_command("false", CMD).expect("false runs");
    assert_eq!(status, 1, "exit status comes back from the guest");

    vm.send("poweroff").expect("send poweroff");
    vm.wait_for_poweroff(Duration::from_secs(60))
        .expect("power off");
    assert_eq!(vm.boots().len(), 1, "one boot, no reboot");
    assert_eq!(vm.boots()[0].choice.partition, 1);
}

#[test]
fn ubuntu_2604_shape_boots_on_virt() {
    boot_run_poweroff(
        "boot-2604-virt",
        BASE_2604,
        Profile::Virt,
        "ubuntu-26.04-shape",
        "/dev/vda2",
    );
}

#[test]
fn ubuntu_2404_shape_boots_on_virt() {
    boot_run_poweroff(
        "boot-2404-virt",
        BASE_2404,
        Profile::Virt,
        "ubuntu-24.04-shape",
        "/dev/vda2",
    );
}

#[test]
fn ubuntu_2604_shape_boots_on_raspi3b_from_the_sd_card() {
    boot_run_poweroff(
        "boot-2604-raspi3b",
        BASE_2604,
        Profile::Raspi3b,
        "ubuntu-26.04-shape",
        "/dev/mmcblk0p2",
    );
}
