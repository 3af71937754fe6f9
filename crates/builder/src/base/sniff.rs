//! What a would-be base image is, from its first bytes and its size, before anything tries to
//! read it as a disk: compressed data, an archive, an installer ISO, a GPT disk, or too small.
//! Pure: the caller reads [`HEAD_LEN`] bytes (fewer if the file is shorter).

use k8r_boot_config::mbr;

/// How many leading bytes [`sniff`] looks at (the ISO 9660 volume descriptor is at 32 KiB).
pub const HEAD_LEN: usize = 64 * 1024;

/// The smallest file taken for a Raspberry Pi disk image: Ubuntu's boot partition alone is
/// 512 MiB and its root filesystem several GiB; k8r's fixtures are 128 MiB.
pub const MIN_IMAGE_BYTES: u64 = 64 * 1024 * 1024;

/// A compression format recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `.xz` (how Ubuntu ships its Raspberry Pi images).
    Xz,
    /// `.zst`.
    Zstd,
    /// `.gz`.
    Gzip,
    /// `.bz2`.
    Bzip2,
    /// `.zip`.
    Zip,
}

impl Compression {
    /// The format's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Zip => "zip",
        }
    }

    /// The command that decompresses `file` (keeping it), and the file it makes.
    pub fn fix(self, file: &str) -> (String, String) {
        let (ext, keep, to_stdout) = match self {
            Compression::Xz => (".xz", "xz -dk", "xz -dc"),
            Compression::Zstd => (".zst", "zstd -d", "zstd -dc"),
            Compression::Gzip => (".gz", "gunzip -k", "gzip -dc"),
            Compression::Bzip2 => (".bz2", "bunzip2 -k", "bzip2 -dc"),
            Compression::Zip => return (format!("unzip {file}"), "the .img inside".into()),
        };
        match file.strip_suffix(ext) {
            Some(stem) => (format!("{keep} {file}"), stem.to_owned()),
            None => {
                let stem = file.strip_suffix(".img").unwrap_or(file);
                let out = format!("{stem}-uncompressed.img");
                (format!("{to_stdout} {file} > {out}"), out)
            }
        }
    }
}

/// Why a file is not a disk image k8r can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotADisk {
    /// Compressed data.
    Compressed(Compression),
    /// A tar archive.
    Tar,
    /// An ISO 9660 (CD/DVD installer) image.
    Iso,
    /// Smaller than [`MIN_IMAGE_BYTES`].
    TooSmall,
    /// No MBR (no boot signature), or an MBR without partitions.
    NoPartitionTable,
    /// A GPT disk (its protective MBR has a partition of type 0xee).
    Gpt,
}

/// What the first bytes `head` of a file of `len` bytes say: `Ok` when it may be an MBR disk
/// image (the partition table is read properly afterwards).
pub fn sniff(head: &[u8], len: u64) -> Result<(), NotADisk> {
    const MAGIC: &[(&[u8], Compression)] = &[
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], Compression::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
        (&[0x1f, 0x8b], Compression::Gzip),
        (b"PK\x03\x04", Compression::Zip),
    ];
    if let Some((_, c)) = MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return Err(NotADisk::Compressed(*c));
    }
    if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
        return Err(NotADisk::Compressed(Compression::Bzip2));
    }
    if head.get(257..262) == Some(b"ustar") {
        return Err(NotADisk::Tar);
    }
    if head.get(0x8001..0x8006) == Some(b"CD001") {
        return Err(NotADisk::Iso);
    }
    if len < MIN_IMAGE_BYTES || head.len() < 512 {
        return Err(NotADisk::TooSmall);
    }
    // The type bytes alone, not `Mbr::parse`: that stops at a damaged status byte before it
    // looks for a GPT entry, and skips entries with no sectors.
    let types = mbr::entry_types(head).map_err(|_| NotADisk::NoPartitionTable)?;
    if types.contains(&mbr::GPT_PROTECTIVE) {
        return Err(NotADisk::Gpt);
    }
    if types.iter().all(|&t| t == 0) {
        return Err(NotADisk::NoPartitionTable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 4 << 30;

    /// A sector 0 with the boot signature and the given partition types.
    fn mbr(types: [u8; 4]) -> Vec<u8> {
        let mut head = vec![0u8; HEAD_LEN];
        for (i, t) in types.iter().enumerate() {
            head[446 + 16 * i + 4] = *t;
        }
        head[510] = 0x55;
        head[511] = 0xaa;
        head
    }

    /// Deterministic noise (xorshift), as a random download would be.
    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect()
    }

    #[test]
    fn compressed_data_is_named_by_its_format() {
        let cases: [(&[u8], Compression); 5] = [
            (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4], Compression::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0x24], Compression::Zstd),
            (&[0x1f, 0x8b, 8, 0], Compression::Gzip),
            (b"BZh91AY&SY", Compression::Bzip2),
            (b"PK\x03\x04\x14\0", Compression::Zip),
        ];
        for (magic, want) in cases {
            let mut head = magic.to_vec();
            head.resize(HEAD_LEN, 0);
            assert_eq!(sniff(&head, BIG), Err(NotADisk::Compressed(want)));
            // Even a small compressed file is named as compressed, not as too small.
            assert_eq!(sniff(magic, 100), Err(NotADisk::Compressed(want)));
        }
    }

    #[test]
    fn decompression_hint_names_the_output() {
        let fix = |c: Compression, f: &str| {
            let (cmd, out) = c.fix(f);
            format!("{cmd} -> {out}")
        };
        assert_eq!(fix(Compression::Xz, "u.img.xz"), "xz -dk u.img.xz -> u.img");
        assert_eq!(
            fix(Compression::Xz, "u.img"),
            "xz -dc u.img > u-uncompressed.img -> u-uncompressed.img"
        );
        assert_eq!(
            fix(Compression::Zstd, "u.img.zst"),
            "zstd -d u.img.zst -> u.img"
        );
    }

    #[test]
    fn gpt_disks_are_recognised_by_the_protective_mbr() {
        assert_eq!(sniff(&mbr([0xee, 0, 0, 0]), BIG), Err(NotADisk::Gpt));
        // Whatever else the entries hold (here a status byte that is not 0x00 or 0x80).
        let mut hybrid = mbr([0x0c, 0xee, 0, 0]);
        hybrid[446] = 0x12;
        assert_eq!(sniff(&hybrid, BIG), Err(NotADisk::Gpt));
    }

    #[test]
    fn random_bytes_have_no_partition_table() {
        let mut head = noise(HEAD_LEN);
        head[510] = 0;
        assert_eq!(sniff(&head, BIG), Err(NotADisk::NoPartitionTable));
        assert_eq!(sniff(&mbr([0; 4]), BIG), Err(NotADisk::NoPartitionTable));
    }

    #[test]
    fn small_files_are_too_small() {
        let head = mbr([0x0c, 0x83, 0, 0]);
        assert_eq!(sniff(&head, MIN_IMAGE_BYTES - 1), Err(NotADisk::TooSmall));
        assert_eq!(sniff(&noise(300), 300), Err(NotADisk::TooSmall));
        assert_eq!(sniff(&[], 0), Err(NotADisk::TooSmall));
    }

    #[test]
    fn iso_and_tar_are_named() {
        let mut iso = mbr([0x00, 0xef, 0, 0]);
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(sniff(&iso, BIG), Err(NotADisk::Iso));
        let mut tar = vec![0u8; 10240];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar, 10240), Err(NotADisk::Tar));
    }

    #[test]
    fn an_ubuntu_shaped_mbr_passes() {
        assert_eq!(sniff(&mbr([0x0c, 0x83, 0, 0]), BIG), Ok(()));
    }
}
