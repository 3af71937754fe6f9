//! Selection-model tests: one card per case, built from in-memory partitions.

use super::*;
use crate::config_txt::InitramfsPlacement;

struct Card {
    parts: Vec<(u8, PartitionKind, MemFiles)>,
}

impl Card {
    fn new() -> Card {
        Card { parts: Vec::new() }
    }

    fn fat(mut self, number: u8, files: MemFiles) -> Card {
        self.parts.push((number, PartitionKind::Fat, files));
        self
    }

    fn other(mut self, number: u8) -> Card {
        self.parts.push((
            number,
            PartitionKind::Other,
            MemFiles::new().with("start4.elf", ""),
        ));
        self
    }

    fn select_with(
        &self,
        req: BootRequest,
        board: Board,
        eeprom: &Eeprom,
    ) -> Result<BootChoice, NoBoot> {
        let card = CardView {
            partitions: self
                .parts
                .iter()
                .map(|(number, kind, files)| PartitionView {
                    number: *number,
                    kind: *kind,
                    files,
                })
                .collect(),
        };
        select_boot(&card, req, board, eeprom)
    }

    fn select(&self, req: BootRequest, board: Board) -> Result<BootChoice, NoBoot> {
        self.select_with(req, board, &Eeprom::default())
    }

    fn boot(&self, req: BootRequest) -> BootChoice {
        self.select(req, Board::Pi4).expect("boots")
    }
}

fn req(partition: u8, tryboot: bool) -> BootRequest {
    BootRequest { partition, tryboot }
}

const NORMAL: BootRequest = BootRequest {
    partition: 0,
    tryboot: false,
};

/// A Pi 4 boot partition with default file names; `tag` goes into cmdline.txt.
fn pi4(tag: &str) -> MemFiles {
    MemFiles::new()
        .with("start4.elf", "fw")
        .with("fixup4.dat", "fw")
        .with("kernel8.img", "k")
        .with("bcm2711-rpi-4-b.dtb", "dtb")
        .with("config.txt", "[all]\n")
        .with("cmdline.txt", format!("root=/dev/{tag} rootwait\n"))
}

/// Three Pi 4 boot partitions, p1 with the given autoboot.txt (if any).
fn three_way(autoboot: Option<&[u8]>) -> Card {
    let mut p1 = pi4("p1");
    if let Some(bytes) = autoboot {
        p1.insert("autoboot.txt", bytes);
    }
    Card::new().fat(1, p1).fat(2, pi4("p2")).fat(3, pi4("p3"))
}

#[test]
fn missing_autoboot_boots_partition_1() {
    let choice = three_way(None).boot(NORMAL);
    assert_eq!(choice.partition, 1);
    assert_eq!(choice.config_file, "config.txt");
    assert_eq!(choice.kernel, "kernel8.img");
    assert_eq!(choice.dtb.as_deref(), Some("bcm2711-rpi-4-b.dtb"));
    assert_eq!(choice.cmdline, "root=/dev/p1 rootwait");
    assert_eq!(choice.cmdline_file, "cmdline.txt");
    assert!(choice.initramfs.is_empty());
    assert!(
        choice.trace.iter().any(|t| t.contains("no autoboot.txt")),
        "{:?}",
        choice.trace
    );
}

#[test]
fn autoboot_selects_partition() {
    let choice = three_way(Some(b"[all]\nboot_partition=2\n")).boot(NORMAL);
    assert_eq!(choice.partition, 2);
    assert_eq!(choice.cmdline, "root=/dev/p2 rootwait");
    let zero = three_way(Some(b"[all]\nboot_partition=0\n")).boot(NORMAL);
    assert_eq!(zero.partition, 1);
}

#[test]
fn torn_or_invalid_autoboot_boots_partition_1() {
    let mut oversized = b"[all]\nboot_partition=2\n".to_vec();
    oversized.resize(600, b'#');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("torn key", b"[all]\nboot_parti".to_vec()),
        ("torn value", b"[all]\nboot_partition=".to_vec()),
        ("garbage", vec![0xff, 0x00, 0x13, 0x80, 0xfe, b'\n', 0xc3]),
        ("empty", Vec::new()),
        ("over 512 bytes", oversized),
    ];
    for (name, bytes) in cases {
        let choice = three_way(Some(&bytes)).boot(NORMAL);
        assert_eq!(choice.partition, 1, "{name}: {:?}", choice.trace);
    }
}

#[test]
fn boot_partition_on_non_fat_partition() {
    let card = Card::new()
        .fat(1, pi4("p1").with("autoboot.txt", "boot_partition=2\n"))
        .other(2)
        .fat(3, pi4("p3"));
    let walk = card.boot(NORMAL);
    assert_eq!(
        walk.partition, 3,
        "walk goes to the next bootable: {:?}",
        walk.trace
    );
    assert!(walk
        .trace
        .iter()
        .any(|t| t.contains("partition walk chose partition 3")));

    let no_walk = Eeprom {
        partition: None,
        partition_walk: false,
    };
    let fallback = card
        .select_with(NORMAL, Board::Pi4, &no_walk)
        .expect("boots");
    assert_eq!(fallback.partition, 1, "no walk: default partition");
}

#[test]
fn boot_partition_on_fat_without_firmware() {
    let mut no_fw = pi4("p2");
    no_fw.remove("start4.elf");
    let card = Card::new()
        .fat(1, pi4("p1").with("autoboot.txt", "boot_partition=2\n"))
        .fat(2, no_fw)
        .fat(3, pi4("p3"));
    assert_eq!(card.boot(NORMAL).partition, 3);
    // The walk wraps around past 8 back to 1.
    let wrap = Card::new()
        .fat(1, pi4("p1").with("autoboot.txt", "boot_partition=4\n"))
        .other(4);
    assert_eq!(wrap.boot(NORMAL).partition, 1);
}

#[test]
fn autoboot_on_first_fat_without_firmware() {
    // RAUC-RT / rpi-eeprom#499 layout: p1 holds only autoboot.txt.
    let card = Card::new()
        .fat(
            1,
            MemFiles::new().with("autoboot.txt", "[all]\nboot_partition=3\n"),
        )
        .fat(2, pi4("p2"))
        .fat(3, pi4("p3"));
    assert_eq!(card.boot(NORMAL).partition, 3);
    let no_choice = Card::new()
        .fat(1, MemFiles::new().with("autoboot.txt", "# nothing\n"))
        .fat(2, pi4("p2"));
    assert_eq!(no_choice.boot(NORMAL).partition, 2);
}

#[test]
fn reboot_request_overrides_autoboot() {
    let card = three_way(Some(b"[all]\nboot_partition=2\n"));
    let choice = card.boot(req(3, false));
    assert_eq!(choice.partition, 3);
    assert!(!choice
        .trace
        .iter()
        .any(|t| t.contains("autoboot.txt boot_partition")));
    assert_eq!(card.boot(req(1, false)).partition, 1);
}

#[test]
fn eeprom_partition_precedence() {
    let eeprom = Eeprom {
        partition: Some(2),
        partition_walk: true,
    };
    let cases: &[(Option<&[u8]>, u8, u8, &str)] = &[
        (None, 0, 2, "nothing else chose: EEPROM"),
        (
            Some(b"boot_partition=3\n"),
            0,
            3,
            "autoboot.txt above EEPROM",
        ),
        (
            Some(b"boot_partition=0\n"),
            0,
            2,
            "boot_partition=0 leaves it to EEPROM",
        ),
        (
            Some(b"boot_partition=3\n"),
            1,
            1,
            "reboot number above EEPROM",
        ),
        (None, 3, 3, "reboot number above EEPROM"),
        (
            Some(b"boot_partition=3\n"),
            62,
            2,
            "EEPROM overrides a reboot number > 31",
        ),
    ];
    for (autoboot, reboot, expected, why) in cases {
        let choice = three_way(*autoboot)
            .select_with(req(*reboot, false), Board::Pi4, &eeprom)
            .expect("boots");
        assert_eq!(choice.partition, *expected, "{why}: {:?}", choice.trace);
    }
    // Without EEPROM PARTITION a high number is just a missing partition: walk from it.
    assert_eq!(three_way(None).boot(req(62, false)).partition, 1);
}

#[test]
fn partition_63_halts() {
    let eeprom = Eeprom {
        partition: Some(2),
        partition_walk: true,
    };
    assert_eq!(
        three_way(None).select(req(63, false), Board::Pi4),
        Err(NoBoot::Halt)
    );
    assert_eq!(
        three_way(None).select_with(req(63, true), Board::Pi4, &eeprom),
        Err(NoBoot::Halt)
    );
}

/// Ubuntu 25.10+/26.04 shape (UG-QUESTING): autoboot `tryboot_a_b=1`, config.txt with
/// `os_prefix=current/` and `[tryboot] os_prefix=new/`, assets under the prefixes.
fn ubuntu_ab(with_new_dtb: bool) -> Card {
    let config = "[all]\nos_prefix=current/\narm_64bit=1\nkernel=vmlinuz\ncmdline=cmdline.txt\ninitramfs initrd.img followkernel\n\n[tryboot]\nos_prefix=new/\n";
    let mut files = MemFiles::new()
        .with("start4.elf", "fw")
        .with("autoboot.txt", "[all]\ntryboot_a_b=1\n")
        .with("config.txt", config)
        .with("current/vmlinuz", "k1")
        .with("current/initrd.img", "i1")
        .with("current/bcm2711-rpi-4-b.dtb", "d1")
        .with("current/cmdline.txt", "root=LABEL=writable panic=10\n")
        .with("new/vmlinuz", "k2")
        .with("new/initrd.img", "i2")
        .with("new/cmdline.txt", "root=LABEL=writable new\n");
    if with_new_dtb {
        files.insert("new/bcm2711-rpi-4-b.dtb", "d2");
    }
    Card::new().fat(1, files).other(2)
}

#[test]
fn tryboot_a_b_uses_config_txt_tryboot_section() {
    let card = ubuntu_ab(true);
    let normal = card.boot(NORMAL);
    assert_eq!(normal.config_file, "config.txt");
    assert_eq!(normal.os_prefix, "current/");
    assert_eq!(normal.kernel, "current/vmlinuz");
    assert_eq!(normal.initramfs, ["current/initrd.img"]);
    assert_eq!(normal.dtb.as_deref(), Some("current/bcm2711-rpi-4-b.dtb"));
    assert_eq!(normal.cmdline_file, "current/cmdline.txt");
    assert_eq!(normal.cmdline, "root=LABEL=writable panic=10");
    assert!(!normal.tryboot);

    let tried = card.boot(req(0, true));
    assert!(tried.tryboot && tried.tryboot_a_b);
    assert_eq!(tried.partition, 1);
    assert_eq!(tried.config_file, "config.txt");
    assert_eq!(tried.os_prefix, "new/");
    assert_eq!(tried.kernel, "new/vmlinuz");
    assert_eq!(tried.initramfs, ["new/initrd.img"]);
    assert_eq!(tried.cmdline, "root=LABEL=writable new");
}

#[test]
fn os_prefix_dropped_when_dtb_missing_under_prefix() {
    let mut card = ubuntu_ab(false);
    // Top-level assets the firmware falls back to once the prefix is dropped.
    card.parts[0].2.insert("vmlinuz", "k0");
    card.parts[0].2.insert("initrd.img", "i0");
    card.parts[0].2.insert("cmdline.txt", "top level\n");
    let tried = card.boot(req(0, true));
    assert_eq!(tried.os_prefix, "");
    assert_eq!(tried.kernel, "vmlinuz");
    assert_eq!(tried.initramfs, ["initrd.img"]);
    assert_eq!(tried.cmdline, "top level");
    assert_eq!(tried.dtb, None);
    assert!(
        tried
            .trace
            .iter()
            .any(|t| t.contains("os_prefix=new/ dropped") && t.contains("new/bcm2711-rpi-4-b.dtb")),
        "{:?}",
        tried.trace
    );
}

#[test]
fn tryboot_without_a_b_reads_tryboot_txt() {
    let card = Card::new().fat(
        1,
        pi4("p1")
            .with("config.txt", "kernel=normal.img\n")
            .with("tryboot.txt", "kernel=try.img\n")
            .with("normal.img", "k")
            .with("try.img", "k"),
    );
    assert_eq!(card.boot(NORMAL).kernel, "normal.img");
    let tried = card.boot(req(0, true));
    assert_eq!(tried.config_file, "tryboot.txt");
    assert!(!tried.tryboot_a_b);
    assert_eq!(tried.kernel, "try.img");
}

#[test]
fn missing_tryboot_txt_means_firmware_defaults() {
    let card = Card::new().fat(1, pi4("p1").with("config.txt", "kernel=normal.img\n"));
    let tried = card.boot(req(0, true));
    assert_eq!(tried.config_file, "tryboot.txt");
    assert_eq!(tried.kernel, "kernel8.img");
    assert!(tried
        .trace
        .iter()
        .any(|t| t.contains("tryboot.txt missing")));
}

#[test]
fn autoboot_tryboot_section_selects_partition() {
    let card = three_way(Some(
        b"[all]\r\ntryboot_a_b=1\r\nboot_partition=2\r\n[tryboot]\r\nboot_partition=3\r\n",
    ));
    assert_eq!(card.boot(NORMAL).partition, 2);
    let tried = card.boot(req(0, true));
    assert_eq!(tried.partition, 3);
    assert_eq!(tried.config_file, "config.txt");
}

#[test]
fn boot_partition_filter_uses_chosen_partition() {
    let config = "[boot_partition=2]\nkernel=two.img\n[boot_partition=3]\nkernel=three.img\n";
    let part = |tag: &str| {
        pi4(tag)
            .with("config.txt", config)
            .with("two.img", "k")
            .with("three.img", "k")
    };
    let card = Card::new()
        .fat(1, part("p1").with("autoboot.txt", "boot_partition=3\n"))
        .fat(2, part("p2"))
        .fat(3, part("p3"));
    assert_eq!(card.boot(NORMAL).kernel, "three.img");
    assert_eq!(card.boot(req(2, false)).kernel, "two.img");
    assert_eq!(card.boot(req(1, false)).kernel, "kernel8.img");
}

#[test]
fn crlf_everywhere() {
    let card = Card::new()
        .fat(
            1,
            pi4("p1").with("autoboot.txt", "[all]\r\nboot_partition=2\r\n"),
        )
        .fat(
            2,
            pi4("p2")
                .with(
                    "config.txt",
                    "[all]\r\nkernel=vmlinuz\r\ninitramfs initrd.img followkernel\r\n",
                )
                .with("vmlinuz", "k")
                .with("initrd.img", "i")
                .with(
                    "cmdline.txt",
                    "console=ttyAMA0 root=PARTUUID=2d6b036c-03\r\nignored\r\n",
                ),
        );
    let choice = card.boot(NORMAL);
    assert_eq!(choice.partition, 2);
    assert_eq!(choice.kernel, "vmlinuz");
    assert_eq!(choice.initramfs, ["initrd.img"]);
    assert_eq!(choice.cmdline, "console=ttyAMA0 root=PARTUUID=2d6b036c-03");
}

#[test]
fn unknown_sections_do_not_apply() {
    let config = "[pi3+]\nkernel=bad1\n[pi02]\nkernel=bad2\n[gpio4=1]\nkernel=bad3\n[all]\nenable_uart=1\n[EDID=X]\nkernel=bad4\n";
    let card = Card::new().fat(1, pi4("p1").with("config.txt", config));
    let choice = card.boot(NORMAL);
    assert_eq!(choice.kernel, "kernel8.img");
    assert_eq!(choice.config.get("enable_uart"), Some("1"));
}

#[test]
fn ubuntu_2404_flat_shape() {
    let config = "[all]\narm_64bit=1\nkernel=vmlinuz\ncmdline=cmdline.txt\ninitramfs initrd.img followkernel\n\n[pi4]\nmax_framebuffers=2\narm_boost=1\n\n[cm4]\notg_mode=1\n";
    let common = MemFiles::new()
        .with("bootcode.bin", "fw")
        .with("start.elf", "fw")
        .with("start4.elf", "fw")
        .with("config.txt", config)
        .with("vmlinuz", "k")
        .with("initrd.img", "i")
        .with("bcm2710-rpi-3-b.dtb", "d")
        .with("bcm2711-rpi-4-b.dtb", "d")
        .with(
            "cmdline.txt",
            "console=serial0,115200 multipath=off dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable rootfstype=ext4 rootwait fixrtc\n",
        );
    let card = Card::new().fat(1, common).other(2);
    for (board, dtb) in [
        (Board::Pi3, "bcm2710-rpi-3-b.dtb"),
        (Board::Pi4, "bcm2711-rpi-4-b.dtb"),
    ] {
        let choice = card.select(NORMAL, board).expect("boots");
        assert_eq!(choice.partition, 1);
        assert_eq!(choice.kernel, "vmlinuz");
        assert_eq!(choice.initramfs, ["initrd.img"]);
        assert_eq!(
            choice.config.initramfs().map(|l| &l.placement),
            Some(&InitramfsPlacement::FollowKernel)
        );
        assert_eq!(choice.dtb.as_deref(), Some(dtb));
        assert!(choice.cmdline.ends_with("rootwait fixrtc"));
        assert_eq!(
            choice.config.get("arm_boost"),
            (board == Board::Pi4).then_some("1")
        );
        assert_eq!(choice.config.get("otg_mode"), None);
    }
}

#[test]
fn board_bootability_and_defaults() {
    let p1 = MemFiles::new()
        .with("start.elf", "fw")
        .with("kernel7.img", "k")
        .with("bcm2710-rpi-3-b.dtb", "d");
    let p2 = MemFiles::new()
        .with("start4.elf", "fw")
        .with("kernel8.img", "k")
        .with("bcm2711-rpi-4-b.dtb", "d");
    let p3 = MemFiles::new()
        .with("config.txt", "# pi5\n")
        .with("kernel_2712.img", "k")
        .with("bcm2712-rpi-5-b.dtb", "d");
    let card = Card::new().fat(1, p1).fat(2, p2).fat(3, p3);
    let cases = [
        (Board::Pi3, 1, "kernel7.img", "bcm2710-rpi-3-b.dtb"),
        (Board::Pi4, 2, "kernel8.img", "bcm2711-rpi-4-b.dtb"),
        (Board::Pi5, 3, "kernel_2712.img", "bcm2712-rpi-5-b.dtb"),
    ];
    for (board, partition, kernel, dtb) in cases {
        let choice = card.select(NORMAL, board).expect("boots");
        assert_eq!(choice.partition, partition, "{board:?}");
        assert_eq!(choice.kernel, kernel, "{board:?}");
        assert_eq!(choice.dtb.as_deref(), Some(dtb), "{board:?}");
    }
    // Pi 3 with arm_64bit=1 loads kernel8.img.
    let pi3_64 = Card::new().fat(
        1,
        MemFiles::new()
            .with("start.elf", "fw")
            .with("config.txt", "arm_64bit=1\n")
            .with("kernel8.img", "k"),
    );
    assert_eq!(
        pi3_64.select(NORMAL, Board::Pi3).expect("boots").kernel,
        "kernel8.img"
    );
    // A Pi 4 card is not bootable on a Pi 3 (no start.elf) and vice versa.
    let pi4_only = Card::new().fat(1, pi4("p1"));
    assert_eq!(
        pi4_only.select(NORMAL, Board::Pi3),
        Err(NoBoot::NoBootablePartition {
            marker: "start.elf"
        })
    );
}

#[test]
fn include_is_followed() {
    let card = Card::new().fat(
        1,
        pi4("p1")
            .with(
                "config.txt",
                "include extra.txt\ninclude gone.txt\ninclude Extra.txt\n",
            )
            .with("EXTRA.TXT", "[pi4]\nkernel=from-include.img\n")
            .with("from-include.img", "k"),
    );
    let choice = card.boot(NORMAL);
    assert_eq!(choice.kernel, "from-include.img");
    for line in [
        "include extra.txt read",
        "include gone.txt: not found, ignored",
        "include Extra.txt: already included once, not read again",
    ] {
        assert!(
            choice.trace.iter().any(|t| t == line),
            "{line:?} not in {:?}",
            choice.trace
        );
    }
}

/// A partition double that counts reads per (lowercased) path.
struct CountingFiles {
    inner: MemFiles,
    reads: std::cell::RefCell<std::collections::BTreeMap<String, usize>>,
}

impl CountingFiles {
    fn new(inner: MemFiles) -> CountingFiles {
        CountingFiles {
            inner,
            reads: std::cell::RefCell::default(),
        }
    }

    fn select(&self) -> Result<BootChoice, NoBoot> {
        let card = CardView {
            partitions: vec![PartitionView {
                number: 1,
                kind: PartitionKind::Fat,
                files: self,
            }],
        };
        select_boot(&card, NORMAL, Board::Pi4, &Eeprom::default())
    }

    /// Reads of files whose name starts with `prefix`: (files read, total reads).
    fn reads_of(&self, prefix: &str) -> (usize, usize) {
        let reads = self.reads.borrow();
        let counts: Vec<usize> = reads
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, n)| *n)
            .collect();
        (counts.len(), counts.iter().sum())
    }
}

impl FileLookup for CountingFiles {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        *self
            .reads
            .borrow_mut()
            .entry(path.to_ascii_lowercase())
            .or_default() += 1;
        self.inner.read(path)
    }

    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }
}

#[test]
fn a_hostile_include_fan_out_reads_each_file_once() {
    // config.txt and 20 included files each have 100 include lines over all 20 files.
    let lines: String = (0..100)
        .map(|i| format!("include inc{:02}.txt\n", i % 20))
        .collect();
    let mut files = pi4("p1").with("config.txt", &lines);
    for i in 0..20 {
        files.insert(&format!("inc{i:02}.txt"), format!("{lines}set{i}=1\n"));
    }
    let files = CountingFiles::new(files);
    let choice = files.select().expect("boots");
    assert_eq!(choice.kernel, "kernel8.img");
    assert_eq!(choice.config.get("set19"), Some("1"));
    assert_eq!(
        files.reads_of("inc"),
        (20, 20),
        "{:?}",
        files.reads.borrow()
    );
}

#[test]
fn too_many_included_files_is_no_boot_naming_the_file_and_the_cap() {
    let lines: String = (0..40)
        .map(|i| format!("include inc{i:02}.txt\n"))
        .collect();
    let mut files = pi4("p1").with("config.txt", &lines);
    for i in 0..40 {
        files.insert(&format!("inc{i:02}.txt"), "x=1\n");
    }
    let files = CountingFiles::new(files);
    let err = files.select().expect_err("over the cap");
    assert_eq!(
        err,
        NoBoot::Config {
            partition: 1,
            config_file: "config.txt".into(),
            source: crate::effective::IncludeError::TooManyFiles {
                file: "inc32.txt".into(),
                cap: crate::effective::MAX_INCLUDED_FILES,
            },
        }
    );
    let message = err.to_string();
    assert!(
        message.starts_with("partition 1: config.txt: include inc32.txt: more than 32 files"),
        "{message}"
    );
    assert_eq!(files.reads_of("inc"), (33, 33));
}

#[test]
fn multiple_initramfs_files_in_order_with_prefix() {
    let card = Card::new().fat(
        1,
        pi4("p1")
            .with(
                "config.txt",
                "os_prefix=a/\ninitramfs base.cpio,/shared.cpio,extra.cpio followkernel\n",
            )
            .with("a/kernel8.img", "k")
            .with("a/bcm2711-rpi-4-b.dtb", "d")
            .with("a/base.cpio", "1")
            .with("shared.cpio", "2")
            .with("a/extra.cpio", "3"),
    );
    let choice = card.boot(NORMAL);
    assert_eq!(
        choice.initramfs,
        ["a/base.cpio", "shared.cpio", "a/extra.cpio"]
    );

    let mut missing = Card::new().fat(1, card.parts[0].2.clone());
    missing.parts[0].2.remove("a/extra.cpio");
    assert_eq!(
        missing.select(NORMAL, Board::Pi4),
        Err(NoBoot::InitramfsMissing {
            partition: 1,
            path: "a/extra.cpio".into()
        })
    );
}

#[test]
fn missing_kernel_is_named() {
    let card = Card::new().fat(1, pi4("p1").with("config.txt", "kernel=vmlinuz\n"));
    let err = card.select(NORMAL, Board::Pi4).expect_err("no kernel");
    assert_eq!(
        err,
        NoBoot::KernelMissing {
            partition: 1,
            path: "vmlinuz".into()
        }
    );
    assert!(err.to_string().contains("vmlinuz"));
}

#[test]
fn auto_initramfs_only_if_present() {
    let with = Card::new().fat(
        1,
        pi4("p1")
            .with("config.txt", "auto_initramfs=1\n")
            .with("initramfs8", "i"),
    );
    assert_eq!(with.boot(NORMAL).initramfs, ["initramfs8"]);
    let without = Card::new().fat(1, pi4("p1").with("config.txt", "auto_initramfs=1\n"));
    assert!(without.boot(NORMAL).initramfs.is_empty());
    let off = Card::new().fat(1, pi4("p1").with("initramfs8", "i"));
    assert!(off.boot(NORMAL).initramfs.is_empty());
}

#[test]
fn nothing_bootable() {
    let empty = Card::new().other(1).fat(2, MemFiles::new());
    assert_eq!(
        empty.select(NORMAL, Board::Pi4),
        Err(NoBoot::NoBootablePartition {
            marker: "start4.elf"
        })
    );
    let err = empty
        .select(req(2, false), Board::Pi4)
        .expect_err("walk finds nothing");
    assert_eq!(
        err,
        NoBoot::NotBootable {
            requested: 2,
            marker: "start4.elf",
            fallback: "the partition walk"
        }
    );
}

#[test]
fn cmdline_and_device_tree_keys() {
    let card = Card::new().fat(
        1,
        pi4("p1")
            .with(
                "config.txt",
                "os_prefix=s/\ncmdline=alt.txt\ndevice_tree=custom.dtb\n",
            )
            .with("s/kernel8.img", "k")
            .with("s/custom.dtb", "d")
            .with("s/alt.txt", "alt line\nsecond\n"),
    );
    let choice = card.boot(NORMAL);
    assert_eq!(choice.os_prefix, "s/");
    assert_eq!(choice.dtb.as_deref(), Some("s/custom.dtb"));
    assert_eq!(choice.cmdline_file, "s/alt.txt");
    assert_eq!(choice.cmdline, "alt line");
}
