//! The signing keys a card trusts, and where each copy lives.
//!
//! ```text
//! p1  k8r/trusted-keys                 what the installer and `update-image` check against
//! p1  k8r/images/<id>/manifest.toml.minisig   each stored build's signature
//! p3  /usr/lib/k8r/trusted-keys        the list the build was made with (TRUSTED_KEYS)
//! ```
//!
//! The card's list on p1 is the one that counts. It is written by `k8r-builder assemble` (the
//! build's list) and `inject` (a card's own list), and by the node agent when a trial
//! commits: a build that carries a list of its own (its root's copy, covered by its signed
//! manifest through `image.img.xz`'s digest) replaces the card's list then — so a new key
//! list takes effect for the update after the build that brought it is installed and healthy,
//! and a failed trial rolls back under the old list. The record says for which build the list
//! is in force (`build=`): a list `inject` wrote for the build on the card is not replaced
//! when that same build commits. A build without a list never empties the card's: a keyed
//! card never becomes unkeyed through an update.
//!
//! A missing p1 file means "no key": the card works as before signatures existed. A file that
//! exists but cannot be read as a key list is an error, never "no key" (fail closed).

use std::io;
use std::path::PathBuf;

use k8r_manifest::signature::{KeyListError, TrustedKeys};

/// The card's trusted keys' file name in [`crate::recovery::K8R_DIR`].
pub const TRUSTED_KEYS_FILE: &str = "trusted-keys";

/// The largest trusted keys file accepted (about 100 bytes a key).
pub const TRUSTED_KEYS_MAX: usize = 16 * 1024;

/// The card's trusted keys and the build they are in force for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardTrust {
    /// The keys (none: signatures are not checked).
    pub keys: TrustedKeys,
    /// The build whose commit (or whose card, for `assemble` and `inject`) put this list in
    /// force.
    pub since_build: Option<String>,
}

/// Why the card's trusted key list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The file is not a key list.
    #[error(
        "{path}: {reason}: the card's trusted key list is damaged, so nothing is installed or \
         staged; write it again (`k8r-builder inject --trusted-key KEY.pub`)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl CardTrust {
    /// Parses the file: an optional `build=<id>` line, then the keys in minisign's `.pub`
    /// format ([`TrustedKeys::parse`]). Does not touch disk.
    ///
    /// # Errors
    /// A line that is neither, or a bad build id.
    pub fn parse(text: &str) -> Result<CardTrust, KeyListError> {
        let mut since_build = None;
        let mut keys = String::with_capacity(text.len());
        for (i, line) in text.lines().enumerate() {
            match line.trim().strip_prefix("build=") {
                Some(id) if k8r_manifest::is_build_id(id.trim()) => {
                    since_build = Some(id.trim().to_owned());
                    keys.push('\n');
                }
                Some(id) => {
                    return Err(KeyListError {
                        line: i + 1,
                        reason: format!("{id:?} is not a build id"),
                    })
                }
                None => {
                    keys.push_str(line);
                    keys.push('\n');
                }
            }
        }
        Ok(CardTrust {
            keys: TrustedKeys::parse(&keys)?,
            since_build,
        })
    }

    /// The file's text; [`CardTrust::parse`] reads it back.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# k8r: the signing keys this card trusts (minisign public keys). A build is installed\n\
             # or staged only when its manifest.toml.minisig verifies with one of them.\n",
        );
        if let Some(b) = &self.since_build {
            out.push_str(&format!("build={b}\n"));
        }
        out.push_str(&self.keys.render());
        out
    }

    /// The card's list once `build`, which carries `build_keys`, has committed: `None` when
    /// it stays as it is (this list is already the one for `build`, or the build carries no
    /// list). Does not touch disk.
    #[must_use]
    pub fn after_commit(&self, build: &str, build_keys: &TrustedKeys) -> Option<CardTrust> {
        if self.since_build.as_deref() == Some(build) || build_keys.is_empty() {
            return None;
        }
        Some(CardTrust {
            keys: build_keys.clone(),
            since_build: Some(build.to_owned()),
        })
    }
}

/// Reads a trusted keys file at `path`; a missing one is the empty list.
///
/// # Errors
/// It exists but cannot be read or is not a key list.
pub fn read_trust(path: PathBuf) -> Result<CardTrust, TrustError> {
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(CardTrust::default()),
        Err(source) => return Err(TrustError::Io { path, source }),
    };
    if bytes.len() > TRUSTED_KEYS_MAX {
        return Err(TrustError::Invalid {
            path,
            reason: format!("{} bytes, more than {TRUSTED_KEYS_MAX}", bytes.len()),
        });
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            return Err(TrustError::Invalid {
                path,
                reason: "not UTF-8 text (the file is torn)".into(),
            })
        }
    };
    CardTrust::parse(&text).map_err(|e| TrustError::Invalid {
        path,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two real minisign public keys: no signing is needed here.
    const KEY_A: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    const KEY_B: &str = "RWSi+d7Q6zB/s1jXFk5cSI5zoCCLdOzHuVW+xw+74EIOzPuZ1thS00oT";

    fn keys(lines: &[&str]) -> TrustedKeys {
        TrustedKeys::parse(&lines.join("\n")).expect("keys")
    }

    #[test]
    fn the_record_round_trips_with_its_build() {
        let t = CardTrust {
            keys: keys(&[KEY_A, KEY_B]),
            since_build: Some("b1".into()),
        };
        assert_eq!(CardTrust::parse(&t.render()).expect("parse"), t);
        let plain = CardTrust::parse(KEY_A).expect("no build line");
        assert_eq!(plain.since_build, None);
        let err = CardTrust::parse("build=../x\n").expect_err("bad id");
        assert_eq!(err.line, 1);
    }

    #[test]
    fn a_commit_brings_in_the_builds_list_once_and_never_empties_the_card() {
        let card = CardTrust {
            keys: keys(&[KEY_A]),
            since_build: Some("b1".into()),
        };
        // The build the list was written for (assemble, inject): kept.
        assert_eq!(card.after_commit("b1", &keys(&[KEY_B])), None);
        // A new build with its own list: in force from now on, for that build.
        let next = card
            .after_commit("b2", &keys(&[KEY_A, KEY_B]))
            .expect("new");
        assert_eq!(next.keys, keys(&[KEY_A, KEY_B]));
        assert_eq!(next.since_build.as_deref(), Some("b2"));
        assert_eq!(next.after_commit("b2", &keys(&[KEY_B])), None);
        // A build without a list leaves the card's.
        assert_eq!(card.after_commit("b3", &TrustedKeys::default()), None);
    }

    #[test]
    fn a_missing_file_is_no_key_and_a_damaged_one_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(TRUSTED_KEYS_FILE);
        assert_eq!(
            read_trust(path.clone()).expect("missing"),
            CardTrust::default()
        );
        std::fs::write(&path, "garbage\n").expect("write");
        let err = read_trust(path.clone()).expect_err("damaged");
        assert!(
            err.to_string().contains("line 1") && err.to_string().contains("inject"),
            "{err}"
        );
        std::fs::write(&path, [0xff, 0xfe]).expect("write");
        assert!(read_trust(path).is_err());
    }
}
