//! The installer's one error type: every failure of finding the card, reading the store,
//! writing a partition or flipping `autoboot.txt`, each naming the device or file, printed as
//! one line on the console, in the install record and in the install log.

use std::io;
use std::path::PathBuf;

use k8r_card::disk::DiskError;
use k8r_card::replace::ReplaceError;
use k8r_card::store::StoreError;
use k8r_card::stream::StreamError;

use crate::unpack::UnpackError;

/// Why an install (or a menu action) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The card or one of its partitions was not found.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The image store could not be read, or the stored build does not verify.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A careful replace on a FAT partition failed.
    #[error(transparent)]
    Replace(#[from] ReplaceError),
    /// Writing or reading back the root partition failed.
    #[error("{what}: {source}")]
    Stream {
        /// What was being written or read (the image file or the device).
        what: String,
        /// What went wrong.
        #[source]
        source: StreamError,
    },
    /// Unpacking `boot.tar.xz` failed.
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// An I/O call on a device or file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("open", "fsync", "format", …).
        action: &'static str,
        /// The device or file.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// Mounting failed.
    #[error("mount {device} ({fstype}) on {dir}: {source}")]
    Mount {
        /// The device.
        device: PathBuf,
        /// The filesystem type.
        fstype: &'static str,
        /// The mount point.
        dir: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The recovery partition's FAT state could not be read or repaired.
    #[error("{device}: {source}")]
    FatState {
        /// The partition.
        device: PathBuf,
        /// What went wrong.
        #[source]
        source: k8r_card::fat_state::FatStateError,
    },
    /// A partition is too small for what the manifest says goes onto it.
    #[error("{device} holds {have} bytes, the image needs {need} (the card's partition table does not fit this build: reflash the card)")]
    TooSmall {
        /// The partition.
        device: PathBuf,
        /// Its size.
        have: u64,
        /// The manifest's size.
        need: u64,
    },
    /// The stored build is for another architecture than the machine the installer runs on.
    #[error("build {build} is for {image}, this machine runs {machine} programs: stage a build made with ARCH=\"{machine}\"")]
    WrongArch {
        /// The build's id.
        build: String,
        /// The manifest's `arch`.
        image: String,
        /// This machine's.
        machine: String,
    },
    /// The new boot partition would not boot, as the firmware model sees it.
    #[error("the new boot partition would not boot: {0}")]
    WouldNotBoot(String),
    /// A menu action that needs a card and a stored image, when there is none.
    #[error("no usable card or stored image (see the error above)")]
    NotReady,
    /// Booting the working system was asked for before an install verified.
    #[error("the working system has not been verified by an install: reinstall first")]
    NotVerified,
}

impl Error {
    /// An [`Error::Io`] maker for `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// The installer's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
