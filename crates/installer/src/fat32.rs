//! An empty FAT32 file system, laid down by hand.
//!
//! The installer recreates the working boot partition (partition 2, `system-boot`) with this
//! and then mounts it with the kernel's own vfat driver, which writes the files
//! (`assembly-notes.md`: the kernel is the reference writer on the device). So this module only
//! writes the metadata of an *empty* volume: the boot sector and its backup, FSInfo and its
//! backup, both FATs, and the root directory cluster holding the volume-label entry.
//!
//! [`layout`] is pure (the geometry from the size); [`format`] writes through any
//! `Write + Seek` positioned at the start of the partition (a `File` on `/dev/mmcblk0p2`, or a
//! test file). The numbers follow Microsoft's "FAT: General Overview of On-Disk Format"
//! (fatgen103), which is also what the Linux `fat` driver and dosfstools check against.

use std::io::{self, Seek, SeekFrom, Write};

/// Bytes per sector: the only size SD cards and this installer use.
pub const SECTOR_SIZE: u64 = 512;
/// Sectors before the first FAT (boot sector, FSInfo, backups, room).
pub const RESERVED_SECTORS: u16 = 32;
/// Number of FAT copies.
pub const NUM_FATS: u8 = 2;
/// Media descriptor for fixed media.
pub const MEDIA: u8 = 0xF8;
/// First cluster of the root directory.
pub const ROOT_CLUSTER: u32 = 2;
/// Fewest clusters a FAT32 volume may have (fewer and every driver reads it as FAT16).
pub const MIN_CLUSTERS: u32 = 65_525;
/// Most clusters a FAT32 volume may have (28-bit entries minus the reserved values).
pub const MAX_CLUSTERS: u32 = 0x0FFF_FFF5 - 2;
/// Partitions at least this large get 4 KiB clusters (8 sectors) when the count allows.
pub const PREFER_4K_FROM: u64 = 256 * 1024 * 1024;

const FSINFO_SECTOR: u16 = 1;
const BACKUP_BOOT_SECTOR: u16 = 6;
/// The most sectors per cluster FAT allows with 512-byte sectors (64 KiB clusters).
const MAX_SECTORS_PER_CLUSTER: u8 = 128;

/// What to format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fat32Params {
    /// Size of the partition in bytes; a trailing partial sector is ignored.
    pub size_bytes: u64,
    /// LBA of the partition's first sector on the disk ("hidden sectors" in the BPB).
    pub start_lba: u32,
    /// Volume label: 1 to 11 printable ASCII characters, case kept (`system-boot` is fine).
    pub label: String,
    /// Volume serial number (shown by blkid as the UUID `XXXX-XXXX`).
    pub volume_id: u32,
}

/// The geometry [`layout`] chose. All sector numbers are relative to the partition start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fat32Layout {
    /// Sectors in the file system (the BPB's `TotSec32`).
    pub total_sectors: u32,
    /// Sectors per cluster (1, 2, 4, ... 128).
    pub sectors_per_cluster: u8,
    /// Reserved sectors before the first FAT.
    pub reserved_sectors: u16,
    /// Sectors in each FAT (the BPB's `FATSz32`).
    pub fat_sectors: u32,
    /// Data clusters (numbered 2 ..= cluster_count + 1).
    pub cluster_count: u32,
    /// First sector of the data region (cluster 2).
    pub data_start_sector: u32,
}

impl Fat32Layout {
    /// Bytes per cluster.
    #[must_use]
    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * SECTOR_SIZE
    }

    /// Byte offset (from the partition start) of FAT number `n` (0 or 1).
    #[must_use]
    pub fn fat_offset(&self, n: u8) -> u64 {
        (u64::from(self.reserved_sectors) + u64::from(n) * u64::from(self.fat_sectors))
            * SECTOR_SIZE
    }

    /// Byte offset (from the partition start) of the data region (cluster 2).
    #[must_use]
    pub fn data_offset(&self) -> u64 {
        u64::from(self.data_start_sector) * SECTOR_SIZE
    }
}

/// Why a FAT32 volume could not be laid out or written.
#[derive(Debug, thiserror::Error)]
pub enum Fat32Error {
    /// Fewer than 65,525 clusters even with 512-byte clusters.
    #[error(
        "FAT32: a partition of {size_bytes} bytes is too small: it holds {clusters} clusters of \
         512 bytes and FAT32 needs at least {MIN_CLUSTERS} (about 33 MiB); make the partition larger"
    )]
    TooSmall {
        /// The size asked for.
        size_bytes: u64,
        /// Clusters it would hold with 512-byte clusters.
        clusters: u64,
    },
    /// More sectors than a FAT32 boot sector can describe, or too many clusters even at 64 KiB.
    #[error(
        "FAT32: a partition of {size_bytes} bytes is too large (FAT32 with 512-byte sectors ends \
         at 2 TiB); make the partition smaller"
    )]
    TooLarge {
        /// The size asked for.
        size_bytes: u64,
    },
    /// The label cannot be stored.
    #[error("FAT32: volume label {label:?}: {reason}")]
    Label {
        /// The label given.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Writing to the device failed.
    #[error("FAT32: writing the {what} at byte {offset} of the partition: {source}")]
    Io {
        /// Which region was being written.
        what: &'static str,
        /// Byte offset from the partition start.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// The standard FAT size (fatgen103, "FAT Type Determination"): a slight over-estimate that
/// always covers every cluster.
fn fat_sectors_for(total_sectors: u32, sectors_per_cluster: u8) -> u32 {
    let tmp1 = u64::from(total_sectors) - u64::from(RESERVED_SECTORS);
    let tmp2 = (256 * u64::from(sectors_per_cluster) + u64::from(NUM_FATS)) / 2;
    let fat = tmp1.div_ceil(tmp2);
    // tmp1 < 2^32 and tmp2 >= 128, so this always fits.
    u32::try_from(fat).unwrap_or(u32::MAX)
}

/// Clusters in a volume of `total_sectors` with `spc` sectors per cluster (0 if it has no room).
fn clusters_for(total_sectors: u32, spc: u8) -> (u32, u64) {
    let fat = fat_sectors_for(total_sectors, spc);
    let meta = u64::from(RESERVED_SECTORS) + u64::from(NUM_FATS) * u64::from(fat);
    let clusters = u64::from(total_sectors).saturating_sub(meta) / u64::from(spc);
    (fat, clusters)
}

/// Chooses the geometry for `p`. Pure: touches no device.
///
/// Cluster size: 4 KiB (8 sectors) from 256 MiB up, 2 KiB below; halved while the volume would
/// hold fewer than 65,525 clusters (a 256 MiB partition gets 2 KiB clusters for that reason),
/// doubled while it would hold more than FAT32 allows. Refused when even 512-byte clusters are
/// too few (below about 33 MiB).
///
/// # Errors
///
/// [`Fat32Error::TooSmall`], [`Fat32Error::TooLarge`], [`Fat32Error::Label`].
pub fn layout(p: &Fat32Params) -> Result<Fat32Layout, Fat32Error> {
    label_bytes(&p.label)?;
    let total_sectors =
        u32::try_from(p.size_bytes / SECTOR_SIZE).map_err(|_| Fat32Error::TooLarge {
            size_bytes: p.size_bytes,
        })?;
    if u64::from(total_sectors) <= u64::from(RESERVED_SECTORS) + 2 {
        return Err(Fat32Error::TooSmall {
            size_bytes: p.size_bytes,
            clusters: 0,
        });
    }
    let mut spc: u8 = if p.size_bytes >= PREFER_4K_FROM { 8 } else { 4 };
    loop {
        let (fat_sectors, clusters) = clusters_for(total_sectors, spc);
        if clusters < u64::from(MIN_CLUSTERS) {
            if spc == 1 {
                return Err(Fat32Error::TooSmall {
                    size_bytes: p.size_bytes,
                    clusters,
                });
            }
            spc /= 2;
            continue;
        }
        if clusters > u64::from(MAX_CLUSTERS) {
            if spc == MAX_SECTORS_PER_CLUSTER {
                return Err(Fat32Error::TooLarge {
                    size_bytes: p.size_bytes,
                });
            }
            spc *= 2;
            continue;
        }
        let cluster_count = u32::try_from(clusters).map_err(|_| Fat32Error::TooLarge {
            size_bytes: p.size_bytes,
        })?;
        let data_start_sector = u32::from(RESERVED_SECTORS) + u32::from(NUM_FATS) * fat_sectors;
        return Ok(Fat32Layout {
            total_sectors,
            sectors_per_cluster: spc,
            reserved_sectors: RESERVED_SECTORS,
            fat_sectors,
            cluster_count,
            data_start_sector,
        });
    }
}

/// The label as the 11 bytes FAT stores (padded with spaces), or why it cannot be one.
fn label_bytes(label: &str) -> Result<[u8; 11], Fat32Error> {
    let bad = |reason| Fat32Error::Label {
        label: label.to_owned(),
        reason,
    };
    let bytes = label.as_bytes();
    if bytes.is_empty() {
        return Err(bad("it is empty"));
    }
    if bytes.len() > 11 {
        return Err(bad("it is longer than 11 characters"));
    }
    if bytes.iter().any(|b| !(0x20..=0x7E).contains(b)) {
        return Err(bad("only printable ASCII characters are allowed"));
    }
    // Characters FAT short names (and so labels) may not contain; fsck.fat flags them.
    if bytes.iter().any(|b| b"\"*+,./:;<=>?[\\]|".contains(b)) {
        return Err(bad("it contains one of \" * + , . / : ; < = > ? [ \\ ] |"));
    }
    if bytes[0] == b' ' {
        return Err(bad("it starts with a space"));
    }
    let mut out = [b' '; 11];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The boot sector (BPB for FAT32), 512 bytes.
fn boot_sector(l: &Fat32Layout, p: &Fat32Params, label: &[u8; 11]) -> [u8; 512] {
    let mut s = [0u8; 512];
    // Jump over the BPB to the "boot code" at 0x5A, which just loops (this is not the
    // partition a Pi's firmware boots through a BIOS; it reads the FAT itself).
    s[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    s[3..11].copy_from_slice(b"MSWIN4.1"); // fatgen103's most compatible OEM name
    put_u16(&mut s, 11, 512); // BytsPerSec
    s[13] = l.sectors_per_cluster; // SecPerClus
    put_u16(&mut s, 14, l.reserved_sectors); // RsvdSecCnt
    s[16] = NUM_FATS; // NumFATs
    put_u16(&mut s, 17, 0); // RootEntCnt: 0 on FAT32
    put_u16(&mut s, 19, 0); // TotSec16: 0, TotSec32 holds it
    s[21] = MEDIA; // Media
    put_u16(&mut s, 22, 0); // FATSz16: 0 on FAT32
    put_u16(&mut s, 24, 63); // SecPerTrk (geometry nobody uses; mkfs.fat's defaults)
    put_u16(&mut s, 26, 255); // NumHeads
    put_u32(&mut s, 28, p.start_lba); // HiddSec
    put_u32(&mut s, 32, l.total_sectors); // TotSec32
    put_u32(&mut s, 36, l.fat_sectors); // FATSz32
    put_u16(&mut s, 40, 0); // ExtFlags: FAT mirroring on
    put_u16(&mut s, 42, 0); // FSVer 0.0
    put_u32(&mut s, 44, ROOT_CLUSTER); // RootClus
    put_u16(&mut s, 48, FSINFO_SECTOR); // FSInfo
    put_u16(&mut s, 50, BACKUP_BOOT_SECTOR); // BkBootSec
    s[64] = 0x80; // DrvNum
    s[66] = 0x29; // BootSig: the next three fields are valid
    put_u32(&mut s, 67, p.volume_id); // VolID
    s[71..82].copy_from_slice(label); // VolLab
    s[82..90].copy_from_slice(b"FAT32   "); // FilSysType
    s[0x5A..0x5C].copy_from_slice(&[0xEB, 0xFE]); // jmp $
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

/// The FSInfo sector: free-cluster count and next-free hint for an empty volume.
fn fsinfo_sector(l: &Fat32Layout) -> [u8; 512] {
    let mut s = [0u8; 512];
    put_u32(&mut s, 0, 0x4161_5252); // LeadSig
    put_u32(&mut s, 484, 0x6141_7272); // StrucSig
    put_u32(&mut s, 488, l.cluster_count - 1); // FreeCount: all but the root directory
    put_u32(&mut s, 492, ROOT_CLUSTER + 1); // NxtFree
    put_u32(&mut s, 508, 0xAA55_0000); // TrailSig
    s
}

/// The first sector of each FAT: media entry, clean-shutdown entry, root end-of-chain.
fn fat_first_sector() -> [u8; 512] {
    let mut s = [0u8; 512];
    put_u32(&mut s, 0, 0x0FFF_FF00 | u32::from(MEDIA));
    put_u32(&mut s, 4, 0x0FFF_FFFF);
    put_u32(&mut s, 8, 0x0FFF_FFFF);
    s
}

/// The first sector of the root directory: only the volume-label entry.
fn root_first_sector(label: &[u8; 11]) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[0..11].copy_from_slice(label);
    s[11] = 0x08; // ATTR_VOLUME_ID
                  // Fixed time stamps (1980-01-01 00:00) keep the output reproducible.
    let date: u16 = (1 << 5) | 1;
    put_u16(&mut s, 16, date); // CrtDate
    put_u16(&mut s, 18, date); // LstAccDate
    put_u16(&mut s, 24, date); // WrtDate
    s
}

/// Writes `bytes` at `base + offset`.
fn write_at(
    dev: &mut (impl Write + Seek),
    base: u64,
    offset: u64,
    bytes: &[u8],
    what: &'static str,
) -> Result<(), Fat32Error> {
    let io = |source| Fat32Error::Io {
        what,
        offset,
        source,
    };
    dev.seek(SeekFrom::Start(base + offset)).map_err(io)?;
    dev.write_all(bytes).map_err(io)
}

/// Writes `len` zero bytes at `base + offset`.
fn zero_at(
    dev: &mut (impl Write + Seek),
    base: u64,
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<(), Fat32Error> {
    const CHUNK: usize = 64 * 1024;
    let zeros = [0u8; CHUNK];
    let io = |source| Fat32Error::Io {
        what,
        offset,
        source,
    };
    dev.seek(SeekFrom::Start(base + offset)).map_err(io)?;
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        dev.write_all(&zeros[..n]).map_err(io)?;
        left -= n as u64;
    }
    Ok(())
}

/// Formats an empty FAT32 volume on `dev`, whose current position is the partition's first
/// byte, and returns its geometry.
///
/// Writes only the metadata: the reserved sectors (boot sector at 0, FSInfo at 1, backups at
/// 6 and 7, the rest zeroed), both FATs in full, and the root directory cluster. The data
/// region beyond the root cluster is not touched; an empty FAT never points into it.
///
/// Order: the primary boot sector is zeroed first and written last, so a volume interrupted
/// half-way is not recognised as FAT by anything. The caller flushes/syncs the device.
///
/// # Errors
///
/// Everything [`layout`] refuses, and [`Fat32Error::Io`] naming the region being written.
pub fn format(dev: &mut (impl Write + Seek), p: &Fat32Params) -> Result<Fat32Layout, Fat32Error> {
    let l = layout(p)?;
    let label = label_bytes(&p.label)?;
    let base = dev.stream_position().map_err(|source| Fat32Error::Io {
        what: "start position",
        offset: 0,
        source,
    })?;

    let reserved_bytes = u64::from(l.reserved_sectors) * SECTOR_SIZE;
    zero_at(dev, base, 0, reserved_bytes, "reserved sectors")?;

    let fat_bytes = u64::from(l.fat_sectors) * SECTOR_SIZE;
    let first = fat_first_sector();
    for n in 0..NUM_FATS {
        let at = l.fat_offset(n);
        zero_at(dev, base, at, fat_bytes, "FAT")?;
        write_at(dev, base, at, &first, "FAT")?;
    }

    let root = l.data_offset();
    zero_at(dev, base, root, l.cluster_bytes(), "root directory")?;
    write_at(
        dev,
        base,
        root,
        &root_first_sector(&label),
        "root directory",
    )?;

    let boot = boot_sector(&l, p, &label);
    let fsinfo = fsinfo_sector(&l);
    let backup = u64::from(BACKUP_BOOT_SECTOR) * SECTOR_SIZE;
    write_at(dev, base, backup, &boot, "backup boot sector")?;
    write_at(dev, base, backup + SECTOR_SIZE, &fsinfo, "backup FSInfo")?;
    write_at(
        dev,
        base,
        u64::from(FSINFO_SECTOR) * SECTOR_SIZE,
        &fsinfo,
        "FSInfo",
    )?;
    write_at(dev, base, 0, &boot, "boot sector")?;
    dev.flush().map_err(|source| Fat32Error::Io {
        what: "device (flush)",
        offset: 0,
        source,
    })?;
    Ok(l)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs::{self, File};
    use std::path::Path;
    use std::process::Command;

    const MIB: u64 = 1024 * 1024;

    fn params(size_bytes: u64) -> Fat32Params {
        Fat32Params {
            size_bytes,
            start_lba: 2048,
            label: "system-boot".to_owned(),
            volume_id: 0x1234_ABCD,
        }
    }

    /// Formats a fresh sparse file of `size` bytes and returns its path (inside `dir`).
    fn format_file(dir: &Path, size: u64, p: &Fat32Params) -> (std::path::PathBuf, Fat32Layout) {
        let path = dir.join("fat.img");
        let mut f = File::create(&path).unwrap();
        f.set_len(size).unwrap();
        let l = format(&mut f, p).unwrap();
        f.sync_all().unwrap();
        (path, l)
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fsck(path: &Path) {
        let out = run(Command::new("fsck.fat").arg("-n").arg(path));
        // A clean volume gives exactly the version line and the summary line.
        assert_eq!(out.lines().count(), 2, "fsck.fat output: {out}");
        assert!(out.contains(" clusters"), "fsck.fat output: {out}");
    }

    fn blkid(path: &Path, tag: &str) -> String {
        run(Command::new("blkid")
            .args(["-p", "-o", "value", "-s", tag])
            .arg(path))
        .trim()
        .to_owned()
    }

    fn mtools(cmd: &str, args: &[&str]) -> String {
        run(Command::new(cmd).env("MTOOLS_SKIP_CHECK", "1").args(args))
    }

    fn check_volume(size: u64) {
        let dir = tempfile::tempdir().unwrap();
        let p = params(size);
        let (img, l) = format_file(dir.path(), size, &p);
        assert!(l.cluster_count >= MIN_CLUSTERS);
        fsck(&img);
        assert_eq!(blkid(&img, "LABEL"), "system-boot");
        assert_eq!(blkid(&img, "TYPE"), "vfat");
        assert_eq!(blkid(&img, "UUID"), "1234-ABCD");
        let file_out = run(Command::new("file").arg(&img));
        assert!(
            file_out.contains("FAT (32 bit)") && file_out.contains("0x1234abcd"),
            "{file_out}"
        );

        let src = dir.path().join("hello.txt");
        fs::write(&src, "hello from k8r\n".repeat(1000)).unwrap();
        let img_s = img.to_str().unwrap();
        mtools("mmd", &["-i", img_s, "::/overlays"]);
        mtools("mcopy", &["-i", img_s, src.to_str().unwrap(), "::/x"]);
        mtools(
            "mcopy",
            &["-i", img_s, src.to_str().unwrap(), "::/overlays/y.dtbo"],
        );
        fsck(&img);
        let listing = mtools("mdir", &["-i", img_s, "::/"]);
        assert!(listing.contains("overlays"), "{listing}");
        assert!(listing.contains('x'), "{listing}");
        let sub = mtools("mdir", &["-i", img_s, "::/overlays"]);
        assert!(sub.to_lowercase().contains("dtbo"), "{sub}");
        let back = mtools("mtype", &["-i", img_s, "::/x"]);
        assert_eq!(back, "hello from k8r\n".repeat(1000));
    }

    #[test]
    fn fat32_64_mib_passes_fsck_and_mtools() {
        check_volume(64 * MIB);
    }

    #[test]
    fn fat32_300_mib_passes_fsck_and_mtools() {
        check_volume(300 * MIB);
    }

    #[test]
    fn fat32_layout_cluster_sizes() {
        let table: &[(u64, u8)] = &[
            (34 * MIB, 1),
            (64 * MIB, 1),
            (128 * MIB, 2),
            (200 * MIB, 4),
            (256 * MIB, 4), // 8 sectors would give 65,404 clusters: too few
            (300 * MIB, 8),
            (512 * MIB, 8),
            (32 * 1024 * MIB, 8),
            (1536 * 1024 * MIB, 16),
        ];
        for &(size, spc) in table {
            let l = layout(&params(size)).unwrap();
            assert_eq!(l.sectors_per_cluster, spc, "size {size}");
            assert!(l.cluster_count >= MIN_CLUSTERS, "size {size}");
            assert!(l.cluster_count <= MAX_CLUSTERS, "size {size}");
            // The FAT covers every cluster plus the two reserved entries.
            assert!(
                u64::from(l.fat_sectors) * 128 >= u64::from(l.cluster_count) + 2,
                "size {size}"
            );
            let end = u64::from(l.data_start_sector)
                + u64::from(l.cluster_count) * u64::from(l.sectors_per_cluster);
            assert!(end <= u64::from(l.total_sectors), "size {size}");
        }
    }

    #[test]
    fn fat32_fatgen103_fat_size() {
        // 300 MiB, 8 sectors per cluster: (614400 - 32) / ((256 * 8 + 2) / 2) rounded up.
        let l = layout(&params(300 * MIB)).unwrap();
        assert_eq!(l.total_sectors, 614_400);
        assert_eq!(l.fat_sectors, 600);
        assert_eq!(l.data_start_sector, 32 + 2 * 600);
        assert_eq!(l.cluster_count, (614_400 - 1232) / 8);
    }

    #[test]
    fn fat32_too_small_refused() {
        for size in [0, 1, 16 * MIB, 32 * MIB] {
            let err = layout(&params(size)).unwrap_err();
            assert!(matches!(err, Fat32Error::TooSmall { .. }), "{size}: {err}");
            assert!(err.to_string().contains("too small"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("small")).unwrap();
        assert!(format(&mut f, &params(32 * MIB)).is_err());
        assert_eq!(
            f.metadata().unwrap().len(),
            0,
            "nothing written when refused"
        );
    }

    #[test]
    fn fat32_too_large_refused() {
        let err = layout(&params(4 * 1024 * 1024 * MIB)).unwrap_err();
        assert!(matches!(err, Fat32Error::TooLarge { .. }), "{err}");
    }

    #[test]
    fn fat32_labels() {
        for ok in ["system-boot", "K8R-RECOVER", "A", "NO NAME", "ab_c~1"] {
            assert!(label_bytes(ok).is_ok(), "{ok}");
        }
        assert_eq!(&label_bytes("boot").unwrap(), b"boot       ");
        for bad in [
            "",
            "K8R-RECOVERY",
            "a.b",
            "a/b",
            "caf\u{e9}",
            "tab\t",
            " lead",
            "x*",
        ] {
            let mut p = params(64 * MIB);
            p.label = bad.to_owned();
            assert!(
                matches!(layout(&p), Err(Fat32Error::Label { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fat32_metadata_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(64 * MIB);
        let (img, l) = format_file(dir.path(), 64 * MIB, &p);
        let bytes = fs::read(img).unwrap();
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(&bytes[510..512], &[0x55, 0xAA]);
        assert_eq!(
            &bytes[0..512],
            &bytes[6 * 512..7 * 512],
            "backup boot sector"
        );
        assert_eq!(&bytes[512..1024], &bytes[7 * 512..8 * 512], "backup FSInfo");
        assert_eq!(u32_at(28), 2048, "hidden sectors");
        assert_eq!(u32_at(512), 0x4161_5252);
        assert_eq!(u32_at(512 + 484), 0x6141_7272);
        assert_eq!(u32_at(512 + 488), l.cluster_count - 1);
        assert_eq!(u32_at(512 + 508), 0xAA55_0000);
        for n in 0..2u8 {
            let fat = usize::try_from(l.fat_offset(n)).unwrap();
            assert_eq!(u32_at(fat), 0x0FFF_FFF8);
            assert_eq!(u32_at(fat + 4), 0x0FFF_FFFF);
            assert_eq!(u32_at(fat + 8), 0x0FFF_FFFF);
            assert_eq!(u32_at(fat + 12), 0);
        }
        let root = usize::try_from(l.data_offset()).unwrap();
        assert_eq!(&bytes[root..root + 11], b"system-boot");
        assert_eq!(bytes[root + 11], 0x08);
    }

    #[test]
    fn fat32_respects_start_position() {
        // A handle positioned at a partition inside a larger image: nothing before it changes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let mut f = File::create(&path).unwrap();
        let offset = MIB;
        f.set_len(offset + 64 * MIB).unwrap();
        f.write_all(&[0xA5; 512]).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        format(&mut f, &params(64 * MIB)).unwrap();
        drop(f);
        let bytes = fs::read(&path).unwrap();
        assert!(bytes[..512].iter().all(|&b| b == 0xA5));
        let at = usize::try_from(offset).unwrap();
        assert_eq!(&bytes[at + 510..at + 512], &[0x55, 0xAA]);
        // fsck.fat has no offset option; mtools reads the partition through `@@offset`.
        let spec = format!("{}@@{offset}", path.display());
        mtools("mmd", &["-i", &spec, "::/sub"]);
        let listing = mtools("mdir", &["-i", &spec, "::/"]);
        assert!(listing.contains("sub"), "{listing}");
    }
}
