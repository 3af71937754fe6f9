//! Test stand-in plumbing: the few file operations the stand-ins need (write with a mode via
//! a temporary file and rename, copy and empty directories). It does not fsync: stand-in state
//! only has to survive a clean reboot, as QEMU tests do.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes `data` to `path` with `mode`, creating parents; replaces atomically.
pub fn write(path: &Path, data: impl AsRef<[u8]>, mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).ctx("creating", parent)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.k8r-standin-tmp"));
    std::fs::write(&tmp, data).ctx("writing", &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).ctx("chmod", &tmp)?;
    std::fs::rename(&tmp, path).ctx("renaming into", path)?;
    Ok(())
}

/// Reads a file to a string.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).ctx("reading", path)
}

/// True if `dir` is missing or has no entries.
pub fn dir_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut it) => it.next().is_none(),
        Err(_) => true,
    }
}

/// Copies the tree `src` to `dst` (files, directories, symlinks).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).ctx("creating", dst)?;
    for entry in std::fs::read_dir(src).ctx("listing", src)? {
        let entry = entry.ctx("listing", src)?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().ctx("stat", &from)?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&from).ctx("reading link", &from)?;
            std::os::unix::fs::symlink(&target, &to).ctx("linking", &to)?;
        } else {
            std::fs::copy(&from, &to).ctx("copying to", &to)?;
        }
    }
    Ok(())
}

/// Removes everything inside `dir` (not `dir` itself); a missing `dir` is fine.
pub fn empty_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.ctx("listing", dir)?;
        let p = entry.path();
        if entry.file_type().ctx("stat", &p)?.is_dir() {
            std::fs::remove_dir_all(&p).ctx("removing", &p)?;
        } else {
            std::fs::remove_file(&p).ctx("removing", &p)?;
        }
    }
    Ok(())
}

/// Removes a file if it exists.
pub fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).ctx("removing", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_copies_and_empties() {
        let t = tempfile::tempdir().expect("tmp");
        let f = t.path().join("a/b/c.conf");
        write(&f, "x", 0o600).expect("write");
        let mode = std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::os::unix::fs::symlink("c.conf", t.path().join("a/b/link")).expect("link");
        copy_tree(&t.path().join("a"), &t.path().join("copy")).expect("copy");
        assert_eq!(read(&t.path().join("copy/b/link")).expect("via link"), "x");
        assert!(!dir_is_empty(&t.path().join("a")));
        empty_dir(&t.path().join("a")).expect("empty");
        assert!(dir_is_empty(&t.path().join("a")));
        assert!(t.path().join("a").is_dir());
        assert!(dir_is_empty(&t.path().join("missing")));
    }
}
