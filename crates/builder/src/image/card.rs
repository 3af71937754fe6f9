//! Whole-card images: an MBR and partitions placed at 1 MiB boundaries.
//!
//! Partition contents are built as standalone files first (resize2fs and e2image truncate a
//! card when pointed at an offset, see `docs/assembly.md`) and then copied into place, skipping
//! all-zero blocks so the card stays sparse.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use k8r_boot_config::mbr::{Mbr, MbrPartition};

use super::{io_err, round_up, ImageError, MIB};

/// One partition to place on a card.
#[derive(Debug, Clone)]
pub struct PartitionSource<'a> {
    /// MBR type id (0x0c FAT32 LBA, 0x83 Linux).
    pub type_id: u8,
    /// The partition's content (a filesystem image file).
    pub content: &'a Path,
    /// Size of the partition in bytes; `None` = the content's size rounded up to 1 MiB.
    pub size: Option<u64>,
}

/// Writes a card image at `out`: MBR with `disk_id`, the partitions in order from 1 MiB on, each
/// 1 MiB aligned. `total` pads the card to that size (it must fit). Returns the table written.
pub fn assemble(
    out: &Path,
    disk_id: u32,
    parts: &[PartitionSource<'_>],
    total: Option<u64>,
) -> Result<Mbr, ImageError> {
    if parts.is_empty() || parts.len() > 4 {
        return Err(ImageError::Layout(format!(
            "an MBR card holds 1 to 4 primary partitions, {} were given",
            parts.len()
        )));
    }
    let mut entries: [Option<MbrPartition>; 4] = [None; 4];
    let mut next = MIB;
    let mut lens = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let len = std::fs::metadata(part.content)
            .map_err(io_err(part.content))?
            .len();
        let size = part.size.unwrap_or_else(|| round_up(len, MIB));
        if len > size {
            return Err(ImageError::Layout(format!(
                "partition {}: content {} is {len} bytes, larger than the partition ({size} bytes)",
                i + 1,
                part.content.display()
            )));
        }
        entries[i] = Some(MbrPartition {
            type_id: part.type_id,
            bootable: false,
            first_lba: sectors(next)?,
            sectors: sectors(round_up(size, MIB))?,
        });
        lens.push(len);
        next += round_up(size, MIB);
    }
    let card_len = match total {
        Some(t) if t < next => {
            return Err(ImageError::Layout(format!(
                "the partitions need {next} bytes, more than the requested card size {t}"
            )))
        }
        Some(t) => t,
        None => next,
    };
    let mbr = Mbr {
        disk_id,
        partitions: entries,
    };
    mbr.validate(card_len).map_err(|source| ImageError::Mbr {
        path: out.to_path_buf(),
        source,
    })?;

    let tmp = out.with_extension("img.partial");
    let mut card = File::create(&tmp).map_err(io_err(&tmp))?;
    card.set_len(card_len).map_err(io_err(&tmp))?;
    card.write_all(&mbr.render()).map_err(io_err(&tmp))?;
    for (part, entry) in parts.iter().zip(mbr.partitions.iter().flatten()) {
        let mut src = File::open(part.content).map_err(io_err(part.content))?;
        copy_sparse(&mut src, &mut card, entry.byte_offset()).map_err(io_err(&tmp))?;
    }
    card.sync_all().map_err(io_err(&tmp))?;
    drop(card);
    std::fs::rename(&tmp, out).map_err(io_err(out))?;
    Ok(mbr)
}

fn sectors(bytes: u64) -> Result<u32, ImageError> {
    u32::try_from(bytes / 512)
        .map_err(|_| ImageError::Layout(format!("{bytes} bytes is beyond MBR's 2 TiB limit")))
}

/// Copies all of `src` into `dst` at `offset`, seeking over 64 KiB blocks that are all zero.
/// `dst` must already be zero there (a fresh sparse file).
pub fn copy_sparse(
    src: &mut impl Read,
    dst: &mut (impl Write + Seek),
    offset: u64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = offset;
    loop {
        let n = read_full(src, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let chunk = &buf[..n];
        if chunk.iter().any(|&b| b != 0) {
            dst.seek(SeekFrom::Start(pos))?;
            dst.write_all(chunk)?;
        }
        pos += n as u64;
    }
}

/// Reads until `buf` is full or `src` ends; the bytes read.
pub(crate) fn read_full(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the partition table of a card image.
pub fn read_mbr(card: &Path) -> Result<Mbr, ImageError> {
    let mut sector = [0u8; 512];
    File::open(card)
        .and_then(|mut f| f.read_exact(&mut sector))
        .map_err(io_err(card))?;
    Mbr::parse(&sector).map_err(|source| ImageError::Mbr {
        path: card.to_path_buf(),
        source,
    })
}

/// Partition `number` (1-based) of a card, or an error naming the card.
pub fn partition(card: &Path, number: u8) -> Result<MbrPartition, ImageError> {
    let mbr = read_mbr(card)?;
    usize::from(number)
        .checked_sub(1)
        .and_then(|i| mbr.partitions.get(i).copied().flatten())
        .ok_or_else(|| ImageError::Layout(format!("{} has no partition {number}", card.display())))
}

/// Copies partition `number` of `card` out into the file `out`.
pub fn extract_partition(card: &Path, number: u8, out: &Path) -> Result<(), ImageError> {
    let part = partition(card, number)?;
    let mut src = File::open(card).map_err(io_err(card))?;
    src.seek(SeekFrom::Start(part.byte_offset()))
        .map_err(io_err(card))?;
    let mut dst = File::create(out).map_err(io_err(out))?;
    dst.set_len(part.byte_len()).map_err(io_err(out))?;
    copy_sparse(&mut src.take(part.byte_len()), &mut dst, 0).map_err(io_err(out))
}

/// Overwrites partition `number` of `card` with the content of `src` (which must fit); the rest
/// of the partition is zeroed.
pub fn replace_partition(card: &Path, number: u8, src: &Path) -> Result<(), ImageError> {
    let part = partition(card, number)?;
    let len = std::fs::metadata(src).map_err(io_err(src))?.len();
    if len > part.byte_len() {
        return Err(ImageError::Layout(format!(
            "{} ({len} bytes) does not fit partition {number} of {} ({} bytes)",
            src.display(),
            card.display(),
            part.byte_len()
        )));
    }
    let mut dst = OpenOptions::new()
        .write(true)
        .open(card)
        .map_err(io_err(card))?;
    let mut input = File::open(src).map_err(io_err(src))?;
    let zeros = vec![0u8; 64 * 1024];
    let mut data = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    dst.seek(SeekFrom::Start(part.byte_offset()))
        .map_err(io_err(card))?;
    while pos < part.byte_len() {
        let want =
            usize::try_from((part.byte_len() - pos).min(data.len() as u64)).unwrap_or(data.len());
        let n = read_full(&mut input, &mut data[..want]).map_err(io_err(src))?;
        let chunk = if n == 0 { &zeros[..want] } else { &data[..n] };
        dst.write_all(chunk).map_err(io_err(card))?;
        pos += chunk.len() as u64;
    }
    dst.sync_all().map_err(io_err(card))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, name: &str, len: u64, marker: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).expect("create");
        f.set_len(len).expect("set_len");
        f.write_all(marker).expect("write");
        p
    }

    #[test]
    fn assemble_places_partitions_aligned_and_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = file_with(dir.path(), "a", 3 * MIB / 2, b"AAAA");
        let b = file_with(dir.path(), "b", MIB, b"BBBB");
        let out = dir.path().join("card.img");
        let parts = [
            PartitionSource {
                type_id: 0x0c,
                content: &a,
                size: None,
            },
            PartitionSource {
                type_id: 0x83,
                content: &b,
                size: Some(4 * MIB),
            },
        ];
        let mbr = assemble(&out, 0x1234_abcd, &parts, Some(16 * MIB)).expect("assemble");
        assert_eq!(std::fs::metadata(&out).expect("meta").len(), 16 * MIB);
        let back = read_mbr(&out).expect("mbr");
        assert_eq!(back.disk_id, 0x1234_abcd);
        let p1 = back.partitions[0].expect("p1");
        let p2 = back.partitions[1].expect("p2");
        assert_eq!(p1.byte_offset(), MIB);
        assert_eq!(p1.byte_len(), 2 * MIB);
        assert_eq!(p2.byte_offset(), 3 * MIB);
        assert_eq!(p2.byte_len(), 4 * MIB);
        assert_eq!(mbr.partitions, back.partitions);
        let bytes = std::fs::read(&out).expect("read");
        assert_eq!(&bytes[1024 * 1024..1024 * 1024 + 4], b"AAAA");
        assert_eq!(&bytes[3 * 1024 * 1024..3 * 1024 * 1024 + 4], b"BBBB");
        assert!(!dir.path().join("card.img.partial").exists());
    }

    #[test]
    fn too_small_card_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = file_with(dir.path(), "a", 4 * MIB, b"A");
        let out = dir.path().join("card.img");
        let parts = [PartitionSource {
            type_id: 0x83,
            content: &a,
            size: None,
        }];
        let err = assemble(&out, 1, &parts, Some(2 * MIB)).expect_err("must not fit");
        assert!(
            err.to_string()
                .contains("more than the requested card size"),
            "{err}"
        );
        assert!(!out.exists());
    }

    #[test]
    fn extract_and_replace_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = file_with(dir.path(), "a", MIB, b"first");
        let out = dir.path().join("card.img");
        let parts = [PartitionSource {
            type_id: 0x83,
            content: &a,
            size: Some(2 * MIB),
        }];
        assemble(&out, 7, &parts, None).expect("assemble");
        let repl = file_with(dir.path(), "r", 1000, b"second");
        replace_partition(&out, 1, &repl).expect("replace");
        let got = dir.path().join("got");
        extract_partition(&out, 1, &got).expect("extract");
        let bytes = std::fs::read(&got).expect("read");
        assert_eq!(bytes.len() as u64, 2 * MIB);
        assert_eq!(&bytes[..6], b"second");
        assert!(bytes[6..].iter().all(|&b| b == 0), "rest must be zeroed");
        let err = extract_partition(&out, 2, &got).expect_err("no p2");
        assert!(err.to_string().contains("no partition 2"), "{err}");
    }
}
