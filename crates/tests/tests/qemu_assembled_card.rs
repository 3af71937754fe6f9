//! A card from `k8r-builder assemble` boots through the harness into its recovery partition,
//! whose initramfs runs the installer as PID 1: it loads every module, finds the card by its
//! recovery label and starts the countdown (the install itself: `qemu_install.rs`).

use std::time::Duration;

use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::{assemble_card, BASE_2404, BASE_2604};

fn boots_into_recovery(test: &str, fixture: &str) {
    let built = assemble_card(test, fixture, "");
    let mut vm =
        Machine::start(MachineConfig::new(test, &built.card, Profile::Virt)).expect("boot");
    let text = vm
        .expect(
            "K8R-RECOVERY: card /dev/vda holds K8R-RECOVER on partition 1",
            Duration::from_secs(180),
        )
        .expect("recovery found the card");
    assert!(
        text.contains("K8R-RECOVERY: k8r recovery installer"),
        "{text}"
    );
    assert!(
        !text.contains("warning:"),
        "every module loads, every mount works: {text}"
    );
    vm.expect("any key for menu", Duration::from_secs(60))
        .expect("countdown");
    vm.power_cut();
    let boot = &vm.boots()[0].choice;
    assert_eq!(boot.partition, 1, "first boot goes to recovery");
    assert_eq!(boot.kernel, "vmlinuz");
    assert_eq!(boot.initramfs, vec!["k8r-recovery.img".to_owned()]);
}

#[test]
fn card_from_2604_base_boots_into_recovery() {
    boots_into_recovery("assembled-2604", BASE_2604);
}

#[test]
fn card_from_2404_base_boots_into_recovery() {
    boots_into_recovery("assembled-2404", BASE_2404);
}
