//! Growing the data partition (p4, `k8r-data`) to the end of the card on the first boot.
//!
//! The builder makes p4 small (the card image is sized to its content); the card it is
//! flashed to is larger. Cloud images grow their root for this (cloud-init's `growpart`), but
//! on a k8r card the root is partition 3 and must stay the size the image has, so the agent
//! grows p4 instead, online:
//!
//! 1. the new MBR: only p4's length changes ([`k8r_boot_config::mbr::Mbr::resized`] keeps
//!    every other byte), its end on a 1 MiB boundary, at most the MBR's 2 TiB limit;
//! 2. sector 0 written and synced; the kernel told with `partx --update --nr 4` (util-linux,
//!    the `BLKPG` resize ioctl: works while other partitions of the disk are in use);
//! 3. `resize2fs` on the mounted filesystem (ext4 grows online).
//!
//! A power cut between 2 and 3 leaves a larger partition with the old filesystem: the next
//! boot's plan says "partition grown, filesystem not", and step 3 runs again.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use k8r_boot_config::mbr::{Mbr, ALIGN_SECTORS};
use k8r_card::layout::DATA_LABEL;

use crate::exec::Cmd;

/// Don't bother for less than this (sectors: 16 MiB).
pub const MIN_GAIN: u64 = 16 * 2048;

/// What growing p4 would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// p4's length now, in sectors.
    pub old_sectors: u32,
    /// Its new length.
    pub new_sectors: u32,
    /// The new sector 0.
    pub sector0: [u8; 512],
}

/// The plan for a disk of `disk_sectors` whose sector 0 is `sector0`; `None` when p4
/// already ends within [`MIN_GAIN`] of the end. Pure.
///
/// # Errors
/// The table is not a k8r card's (no p4, or p4 not the last partition).
pub fn plan(sector0: &[u8], disk_sectors: u64) -> Result<Option<Plan>> {
    let mbr = Mbr::parse(sector0).context("reading the card's partition table")?;
    let Some(p4) = mbr.partitions[3] else {
        bail!("the card has no partition 4 ({DATA_LABEL}): reflash it with a k8r-built image");
    };
    if let Some((n, _)) = mbr
        .numbered()
        .find(|(n, p)| *n != 4 && p.first_lba > p4.first_lba)
    {
        bail!("partition {n} lies after partition 4: the data partition cannot grow");
    }
    let start = u64::from(p4.first_lba);
    let align = u64::from(ALIGN_SECTORS);
    let end = (disk_sectors / align * align).min(u64::from(u32::MAX) / align * align);
    if end <= start {
        bail!(
            "partition 4 starts at sector {start}, beyond the disk's end ({disk_sectors} sectors)"
        );
    }
    let want = end - start;
    if want < u64::from(p4.sectors) + MIN_GAIN {
        return Ok(None);
    }
    let new_sectors = u32::try_from(want).unwrap_or(u32::MAX);
    let sector0 = Mbr::resized(sector0, 4, new_sectors)?;
    Ok(Some(Plan {
        old_sectors: p4.sectors,
        new_sectors,
        sector0,
    }))
}

/// Grows p4 of `disk` (a block device of `disk_sectors` sectors) per [`plan`]; returns the
/// plan it carried out, if any. Does not touch the filesystem (see [`grow_filesystem`]).
pub fn grow_partition(disk: &Path, disk_sectors: u64) -> Result<Option<Plan>> {
    let mut dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {}", disk.display()))?;
    let mut sector0 = [0u8; 512];
    dev.read_exact(&mut sector0)
        .with_context(|| format!("reading {}'s partition table", disk.display()))?;
    let Some(plan) = plan(&sector0, disk_sectors)? else {
        return Ok(None);
    };
    dev.seek(SeekFrom::Start(0))
        .and_then(|_| dev.write_all(&plan.sector0))
        .and_then(|()| dev.sync_all())
        .with_context(|| format!("writing {}'s partition table", disk.display()))?;
    drop(dev);
    let disk_arg = disk.display().to_string();
    Cmd::new("partx")
        .args(["--update", "--nr", "4", disk_arg.as_str()])
        .run()
        .context("telling the kernel about the grown partition 4")?;
    Ok(Some(plan))
}

/// Grows the (mounted) ext4 on `dev` to its partition's size.
pub fn grow_filesystem(dev: &Path) -> Result<()> {
    Cmd::new("resize2fs")
        .args([dev.display().to_string()])
        .run()
        .with_context(|| format!("growing the filesystem on {}", dev.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8r_boot_config::mbr::MbrPartition;

    fn card(p4_sectors: u32) -> [u8; 512] {
        let p = |type_id, first_lba, sectors| {
            Some(MbrPartition {
                type_id,
                bootable: false,
                first_lba,
                sectors,
            })
        };
        Mbr {
            disk_id: 0x1234_5678,
            partitions: [
                p(0x0c, 2048, 2048),
                p(0x0c, 4096, 2048),
                p(0x83, 6144, 8192),
                p(0x83, 14336, p4_sectors),
            ],
        }
        .render()
    }

    #[test]
    fn grows_to_the_last_whole_mib() {
        let disk = 1_000_000 * 2 + 123; // ~1 GB, not a whole MiB
        let plan = plan(&card(32768), disk).expect("plan").expect("grows");
        assert_eq!(plan.old_sectors, 32768);
        let end = u64::from(14336 + plan.new_sectors);
        assert_eq!(end % 2048, 0);
        assert!(end <= disk && disk - end < 2048, "{end} of {disk}");
        let grown = Mbr::parse(&plan.sector0).expect("parse");
        assert_eq!(
            grown.partitions[3].map(|p| p.sectors),
            Some(plan.new_sectors)
        );
        assert_eq!(
            grown.partitions[2],
            Mbr::parse(&card(32768)).expect("p").partitions[2]
        );
        assert_eq!(grown.disk_id, 0x1234_5678);
    }

    #[test]
    fn an_already_grown_partition_is_left_alone() {
        let disk = 14336 + 32768 + 1000;
        assert_eq!(plan(&card(32768), disk).expect("plan"), None);
        // Grown once: the second boot's plan is empty.
        let big = 8 * 1024 * 1024 * 2;
        let first = plan(&card(32768), big).expect("plan").expect("grows");
        assert_eq!(plan(&first.sector0, big).expect("plan"), None);
    }

    #[test]
    fn tables_that_are_not_a_k8r_cards_are_refused() {
        let mut no_p4 = Mbr::parse(&card(1)).expect("p");
        no_p4.partitions[3] = None;
        let err = plan(&no_p4.render(), 1 << 30).expect_err("no p4");
        assert!(err.to_string().contains("no partition 4"), "{err}");
        let mut after = Mbr::parse(&card(2048)).expect("p");
        if let Some(p3) = after.partitions[2].as_mut() {
            p3.first_lba = 1 << 20;
        }
        let err = plan(&after.render(), 1 << 30).expect_err("p3 after p4");
        assert!(err.to_string().contains("partition 3 lies after"), "{err}");
    }

    #[test]
    fn the_mbr_limit_caps_the_size() {
        let huge = 8u64 << 40 >> 9; // 8 TiB card
        let plan = plan(&card(2048), huge).expect("plan").expect("grows");
        assert!(u64::from(14336u32) + u64::from(plan.new_sectors) <= u64::from(u32::MAX));
    }
}
