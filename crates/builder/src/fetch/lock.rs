//! The lock file (`variables.lock` beside `variables.cfg`): the SHA-256 of every download a
//! build trusts, the way `Cargo.lock` records dependencies. Pure: parse, render, look up and
//! compare; reading and writing the file is in [`super::lock_io`].
//!
//! One `[[artifact]]` per download: name, version, url, sha256 and where the digest came from
//! (`published`: the upstream checksum file at `checksum_url`; `first-download`: upstream
//! publishes none, this is the digest of the first download; `pinned`: k8r's own table).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::catalog::{Artifact, ChecksumSource};
use super::checksum::Sha256Digest;

/// The `version` of the lock file format this builder writes and reads.
pub const LOCK_FORMAT: u32 = 1;

/// Where the digest of a locked download came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestSource {
    /// The upstream checksum file at this URL.
    Published {
        /// URL of the checksum file.
        checksum_url: String,
    },
    /// No digest is published: the digest of the first download.
    FirstDownload,
    /// k8r's pin table.
    Pinned,
}

/// One locked download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// [`Artifact::display_name`], e.g. `kubeadm` or `calico.yaml`.
    pub name: String,
    /// Version without `v`.
    pub version: String,
    /// Where it was downloaded from.
    pub url: String,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
    /// Where that digest came from.
    pub source: DigestSource,
}

impl LockEntry {
    /// The entry for `artifact` whose verified bytes have `sha256`.
    pub fn for_artifact(artifact: &Artifact, sha256: Sha256Digest) -> Self {
        let source = match &artifact.checksum {
            ChecksumSource::Published { url, .. } => DigestSource::Published {
                checksum_url: url.clone(),
            },
            ChecksumSource::Pinned(_) => DigestSource::Pinned,
            ChecksumSource::Unpinned => DigestSource::FirstDownload,
        };
        Self {
            name: artifact.display_name().to_owned(),
            version: artifact.version.clone(),
            url: artifact.url.clone(),
            sha256,
            source,
        }
    }

    /// `published`, `first-download` or `pinned`, as in the file.
    pub fn source_word(&self) -> &'static str {
        match self.source {
            DigestSource::Published { .. } => "published",
            DigestSource::FirstDownload => "first-download",
            DigestSource::Pinned => "pinned",
        }
    }
}

/// The whole lock: entries sorted by name, then version, one per name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    /// Sorted, unique names.
    entries: Vec<LockEntry>,
}

/// Why a lock file's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockParseError {
    /// Not TOML of the expected shape.
    #[error("{0}")]
    Syntax(String),
    /// Another format version.
    #[error("format version {0}, this k8r-builder reads version {LOCK_FORMAT}")]
    Format(u32),
    /// A value that does not fit.
    #[error("entry {name:?}: {problem}")]
    Entry {
        /// The entry's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: u32,
    #[serde(default)]
    artifact: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    version: String,
    url: String,
    sha256: String,
    digest: String,
    checksum_url: Option<String>,
}

/// `variables.cfg` → `variables.lock`, `site.toml` → `site.lock`: same directory, the
/// configuration's file stem and `.lock`.
pub fn lock_path_for(config: &Path) -> PathBuf {
    config.with_extension("lock")
}

/// A TOML basic string.
fn quote(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

impl Lock {
    /// A lock of `entries` (sorted; a later entry of the same name replaces an earlier one).
    pub fn new(entries: impl IntoIterator<Item = LockEntry>) -> Self {
        let mut out: Vec<LockEntry> = Vec::new();
        for entry in entries {
            out.retain(|e| e.name != entry.name);
            out.push(entry);
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Self { entries: out }
    }

    /// The entries, sorted by name.
    pub fn entries(&self) -> &[LockEntry] {
        &self.entries
    }

    /// The entry for this artefact name, whatever its version.
    pub fn named(&self, name: &str) -> Option<&LockEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry that vouches for `artifact`: same name and version (the URL may differ: a
    /// release has one digest whichever mirror serves it).
    pub fn entry_for(&self, artifact: &Artifact) -> Option<&LockEntry> {
        self.named(artifact.display_name())
            .filter(|e| e.version == artifact.version)
    }

    /// Parses the text of a lock file.
    pub fn parse(text: &str) -> Result<Self, LockParseError> {
        let raw: RawLock =
            toml::from_str(text).map_err(|e| LockParseError::Syntax(e.message().to_owned()))?;
        if raw.version != LOCK_FORMAT {
            return Err(LockParseError::Format(raw.version));
        }
        let mut entries = Vec::new();
        for e in raw.artifact {
            let bad = |problem: String| LockParseError::Entry {
                name: e.name.clone(),
                problem,
            };
            let sha256 = e
                .sha256
                .parse()
                .map_err(|_| bad(format!("sha256 {:?} is not 64 hex digits", e.sha256)))?;
            let source = match (e.digest.as_str(), &e.checksum_url) {
                ("published", Some(url)) => DigestSource::Published {
                    checksum_url: url.clone(),
                },
                ("published", None) => {
                    return Err(bad("digest = \"published\" needs checksum_url".into()))
                }
                ("first-download", _) => DigestSource::FirstDownload,
                ("pinned", _) => DigestSource::Pinned,
                (other, _) => {
                    return Err(bad(format!(
                        "digest {other:?}: expected published, first-download or pinned"
                    )))
                }
            };
            if entries.iter().any(|x: &LockEntry| x.name == e.name) {
                return Err(bad("listed twice".into()));
            }
            entries.push(LockEntry {
                name: e.name.clone(),
                version: e.version.clone(),
                url: e.url.clone(),
                sha256,
                source,
            });
        }
        Ok(Self::new(entries))
    }

    /// The file's text: a header saying what it is, then one block per entry (deterministic).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Written by k8r-builder assemble: the SHA-256 of every download this build trusts.\n\
             # Commit this file with your configuration (it works like Cargo.lock): later builds\n\
             # check every download against it, and `assemble --locked` refuses to build anything\n\
             # it does not list. If an upstream file changed for a reason you checked, delete its\n\
             # entry and build again to record the new digest.\n",
        );
        out.push_str(&format!("version = {LOCK_FORMAT}\n"));
        for e in &self.entries {
            out.push_str("\n[[artifact]]\n");
            out.push_str(&format!("name = {}\n", quote(&e.name)));
            out.push_str(&format!("version = {}\n", quote(&e.version)));
            out.push_str(&format!("url = {}\n", quote(&e.url)));
            out.push_str(&format!("sha256 = \"{}\"\n", e.sha256));
            match &e.source {
                DigestSource::Published { checksum_url } => {
                    out.push_str("digest = \"published\"\n");
                    out.push_str(&format!("checksum_url = {}\n", quote(checksum_url)));
                }
                DigestSource::FirstDownload => out.push_str(
                    "# No digest is published for this file: this is the digest of its first download.\n\
                     digest = \"first-download\"\n",
                ),
                DigestSource::Pinned => out.push_str("digest = \"pinned\"\n"),
            }
        }
        out
    }

    /// For `--locked`: every artefact the build needs that the lock does not list, or lists
    /// with another version or URL, one line each (empty when the lock covers the build).
    pub fn locked_problems(&self, artifacts: &[Artifact]) -> Vec<String> {
        artifacts
            .iter()
            .filter_map(|a| {
                let label = format!("{} {}", a.display_name(), a.version);
                match self.named(a.display_name()) {
                    None => Some(format!("{label} (not in the lock)")),
                    Some(e) if e.version != a.version => {
                        Some(format!("{label} (the lock has version {})", e.version))
                    }
                    Some(e) if e.url != a.url => Some(format!(
                        "{label} (the lock has URL {}, the build uses {})",
                        e.url, a.url
                    )),
                    Some(_) => None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::catalog::{node_artifacts, CniManifest, Mirrors, NodeSpec};
    use super::*;

    fn artifacts() -> Vec<Artifact> {
        let spec = NodeSpec {
            arch: "arm64".into(),
            k8s: "1.31.2".into(),
            containerd: "2.1.4".into(),
            runc: "1.3.0".into(),
            cni_plugins: "1.7.1".into(),
            crictl: "1.31.0".into(),
            cni: CniManifest::Calico("3.30.2".into()),
        };
        node_artifacts(&spec, &Mirrors::default()).unwrap()
    }

    fn digest(n: u8) -> Sha256Digest {
        Sha256Digest([n; 32])
    }

    fn full_lock() -> Lock {
        // Reverse order on purpose: the lock sorts.
        Lock::new(
            artifacts()
                .iter()
                .rev()
                .enumerate()
                .map(|(i, a)| LockEntry::for_artifact(a, digest(u8::try_from(i).unwrap()))),
        )
    }

    #[test]
    fn lock_path_is_beside_the_config_with_its_stem() {
        assert_eq!(
            lock_path_for(Path::new("/x/variables.cfg")),
            Path::new("/x/variables.lock")
        );
        assert_eq!(
            lock_path_for(Path::new("conf/site.toml")),
            Path::new("conf/site.lock")
        );
        assert_eq!(lock_path_for(Path::new("vars")), Path::new("vars.lock"));
    }

    #[test]
    fn render_parse_round_trip_is_sorted_and_deterministic() {
        let lock = full_lock();
        let text = lock.render();
        assert!(text.starts_with("# Written by k8r-builder"), "{text}");
        assert!(text.contains("Commit this file"), "{text}");
        let names: Vec<&str> = lock.entries().iter().map(|e| e.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(names.contains(&"calico.yaml"), "{names:?}");
        let parsed = Lock::parse(&text).unwrap();
        assert_eq!(parsed, lock);
        assert_eq!(parsed.render(), text, "render is deterministic");
        let calico = parsed.named("calico.yaml").unwrap();
        assert_eq!(calico.source, DigestSource::FirstDownload);
        assert_eq!(calico.source_word(), "first-download");
        let kubeadm = parsed.named("kubeadm").unwrap();
        assert_eq!(
            kubeadm.source,
            DigestSource::Published {
                checksum_url: "https://dl.k8s.io/release/v1.31.2/bin/linux/arm64/kubeadm.sha256"
                    .into()
            }
        );
        assert!(text.contains("digest = \"published\"\nchecksum_url = \"https://dl.k8s.io"));
    }

    #[test]
    fn bad_lock_files_are_refused_with_the_reason() {
        for (text, want) in [
            ("version = 2\n", "format version 2"),
            ("version = 1\nfoo = 1\n", "unknown field"),
            (
                "version = 1\n[[artifact]]\nname = \"kubeadm\"\nversion = \"1\"\nurl = \"u\"\nsha256 = \"abc\"\ndigest = \"published\"\nchecksum_url = \"c\"\n",
                "\"kubeadm\": sha256 \"abc\" is not 64 hex digits",
            ),
            (
                &format!("version = 1\n[[artifact]]\nname = \"x\"\nversion = \"1\"\nurl = \"u\"\nsha256 = \"{}\"\ndigest = \"guessed\"\n", digest(1)),
                "digest \"guessed\"",
            ),
        ] {
            let err = Lock::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn entry_for_matches_name_and_version_not_url() {
        let lock = full_lock();
        let mut a = artifacts().pop().unwrap();
        assert!(lock.entry_for(&a).is_some());
        a.url = "http://mirror.lan/calico.yaml".into();
        assert!(lock.entry_for(&a).is_some(), "another mirror, same release");
        a.version = "3.30.3".into();
        assert!(lock.entry_for(&a).is_none());
    }

    #[test]
    fn locked_lists_every_missing_or_different_entry() {
        let all = artifacts();
        assert!(full_lock().locked_problems(&all).is_empty());
        let kept = full_lock()
            .entries()
            .iter()
            .filter(|e| e.name != "crictl" && e.name != "calico.yaml")
            .cloned()
            .map(|mut e| {
                if e.name == "runc" {
                    e.version = "1.2.9".into();
                }
                if e.name == "kubelet" {
                    e.url = "http://old.mirror/kubelet".into();
                }
                e
            })
            .collect::<Vec<_>>();
        let problems = Lock::new(kept).locked_problems(&all);
        assert_eq!(
            problems,
            [
                "kubelet 1.31.2 (the lock has URL http://old.mirror/kubelet, the build uses \
                 https://dl.k8s.io/release/v1.31.2/bin/linux/arm64/kubelet)",
                "runc 1.3.0 (the lock has version 1.2.9)",
                "crictl 1.31.0 (not in the lock)",
                "calico.yaml 3.30.2 (not in the lock)",
            ]
        );
        assert_eq!(Lock::default().locked_problems(&all).len(), all.len());
    }
}
