//! The download cache: one directory of verified files, named by [`Artifact::cache_name`],
//! each with its side files:
//!
//! - `<cache_name>`: the artefact, only ever put there by an atomic rename after its digest
//!   matched;
//! - `<cache_name>.sha256`: the published digest (lowercase hex and a newline), or for a file
//!   with no published digest the digest of its first download, so builds can verify without
//!   the network (the lock file beside the configuration, when there is one, takes precedence);
//! - `<cache_name>.partial`: a download in progress (removed on failure).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::catalog::Artifact;
use super::checksum::Sha256Digest;
use super::FetchError;
use k8r_card::digest::HashingReader;

/// The cache directory from the environment: `$XDG_CACHE_HOME/k8r/downloads`, else
/// `$HOME/.cache/k8r/downloads` (XDG Base Directory spec: a relative or empty
/// `XDG_CACHE_HOME` is ignored).
pub fn default_cache_dir() -> Result<PathBuf, FetchError> {
    cache_dir_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
        .ok_or(FetchError::NoCacheDir)
}

/// [`default_cache_dir`] with the environment passed in.
fn cache_dir_from(xdg_cache_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let xdg = xdg_cache_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(dir) => dir,
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(base.join("k8r").join("downloads"))
}

/// Paths inside the cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    /// The directory.
    dir: PathBuf,
}

/// Attaches `path` to an I/O error.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Cache {
    /// A cache in `dir` (created on first write).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the verified artefact lives.
    pub(crate) fn file(&self, artifact: &Artifact) -> PathBuf {
        self.dir.join(&artifact.cache_name)
    }

    /// Where its published digest is kept.
    pub(crate) fn digest_file(&self, artifact: &Artifact) -> PathBuf {
        self.dir.join(format!("{}.sha256", artifact.cache_name))
    }

    /// Where a download in progress is written.
    pub(crate) fn partial_file(&self, artifact: &Artifact) -> PathBuf {
        self.dir.join(format!("{}.partial", artifact.cache_name))
    }

    /// Creates the directory.
    pub(crate) fn create_dir(&self) -> Result<(), FetchError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))
    }

    /// Makes a rename inside the directory durable.
    pub(crate) fn sync_dir(&self) -> Result<(), FetchError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }

    /// Writes a small file atomically: `<path>.tmp`, fsync, rename, fsync the directory.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
        self.create_dir()?;
        crate::atomic::write_atomic(path, bytes).map_err(io_err(path))?;
        self.sync_dir()
    }

    /// Reads a digest side file; `Ok(None)` if it does not exist or does not hold a digest
    /// (a damaged side file is treated as absent and rewritten by the next online fetch).
    pub(crate) fn read_digest(&self, path: &Path) -> Result<Option<Sha256Digest>, FetchError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let digest = text.trim().parse().ok();
                if digest.is_none() {
                    log::warn!("{}: not a SHA-256 digest, ignoring it", path.display());
                }
                Ok(digest)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// Stores a digest side file.
    pub(crate) fn write_digest(&self, path: &Path, digest: Sha256Digest) -> Result<(), FetchError> {
        self.write_atomic(path, format!("{digest}\n").as_bytes())
    }
}

/// SHA-256 and size of a file; `Ok(None)` if it does not exist.
pub(crate) fn hash_file(path: &Path) -> Result<Option<(Sha256Digest, u64)>, FetchError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut reader = HashingReader::new(&mut file);
    io::copy(&mut reader, &mut io::sink()).map_err(io_err(path))?;
    let (digest, size, _) = reader.into_parts();
    Ok(Some((Sha256Digest(digest), size)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cache_dir_prefers_absolute_xdg() {
        assert_eq!(
            cache_dir_from(Some("/x/cache".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/cache/k8r/downloads"))
        );
        assert_eq!(
            cache_dir_from(Some("relative".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/k8r/downloads"))
        );
        assert_eq!(
            cache_dir_from(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/k8r/downloads"))
        );
        assert_eq!(cache_dir_from(None, None), None);
        assert_eq!(cache_dir_from(None, Some("".into())), None);
    }

    #[test]
    fn hash_file_and_digest_side_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("sub"));
        let path = cache.dir().join("f");
        assert_eq!(hash_file(&path).unwrap(), None);
        cache.write_atomic(&path, b"abc").unwrap();
        let (digest, size) = hash_file(&path).unwrap().unwrap();
        assert_eq!(
            digest.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(size, 3);

        let side = cache.dir().join("f.sha256");
        assert_eq!(cache.read_digest(&side).unwrap(), None);
        cache.write_digest(&side, digest).unwrap();
        assert_eq!(cache.read_digest(&side).unwrap(), Some(digest));
        fs::write(&side, "garbage").unwrap();
        assert_eq!(cache.read_digest(&side).unwrap(), None);
        // No temporary files left behind.
        let mut names: Vec<_> = fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["f", "f.sha256"]);
    }
}
