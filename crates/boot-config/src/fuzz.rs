//! Fuzz targets for the boot files a card, a base image or a user hands over (see
//! `docs/fuzzing.md`; `cargo xtask fuzz` runs them for longer). Seeds: `fuzz/<target>/`.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeSet;

use k8r_fuzzkit::proptest::prelude::*;
use k8r_fuzzkit::{corpus, hit, input, prop_assert, prop_assert_eq, run, Input};

use crate::autoboot::MAX_AUTOBOOT_BYTES;
use crate::effective::MAX_INCLUDED_FILES;
use crate::mbr::{ALIGN_SECTORS, SECTOR_SIZE};
use crate::{Autoboot, Board, Cmdline, ConfigTxt, FilterContext, Mbr, MbrPartition};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

const CONFIG_DICT: &[&str] = &[
    "\n",
    "\r\n",
    "[",
    "]",
    "=",
    "#",
    " ",
    "\t",
    "[all]\n",
    "[pi4]\n",
    "[pi3+]\n",
    "[none]\n",
    "[tryboot]\n",
    "[boot_partition=2]\n",
    "include ",
    "include syscfg.txt\n",
    "initramfs ",
    " followkernel",
    ",",
    "kernel=",
    "os_prefix=",
    "ramfsfile=",
    "ramfsaddr=",
    "arm_64bit=1\n",
    "\u{e9}",
    "\u{1F600}",
];

/// A line of 98+ characters, where the firmware stops reading.
const LONG: &str = "dtoverlay=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn config_dict() -> Vec<&'static str> {
    let mut d = CONFIG_DICT.to_vec();
    d.push(LONG);
    d
}

/// `config.txt`: lossless (`parse(x)?.render() == x`, lenient too), and an edit survives a
/// render → parse round trip.
#[test]
fn config_txt() {
    let strategy = (
        input(corpus(DIR, "config_txt"), &config_dict()),
        prop::sample::select(vec!["all", "tryboot", "pi4", " ALL "]),
        prop::sample::select(vec!["kernel", "os_prefix", "arm_64bit", "dtparam"]),
        prop::sample::select(vec!["vmlinuz", "current/", "1", "audio=on"]),
    );
    run(
        "config_txt",
        256,
        strategy,
        |(data, section, key, value)| {
            let text = data.text();
            let lenient = ConfigTxt::parse_lenient(&text);
            prop_assert_eq!(lenient.render(), text.clone());
            let _ = lenient.warnings();
            let Ok(mut cfg) = ConfigTxt::parse(&text) else {
                return Ok(());
            };
            hit("parsed");
            prop_assert_eq!(cfg.render(), text);
            cfg.set(section, key, value);
            let again = ConfigTxt::parse(&cfg.render()).unwrap();
            prop_assert_eq!(again.get(section, key), Some(value));
            let mut removed = again.clone();
            removed.remove(section, key);
            let after = ConfigTxt::parse(&removed.render()).unwrap();
            prop_assert_eq!(after.get(section, key), None);
            Ok(())
        },
    );
}

/// Names the include resolver knows; file `i + 1` of the input answers to `NAMES[i]`.
const NAMES: &[&str] = &[
    "syscfg.txt",
    "usercfg.txt",
    "extra.txt",
    "a.txt",
    "b.txt",
    "c.txt",
    "d.txt",
    "e.txt",
    "f.txt",
];

/// `config.txt` evaluation with `include`: the input is several files split at NUL bytes.
/// Each name is looked up at most once, at most [`MAX_INCLUDED_FILES`] files are read, and in
/// the "every name exists" mode a flood of distinct names stops at the cap.
#[test]
fn config_effective() {
    let mut dict = config_dict();
    dict.extend([
        "\0",
        "include a.txt\n",
        "include b.txt\n",
        "include /C.TXT\n",
    ]);
    let strategy = (
        input(corpus(DIR, "config_effective"), &dict),
        any::<bool>(),
        prop::sample::select(vec![Board::Pi3, Board::Pi4, Board::Pi5]),
        any::<bool>(),
    );
    run(
        "config_effective",
        128,
        strategy,
        |(data, all_exist, board, tryboot)| {
            let text = data.text();
            let files: Vec<&str> = text.split('\0').collect();
            let seen = RefCell::new(BTreeSet::new());
            let twice = RefCell::new(None);
            let resolve = |name: &str| {
                let key = name.trim_start_matches('/').to_ascii_lowercase();
                if !seen.borrow_mut().insert(key.clone()) {
                    *twice.borrow_mut() = Some(key.clone());
                }
                let index = match NAMES.iter().position(|n| *n == key) {
                    Some(i) => i + 1,
                    None if all_exist => 1 + key.len() % files.len().max(1),
                    None => return None,
                };
                files.get(index).map(|f| (*f).to_owned())
            };
            let cfg = ConfigTxt::parse_lenient(files[0]);
            let ctx = FilterContext {
                board,
                tryboot,
                boot_partition: 1,
            };
            if let Ok(eff) = cfg.effective(&ctx, &resolve) {
                hit("evaluated");
                if !eff.included_files().is_empty() {
                    hit("included");
                }
                prop_assert!(eff.included_files().len() <= MAX_INCLUDED_FILES);
                let _ = (
                    eff.initramfs(),
                    eff.settings().count(),
                    eff.flag("arm_64bit"),
                );
            }
            let twice = twice.borrow().clone();
            prop_assert!(twice.is_none(), "{twice:?} looked up twice");
            prop_assert!(seen.borrow().len() <= MAX_INCLUDED_FILES + 4096);
            Ok(())
        },
    );
}

/// `autoboot.txt`: over 512 bytes is refused, anything else parses to a partition 0..=63;
/// what k8r renders reads back as written.
#[test]
fn autoboot() {
    let dict = [
        "\n",
        "\r\n",
        "[all]\n",
        "[tryboot]\n",
        "[none]\n",
        "[ALL]",
        "boot_partition=",
        "tryboot_a_b=",
        "=",
        "1",
        "2",
        "63",
        "64",
        "255",
        "256",
        "#",
        " ",
        "\u{e9}",
    ];
    let strategy = (
        input(corpus(DIR, "autoboot"), &dict),
        0..=63u8,
        0..=63u8,
        any::<bool>(),
    );
    run(
        "autoboot",
        256,
        strategy,
        |(data, normal, tryboot_part, ab)| {
            match Autoboot::parse(&data) {
                Err(_) => prop_assert!(data.len() > MAX_AUTOBOOT_BYTES),
                Ok(a) => {
                    if a.boot_partition(false).is_some() {
                        hit("partition");
                    }
                    prop_assert!(data.len() <= MAX_AUTOBOOT_BYTES);
                    for t in [false, true] {
                        prop_assert!(a.boot_partition(t).unwrap_or(0) <= 63);
                        let _ = a.tryboot_a_b(t);
                    }
                }
            }
            let plain = Autoboot::parse(Autoboot::render_normal(normal, ab).as_bytes()).unwrap();
            prop_assert!(plain.warnings().is_empty());
            prop_assert_eq!(plain.boot_partition(false), Some(normal));
            prop_assert_eq!(plain.boot_partition(true), Some(normal));
            prop_assert_eq!(plain.tryboot_a_b(false), ab);
            let text = Autoboot::render_with_tryboot(normal, tryboot_part, ab);
            let both = Autoboot::parse(text.as_bytes()).unwrap();
            prop_assert!(both.warnings().is_empty());
            prop_assert_eq!(both.boot_partition(false), Some(normal));
            prop_assert_eq!(both.boot_partition(true), Some(tryboot_part));
            prop_assert_eq!(both.tryboot_a_b(true), ab);
            Ok(())
        },
    );
}

/// `cmdline.txt`: render → parse gives the same tokens; a setting k8r adds is read back after
/// a round trip, whatever the user's line held.
#[test]
fn cmdline() {
    let dict = [
        " ",
        "\t",
        "\n",
        "\r\n",
        "\"",
        "=",
        "root=",
        "PARTUUID=",
        "console=serial0,115200",
        "rootwait",
        "cgroup_enable=memory",
        "dyndbg=\"a b\"",
        "\u{a0}",
        "\u{e9}",
    ];
    let strategy = (input(corpus(DIR, "cmdline"), &dict), any::<u32>(), 1..=4u8);
    run("cmdline", 256, strategy, |(data, disk_id, part)| {
        let cmd = Cmdline::parse(&data.text());
        prop_assert!(cmd.tokens().iter().all(|t| !t.is_empty()));
        let again = Cmdline::parse(&cmd.render());
        prop_assert_eq!(again.tokens(), cmd.tokens());
        let mut edited = cmd.clone();
        edited.set("cgroup_memory", "1");
        edited.append_flag("rootwait");
        edited.set_root_partuuid(disk_id, part);
        let back = Cmdline::parse(&edited.render());
        let root = format!("PARTUUID={:08x}-{part:02x}", disk_id);
        prop_assert_eq!(back.get("root"), Some(root.as_str()));
        prop_assert_eq!(back.get("cgroup_memory"), Some("1"));
        prop_assert!(back.has("rootwait"));
        let mut removed = back.clone();
        removed.remove("root");
        prop_assert!(!Cmdline::parse(&removed.render()).has("root"));
        Ok(())
    });
}

fn k8r_layout() -> [u8; 512] {
    let part = |type_id, bootable, first_lba, sectors| {
        Some(MbrPartition {
            type_id,
            bootable,
            first_lba,
            sectors,
        })
    };
    Mbr {
        disk_id: 0x2d6b_036c,
        partitions: [
            part(0x0c, true, 2048, 1_048_576),
            part(0x0c, false, 1_050_624, 1_048_576),
            part(0x83, false, 2_099_200, 8_388_608),
            part(0x83, false, 10_487_808, 20_000_000),
        ],
    }
    .render()
}

/// A vendor-style sector: bootstrap code, CHS fields, two partitions, empty slots.
fn vendor_sector() -> [u8; 512] {
    let mut s = k8r_layout();
    for (i, b) in s[..440].iter_mut().enumerate() {
        *b = u8::try_from(i % 251).unwrap();
    }
    s[0x1BE + 1..0x1BE + 4].copy_from_slice(&[0x20, 0x21, 0x00]);
    s[0x1BE + 5..0x1BE + 8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    s[0x1BE + 32..0x1BE + 64].fill(0);
    s
}

fn sector(data: &Input) -> [u8; 512] {
    let mut s = [0u8; 512];
    let n = data.len().min(512);
    s[..n].copy_from_slice(&data[..n]);
    s
}

/// MBR: a table that validates has every partition inside the disk, aligned, after the MBR
/// and disjoint (checked here without the parser's arithmetic); render → parse gives the same
/// table; resizing one entry changes only that entry's length field.
#[test]
fn mbr() {
    let seeds = vec![k8r_layout().to_vec(), vendor_sector().to_vec()];
    let dict: [&[u8]; 7] = [
        b"\x55\xaa",
        b"\x0c",
        b"\x83",
        b"\xee",
        b"\x80",
        b"\x00\x08\x00\x00",
        b"\xff\xff\xff\xff",
    ];
    let strategy = (
        input(seeds, &dict),
        prop_oneof![Just(16u64 << 30), any::<u64>(), 0..(64u64 << 30)],
        1..=5u8,
        any::<u32>(),
    );
    run(
        "mbr",
        256,
        strategy,
        |(data, disk_bytes, number, sectors)| {
            let s = sector(&data);
            let _ = Mbr::parse(&data);
            let Ok(mbr) = Mbr::parse(&s) else {
                return Ok(());
            };
            hit("parsed");
            if mbr.validate(disk_bytes).is_ok() {
                hit("valid");
                let used: Vec<&MbrPartition> = mbr.partitions.iter().flatten().collect();
                for p in &used {
                    let start = u128::from(p.first_lba) * u128::from(SECTOR_SIZE);
                    let end = start + u128::from(p.sectors) * u128::from(SECTOR_SIZE);
                    prop_assert!(p.first_lba > 0 && p.first_lba % ALIGN_SECTORS == 0);
                    prop_assert!(end <= u128::from(disk_bytes), "{p:?} past {disk_bytes}");
                    for q in &used {
                        if !std::ptr::eq(*p, *q) {
                            let qs = u128::from(q.first_lba) * u128::from(SECTOR_SIZE);
                            let qe = qs + u128::from(q.sectors) * u128::from(SECTOR_SIZE);
                            prop_assert!(end <= qs || qe <= start, "{p:?} overlaps {q:?}");
                        }
                    }
                }
            }
            prop_assert_eq!(Mbr::parse(&mbr.render()).unwrap(), mbr);
            if let Ok(resized) = Mbr::resized(&s, number, sectors) {
                prop_assert!((1..=4).contains(&number));
                let field = 0x1BE + 16 * usize::from(number - 1) + 12;
                for (i, (a, b)) in s.iter().zip(resized.iter()).enumerate() {
                    if !(field..field + 4).contains(&i) {
                        prop_assert_eq!(a, b, "byte {} changed", i);
                    }
                }
                prop_assert_eq!(&resized[field..field + 4], &sectors.to_le_bytes()[..]);
            }
            Ok(())
        },
    );
}
