//! Reads an SD card image the way the firmware sees it: the MBR, and the files on each FAT
//! partition (through the `fatfs` crate, read-only).

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use k8r_boot_config::firmware::{CardView, FileLookup, PartitionKind, PartitionView};
use k8r_boot_config::mbr::{is_fat_type, Mbr};

/// Reading the card failed.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The card image.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The partition table is unusable.
    #[error("{path}: {source}")]
    Mbr {
        /// The card image.
        path: PathBuf,
        /// Why.
        source: k8r_boot_config::mbr::MbrError,
    },
}

/// A read-only window of the card file: one partition.
struct Slice {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        if want == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Slice {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the firmware model reads the card, it never writes",
        ))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Slice {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let new = new.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the partition",
            )
        })?;
        self.pos = new;
        Ok(new)
    }
}

/// One FAT partition, opened.
pub struct FatPartition {
    fs: RefCell<fatfs::FileSystem<Slice>>,
}

impl std::fmt::Debug for FatPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FatPartition")
    }
}

impl FileLookup for FatPartition {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let fs = self.fs.borrow();
        let mut file = fs.root_dir().open_file(path.trim_start_matches('/')).ok()?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).ok()?;
        Some(data)
    }

    fn exists(&self, path: &str) -> bool {
        let fs = self.fs.borrow();
        let found = fs
            .root_dir()
            .open_file(path.trim_start_matches('/'))
            .is_ok();
        found
    }
}

/// A card image opened for the firmware model.
#[derive(Debug)]
pub struct Card {
    /// The table read from sector 0.
    pub mbr: Mbr,
    fats: Vec<(u8, Option<FatPartition>)>,
}

impl Card {
    /// Opens `path`: reads the MBR and mounts every FAT-typed partition that holds a FAT
    /// filesystem (others are seen as non-FAT, as the firmware would).
    pub fn open(path: &Path) -> Result<Card, CardError> {
        let io = |source| CardError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let mut sector = [0u8; 512];
        file.read_exact(&mut sector).map_err(io)?;
        let mbr = Mbr::parse(&sector).map_err(|source| CardError::Mbr {
            path: path.to_path_buf(),
            source,
        })?;
        let mut fats = Vec::new();
        for (i, entry) in mbr.partitions.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let number = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let fat = if is_fat_type(entry.type_id) {
                let slice = Slice {
                    file: file.try_clone().map_err(io)?,
                    start: entry.byte_offset(),
                    len: entry.byte_len(),
                    pos: 0,
                };
                fatfs::FileSystem::new(slice, fatfs::FsOptions::new())
                    .ok()
                    .map(|fs| FatPartition {
                        fs: RefCell::new(fs),
                    })
            } else {
                None
            };
            fats.push((number, fat));
        }
        Ok(Card { mbr, fats })
    }

    /// The view the firmware model takes.
    pub fn view(&self) -> CardView<'_> {
        CardView {
            partitions: self
                .fats
                .iter()
                .map(|(number, fat)| match fat {
                    Some(fat) => PartitionView {
                        number: *number,
                        kind: PartitionKind::Fat,
                        files: fat as &dyn FileLookup,
                    },
                    None => PartitionView {
                        number: *number,
                        kind: PartitionKind::Other,
                        files: &NoFiles,
                    },
                })
                .collect(),
        }
    }

    /// A file from FAT partition `number`, if present.
    pub fn read(&self, number: u8, path: &str) -> Option<Vec<u8>> {
        self.fats
            .iter()
            .find(|(n, _)| *n == number)
            .and_then(|(_, fat)| fat.as_ref())
            .and_then(|fat| fat.read(path))
    }
}

/// A partition without files (not FAT).
struct NoFiles;

impl FileLookup for NoFiles {
    fn read(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}
