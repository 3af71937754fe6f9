//! The firmware model's view of a boot partition mounted or copied into a local directory
//! (feature `dir-files`: the one place this crate touches the filesystem).

use std::path::{Path, PathBuf};

use super::FileLookup;

/// A directory read like a FAT partition: `/`-separated relative paths, matched without regard
/// to case (FAT is case-insensitive).
#[derive(Debug, Clone)]
pub struct DirFiles {
    root: PathBuf,
}

impl DirFiles {
    /// Files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The local path of `path`, resolving each component case-insensitively.
    pub fn resolve(&self, path: &str) -> Option<PathBuf> {
        let mut here = self.root.clone();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if part == "." || part == ".." {
                return None;
            }
            let exact = here.join(part);
            if exact.exists() {
                here = exact;
                continue;
            }
            here = find_ignoring_case(&here, part)?;
        }
        Some(here)
    }
}

fn find_ignoring_case(dir: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(name))
        .map(|e| e.path())
}

impl FileLookup for DirFiles {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let p = self.resolve(path)?;
        if p.is_file() {
            std::fs::read(p).ok()
        } else {
            None
        }
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(path).is_some_and(|p| p.is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_and_no_escape() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("Current")).expect("mkdir");
        std::fs::write(dir.path().join("Current/VMLINUZ"), b"k").expect("write");
        std::fs::write(dir.path().join("outside"), b"o").expect("write");
        let files = DirFiles::new(dir.path().join("Current"));
        assert_eq!(files.read("vmlinuz").as_deref(), Some(&b"k"[..]));
        assert!(files.exists("VmLinuz"));
        assert!(!files.exists("../outside"));
        assert!(!files.exists(""), "a directory is not a file");
    }
}
