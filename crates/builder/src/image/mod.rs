//! Rootless disk-image primitives: MBR cards ([`card`]), FAT partitions through mtools
//! ([`fat`]) and ext4 partitions through e2fsprogs ([`ext4`]). Facts behind the choices are in
//! `docs/assembly.md`.

pub mod card;
pub mod ext4;
pub mod fat;
pub mod used_ranges;

use std::path::PathBuf;

use crate::process::ProcessError;

/// What can go wrong while building or editing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An external tool failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The partition table is unusable.
    #[error("{path}: {source}")]
    Mbr {
        /// The card image.
        path: PathBuf,
        /// What is wrong with its table.
        source: k8r_boot_config::mbr::MbrError,
    },
    /// debugfs reported an error (it always exits 0, so its stderr is checked).
    #[error("debugfs on {path} reported: {message}")]
    Debugfs {
        /// The ext4 image.
        path: PathBuf,
        /// Its error lines.
        message: String,
    },
    /// The requested layout cannot be built.
    #[error("{0}")]
    Layout(String),
}

/// Maps an I/O error to [`ImageError::Io`] naming `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io { path, source }
}

/// One mebibyte: partition alignment and size granularity.
pub const MIB: u64 = 1024 * 1024;

/// Rounds `n` up to a multiple of `to` (`to` > 0).
pub fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// A fresh path in the temp directory, unique within this process and across processes.
pub(crate) fn temp_path(prefix: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("k8r-{prefix}-{}-{n}", std::process::id()))
}

/// Copies the tree under `from` into `to` (created if needed): directories and regular files.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> Result<(), ImageError> {
    std::fs::create_dir_all(to).map_err(io_err(to))?;
    for entry in std::fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io_err(entry.path()))?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io_err(entry.path()))?;
        }
    }
    Ok(())
}
