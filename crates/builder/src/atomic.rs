//! Replacing a small file whole: `<path>.tmp` beside it, written and fsynced, renamed over
//! `path`. A crash leaves the old file or the new one (and at worst a stray `.tmp`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically; the temporary file is removed on failure.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("SHA256SUMS");
        std::fs::write(&path, "old").expect("old");
        write_atomic(&path, b"new").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        assert!(!dir.path().join("SHA256SUMS.tmp").exists());
        let missing = dir.path().join("no-such-dir/file");
        assert!(write_atomic(&missing, b"x").is_err());
    }
}
