//! The image store on the recovery partition: the builds the installer can install.
//!
//! ```text
//! k8r/images/pointer.txt              current=<build id>, previous=<build id>
//! k8r/images/<build id>/manifest.toml
//! k8r/images/<build id>/image.img.xz
//! k8r/images/<build id>/boot.tar.xz
//! ```
//!
//! Each build lives in its own directory named after its `build_id`. Which one is current is
//! said by one small file, [`POINTER_FILE`], replaced the careful way
//! ([`crate::replace::careful_replace`]): a directory rename on FAT is not atomic, a
//! one-cluster file replace is. So a build being staged is never taken for the current one: it
//! becomes current only when the pointer names it, after every file of it verified. The pointer
//! also names the previous build, kept when space allows so a bad build can be rolled back.
//! Directories the pointer does not name are leftovers of an interrupted staging and are
//! removed by the next one ([`Store::prune`]).
//!
//! [`Pointer`] is pure (parse/render/advance); [`Store`] and [`Build`] do the I/O on a mounted
//! recovery partition.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use k8r_manifest::signature::{self, SignatureError, TrustedKeys, Verdict, SIGNATURE_FILE};
use k8r_manifest::{Manifest, ManifestError, MANIFEST_FILE};

use crate::digest::{sha256_file, HashingReader, NullDevice};
use crate::replace::{careful_replace, ReplaceError};
use crate::stream::{self, StreamError, WriteOptions};

/// The image store's directory on the recovery partition.
pub const STORE_DIR: &str = "k8r/images";
/// The pointer file's name inside [`STORE_DIR`].
pub const POINTER_FILE: &str = "pointer.txt";
/// The pointer file's largest accepted size: it must stay one FAT cluster.
pub const POINTER_MAX: usize = 512;

/// Why the store could not be read or a build did not verify. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// There is no pointer file: no build was ever stored on this card.
    #[error("{path} is missing: the image store holds no build (rebuild the card with k8r-builder, or stage one with `k8r update-image`)")]
    NoPointer {
        /// The pointer file's path.
        path: PathBuf,
    },
    /// The pointer file cannot be read as a pointer.
    #[error("{path}: {reason}")]
    BadPointer {
        /// The pointer file's path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A build directory name is not a build id.
    #[error("{name:?} is not a build id (1-64 of A-Z a-z 0-9 . _ -, not starting with '.')")]
    BadBuildId {
        /// The rejected name.
        name: String,
    },
    /// The build's manifest is invalid.
    #[error("{path}: {source}")]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// Why it was refused.
        #[source]
        source: ManifestError,
    },
    /// The manifest is for another build than its directory says.
    #[error("{path}: build_id {found:?}, but the directory is named {dir:?}")]
    WrongBuild {
        /// The manifest's path.
        path: PathBuf,
        /// The manifest's build id.
        found: String,
        /// The directory name.
        dir: String,
    },
    /// A file's size differs from the manifest.
    #[error("{path}: {actual} bytes, the manifest says {expected} (the file is truncated or not this build's: stage the build again)")]
    Size {
        /// The file.
        path: PathBuf,
        /// The manifest's size.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A file's SHA-256 differs from the manifest.
    #[error("{path}: SHA-256 {actual}, the manifest says {expected} (the stored file is damaged: stage the build again)")]
    Digest {
        /// The file (or `file (uncompressed)`).
        path: PathBuf,
        /// The manifest's digest.
        expected: String,
        /// The digest of the bytes found.
        actual: String,
    },
    /// Decoding or checking the root image failed.
    #[error("{path}: {source}")]
    Stream {
        /// `image.img.xz`.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: StreamError,
    },
    /// Replacing the pointer failed.
    #[error(transparent)]
    Replace(#[from] ReplaceError),
    /// The build's signature does not satisfy the card's trusted keys.
    #[error("build {build}: {source}")]
    Signature {
        /// The build id.
        build: String,
        /// Why it was refused.
        #[source]
        source: SignatureError,
    },
    /// The card's trusted key list cannot be read: nothing may be installed or staged.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which builds the store holds: the pointer file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The build the installer installs.
    pub current: String,
    /// The build before it, kept for a rollback (when space allowed).
    pub previous: Option<String>,
}

impl Pointer {
    /// A pointer to `current` with no previous build.
    pub fn to(current: &str) -> Result<Pointer, StoreError> {
        check_build_id(current)?;
        Ok(Pointer {
            current: current.to_owned(),
            previous: None,
        })
    }

    /// Parses the pointer file: `key=value` lines, `#` comments; `current=` is required, both
    /// values must be build ids. Unknown keys are ignored (a newer agent may add some). Does
    /// not touch disk.
    ///
    /// # Errors
    /// A one-line reason (the caller adds the path).
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.len() > POINTER_MAX {
            return Err(format!(
                "{} bytes, more than a pointer file ever holds ({POINTER_MAX})",
                text.len()
            ));
        }
        let mut current = None;
        let mut previous = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!(
                    "line {}: expected key=value, found {line:?}",
                    i + 1
                ));
            };
            let value = value.trim();
            let slot = match key.trim() {
                "current" => &mut current,
                "previous" => &mut previous,
                _ => continue,
            };
            if !k8r_manifest::is_build_id(value) {
                return Err(format!("line {}: {value:?} is not a build id", i + 1));
            }
            *slot = Some(value.to_owned());
        }
        let current = current.ok_or("no current= line (the file is torn or not a pointer)")?;
        let previous = previous.filter(|p| *p != current);
        Ok(Pointer { current, previous })
    }

    /// The file's text; [`Pointer::parse`] reads it back unchanged.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = format!(
            "# k8r image store: the build the installer installs, and the one before it\ncurrent={}\n",
            self.current
        );
        if let Some(p) = &self.previous {
            out.push_str(&format!("previous={p}\n"));
        }
        out
    }

    /// The pointer after `build` became current: the old current becomes previous (unless it
    /// is `build` itself). Does not touch disk.
    #[must_use]
    pub fn advance(&self, build: &str) -> Pointer {
        if build == self.current {
            return self.clone();
        }
        Pointer {
            current: build.to_owned(),
            previous: Some(self.current.clone()),
        }
    }

    /// The pointer after the previous build was given up (no room to keep it). Does not touch
    /// disk.
    #[must_use]
    pub fn without_previous(&self) -> Pointer {
        Pointer {
            current: self.current.clone(),
            previous: None,
        }
    }

    /// The builds it names, current first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.as_str()).chain(self.previous.as_deref())
    }
}

fn check_build_id(name: &str) -> Result<(), StoreError> {
    if k8r_manifest::is_build_id(name) {
        Ok(())
    } else {
        Err(StoreError::BadBuildId {
            name: name.to_owned(),
        })
    }
}

/// The image store of a mounted recovery partition.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of the recovery partition mounted at `recovery_root`.
    pub fn new(recovery_root: &Path) -> Store {
        Store {
            dir: recovery_root.join(STORE_DIR),
        }
    }

    /// `k8r/images` under the mount point.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pointer file's path.
    pub fn pointer_path(&self) -> PathBuf {
        self.dir.join(POINTER_FILE)
    }

    /// Reads the pointer.
    ///
    /// # Errors
    /// [`StoreError::NoPointer`] when there is none, [`StoreError::BadPointer`] when it cannot
    /// be read as one.
    pub fn pointer(&self) -> Result<Pointer, StoreError> {
        let path = self.pointer_path();
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoPointer { path })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let text = String::from_utf8(text).map_err(|_| StoreError::BadPointer {
            path: path.clone(),
            reason: "not UTF-8 text (the file is torn)".into(),
        })?;
        Pointer::parse(&text).map_err(|reason| StoreError::BadPointer { path, reason })
    }

    /// Replaces the pointer the careful way.
    ///
    /// # Errors
    /// The replace failed; the old pointer is then still in place (or, after a torn rename,
    /// the new one: both name complete builds).
    pub fn set_pointer(&self, pointer: &Pointer) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        careful_replace(&self.dir, POINTER_FILE, pointer.render().as_bytes())?;
        Ok(())
    }

    /// The directory of build `id`.
    pub fn build_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        check_build_id(id)?;
        Ok(self.dir.join(id))
    }

    /// Opens build `id`: reads and validates its manifest.
    ///
    /// # Errors
    /// The manifest is missing or invalid, or names another build.
    pub fn build(&self, id: &str) -> Result<Build, StoreError> {
        Build::open(&self.build_dir(id)?)
    }

    /// Opens the build the pointer names as current.
    ///
    /// # Errors
    /// As [`Store::pointer`] and [`Store::build`].
    pub fn current(&self) -> Result<Build, StoreError> {
        self.build(&self.pointer()?.current)
    }

    /// The build directories present, sorted (whatever the pointer says).
    ///
    /// # Errors
    /// The store directory cannot be listed (a missing one is an empty list).
    pub fn build_dirs(&self) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && k8r_manifest::is_build_id(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes every build directory the pointer does not name (leftovers of an interrupted
    /// staging, or a previous build given up for room), except `keep`. Returns the names
    /// removed.
    ///
    /// # Errors
    /// A directory could not be removed.
    pub fn prune(&self, pointer: &Pointer, keep: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut removed = Vec::new();
        for name in self.build_dirs()? {
            if pointer.names().any(|n| n == name) || keep.contains(&name.as_str()) {
                continue;
            }
            let path = self.dir.join(&name);
            std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// Bytes the files of build `id` take on disk (0 when it is not there).
    pub fn build_bytes(&self, id: &str) -> u64 {
        let Ok(dir) = self.build_dir(id) else {
            return 0;
        };
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .filter(std::fs::Metadata::is_file)
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Decoder settings for verifying a stored build on this machine.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Worker threads (online CPUs).
    pub threads: usize,
    /// Total memory in bytes (bounds the xz decoder; 0 = assume 1 GiB).
    pub mem_total: u64,
}

impl VerifyOptions {
    /// Settings for the machine this runs on.
    pub fn for_this_machine() -> VerifyOptions {
        VerifyOptions {
            threads: usize::try_from(stream::online_cpus()).unwrap_or(1).max(1),
            mem_total: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|t| stream::mem_total_from_meminfo(&t))
                .unwrap_or(0),
        }
    }
}

/// One stored build: its directory, validated manifest, and its signature if it has one.
#[derive(Debug, Clone)]
pub struct Build {
    /// `k8r/images/<build id>`.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The manifest's bytes as read: the signature covers exactly these.
    pub manifest_bytes: Vec<u8>,
    /// `manifest.toml.minisig`'s text, when the build has one.
    pub signature: Option<String>,
}

impl Build {
    /// Reads and validates `dir/manifest.toml`; the directory must be named after the build.
    ///
    /// # Errors
    /// The manifest is missing, invalid, or for another build.
    pub fn open(dir: &Path) -> Result<Build, StoreError> {
        let path = dir.join(MANIFEST_FILE);
        let manifest_bytes =
            read_bounded(&path, MANIFEST_MAX, "a manifest").map_err(io_err(&path))?;
        let text = std::str::from_utf8(&manifest_bytes).map_err(|_| {
            io_err(&path)(io::Error::new(
                io::ErrorKind::InvalidData,
                "not UTF-8 text (the file is torn or not a manifest)",
            ))
        })?;
        let manifest = Manifest::parse(text).map_err(|source| StoreError::Manifest {
            path: path.clone(),
            source,
        })?;
        let signature = read_signature(&dir.join(SIGNATURE_FILE))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name != manifest.build_id {
            return Err(StoreError::WrongBuild {
                path,
                found: manifest.build_id,
                dir: name,
            });
        }
        Ok(Build {
            dir: dir.to_path_buf(),
            manifest,
            manifest_bytes,
            signature,
        })
    }

    /// Checks the build's signature against the card's `trusted` keys
    /// ([`signature::verify`]): refused unless it is signed by one of them, when there are
    /// any.
    ///
    /// # Errors
    /// [`StoreError::Signature`] naming the build, the keys and the fix.
    pub fn check_signature(&self, trusted: &TrustedKeys) -> Result<Verdict, StoreError> {
        signature::verify(&self.manifest_bytes, self.signature.as_deref(), trusted).map_err(
            |source| StoreError::Signature {
                build: self.manifest.build_id.clone(),
                source,
            },
        )
    }

    /// The path of one of the build's files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `image.img.xz`.
    pub fn root_file(&self) -> PathBuf {
        self.file(&self.manifest.root.file)
    }

    /// `boot.tar.xz`.
    pub fn boot_file(&self) -> PathBuf {
        self.file(&self.manifest.boot.file)
    }

    /// Checks the size and SHA-256 of the compressed `image.img.xz` (one read, one hash): the
    /// installer does this before the first byte goes to the card, so a damaged store never
    /// touches the working root.
    ///
    /// # Errors
    /// [`StoreError::Size`], [`StoreError::Digest`] or an I/O error.
    pub fn check_compressed(&self) -> Result<(), StoreError> {
        let m = &self.manifest.root;
        check_file(&self.root_file(), m.compressed_size, &m.compressed_sha256)
    }

    /// Checks the size and SHA-256 of the compressed `boot.tar.xz`.
    ///
    /// # Errors
    /// As [`Build::check_compressed`].
    pub fn check_boot(&self) -> Result<(), StoreError> {
        let b = &self.manifest.boot;
        check_file(&self.boot_file(), b.compressed_size, &b.compressed_sha256)
    }

    /// Verifies the whole build without writing anything: `image.img.xz` is read once, hashed
    /// and decoded on `opts.threads` threads, every used range's digest, the zeros outside
    /// them and the whole-image digest are checked; then `boot.tar.xz`'s size and digest.
    /// `progress` sees the decode's progress.
    ///
    /// # Errors
    /// The first check that failed, naming the file.
    pub fn verify(
        &self,
        opts: VerifyOptions,
        progress: &mut dyn FnMut(stream::Progress),
    ) -> Result<(), StoreError> {
        let m = &self.manifest.root;
        let path = self.root_file();
        let file = File::open(&path).map_err(io_err(&path))?;
        let actual_len = file.metadata().map_err(io_err(&path))?.len();
        if actual_len != m.compressed_size {
            return Err(StoreError::Size {
                path,
                expected: m.compressed_size,
                actual: actual_len,
            });
        }
        let mut hashed = HashingReader::new(BufReader::with_capacity(1 << 20, file));
        let threads = u32::try_from(opts.threads).unwrap_or(1);
        let stream_err = |source| StoreError::Stream {
            path: path.clone(),
            source,
        };
        let report = {
            let write_opts = WriteOptions {
                threads: opts.threads.max(1),
                chunk: 4 << 20,
                whole_digest: true,
            };
            let mut plain = stream::decoder(
                m.compression,
                &mut hashed,
                threads,
                opts.mem_total,
                write_opts.pool_bytes(),
            )
            .map_err(|e| io_err(&path)(e))?;
            let report = stream::write_ranges(
                &mut plain,
                &mut NullDevice::default(),
                &m.ranges,
                m.size,
                &write_opts,
                progress,
            )
            .map_err(stream_err)?;
            // Nothing may follow the image in the stream.
            let mut rest = [0u8; 1];
            let extra = plain.read(&mut rest).map_err(|e| io_err(&path)(e))?;
            if extra != 0 {
                return Err(stream_err(StreamError::TooLong { want: m.size }));
            }
            report
        };
        // The rest of the file (the xz index and footer; nothing for zstd) is hashed too.
        io::copy(&mut hashed, &mut io::sink()).map_err(io_err(&path))?;
        if report.sha256 != m.sha256 {
            return Err(StoreError::Digest {
                path: PathBuf::from(format!("{} (uncompressed)", path.display())),
                expected: m.sha256.clone(),
                actual: report.sha256,
            });
        }
        let (compressed, _) = hashed.finish();
        if compressed != m.compressed_sha256 {
            return Err(StoreError::Digest {
                path,
                expected: m.compressed_sha256.clone(),
                actual: compressed,
            });
        }
        self.check_boot()
    }
}

/// A build's signature file, if there is one (bounded: a signature is a few hundred bytes).
fn read_signature(path: &Path) -> Result<Option<String>, StoreError> {
    let bytes = match read_bounded(path, signature::SIGNATURE_MAX, "a signature") {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    // Not UTF-8: kept as text all the same, so the check refuses it with its reason.
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

pub use k8r_manifest::MANIFEST_MAX;

/// `path`'s bytes when it holds at most `max` (`what` names the kind of file in the error
/// otherwise); a bigger file is refused after reading `max + 1` bytes of it.
fn read_bounded(path: &Path, max: usize, what: &str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {max} bytes, more than {what} ever holds"),
        ));
    }
    Ok(bytes)
}

/// Checks a file's size, then its SHA-256.
fn check_file(path: &Path, size: u64, sha256: &str) -> Result<(), StoreError> {
    let actual = std::fs::metadata(path).map_err(io_err(path))?.len();
    if actual != size {
        return Err(StoreError::Size {
            path: path.to_path_buf(),
            expected: size,
            actual,
        });
    }
    let digest = sha256_file(path).map_err(io_err(path))?;
    if digest != sha256 {
        return Err(StoreError::Digest {
            path: path.to_path_buf(),
            expected: sha256.to_owned(),
            actual: digest,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
