//! The vendor base image (Ubuntu Server for Raspberry Pi): its partitions, its boot files as
//! the firmware would choose them, its kernel release, and its root filesystem, all read
//! without mounting.

use std::io::Read;
use std::path::{Path, PathBuf};

use k8r_boot_config::firmware::{select_boot, BootChoice, BootRequest, CardView, Eeprom};
use k8r_boot_config::firmware::{DirFiles, PartitionKind, PartitionView};
use k8r_boot_config::mbr::{is_fat_type, Mbr, MbrPartition};
use k8r_boot_config::Board;
use k8r_card::layout::{BOOT_LABEL, ROOT_LABEL};

use crate::image::fat::FatImage;
use crate::image::{card, ImageError};

mod sniff;
pub use sniff::{sniff, Compression, NotADisk, HEAD_LEN, MIN_IMAGE_BYTES};

/// The vendor image k8r is built for and where to get it, for the hints.
const GET_UBUNTU: &str = "k8r is built from Ubuntu Server 26.04 LTS for Raspberry Pi, \
     uncompressed: ubuntu-26.04-preinstalled-server-arm64+raspi.img (download the .img.xz from \
     https://ubuntu.com/download/raspberry-pi and run `xz -dk` on it)";

/// Which Ubuntu layout the base image has (pi-boot.md §5, §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 25.10+ / 26.04 LTS: boot assets under `os_prefix` `current/`, tryboot kernel A/B.
    OsPrefix,
    /// 22.04 / 24.04: everything at the top of the boot partition.
    Flat,
}

impl Shape {
    /// The manifest's `base_shape`.
    pub fn name(self) -> &'static str {
        match self {
            Shape::OsPrefix => "ubuntu-26.04 (os_prefix current/)",
            Shape::Flat => "ubuntu-24.04 (flat)",
        }
    }
}

/// A base image, opened.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The image file.
    pub path: PathBuf,
    /// Its partition table.
    pub mbr: Mbr,
    /// Number and entry of the boot (FAT) partition.
    pub boot: (u8, MbrPartition),
    /// Number and entry of the root (Linux) partition.
    pub root: (u8, MbrPartition),
}

/// What is wrong with a base image.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// Reading the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The file cannot be read at all.
    #[error("cannot read the base image {path}: {error}")]
    Read {
        /// The image.
        path: PathBuf,
        /// Why (not a `source`: printed here, once).
        error: std::io::Error,
    },
    /// Compressed data where a disk image was expected.
    #[error("{path}: this is {}-compressed data, not a disk image: decompress it first, e.g. `{command}`, and give {output} as the base image. {GET_UBUNTU}", format.name())]
    Compressed {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: Compression,
        /// The command that decompresses it.
        command: String,
        /// The file that makes.
        output: String,
    },
    /// A tar archive.
    #[error("{path}: this is a tar archive, not a disk image: unpack it (`tar -xf {path}`) and give the .img inside. {GET_UBUNTU}")]
    Tar {
        /// The file.
        path: PathBuf,
    },
    /// An installer ISO.
    #[error("{path}: this is an ISO 9660 (CD/DVD installer) image, not a Raspberry Pi disk image: k8r starts from the preinstalled server image. {GET_UBUNTU}")]
    Iso {
        /// The file.
        path: PathBuf,
    },
    /// Too small to be a Raspberry Pi image.
    #[error("{path}: only {len} bytes, smaller than any Raspberry Pi disk image (at least {} MiB: a boot partition and a root filesystem): an interrupted download or the wrong file? {GET_UBUNTU}", MIN_IMAGE_BYTES >> 20)]
    TooSmall {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
    },
    /// No partition table.
    #[error("{path}: no partition table (no MBR boot signature 0x55aa at byte 510, or no partitions): this is not a disk image. {GET_UBUNTU}")]
    NoPartitionTable {
        /// The file.
        path: PathBuf,
    },
    /// A GPT disk.
    #[error("{path}: GPT-partitioned (its protective MBR has a partition of type 0xee); k8r needs the MBR layout of Ubuntu Server for Raspberry Pi. {GET_UBUNTU}")]
    Gpt {
        /// The file.
        path: PathBuf,
    },
    /// The layout is not the Ubuntu one.
    #[error("{path}: {problem} (expected Ubuntu Server for Raspberry Pi: MBR, a FAT `{BOOT_LABEL}` partition and an ext4 `{ROOT_LABEL}` partition; is it an uncompressed .img?)")]
    Layout {
        /// The image.
        path: PathBuf,
        /// What is missing.
        problem: String,
    },
    /// The firmware would not boot the base image.
    #[error("{path}: the Raspberry Pi firmware would not boot this image: {reason}")]
    NoBoot {
        /// The image.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The kernel's release could not be read.
    #[error("{path}: cannot read the kernel release from {kernel}: {reason}")]
    Kernel {
        /// The image.
        path: PathBuf,
        /// The kernel file.
        kernel: String,
        /// Why.
        reason: String,
    },
}

impl BaseImage {
    /// Opens `path` and finds its boot and root partitions.
    pub fn open(path: &Path) -> Result<Self, BaseError> {
        let layout = |problem: String| BaseError::Layout {
            path: path.to_path_buf(),
            problem,
        };
        let mbr = read_table(path)?;
        let mut boot = None;
        let mut root = None;
        for (i, entry) in mbr.partitions.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let number = u8::try_from(i + 1).unwrap_or(u8::MAX);
            if boot.is_none() && is_fat_type(entry.type_id) {
                boot = Some((number, *entry));
            } else if root.is_none() && entry.type_id == 0x83 {
                root = Some((number, *entry));
            }
        }
        let boot = boot.ok_or_else(|| layout("no FAT partition".into()))?;
        let root = root.ok_or_else(|| layout("no Linux (0x83) partition".into()))?;
        let len = file_len(path)?;
        if root.1.byte_offset() + root.1.byte_len() > len {
            return Err(layout(format!(
                "partition {} ends beyond the end of the file ({len} bytes): truncated download?",
                root.0
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            mbr,
            boot,
            root,
        })
    }

    /// The boot partition as a FAT filesystem inside the image.
    pub fn boot_fat(&self) -> FatImage {
        FatImage {
            path: self.path.clone(),
            offset: self.boot.1.byte_offset(),
        }
    }

    /// Copies every file of the boot partition into `dir`.
    pub fn extract_boot(&self, dir: &Path) -> Result<(), BaseError> {
        std::fs::create_dir_all(dir).map_err(|source| ImageError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        self.boot_fat().extract_all(dir)?;
        Ok(())
    }

    /// Copies the root partition into the standalone file `out`.
    pub fn extract_root(&self, out: &Path) -> Result<(), BaseError> {
        card::extract_partition(&self.path, self.root.0, out)?;
        Ok(())
    }
}

fn file_len(path: &Path) -> Result<u64, BaseError> {
    let read = |error| BaseError::Read {
        path: path.to_path_buf(),
        error,
    };
    Ok(std::fs::metadata(path).map_err(read)?.len())
}

/// Sniffs `path` ([`sniff`]) and reads its MBR; every refusal is one message with the fix.
pub fn read_table(path: &Path) -> Result<Mbr, BaseError> {
    let read = |error| BaseError::Read {
        path: path.to_path_buf(),
        error,
    };
    let len = file_len(path)?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    std::fs::File::open(path)
        .map_err(read)?
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(read)?;
    let path_buf = path.to_path_buf();
    sniff(&head, len).map_err(|not| match not {
        NotADisk::Compressed(format) => {
            let (command, output) = format.fix(&path.display().to_string());
            BaseError::Compressed {
                path: path_buf.clone(),
                format,
                command,
                output,
            }
        }
        NotADisk::Tar => BaseError::Tar {
            path: path_buf.clone(),
        },
        NotADisk::Iso => BaseError::Iso {
            path: path_buf.clone(),
        },
        NotADisk::TooSmall => BaseError::TooSmall {
            path: path_buf.clone(),
            len,
        },
        NotADisk::NoPartitionTable => BaseError::NoPartitionTable {
            path: path_buf.clone(),
        },
        NotADisk::Gpt => BaseError::Gpt {
            path: path_buf.clone(),
        },
    })?;
    // `sniff` saw at least 512 bytes and the boot signature.
    Mbr::parse(&head[..512]).map_err(|e| BaseError::Layout {
        path: path_buf,
        problem: e.to_string(),
    })
}

/// The firmware model's choice for boot files copied into `dir` (as a Pi 4 with a fresh
/// power-on would choose), and the layout it implies.
pub fn boot_choice(image: &Path, dir: &Path) -> Result<(BootChoice, Shape), BaseError> {
    let files = DirFiles::new(dir);
    let view = CardView {
        partitions: vec![PartitionView {
            number: 1,
            kind: PartitionKind::Fat,
            files: &files,
        }],
    };
    let choice = select_boot(
        &view,
        BootRequest::default(),
        Board::Pi4,
        &Eeprom::default(),
    )
    .map_err(|e| BaseError::NoBoot {
        path: image.to_path_buf(),
        reason: e.to_string(),
    })?;
    let shape = if choice.os_prefix.is_empty() {
        Shape::Flat
    } else {
        Shape::OsPrefix
    };
    Ok((choice, shape))
}

/// The kernel release (`uname -r`) of an arm64 kernel image, raw or gzip-compressed: the text
/// after `Linux version ` in the image.
pub fn kernel_release(kernel: &[u8]) -> Result<String, String> {
    let data;
    let image: &[u8] = if kernel.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(kernel)
            .read_to_end(&mut out)
            .map_err(|e| format!("gunzip: {e}"))?;
        data = out;
        &data
    } else if kernel.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err("zstd-compressed kernels are not supported yet".into());
    } else {
        kernel
    };
    const NEEDLE: &[u8] = b"Linux version ";
    let at = image
        .windows(NEEDLE.len())
        .position(|w| w == NEEDLE)
        .ok_or("no \"Linux version\" string (not a Linux kernel?)")?;
    let rest = &image[at + NEEDLE.len()..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .ok_or("unterminated version string")?;
    let release = String::from_utf8_lossy(&rest[..end]).into_owned();
    if release.is_empty() || release.len() > 64 {
        return Err(format!("implausible release {release:?}"));
    }
    Ok(release)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn release_from_raw_and_gzip_kernels() {
        let raw = b"\0\0junk Linux version 6.8.0-1004-raspi (buildd@bos) #4 SMP\0more".to_vec();
        assert_eq!(kernel_release(&raw).as_deref(), Ok("6.8.0-1004-raspi"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).expect("gzip");
        let gz = gz.finish().expect("gzip");
        assert_eq!(kernel_release(&gz).as_deref(), Ok("6.8.0-1004-raspi"));
        assert!(kernel_release(b"not a kernel").is_err());
    }
}
