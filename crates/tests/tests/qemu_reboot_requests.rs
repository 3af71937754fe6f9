//! The harness emulates the Pi's reboot register and one-shot tryboot flag: a guest that prints
//! a reboot request for partition N is booted from partition N next; a tryboot request is
//! honoured once and then forgotten.

use std::time::Duration;

use k8r_boot_config::firmware::BootRequest;
use k8r_builder::image::card::{assemble, extract_partition, PartitionSource};
use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::{fat_partition, fixture, scratch, scratch_card, BASE_2404, BASE_2604};

const BOOT: Duration = Duration::from_secs(180);

/// Waits for the root marker and returns its line (which carries /proc/cmdline).
fn root_line(vm: &mut Machine) -> String {
    vm.expect("K8R-FIXTURE-ROOT:", BOOT).expect("root marker");
    let line = vm.expect("\n", BOOT).expect("marker line");
    vm.expect("# ", BOOT).expect("prompt");
    line
}

#[test]
fn reboot_request_selects_the_partition_once() {
    // A card with two boot partitions: p1 and p2 (a copy of p1 whose cmdline is marked), root p3.
    let dir = scratch("reboot-partition");
    let base = fixture(BASE_2404);
    let (boot1, boot2, root) = (dir.join("p1.img"), dir.join("p2.img"), dir.join("p3.img"));
    extract_partition(&base, 1, &boot1).expect("extract boot");
    extract_partition(&base, 1, &boot2).expect("extract boot copy");
    extract_partition(&base, 2, &root).expect("extract root");
    let p2 = k8r_builder::image::fat::FatImage::file(&boot2);
    let cmdline = String::from_utf8(p2.read("cmdline.txt").expect("cmdline")).expect("utf8");
    let marked = format!("{} k8r.slot=p2\n", cmdline.trim_end());
    p2.write("cmdline.txt", marked.as_bytes(), 0)
        .expect("mark p2");
    let card = dir.join("card.img");
    let part = |type_id, content| PartitionSource {
        type_id,
        content,
        size: None,
    };
    assemble(
        &card,
        0x5eed_0002,
        &[part(0x0c, &boot1), part(0x0c, &boot2), part(0x83, &root)],
        None,
    )
    .expect("assemble");

    let mut vm =
        Machine::start(MachineConfig::new("reboot-partition", &card, Profile::Virt)).expect("boot");
    assert!(!root_line(&mut vm).contains("k8r.slot=p2"));
    vm.send("k8r-reboot-to 2").expect("send");
    assert!(root_line(&mut vm).contains("k8r.slot=p2"), "booted from p2");
    vm.send("reboot -f").expect("send");
    assert!(!root_line(&mut vm).contains("k8r.slot=p2"), "back to p1");
    vm.send("poweroff").expect("send");
    vm.wait_for_poweroff(Duration::from_secs(60))
        .expect("power off");

    let boots = vm.boots();
    assert_eq!(boots.len(), 3);
    assert_eq!(
        boots[1].request,
        BootRequest {
            partition: 2,
            tryboot: false
        }
    );
    assert_eq!(boots[1].choice.partition, 2);
    assert_eq!(
        boots[2].request,
        BootRequest::default(),
        "a plain reboot asks for nothing"
    );
    assert_eq!(boots[2].choice.partition, 1);
}

#[test]
fn tryboot_is_honoured_once_then_forgotten() {
    // Ubuntu 26.04's own kernel A/B: `[tryboot] os_prefix=new/` with `tryboot_a_b=1`.
    let card = scratch_card("tryboot", BASE_2604);
    let fat = fat_partition(&card, 1).expect("p1");
    for file in [
        "vmlinuz",
        "initrd.img",
        "bcm2711-rpi-4-b.dtb",
        "bcm2710-rpi-3-b.dtb",
    ] {
        let data = fat.read(&format!("current/{file}")).expect("read current");
        fat.write(&format!("new/{file}"), &data, 0)
            .expect("write new");
    }
    let cmdline =
        String::from_utf8(fat.read("current/cmdline.txt").expect("cmdline")).expect("utf8");
    let marked = format!("{} k8r.slot=new\n", cmdline.trim_end());
    fat.write("new/cmdline.txt", marked.as_bytes(), 0)
        .expect("new cmdline");

    let mut vm = Machine::start(MachineConfig::new("tryboot", &card, Profile::Virt)).expect("boot");
    assert!(!root_line(&mut vm).contains("k8r.slot=new"));
    vm.send("k8r-reboot-to 0 tryboot").expect("send");
    assert!(
        root_line(&mut vm).contains("k8r.slot=new"),
        "tryboot boots new/"
    );
    vm.send("reboot -f").expect("send");
    assert!(
        !root_line(&mut vm).contains("k8r.slot=new"),
        "the flag was one-shot"
    );
    vm.send("poweroff").expect("send");
    vm.wait_for_poweroff(Duration::from_secs(60))
        .expect("power off");

    let boots = vm.boots();
    assert_eq!(boots.len(), 3);
    assert_eq!(boots[0].choice.os_prefix, "current/");
    assert!(boots[1].choice.tryboot);
    assert_eq!(boots[1].choice.os_prefix, "new/");
    assert_eq!(
        boots[1].choice.config_file, "config.txt",
        "tryboot_a_b=1 keeps config.txt"
    );
    assert!(!boots[2].choice.tryboot);
    assert_eq!(boots[2].choice.os_prefix, "current/");
}

#[test]
fn a_card_the_firmware_would_not_boot_is_refused_with_the_reason() {
    let card = scratch_card("no-boot", BASE_2404);
    fat_partition(&card, 1)
        .expect("p1")
        .remove("start4.elf")
        .expect("remove start4.elf");
    let err = Machine::start(MachineConfig::new("no-boot", &card, Profile::Virt))
        .expect_err("a Pi 4 needs start4.elf");
    let msg = err.to_string();
    assert!(msg.contains("start4.elf"), "{msg}");
}
