//! The recovery installer end to end in QEMU: card from `k8r-builder assemble` → boot 1 runs
//! the installer → p3 holds the manifest's bytes → boot 2 comes from p2 and reaches the
//! working root. The 2404 build is zstd, the others xz.

use std::time::Duration;

use k8r_builder::image::card::extract_partition;
use k8r_manifest::{Compression, Manifest};
use k8r_qemu::{Machine, MachineConfig, Profile};
use k8r_tests::{assemble_card, fat_partition, scratch, Built, BASE_2404, BASE_2604};

const INSTALL: Duration = Duration::from_secs(300);

fn manifest(built: &Built) -> Manifest {
    Manifest::parse(&std::fs::read_to_string(built.images.join("manifest.toml")).expect("read"))
        .expect("manifest")
}

/// p3's used ranges hash to the manifest's digests.
fn assert_root_matches(built: &Built, test: &str) {
    let m = manifest(built);
    let p3 = scratch(&format!("{test}-p3")).join("p3");
    extract_partition(&built.card, 3, &p3).expect("p3");
    let bytes = std::fs::read(&p3).expect("read p3");
    for r in &m.root.ranges {
        let (o, l) = (
            usize::try_from(r.offset).expect("o"),
            usize::try_from(r.length).expect("l"),
        );
        use sha2::Digest;
        let got = k8r_card::digest::hex(&sha2::Sha256::digest(&bytes[o..o + l]));
        assert_eq!(got, r.sha256, "range at {o}");
    }
    k8r_builder::image::ext4::check(&p3).expect("e2fsck -fn clean");
}

/// `(written, with O_DIRECT)` in MiB from the installer's line
/// `k8r: root written: N MiB in R ranges (D MiB with O_DIRECT), …`.
fn written_mib(console: &str) -> (u64, u64) {
    let line = console
        .lines()
        .find_map(|l| l.split_once("k8r: root written: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no 'root written' line in: {console}"));
    let number = |text: &str| -> u64 {
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number at the start of {text:?}"))
    };
    let direct = line
        .split_once('(')
        .map(|(_, d)| number(d))
        .unwrap_or_else(|| panic!("no O_DIRECT figure in {line:?}"));
    (number(line), direct)
}

fn install_then_working(test: &str, fixture: &str, profile: Profile, compression: Compression) {
    let built = assemble_card(
        test,
        fixture,
        &format!("COMPRESSION=\"{}\"\n", compression.name()),
    );
    let m = manifest(&built);
    assert_eq!(m.root.compression, compression);
    assert_eq!(m.root.file, compression.root_file());
    if profile == Profile::Raspi3b {
        // "Flash" the image onto a card: QEMU's SD card wants a power-of-two size.
        let len = std::fs::metadata(&built.card).expect("card").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&built.card)
            .expect("card");
        file.set_len(len.next_power_of_two()).expect("pad");
        // QEMU's raspi3b resets the moment the bcm2835 watchdog is started (the timer is not
        // emulated), so this run goes without it.
        let p1 = fat_partition(&built.card, 1).expect("p1");
        let cmd = String::from_utf8(p1.read("cmdline.txt").expect("cmdline")).expect("utf8");
        p1.write(
            "cmdline.txt",
            format!("{} k8r.watchdog=off\n", cmd.trim_end()).as_bytes(),
            0,
        )
        .expect("cmdline");
    }
    let disk = if profile == Profile::Raspi3b {
        "/dev/mmcblk0"
    } else {
        "/dev/vda"
    };
    let mut vm = Machine::start(MachineConfig::new(test, &built.card, profile)).expect("boot");
    let start = vm
        .expect("K8R-RECOVERY: writing the root partition", INSTALL)
        .expect("install starts");
    assert!(
        start.contains(&format!("K8R-RECOVERY: card {disk} holds K8R-RECOVER")),
        "{start}"
    );
    let written = vm
        .expect("k8r: read-back verified", INSTALL)
        .expect("root verified");
    // The builder's ext4 has 4 KiB blocks: every range is aligned, so all of it goes to the
    // card with O_DIRECT (the MiB figures are rounded down each).
    let (total, direct) = written_mib(&written);
    assert!(
        total > 0 && direct + 1 >= total && direct <= total,
        "{total} MiB written, {direct} MiB with O_DIRECT: {written}"
    );
    vm.expect("K8R-RECOVERY: install verified, rebooting", INSTALL)
        .expect("install done");
    // The guest has synced and is rebooting; the harness boots again only on the next wait,
    // so p3 is exactly what the installer left.
    assert_root_matches(&built, test);
    let line = vm
        .expect("K8R-FIXTURE-ROOT:", INSTALL)
        .expect("working system");
    assert!(
        line.contains("=== k8r-qemu: boot 2"),
        "a second boot: {line}"
    );
    let cmd = vm.expect("\n", INSTALL).expect("cmdline");
    let disk_id = format!(
        "{:08x}",
        k8r_builder::image::card::read_mbr(&built.card)
            .expect("mbr")
            .disk_id
    );
    assert!(
        cmd.contains(&format!("root=PARTUUID={disk_id}-03")),
        "{cmd}"
    );
    assert!(cmd.contains("cgroup_enable=memory"), "{cmd}");
    vm.expect("# ", INSTALL).expect("prompt");
    let (status, out) = vm
        .run_command(
            "cat /usr/lib/k8r/variables.cfg | grep -c K8S_VERSION",
            Duration::from_secs(30),
        )
        .expect("cmd");
    assert_eq!(
        (status, out.trim()),
        (0, "1"),
        "node configuration in the new root"
    );
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(Duration::from_secs(60))
        .expect("power off");
    let boots = vm.boots();
    assert_eq!(boots[0].choice.partition, 1, "boot 1: recovery");
    assert_eq!(boots[1].choice.partition, 2, "boot 2: the working system");
    let p1 = fat_partition(&built.card, 1).expect("p1");
    // Boot 2 came from the installer's one-shot request: autoboot.txt stays on recovery and the
    // trial stays pending (the fixture root runs no node agent to commit it).
    assert_eq!(
        (boots[1].request.partition, boots[1].request.tryboot),
        (2, false),
        "boot 2: the one-shot request"
    );
    let autoboot = p1.read("autoboot.txt").expect("autoboot");
    assert_eq!(autoboot, b"[all]\ntryboot_a_b=1\nboot_partition=1\n");
    let trial = String::from_utf8(p1.read("k8r/trial").expect("trial")).expect("utf8");
    assert!(trial.contains("kind=new\nphase=boot\n"), "{trial}");
    let log = String::from_utf8(p1.read("k8r/install.log").expect("log")).expect("utf8");
    assert!(log.contains("verified; booting it on trial"), "{log}");
}

#[test]
fn first_boot_installs_and_second_boot_reaches_the_working_system() {
    install_then_working("install-2604", BASE_2604, Profile::Virt, Compression::Xz);
}

/// The 2404 shape's build is zstd (`COMPRESSION="zstd"`): the installer decodes its frames
/// onto p3 as it does xz.
#[test]
fn first_boot_installs_a_zstd_build_from_the_2404_shape() {
    install_then_working("install-2404", BASE_2404, Profile::Virt, Compression::Zstd);
}

#[test]
fn first_boot_installs_on_raspi3b_from_the_sd_card() {
    install_then_working(
        "install-2604-raspi3b",
        BASE_2604,
        Profile::Raspi3b,
        Compression::Xz,
    );
}
