//! Whether a target may be flashed: it exists, is a block device (or a regular file, for
//! images and tests), holds at least the image, is not mounted anywhere, and is not the disk
//! this host runs from. The decisions are pure over what `/proc/self/mountinfo` and
//! `/sys/dev/block` say, so they are tested without devices.

use std::path::{Path, PathBuf};

/// A `major:minor` device number.
pub type DevNum = (u32, u32);

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not there, or unreadable.
    #[error("{}: {why}", path.display())]
    Unusable {
        /// The target.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Smaller than the image.
    #[error(
        "{} holds {} MiB, the image needs {} MiB: use a larger card",
        path.display(), have >> 20, need >> 20
    )]
    TooSmall {
        /// The target.
        path: PathBuf,
        /// Its size in bytes.
        have: u64,
        /// The image's size in bytes.
        need: u64,
    },
    /// A partition of it is mounted.
    #[error(
        "{} is in use: {mount} is mounted from it; unmount it first (e.g. `umount {mount}`)",
        path.display()
    )]
    Mounted {
        /// The target.
        path: PathBuf,
        /// A mount point on it.
        mount: String,
    },
    /// It is the disk this host runs from.
    #[error(
        "{} is the disk this machine runs from (it holds /): refusing to overwrite it; is the \
         card reader another device? (`lsblk` lists them)",
        path.display()
    )]
    HostDisk {
        /// The target.
        path: PathBuf,
    },
}

/// `(device number, mount point)` of every mount in a `/proc/self/mountinfo` text.
pub fn mounts(mountinfo: &str) -> Vec<(DevNum, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let dev = fields.nth(2)?;
            let _root = fields.next()?;
            let point = fields.next()?;
            let (maj, min) = dev.split_once(':')?;
            Some(((maj.parse().ok()?, min.parse().ok()?), unescape(point)))
        })
        .collect()
}

/// mountinfo escapes spaces and the like as `\040`.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The whole disks a block device sits on, through `/sys/dev/block` (`sys`): a partition's
/// parent disk, and for a device-mapper or md device the disks under its `slaves/`.
pub fn disks_of(sys: &Path, dev: DevNum) -> Vec<String> {
    let link = sys.join(format!("dev/block/{}:{}", dev.0, dev.1));
    let Ok(real) = std::fs::canonicalize(&link) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_disks(&real, &mut out, 0);
    out.sort();
    out.dedup();
    out
}

fn collect_disks(dev_dir: &Path, out: &mut Vec<String>, depth: u32) {
    if depth > 8 {
        return;
    }
    let slaves: Vec<PathBuf> = std::fs::read_dir(dev_dir.join("slaves"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::canonicalize(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if !slaves.is_empty() {
        for s in slaves {
            collect_disks(&s, out, depth + 1);
        }
        return;
    }
    // A partition's directory sits inside its disk's and has a `partition` file.
    let disk = if dev_dir.join("partition").exists() {
        dev_dir.parent()
    } else {
        Some(dev_dir)
    };
    if let Some(name) = disk.and_then(Path::file_name) {
        out.push(name.to_string_lossy().into_owned());
    }
}

/// What is known of a block-device target.
#[derive(Debug, Clone)]
pub struct BlockTarget<'a> {
    /// Its path.
    pub path: &'a Path,
    /// The disks it is (one, normally).
    pub disks: Vec<String>,
}

/// Refuses a block device that is mounted or is (part of) the host's root disk. `mounted` are
/// the mounts with the disks each sits on; `root_disks` the disks holding `/`.
pub fn check_block(
    target: &BlockTarget<'_>,
    mounted: &[(Vec<String>, String)],
    root_disks: &[String],
) -> Result<(), Refusal> {
    if target.disks.iter().any(|d| root_disks.contains(d)) {
        return Err(Refusal::HostDisk {
            path: target.path.to_path_buf(),
        });
    }
    if let Some((_, point)) = mounted
        .iter()
        .find(|(disks, _)| disks.iter().any(|d| target.disks.contains(d)))
    {
        return Err(Refusal::Mounted {
            path: target.path.to_path_buf(),
            mount: point.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
25 22 8:1 / /boot/efi rw shared:2 - vfat /dev/sda1 rw
90 22 8:17 / /media/me/system\\040boot rw - vfat /dev/sdb1 rw
91 22 0:45 / /proc rw - proc proc rw
";

    #[test]
    fn mountinfo_gives_device_numbers_and_unescaped_points() {
        let m = mounts(MOUNTINFO);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], ((8, 2), "/".to_owned()));
        assert_eq!(m[2], ((8, 17), "/media/me/system boot".to_owned()));
    }

    fn fake_sys() -> tempfile::TempDir {
        // /sys/block layout: sda with sda1, sda2; sdb with sdb1; dm-0 over sdc.
        let t = tempfile::tempdir().expect("tmp");
        let b = t.path().join("devices/block");
        for p in ["sda/sda1", "sda/sda2", "sdb/sdb1", "sdc", "dm-0/slaves"] {
            std::fs::create_dir_all(b.join(p)).expect("mkdir");
        }
        for p in ["sda/sda1", "sda/sda2", "sdb/sdb1"] {
            std::fs::write(b.join(p).join("partition"), "1").expect("partition");
        }
        std::os::unix::fs::symlink(b.join("sdc"), b.join("dm-0/slaves/sdc")).expect("slave");
        let dev = t.path().join("dev/block");
        std::fs::create_dir_all(&dev).expect("dev");
        for (num, to) in [
            ("8:0", "sda"),
            ("8:1", "sda/sda1"),
            ("8:2", "sda/sda2"),
            ("8:16", "sdb"),
            ("8:17", "sdb/sdb1"),
            ("253:0", "dm-0"),
        ] {
            std::os::unix::fs::symlink(b.join(to), dev.join(num)).expect("link");
        }
        t
    }

    #[test]
    fn partitions_map_to_their_disk_and_device_mapper_to_its_slaves() {
        let t = fake_sys();
        assert_eq!(disks_of(t.path(), (8, 2)), ["sda"]);
        assert_eq!(disks_of(t.path(), (8, 16)), ["sdb"]);
        assert_eq!(disks_of(t.path(), (253, 0)), ["sdc"]);
        assert!(disks_of(t.path(), (9, 9)).is_empty());
    }

    #[test]
    fn the_root_disk_and_a_mounted_card_are_refused_a_free_card_is_not() {
        let t = fake_sys();
        let mounted: Vec<(Vec<String>, String)> = mounts(MOUNTINFO)
            .into_iter()
            .map(|(dev, point)| (disks_of(t.path(), dev), point))
            .collect();
        let root = disks_of(t.path(), (8, 2));
        let target = |p: &'static str, disk: &str| BlockTarget {
            path: Path::new(p),
            disks: vec![disk.to_owned()],
        };
        assert!(matches!(
            check_block(&target("/dev/sda", "sda"), &mounted, &root),
            Err(Refusal::HostDisk { .. })
        ));
        let err = check_block(&target("/dev/sdb", "sdb"), &mounted, &root).expect_err("mounted");
        assert_eq!(
            err.to_string(),
            "/dev/sdb is in use: /media/me/system boot is mounted from it; unmount it first \
             (e.g. `umount /media/me/system boot`)"
        );
        check_block(&target("/dev/sdc", "sdc"), &mounted, &root).expect("a free card");
    }
}
