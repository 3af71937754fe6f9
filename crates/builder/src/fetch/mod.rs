//! Downloading and verifying the Kubernetes node artefacts.
//!
//! [`catalog`] says what to download for a [`NodeSpec`] and how each file is verified;
//! [`checksum`] reads the upstream checksum files; [`Fetcher`] downloads into a cache
//! ([`default_cache_dir`]), checks every byte against its SHA-256 before a file is used, and
//! works offline from a filled cache.

pub mod cache;
pub mod catalog;
pub mod checksum;
pub mod download;
pub mod lock;
mod lock_io;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use cache::default_cache_dir;
pub use catalog::{
    node_artifacts, Artifact, CatalogError, ChecksumSource, CniManifest, Install, Mirrors,
    NodeSpec, VersionOrigin, VersionSet, CNI_MANIFEST, PINNED_MANIFESTS,
};
pub use checksum::{digest_for, sha256_hex, ChecksumError, ChecksumFormat, Sha256Digest};
pub use download::{Fetched, Fetcher};
pub use lock::{lock_path_for, DigestSource, Lock, LockEntry};

/// What can go wrong while fetching an artefact.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The downloaded bytes are not the ones the digest describes.
    #[error(
        "{name}: the download from {url} has SHA-256 {actual}, expected {expected}; \
         nothing was kept (retry, or check the mirror and the version)"
    )]
    DigestMismatch {
        /// Artefact name.
        name: String,
        /// Where it came from.
        url: String,
        /// The digest it should have.
        expected: Sha256Digest,
        /// The digest it has.
        actual: Sha256Digest,
    },
    /// The server answered with an error status.
    #[error("{label}: GET {url}: HTTP {status}{hint}")]
    Http {
        /// Artefact name and version.
        label: String,
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The likely cause and fix (starts with a space or is empty).
        hint: String,
    },
    /// The server could not be reached or the connection broke.
    #[error(
        "{label}: GET {url}: {cause}; the host comes from {mirror_key} in the configuration: \
         check the network, or set {mirror_key} to a reachable mirror; {}",
        if *cache_full {
            "the download cache holds every artefact, so --offline builds without the network"
        } else {
            "--offline builds from the download cache alone once it holds every artefact"
        }
    )]
    Transport {
        /// Artefact name and version.
        label: String,
        /// The URL.
        url: String,
        /// What went wrong (without the URL).
        cause: String,
        /// The configuration key of the mirror.
        mirror_key: &'static str,
        /// Whether the cache holds every artefact of the build (then `--offline` works).
        cache_full: bool,
    },
    /// The published checksum file could not be read.
    #[error("{name}: checksum file {url}: {source}")]
    Checksum {
        /// Artefact name.
        name: String,
        /// URL of the checksum file.
        url: String,
        /// What is wrong with it.
        source: ChecksumError,
    },
    /// Upstream now publishes a different digest than the one cached on an earlier build.
    #[error(
        "{name}: the published SHA-256 is now {published}, but {} recorded {cached} \
         from an earlier download; a release's digest should never change. If the change is \
         expected, delete {}",
        cached_path.display(),
        cached_path.display()
    )]
    PublishedDigestChanged {
        /// Artefact name.
        name: String,
        /// The digest recorded in the cache.
        cached: Sha256Digest,
        /// The digest published now.
        published: Sha256Digest,
        /// The cache file holding `cached`.
        cached_path: PathBuf,
    },
    /// A digest differs from the one the lock file records.
    #[error(transparent)]
    LockMismatch(Box<LockMismatch>),
    /// `--locked`, and the lock file does not cover the build.
    #[error(
        "--locked: {} does not vouch for: {}; nothing was downloaded. Build once without \
         --locked to record them, check the changes, and commit the lock file",
        lock_path.display(),
        problems.join("; ")
    )]
    Locked {
        /// The lock file.
        lock_path: PathBuf,
        /// One line per artefact.
        problems: Vec<String>,
    },
    /// `--locked`, and there is no lock file.
    #[error(
        "--locked: there is no lock file {}; nothing was downloaded. Build once without \
         --locked to write it, check it, and commit it",
        lock_path.display()
    )]
    NoLockFile {
        /// Where it was looked for.
        lock_path: PathBuf,
    },
    /// The lock file cannot be used.
    #[error(
        "lock file {}: {source}; fix it, or delete it to record every digest anew",
        path.display()
    )]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// What is wrong.
        source: lock::LockParseError,
    },
    /// Offline mode and the cache lacks (or has corrupt copies of) these artefacts.
    #[error(
        "offline, and the download cache lacks: {}; run once without --offline to fill it",
        missing.join("; ")
    )]
    Offline {
        /// One entry per missing artefact, with the reason.
        missing: Vec<String>,
    },
    /// No cache directory could be chosen.
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is set; pass one explicitly")]
    NoCacheDir,
    /// A cache file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Extra words for an HTTP status that has a likely cause; a 404 says which setting chose
/// the version (and whether it was a default) when `origin` is known.
pub(crate) fn status_hint(status: u16, version: &str, origin: Option<&VersionOrigin>) -> String {
    match (status, origin) {
        (404, Some(origin)) => format!(" (not found): {}", origin.not_found_hint(version)),
        (404, None) => " (not found: is the version right?)".to_owned(),
        (403 | 429, _) => " (refused or rate-limited: wait, or use a mirror)".to_owned(),
        _ => String::new(),
    }
}

/// A digest differs from the one the lock file records (boxed in [`FetchError`]: it is large).
#[derive(Debug, thiserror::Error)]
#[error(
    "{label}: {what} SHA-256 {found}, but {} records {locked} ({origin}); nothing was \
     kept. A release's files should never change: check the file and the mirror \
     ({mirror_key}). If the change is expected, delete the {label} entry from {} and build \
     again to record the new digest, then commit the lock file",
    lock_path.display(),
    lock_path.display()
)]
pub struct LockMismatch {
    /// Artefact name and version.
    pub label: String,
    /// `the download from <url> has` / `the checksum file <url> now publishes`.
    pub what: String,
    /// The digest seen now.
    pub found: Sha256Digest,
    /// The digest in the lock.
    pub locked: Sha256Digest,
    /// Where the locked digest came from (`published`, `first-download`).
    pub origin: &'static str,
    /// The configuration key of the mirror.
    pub mirror_key: &'static str,
    /// The lock file.
    pub lock_path: PathBuf,
}
