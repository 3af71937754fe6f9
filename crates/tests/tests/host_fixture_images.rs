//! The fixture base images, checked without a VM: partition table, clean filesystems, the two
//! Ubuntu boot-partition shapes as the firmware model reads them, and the initrd made by the
//! `initramfs` crate as GNU cpio lists it.

use std::io::Read;
use std::process::Command;

use k8r_boot_config::firmware::{select_boot, BootRequest, Eeprom};
use k8r_boot_config::Board;
use k8r_builder::image::card::extract_partition;
use k8r_builder::process::run;
use k8r_qemu::card::Card;
use k8r_tests::{fat_partition, fixture, scratch, BASE_2404, BASE_2604};

#[test]
fn partition_tables_and_filesystems_are_clean() {
    for name in [BASE_2604, BASE_2404] {
        let card = fixture(name);
        let dump = run(Command::new("sfdisk").arg("-d").arg(&card)).expect("sfdisk");
        let dump = String::from_utf8_lossy(&dump.stdout);
        assert!(dump.contains("label: dos"), "{dump}");
        assert!(
            dump.contains("start=        2048, size=      131072, type=c"),
            "{dump}"
        );
        assert!(dump.contains("type=83"), "{dump}");
        assert_eq!(
            std::fs::metadata(&card).expect("meta").len().count_ones(),
            1,
            "power of two"
        );

        let dir = scratch(&format!("fsck-{name}"));
        let (boot, root) = (dir.join("p1"), dir.join("p2"));
        extract_partition(&card, 1, &boot).expect("p1");
        extract_partition(&card, 2, &root).expect("p2");
        run(Command::new("fsck.vfat").arg("-n").arg(&boot)).expect("fsck.vfat -n clean");
        run(Command::new("e2fsck").arg("-fn").arg(&root)).expect("e2fsck -fn clean");
        let label = run(Command::new("blkid")
            .args(["-o", "value", "-s", "LABEL"])
            .arg(&boot))
        .expect("blkid p1");
        assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "system-boot");
        let label = run(Command::new("blkid")
            .args(["-o", "value", "-s", "LABEL"])
            .arg(&root))
        .expect("blkid p2");
        assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "writable");
    }
}

#[test]
fn ubuntu_2604_shape_boots_through_os_prefix_current() {
    let card = fixture(BASE_2604);
    let fat = fat_partition(&card, 1).expect("p1");
    let config = String::from_utf8(fat.read("config.txt").expect("config")).expect("utf8");
    assert!(
        config.starts_with("[all]\nos_prefix=current/\n\n[tryboot]\nos_prefix=new/\n"),
        "{config}"
    );
    assert_eq!(
        fat.read("autoboot.txt").expect("autoboot"),
        b"[all]\ntryboot_a_b=1\n"
    );
    assert!(
        !fat.exists("vmlinuz").expect("exists"),
        "no flat kernel in the 26.04 shape"
    );

    let opened = Card::open(&card).expect("open");
    for board in [Board::Pi3, Board::Pi4] {
        let choice = select_boot(
            &opened.view(),
            BootRequest::default(),
            board,
            &Eeprom::default(),
        )
        .expect("boots");
        assert_eq!(choice.partition, 1);
        assert_eq!(choice.os_prefix, "current/");
        assert_eq!(choice.kernel, "current/vmlinuz");
        assert_eq!(choice.initramfs, vec!["current/initrd.img".to_owned()]);
        assert_eq!(
            choice.cmdline,
            "console=serial0,115200 root=LABEL=writable rootwait"
        );
    }
}

#[test]
fn ubuntu_2404_shape_is_flat() {
    let card = fixture(BASE_2404);
    let fat = fat_partition(&card, 1).expect("p1");
    let config = String::from_utf8(fat.read("config.txt").expect("config")).expect("utf8");
    assert!(config.contains("kernel=vmlinuz\n"), "{config}");
    assert!(
        config.contains("initramfs initrd.img followkernel\n"),
        "{config}"
    );
    assert!(!config.contains("os_prefix"), "{config}");
    assert!(!fat.exists("autoboot.txt").expect("exists"));
    let opened = Card::open(&card).expect("open");
    let choice = select_boot(
        &opened.view(),
        BootRequest::default(),
        Board::Pi4,
        &Eeprom::default(),
    )
    .expect("boots");
    assert_eq!(
        (choice.kernel.as_str(), choice.os_prefix.as_str()),
        ("vmlinuz", "")
    );
    assert_eq!(choice.dtb.as_deref(), Some("bcm2711-rpi-4-b.dtb"));
    let vmlinuz = fat.read("vmlinuz").expect("vmlinuz");
    assert_eq!(
        &vmlinuz[..2],
        &[0x1f, 0x8b],
        "gzip-compressed like Ubuntu's arm64 vmlinuz"
    );
}

#[test]
fn fixture_initrd_lists_under_gnu_cpio() {
    let fat = fat_partition(&fixture(BASE_2404), 1).expect("p1");
    let gz = fat.read("initrd.img").expect("initrd");
    let mut newc = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut newc)
        .expect("gunzip");
    let dir = scratch("initrd-cpio");
    let path = dir.join("initrd.cpio");
    std::fs::write(&path, &newc).expect("write");
    let out = run(Command::new("cpio")
        .args(["-t", "--quiet", "-F"])
        .arg(&path))
    .expect("cpio -t");
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    for want in [
        "init",
        "bin/busybox",
        "bin/sh",
        "dev/console",
        "lib/modules/load-order",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.ends_with("/ext4.ko")), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are written sorted");
}
