//! A loop device over a card-sized file: the flash table's block-device target. Onto a regular
//! file `bmaptool copy` returns before its data reaches the disk (it does not fsync a file);
//! onto a block device every method ends with the data on the device, as on a card reader.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// An attached loop device; detached (and its backing file removed) on drop.
pub struct LoopDevice {
    dev: PathBuf,
    backing: PathBuf,
}

impl LoopDevice {
    /// Attaches a new `len`-byte file `backing` as a loop device with direct I/O to its file
    /// (so the loop driver adds no second page cache). `None`, with the reason logged, where
    /// that is not possible (not root, no loop driver): the bench then skips the rows.
    ///
    /// The file is written with zeros first, like a card whose every block exists: otherwise
    /// the first method of a round would pay for allocating the file's blocks and the others
    /// not.
    pub fn attach(backing: &Path, len: u64) -> Result<Option<Self>> {
        fill_zeros(backing, len).with_context(|| format!("creating {}", backing.display()))?;
        let out = Command::new("losetup")
            .args(["--find", "--show", "--direct-io=on"])
            .arg(backing)
            .output();
        let reason = match out {
            Ok(out) if out.status.success() => {
                let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if !dev.is_empty() {
                    return Ok(Some(Self {
                        dev: dev.into(),
                        backing: backing.to_path_buf(),
                    }));
                }
                "losetup printed no device".to_owned()
            }
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Err(e) => format!("running losetup: {e}"),
        };
        log::warn!("bench: no loop device ({reason}): the block-device flash rows are skipped");
        let _ = std::fs::remove_file(backing);
        Ok(None)
    }

    /// The device node, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.dev
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let detached = Command::new("losetup")
            .arg("--detach")
            .arg(&self.dev)
            .status();
        if !detached.is_ok_and(|s| s.success()) {
            log::warn!(
                "bench: could not detach {} (detach it with `losetup -d {}`)",
                self.dev.display(),
                self.dev.display()
            );
        }
        let _ = std::fs::remove_file(&self.backing);
    }
}

/// Writes `len` zero bytes to a new file `path` and syncs it.
fn fill_zeros(path: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path)?;
    let zeros = vec![0u8; 4 << 20];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// Whether `path` is a block device (which a round must not remove).
pub fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}
