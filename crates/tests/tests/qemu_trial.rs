//! The trial boot in QEMU: a verified install boots the working system once, on trial; a
//! build whose working system panics at boot (an injected init that exits at once, `panic=1`) comes back
//! to recovery on the panic's reset (no partition request), is retried once (the card holds no
//! previous build), then the card stops at the recovery menu with the reason. No console
//! input.

use std::time::Duration;

use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::{assemble_card, fat_partition, BASE_2404};

const WAIT: Duration = Duration::from_secs(300);

#[test]
fn a_build_whose_working_system_panics_is_retried_once_then_stops_at_the_menu() {
    let built = assemble_card("trial-panic", BASE_2404, "");
    let mut cfg = MachineConfig::new("trial-panic", &built.card, Profile::Virt);
    // Only boots not from partition 1 get it: the working system's first process (the initrd's
    // busybox echo instead of its /init) exits at once, and the kernel panics.
    cfg.extra_cmdline = "rdinit=/bin/echo panic=1".into();
    let mut vm = Machine::start(cfg).expect("boot");
    vm.expect("K8R-RECOVERY: install verified, rebooting", WAIT)
        .expect("first install");
    vm.expect("Rebooting in 1 seconds", WAIT)
        .expect("the working system panics");
    let retry = vm
        .expect("installing it once more", WAIT)
        .expect("recovery sees the failed trial");
    assert!(retry.contains("trial failed: build"), "{retry}");
    vm.expect("K8R-RECOVERY: install verified, rebooting", WAIT)
        .expect("the retry installs");
    vm.expect("Rebooting in 1 seconds", WAIT)
        .expect("it panics again");
    vm.expect("failed its trial twice", WAIT)
        .expect("stopped with the reason");
    let menu = vm.expect("choose 1-7:", WAIT).expect("menu");
    assert!(menu.contains("trial: build"), "{menu}");
    vm.power_cut();
    let boots = vm.boots();
    let parts: Vec<(u8, u8)> = boots
        .iter()
        .map(|b| (b.request.partition, b.choice.partition))
        .collect();
    assert_eq!(
        parts,
        vec![(0, 1), (2, 2), (0, 1), (2, 2), (0, 1)],
        "recovery, the one-shot trial boot, back to recovery on the panic's reset, twice"
    );
    let p1 = fat_partition(&built.card, 1).expect("p1");
    assert_eq!(
        p1.read("autoboot.txt").expect("autoboot"),
        b"[all]\ntryboot_a_b=1\nboot_partition=1\n",
        "never committed"
    );
    let trial = String::from_utf8(p1.read("k8r/trial").expect("trial")).expect("utf8");
    assert!(trial.contains("kind=retry\nphase=boot\n"), "{trial}");
    let log = String::from_utf8(p1.read("k8r/install.log").expect("log")).expect("utf8");
    assert!(log.contains("trial failed: build"), "{log}");
    assert!(log.contains("trial failed again:"), "{log}");
}
