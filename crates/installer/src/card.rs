//! Finding the card: the disk whose partition carries the FAT label `K8R-RECOVERY`.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// The volume label of a FAT boot sector (FAT32 at 0x47, FAT12/16 at 0x2B), trimmed.
pub fn fat_label(boot_sector: &[u8]) -> Option<String> {
    if boot_sector.len() < 512 || boot_sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    let fat32 = &boot_sector[0x52..0x5A] == b"FAT32   ";
    let at = if fat32 { 0x47 } else { 0x2B };
    let raw = &boot_sector[at..at + 11];
    Some(String::from_utf8_lossy(raw).trim_end().to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fat32_and_fat16_labels() {
        let mut s = [0u8; 512];
        s[510] = 0x55;
        s[511] = 0xAA;
        s[0x52..0x5A].copy_from_slice(b"FAT32   ");
        s[0x47..0x52].copy_from_slice(b"K8R-RECOVER");
        assert_eq!(fat_label(&s).as_deref(), Some("K8R-RECOVER"));
        let mut t = [0u8; 512];
        t[510] = 0x55;
        t[511] = 0xAA;
        t[0x2B..0x36].copy_from_slice(b"SYSTEM     ");
        assert_eq!(fat_label(&t).as_deref(), Some("SYSTEM"));
        assert_eq!(fat_label(&[0u8; 512]), None, "no boot signature");
    }
}
