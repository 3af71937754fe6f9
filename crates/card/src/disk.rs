//! Finding the card and its partitions as the kernel sees them: from `/sys/class/block` and
//! `/dev` (both passed in, so tests run on a temp dir), the disk whose partition carries the
//! FAT label [`RECOVERY_LABEL`], its four partitions, and its MBR disk id.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8r_boot_config::mbr::Mbr;
use k8r_boot_config::volume::{ext4_label, fat_label};

use crate::layout::{Fs, Part, RECOVERY_LABEL};

/// Where the kernel's view of block devices is: `/sys/class/block` and `/dev` on a running
/// system.
#[derive(Debug, Clone)]
pub struct Sysfs {
    /// `/sys/class/block`: one entry per disk and partition.
    pub class_block: PathBuf,
    /// `/dev`: the device nodes.
    pub dev: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs {
            class_block: PathBuf::from("/sys/class/block"),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// Why the card or a partition could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// No disk with a recovery partition appeared in time.
    #[error(
        "no disk with a {RECOVERY_LABEL} partition appeared within {waited:?} (looked at: {seen})"
    )]
    NotFound {
        /// How long we waited.
        waited: Duration,
        /// The block devices seen.
        seen: String,
    },
    /// Reading sysfs or a device failed.
    #[error("{path}: {source}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The disk's partition table cannot be read.
    #[error("{disk}: reading the partition table: {reason}")]
    Table {
        /// The disk.
        disk: PathBuf,
        /// Why.
        reason: String,
    },
    /// A partition the card must have is missing.
    #[error("{disk} has no {part}: this is not a k8r card, or its partition table was changed")]
    MissingPartition {
        /// The disk.
        disk: PathBuf,
        /// The missing partition.
        part: Part,
    },
    /// A device is not a partition of any disk.
    #[error("{device} is not a partition of a disk")]
    NotAPartition {
        /// The device name.
        device: String,
    },
}

/// Where the recovery partition was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The whole disk, e.g. `/dev/mmcblk0`.
    pub disk: PathBuf,
    /// The partition number (1-based).
    pub partition: u32,
}

impl Sysfs {
    /// Polls until a partition labelled [`RECOVERY_LABEL`] shows up, for up to `timeout`.
    ///
    /// # Errors
    /// [`DiskError::NotFound`] naming the block devices seen.
    pub fn find_recovery(&self, timeout: Duration) -> Result<Found, DiskError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (found, seen) = self.scan();
            if let Some(f) = found {
                return Ok(f);
            }
            if Instant::now() >= deadline {
                return Err(DiskError::NotFound {
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

    fn names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.class_block) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn scan(&self) -> (Option<Found>, Vec<String>) {
        let mut seen = Vec::new();
        for name in self.names() {
            seen.push(name.clone());
            let Some(number) = self.read_number(&name, "partition") else {
                continue;
            };
            let mut sector = [0u8; 512];
            let ok = File::open(self.dev.join(&name)).and_then(|mut f| f.read_exact(&mut sector));
            if ok.is_err() || fat_label(&sector).as_deref() != Some(RECOVERY_LABEL) {
                continue;
            }
            if let Some(disk) = self.parent_disk(&name) {
                let partition = u32::try_from(number).unwrap_or(0);
                return (
                    Some(Found {
                        disk: self.dev.join(disk),
                        partition,
                    }),
                    seen,
                );
            }
        }
        (None, seen)
    }

    fn read_number(&self, name: &str, file: &str) -> Option<u64> {
        std::fs::read_to_string(self.class_block.join(name).join(file))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    }

    /// The disk a partition belongs to: the parent of its sysfs directory.
    fn parent_disk(&self, name: &str) -> Option<String> {
        std::fs::canonicalize(self.class_block.join(name).join(".."))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// The disk holding partition device `device` (e.g. `mmcblk0p3` or `/dev/vda3`).
    ///
    /// # Errors
    /// [`DiskError::NotAPartition`] when sysfs does not list it as a partition.
    pub fn disk_of(&self, device: &Path) -> Result<PathBuf, DiskError> {
        let name = device
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let not_a_partition = || DiskError::NotAPartition {
            device: device.display().to_string(),
        };
        self.read_number(&name, "partition")
            .ok_or_else(not_a_partition)?;
        let disk = self.parent_disk(&name).ok_or_else(not_a_partition)?;
        Ok(self.dev.join(disk))
    }

    /// 512-byte sectors written to block device `device` (e.g. `/dev/vda1`) since the kernel
    /// started (sysfs `stat`, [`sectors_written`]); `None` when sysfs does not say.
    pub fn sectors_written(&self, device: &Path) -> Option<u64> {
        let name = device.file_name()?.to_string_lossy().into_owned();
        let stat = std::fs::read_to_string(self.class_block.join(name).join("stat")).ok()?;
        sectors_written(&stat)
    }

    /// Reads the partitions of `disk` (e.g. `/dev/vda`) from sysfs and its disk id from its
    /// MBR.
    ///
    /// # Errors
    /// sysfs cannot be listed, or the MBR cannot be read or parsed.
    pub fn layout(&self, disk: &Path) -> Result<CardLayout, DiskError> {
        let name = disk
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::read_dir(&self.class_block).map_err(|source| DiskError::Io {
            path: self.class_block.clone(),
            source,
        })?;
        let mut parts = Vec::new();
        for part in self.names() {
            if self.parent_disk(&part).as_deref() != Some(name.as_str()) {
                continue;
            }
            if let (Some(number), Some(start), Some(sectors)) = (
                self.read_number(&part, "partition"),
                self.read_number(&part, "start"),
                self.read_number(&part, "size"),
            ) {
                parts.push(PartDev {
                    number: u32::try_from(number).unwrap_or(0),
                    dev: self.dev.join(&part),
                    start,
                    sectors,
                });
            }
        }
        parts.sort_by_key(|p| p.number);
        let mut sector = [0u8; 512];
        File::open(disk)
            .and_then(|mut f| f.read_exact(&mut sector))
            .map_err(|e| DiskError::Table {
                disk: disk.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mbr = Mbr::parse(&sector).map_err(|e| DiskError::Table {
            disk: disk.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(CardLayout {
            disk: disk.to_path_buf(),
            disk_id: mbr.disk_id,
            parts,
        })
    }
}

/// One partition of the card as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartDev {
    /// 1-based number.
    pub number: u32,
    /// Device node, e.g. `/dev/mmcblk0p3`.
    pub dev: PathBuf,
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

/// The card's partitions and its MBR disk id.
#[derive(Debug, Clone)]
pub struct CardLayout {
    /// The whole disk.
    pub disk: PathBuf,
    /// MBR disk id (for `root=PARTUUID=<id>-03`).
    pub disk_id: u32,
    /// The partitions the kernel lists, by number.
    pub parts: Vec<PartDev>,
}

impl CardLayout {
    /// Partition `part`, or an error naming the disk.
    ///
    /// # Errors
    /// [`DiskError::MissingPartition`].
    pub fn part(&self, part: Part) -> Result<&PartDev, DiskError> {
        self.parts
            .iter()
            .find(|p| p.number == u32::from(part.number()))
            .ok_or_else(|| DiskError::MissingPartition {
                disk: self.disk.clone(),
                part,
            })
    }

    /// Every one of the four partitions is there.
    ///
    /// # Errors
    /// The first one missing.
    pub fn check_complete(&self) -> Result<(), DiskError> {
        for p in Part::ALL {
            self.part(p)?;
        }
        Ok(())
    }
}

/// The volume label of a filesystem, read from the first bytes of its partition (FAT boot
/// sector, or the ext4 superblock at 1024).
///
/// # Errors
/// The device cannot be read.
pub fn read_label(dev: &Path, fs: Fs) -> io::Result<Option<String>> {
    let mut head = vec![0u8; 2048];
    File::open(dev)?.read_exact(&mut head)?;
    Ok(match fs {
        Fs::Fat32 => fat_label(&head[..512]),
        Fs::Ext4 => ext4_label(&head),
    })
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;

/// The sectors-written field of a block device's sysfs `stat` line (the 7th number:
/// Documentation/block/stat.rst), always in 512-byte units.
pub fn sectors_written(stat: &str) -> Option<u64> {
    stat.split_whitespace().nth(6)?.parse().ok()
}
