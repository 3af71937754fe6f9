//! The recovery partition's FAT32 "was it cleanly unmounted" state, and its repair.
//!
//! Linux's vfat sets the dirty bit (boot sector byte 0x41, bit 0) when it mounts a volume
//! read-write and clears it when it unmounts or remounts read-only, unless the bit was already
//! set at mount: then it leaves it set for good. It also keeps the FSInfo sector's free-cluster
//! count in memory and writes it back late. So a power cut while p1 is mounted read-write
//! leaves p1 marked dirty forever, and a cut in the middle of a careful replace can leave the
//! free-cluster count wrong forever; `fsck.fat -n` then fails on a card whose files are fine.
//!
//! k8r therefore mounts p1 read-write only for the moments it writes it, and after an unclean
//! shutdown, once p1's files have been read and found good, [`repair`] clears the dirty bit and
//! marks the free-cluster count and the next-free hint as unknown (0xFFFFFFFF, which FAT
//! allows and which every driver and `fsck.fat` accept: Linux counts again when it needs the
//! number). Each is one sector write, in place, on the unmounted partition: a cut during the
//! repair leaves the volume as it found it or repaired.
//!
//! [`State::read`] and the sector edits are pure; [`repair`] does the I/O on any
//! `Read + Write + Seek` positioned on the partition (a block device, or a test file).

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Bytes per sector on every SD card k8r writes.
const SECTOR: usize = 512;
/// Offset of the FAT32 `BS_Reserved1` byte that Linux (and Windows) use as the state byte.
const STATE_BYTE: usize = 0x41;
/// Bit 0 of the state byte: mounted read-write, not unmounted cleanly yet.
const DIRTY: u8 = 0x01;
/// Offset of the FSInfo sector number in a FAT32 boot sector.
const FSINFO_SECTOR_FIELD: usize = 0x30;
/// FSInfo signatures (lead, struct, trail) and their offsets.
const FSINFO_LEAD: (usize, u32) = (0, 0x4161_5252);
const FSINFO_STRUCT: (usize, u32) = (484, 0x6141_7272);
const FSINFO_TRAIL: (usize, u32) = (508, 0xAA55_0000);
/// FSInfo free-cluster count and next-free hint.
const FSINFO_FREE: usize = 488;
const FSINFO_NEXT: usize = 492;
/// "Not known" for both FSInfo numbers.
const UNKNOWN: u32 = 0xFFFF_FFFF;

/// What was found reading a FAT32 volume's boot sector and FSInfo sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// The dirty bit is set: the volume was not unmounted cleanly.
    pub dirty: bool,
    /// The FSInfo sector (sector number within the volume), when the volume has one.
    pub fsinfo_sector: Option<u16>,
    /// The free-cluster count FSInfo claims (`None`: unknown or no FSInfo).
    pub free_clusters: Option<u32>,
}

/// Not a FAT32 volume k8r can read the state of.
#[derive(Debug, thiserror::Error)]
pub enum FatStateError {
    /// The boot sector is not a FAT32 boot sector.
    #[error("not a FAT32 boot sector ({0})")]
    NotFat32(&'static str),
    /// Reading or writing the volume failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn is_fsinfo(s: &[u8; SECTOR]) -> bool {
    [FSINFO_LEAD, FSINFO_STRUCT, FSINFO_TRAIL]
        .iter()
        .all(|&(at, sig)| u32_at(s, at) == sig)
}

impl State {
    /// Reads the state from a boot sector and (when it names one) the FSInfo sector.
    ///
    /// # Errors
    /// `boot` is not a FAT32 boot sector (no 0x55AA signature, not 512 bytes per sector, or
    /// a FAT16-style root directory).
    pub fn read(
        boot: &[u8; SECTOR],
        fsinfo: Option<&[u8; SECTOR]>,
    ) -> Result<State, FatStateError> {
        if boot[510..512] != [0x55, 0xAA] {
            return Err(FatStateError::NotFat32("no boot sector signature"));
        }
        if u16_at(boot, 0x0B) != 512 {
            return Err(FatStateError::NotFat32("sector size is not 512"));
        }
        // FAT32: no fixed root directory and a 32-bit FAT size.
        if u16_at(boot, 0x11) != 0 || u16_at(boot, 0x16) != 0 || u32_at(boot, 0x24) == 0 {
            return Err(FatStateError::NotFat32("FAT12/16 layout"));
        }
        let fsinfo_sector = match u16_at(boot, FSINFO_SECTOR_FIELD) {
            0 | 0xFFFF => None,
            n => Some(n),
        };
        let free_clusters = fsinfo
            .filter(|s| fsinfo_sector.is_some() && is_fsinfo(s))
            .map(|s| u32_at(s, FSINFO_FREE))
            .filter(|&n| n != UNKNOWN);
        Ok(State {
            dirty: boot[STATE_BYTE] & DIRTY != 0,
            fsinfo_sector,
            free_clusters,
        })
    }
}

/// `boot` with the dirty bit cleared (every other byte kept).
pub fn clean_boot_sector(boot: &[u8; SECTOR]) -> [u8; SECTOR] {
    let mut out = *boot;
    out[STATE_BYTE] &= !DIRTY;
    out
}

/// `fsinfo` with the free-cluster count and next-free hint set to unknown; `None` when it is
/// not an FSInfo sector (nothing to change).
pub fn forget_free_count(fsinfo: &[u8; SECTOR]) -> Option<[u8; SECTOR]> {
    if !is_fsinfo(fsinfo) {
        return None;
    }
    let mut out = *fsinfo;
    out[FSINFO_FREE..FSINFO_FREE + 4].copy_from_slice(&UNKNOWN.to_le_bytes());
    out[FSINFO_NEXT..FSINFO_NEXT + 4].copy_from_slice(&UNKNOWN.to_le_bytes());
    Some(out)
}

fn read_sector(dev: &mut (impl Read + Seek), n: u64) -> io::Result<[u8; SECTOR]> {
    let mut buf = [0u8; SECTOR];
    dev.seek(SeekFrom::Start(n * SECTOR as u64))?;
    dev.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_sector(dev: &mut (impl Write + Seek), n: u64, buf: &[u8; SECTOR]) -> io::Result<()> {
    dev.seek(SeekFrom::Start(n * SECTOR as u64))?;
    dev.write_all(buf)?;
    dev.flush()
}

/// Reads the state of the volume `dev` is positioned on (offset 0 = its boot sector).
///
/// # Errors
/// Reading failed, or it is not FAT32.
pub fn inspect(dev: &mut (impl Read + Seek)) -> Result<State, FatStateError> {
    let io = |what| move |source| FatStateError::Io { what, source };
    let boot = read_sector(dev, 0).map_err(io("reading the boot sector"))?;
    let fsinfo = match u16_at(&boot, FSINFO_SECTOR_FIELD) {
        0 | 0xFFFF => None,
        n => Some(read_sector(dev, u64::from(n)).map_err(io("reading the FSInfo sector"))?),
    };
    State::read(&boot, fsinfo.as_ref())
}

/// Brings an unmounted volume back to a clean state after an unclean shutdown: the FSInfo
/// counts first (forgotten), then the dirty bit cleared, each written in place; `sync_data`
/// is called after each write (pass the file's `sync_data`). Returns the state found; does
/// nothing when the volume is clean.
///
/// # Errors
/// Reading or writing failed, or it is not FAT32.
pub fn repair<D: Read + Write + Seek>(
    dev: &mut D,
    sync_data: impl Fn(&mut D) -> io::Result<()>,
) -> Result<State, FatStateError> {
    let io = |what| move |source| FatStateError::Io { what, source };
    let found = inspect(dev)?;
    if !found.dirty {
        return Ok(found);
    }
    if let Some(n) = found.fsinfo_sector {
        let fsinfo = read_sector(dev, u64::from(n)).map_err(io("reading the FSInfo sector"))?;
        if let Some(forgotten) = forget_free_count(&fsinfo) {
            write_sector(dev, u64::from(n), &forgotten).map_err(io("writing the FSInfo sector"))?;
            sync_data(dev).map_err(io("syncing the FSInfo sector"))?;
        }
    }
    let boot = read_sector(dev, 0).map_err(io("reading the boot sector"))?;
    write_sector(dev, 0, &clean_boot_sector(&boot)).map_err(io("writing the boot sector"))?;
    sync_data(dev).map_err(io("syncing the boot sector"))?;
    Ok(found)
}

#[cfg(test)]
#[path = "fat_state_tests.rs"]
mod tests;
