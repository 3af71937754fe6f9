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

/// The recovery partition as PID 1 holds it: mounted read-only for the whole boot, and
/// read-write only while [`RecoveryMount::writing`] runs. Linux marks a FAT volume dirty for as
/// long as it is mounted read-write and never clears a mark it found at mount, so a power cut
/// outside those moments leaves p1 clean, and one inside them is repaired at the next boot
/// ([`RecoveryMount::repair_if_dirty`]).
#[derive(Debug)]
pub(crate) struct RecoveryMount {
    dev: PathBuf,
    dir: PathBuf,
}

impl RecoveryMount {
    /// Mounts `dev` read-only on `dir`, for good.
    pub(crate) fn mount(dev: &Path, dir: &Path) -> Result<RecoveryMount> {
        let m = mount_with(dev, dir, Fs::Fat32, Flags::RDONLY, "")?;
        Ok(RecoveryMount {
            dev: dev.to_path_buf(),
            dir: m.keep(),
        })
    }

    /// The mount point.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partition's device.
    pub(crate) fn dev(&self) -> &Path {
        &self.dev
    }

    /// Runs `f` with the partition writable: remounted read-write (with dirsync), then synced
    /// and remounted read-only, which clears the volume's dirty mark. `f`'s error wins over
    /// the remount's.
    pub(crate) fn writing<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        sys::remount(&self.dir, Fs::Fat32.mount_flags())
            .map_err(Error::io("remount read-write", &self.dir))?;
        let out = f();
        sys::sync();
        let back = sys::remount(&self.dir, Fs::Fat32.mount_flags() | Flags::RDONLY)
            .map_err(Error::io("remount read-only", &self.dir));
        let value = out?;
        back?;
        Ok(value)
    }

    /// When the volume is marked dirty (a power cut while it was writable): unmounts it,
    /// clears the mark and forgets the free-cluster count in place
    /// ([`k8r_card::fat_state::repair`]), and mounts it read-only again. The caller has read
    /// its files first. Returns whether it repaired.
    pub(crate) fn repair_if_dirty(&mut self) -> Result<bool> {
        let state = std::fs::File::open(&self.dev)
            .map_err(Error::io("open", &self.dev))
            .and_then(|mut f| {
                k8r_card::fat_state::inspect(&mut f).map_err(|e| Error::FatState {
                    device: self.dev.clone(),
                    source: e,
                })
            })?;
        if !state.dirty {
            return Ok(false);
        }
        sys::sync();
        sys::umount(&self.dir).map_err(Error::io("umount", &self.dir))?;
        let repaired = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&self.dev)
            .map_err(Error::io("open", &self.dev))
            .and_then(|mut f| {
                k8r_card::fat_state::repair(&mut f, |f| f.sync_data())
                    .map(|_| ())
                    .map_err(|e| Error::FatState {
                        device: self.dev.clone(),
                        source: e,
                    })
            });
        // Mounted again whatever the repair did: PID 1 needs its files.
        let again = mount_with(&self.dev, &self.dir, Fs::Fat32, Flags::RDONLY, "");
        repaired?;
        again?.keep();
        Ok(true)
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
