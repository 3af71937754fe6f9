//! The card's partition table: which partition holds what, with which label and filesystem.
//! Every program that looks for a partition (builder, installer, node agent, tests) takes its
//! number and label from here.
//!
//! | # | fs    | label         | holds                                                        |
//! |---|-------|---------------|--------------------------------------------------------------|
//! | 1 | FAT32 | `K8R-RECOVER` | `autoboot.txt`, firmware, recovery kernel and installer, the image store, the node's settings, the install record and log |
//! | 2 | FAT32 | `system-boot` | the working system's boot files (`boot.tar.xz`)              |
//! | 3 | ext4  | `writable`    | the working root (`image.img.xz`)                            |
//! | 4 | ext4  | `k8r-data`    | what survives a reinstall (see [`crate::data`])              |
//!
//! `K8R-RECOVER`: FAT volume labels hold 11 characters, so the design's "K8R-RECOVERY" does
//! not fit. `system-boot` and `writable` are Ubuntu's own labels, so the working system finds
//! its partitions exactly as on a stock Ubuntu card.

use std::fmt;

use rustix::mount::MountFlags;

/// One of the card's four partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// Partition 1: recovery, image store, `autoboot.txt`.
    Recovery,
    /// Partition 2: the working system's boot partition.
    Boot,
    /// Partition 3: the working system's root.
    Root,
    /// Partition 4: data kept across reinstalls.
    Data,
}

/// The filesystem a partition carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    /// FAT32 (MBR type `0x0c`, FAT32 with LBA).
    Fat32,
    /// ext4 (MBR type `0x83`, Linux).
    Ext4,
}

impl Fs {
    /// The MBR partition type id k8r writes for this filesystem.
    pub const fn mbr_type(self) -> u8 {
        match self {
            Fs::Fat32 => 0x0c,
            Fs::Ext4 => 0x83,
        }
    }

    /// The name `mount(2)` takes.
    pub const fn mount_type(self) -> &'static str {
        match self {
            Fs::Fat32 => "vfat",
            Fs::Ext4 => "ext4",
        }
    }

    /// The flags every k8r program mounts this filesystem with when it writes to it (callers
    /// add their own, e.g. read-only or `noatime`). A value, no system call.
    ///
    /// FAT gets `MS_DIRSYNC`: Linux's vfat writes a renamed or created directory entry only
    /// when its buffer is written back, and `fsync` on the directory does not force it (found
    /// in QEMU: a power cut seconds after a careful replace lost the attempt record). With
    /// dirsync, every directory change is written before the call returns; the careful
    /// replace's `sync(2)` stays as the second line.
    pub const fn mount_flags(self) -> MountFlags {
        match self {
            Fs::Fat32 => MountFlags::DIRSYNC,
            Fs::Ext4 => MountFlags::empty(),
        }
    }
}

/// The recovery partition's FAT volume label.
pub const RECOVERY_LABEL: &str = "K8R-RECOVER";
/// The working boot partition's FAT volume label (Ubuntu's).
pub const BOOT_LABEL: &str = "system-boot";
/// The working root's ext4 label (Ubuntu's).
pub const ROOT_LABEL: &str = "writable";
/// The data partition's ext4 label.
pub const DATA_LABEL: &str = "k8r-data";

impl Part {
    /// All four, in table order.
    pub const ALL: [Part; 4] = [Part::Recovery, Part::Boot, Part::Root, Part::Data];

    /// The 1-based partition number.
    pub const fn number(self) -> u8 {
        match self {
            Part::Recovery => 1,
            Part::Boot => 2,
            Part::Root => 3,
            Part::Data => 4,
        }
    }

    /// The partition for a 1-based number.
    pub fn from_number(n: u32) -> Option<Part> {
        Part::ALL.into_iter().find(|p| u32::from(p.number()) == n)
    }

    /// The volume label.
    pub const fn label(self) -> &'static str {
        match self {
            Part::Recovery => RECOVERY_LABEL,
            Part::Boot => BOOT_LABEL,
            Part::Root => ROOT_LABEL,
            Part::Data => DATA_LABEL,
        }
    }

    /// The filesystem.
    pub const fn fs(self) -> Fs {
        match self {
            Part::Recovery | Part::Boot => Fs::Fat32,
            Part::Root | Part::Data => Fs::Ext4,
        }
    }

    /// `PARTUUID=<disk id>-<nn>` as the kernel spells it for this card.
    pub fn partuuid(self, disk_id: u32) -> String {
        k8r_boot_config::mbr::partuuid(disk_id, self.number())
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition {} ({})", self.number(), self.label())
    }
}

/// The FAT volume id k8r gives the working boot partition: derived from the card's disk id,
/// so every card has its own and a reinstall keeps it.
pub const fn boot_volume_id(disk_id: u32) -> u32 {
    disk_id ^ 0x0000_b007
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_labels_and_filesystems() {
        let table: Vec<(u8, &str, Fs)> = Part::ALL
            .iter()
            .map(|p| (p.number(), p.label(), p.fs()))
            .collect();
        assert_eq!(
            table,
            vec![
                (1, "K8R-RECOVER", Fs::Fat32),
                (2, "system-boot", Fs::Fat32),
                (3, "writable", Fs::Ext4),
                (4, "k8r-data", Fs::Ext4),
            ]
        );
        for p in Part::ALL {
            assert_eq!(Part::from_number(u32::from(p.number())), Some(p));
        }
        assert_eq!(Part::from_number(5), None);
    }

    #[test]
    fn fat_labels_fit_a_fat_volume_label() {
        // FAT volume labels hold at most 11 bytes.
        for p in Part::ALL.into_iter().filter(|p| p.fs() == Fs::Fat32) {
            assert!(p.label().len() <= 11, "{p}");
        }
    }

    #[test]
    fn partuuid_form() {
        assert_eq!(Part::Root.partuuid(0x1234_abcd), "1234abcd-03");
        assert_eq!(Part::Recovery.to_string(), "partition 1 (K8R-RECOVER)");
        assert_eq!((Fs::Fat32.mbr_type(), Fs::Ext4.mbr_type()), (0x0c, 0x83));
    }

    #[test]
    fn fat_is_mounted_with_dirsync_and_ext4_without() {
        assert!(Fs::Fat32.mount_flags().contains(MountFlags::DIRSYNC));
        assert!(!Fs::Ext4.mount_flags().contains(MountFlags::DIRSYNC));
    }
}
