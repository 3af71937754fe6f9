//! Tests of [`super`] on a fake `/sys/class/block` and `/dev` in a temp dir, laid out as the
//! kernel does: `class/block/<name>` are symlinks into `devices/…/<disk>/<partition>`.

use std::os::unix::fs::symlink;

use k8r_boot_config::mbr::{Mbr, MbrPartition};

use super::*;

struct FakeSys {
    _dir: tempfile::TempDir,
    sys: Sysfs,
}

/// A FAT32 boot sector with `label`.
fn fat_sector(label: &str) -> Vec<u8> {
    let mut s = vec![0u8; 2048];
    s[0x52..0x5A].copy_from_slice(b"FAT32   ");
    let mut l = [b' '; 11];
    l[..label.len()].copy_from_slice(label.as_bytes());
    s[0x47..0x52].copy_from_slice(&l);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

fn mbr(disk_id: u32) -> Vec<u8> {
    let part = |first_lba: u32| {
        Some(MbrPartition {
            type_id: 0x0c,
            bootable: false,
            first_lba,
            sectors: 2048,
        })
    };
    Mbr {
        disk_id,
        partitions: [part(2048), part(4096), part(6144), part(8192)],
    }
    .render()
    .to_vec()
}

/// A disk `disk` with partitions `(number, start, size, first bytes)`.
fn fake(disk: &str, parts: &[(u32, u64, u64, Vec<u8>)]) -> FakeSys {
    let dir = tempfile::tempdir().expect("tempdir");
    let devices = dir.path().join("devices/platform/disk").join(disk);
    std::fs::create_dir_all(&devices).expect("devices");
    let class = dir.path().join("class/block");
    let dev = dir.path().join("dev");
    std::fs::create_dir_all(&class).expect("class");
    std::fs::create_dir_all(&dev).expect("dev");
    symlink(&devices, class.join(disk)).expect("disk link");
    std::fs::write(dev.join(disk), mbr(0x1234_abcd)).expect("disk node");
    for (number, start, size, head) in parts {
        let name = format!(
            "{disk}{}{number}",
            if disk.ends_with(char::is_numeric) {
                "p"
            } else {
                ""
            }
        );
        let pdir = devices.join(&name);
        std::fs::create_dir_all(&pdir).expect("part dir");
        std::fs::write(pdir.join("partition"), format!("{number}\n")).expect("partition");
        std::fs::write(pdir.join("start"), format!("{start}\n")).expect("start");
        std::fs::write(pdir.join("size"), format!("{size}\n")).expect("size");
        symlink(&pdir, class.join(&name)).expect("part link");
        std::fs::write(dev.join(&name), head).expect("part node");
    }
    FakeSys {
        sys: Sysfs {
            class_block: class,
            dev,
        },
        _dir: dir,
    }
}

fn card(disk: &str) -> FakeSys {
    fake(
        disk,
        &[
            (1, 2048, 2048, fat_sector("K8R-RECOVER")),
            (2, 4096, 2048, fat_sector("system-boot")),
            (3, 6144, 2048, vec![0; 2048]),
            (4, 8192, 2048, vec![0; 2048]),
        ],
    )
}

#[test]
fn finds_the_recovery_partition_and_its_disk() {
    let f = card("mmcblk0");
    let found = f.sys.find_recovery(Duration::ZERO).expect("found");
    assert_eq!(found.disk, f.sys.dev.join("mmcblk0"));
    assert_eq!(found.partition, 1);
}

#[test]
fn no_recovery_label_names_what_was_seen() {
    let f = fake("vda", &[(1, 2048, 2048, fat_sector("system-boot"))]);
    let err = f.sys.find_recovery(Duration::ZERO).expect_err("no card");
    let msg = err.to_string();
    assert!(
        msg.contains("K8R-RECOVER") && msg.contains("vda vda1"),
        "{msg}"
    );
}

#[test]
fn layout_reads_partitions_and_disk_id() {
    let f = card("vda");
    let layout = f.sys.layout(&f.sys.dev.join("vda")).expect("layout");
    assert_eq!(layout.disk_id, 0x1234_abcd);
    assert_eq!(layout.parts.len(), 4);
    let root = layout.part(Part::Root).expect("p3");
    assert_eq!(root.dev, f.sys.dev.join("vda3"));
    assert_eq!(
        (root.start, root.sectors, root.bytes()),
        (6144, 2048, 2048 * 512)
    );
    layout.check_complete().expect("all four");
}

#[test]
fn a_missing_partition_is_named() {
    let f = fake("vda", &[(1, 2048, 2048, fat_sector("K8R-RECOVER"))]);
    let layout = f.sys.layout(&f.sys.dev.join("vda")).expect("layout");
    let err = layout.check_complete().expect_err("three missing");
    assert!(
        err.to_string().contains("partition 2 (system-boot)"),
        "{err}"
    );
}

#[test]
fn a_disk_without_mbr_is_a_table_error() {
    let f = card("vda");
    std::fs::write(f.sys.dev.join("vda"), vec![0u8; 512]).expect("wipe");
    let err = f.sys.layout(&f.sys.dev.join("vda")).expect_err("no table");
    assert!(matches!(err, DiskError::Table { .. }), "{err:?}");
}

#[test]
fn disk_of_a_partition() {
    let f = card("mmcblk0");
    assert_eq!(
        f.sys.disk_of(Path::new("/dev/mmcblk0p3")).expect("disk"),
        f.sys.dev.join("mmcblk0")
    );
    let err = f
        .sys
        .disk_of(Path::new("/dev/mmcblk0"))
        .expect_err("a disk");
    assert!(matches!(err, DiskError::NotAPartition { .. }), "{err:?}");
}

#[test]
fn labels_from_the_first_bytes() {
    let f = card("vda");
    assert_eq!(
        read_label(&f.sys.dev.join("vda2"), Fs::Fat32)
            .expect("read")
            .as_deref(),
        Some("system-boot")
    );
    assert_eq!(
        read_label(&f.sys.dev.join("vda3"), Fs::Ext4).expect("read"),
        None
    );
}

#[test]
fn sectors_written_come_from_the_partitions_stat_line() {
    // Documentation/block/stat.rst: reads, merges, sectors, ticks, then writes, merges,
    // sectors written, ...
    let line = "     190        0    10430       49        7        3       58       12        0      132       61        0        0        0        0        0        0\n";
    assert_eq!(sectors_written(line), Some(58));
    assert_eq!(sectors_written("1 2 3"), None);
    let f = card("vda");
    std::fs::write(f.sys.class_block.join("vda1").join("stat"), line).expect("stat");
    assert_eq!(f.sys.sectors_written(Path::new("/dev/vda1")), Some(58));
    assert_eq!(f.sys.sectors_written(Path::new("/dev/vda2")), None);
}
