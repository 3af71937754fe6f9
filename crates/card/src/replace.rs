//! The careful replace of one file on a mounted FAT (style rule 5, after RAUC's
//! `raspberrypi.c`).
//!
//! vfat has no `RENAME_EXCHANGE`, so a file the firmware reads (`autoboot.txt`, `config.txt`,
//! `cmdline.txt`) and the installer's own records (`k8r/install-state`, `k8r/install.log`) are
//! replaced like this, and only like this:
//!
//! 1. remove a stale `.<name>.tmp` left by an earlier power cut;
//! 2. write `.<name>.tmp` and `fsync` it;
//! 3. rename it over `<name>`;
//! 4. `fsync` the directory, so the new directory entry is on the card;
//! 5. read `<name>` back and compare it with what was meant.
//!
//! What the firmware sees if the power is cut at each step: before 3, the old `<name>` (the tmp
//! file is a name it never reads); after 3, the new one. For `autoboot.txt` a torn or missing
//! file makes the firmware boot partition 1, the recovery, which is the safe side.
//!
//! The read back in step 5 goes through the page cache (dropping it needs a syscall outside
//! this module); it proves that the rename landed on the right name with the right bytes.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The step of [`careful_replace`] that failed, as it appears in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Removing a stale temporary file left by an earlier, interrupted replace.
    RemoveStale,
    /// Creating and writing the temporary file.
    Write,
    /// `fsync` of the temporary file.
    Fsync,
    /// Renaming the temporary file over the target.
    Rename,
    /// Opening the directory and `fsync`ing it.
    FsyncDir,
    /// Reading the target back.
    ReadBack,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::RemoveStale => "remove stale",
            Step::Write => "write",
            Step::Fsync => "fsync",
            Step::Rename => "rename",
            Step::FsyncDir => "fsync dir",
            Step::ReadBack => "read back",
        })
    }
}

/// Why a careful replace failed. Every variant names the path it was working on.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// The file name is not a plain name inside the directory.
    #[error(
        "careful replace: {name:?} in {dir} is not a plain file name (no '/', not '.' or '..', not empty)"
    )]
    BadName {
        /// The directory.
        dir: PathBuf,
        /// The rejected name.
        name: String,
    },
    /// An I/O call failed.
    #[error("careful replace: {step} {path}: {source}")]
    Io {
        /// The step that failed.
        step: Step,
        /// The file or directory of that step.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The file read back differs from what was written.
    #[error(
        "careful replace: read back {path}: the file holds {found} bytes that differ from the \
         {expected} bytes written; the card or its filesystem is failing (run fsck.fat)"
    )]
    ReadBack {
        /// The target file.
        path: PathBuf,
        /// Bytes meant to be there.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
}

/// The temporary name used for `name` while it is replaced: `.<name>.tmp`.
#[must_use]
pub fn tmp_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// Replaces `dir/name` with `data` the careful way (see the module docs): write a temp file,
/// fsync, rename, fsync the directory, read back and compare.
///
/// # Errors
/// [`ReplaceError`] naming the path and the step that failed. On a failure before the rename
/// the old file is untouched and the temp file is removed (best effort).
pub fn careful_replace(dir: &Path, name: &str, data: &[u8]) -> Result<(), ReplaceError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(ReplaceError::BadName {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
        });
    }
    let target = dir.join(name);
    let tmp = dir.join(tmp_name(name));
    let io_err = |step: Step, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| ReplaceError::Io { step, path, source }
    };

    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(Step::RemoveStale, &tmp)(e)),
    }

    if let Err(e) = write_synced(&tmp, data) {
        // Best effort: the old target is intact, and a leftover tmp is removed next time.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }

    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(Step::Rename, &target)(e));
    }

    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(Step::FsyncDir, dir))?;
    // Linux's vfat does not tie directory entries to the directory inode, so fsync on the
    // directory does not write the renamed entry (found in QEMU: a power cut seconds after the
    // replace lost it). sync(2) writes every dirty buffer, the entry included.
    crate::io::sync_all_filesystems();

    let mut found = Vec::with_capacity(data.len());
    File::open(&target)
        .and_then(|mut f| f.read_to_end(&mut found))
        .map_err(io_err(Step::ReadBack, &target))?;
    check_read_back(&target, data, &found)
}

/// Writes `data` to `tmp` (create or truncate) and fsyncs it.
fn write_synced(tmp: &Path, data: &[u8]) -> Result<(), ReplaceError> {
    let err = |step: Step| {
        move |source: io::Error| ReplaceError::Io {
            step,
            path: tmp.to_path_buf(),
            source,
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(err(Step::Write))?;
    file.write_all(data).map_err(err(Step::Write))?;
    file.sync_all().map_err(err(Step::Fsync))
}

/// Compares what was read back with what was written.
///
/// # Errors
/// [`ReplaceError::ReadBack`] when they differ.
pub fn check_read_back(path: &Path, expected: &[u8], found: &[u8]) -> Result<(), ReplaceError> {
    if expected == found {
        Ok(())
    } else {
        Err(ReplaceError::ReadBack {
            path: path.to_path_buf(),
            expected: expected.len(),
            found: found.len(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        careful_replace(dir.path(), "autoboot.txt", b"[all]\nboot_partition=1\n").unwrap();
        assert_eq!(
            fs::read(dir.path().join("autoboot.txt")).unwrap(),
            b"[all]\nboot_partition=1\n"
        );
    }

    #[test]
    fn replaces_content_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("autoboot.txt"),
            b"a much longer old content\n",
        )
        .unwrap();
        careful_replace(dir.path(), "autoboot.txt", b"new\n").unwrap();
        assert_eq!(fs::read(dir.path().join("autoboot.txt")).unwrap(), b"new\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("autoboot.txt")]);
    }

    #[test]
    fn cleans_a_stale_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".autoboot.txt.tmp");
        fs::write(
            &stale,
            b"torn garbage from a power cut, longer than the new file",
        )
        .unwrap();
        careful_replace(dir.path(), "autoboot.txt", b"ok\n").unwrap();
        assert!(!stale.exists());
        assert_eq!(fs::read(dir.path().join("autoboot.txt")).unwrap(), b"ok\n");
    }

    #[test]
    fn empty_data_is_written() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"x").unwrap();
        careful_replace(dir.path(), "f", b"").unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"");
    }

    #[test]
    fn missing_dir_error_names_the_path_and_step() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let err = careful_replace(&missing, "autoboot.txt", b"x").unwrap_err();
        assert!(
            matches!(
                err,
                ReplaceError::Io {
                    step: Step::Write,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("no-such-dir/.autoboot.txt.tmp"), "{msg}");
        assert!(msg.contains("write"), "{msg}");
    }

    #[test]
    fn rejects_names_that_are_not_plain() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", ".", "..", "k8r/install.log"] {
            let err = careful_replace(dir.path(), bad, b"x").unwrap_err();
            assert!(
                matches!(err, ReplaceError::BadName { .. }),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn read_back_mismatch_names_the_path() {
        let err = check_read_back(Path::new("/p1/autoboot.txt"), b"abc", b"abd").unwrap_err();
        assert!(matches!(err, ReplaceError::ReadBack { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("/p1/autoboot.txt") && msg.contains("read back"),
            "{msg}"
        );
        check_read_back(Path::new("x"), b"abc", b"abc").unwrap();
    }
}
