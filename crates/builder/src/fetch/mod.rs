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

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use cache::default_cache_dir;
pub use catalog::{
    node_artifacts, Artifact, CatalogError, ChecksumSource, CniManifest, Install, Mirrors,
    NodeSpec, CNI_MANIFEST, PINNED_MANIFESTS,
};
pub use checksum::{digest_for, sha256_hex, ChecksumError, ChecksumFormat, Sha256Digest};
pub use download::{Fetched, Fetcher};

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
    #[error("{name}: GET {url}: HTTP {status}{}", status_hint(*status))]
    Http {
        /// Artefact name.
        name: String,
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The server could not be reached or the connection broke.
    #[error("{name}: GET {url}: {message}")]
    Transport {
        /// Artefact name.
        name: String,
        /// The URL.
        url: String,
        /// ureq's description.
        message: String,
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
    /// Neither upstream nor k8r has a digest for this file, and trust on first use was not
    /// allowed.
    #[error(
        "{name} {version} ({url}) has no published SHA-256 and k8r pins none for this version: check \
         the file yourself, then pass --trust-unpinned-manifest to record the digest of this \
         download in the cache (later builds are checked against it)"
    )]
    Unpinned {
        /// Artefact name.
        name: String,
        /// Its version.
        version: String,
        /// Where it is downloaded from.
        url: String,
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

/// Extra words for an HTTP status that has a likely cause.
fn status_hint(status: u16) -> &'static str {
    match status {
        404 => " (not found: is the version right?)",
        403 | 429 => " (refused or rate-limited: wait, or use a mirror)",
        _ => "",
    }
}
