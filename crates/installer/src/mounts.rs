//! Mounting the card's partitions, and a guard that syncs and unmounts on every way out of a
//! step (early returns and errors included), so no step leaves a filesystem mounted or its
//! writes in the page cache.
//!
//! Every mount takes the card crate's flags for its filesystem ([`Fs::mount_flags`]): FAT is
//! mounted with `MS_DIRSYNC`, so a careful replace's directory changes reach the card before
//! the call returns.

use std::path::{Path, PathBuf};

use k8r_card::Fs;

use crate::error::{Error, Result};
use crate::sys::{self, Flags};

/// Mounts `device` (a partition of the card with filesystem `fs`) on `dir` (created). FAT is
/// mounted with UTF-8 names when the kernel has `nls_utf8`, else with the kernel's default
/// character set (which needs its own nls module: Debian's default is `ascii`, Ubuntu's
/// `iso8859-1`).
pub(crate) fn mount(device: &Path, dir: &Path, fs: Fs) -> Result<Mounted> {
    mount_with(device, dir, fs, Flags::empty(), "")
}

/// Like [`mount`], with extra flags (e.g. read-only) and mount data.
pub(crate) fn mount_with(
    device: &Path,
    dir: &Path,
    fs: Fs,
    extra: Flags,
    data: &str,
) -> Result<Mounted> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let source = device.to_string_lossy();
    let fstype = fs.mount_type();
    let flags = fs.mount_flags() | extra;
    let first = if fs == Fs::Fat32 && data.is_empty() {
        "iocharset=utf8"
    } else {
        data
    };
    sys::mount(&source, dir, fstype, flags, first)
        .or_else(|e| {
            if first == data {
                Err(e)
            } else {
                sys::mount(&source, dir, fstype, flags, data)
            }
        })
        .map_err(|source| Error::Mount {
            device: device.to_path_buf(),
            fstype,
            dir: dir.to_path_buf(),
            source,
        })?;
    Ok(Mounted {
        dir: Some(dir.to_path_buf()),
    })
}

/// A mounted filesystem: synced and unmounted when dropped, or explicitly with
/// [`Mounted::unmount`] to see the error.
#[derive(Debug)]
pub(crate) struct Mounted {
    dir: Option<PathBuf>,
}

impl Mounted {
    /// The mount point.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new("/"))
    }

    /// Syncs and unmounts now.
    pub(crate) fn unmount(mut self) -> Result<()> {
        match self.dir.take() {
            Some(dir) => {
                sys::sync();
                sys::umount(&dir).map_err(Error::io("umount", dir))
            }
            None => Ok(()),
        }
    }

    /// Leaves the filesystem mounted for good (PID 1's recovery partition).
    pub(crate) fn keep(mut self) -> PathBuf {
        self.dir.take().unwrap_or_default()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            sys::sync();
            let _ = sys::umount(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_mount_names_device_and_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = mount(
            &dir.path().join("no-such-device"),
            &dir.path().join("mnt"),
            Fs::Ext4,
        )
        .expect_err("no device");
        let msg = err.to_string();
        assert!(
            msg.contains("no-such-device") && msg.contains("(ext4)") && msg.contains("mnt"),
            "{msg}"
        );
    }
}
