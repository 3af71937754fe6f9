//! The fetcher: download over HTTP(S) into the cache, verify, reuse verified cached files.
//!
//! A file is only ever used after its SHA-256 matched the expected digest: cached files are
//! re-hashed on every use, downloads go to `<cache_name>.partial` and are renamed into place
//! (after fsync) only once verified. A file whose digest is already known (from the lock file
//! or the cache) and that is in the cache is used without any network access.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::cache::{hash_file, io_err, Cache};
use super::catalog::{Artifact, ChecksumSource};
use super::checksum::{digest_in, Sha256Digest};
use super::lock::{DigestSource, Lock, LockEntry};
use super::{lock_io, status_hint, FetchError, LockMismatch};
use k8r_card::digest::HashingReader;

/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed between two reads of the response.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest checksum file accepted (they are a few hundred bytes; this stops an HTML error page
/// or a wrong URL from being read whole).
const MAX_CHECKSUM_FILE: u64 = 1 << 20;

/// A verified file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Artefact name.
    pub name: String,
    /// Path of the verified file in the cache.
    pub path: PathBuf,
    /// Its SHA-256.
    pub digest: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it was already in the cache (no download).
    pub from_cache: bool,
}

/// Downloads artefacts into a cache directory and verifies them.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// The download cache.
    cache_dir: PathBuf,
    /// Never touch the network.
    offline: bool,
    /// The lock file to verify against and update, and whether it must cover the build.
    lock: Option<LockFile>,
    /// Show a progress bar on a terminal.
    progress: bool,
    /// HTTP client with k8r's timeouts.
    agent: ureq::Agent,
}

/// The lock file settings.
#[derive(Debug, Clone)]
struct LockFile {
    /// Where it is.
    path: PathBuf,
    /// `--locked`: refuse a build it does not cover.
    locked: bool,
}

/// The lock entry vouching for one artefact, and the file it is in.
#[derive(Clone, Copy)]
struct Locked<'a> {
    /// The entry.
    entry: &'a LockEntry,
    /// The lock file.
    path: &'a Path,
}

/// What a file is checked against.
enum Expected {
    /// A known digest (published, pinned or recorded).
    Known(Sha256Digest),
    /// Unpinned and never seen: record what arrives.
    FirstDownload,
}

/// Removes a `.partial` file unless it was renamed into place.
struct PartialGuard {
    /// The partial file.
    path: PathBuf,
    /// Set once renamed.
    done: bool,
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Fetcher {
    /// A fetcher using `cache_dir` (see [`super::default_cache_dir`]), online, without lock
    /// file or progress bar.
    pub fn new(cache_dir: PathBuf) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .user_agent(concat!("k8r-builder/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            cache_dir,
            offline: false,
            lock: None,
            progress: false,
            agent,
        }
    }

    /// Never use the network; everything must already be in the cache.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Verify against the lock file at `path` and update it after a successful
    /// [`fetch_all`](Self::fetch_all); with `locked`, refuse (before any download) a build it
    /// does not cover.
    pub fn lock_file(mut self, path: PathBuf, locked: bool) -> Self {
        self.lock = Some(LockFile { path, locked });
        self
    }

    /// Show a progress bar on stderr when it is a terminal.
    pub fn progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &std::path::Path {
        &self.cache_dir
    }

    /// The cache.
    fn cache(&self) -> Cache {
        Cache::new(self.cache_dir.clone())
    }

    /// Fetches every artefact in order. With a lock file: `--locked` first checks that it
    /// covers the build; every digest is checked against it; afterwards it is rewritten if it
    /// changed. Offline, first checks that all are cached and lists every missing one at once.
    pub fn fetch_all(&self, artifacts: &[Artifact]) -> Result<Vec<Fetched>, FetchError> {
        let (lock, old_text) = match &self.lock {
            Some(l) => lock_io::read(&l.path)?,
            None => (Lock::default(), None),
        };
        self.refuse_unlocked(&lock, old_text.is_some(), artifacts)?;
        let locked = |a: &Artifact| {
            let path = self.lock.as_ref()?.path.as_path();
            Some(Locked {
                entry: lock.entry_for(a)?,
                path,
            })
        };
        if self.offline {
            self.check_offline_locked(artifacts, &locked)?;
        }
        let mut fetched = Vec::with_capacity(artifacts.len());
        for a in artifacts {
            match self.fetch_locked(a, locked(a)) {
                Ok(f) => fetched.push(f),
                Err(FetchError::Transport {
                    label,
                    url,
                    cause,
                    mirror_key,
                    cache_full: _,
                }) => {
                    let cache_full = self.check_offline_locked(artifacts, &locked).is_ok();
                    return Err(FetchError::Transport {
                        label,
                        url,
                        cause,
                        mirror_key,
                        cache_full,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(l) = &self.lock {
            let new = Lock::new(
                artifacts
                    .iter()
                    .zip(&fetched)
                    .map(|(a, f)| LockEntry::for_artifact(a, f.digest)),
            );
            if lock_io::write_if_changed(&l.path, old_text.as_deref(), &new.render())? {
                log::info!("wrote {}", l.path.display());
            }
            for e in new.entries() {
                let seen = lock
                    .named(&e.name)
                    .is_some_and(|old| old.version == e.version && old.sha256 == e.sha256);
                if e.source == DigestSource::FirstDownload && !seen {
                    log::warn!(
                        "{} {}: no published SHA-256; recorded the digest of this download, \
                         sha256 {}, in {} — commit it",
                        e.name,
                        e.version,
                        e.sha256,
                        l.path.display()
                    );
                }
            }
        }
        Ok(fetched)
    }

    /// With `--locked`: fails, listing every artefact the lock file does not vouch for (missing,
    /// other version, other URL). Nothing is downloaded.
    pub fn check_locked(&self, artifacts: &[Artifact]) -> Result<(), FetchError> {
        match &self.lock {
            Some(l) if l.locked => {
                let (lock, text) = lock_io::read(&l.path)?;
                self.refuse_unlocked(&lock, text.is_some(), artifacts)
            }
            _ => Ok(()),
        }
    }

    /// [`check_locked`](Self::check_locked) with the lock read.
    fn refuse_unlocked(
        &self,
        lock: &Lock,
        exists: bool,
        artifacts: &[Artifact],
    ) -> Result<(), FetchError> {
        let Some(l) = self.lock.as_ref().filter(|l| l.locked) else {
            return Ok(());
        };
        if !exists {
            return Err(FetchError::NoLockFile {
                lock_path: l.path.clone(),
            });
        }
        let problems = lock.locked_problems(artifacts);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(FetchError::Locked {
                lock_path: l.path.clone(),
                problems,
            })
        }
    }

    /// Checks, without the network, that every artefact is in the cache with a matching
    /// digest; the error lists all that are not.
    pub fn check_offline(&self, artifacts: &[Artifact]) -> Result<(), FetchError> {
        let (lock, _) = match &self.lock {
            Some(l) => lock_io::read(&l.path)?,
            None => (Lock::default(), None),
        };
        let locked = |a: &Artifact| {
            let path = self.lock.as_ref()?.path.as_path();
            Some(Locked {
                entry: lock.entry_for(a)?,
                path,
            })
        };
        self.check_offline_locked(artifacts, &locked)
    }

    /// [`check_offline`](Self::check_offline) with the lock entries given.
    fn check_offline_locked<'a>(
        &self,
        artifacts: &[Artifact],
        locked: &dyn Fn(&Artifact) -> Option<Locked<'a>>,
    ) -> Result<(), FetchError> {
        let mut missing = Vec::new();
        for artifact in artifacts {
            if let Err(reason) = self.cached(artifact, locked(artifact))? {
                missing.push(reason);
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(FetchError::Offline { missing })
        }
    }

    /// Returns the verified cached file for `artifact`, downloading it first if needed (no
    /// lock file involved).
    pub fn fetch(&self, artifact: &Artifact) -> Result<Fetched, FetchError> {
        self.fetch_locked(artifact, None)
    }

    /// [`fetch`](Self::fetch), checked against a lock entry if there is one.
    fn fetch_locked(
        &self,
        artifact: &Artifact,
        locked: Option<Locked<'_>>,
    ) -> Result<Fetched, FetchError> {
        let fetched = if self.offline {
            self.cached(artifact, locked)?
                .map_err(|reason| FetchError::Offline {
                    missing: vec![reason],
                })?
        } else {
            self.fetch_online(artifact, locked)?
        };
        log::info!(
            "fetched {} {} ({}) from {}",
            artifact.name,
            artifact.version,
            HumanBytes(fetched.size),
            if fetched.from_cache {
                "cache"
            } else {
                "network"
            }
        );
        Ok(fetched)
    }

    /// The digest known without the network: the lock's, else k8r's pin, else the one the
    /// cache recorded on an earlier download.
    fn known_digest(
        &self,
        cache: &Cache,
        artifact: &Artifact,
        locked: Option<Locked<'_>>,
    ) -> Result<Option<Sha256Digest>, FetchError> {
        Ok(match (locked, &artifact.checksum) {
            (Some(l), _) => Some(l.entry.sha256),
            (None, ChecksumSource::Pinned(digest)) => Some(*digest),
            (None, _) => cache.read_digest(&cache.digest_file(artifact))?,
        })
    }

    /// The cached, verified file without touching the network; `Ok(Err(reason))` says what is
    /// missing.
    fn cached(
        &self,
        artifact: &Artifact,
        locked: Option<Locked<'_>>,
    ) -> Result<Result<Fetched, String>, FetchError> {
        let cache = self.cache();
        let label = format!("{} {}", artifact.name, artifact.version);
        let Some(expected) = self.known_digest(&cache, artifact, locked)? else {
            return Ok(Err(format!("{label} (no recorded digest)")));
        };
        let path = cache.file(artifact);
        Ok(match hash_file(&path)? {
            None => Err(format!("{label} (not downloaded)")),
            Some((digest, _)) if digest != expected => {
                Err(format!("{label} (cached copy does not match its digest)"))
            }
            Some((digest, size)) => Ok(Fetched {
                name: artifact.name.clone(),
                path,
                digest,
                size,
                from_cache: true,
            }),
        })
    }

    /// Online fetch: a cached file matching the known digest is used without the network;
    /// otherwise learn the expected digest (checksum file, lock, cache) and download.
    fn fetch_online(
        &self,
        artifact: &Artifact,
        locked: Option<Locked<'_>>,
    ) -> Result<Fetched, FetchError> {
        let cache = self.cache();
        if let Ok(fetched) = self.cached(artifact, locked)? {
            return Ok(fetched);
        }
        let expected = self.expected_online(&cache, artifact, locked)?;
        let path = cache.file(artifact);
        if let Expected::Known(expected) = expected {
            match hash_file(&path)? {
                Some((digest, size)) if digest == expected => {
                    return Ok(Fetched {
                        name: artifact.name.clone(),
                        path,
                        digest,
                        size,
                        from_cache: true,
                    });
                }
                Some((digest, _)) => {
                    log::warn!(
                        "{}: cached copy has SHA-256 {digest}, expected {expected}; downloading again",
                        path.display()
                    );
                    fs::remove_file(&path).map_err(io_err(&path))?;
                }
                None => {}
            }
        }
        let result = self.download(&cache, artifact, expected);
        match (result, locked) {
            // Only an unpinned file's expected digest is the lock's own (a published one was
            // compared with the lock already; a mismatch then is a bad download).
            (Err(FetchError::DigestMismatch { url, actual, .. }), Some(l))
                if artifact.checksum == ChecksumSource::Unpinned =>
            {
                Err(lock_mismatch(
                    artifact,
                    l,
                    format!("the download from {url} has"),
                    actual,
                ))
            }
            (other, _) => other,
        }
    }

    /// The digest the artefact must have, fetching the published checksum file if there is one.
    fn expected_online(
        &self,
        cache: &Cache,
        artifact: &Artifact,
        locked: Option<Locked<'_>>,
    ) -> Result<Expected, FetchError> {
        let side = cache.digest_file(artifact);
        match &artifact.checksum {
            ChecksumSource::Published {
                url,
                format,
                file_name,
            } => {
                let text = self.get_text(artifact, url)?;
                let published = digest_in(&text, *format, file_name).map_err(|source| {
                    FetchError::Checksum {
                        name: artifact.name.clone(),
                        url: url.clone(),
                        source,
                    }
                })?;
                if let Some(l) = locked {
                    if l.entry.sha256 != published {
                        return Err(lock_mismatch(
                            artifact,
                            l,
                            format!("the checksum file {url} now publishes"),
                            published,
                        ));
                    }
                }
                match cache.read_digest(&side)? {
                    // The lock agrees with upstream: a differing cache record is stale.
                    Some(cached) if cached != published && locked.is_none() => {
                        return Err(FetchError::PublishedDigestChanged {
                            name: artifact.name.clone(),
                            cached,
                            published,
                            cached_path: side,
                        });
                    }
                    Some(cached) if cached == published => {}
                    _ => cache.write_digest(&side, published)?,
                }
                Ok(Expected::Known(published))
            }
            ChecksumSource::Pinned(digest) => Ok(Expected::Known(*digest)),
            ChecksumSource::Unpinned => match self.known_digest(cache, artifact, locked)? {
                Some(recorded) => Ok(Expected::Known(recorded)),
                None => Ok(Expected::FirstDownload),
            },
        }
    }

    /// GET `url`, mapping failures to errors that name the artefact and URL.
    fn get(&self, artifact: &Artifact, url: &str) -> Result<ureq::Response, FetchError> {
        self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::Status(status, _) => FetchError::Http {
                label: label(artifact),
                url: url.to_owned(),
                status,
                hint: status_hint(status, &artifact.version, artifact.version_origin.as_ref()),
            },
            ureq::Error::Transport(t) => transport(artifact, url, transport_cause(&t)),
        })
    }

    /// A small text file (a checksum file).
    fn get_text(&self, artifact: &Artifact, url: &str) -> Result<String, FetchError> {
        let response = self.get(artifact, url)?;
        let mut text = String::new();
        response
            .into_reader()
            .take(MAX_CHECKSUM_FILE)
            .read_to_string(&mut text)
            .map_err(|e| transport(artifact, url, format!("reading the checksum file: {e}")))?;
        Ok(text)
    }

    /// A progress bar for one download (hidden unless asked for and stderr is a terminal).
    fn progress_bar(&self, artifact: &Artifact, total: Option<u64>) -> ProgressBar {
        if !self.progress || !io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = if total.is_some() {
            "{msg:20} {bytes:>10}/{total_bytes:10} [{bar:30}] {bytes_per_sec}"
        } else {
            "{msg:20} {bytes:>10} {spinner} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("{} {}", artifact.name, artifact.version));
        bar
    }

    /// Streams the artefact into `<cache_name>.partial` while hashing, verifies, then fsyncs
    /// and renames it into place.
    fn download(
        &self,
        cache: &Cache,
        artifact: &Artifact,
        expected: Expected,
    ) -> Result<Fetched, FetchError> {
        let url = artifact.url.as_str();
        let response = self.get(artifact, url)?;
        let total = response
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());

        cache.create_dir()?;
        let partial = cache.partial_file(artifact);
        let mut guard = PartialGuard {
            path: partial.clone(),
            done: false,
        };
        let file = File::create(&partial).map_err(io_err(&partial))?;
        let bar = self.progress_bar(artifact, total);
        let mut reader = HashingReader::new(bar.wrap_read(response.into_reader()));
        let mut writer = BufWriter::with_capacity(1 << 16, file);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // Read errors are the network's, write errors the disk's.
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(transport(
                        artifact,
                        url,
                        format!("download interrupted: {e}"),
                    ))
                }
            };
            writer.write_all(&buf[..n]).map_err(io_err(&partial))?;
        }
        bar.finish_and_clear();
        let file = writer
            .into_inner()
            .map_err(|e| io_err(&partial)(e.into_error()))?;
        let (actual, size, _) = reader.into_parts();
        let actual = Sha256Digest(actual);
        if let Some(total) = total {
            if size != total {
                return Err(transport(
                    artifact,
                    url,
                    format!("download ended after {size} of {total} bytes"),
                ));
            }
        }

        match expected {
            Expected::Known(expected) if expected != actual => {
                return Err(FetchError::DigestMismatch {
                    name: artifact.name.clone(),
                    url: url.to_owned(),
                    expected,
                    actual,
                });
            }
            Expected::Known(_) => {}
            Expected::FirstDownload => {
                let record = cache.digest_file(artifact);
                if self.lock.is_none() {
                    log::warn!(
                        "{} {}: no published SHA-256; recorded the digest of this download, \
                         sha256 {actual}, in {}",
                        artifact.display_name(),
                        artifact.version,
                        record.display()
                    );
                }
                cache.write_digest(&record, actual)?;
            }
        }

        file.sync_all().map_err(io_err(&partial))?;
        drop(file);
        let path = cache.file(artifact);
        fs::rename(&partial, &path).map_err(io_err(&path))?;
        guard.done = true;
        cache.sync_dir()?;
        Ok(Fetched {
            name: artifact.name.clone(),
            path,
            digest: actual,
            size,
            from_cache: false,
        })
    }
}

/// `name version`, as messages start.
fn label(artifact: &Artifact) -> String {
    format!("{} {}", artifact.display_name(), artifact.version)
}

/// A network failure for `artifact` at `url`.
fn transport(artifact: &Artifact, url: &str, cause: String) -> FetchError {
    FetchError::Transport {
        label: label(artifact),
        url: url.to_owned(),
        cause,
        mirror_key: artifact.mirror_key,
        cache_full: false,
    }
}

/// ureq's description without the URL (the message names it once): kind, message, cause.
fn transport_cause(t: &ureq::Transport) -> String {
    let mut out = t.kind().to_string();
    if let Some(message) = t.message() {
        out.push_str(": ");
        out.push_str(message);
    }
    if let Some(source) = std::error::Error::source(t) {
        out.push_str(": ");
        out.push_str(&source.to_string());
    }
    out
}

/// A digest that differs from the lock's.
fn lock_mismatch(
    artifact: &Artifact,
    l: Locked<'_>,
    what: String,
    found: Sha256Digest,
) -> FetchError {
    FetchError::LockMismatch(Box::new(LockMismatch {
        label: label(artifact),
        what,
        found,
        locked: l.entry.sha256,
        origin: l.entry.source_word(),
        mirror_key: artifact.mirror_key,
        lock_path: l.path.to_owned(),
    }))
}
