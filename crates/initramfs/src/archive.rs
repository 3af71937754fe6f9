//! Archive entries and the path rules they must follow.
//!
//! An [`Archive`] is an in-memory description of an initramfs: a sorted map from relative
//! path to entry. Nothing is written until [`Archive::write_newc`] (see `newc.rs`), so the
//! same entries always give the same bytes, whatever order they were added in.

use std::collections::BTreeMap;
use std::fmt;

/// Largest permission value accepted: setuid, setgid, sticky and rwx for all.
const MAX_PERMISSIONS: u32 = 0o7777;
/// Mode of directories created because a child was added.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// What went wrong adding an entry. Every variant names the offending path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    /// The path was the empty string.
    #[error("empty path: archive paths are relative, like \"bin/busybox\"")]
    EmptyPath,
    /// The path starts with '/'.
    #[error(
        "path {path:?} is absolute: write it relative to the archive root, without the leading '/'"
    )]
    AbsolutePath {
        /// The rejected path.
        path: String,
    },
    /// The path has a `..` component.
    #[error("path {path:?} has a '..' component: archive paths may not leave the root")]
    ParentComponent {
        /// The rejected path.
        path: String,
    },
    /// The path has a `.` component.
    #[error("path {path:?} has a '.' component: remove it")]
    CurrentComponent {
        /// The rejected path.
        path: String,
    },
    /// The path has an empty component (`a//b`, or a trailing '/').
    #[error("path {path:?} has an empty component ('//' or a trailing '/')")]
    EmptyComponent {
        /// The rejected path.
        path: String,
    },
    /// The path contains a NUL byte (cpio names are NUL-terminated).
    #[error("path {path:?} contains a NUL byte")]
    NulInPath {
        /// The rejected path.
        path: String,
    },
    /// A symlink target is empty or contains a NUL byte.
    #[error("symlink {path:?} has an invalid target {target:?}: it must be non-empty and contain no NUL byte")]
    InvalidSymlinkTarget {
        /// The symlink's path.
        path: String,
        /// The rejected target.
        target: String,
    },
    /// The mode has bits outside the permission bits (0o7777).
    #[error("mode {mode:#o} for {path:?} has bits outside 0o7777: pass permission bits only, the file type is added by the builder")]
    InvalidMode {
        /// The entry's path.
        path: String,
        /// The rejected mode.
        mode: u32,
    },
    /// File data does not fit the 32-bit newc size field.
    #[error("file {path:?} is {size} bytes: newc archives hold files up to 4 GiB - 1")]
    FileTooLarge {
        /// The file's path.
        path: String,
        /// Its size in bytes.
        size: u64,
    },
    /// The path is already in the archive as something that cannot be merged with the new entry.
    #[error("duplicate path {path:?}: already a {existing}, cannot add a {new}")]
    Duplicate {
        /// The duplicated path.
        path: String,
        /// What is already there.
        existing: EntryKind,
        /// What was being added.
        new: EntryKind,
    },
    /// The same directory was added twice with different modes.
    #[error(
        "directory {path:?} added with mode {existing:#o} and again with mode {new:#o}: pick one"
    )]
    DirectoryModeConflict {
        /// The directory's path.
        path: String,
        /// The mode given first.
        existing: u32,
        /// The mode given now.
        new: u32,
    },
    /// A parent of the path is already in the archive and is not a directory.
    #[error("cannot add {path:?}: its parent {parent:?} is a {kind}, not a directory")]
    ParentNotDirectory {
        /// The path being added.
        path: String,
        /// The ancestor that is in the way.
        parent: String,
        /// What that ancestor is.
        kind: EntryKind,
    },
}

/// The type of an archive entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

impl EntryKind {
    /// The `S_IFMT` type bits for this kind (Linux `include/uapi/linux/stat.h`).
    pub(crate) fn type_bits(self) -> u32 {
        match self {
            EntryKind::Directory => 0o040_000,
            EntryKind::File => 0o100_000,
            EntryKind::Symlink => 0o120_000,
            EntryKind::CharDevice => 0o020_000,
            EntryKind::BlockDevice => 0o060_000,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::Directory => "directory",
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
            EntryKind::CharDevice => "character device",
            EntryKind::BlockDevice => "block device",
        })
    }
}

/// The content of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// `explicit` is false for directories created only as a parent of something else.
    Directory {
        explicit: bool,
    },
    File(Vec<u8>),
    Symlink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
}

impl Node {
    pub(crate) fn kind(&self) -> EntryKind {
        match self {
            Node::Directory { .. } => EntryKind::Directory,
            Node::File(_) => EntryKind::File,
            Node::Symlink(_) => EntryKind::Symlink,
            Node::CharDevice { .. } => EntryKind::CharDevice,
            Node::BlockDevice { .. } => EntryKind::BlockDevice,
        }
    }
}

/// One entry: permission bits plus content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) permissions: u32,
    pub(crate) node: Node,
}

/// An initramfs under construction: entries keyed by relative path.
///
/// Entries are written sorted by path bytes, so parents precede children and the output does
/// not depend on insertion order. All entries are owned by uid/gid 0 and carry the archive's
/// mtime (0 unless set with [`Archive::with_mtime`]).
///
/// Path rules: relative, '/'-separated, no empty, `.` or `..` components, no NUL. Missing
/// parent directories are created with mode 0755. Adding a directory that exists is fine
/// (an explicit mode replaces the implicit 0755; two different explicit modes are an error);
/// adding any other path twice is an error, so no entry silently replaces another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    pub(crate) mtime: u32,
    pub(crate) entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// An empty archive with mtime 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the mtime written for every entry (seconds since the epoch; pass
    /// `SOURCE_DATE_EPOCH` for reproducible builds).
    #[must_use]
    pub fn with_mtime(mut self, secs: u32) -> Self {
        self.mtime = secs;
        self
    }

    /// The mtime written for every entry.
    #[must_use]
    pub fn mtime(&self) -> u32 {
        self.mtime
    }

    /// Add a directory with the given permission bits.
    ///
    /// # Errors
    /// The path breaks a path rule, the mode has non-permission bits, or the path is already
    /// a non-directory or a directory with a different explicit mode.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, ArchiveError> {
        self.insert(path, mode, Node::Directory { explicit: true })
    }

    /// Add a regular file with the given permission bits and content.
    ///
    /// # Errors
    /// The path breaks a path rule or is already present, the mode has non-permission bits,
    /// or the data is 4 GiB or larger.
    pub fn add_file(
        &mut self,
        path: &str,
        mode: u32,
        data: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, ArchiveError> {
        let data = data.into();
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if u32::try_from(size).is_err() {
            return Err(ArchiveError::FileTooLarge {
                path: path.to_owned(),
                size,
            });
        }
        self.insert(path, mode, Node::File(data))
    }

    /// Add a symbolic link (mode 0777) pointing at `target`, which is stored verbatim.
    ///
    /// # Errors
    /// The path breaks a path rule or is already present, or the target is empty or has a NUL.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, ArchiveError> {
        if target.is_empty() || target.contains('\0') {
            return Err(ArchiveError::InvalidSymlinkTarget {
                path: path.to_owned(),
                target: target.to_owned(),
            });
        }
        self.insert(path, 0o777, Node::Symlink(target.to_owned()))
    }

    /// Add a character device node. Needs no privileges: it is only a header.
    ///
    /// # Errors
    /// The path breaks a path rule or is already present, or the mode has non-permission bits.
    pub fn add_char_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, ArchiveError> {
        self.insert(path, mode, Node::CharDevice { major, minor })
    }

    /// Add a block device node. Needs no privileges: it is only a header.
    ///
    /// # Errors
    /// The path breaks a path rule or is already present, or the mode has non-permission bits.
    pub fn add_block_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, ArchiveError> {
        self.insert(path, mode, Node::BlockDevice { major, minor })
    }

    /// Number of entries, including implicitly created directories.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the archive has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry paths in the order they are written.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The kind of the entry at `path`, if there is one.
    #[must_use]
    pub fn kind_of(&self, path: &str) -> Option<EntryKind> {
        self.entries.get(path).map(|e| e.node.kind())
    }

    /// Check everything first, then change the map, so a failed add leaves it untouched.
    fn insert(&mut self, path: &str, mode: u32, node: Node) -> Result<&mut Self, ArchiveError> {
        validate_path(path)?;
        if mode > MAX_PERMISSIONS {
            return Err(ArchiveError::InvalidMode {
                path: path.to_owned(),
                mode,
            });
        }
        let parents = parents(path);
        for parent in &parents {
            if let Some(existing) = self.entries.get(*parent) {
                let kind = existing.node.kind();
                if kind != EntryKind::Directory {
                    return Err(ArchiveError::ParentNotDirectory {
                        path: path.to_owned(),
                        parent: (*parent).to_owned(),
                        kind,
                    });
                }
            }
        }
        let replace = match self.entries.get(path) {
            None => true,
            Some(existing) => match (&existing.node, &node) {
                (Node::Directory { explicit: false }, Node::Directory { .. }) => true,
                (Node::Directory { explicit: true }, Node::Directory { .. }) => {
                    if existing.permissions != mode {
                        return Err(ArchiveError::DirectoryModeConflict {
                            path: path.to_owned(),
                            existing: existing.permissions,
                            new: mode,
                        });
                    }
                    false
                }
                (old, new) => {
                    return Err(ArchiveError::Duplicate {
                        path: path.to_owned(),
                        existing: old.kind(),
                        new: new.kind(),
                    })
                }
            },
        };
        for parent in parents {
            self.entries
                .entry(parent.to_owned())
                .or_insert_with(|| Entry {
                    permissions: IMPLICIT_DIR_MODE,
                    node: Node::Directory { explicit: false },
                });
        }
        if replace {
            self.entries.insert(
                path.to_owned(),
                Entry {
                    permissions: mode,
                    node,
                },
            );
        }
        Ok(self)
    }
}

/// Check the path rules documented on [`Archive`].
///
/// # Errors
/// The first rule the path breaks.
pub fn validate_path(path: &str) -> Result<(), ArchiveError> {
    let owned = || path.to_owned();
    if path.is_empty() {
        return Err(ArchiveError::EmptyPath);
    }
    if path.contains('\0') {
        return Err(ArchiveError::NulInPath { path: owned() });
    }
    if path.starts_with('/') {
        return Err(ArchiveError::AbsolutePath { path: owned() });
    }
    for component in path.split('/') {
        match component {
            "" => return Err(ArchiveError::EmptyComponent { path: owned() }),
            "." => return Err(ArchiveError::CurrentComponent { path: owned() }),
            ".." => return Err(ArchiveError::ParentComponent { path: owned() }),
            _ => {}
        }
    }
    Ok(())
}

/// The proper ancestors of a valid path, outermost first: "a/b/c" → ["a", "a/b"].
fn parents(path: &str) -> Vec<&str> {
    path.match_indices('/').map(|(i, _)| &path[..i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(result: Result<&mut Archive, ArchiveError>) -> ArchiveError {
        result.expect_err("the add should have been rejected")
    }

    #[test]
    fn rejects_empty_path() {
        let mut a = Archive::new();
        assert_eq!(err(a.add_file("", 0o644, "x")), ArchiveError::EmptyPath);
    }

    #[test]
    fn rejects_absolute_path() {
        let mut a = Archive::new();
        assert_eq!(
            err(a.add_file("/bin/sh", 0o755, "x")),
            ArchiveError::AbsolutePath {
                path: "/bin/sh".into()
            }
        );
    }

    #[test]
    fn rejects_dotdot_anywhere() {
        for path in ["..", "../etc/passwd", "a/../b", "a/.."] {
            let mut a = Archive::new();
            assert_eq!(
                err(a.add_dir(path, 0o755)),
                ArchiveError::ParentComponent { path: path.into() },
                "{path}"
            );
            assert!(a.is_empty(), "a rejected add must not create parents");
        }
    }

    #[test]
    fn rejects_dot_components() {
        for path in [".", "./a", "a/./b", "a/."] {
            let mut a = Archive::new();
            assert_eq!(
                err(a.add_symlink(path, "x")),
                ArchiveError::CurrentComponent { path: path.into() },
                "{path}"
            );
        }
    }

    #[test]
    fn rejects_empty_components() {
        for path in ["a//b", "a/", "a/b/"] {
            let mut a = Archive::new();
            assert_eq!(
                err(a.add_file(path, 0o644, "")),
                ArchiveError::EmptyComponent { path: path.into() },
                "{path}"
            );
        }
    }

    #[test]
    fn rejects_nul() {
        let mut a = Archive::new();
        assert_eq!(
            err(a.add_char_device("dev/con\0sole", 0o600, 5, 1)),
            ArchiveError::NulInPath {
                path: "dev/con\0sole".into()
            }
        );
    }

    #[test]
    fn rejects_bad_symlink_target() {
        let mut a = Archive::new();
        assert!(matches!(
            err(a.add_symlink("sbin/init", "")),
            ArchiveError::InvalidSymlinkTarget { .. }
        ));
        assert!(matches!(
            err(a.add_symlink("sbin/init", "bu\0sybox")),
            ArchiveError::InvalidSymlinkTarget { .. }
        ));
    }

    #[test]
    fn rejects_type_bits_in_mode() {
        let mut a = Archive::new();
        assert_eq!(
            err(a.add_file("init", 0o100_755, "x")),
            ArchiveError::InvalidMode {
                path: "init".into(),
                mode: 0o100_755
            }
        );
    }

    #[test]
    fn rejects_duplicates_of_a_different_kind() {
        let mut a = Archive::new();
        a.add_file("init", 0o755, "x").expect("first add");
        assert_eq!(
            err(a.add_dir("init", 0o755)),
            ArchiveError::Duplicate {
                path: "init".into(),
                existing: EntryKind::File,
                new: EntryKind::Directory
            }
        );
        // An implicit parent is a directory too.
        a.add_file("bin/busybox", 0o755, "x").expect("file");
        assert_eq!(
            err(a.add_symlink("bin", "usr/bin")),
            ArchiveError::Duplicate {
                path: "bin".into(),
                existing: EntryKind::Directory,
                new: EntryKind::Symlink
            }
        );
    }

    #[test]
    fn rejects_same_kind_duplicate_files() {
        let mut a = Archive::new();
        a.add_file("init", 0o755, "one").expect("first add");
        assert!(matches!(
            err(a.add_file("init", 0o755, "two")),
            ArchiveError::Duplicate { .. }
        ));
    }

    #[test]
    fn rejects_child_of_non_directory() {
        let mut a = Archive::new();
        a.add_symlink("lib", "usr/lib").expect("symlink");
        assert_eq!(
            err(a.add_file("lib/modules/x.ko", 0o644, "")),
            ArchiveError::ParentNotDirectory {
                path: "lib/modules/x.ko".into(),
                parent: "lib".into(),
                kind: EntryKind::Symlink
            }
        );
        assert_eq!(a.len(), 1, "nothing was added by the failed call");
    }

    #[test]
    fn same_directory_twice_is_fine() {
        let mut a = Archive::new();
        a.add_dir("proc", 0o555).expect("first");
        a.add_dir("proc", 0o555).expect("second");
        assert_eq!(a.len(), 1);
        assert!(matches!(
            err(a.add_dir("proc", 0o755)),
            ArchiveError::DirectoryModeConflict { .. }
        ));
    }

    #[test]
    fn explicit_mode_replaces_implicit_parent_mode_in_either_order() {
        let mut first = Archive::new();
        first.add_file("root/.profile", 0o600, "").expect("file");
        first.add_dir("root", 0o700).expect("dir");
        let mut second = Archive::new();
        second.add_dir("root", 0o700).expect("dir");
        second.add_file("root/.profile", 0o600, "").expect("file");
        assert_eq!(first.entries["root"].permissions, 0o700);
        assert_eq!(first, second);
    }

    #[test]
    fn creates_parents_and_sorts_by_bytes() {
        let mut a = Archive::new();
        a.add_file("usr/lib/modules/6.1/kernel/ext4.ko", 0o644, "ko")
            .expect("ko")
            .add_char_device("dev/console", 0o600, 5, 1)
            .expect("console")
            .add_file("init", 0o755, "#!/bin/sh\n")
            .expect("init")
            .add_dir("usr-local", 0o755)
            .expect("dir");
        let paths: Vec<&str> = a.paths().collect();
        assert_eq!(
            paths,
            [
                "dev",
                "dev/console",
                "init",
                "usr",
                "usr-local",
                "usr/lib",
                "usr/lib/modules",
                "usr/lib/modules/6.1",
                "usr/lib/modules/6.1/kernel",
                "usr/lib/modules/6.1/kernel/ext4.ko",
            ]
        );
        assert_eq!(a.entries["usr/lib"].permissions, 0o755);
        assert_eq!(a.kind_of("usr/lib"), Some(EntryKind::Directory));
        assert_eq!(a.kind_of("dev/console"), Some(EntryKind::CharDevice));
    }
}
