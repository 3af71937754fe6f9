//! The few system calls the card's data path needs beyond `std`, through `rustix`'s safe
//! wrappers: `O_DIRECT` opens for writing a partition and reading it back past the page
//! cache, dropping a file's cached pages, and `sync(2)`.

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::{Advice, Mode, OFlags};

/// Opens `path` read-only with `O_DIRECT`: reads bypass the page cache and come from the
/// device. Offsets, lengths and buffer addresses must then be aligned to the device's logical
/// block size. File systems without direct I/O (tmpfs) refuse it with `EINVAL`.
///
/// # Errors
/// What `open(2)` says.
pub fn open_direct(path: &Path) -> io::Result<File> {
    open_with(path, OFlags::RDONLY | OFlags::DIRECT)
}

/// Opens `path` write-only with `O_DIRECT` (no create, no truncate): writes go from the
/// caller's buffer to the device without a copy into the page cache. The same alignment rules
/// as [`open_direct`]; tmpfs refuses it with `EINVAL`.
///
/// # Errors
/// What `open(2)` says.
pub fn open_direct_write(path: &Path) -> io::Result<File> {
    open_with(path, OFlags::WRONLY | OFlags::DIRECT)
}

/// `open(2)` of an existing `path` with `flags` and `O_CLOEXEC`.
fn open_with(path: &Path, flags: OFlags) -> io::Result<File> {
    let fd = rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty())?;
    Ok(File::from(fd))
}

/// Drops the clean cached pages of `file` (`posix_fadvise(POSIX_FADV_DONTNEED)` over the
/// whole file), so a large write does not keep the page cache full. Sync the data first:
/// dirty pages are not dropped.
///
/// # Errors
/// What `posix_fadvise(2)` says.
pub fn drop_page_cache(file: &File) -> io::Result<()> {
    rustix::fs::fadvise(file, 0, None, Advice::DontNeed)?;
    Ok(())
}

/// `sync(2)`: writes every dirty buffer of every filesystem. Linux's vfat needs it after a
/// rename (see [`crate::replace`]).
pub fn sync_all_filesystems() {
    rustix::fs::sync();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_open_of_a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = open_direct(&dir.path().join("nope")).expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn direct_write_open_of_a_missing_file_is_not_found_and_creates_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope");
        let err = open_direct_write(&path).expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!path.exists());
    }

    #[test]
    fn page_cache_drop_on_a_file_succeeds() {
        let file = tempfile::tempfile().expect("tempfile");
        drop_page_cache(&file).expect("fadvise");
    }
}
