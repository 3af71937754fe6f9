//! Reading and writing the lock file (the text is [`super::lock`]'s).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })()
    .map_err(io_err(&tmp))
    .and_then(|()| fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    Ok(true)
}
