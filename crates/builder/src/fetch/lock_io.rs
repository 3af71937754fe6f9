//! Reading and writing the lock file (the text is [`super::lock`]'s).

use std::fs;
use std::io;
use std::path::Path;

use super::cache::io_err;
use super::lock::Lock;
use super::FetchError;

/// The lock at `path` and its text; an absent file is an empty lock (and `None`).
pub(crate) fn read(path: &Path) -> Result<(Lock, Option<String>), FetchError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let lock = Lock::parse(&text).map_err(|source| FetchError::LockFile {
                path: path.to_owned(),
                source,
            })?;
            Ok((lock, Some(text)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((Lock::default(), None)),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes `text` to `path` atomically (`<path>.tmp` in the same directory, fsync, rename),
/// unless the file already holds exactly it. Returns whether it wrote.
pub(crate) fn write_if_changed(
    path: &Path,
    old: Option<&str>,
    text: &str,
) -> Result<bool, FetchError> {
    if old == Some(text) {
        return Ok(false);
    }
    crate::atomic::write_atomic(path, text.as_bytes()).map_err(io_err(path))?;
    Ok(true)
}
