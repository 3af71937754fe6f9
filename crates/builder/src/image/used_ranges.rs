//! The byte ranges an ext4 filesystem image uses, read from its own block bitmaps, so the
//! installer can write (and verify) only those instead of the whole partition.
//!
//! Layout facts (kernel `Documentation/filesystems/ext4/`, e2fsprogs `lib/ext2fs`): the
//! superblock sits at byte 1024; the group descriptor table starts in the block after the
//! superblock's; each group's block bitmap covers `s_blocks_per_group` blocks from
//! `s_first_data_block + group * s_blocks_per_group`. A group flagged `BLOCK_UNINIT` has no
//! bitmap on disk: like e2fsprogs (`rw_bitmaps.c`, `mark_uninit_bg_group_blocks`) we
//! synthesise it from the superblock/descriptor backups and the group metadata that lives in
//! it. The flag is only honoured with `GDT_CSUM` or `METADATA_CSUM`, as in e2fsprogs.
//! `META_BG`, `SPARSE_SUPER2` and `BIGALLOC` change that layout and are refused (Ubuntu's
//! images use none of them). Block 0 is always reported used (with 1 KiB blocks it is the
//! boot block outside every group; with larger blocks it holds the superblock).

use std::io::{Read, Seek, SeekFrom};

/// The ext2/3/4 superblock magic.
const EXT4_MAGIC: u16 = 0xEF53;
/// Byte offset of the primary superblock.
const SUPERBLOCK_OFFSET: u64 = 1024;

const COMPAT_SPARSE_SUPER2: u32 = 0x200;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_BIGALLOC: u32 = 0x200;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
/// `bg_flags`: the block bitmap is not initialised on disk.
const BG_BLOCK_UNINIT: u16 = 0x2;

/// The used part of an ext4 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedMap {
    /// The filesystem block size in bytes.
    pub block_size: u32,
    /// The filesystem size in bytes (`blocks_count * block_size`).
    pub total_bytes: u64,
    /// Used `(byte offset, byte length)` extents: sorted, merged (never touching), block
    /// aligned.
    pub extents: Vec<(u64, u64)>,
}

impl UsedMap {
    /// The number of used bytes.
    pub fn used_bytes(&self) -> u64 {
        self.extents.iter().map(|&(_, len)| len).sum()
    }
}

/// Why the used ranges could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsedRangesError {
    /// Reading the image failed (or it ended early).
    #[error("reading the {what}: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No ext2/3/4 superblock magic at byte 1080.
    #[error("not an ext2/3/4 filesystem (superblock magic {found:#06x}, expected 0xef53)")]
    NotExt4 {
        /// The two bytes found where the magic belongs.
        found: u16,
    },
    /// The filesystem uses a feature whose layout this reader does not know.
    #[error(
        "the filesystem uses {feature}, which this reader does not support: \
         recreate it without (mke2fs -O ^{feature})"
    )]
    Unsupported {
        /// The feature's mke2fs name.
        feature: &'static str,
    },
    /// The superblock or a group descriptor holds impossible values.
    #[error("corrupt filesystem: {0}")]
    Corrupt(String),
}

/// The superblock fields the bitmaps need.
#[derive(Debug, Clone)]
struct Geometry {
    block_size: u64,
    blocks_count: u64,
    first_data_block: u64,
    blocks_per_group: u64,
    groups: u64,
    desc_size: usize,
    /// Blocks of the group descriptor table.
    gdt_blocks: u64,
    reserved_gdt_blocks: u64,
    inode_table_blocks: u64,
    sparse_super: bool,
    trust_uninit: bool,
}

/// One group descriptor's relevant fields.
#[derive(Debug, Clone, Copy)]
struct Descriptor {
    block_bitmap: u64,
    inode_bitmap: u64,
    inode_table: u64,
    flags: u16,
}

/// Reads the used byte ranges of the ext4 filesystem in `r` (a standalone filesystem image
/// starting at offset 0) from its block bitmaps.
pub fn used_ranges(r: &mut (impl Read + Seek)) -> Result<UsedMap, UsedRangesError> {
    let mut sb = [0u8; 1024];
    read_at(r, SUPERBLOCK_OFFSET, &mut sb, "superblock")?;
    let geo = Geometry::parse(&sb)?;
    let descriptors = read_descriptors(r, &geo)?;
    let foreign = metadata_by_group(&geo, &descriptors)?;

    let mut extents = Extents::default();
    // With 1 KiB blocks, block 0 (the boot block) is outside every group: see the module
    // documentation. Otherwise group 0's bitmap covers it.
    if geo.first_data_block > 0 {
        extents.push(0, geo.first_data_block);
    }
    let bitmap_len = usize::try_from(geo.block_size)
        .map_err(|_| UsedRangesError::Corrupt("block size does not fit in memory".into()))?;
    let mut bitmap = vec![0u8; bitmap_len];
    for (group, desc) in (0u64..).zip(&descriptors) {
        let start = geo.group_start(group);
        let blocks = geo.blocks_in_group(group);
        if geo.trust_uninit && desc.flags & BG_BLOCK_UNINIT != 0 {
            bitmap.fill(0);
            let mut mark = |block: u64, count: u64| {
                for b in
                    block.saturating_sub(start)..(block + count).saturating_sub(start).min(blocks)
                {
                    set_bit(&mut bitmap, b);
                }
            };
            if geo.has_super_backup(group) {
                mark(start, 1 + geo.gdt_blocks + geo.reserved_gdt_blocks);
            }
            for &(block, count) in foreign.get(usize_of(group)?).into_iter().flatten() {
                mark(block, count);
            }
        } else {
            if desc.block_bitmap >= geo.blocks_count {
                return Err(UsedRangesError::Corrupt(format!(
                    "group {group}: block bitmap at block {} beyond the end ({} blocks)",
                    desc.block_bitmap, geo.blocks_count
                )));
            }
            read_at(
                r,
                desc.block_bitmap * geo.block_size,
                &mut bitmap,
                "block bitmap",
            )?;
        }
        for_each_run(&bitmap, blocks, |first, count| {
            extents.push(start + first, count);
        });
    }

    let block_size = u32::try_from(geo.block_size)
        .map_err(|_| UsedRangesError::Corrupt("block size above 4 GiB".into()))?;
    Ok(UsedMap {
        block_size,
        total_bytes: geo.blocks_count * geo.block_size,
        extents: extents
            .0
            .into_iter()
            .map(|(block, count)| (block * geo.block_size, count * geo.block_size))
            .collect(),
    })
}

impl Geometry {
    fn parse(sb: &[u8; 1024]) -> Result<Geometry, UsedRangesError> {
        let magic = le16(sb, 0x38);
        if magic != EXT4_MAGIC {
            return Err(UsedRangesError::NotExt4 { found: magic });
        }
        let compat = le32(sb, 0x5C);
        let incompat = le32(sb, 0x60);
        let ro_compat = le32(sb, 0x64);
        for (set, feature) in [
            (incompat & INCOMPAT_META_BG != 0, "meta_bg"),
            (compat & COMPAT_SPARSE_SUPER2 != 0, "sparse_super2"),
            (ro_compat & RO_COMPAT_BIGALLOC != 0, "bigalloc"),
        ] {
            if set {
                return Err(UsedRangesError::Unsupported { feature });
            }
        }
        let corrupt = |what: String| Err(UsedRangesError::Corrupt(what));

        let log_block_size = le32(sb, 0x18);
        if log_block_size > 6 {
            return corrupt(format!("s_log_block_size {log_block_size} (above 64 KiB)"));
        }
        let block_size = 1024u64 << log_block_size;
        let is_64bit = incompat & INCOMPAT_64BIT != 0;
        let blocks_count = u64::from(le32(sb, 0x04))
            | if is_64bit {
                u64::from(le32(sb, 0x150)) << 32
            } else {
                0
            };
        let first_data_block = u64::from(le32(sb, 0x14));
        let blocks_per_group = u64::from(le32(sb, 0x20));
        if first_data_block != u64::from(block_size == 1024) {
            return corrupt(format!(
                "s_first_data_block {first_data_block} with {block_size}-byte blocks"
            ));
        }
        if blocks_per_group == 0 || blocks_per_group > 8 * block_size {
            return corrupt(format!(
                "s_blocks_per_group {blocks_per_group} with {block_size}-byte blocks"
            ));
        }
        if blocks_count <= first_data_block {
            return corrupt(format!("s_blocks_count {blocks_count}"));
        }
        let groups = (blocks_count - first_data_block).div_ceil(blocks_per_group);
        let desc_size = if is_64bit {
            let size = le16(sb, 0xFE);
            if size < 64 || !size.is_power_of_two() || u64::from(size) > block_size {
                return corrupt(format!("s_desc_size {size}"));
            }
            usize::from(size)
        } else {
            32
        };
        let inodes_per_group = u64::from(le32(sb, 0x28));
        // Revision 0 filesystems have 128-byte inodes and no s_inode_size.
        let inode_size = if le32(sb, 0x4C) == 0 {
            128
        } else {
            u64::from(le16(sb, 0x58))
        };
        if inode_size < 128 || inode_size > block_size {
            return corrupt(format!("s_inode_size {inode_size}"));
        }
        Ok(Geometry {
            block_size,
            blocks_count,
            first_data_block,
            blocks_per_group,
            groups,
            desc_size,
            gdt_blocks: (groups * desc_size as u64).div_ceil(block_size),
            reserved_gdt_blocks: u64::from(le16(sb, 0xCE)),
            inode_table_blocks: (inodes_per_group * inode_size).div_ceil(block_size),
            sparse_super: ro_compat & RO_COMPAT_SPARSE_SUPER != 0,
            trust_uninit: ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0,
        })
    }

    fn group_start(&self, group: u64) -> u64 {
        self.first_data_block + group * self.blocks_per_group
    }

    /// The last group may be shorter.
    fn blocks_in_group(&self, group: u64) -> u64 {
        (self.blocks_count - self.group_start(group)).min(self.blocks_per_group)
    }

    /// Whether `group` holds a superblock and descriptor table backup: every group without
    /// SPARSE_SUPER, else groups 0, 1 and powers of 3, 5 and 7.
    fn has_super_backup(&self, group: u64) -> bool {
        if !self.sparse_super || group <= 1 {
            return true;
        }
        [3u64, 5, 7].iter().any(|&base| {
            let mut n = base;
            while n < group {
                n *= base;
            }
            n == group
        })
    }
}

fn read_descriptors(
    r: &mut (impl Read + Seek),
    geo: &Geometry,
) -> Result<Vec<Descriptor>, UsedRangesError> {
    let table_len = geo
        .groups
        .checked_mul(geo.desc_size as u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n as u64 <= geo.blocks_count * geo.block_size)
        .ok_or_else(|| UsedRangesError::Corrupt(format!("{} block groups", geo.groups)))?;
    let mut table = vec![0u8; table_len];
    read_at(
        r,
        (geo.first_data_block + 1) * geo.block_size,
        &mut table,
        "group descriptor table",
    )?;
    let wide = geo.desc_size >= 64;
    let lo_hi = |d: &[u8], lo: usize, hi: usize| {
        u64::from(le32(d, lo))
            | if wide {
                u64::from(le32(d, hi)) << 32
            } else {
                0
            }
    };
    Ok(table
        .chunks_exact(geo.desc_size)
        .map(|d| Descriptor {
            block_bitmap: lo_hi(d, 0x00, 0x20),
            inode_bitmap: lo_hi(d, 0x04, 0x24),
            inode_table: lo_hi(d, 0x08, 0x28),
            flags: le16(d, 0x12),
        })
        .collect())
}

/// For each group, the `(block, count)` pieces of any group's block bitmap, inode bitmap and
/// inode table that lie inside it (with FLEX_BG they are packed into the flex group's first
/// group; without, each group holds its own).
fn metadata_by_group(
    geo: &Geometry,
    descriptors: &[Descriptor],
) -> Result<Vec<Vec<(u64, u64)>>, UsedRangesError> {
    let mut by_group = vec![Vec::new(); descriptors.len()];
    for (group, d) in descriptors.iter().enumerate() {
        for (block, count) in [
            (d.block_bitmap, 1),
            (d.inode_bitmap, 1),
            (d.inode_table, geo.inode_table_blocks),
        ] {
            if block < geo.first_data_block
                || block
                    .checked_add(count)
                    .is_none_or(|end| end > geo.blocks_count)
            {
                return Err(UsedRangesError::Corrupt(format!(
                    "group {group}: metadata at blocks {block}+{count} outside the filesystem"
                )));
            }
            // Split at group boundaries (an inode table may cross one).
            let mut at = block;
            while at < block + count {
                let g = (at - geo.first_data_block) / geo.blocks_per_group;
                let end = (geo.group_start(g) + geo.blocks_per_group).min(block + count);
                by_group[usize_of(g)?].push((at, end - at));
                at = end;
            }
        }
    }
    Ok(by_group)
}

/// Sorted block runs, merging a run that starts where the previous one ends.
#[derive(Debug, Default)]
struct Extents(Vec<(u64, u64)>);

impl Extents {
    fn push(&mut self, block: u64, count: u64) {
        match self.0.last_mut() {
            Some(last) if last.0 + last.1 == block => last.1 += count,
            _ => self.0.push((block, count)),
        }
    }
}

/// Calls `f(first, count)` for each run of set bits among the first `bits` bits (LSB first).
fn for_each_run(bitmap: &[u8], bits: u64, mut f: impl FnMut(u64, u64)) {
    let mut run: Option<u64> = None;
    let mut bit = 0u64;
    while bit < bits {
        let byte = bitmap[usize::try_from(bit / 8).unwrap_or(usize::MAX)];
        // Whole bytes of 0x00 / 0xff are the common case.
        if bit.is_multiple_of(8) && bit + 8 <= bits && (byte == 0 || byte == 0xff) {
            match (byte == 0xff, run) {
                (true, None) => run = Some(bit),
                (false, Some(first)) => {
                    f(first, bit - first);
                    run = None;
                }
                _ => {}
            }
            bit += 8;
            continue;
        }
        let set = byte & (1 << (bit % 8)) != 0;
        match (set, run) {
            (true, None) => run = Some(bit),
            (false, Some(first)) => {
                f(first, bit - first);
                run = None;
            }
            _ => {}
        }
        bit += 1;
    }
    if let Some(first) = run {
        f(first, bits - first);
    }
}

fn set_bit(bitmap: &mut [u8], bit: u64) {
    if let Some(byte) = usize::try_from(bit / 8)
        .ok()
        .and_then(|i| bitmap.get_mut(i))
    {
        *byte |= 1 << (bit % 8);
    }
}

fn usize_of(n: u64) -> Result<usize, UsedRangesError> {
    usize::try_from(n).map_err(|_| UsedRangesError::Corrupt(format!("{n} does not fit in memory")))
}

fn read_at(
    r: &mut (impl Read + Seek),
    offset: u64,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), UsedRangesError> {
    r.seek(SeekFrom::Start(offset))
        .and_then(|_| r.read_exact(buf))
        .map_err(|source| UsedRangesError::Io { what, source })
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::fs::File;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn mkfs(dir: &Path, name: &str, args: &[&str], size: &str) -> PathBuf {
        let path = dir.join(name);
        run(Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4"])
            .args(args)
            .arg(&path)
            .arg(size)
            .env("E2FSPROGS_FAKE_TIME", "1700000000"));
        path
    }

    fn read_map(path: &Path) -> UsedMap {
        used_ranges(&mut File::open(path).unwrap()).unwrap()
    }

    /// The used blocks according to `dumpe2fs`: every group's blocks minus its free list.
    fn dumpe2fs_used(path: &Path) -> Vec<(u64, u64)> {
        let text = run(Command::new("dumpe2fs").arg(path));
        let mut used = Extents::default();
        let mut group: Option<(u64, u64)> = None;
        let range = |s: &str| -> (u64, u64) {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            (a.trim().parse().unwrap(), b.trim().parse().unwrap())
        };
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("Group ")
                .filter(|r| r.contains("(Blocks "))
            {
                let blocks = rest.split("(Blocks ").nth(1).unwrap();
                group = Some(range(blocks.split(')').next().unwrap()));
            } else if let (Some(free), Some((first, last))) = (
                line.trim().strip_prefix("Free blocks:").map(str::trim),
                group,
            ) {
                // The header's "Free blocks: N" comes before any group and is skipped.
                group = None;
                let mut at = first;
                for piece in free.split(", ").filter(|p| !p.is_empty()) {
                    let (a, b) = range(piece);
                    if a > at {
                        used.push(at, a - at);
                    }
                    at = b + 1;
                }
                if at <= last {
                    used.push(at, last + 1 - at);
                }
            }
        }
        used.0
    }

    fn assert_matches_dumpe2fs(path: &Path) -> UsedMap {
        let map = read_map(path);
        let bs = u64::from(map.block_size);
        let mut expected = dumpe2fs_used(path);
        // Block 0 is outside every group with 1 KiB blocks; we always report it used.
        if expected.first().is_none_or(|e| e.0 != 0) {
            let mut with_zero = Extents::default();
            with_zero.push(0, 1);
            for (b, c) in expected {
                with_zero.push(b, c);
            }
            expected = with_zero.0;
        }
        let got: Vec<(u64, u64)> = map.extents.iter().map(|&(o, l)| (o / bs, l / bs)).collect();
        assert_eq!(got, expected, "{}", path.display());
        assert!(map.extents.iter().all(|&(o, l)| o % bs == 0 && l % bs == 0));
        assert_eq!(map.total_bytes, std::fs::metadata(path).unwrap().len());
        map
    }

    /// Deterministic, poorly compressible bytes.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect()
    }

    /// A directory with a few MB of files, some nested, one sparse-ish.
    fn populate(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let files: Vec<(String, Vec<u8>)> = vec![
            ("a.bin".into(), noise(1, 3 * 1024 * 1024 + 17)),
            ("empty".into(), Vec::new()),
            ("etc/hostname".into(), b"k8r\n".to_vec()),
            ("usr/lib/big.bin".into(), noise(2, 2 * 1024 * 1024)),
            ("usr/lib/zeros".into(), vec![0u8; 300_000]),
            ("usr/share/small.txt".into(), noise(3, 5000)),
        ];
        for (name, data) in &files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        for i in 0..200 {
            std::fs::write(dir.join(format!("etc/f{i}")), noise(i, 100)).unwrap();
        }
        files
    }

    #[test]
    fn matches_dumpe2fs_4k() {
        let dir = tempfile::tempdir().unwrap();
        // 8 groups of 128 MiB, most of them BLOCK_UNINIT, metadata packed into group 0.
        let map = assert_matches_dumpe2fs(&mkfs(dir.path(), "img", &["-b", "4096"], "1G"));
        assert_eq!(map.block_size, 4096);
        assert_eq!(map.total_bytes, 1 << 30);
        assert!(map.used_bytes() < 64 << 20, "{map:?}");
    }

    #[test]
    fn matches_dumpe2fs_1k() {
        let dir = tempfile::tempdir().unwrap();
        // 50 groups of 8 MiB: four flex groups, so BLOCK_UNINIT groups sit next to groups
        // holding other groups' metadata.
        let map = assert_matches_dumpe2fs(&mkfs(dir.path(), "img", &["-b", "1024"], "400M"));
        assert_eq!(map.block_size, 1024);
        assert_eq!(map.extents[0].0, 0);
    }

    #[test]
    fn matches_dumpe2fs_without_flex_bg() {
        let dir = tempfile::tempdir().unwrap();
        assert_matches_dumpe2fs(&mkfs(
            dir.path(),
            "img",
            &["-b", "4096", "-O", "^flex_bg"],
            "1G",
        ));
    }

    #[test]
    fn matches_dumpe2fs_uninit_bg_without_metadata_csum() {
        let dir = tempfile::tempdir().unwrap();
        assert_matches_dumpe2fs(&mkfs(
            dir.path(),
            "img",
            &["-b", "1024", "-O", "^metadata_csum,uninit_bg"],
            "100M",
        ));
    }

    #[test]
    fn matches_dumpe2fs_without_csums_or_64bit() {
        // No GDT_CSUM/METADATA_CSUM: every bitmap is on disk; 32-byte descriptors.
        let dir = tempfile::tempdir().unwrap();
        assert_matches_dumpe2fs(&mkfs(
            dir.path(),
            "img",
            &[
                "-b",
                "4096",
                "-O",
                "^metadata_csum,^64bit,^sparse_super,^resize_inode",
            ],
            "200M",
        ));
    }

    #[test]
    fn matches_dumpe2fs_odd_last_group() {
        // 1 KiB blocks, 8192 blocks per group, a short last group; and an ext2 for good measure.
        let dir = tempfile::tempdir().unwrap();
        assert_matches_dumpe2fs(&mkfs(dir.path(), "img", &["-b", "1024"], "20001K"));
        let path = dir.path().join("ext2");
        run(Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext2", "-b", "4096"])
            .arg(&path)
            .arg("150M"));
        assert_matches_dumpe2fs(&path);
    }

    #[test]
    fn matches_dumpe2fs_populated() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        populate(&root);
        let root_arg = root.to_str().unwrap();
        for bs in ["4096", "1024"] {
            let img = mkfs(
                dir.path(),
                &format!("img{bs}"),
                &["-b", bs, "-d", root_arg],
                "96M",
            );
            let map = assert_matches_dumpe2fs(&img);
            assert!(map.used_bytes() > 5 << 20);
        }
    }

    #[test]
    fn used_ranges_alone_reproduce_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let files = populate(&root);
        for bs in ["4096", "1024"] {
            let img = mkfs(
                dir.path(),
                &format!("img{bs}"),
                &["-b", bs, "-d", root.to_str().unwrap()],
                "160M",
            );
            let map = read_map(&img);
            assert!(map.used_bytes() < map.total_bytes / 2, "{map:?}");

            // Copy only the used ranges onto garbage.
            let copy = dir.path().join(format!("copy{bs}"));
            let mut target = File::create(&copy).unwrap();
            let garbage = vec![0xA5u8; 1 << 20];
            for _ in 0..map.total_bytes >> 20 {
                target.write_all(&garbage).unwrap();
            }
            let mut source = File::open(&img).unwrap();
            for &(off, len) in &map.extents {
                let mut buf = vec![0u8; usize::try_from(len).unwrap()];
                source.seek(SeekFrom::Start(off)).unwrap();
                source.read_exact(&mut buf).unwrap();
                target.seek(SeekFrom::Start(off)).unwrap();
                target.write_all(&buf).unwrap();
            }
            drop(target);

            let fsck = Command::new("e2fsck")
                .arg("-fn")
                .arg(&copy)
                .output()
                .unwrap();
            assert!(fsck.status.success(), "e2fsck: {fsck:?}");
            for (name, data) in &files {
                let out = Command::new("debugfs")
                    .arg("-R")
                    .arg(format!("cat /{name}"))
                    .arg(&copy)
                    .output()
                    .unwrap();
                assert!(out.stdout == *data, "{name} differs in the {bs} copy");
            }
        }
    }

    #[test]
    fn refuses_bigalloc() {
        let dir = tempfile::tempdir().unwrap();
        let img = mkfs(dir.path(), "img", &["-O", "bigalloc", "-C", "16384"], "64M");
        let err = used_ranges(&mut File::open(img).unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                UsedRangesError::Unsupported {
                    feature: "bigalloc"
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("mke2fs -O ^bigalloc"));
    }

    #[test]
    fn refuses_meta_bg() {
        let dir = tempfile::tempdir().unwrap();
        let img = mkfs(
            dir.path(),
            "img",
            &["-b", "4096", "-O", "meta_bg,^resize_inode"],
            "64M",
        );
        let err = used_ranges(&mut File::open(img).unwrap()).unwrap_err();
        assert!(
            matches!(err, UsedRangesError::Unsupported { feature: "meta_bg" }),
            "{err}"
        );
    }

    #[test]
    fn refuses_garbage() {
        let err = used_ranges(&mut std::io::Cursor::new(noise(9, 1 << 20))).unwrap_err();
        assert!(matches!(err, UsedRangesError::NotExt4 { .. }), "{err}");
        let err = used_ranges(&mut std::io::Cursor::new(vec![0u8; 100])).unwrap_err();
        assert!(
            matches!(
                err,
                UsedRangesError::Io {
                    what: "superblock",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_truncated_image() {
        let dir = tempfile::tempdir().unwrap();
        let img = mkfs(dir.path(), "img", &["-b", "4096"], "64M");
        let bytes = std::fs::read(&img).unwrap();
        let err = used_ranges(&mut std::io::Cursor::new(&bytes[..8192])).unwrap_err();
        assert!(matches!(err, UsedRangesError::Io { .. }), "{err}");
    }

    #[test]
    fn refuses_corrupt_superblock() {
        let dir = tempfile::tempdir().unwrap();
        let img = mkfs(dir.path(), "img", &["-b", "4096"], "64M");
        let mut bytes = std::fs::read(&img).unwrap();
        bytes[1024 + 0x18] = 9; // s_log_block_size
        let err = used_ranges(&mut std::io::Cursor::new(&bytes)).unwrap_err();
        assert!(matches!(err, UsedRangesError::Corrupt(_)), "{err}");
    }

    #[test]
    fn runs_from_bits() {
        let mut runs = Vec::new();
        for_each_run(&[0xff, 0x0f, 0x00, 0x81, 0xff], 37, |a, b| {
            runs.push((a, b))
        });
        assert_eq!(runs, vec![(0, 12), (24, 1), (31, 6)]);
        runs.clear();
        for_each_run(&[0xff, 0xff], 9, |a, b| runs.push((a, b)));
        assert_eq!(runs, vec![(0, 9)]);
    }

    #[test]
    fn sparse_super_groups() {
        let geo = Geometry {
            block_size: 4096,
            blocks_count: 1 << 30,
            first_data_block: 0,
            blocks_per_group: 32768,
            groups: 1 << 15,
            desc_size: 64,
            gdt_blocks: 1,
            reserved_gdt_blocks: 0,
            inode_table_blocks: 1,
            sparse_super: true,
            trust_uninit: true,
        };
        let backups: Vec<u64> = (0..100).filter(|&g| geo.has_super_backup(g)).collect();
        assert_eq!(backups, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }
}
