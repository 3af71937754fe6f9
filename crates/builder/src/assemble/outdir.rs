//! The output directory during a build: one build at a time (an exclusive lock), a staging
//! directory that never outlives a failed build, and enough free space checked before the
//! first byte is written.
//!
//! The lock is a `flock` on `<out>/.k8r-build.lock`, held for the whole build and released by
//! the kernel when the process ends, however it ends; the file holds the holder's pid for the
//! message a second build prints. The staging directory `<out>/.k8r-build` is removed when
//! the build fails (dropped without [`Staging::keep`]), and a leftover from a killed build
//! is removed by the next build, under the lock.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// Name of the lock file in the output directory.
pub const LOCK_FILE: &str = ".k8r-build.lock";
/// Name of the staging directory in the output directory.
pub const STAGING_DIR: &str = ".k8r-build";

/// The output directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    /// Another build holds the lock.
    #[error(
        "{} is being written by another k8r-builder{}: wait for it to finish, or pass another \
         --out directory",
        dir.display(),
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Busy {
        /// The output directory.
        dir: PathBuf,
        /// The pid recorded by the build holding the lock, if readable.
        holder: Option<u32>,
    },
    /// The directory cannot be created or written.
    #[error(
        "cannot write to the output directory {}: {source} (fix its permissions, or pass \
         --out DIR)",
        dir.display()
    )]
    NotWritable {
        /// The output directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Too little free space for the build.
    #[error(
        "not enough free space in {}: the build needs about {} MiB there and {} MiB are free; \
         free some space, or pass --out DIR on a larger filesystem",
        dir.display(),
        needed >> 20,
        free >> 20
    )]
    NoSpace {
        /// The output directory.
        dir: PathBuf,
        /// Bytes the build needs.
        needed: u64,
        /// Bytes free for an ordinary user.
        free: u64,
    },
}

/// The held lock on an output directory. Dropping it removes the lock file (and the output
/// directory itself when this build created it and left it empty, e.g. after a refusal).
#[derive(Debug)]
pub struct OutDirLock {
    file: File,
    path: PathBuf,
    dir: PathBuf,
    created_dir: bool,
}

impl OutDirLock {
    /// Creates `dir` if needed and takes its build lock, or fails at once naming the holder.
    pub fn acquire(dir: &Path) -> Result<Self, OutDirError> {
        let not_writable = |source| OutDirError::NotWritable {
            dir: dir.to_path_buf(),
            source,
        };
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir).map_err(not_writable)?;
        let path = dir.join(LOCK_FILE);
        // The lock file is removed when a build ends, so the file locked may have been
        // unlinked by the previous holder between our open and our flock: then the path names
        // another file (or none) and we try again on what it names now.
        let mut file = loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(not_writable)?;
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(OutDirError::Busy {
                        dir: dir.to_path_buf(),
                        holder: holder_pid(file),
                    })
                }
                Err(e) => return Err(not_writable(e.into())),
            }
            let held = rustix::fs::fstat(&file).map_err(|e| not_writable(e.into()))?;
            match rustix::fs::stat(&path) {
                Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => break file,
                _ => continue,
            }
        };
        file.set_len(0).map_err(not_writable)?;
        writeln!(file, "{}", std::process::id()).map_err(not_writable)?;
        Ok(Self {
            file,
            path,
            dir: dir.to_path_buf(),
            created_dir,
        })
    }
}

/// The pid a lock holder wrote into the lock file, if it can be read.
fn holder_pid(mut file: File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl Drop for OutDirLock {
    fn drop(&mut self) {
        // Unlinked while still held, so no other build can lock this file after us.
        let _ = std::fs::remove_file(&self.path);
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
        if self.created_dir {
            // Only succeeds when empty: a refused build leaves no directory behind.
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// The staging directory of one build; removed on drop unless [`Staging::keep`] was called.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    keep: bool,
}

impl Staging {
    /// A fresh, empty staging directory in `dir` (a leftover of an earlier build is removed).
    /// Call with the lock held.
    pub fn create(dir: &Path, _lock: &OutDirLock) -> Result<Self, OutDirError> {
        let path = dir.join(STAGING_DIR);
        if path.exists() {
            log::info!("removing {} left by an earlier build", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::create_dir_all(&path).map_err(|source| OutDirError::NotWritable {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(Self { path, keep: false })
    }

    /// The staging directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place (for a build that succeeded and already emptied it).
    pub fn keep(mut self) {
        self.keep = true;
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                log::warn!("could not remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Bytes an ordinary user may still write on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64, OutDirError> {
    let st = rustix::fs::statvfs(dir).map_err(|e| OutDirError::NotWritable {
        dir: dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Fails with [`OutDirError::NoSpace`] when `dir` has less than `needed` bytes free.
pub fn check_space(dir: &Path, needed: u64) -> Result<(), OutDirError> {
    let free = free_bytes(dir)?;
    if free < needed {
        return Err(OutDirError::NoSpace {
            dir: dir.to_path_buf(),
            needed,
            free,
        });
    }
    log::debug!(
        "free space in {}: {} MiB, the build needs about {} MiB",
        dir.display(),
        free >> 20,
        needed >> 20
    );
    Ok(())
}

/// What a build writes at its peak, from what is known before it starts: the bytes the base
/// image really holds (`base_allocated`, its blocks, not its apparent size: vendor images are
/// sparse), the node downloads and the static programs (`added`).
///
/// At the peak the staging directory holds the customised root and the card (each at most the
/// base's data plus `added`), the compressed root (less than the root) and the boot files
/// several times over (extracted, the working partition's copy, `boot.tar.xz`, and again in
/// the recovery partition and the card). Four times the base's data, twice the additions and
/// 64 MiB for filesystem metadata bound that: measured on the fixture base (19 MB of data,
/// 11 MB added) the peak was 166 MB, the bound 168 MB. On a real Ubuntu image, whose root
/// outweighs its boot files, the bound should sit further above the peak (an estimate: no
/// real image was measured).
pub fn space_needed(base_allocated: u64, added: u64) -> u64 {
    base_allocated
        .saturating_mul(4)
        .saturating_add(added.saturating_mul(2))
        .saturating_add(64 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("k8r-outdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_second_lock_is_refused_at_once_naming_the_holder() {
        let d = dir("lock");
        let first = OutDirLock::acquire(&d).expect("first lock");
        let err = OutDirLock::acquire(&d).expect_err("second lock must fail");
        let text = err.to_string();
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(text.contains("another k8r-builder"), "{text}");
        drop(first);
        assert!(!d.exists(), "the lock's own empty directory goes with it");
        let again = OutDirLock::acquire(&d).expect("lock free again after drop");
        std::fs::write(d.join("bootable_image.img"), b"x").expect("an output");
        drop(again);
        assert!(!d.join(LOCK_FILE).exists(), "no lock file left behind");
        assert!(d.join("bootable_image.img").exists(), "outputs stay");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn staging_is_removed_unless_kept_and_leftovers_go() {
        let d = dir("staging");
        let lock = OutDirLock::acquire(&d).expect("lock");
        let staging = Staging::create(&d, &lock).expect("staging");
        std::fs::write(staging.path().join("root.img"), b"x").expect("write");
        drop(staging);
        assert!(
            !d.join(STAGING_DIR).exists(),
            "a failed build leaves nothing"
        );

        std::fs::create_dir_all(d.join(STAGING_DIR).join("old")).expect("leftover");
        let staging = Staging::create(&d, &lock).expect("staging");
        assert!(!staging.path().join("old").exists(), "leftover removed");
        staging.keep();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn space_check_names_both_sizes() {
        let d = dir("space");
        std::fs::create_dir_all(&d).expect("dir");
        let free = free_bytes(&d).expect("statvfs");
        check_space(&d, 1).expect("one byte fits");
        let err = check_space(&d, free.saturating_add(1 << 40)).expect_err("too much");
        let text = err.to_string();
        assert!(text.contains("not enough free space"), "{text}");
        assert!(
            text.contains(&format!("{} MiB are free", free >> 20)),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn space_needed_counts_the_base_data_not_its_apparent_size() {
        assert_eq!(space_needed(100 << 20, 10 << 20), (400 + 20 + 64) << 20);
        assert_eq!(space_needed(u64::MAX, 1), u64::MAX);
    }
}
