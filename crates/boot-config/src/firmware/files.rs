//! Read-only access to the files of one boot partition.

use std::collections::BTreeMap;

/// Files on one partition. Paths are relative to the partition root, `/`-separated, without
/// a leading slash. FAT is case-insensitive; implementations must match case-insensitively.
pub trait FileLookup {
    /// The file's bytes, or `None` if it does not exist.
    fn read(&self, path: &str) -> Option<Vec<u8>>;

    /// Whether the file exists.
    fn exists(&self, path: &str) -> bool {
        self.read(path).is_some()
    }
}

/// An in-memory [`FileLookup`] with case-insensitive paths, for tests and callers that have
/// already read a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemFiles {
    files: BTreeMap<String, Vec<u8>>,
}

fn normalize(path: &str) -> String {
    path.trim_start_matches('/').to_ascii_lowercase()
}

impl MemFiles {
    /// An empty partition.
    pub fn new() -> MemFiles {
        MemFiles::default()
    }

    /// Builder: add (or replace) a file.
    #[must_use]
    pub fn with(mut self, path: &str, bytes: impl AsRef<[u8]>) -> MemFiles {
        self.insert(path, bytes);
        self
    }

    /// Add (or replace) a file.
    pub fn insert(&mut self, path: &str, bytes: impl AsRef<[u8]>) {
        self.files.insert(normalize(path), bytes.as_ref().to_vec());
    }

    /// Remove a file; returns whether it existed.
    pub fn remove(&mut self, path: &str) -> bool {
        self.files.remove(&normalize(path)).is_some()
    }

    /// All paths (lowercased), sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

impl FileLookup for MemFiles {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files.get(&normalize(path)).cloned()
    }

    fn exists(&self, path: &str) -> bool {
        self.files.contains_key(&normalize(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_lookup() {
        let mut files = MemFiles::new()
            .with("Current/VMLINUZ", b"k")
            .with("config.txt", "x=1");
        assert!(files.exists("current/vmlinuz"));
        assert!(files.exists("/CONFIG.TXT"));
        assert_eq!(files.read("CURRENT/vmlinuz"), Some(b"k".to_vec()));
        assert!(!files.exists("vmlinuz"));
        assert!(files.remove("config.TXT"));
        assert!(!files.exists("config.txt"));
        assert_eq!(files.paths().collect::<Vec<_>>(), ["current/vmlinuz"]);
    }
}
