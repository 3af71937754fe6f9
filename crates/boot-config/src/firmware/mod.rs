//! The firmware's boot selection as a pure function: which partition, which config file,
//! which kernel, initramfs, device tree and command line (pi-boot notes sections 3-7).
//!
//! This is our model of the firmware, derived from its documentation and release notes
//! (DOC-AUTOBOOT, DOC-EEPROM, DOC-FLOW, DOC-BOOT, DOC-COND, RN-2711), not firmware source.

mod assets;
#[cfg(feature = "dir-files")]
mod dir_files;
mod files;
mod partition;
#[cfg(test)]
mod tests;

use std::fmt;

use thiserror::Error;

use crate::board::Board;
use crate::effective::{Effective, IncludeError};

#[cfg(feature = "dir-files")]
pub use dir_files::DirFiles;
pub use files::{FileLookup, MemFiles};

/// Partition number that asks the firmware to halt (used for power-off; K-WDT).
pub const HALT_PARTITION: u8 = 63;

/// Highest partition number the walk tries (DOC-EEPROM `PARTITION_WALK`: "up to 8").
pub const WALK_MAX: u8 = 8;

/// The filesystem of a partition, as far as the firmware cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    /// FAT12/16/32 (the only bootable filesystems; DOC-AUTOBOOT).
    Fat,
    /// Anything else (ext4, swap, ...).
    Other,
}

impl PartitionKind {
    /// The kind for an MBR partition type id (see [`crate::mbr::is_fat_type`]).
    pub fn from_mbr_type(type_id: u8) -> PartitionKind {
        if crate::mbr::is_fat_type(type_id) {
            PartitionKind::Fat
        } else {
            PartitionKind::Other
        }
    }
}

/// One partition of the card.
pub struct PartitionView<'a> {
    /// 1-based partition number.
    pub number: u8,
    /// Filesystem kind.
    pub kind: PartitionKind,
    /// Its files (only read for FAT partitions).
    pub files: &'a dyn FileLookup,
}

impl fmt::Debug for PartitionView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionView")
            .field("number", &self.number)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The whole card (or USB disk) the bootloader is looking at.
#[derive(Debug, Default)]
pub struct CardView<'a> {
    /// Partitions in any order.
    pub partitions: Vec<PartitionView<'a>>,
}

impl<'a> CardView<'a> {
    /// The partition with this number.
    pub fn partition(&self, number: u8) -> Option<&PartitionView<'a>> {
        self.partitions.iter().find(|p| p.number == number)
    }
}

/// What the previous reboot asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootRequest {
    /// Partition number from `reboot N` (PM_RSTS; 0 = default, 63 = halt).
    pub partition: u8,
    /// The one-shot tryboot flag (`reboot "0 tryboot"`). The firmware clears it before
    /// loading anything (DOC-FLOW); the caller models the clearing, the choice echoes it.
    pub tryboot: bool,
}

/// The EEPROM bootloader settings that affect selection (DOC-EEPROM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eeprom {
    /// `PARTITION=N`.
    pub partition: Option<u8>,
    /// `PARTITION_WALK` (default on since RN-2711 2025-08-13).
    pub partition_walk: bool,
}

impl Default for Eeprom {
    fn default() -> Eeprom {
        Eeprom {
            partition: None,
            partition_walk: true,
        }
    }
}

/// What the firmware boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootChoice {
    /// Partition booted (1-based).
    pub partition: u8,
    /// Whether this is a tryboot boot (echo of the request).
    pub tryboot: bool,
    /// Whether autoboot.txt's `tryboot_a_b=1` applied.
    pub tryboot_a_b: bool,
    /// `config.txt` or `tryboot.txt`.
    pub config_file: String,
    /// `os_prefix` in effect (`""` when unset or dropped by the viability check).
    pub os_prefix: String,
    /// Kernel path on the partition, prefix applied.
    pub kernel: String,
    /// Initramfs paths in load order, prefix applied.
    pub initramfs: Vec<String>,
    /// Command-line file path, prefix applied.
    pub cmdline_file: String,
    /// First line of that file without its line ending (`""` if the file is missing).
    pub cmdline: String,
    /// Device tree path, or `None` if not found.
    pub dtb: Option<String>,
    /// The evaluated config file.
    pub config: Effective,
    /// Human-readable steps taken.
    pub trace: Vec<String>,
}

/// Why nothing boots from this card.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoBoot {
    /// The reboot asked for partition 63.
    #[error("halt requested (partition 63)")]
    Halt,
    /// No FAT partition holds the board's firmware marker file.
    #[error("no bootable partition: no FAT partition holds {marker}")]
    NoBootablePartition {
        /// The file looked for (`start.elf`, `start4.elf` or `config.txt`).
        marker: &'static str,
    },
    /// The requested partition is not bootable and neither is any fallback.
    #[error(
        "partition {requested} is not bootable (not FAT or no {marker}) and {fallback} found none"
    )]
    NotBootable {
        /// The requested partition number.
        requested: u8,
        /// The marker file looked for.
        marker: &'static str,
        /// `"the partition walk"` or `"the default-partition fallback"`.
        fallback: &'static str,
    },
    /// The kernel file is missing.
    #[error("partition {partition}: kernel {path} not found")]
    KernelMissing {
        /// Partition number.
        partition: u8,
        /// Path looked for.
        path: String,
    },
    /// The config file could not be evaluated: it includes more files than the model
    /// follows (a hostile or broken boot partition).
    #[error("partition {partition}: {config_file}: {source}")]
    Config {
        /// Partition number.
        partition: u8,
        /// `config.txt` or `tryboot.txt`.
        config_file: String,
        /// What stopped the evaluation.
        source: IncludeError,
    },
    /// An initramfs file is missing.
    #[error("partition {partition}: initramfs {path} not found")]
    InitramfsMissing {
        /// Partition number.
        partition: u8,
        /// Path looked for.
        path: String,
    },
}

/// Model the firmware's choice of partition and files for one boot.
///
/// Precedence of the partition number (pi-boot notes section 3): reboot request (1..=31) >
/// autoboot.txt `boot_partition` > EEPROM `PARTITION`; the module source states the details
/// and the UNCERTAIN points.
pub fn select_boot(
    card: &CardView,
    req: BootRequest,
    board: Board,
    eeprom: &Eeprom,
) -> Result<BootChoice, NoBoot> {
    let mut trace = Vec::new();
    let picked = partition::choose(card, req, board, eeprom, &mut trace)?;
    let view = card
        .partition(picked.partition)
        .ok_or(NoBoot::NoBootablePartition {
            marker: board.boot_marker(),
        })?;
    assets::resolve(view, req.tryboot, picked.tryboot_a_b, board, trace)
}
