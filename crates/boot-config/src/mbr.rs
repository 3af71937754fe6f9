//! MBR partition table: parse, validate, render, and the kernel's `PARTUUID` form.
//!
//! k8r uses MBR with FAT partitions first (pi-boot notes 2.1/2.4: GPT with non-default boot
//! partitions needed 2025 firmware fixes on Pi 4; see ISSUE raspberrypi/rpi-eeprom#654).
//!
//! The bytes are read and written by `mbrman` (over an in-memory sector, so this module stays
//! pure); this module adds what the firmware model and k8r need on top: the four primary
//! entries as plain values, GPT refusal, 1 MiB alignment and overlap checks, and resizing one
//! entry in place while keeping every other byte of the sector (bootstrap code, disk id).

use std::io::Cursor;

use mbrman::{MBRHeader, MBRPartitionEntry, CHS};
use thiserror::Error;

/// Logical sector size assumed throughout (SD/USB require 512-byte sectors; RN-2712 2025-10-08).
pub const SECTOR_SIZE: u64 = 512;

/// Partition start alignment enforced by [`Mbr::validate`] (1 MiB, in sectors).
pub const ALIGN_SECTORS: u32 = 2048;

const TABLE_OFFSET: usize = 0x1BE;
const ENTRY_LEN: usize = 16;
/// The partition type id of a GPT disk's protective MBR entry.
pub const GPT_PROTECTIVE: u8 = 0xEE;

/// Errors from parsing or validating an MBR.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MbrError {
    /// Fewer than 512 bytes were given.
    #[error("MBR needs 512 bytes, got {len}")]
    TooShort {
        /// Number of bytes given.
        len: usize,
    },
    /// Bytes 510..512 are not `55 AA`.
    #[error("no MBR boot signature: bytes 510..512 are {found:02x?}, expected [55, aa]")]
    BadSignature {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// Partition entry of type 0xEE: the disk uses GPT.
    #[error("partition {number} has type 0xee (GPT protective MBR): this disk uses GPT, k8r needs a plain MBR")]
    GptProtective {
        /// 1-based partition number.
        number: u8,
    },
    /// The partition does not start on a 1 MiB boundary.
    #[error("partition {number} starts at sector {first_lba}, which is not 1 MiB aligned (multiple of 2048)")]
    Misaligned {
        /// 1-based partition number.
        number: u8,
        /// Its first sector.
        first_lba: u32,
    },
    /// The partition starts at sector 0 and would overwrite the MBR itself.
    #[error("partition {number} starts at sector 0 and overlaps the MBR")]
    OverlapsMbr {
        /// 1-based partition number.
        number: u8,
    },
    /// A partition entry's status byte is neither 0x00 nor 0x80.
    #[error("partition {number} has boot flag 0x{flag:02x}: an MBR entry's status byte is 0x00 or 0x80 (the table is damaged)")]
    BadBootFlag {
        /// 1-based partition number.
        number: u8,
        /// The status byte found.
        flag: u8,
    },
    /// The partition number is not 1..=4.
    #[error("partition {number} is not one of the four primary MBR entries")]
    NoSuchEntry {
        /// The number asked for.
        number: u8,
    },
    /// `mbrman` could not read or write the sector.
    #[error("MBR: {0}")]
    Codec(String),
    /// Two partitions share sectors.
    #[error("partitions {first} and {second} overlap")]
    Overlap {
        /// 1-based number of the first partition.
        first: u8,
        /// 1-based number of the second partition.
        second: u8,
    },
    /// The partition ends beyond the end of the disk.
    #[error("partition {number} ends at byte {end}, beyond the disk size of {disk_bytes} bytes")]
    OutsideDisk {
        /// 1-based partition number.
        number: u8,
        /// Byte offset one past its last byte.
        end: u64,
        /// Disk size in bytes.
        disk_bytes: u64,
    },
}

/// One primary partition entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbrPartition {
    /// MBR partition type id (e.g. 0x0c FAT32 LBA, 0x83 Linux).
    pub type_id: u8,
    /// Status byte 0x80 ("active").
    pub bootable: bool,
    /// First sector (LBA, 512-byte sectors).
    pub first_lba: u32,
    /// Length in sectors.
    pub sectors: u32,
}

impl MbrPartition {
    /// Byte offset of the partition's first byte on the disk.
    pub fn byte_offset(&self) -> u64 {
        u64::from(self.first_lba) * SECTOR_SIZE
    }

    /// Length of the partition in bytes.
    pub fn byte_len(&self) -> u64 {
        u64::from(self.sectors) * SECTOR_SIZE
    }

    /// Byte offset one past the partition's last byte.
    pub fn byte_end(&self) -> u64 {
        self.byte_offset() + self.byte_len()
    }
}

/// A classic MBR: disk identifier and the four primary entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mbr {
    /// 32-bit disk identifier (NT signature) at 0x1B8, used by `root=PARTUUID=`.
    pub disk_id: u32,
    /// Primary partitions 1..=4 (index 0 is partition 1); `None` for an empty slot.
    pub partitions: [Option<MbrPartition>; 4],
}

/// Whether an MBR type id is one of the FAT ids (0x01 FAT12, 0x04/0x06 FAT16, 0x0b/0x0c FAT32,
/// 0x0e FAT16 LBA, 0xef EFI system).
///
/// The firmware's exact accepted list is not documented (pi-boot notes 2.2 UNCERTAIN; 0x0c is
/// what Raspberry Pi OS and Ubuntu use, 0xef per RN-2711 2020-05-26).
pub fn is_fat_type(type_id: u8) -> bool {
    matches!(type_id, 0x01 | 0x04 | 0x06 | 0x0b | 0x0c | 0x0e | 0xef)
}

/// Checks that `sector0` is at least 512 bytes with the boot signature `55 AA`.
fn check_signature(sector0: &[u8]) -> Result<(), MbrError> {
    if sector0.len() < 512 {
        return Err(MbrError::TooShort { len: sector0.len() });
    }
    let found = [sector0[510], sector0[511]];
    if found != [0x55, 0xAA] {
        return Err(MbrError::BadSignature { found });
    }
    Ok(())
}

/// The type ids of the four primary entries as they stand in `sector0`, whatever the rest of
/// each entry holds (a damaged status byte, zero sectors): what a sniffer classifies a disk by
/// (a GPT protective entry, no partitions at all) before [`Mbr::parse`] reads the table.
///
/// # Errors
/// [`MbrError::TooShort`] or [`MbrError::BadSignature`]: `sector0` is not an MBR.
pub fn entry_types(sector0: &[u8]) -> Result<[u8; 4], MbrError> {
    check_signature(sector0)?;
    Ok(std::array::from_fn(|i| {
        sector0[TABLE_OFFSET + i * ENTRY_LEN + 4]
    }))
}

/// Reads the header of the first sector through `mbrman`, with k8r's messages for the usual
/// failures.
fn read_header(sector0: &[u8]) -> Result<MBRHeader, MbrError> {
    check_signature(sector0)?;
    MBRHeader::read_from(&mut Cursor::new(&sector0[..512])).map_err(|e| match e {
        mbrman::Error::InvalidBootFlag => {
            let (number, flag) = (0..4u8)
                .map(|i| (i + 1, sector0[TABLE_OFFSET + usize::from(i) * ENTRY_LEN]))
                .find(|(_, f)| !matches!(f, 0x00 | 0x80))
                .unwrap_or((0, 0));
            MbrError::BadBootFlag { number, flag }
        }
        other => MbrError::Codec(other.to_string()),
    })
}

fn write_header(header: &MBRHeader) -> Result<[u8; 512], MbrError> {
    let mut out = Cursor::new(vec![0u8; 512]);
    header
        .write_into(&mut out)
        .map_err(|e| MbrError::Codec(e.to_string()))?;
    let bytes = out.into_inner();
    let mut sector = [0u8; 512];
    sector.copy_from_slice(&bytes[..512]);
    Ok(sector)
}

/// The 1-based number of `mbrman`'s 1-based entry index.
fn entry_number(index: usize) -> u8 {
    u8::try_from(index).unwrap_or(0)
}

impl Mbr {
    /// Parse the first sector of a disk (at least 512 bytes; extra bytes are ignored).
    ///
    /// An entry with type 0 or zero sectors is an empty slot. A GPT protective entry (0xEE) is
    /// refused.
    pub fn parse(sector0: &[u8]) -> Result<Mbr, MbrError> {
        let header = read_header(sector0)?;
        let mut partitions = [None; 4];
        for (index, entry) in header.iter() {
            let number = entry_number(index);
            if entry.sys == GPT_PROTECTIVE {
                return Err(MbrError::GptProtective { number });
            }
            if entry.is_unused() || entry.sectors == 0 {
                continue;
            }
            if let Some(slot) = partitions.get_mut(usize::from(number) - 1) {
                *slot = Some(MbrPartition {
                    type_id: entry.sys,
                    bootable: entry.is_active(),
                    first_lba: entry.starting_lba,
                    sectors: entry.sectors,
                });
            }
        }
        Ok(Mbr {
            disk_id: u32::from_le_bytes(header.disk_signature),
            partitions,
        })
    }

    /// Render the 512-byte sector: zero bootstrap code, zero CHS fields, LBA fields, `55 AA`.
    pub fn render(&self) -> [u8; 512] {
        let mut header = MBRHeader::new(self.disk_id.to_le_bytes());
        for (index, part) in (1usize..).zip(self.partitions.iter()) {
            let (Some(part), Some(entry)) = (part, header.get_mut(index)) else {
                continue;
            };
            *entry = MBRPartitionEntry {
                boot: if part.bootable { 0x80 } else { 0 },
                first_chs: CHS::empty(),
                sys: part.type_id,
                last_chs: CHS::empty(),
                starting_lba: part.first_lba,
                sectors: part.sectors,
            };
        }
        // Every field written is valid (boot flag 0x00/0x80, signature set by `new`).
        write_header(&header).unwrap_or([0; 512])
    }

    /// `sector0` with partition `number`'s length set to `sectors`, every other byte kept
    /// (bootstrap code, disk id, the other entries, CHS fields): how the node agent grows its
    /// data partition to the end of the card in place.
    ///
    /// # Errors
    /// The sector is not an MBR, or `number` is not a used primary entry.
    pub fn resized(sector0: &[u8], number: u8, sectors: u32) -> Result<[u8; 512], MbrError> {
        let mut header = read_header(sector0)?;
        let entry = header
            .get_mut(usize::from(number))
            .filter(|e| e.is_used() && (1..=4).contains(&number))
            .ok_or(MbrError::NoSuchEntry { number })?;
        entry.sectors = sectors;
        write_header(&header)
    }

    /// Check the layout against a disk of `disk_bytes`: every partition starts on a 1 MiB
    /// boundary (and not at sector 0), lies inside the disk, and no two overlap.
    pub fn validate(&self, disk_bytes: u64) -> Result<(), MbrError> {
        let used: Vec<(u8, &MbrPartition)> = self.numbered().collect();
        for &(number, part) in &used {
            if part.first_lba == 0 {
                return Err(MbrError::OverlapsMbr { number });
            }
            if part.first_lba % ALIGN_SECTORS != 0 {
                return Err(MbrError::Misaligned {
                    number,
                    first_lba: part.first_lba,
                });
            }
            if part.byte_end() > disk_bytes {
                return Err(MbrError::OutsideDisk {
                    number,
                    end: part.byte_end(),
                    disk_bytes,
                });
            }
        }
        for (i, &(first, a)) in used.iter().enumerate() {
            for &(second, b) in &used[i + 1..] {
                if a.byte_offset() < b.byte_end() && b.byte_offset() < a.byte_end() {
                    return Err(MbrError::Overlap { first, second });
                }
            }
        }
        Ok(())
    }

    /// The used entries with their 1-based partition numbers.
    pub fn numbered(&self) -> impl Iterator<Item = (u8, &MbrPartition)> {
        (1u8..)
            .zip(self.partitions.iter())
            .filter_map(|(number, part)| part.as_ref().map(|p| (number, p)))
    }

    /// The kernel's MBR `PARTUUID` for partition `number` (1-based), e.g. `2d6b036c-02`:
    /// disk id as 8 lowercase hex digits, a dash, the number as 2 hex digits (K-MOUNT; pi-boot
    /// notes section 7).
    pub fn partuuid(&self, number: u8) -> String {
        partuuid(self.disk_id, number)
    }
}

/// `PARTUUID` string for MBR disk id `disk_id` and 1-based partition `number` (K-MOUNT).
pub fn partuuid(disk_id: u32, number: u8) -> String {
    format!("{disk_id:08x}-{number:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(type_id: u8, first_lba: u32, sectors: u32) -> Option<MbrPartition> {
        Some(MbrPartition {
            type_id,
            bootable: false,
            first_lba,
            sectors,
        })
    }

    fn sample() -> Mbr {
        Mbr {
            disk_id: 0x2d6b_036c,
            partitions: [
                Some(MbrPartition {
                    type_id: 0x0c,
                    bootable: true,
                    first_lba: 2048,
                    sectors: 524_288,
                }),
                part(0x0c, 526_336, 524_288),
                part(0x83, 1_050_624, 2_097_152),
                None,
            ],
        }
    }

    #[test]
    fn render_parse_round_trip_and_layout() {
        let mbr = sample();
        let bytes = mbr.render();
        assert_eq!(&bytes[510..], &[0x55, 0xAA]);
        assert_eq!(&bytes[0x1B8..0x1BC], &[0x6c, 0x03, 0x6b, 0x2d]);
        assert_eq!(bytes[0x1BE], 0x80);
        assert_eq!(bytes[0x1BE + 4], 0x0c);
        assert_eq!(&bytes[0x1BE + 8..0x1BE + 12], &2048u32.to_le_bytes());
        assert!(
            bytes[..0x1B8].iter().all(|&b| b == 0),
            "bootstrap code zero"
        );
        assert_eq!(&bytes[0x1BE + 1..0x1BE + 4], &[0, 0, 0], "CHS start zero");
        assert_eq!(Mbr::parse(&bytes), Ok(mbr));
    }

    #[test]
    fn parse_accepts_longer_input_and_skips_empty_entries() {
        let mut disk = sample().render().to_vec();
        // Type set but zero sectors: an empty slot.
        disk[0x1BE + 3 * 16 + 4] = 0x83;
        disk.extend_from_slice(&[0xff; 512]);
        let mbr = Mbr::parse(&disk).expect("valid MBR");
        assert_eq!(mbr.partitions[3], None);
        assert_eq!(mbr.numbered().count(), 3);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Mbr::parse(&[0; 100]), Err(MbrError::TooShort { len: 100 }));
        assert_eq!(
            Mbr::parse(&[0; 512]),
            Err(MbrError::BadSignature { found: [0, 0] })
        );
        let mut gpt = sample().render();
        gpt[0x1BE + 16 + 4] = 0xEE;
        let err = Mbr::parse(&gpt).expect_err("GPT refused");
        assert_eq!(err, MbrError::GptProtective { number: 2 });
        assert!(err.to_string().contains("GPT"));
    }

    #[test]
    fn entry_types_read_every_entry_as_it_stands() {
        let mut sector = sample().render();
        // A type with zero sectors and a damaged status byte: parse would skip or refuse them.
        sector[0x1BE + 3 * 16 + 4] = 0x83;
        sector[0x1BE + 16] = 0x12;
        assert_eq!(entry_types(&sector), Ok([0x0c, 0x0c, 0x83, 0x83]));
        sector[0x1BE + 4] = GPT_PROTECTIVE;
        assert_eq!(entry_types(&sector), Ok([0xee, 0x0c, 0x83, 0x83]));
        assert_eq!(entry_types(&[0; 100]), Err(MbrError::TooShort { len: 100 }));
        assert_eq!(
            entry_types(&[0; 512]),
            Err(MbrError::BadSignature { found: [0, 0] })
        );
    }

    #[test]
    fn resizing_one_entry_keeps_every_other_byte() {
        let mut sector = sample().render();
        // Bootstrap code and CHS fields as a vendor image may carry them.
        for (i, b) in sector[..440].iter_mut().enumerate() {
            *b = u8::try_from(i % 251).expect("fits");
        }
        sector[0x1BE + 16 + 1] = 0x21;
        let grown = Mbr::resized(&sector, 3, 4_000_000).expect("resize");
        let mut expected = sector;
        expected[0x1BE + 2 * 16 + 12..0x1BE + 2 * 16 + 16]
            .copy_from_slice(&4_000_000u32.to_le_bytes());
        assert_eq!(grown, expected, "only partition 3's length changed");
        assert_eq!(
            Mbr::parse(&grown).expect("parse").partitions[2].map(|p| p.sectors),
            Some(4_000_000)
        );
        assert_eq!(
            Mbr::resized(&sector, 4, 1),
            Err(MbrError::NoSuchEntry { number: 4 }),
            "an empty entry is not grown"
        );
        assert_eq!(
            Mbr::resized(&sector, 5, 1),
            Err(MbrError::NoSuchEntry { number: 5 })
        );
    }

    #[test]
    fn a_damaged_status_byte_is_named() {
        let mut sector = sample().render();
        sector[0x1BE + 16] = 0x12;
        assert_eq!(
            Mbr::parse(&sector),
            Err(MbrError::BadBootFlag {
                number: 2,
                flag: 0x12
            })
        );
    }

    #[test]
    fn byte_offsets_use_u64() {
        let p = MbrPartition {
            type_id: 0x83,
            bootable: false,
            first_lba: u32::MAX,
            sectors: u32::MAX,
        };
        assert_eq!(p.byte_offset(), u64::from(u32::MAX) * 512);
        assert_eq!(p.byte_len(), u64::from(u32::MAX) * 512);
        assert_eq!(p.byte_end(), u64::from(u32::MAX) * 1024);
    }

    #[test]
    fn partuuid_format() {
        assert_eq!(sample().partuuid(2), "2d6b036c-02");
        let small = Mbr {
            disk_id: 0xab,
            partitions: [None; 4],
        };
        assert_eq!(small.partuuid(1), "000000ab-01");
        assert_eq!(partuuid(0xDEAD_BEEF, 12), "deadbeef-0c");
    }

    #[test]
    fn fat_types() {
        for id in [0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e, 0xef] {
            assert!(is_fat_type(id), "{id:#x}");
        }
        for id in [0x00, 0x05, 0x07, 0x0f, 0x83, 0x82, 0xee] {
            assert!(!is_fat_type(id), "{id:#x}");
        }
    }

    #[test]
    fn validate_cases() {
        let disk = 2 * 1024 * 1024 * 1024u64; // 2 GiB = 4194304 sectors
        assert_eq!(sample().validate(disk), Ok(()));

        let mut misaligned = sample();
        misaligned.partitions[1] = part(0x0c, 526_337, 100);
        assert_eq!(
            misaligned.validate(disk),
            Err(MbrError::Misaligned {
                number: 2,
                first_lba: 526_337
            })
        );

        let mut overlap = sample();
        overlap.partitions[2] = part(0x83, 526_336 + 2048, 2048);
        assert_eq!(
            overlap.validate(disk),
            Err(MbrError::Overlap {
                first: 2,
                second: 3
            })
        );

        let small_disk = 1_050_624 * 512 + 1024;
        assert_eq!(
            sample().validate(small_disk),
            Err(MbrError::OutsideDisk {
                number: 3,
                end: (1_050_624 + 2_097_152) * 512,
                disk_bytes: small_disk
            })
        );

        let mut at_zero = sample();
        at_zero.partitions[3] = part(0x83, 0, 10);
        assert_eq!(
            at_zero.validate(disk),
            Err(MbrError::OverlapsMbr { number: 4 })
        );

        // Adjacent partitions do not overlap.
        let mut adjacent = sample();
        adjacent.partitions[3] = part(0x83, 3_147_776, 2048);
        assert_eq!(adjacent.validate(disk), Ok(()));
    }
}
