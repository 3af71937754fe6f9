//! Finding the card: the disk whose partition carries the FAT label `K8R-RECOVERY`.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use k8r_boot_config::volume::fat_label;

/// The recovery partition's FAT volume label.
/// FAT volume labels hold at most 11 characters, so the architecture's "K8R-RECOVERY" is
/// spelled `K8R-RECOVER`.
pub const RECOVERY_LABEL: &str = "K8R-RECOVER";

/// Where the recovery partition was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The whole disk, e.g. `/dev/mmcblk0`.
    pub disk: String,
    /// The partition number (1-based).
    pub partition: u32,
}

/// The card was not found in time.
#[derive(Debug, thiserror::Error)]
#[error("no disk with a {RECOVERY_LABEL} partition appeared within {waited:?} (looked at: {seen})")]
pub struct NotFound {
    /// How long we waited.
    pub waited: Duration,
    /// The block devices seen.
    pub seen: String,
}

/// Polls `/sys/class/block` until a partition labelled [`RECOVERY_LABEL`] shows up.
pub fn find_recovery(timeout: Duration) -> Result<Found, NotFound> {
    let deadline = Instant::now() + timeout;
    loop {
        let (found, seen) = scan(Path::new("/sys/class/block"), Path::new("/dev"));
        if let Some(f) = found {
            return Ok(f);
        }
        if Instant::now() >= deadline {
            return Err(NotFound {
                waited: timeout,
                seen: if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join(" ")
                },
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scan(sys_block: &Path, dev: &Path) -> (Option<Found>, Vec<String>) {
    let mut seen = Vec::new();
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return (None, seen);
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        seen.push(name.clone());
        let entry = sys_block.join(&name);
        let Ok(number) = std::fs::read_to_string(entry.join("partition")) else {
            continue;
        };
        let Ok(number) = number.trim().parse::<u32>() else {
            continue;
        };
        let mut sector = [0u8; 512];
        let ok = File::open(dev.join(&name)).and_then(|mut f| f.read_exact(&mut sector));
        if ok.is_err() || fat_label(&sector).as_deref() != Some(RECOVERY_LABEL) {
            continue;
        }
        let disk = std::fs::canonicalize(entry.join(".."))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        return (
            Some(Found {
                disk: format!("/dev/{disk}"),
                partition: number,
            }),
            seen,
        );
    }
    (None, seen)
}

/// One partition of the card as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartDev {
    /// 1-based number.
    pub number: u32,
    /// Device node, e.g. `/dev/mmcblk0p3`.
    pub dev: std::path::PathBuf,
    /// First sector (512-byte units).
    pub start: u64,
    /// Length in 512-byte sectors.
    pub sectors: u64,
}

impl PartDev {
    /// Length in bytes.
    pub fn bytes(&self) -> u64 {
        self.sectors * 512
    }
}

/// The card's four k8r partitions and its MBR disk id.
#[derive(Debug, Clone)]
pub struct CardLayout {
    /// The whole disk.
    pub disk: std::path::PathBuf,
    /// MBR disk id (for `root=PARTUUID=<id>-03`).
    pub disk_id: u32,
    /// Partitions 1–4.
    pub parts: Vec<PartDev>,
}

impl CardLayout {
    /// Partition `n`, or an error naming the disk.
    pub fn part(&self, n: u32) -> Result<&PartDev, String> {
        self.parts
            .iter()
            .find(|p| p.number == n)
            .ok_or_else(|| format!("{} has no partition {n}", self.disk.display()))
    }
}

/// Reads the partitions of `disk` (e.g. `/dev/vda`) from sysfs and its disk id from its MBR.
pub fn layout(disk: &str) -> Result<CardLayout, String> {
    let name = disk.trim_start_matches("/dev/");
    let sys = Path::new("/sys/class/block");
    let mut parts = Vec::new();
    let entries = std::fs::read_dir(sys).map_err(|e| format!("{}: {e}", sys.display()))?;
    for entry in entries.flatten() {
        let part = entry.file_name().to_string_lossy().into_owned();
        let dir = sys.join(&part);
        let parent = std::fs::canonicalize(dir.join(".."))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        if parent.as_deref() != Some(name) {
            continue;
        }
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        if let (Some(number), Some(start), Some(sectors)) =
            (read("partition"), read("start"), read("size"))
        {
            parts.push(PartDev {
                number: u32::try_from(number).unwrap_or(0),
                dev: Path::new("/dev").join(&part),
                start,
                sectors,
            });
        }
    }
    parts.sort_by_key(|p| p.number);
    let mut mbr = [0u8; 512];
    File::open(disk)
        .and_then(|mut f| f.read_exact(&mut mbr))
        .map_err(|e| format!("{disk}: reading the partition table: {e}"))?;
    let disk_id = u32::from_le_bytes([mbr[440], mbr[441], mbr[442], mbr[443]]);
    Ok(CardLayout {
        disk: Path::new(disk).to_path_buf(),
        disk_id,
        parts,
    })
}
