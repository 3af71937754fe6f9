//! The fetcher: download over HTTP(S) into the cache, verify, reuse verified cached files.
//!
//! A file is only ever used after its SHA-256 matched the expected digest: cached files are
//! re-hashed on every use, downloads go to `<cache_name>.partial` and are renamed into place
//! (after fsync) only once verified.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal as _, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::cache::{hash_file, io_err, Cache};
use super::catalog::{Artifact, ChecksumSource};
use super::checksum::{digest_in, Sha256Digest};
use super::FetchError;
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
    /// Accept files with no published or pinned digest, recording the digest seen.
    trust_unpinned: bool,
    /// Show a progress bar on a terminal.
    progress: bool,
    /// HTTP client with k8r's timeouts.
    agent: ureq::Agent,
}

/// What a file is checked against.
enum Expected {
    /// A known digest (published, pinned or recorded).
    Known(Sha256Digest),
    /// Unpinned, first use allowed: record what arrives.
    TrustOnFirstUse,
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
    /// A fetcher using `cache_dir` (see [`super::default_cache_dir`]), online, refusing
    /// unpinned files, without progress bar.
    pub fn new(cache_dir: PathBuf) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .user_agent(concat!("k8r-builder/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            cache_dir,
            offline: false,
            trust_unpinned: false,
            progress: false,
            agent,
        }
    }

    /// Never use the network; everything must already be in the cache.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Accept artefacts with no published or pinned digest (`--trust-unpinned-manifest`).
    pub fn trust_unpinned(mut self, trust: bool) -> Self {
        self.trust_unpinned = trust;
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

    /// Fetches every artefact in order. Offline, first checks that all are cached and lists
    /// every missing one at once.
    pub fn fetch_all(&self, artifacts: &[Artifact]) -> Result<Vec<Fetched>, FetchError> {
        if self.offline {
            self.check_offline(artifacts)?;
        }
        artifacts.iter().map(|a| self.fetch(a)).collect()
    }

    /// Checks, without the network, that every artefact is in the cache with a matching
    /// digest; the error lists all that are not.
    pub fn check_offline(&self, artifacts: &[Artifact]) -> Result<(), FetchError> {
        let mut missing = Vec::new();
        for artifact in artifacts {
            if let Err(reason) = self.cached(artifact)? {
                missing.push(reason);
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(FetchError::Offline { missing })
        }
    }

    /// Returns the verified cached file for `artifact`, downloading it first if needed.
    pub fn fetch(&self, artifact: &Artifact) -> Result<Fetched, FetchError> {
        let fetched = if self.offline {
            self.cached(artifact)?
                .map_err(|reason| FetchError::Offline {
                    missing: vec![reason],
                })?
        } else {
            self.fetch_online(artifact)?
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

    /// The cached, verified file without touching the network; `Ok(Err(reason))` says what is
    /// missing.
    fn cached(&self, artifact: &Artifact) -> Result<Result<Fetched, String>, FetchError> {
        let cache = self.cache();
        let label = format!("{} {}", artifact.name, artifact.version);
        let expected = match &artifact.checksum {
            ChecksumSource::Published { .. } => cache.read_digest(&cache.digest_file(artifact))?,
            ChecksumSource::Pinned(digest) => Some(*digest),
            ChecksumSource::Unpinned => cache.read_digest(&cache.tofu_file(artifact))?,
        };
        let Some(expected) = expected else {
            let why = match artifact.checksum {
                ChecksumSource::Unpinned => {
                    "no recorded digest; needs --trust-unpinned-manifest online"
                }
                _ => "no cached digest",
            };
            return Ok(Err(format!("{label} ({why})")));
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

    /// Online fetch: learn the expected digest, reuse a matching cached file, else download.
    fn fetch_online(&self, artifact: &Artifact) -> Result<Fetched, FetchError> {
        let cache = self.cache();
        let expected = self.expected_online(&cache, artifact)?;
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
        self.download(&cache, artifact, expected)
    }

    /// The digest the artefact must have, fetching the published checksum file if there is one.
    fn expected_online(&self, cache: &Cache, artifact: &Artifact) -> Result<Expected, FetchError> {
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
                let side = cache.digest_file(artifact);
                match cache.read_digest(&side)? {
                    Some(cached) if cached != published => {
                        return Err(FetchError::PublishedDigestChanged {
                            name: artifact.name.clone(),
                            cached,
                            published,
                            cached_path: side,
                        });
                    }
                    Some(_) => {}
                    None => cache.write_digest(&side, published)?,
                }
                Ok(Expected::Known(published))
            }
            ChecksumSource::Pinned(digest) => Ok(Expected::Known(*digest)),
            ChecksumSource::Unpinned => match cache.read_digest(&cache.tofu_file(artifact))? {
                Some(recorded) => Ok(Expected::Known(recorded)),
                None if self.trust_unpinned => Ok(Expected::TrustOnFirstUse),
                None => Err(FetchError::Unpinned {
                    name: artifact.name.clone(),
                    version: artifact.version.clone(),
                    url: artifact.url.clone(),
                }),
            },
        }
    }

    /// GET `url`, mapping failures to errors that name the artefact and URL.
    fn get(&self, artifact: &Artifact, url: &str) -> Result<ureq::Response, FetchError> {
        self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::Status(status, _) => FetchError::Http {
                name: artifact.name.clone(),
                url: url.to_owned(),
                status,
            },
            ureq::Error::Transport(t) => FetchError::Transport {
                name: artifact.name.clone(),
                url: url.to_owned(),
                message: t.to_string(),
            },
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
            .map_err(|e| FetchError::Transport {
                name: artifact.name.clone(),
                url: url.to_owned(),
                message: format!("reading the checksum file: {e}"),
            })?;
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
                    return Err(FetchError::Transport {
                        name: artifact.name.clone(),
                        url: url.to_owned(),
                        message: format!("download interrupted: {e}"),
                    })
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
                return Err(FetchError::Transport {
                    name: artifact.name.clone(),
                    url: url.to_owned(),
                    message: format!("download ended after {size} of {total} bytes"),
                });
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
            Expected::TrustOnFirstUse => {
                let record = cache.tofu_file(artifact);
                log::warn!(
                    "{} {}: no published or pinned SHA-256; trusting this download \
                     ({actual}) and recording it in {}",
                    artifact.name,
                    artifact.version,
                    record.display()
                );
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
