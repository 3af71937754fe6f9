//! Unpacks `boot.tar.xz` onto the freshly formatted and mounted boot partition.
//!
//! The stream is `input → hash (compressed) → xz decode → hash + count (tar bytes) → tar`.
//! Entries are written as they come: a digest is only known at the end of the stream. So the
//! archive is checked twice:
//!
//! * **while reading**, each entry against strict rules (`check_path`, regular files and
//!   directories only, parents must be real directories: no symlink in `dest` is ever followed),
//!   so nothing is ever written outside `dest`, whatever the archive holds;
//! * **at the end**, after reading the stream to its last byte (past the tar end-of-archive
//!   marker), the SHA-256 of the compressed bytes, the size and the SHA-256 of the tar bytes
//!   against the manifest's.
//!
//! On any error, `dest` may hold part of the archive. The caller has just formatted the
//! partition, so it must treat the partition as garbage: reformat it (or keep the card pointing
//! at recovery) and never flip `autoboot.txt` to it.
//!
//! File modes, owners and times in the archive are ignored (FAT has none of the first two; the
//! vfat driver stamps the time). The caller syncs the file system afterwards.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use k8r_card::digest::HashingReader;

/// The artefact's name, as every error message calls it.
pub const ARTEFACT: &str = "boot.tar.xz";
/// What [`UnpackError::DigestMismatch`] names for the tar bytes.
pub const ARTEFACT_UNCOMPRESSED: &str = "boot.tar.xz (uncompressed)";

/// What the manifest says the artefact is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// SHA-256 of the `.tar.xz` bytes, lowercase hex.
    pub compressed_sha256: String,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
    /// SHA-256 of the uncompressed tar bytes, lowercase hex.
    pub sha256: String,
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created (explicit entries and missing parents; not pre-existing ones).
    pub dirs: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Which path rule an entry name breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRule {
    /// The name is empty.
    #[error("empty paths are not allowed")]
    Empty,
    /// The name starts with `/`.
    #[error("absolute paths are not allowed")]
    Absolute,
    /// A `..` component.
    #[error("parent directory components are not allowed")]
    ParentDir,
    /// A `.` component anywhere but a leading `./`.
    #[error("\".\" components are only allowed as a leading \"./\"")]
    CurrentDir,
    /// `a//b` (an empty component).
    #[error("empty path components (\"//\") are not allowed")]
    EmptyComponent,
    /// A NUL byte.
    #[error("NUL bytes are not allowed")]
    Nul,
    /// A backslash (a Windows separator, or an attempt to smuggle one in).
    #[error("backslashes are not allowed")]
    Backslash,
    /// The name is not UTF-8.
    #[error("names must be UTF-8")]
    NotUtf8,
}

/// Why unpacking failed. Every message starts with `boot.tar.xz`.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Reading or decoding the stream failed (I/O, corrupt xz, corrupt tar).
    #[error("{ARTEFACT}: reading the archive: {0}")]
    Read(#[source] io::Error),
    /// The uncompressed stream went past the expected size (stopped there).
    #[error("{ARTEFACT}: the uncompressed tar is larger than the expected {expected} bytes")]
    TooLarge {
        /// The manifest's size.
        expected: u64,
    },
    /// An entry name breaks a path rule.
    #[error("{ARTEFACT}: entry {name:?}: {rule}")]
    Path {
        /// The entry name (lossy UTF-8).
        name: String,
        /// The rule broken.
        rule: PathRule,
    },
    /// An entry is neither a regular file nor a directory.
    #[error(
        "{ARTEFACT}: entry {name:?}: {kind} entries are not allowed (only regular files and \
         directories)"
    )]
    EntryType {
        /// The entry name (lossy UTF-8).
        name: String,
        /// What it is ("symbolic link", "hard link", ...).
        kind: String,
    },
    /// Something in the way of the entry in `dest` is not a directory we can use.
    #[error(
        "{ARTEFACT}: entry {name:?}: {} exists and is not a real directory (a symlink or a file); \
         refusing to write through it",
        path.display()
    )]
    NotADirectory {
        /// The entry name.
        name: String,
        /// The offending path in `dest`.
        path: PathBuf,
    },
    /// The entry's file already exists in `dest` (duplicate entry, or a leftover).
    #[error("{ARTEFACT}: entry {name:?}: {} already exists", path.display())]
    Exists {
        /// The entry name.
        name: String,
        /// The path in `dest`.
        path: PathBuf,
    },
    /// Writing into `dest` failed.
    #[error("{ARTEFACT}: entry {name:?}: writing {}: {source}", path.display())]
    Write {
        /// The entry name.
        name: String,
        /// The path in `dest`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `dest` is not a directory.
    #[error("{ARTEFACT}: destination {} is not a directory", path.display())]
    Dest {
        /// The destination given.
        path: PathBuf,
    },
    /// A digest does not match the manifest.
    #[error("{what}: SHA-256 mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// `boot.tar.xz` or `boot.tar.xz (uncompressed)`.
        what: &'static str,
        /// The manifest's digest.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// The uncompressed size does not match the manifest.
    #[error("{ARTEFACT}: uncompressed size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The manifest's size.
        expected: u64,
        /// The bytes read.
        actual: u64,
    },
}

/// Checks a tar entry name. Pure.
///
/// Allowed: relative names of normal components separated by single `/`, optionally starting
/// with one `./` and ending with one `/` (directories). `.` and `./` alone name `dest` itself.
///
/// # Errors
///
/// The first [`PathRule`] the name breaks.
#[cfg(test)]
pub fn check_path(name: &str) -> Result<(), PathRule> {
    components(name).map(|_| ())
}

/// The normal components of an allowed name (empty for `.` / `./`).
pub(crate) fn components(name: &str) -> Result<Vec<&str>, PathRule> {
    if name.is_empty() {
        return Err(PathRule::Empty);
    }
    if name.contains('\0') {
        return Err(PathRule::Nul);
    }
    if name.contains('\\') {
        return Err(PathRule::Backslash);
    }
    if name.starts_with('/') {
        return Err(PathRule::Absolute);
    }
    if name == "." || name == "./" {
        return Ok(Vec::new());
    }
    let rest = name.strip_prefix("./").unwrap_or(name);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let parts: Vec<&str> = rest.split('/').collect();
    // Report `..` before other rules: it is the one that matters.
    if parts.contains(&"..") {
        return Err(PathRule::ParentDir);
    }
    if parts.contains(&"") {
        return Err(PathRule::EmptyComponent);
    }
    if parts.contains(&".") {
        return Err(PathRule::CurrentDir);
    }
    Ok(parts)
}

fn entry_kind(t: tar::EntryType) -> String {
    match t {
        tar::EntryType::Symlink => "symbolic link".to_owned(),
        tar::EntryType::Link => "hard link".to_owned(),
        tar::EntryType::Char => "character device".to_owned(),
        tar::EntryType::Block => "block device".to_owned(),
        tar::EntryType::Fifo => "fifo".to_owned(),
        tar::EntryType::Continuous => "contiguous file".to_owned(),
        tar::EntryType::GNUSparse => "sparse file".to_owned(),
        other => format!("type {:?} ({:?})", other, char::from(other.as_byte())),
    }
}

/// What is at `path` in `dest`, without following symlinks.
enum Existing {
    Nothing,
    RealDir,
    Other,
}

fn existing(path: &Path) -> io::Result<Existing> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(Existing::RealDir),
        Ok(_) => Ok(Existing::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::Nothing),
        Err(e) => Err(e),
    }
}

/// Unpacks the tar entries into `dest`; the caller handles digests.
struct Unpacker<'a> {
    dest: &'a Path,
    report: UnpackReport,
}

impl Unpacker<'_> {
    /// Makes sure `path` is a real directory, creating it if missing. `Ok(true)` if created.
    fn ensure_dir(&mut self, name: &str, path: &Path) -> Result<bool, UnpackError> {
        let write_err = |source| UnpackError::Write {
            name: name.to_owned(),
            path: path.to_owned(),
            source,
        };
        match existing(path).map_err(write_err)? {
            Existing::RealDir => Ok(false),
            Existing::Other => Err(UnpackError::NotADirectory {
                name: name.to_owned(),
                path: path.to_owned(),
            }),
            Existing::Nothing => {
                fs::create_dir(path).map_err(write_err)?;
                self.report.dirs += 1;
                Ok(true)
            }
        }
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let lossy = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            // PAX global metadata (e.g. from `git archive`): no file, nothing to do.
            return Ok(());
        }
        let path_err = |rule| UnpackError::Path {
            name: lossy.clone(),
            rule,
        };
        let name = std::str::from_utf8(&raw).map_err(|_| path_err(PathRule::NotUtf8))?;
        let parts = components(name).map_err(path_err)?;
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Directory) {
            return Err(UnpackError::EntryType {
                name: lossy,
                kind: entry_kind(kind),
            });
        }
        let Some((last, parents)) = parts.split_last() else {
            // `./`: dest itself.
            return if kind == tar::EntryType::Directory {
                Ok(())
            } else {
                Err(path_err(PathRule::Empty))
            };
        };
        let mut path = self.dest.to_path_buf();
        for part in parents {
            path.push(part);
            self.ensure_dir(name, &path)?;
        }
        path.push(last);
        if kind == tar::EntryType::Directory {
            self.ensure_dir(name, &path)?;
            return Ok(());
        }
        // create_new: O_CREAT|O_EXCL, which never follows a symlink, even a dangling one.
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(UnpackError::Exists { name: lossy, path });
            }
            Err(source) => {
                return Err(UnpackError::Write {
                    name: lossy,
                    path,
                    source,
                })
            }
        };
        // Errors here are the archive's (reading) or the card's (writing); tell them apart.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Read(e)),
            };
            io::Write::write_all(&mut file, &buf[..n]).map_err(|source| UnpackError::Write {
                name: lossy.clone(),
                path: path.clone(),
                source,
            })?;
            self.report.bytes += n as u64;
        }
        self.report.files += 1;
        Ok(())
    }
}

/// Unpacks the `boot.tar.xz` stream `input` into the directory `dest` and verifies it against
/// `expect`.
///
/// Entries are written as they are read; the digests and the size are checked after the whole
/// stream has been read (to its last byte, past the tar end marker). See the module docs for
/// the rules and for what a failure leaves in `dest` (the caller reformats).
///
/// # Errors
///
/// [`UnpackError`]: a broken rule names the entry; a bad stream is
/// [`UnpackError::Read`]; bad contents are [`UnpackError::DigestMismatch`] or
/// [`UnpackError::SizeMismatch`] / [`UnpackError::TooLarge`].
pub fn unpack_tar_xz(
    input: impl Read,
    dest: &Path,
    expect: &Expect,
) -> Result<UnpackReport, UnpackError> {
    if !fs::metadata(dest).is_ok_and(|m| m.is_dir()) {
        return Err(UnpackError::Dest {
            path: dest.to_owned(),
        });
    }
    let read_err = |e: io::Error| {
        let exceeded = e
            .get_ref()
            .is_some_and(|inner| inner.is::<k8r_card::digest::LimitExceeded>());
        if exceeded {
            UnpackError::TooLarge {
                expected: expect.size,
            }
        } else {
            UnpackError::Read(e)
        }
    };

    let compressed = HashingReader::new(input);
    let xz = liblzma::read::XzDecoder::new_multi_decoder(compressed);
    let tar_bytes = HashingReader::with_limit(xz, expect.size);
    let mut archive = tar::Archive::new(tar_bytes);
    let mut unpacker = Unpacker {
        dest,
        report: UnpackReport::default(),
    };
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        unpacker.entry(entry).map_err(|e| match e {
            UnpackError::Read(io) => read_err(io),
            other => other,
        })?;
    }

    // Past the end-of-archive marker: read everything so the digests cover every byte.
    let mut tar_bytes = archive.into_inner();
    io::copy(&mut tar_bytes, &mut io::sink()).map_err(read_err)?;
    let (sha256, size, xz) = tar_bytes.into_parts();
    let mut compressed = xz.into_inner();
    io::copy(&mut compressed, &mut io::sink()).map_err(UnpackError::Read)?;
    let (compressed_sha256, _) = compressed.finish();
    let sha256 = k8r_card::digest::hex(&sha256);

    if !compressed_sha256.eq_ignore_ascii_case(&expect.compressed_sha256) {
        return Err(UnpackError::DigestMismatch {
            what: ARTEFACT,
            expected: expect.compressed_sha256.clone(),
            actual: compressed_sha256,
        });
    }
    if size != expect.size {
        return Err(UnpackError::SizeMismatch {
            expected: expect.size,
            actual: size,
        });
    }
    if !sha256.eq_ignore_ascii_case(&expect.sha256) {
        return Err(UnpackError::DigestMismatch {
            what: ARTEFACT_UNCOMPRESSED,
            expected: expect.sha256.clone(),
            actual: sha256,
        });
    }
    Ok(unpacker.report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sha(bytes: &[u8]) -> String {
        k8r_card::digest::sha256_hex(bytes)
    }

    /// A test archive: entries are (name, type, content or link target).
    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Special(&'a str, tar::EntryType, &'a str),
    }

    /// Writes raw names into the header (the tar crate's safe setters refuse `..`).
    fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        h
    }

    fn tar_bytes(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            match e {
                E::Dir(name) => {
                    let h = raw_header(name, tar::EntryType::Directory, 0);
                    b.append(&h, io::empty()).unwrap();
                }
                E::File(name, data) => {
                    let h = raw_header(name, tar::EntryType::Regular, data.len() as u64);
                    b.append(&h, *data).unwrap();
                }
                E::Special(name, kind, target) => {
                    let mut h = raw_header(name, *kind, 0);
                    if !target.is_empty() {
                        h.set_link_name(target).unwrap();
                    }
                    h.set_cksum();
                    b.append(&h, io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn xz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn expect_for(tar: &[u8], txz: &[u8]) -> Expect {
        Expect {
            compressed_sha256: sha(txz),
            size: tar.len() as u64,
            sha256: sha(tar),
        }
    }

    /// dest and a sibling sentinel directory, both inside one tempdir.
    struct Dirs {
        _root: tempfile::TempDir,
        dest: PathBuf,
        sentinel: PathBuf,
    }

    fn dirs() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        let sentinel = root.path().join("sentinel");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&sentinel).unwrap();
        Dirs {
            _root: root,
            dest,
            sentinel,
        }
    }

    fn unpack(entries: &[E<'_>], d: &Dirs) -> Result<UnpackReport, UnpackError> {
        let tar = tar_bytes(entries);
        let txz = xz(&tar);
        unpack_tar_xz(txz.as_slice(), &d.dest, &expect_for(&tar, &txz))
    }

    fn assert_sentinel_empty(d: &Dirs) {
        assert_eq!(fs::read_dir(&d.sentinel).unwrap().count(), 0);
        let parent = d.sentinel.parent().unwrap();
        let mut names: Vec<_> = fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["dest", "sentinel"]);
    }

    #[test]
    fn unpack_check_path_table() {
        let table: &[(&str, Result<(), PathRule>)] = &[
            ("config.txt", Ok(())),
            ("./config.txt", Ok(())),
            ("overlays/", Ok(())),
            ("./overlays/vc4.dtbo", Ok(())),
            ("current/initrd.img", Ok(())),
            ("./", Ok(())),
            (".", Ok(())),
            ("a..b/..c", Ok(())),
            ("", Err(PathRule::Empty)),
            ("/abs", Err(PathRule::Absolute)),
            ("//abs", Err(PathRule::Absolute)),
            ("../evil", Err(PathRule::ParentDir)),
            ("a/../../b", Err(PathRule::ParentDir)),
            ("a/..", Err(PathRule::ParentDir)),
            ("./../x", Err(PathRule::ParentDir)),
            ("a//b", Err(PathRule::EmptyComponent)),
            ("a/b//", Err(PathRule::EmptyComponent)),
            (".//a", Err(PathRule::EmptyComponent)),
            ("a/./b", Err(PathRule::CurrentDir)),
            ("././a", Err(PathRule::CurrentDir)),
            ("a/.", Err(PathRule::CurrentDir)),
            ("a\0b", Err(PathRule::Nul)),
            ("a\\b", Err(PathRule::Backslash)),
            ("..\\evil", Err(PathRule::Backslash)),
        ];
        for (name, want) in table {
            assert_eq!(check_path(name), *want, "{name:?}");
        }
    }

    #[test]
    fn unpack_good_archive() {
        let d = dirs();
        let big: Vec<u8> = (0..200_000u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let report = unpack(
            &[
                E::Dir("./"),
                E::File("./config.txt", b"[all]\nkernel=vmlinuz\n"),
                E::Dir("./overlays/"),
                E::File("./overlays/vc4-kms-v3d.dtbo", &big),
                E::File("current/cmdline.txt", b"root=LABEL=writable\n"),
            ],
            &d,
        )
        .unwrap();
        assert_eq!(
            report,
            UnpackReport {
                files: 3,
                dirs: 2,
                bytes: 21 + 200_000 + 20,
            }
        );
        assert_eq!(
            fs::read(d.dest.join("config.txt")).unwrap(),
            b"[all]\nkernel=vmlinuz\n"
        );
        assert_eq!(
            fs::read(d.dest.join("overlays/vc4-kms-v3d.dtbo")).unwrap(),
            big
        );
        assert!(d.dest.join("current").is_dir());
        assert_sentinel_empty(&d);
    }

    #[test]
    fn unpack_refuses_bad_paths() {
        for bad in [
            "../evil",
            "/abs",
            "a/../../b",
            "../sentinel/x",
            "a/./b",
            "a\\..\\b",
        ] {
            let d = dirs();
            let err = unpack(&[E::Dir("a/"), E::File(bad, b"evil")], &d).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, UnpackError::Path { .. }), "{bad}: {msg}");
            assert!(msg.starts_with("boot.tar.xz: entry "), "{msg}");
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert_sentinel_empty(&d);
        }
        let d = dirs();
        let msg = unpack(&[E::File("../x", b"")], &d).unwrap_err().to_string();
        assert_eq!(
            msg,
            "boot.tar.xz: entry \"../x\": parent directory components are not allowed"
        );
    }

    #[test]
    fn unpack_refuses_special_entries() {
        let cases = [
            (tar::EntryType::Symlink, "inside", "symbolic link"),
            (tar::EntryType::Symlink, "../sentinel", "symbolic link"),
            (tar::EntryType::Link, "config.txt", "hard link"),
            (tar::EntryType::Char, "", "character device"),
            (tar::EntryType::Block, "", "block device"),
            (tar::EntryType::Fifo, "", "fifo"),
        ];
        for (kind, target, word) in cases {
            let d = dirs();
            let err = unpack(
                &[
                    E::File("config.txt", b"x"),
                    E::Special("link", kind, target),
                    E::File("link/escape", b"evil"),
                ],
                &d,
            )
            .unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, UnpackError::EntryType { .. }), "{msg}");
            assert!(msg.contains("\"link\"") && msg.contains(word), "{msg}");
            assert!(!d.dest.join("link").exists());
            assert_sentinel_empty(&d);
        }
    }

    #[test]
    fn unpack_does_not_follow_existing_symlinks() {
        let d = dirs();
        std::os::unix::fs::symlink(&d.sentinel, d.dest.join("overlays")).unwrap();
        let err = unpack(&[E::File("overlays/x.dtbo", b"evil")], &d).unwrap_err();
        assert!(matches!(err, UnpackError::NotADirectory { .. }), "{err}");
        assert!(err.to_string().contains("overlays/x.dtbo"), "{err}");
        assert_sentinel_empty(&d);

        // A directory entry over the symlink, and a file entry on a (dangling) symlink.
        let err = unpack(&[E::Dir("overlays/")], &d).unwrap_err();
        assert!(matches!(err, UnpackError::NotADirectory { .. }), "{err}");
        std::os::unix::fs::symlink(d.sentinel.join("f"), d.dest.join("f")).unwrap();
        let err = unpack(&[E::File("f", b"evil")], &d).unwrap_err();
        assert!(matches!(err, UnpackError::Exists { .. }), "{err}");
        assert_sentinel_empty(&d);
    }

    #[test]
    fn unpack_file_as_parent_refused() {
        let d = dirs();
        let err = unpack(&[E::File("a", b"x"), E::File("a/b", b"y")], &d).unwrap_err();
        assert!(matches!(err, UnpackError::NotADirectory { .. }), "{err}");
        let err = unpack(&[E::File("dup", b"x"), E::File("dup", b"y")], &dirs()).unwrap_err();
        assert!(matches!(err, UnpackError::Exists { .. }), "{err}");
    }

    #[test]
    fn unpack_flipped_byte_refused() {
        let tar = tar_bytes(&[E::File("config.txt", &[7u8; 10_000])]);
        let txz = xz(&tar);
        let expect = expect_for(&tar, &txz);
        for at in [txz.len() / 2, 20, txz.len() - 5] {
            let d = dirs();
            let mut bad = txz.clone();
            bad[at] ^= 0x40;
            let err = unpack_tar_xz(bad.as_slice(), &d.dest, &expect).unwrap_err();
            assert!(err.to_string().contains("boot.tar.xz"), "{err}");
            assert_sentinel_empty(&d);
        }
    }

    #[test]
    fn unpack_wrong_digests() {
        let tar = tar_bytes(&[E::File("config.txt", b"hello")]);
        let txz = xz(&tar);
        let good = expect_for(&tar, &txz);
        let zeros = "0".repeat(64);

        let mut e = good.clone();
        e.compressed_sha256.clone_from(&zeros);
        let err = unpack_tar_xz(txz.as_slice(), &dirs().dest, &e).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, UnpackError::DigestMismatch { what: ARTEFACT, .. }),
            "{msg}"
        );
        assert!(
            msg.contains(&zeros) && msg.contains(&good.compressed_sha256),
            "{msg}"
        );

        let mut e = good.clone();
        e.sha256.clone_from(&zeros);
        let err = unpack_tar_xz(txz.as_slice(), &dirs().dest, &e).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                UnpackError::DigestMismatch {
                    what: ARTEFACT_UNCOMPRESSED,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains(&zeros) && msg.contains(&good.sha256), "{msg}");
        assert!(msg.starts_with("boot.tar.xz (uncompressed): "), "{msg}");
    }

    #[test]
    fn unpack_size_mismatch() {
        let tar = tar_bytes(&[E::File("config.txt", b"hello")]);
        let txz = xz(&tar);
        let good = expect_for(&tar, &txz);

        let mut e = good.clone();
        e.size += 512;
        let err = unpack_tar_xz(txz.as_slice(), &dirs().dest, &e).unwrap_err();
        assert!(matches!(err, UnpackError::SizeMismatch { .. }), "{err}");
        assert!(err.to_string().starts_with("boot.tar.xz: "), "{err}");

        let mut e = good;
        e.size -= 512;
        let err = unpack_tar_xz(txz.as_slice(), &dirs().dest, &e).unwrap_err();
        assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn unpack_digest_covers_trailing_bytes() {
        // Bytes after the tar end marker still count: a tar padded differently is another
        // artefact. Extra zero blocks after the marker are hashed.
        let mut tar = tar_bytes(&[E::File("config.txt", b"hello")]);
        tar.extend_from_slice(&[0u8; 4096]);
        let txz = xz(&tar);
        let e = expect_for(&tar, &txz);
        let report = unpack_tar_xz(txz.as_slice(), &dirs().dest, &e).unwrap();
        assert_eq!(report.files, 1);

        // Garbage after the xz stream is read too (and refused by the decoder or the digest).
        let mut longer = txz.clone();
        longer.extend_from_slice(b"junk");
        let err = unpack_tar_xz(longer.as_slice(), &dirs().dest, &e).unwrap_err();
        assert!(err.to_string().contains("boot.tar.xz"), "{err}");
    }
}
