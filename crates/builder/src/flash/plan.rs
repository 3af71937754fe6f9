//! Which bytes of a card image `flash` writes (pure).
//!
//! A card is mostly free space: holes in the image file, and blocks its file systems do not
//! use. Skipping them is safe only where nothing reads them as meaning, so per region:
//!
//! - before the first partition (the MBR and the alignment gap): everything;
//! - a FAT partition: its metadata (reserved sectors with the boot sector, FSInfo and the
//!   backup, the FATs, a FAT16 root directory) always, zeros included, because a FAT read
//!   off a reused card must not keep an old card's cluster chains; after it only the data the
//!   image file holds (its free clusters are holes, and FAT never reads a free cluster);
//! - an ext4 partition: the blocks its bitmaps mark used (metadata included), as the
//!   installer does on the Pi;
//! - anything else (an unknown partition type): the whole partition.
//!
//! Bytes past the image's end (a larger card) are never touched.

/// What a partition holds, as far as the plan is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// FAT: the first `meta_len` bytes are metadata.
    Fat {
        /// Bytes from the partition start to the first data cluster.
        meta_len: u64,
    },
    /// ext4: the used `(offset, length)` ranges, relative to the partition start.
    Ext4 {
        /// Used ranges.
        used: Vec<(u64, u64)>,
    },
    /// Anything else: written whole.
    Unknown,
}

/// One partition of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Byte offset in the image.
    pub start: u64,
    /// Byte length.
    pub len: u64,
    /// What it holds.
    pub content: Content,
}

/// The FAT metadata length from a boot sector (BPB), or `None` if it is not one.
pub fn fat_meta_len(boot: &[u8]) -> Option<u64> {
    if boot.len() < 512 || boot[510..512] != [0x55, 0xaa] {
        return None;
    }
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([boot[o], boot[o + 1]]));
    let u32_at = |o: usize| {
        u64::from(u32::from_le_bytes([
            boot[o],
            boot[o + 1],
            boot[o + 2],
            boot[o + 3],
        ]))
    };
    let bytes_per_sector = u16_at(11);
    let reserved = u16_at(14);
    let fats = u64::from(boot[16]);
    let root_entries = u16_at(17);
    let fat_size = match u16_at(22) {
        0 => u32_at(36),
        n => n,
    };
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        || reserved == 0
        || fats == 0
        || fat_size == 0
        || boot[13] == 0
    {
        return None;
    }
    let root_dir = (root_entries * 32).div_ceil(bytes_per_sector) * bytes_per_sector;
    Some((reserved + fats * fat_size) * bytes_per_sector + root_dir)
}

/// The byte ranges to write, sorted and merged: see the module documentation. `data` are the
/// image file's data extents (`SEEK_DATA`/`SEEK_HOLE`), `image_len` its length.
pub fn ranges(image_len: u64, regions: &[Region], data: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let first = regions.iter().map(|r| r.start).min().unwrap_or(image_len);
    out.push((0, first.min(image_len)));
    for r in regions {
        let end = r.start.saturating_add(r.len).min(image_len);
        if r.start >= end {
            continue;
        }
        match &r.content {
            Content::Unknown => out.push((r.start, end - r.start)),
            Content::Ext4 { used } => {
                for &(off, len) in used {
                    let s = r.start.saturating_add(off).min(end);
                    let e = s.saturating_add(len).min(end);
                    out.push((s, e - s));
                }
            }
            Content::Fat { meta_len } => {
                let meta_end = r.start.saturating_add(*meta_len).min(end);
                out.push((r.start, meta_end - r.start));
                for &(off, len) in data {
                    let s = off.max(meta_end);
                    let e = off.saturating_add(len).min(end);
                    if s < e {
                        out.push((s, e - s));
                    }
                }
            }
        }
    }
    merge(out)
}

/// Sorts and merges touching or overlapping ranges; drops empty ones.
fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|&(_, len)| len > 0);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (off, len) in ranges {
        let end = off.saturating_add(len);
        match out.last_mut() {
            Some((o, l)) if *o + *l >= off => *l = (*l).max(end - *o),
            _ => out.push((off, len)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn fat32_boot(reserved: u16, fat_sectors: u32) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = 8;
        b[14..16].copy_from_slice(&reserved.to_le_bytes());
        b[16] = 2;
        b[36..40].copy_from_slice(&fat_sectors.to_le_bytes());
        b[510] = 0x55;
        b[511] = 0xaa;
        b
    }

    #[test]
    fn fat_metadata_is_reserved_sectors_fats_and_a_fat16_root() {
        assert_eq!(fat_meta_len(&fat32_boot(32, 1000)), Some((32 + 2000) * 512));
        let mut fat16 = fat32_boot(4, 0);
        fat16[22..24].copy_from_slice(&200u16.to_le_bytes());
        fat16[17..19].copy_from_slice(&512u16.to_le_bytes());
        assert_eq!(fat_meta_len(&fat16), Some((4 + 400) * 512 + 512 * 32));
        assert_eq!(fat_meta_len(&[0u8; 512]), None, "no signature");
        let mut no_fats = fat32_boot(32, 1000);
        no_fats[16] = 0;
        assert_eq!(fat_meta_len(&no_fats), None);
    }

    #[test]
    fn holes_and_free_blocks_are_skipped_metadata_and_the_gap_are_not() {
        let regions = [
            Region {
                start: MIB,
                len: 64 * MIB,
                content: Content::Fat { meta_len: MIB / 2 },
            },
            Region {
                start: 65 * MIB,
                len: 100 * MIB,
                content: Content::Ext4 {
                    used: vec![(0, 4 * MIB), (50 * MIB, MIB)],
                },
            },
            Region {
                start: 165 * MIB,
                len: MIB,
                content: Content::Unknown,
            },
        ];
        // The image holds data in the FAT's metadata (partly), one data cluster run, and
        // everywhere in the ext4 partition (free blocks the builder wrote zeros into).
        let data = [
            (0, 4096),
            (MIB, 4096),
            (10 * MIB, 2 * MIB),
            (65 * MIB, 100 * MIB),
        ];
        assert_eq!(
            ranges(166 * MIB, &regions, &data),
            [
                (0, MIB + MIB / 2),
                (10 * MIB, 2 * MIB),
                (65 * MIB, 4 * MIB),
                (115 * MIB, MIB),
                (165 * MIB, MIB),
            ]
        );
    }

    #[test]
    fn nothing_past_the_image_end_and_data_outside_a_partition_ignored() {
        let regions = [Region {
            start: MIB,
            len: 10 * MIB,
            content: Content::Fat { meta_len: MIB },
        }];
        assert_eq!(
            ranges(4 * MIB, &regions, &[(3 * MIB, 8 * MIB)]),
            [(0, 2 * MIB), (3 * MIB, MIB)]
        );
    }
}
