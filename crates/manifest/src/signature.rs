//! Signed manifests: `manifest.toml.minisig`, a [minisign] signature (Ed25519 over the
//! BLAKE2b-512 of the manifest's bytes, minisign's default "prehashed" mode) made by
//! `k8r-builder assemble` with the build's secret key, and the list of public keys a card
//! trusts. The manifest names every artefact's size and SHA-256, so a verified signature
//! vouches for the whole build.
//!
//! One rule, used by the recovery installer before it writes the working partitions and by
//! the node agent's `update-image` before it stages anything ([`verify`]):
//!
//! | card trusts | signature | result |
//! | --- | --- | --- |
//! | no key | none | [`Verdict::Unsigned`]: the card works as before signatures existed |
//! | no key | present | [`Verdict::NotChecked`]: shown, not checked (the card has nothing to check it with) |
//! | keys | none | [`SignatureError::Unsigned`] |
//! | keys | by another key | [`SignatureError::UntrustedKey`] |
//! | keys | by a trusted key, bytes or trusted comment changed | [`SignatureError::Invalid`] |
//! | keys | by a trusted key, intact | [`Verdict::Signed`] |
//!
//! The files are minisign's own formats, so `minisign -Vm manifest.toml -p key.pub` checks a
//! build by hand. Pure: bytes in, a verdict out.
//!
//! [minisign]: https://jedisct1.github.io/minisign/

use std::fmt;

use ct_codecs::{Base64, Decoder as _};

use crate::MANIFEST_FILE;

/// The signature's file name, beside `manifest.toml` (minisign's default name for it).
pub const SIGNATURE_FILE: &str = "manifest.toml.minisig";

/// The largest signature file accepted (minisign's are about 300 bytes; the untrusted and
/// trusted comments are the only variable parts).
pub const SIGNATURE_MAX: usize = 4096;

/// A minisign key ID: 8 bytes, shown as minisign shows it (16 upper-case hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The key ID from its 8 bytes, as minisign stores them.
    pub const fn from_bytes(bytes: [u8; 8]) -> KeyId {
        KeyId(bytes)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // minisign prints the little-endian u64 of the stored bytes.
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A list of key IDs, shown as `A, B` (or `no key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIds(pub Vec<KeyId>);

impl fmt::Display for KeyIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no key");
        }
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// One trusted minisign public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    id: KeyId,
    base64: String,
    key: minisign_verify::PublicKey,
}

impl TrustedKey {
    /// A public key from its base64 line (the second line of a minisign `.pub` file).
    ///
    /// # Errors
    /// A one-line reason.
    pub fn from_base64(line: &str) -> Result<TrustedKey, String> {
        let line = line.trim();
        let bytes = Base64::decode_to_vec(line, None)
            .map_err(|_| "not base64 (a minisign public key is one base64 line)".to_owned())?;
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|e| match e {
            minisign_verify::Error::UnsupportedAlgorithm => {
                "not an Ed25519 minisign public key".to_owned()
            }
            _ => format!(
                "{} bytes, a minisign public key has 42 (is this a secret key or a signature?)",
                bytes.len()
            ),
        })?;
        let id = key_id_at(&bytes, 2).ok_or("too short for a minisign public key")?;
        Ok(TrustedKey {
            id,
            base64: line.to_owned(),
            key,
        })
    }

    /// Its key ID.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Its base64 line.
    pub fn base64(&self) -> &str {
        &self.base64
    }

    /// The key as a minisign `.pub` file (what `minisign -p` reads).
    pub fn render_pub(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.id, self.base64
        )
    }
}

/// The public keys a card trusts: in minisign's `.pub` format, one or more concatenated
/// (`cat old.pub new.pub`), `#` comments allowed. An empty list: the card checks no
/// signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(Vec<TrustedKey>);

/// Why a key list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct KeyListError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl TrustedKeys {
    /// A list of `keys`; a key given twice is kept once.
    ///
    /// # Errors
    /// Two different keys with the same key ID (line 0).
    pub fn new(keys: impl IntoIterator<Item = TrustedKey>) -> Result<TrustedKeys, KeyListError> {
        let mut list = TrustedKeys::default();
        for key in keys {
            list.push(key, 0)?;
        }
        Ok(list)
    }

    fn push(&mut self, key: TrustedKey, line: usize) -> Result<(), KeyListError> {
        match self.0.iter().find(|k| k.id == key.id) {
            Some(k) if k.key == key.key => Ok(()),
            Some(_) => Err(KeyListError {
                line,
                reason: format!("a second, different key with key ID {}", key.id),
            }),
            None => {
                self.0.push(key);
                Ok(())
            }
        }
    }

    /// Parses a key list: `untrusted comment:` lines, `#` comments and blank lines are
    /// skipped, every other line is one key's base64.
    ///
    /// # Errors
    /// The first line that is not a key, with the reason.
    pub fn parse(text: &str) -> Result<TrustedKeys, KeyListError> {
        let mut list = TrustedKeys::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("untrusted comment:") {
                continue;
            }
            let key = TrustedKey::from_base64(line).map_err(|reason| KeyListError {
                line: i + 1,
                reason,
            })?;
            list.push(key, i + 1)?;
        }
        Ok(list)
    }

    /// The list in minisign's `.pub` format, one key after the other (a list of one key is a
    /// `.pub` file `minisign -p` reads).
    pub fn render(&self) -> String {
        self.0.iter().map(TrustedKey::render_pub).collect()
    }

    /// No key: signatures are not checked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.0
    }

    /// Their IDs, in list order.
    pub fn ids(&self) -> KeyIds {
        KeyIds(self.0.iter().map(|k| k.id).collect())
    }

    /// Whether the key with `id` is in the list.
    pub fn contains(&self, id: KeyId) -> bool {
        self.0.iter().any(|k| k.id == id)
    }
}

/// What [`verify`] found acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The card trusts no key and the build has no signature.
    Unsigned,
    /// The build is signed by `key`, but the card trusts no key, so nothing was checked.
    NotChecked {
        /// The signature's key ID.
        key: KeyId,
    },
    /// Signed by `key`, one of the card's trusted keys, and intact.
    Signed {
        /// The signing key's ID.
        key: KeyId,
        /// The signature's trusted comment (signed too: `timestamp:… file:… build:…`).
        trusted_comment: String,
    },
}

impl Verdict {
    /// One line for `status` and `inspect`, with what the card trusts.
    pub fn describe(&self, trusted: &TrustedKeys) -> String {
        match self {
            Verdict::Unsigned => "unsigned (this card trusts no signing key)".to_owned(),
            Verdict::NotChecked { key } => {
                format!("signed by key ID {key}, not checked: this card trusts no signing key")
            }
            Verdict::Signed {
                key,
                trusted_comment,
            } => format!(
                "signed by key ID {key} ({trusted_comment}); this card trusts {}",
                trusted.ids()
            ),
        }
    }
}

/// Why a manifest's signature was refused. Each message names the manifest, the keys and the
/// fix; the caller adds where the files are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The card trusts keys, the build has no signature.
    #[error(
        "{MANIFEST_FILE} is not signed (no {SIGNATURE_FILE} beside it), and this card trusts \
         key ID {trusts}: sign the build (SIGNING_KEY in variables.cfg, or `k8r-builder \
         assemble --signing-key`) and publish {SIGNATURE_FILE} with it"
    )]
    Unsigned {
        /// The card's keys.
        trusts: KeyIds,
    },
    /// The signature file is not a minisign signature.
    #[error(
        "{SIGNATURE_FILE} is not a minisign signature ({reason}): publish the {SIGNATURE_FILE} \
         that `k8r-builder assemble` wrote beside this {MANIFEST_FILE}"
    )]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// Signed by a key the card does not trust.
    #[error(
        "{MANIFEST_FILE} is signed by key ID {key}, this card trusts {trusts}: sign the build \
         with one of those keys, or make the card trust {key} (`k8r-builder inject \
         --trusted-key`, or a build signed by a trusted key that lists it in TRUSTED_KEYS)"
    )]
    UntrustedKey {
        /// The signature's key ID.
        key: KeyId,
        /// The card's keys.
        trusts: KeyIds,
    },
    /// The signature does not match the bytes (or its trusted comment was changed).
    #[error(
        "{SIGNATURE_FILE} (key ID {key}) does not match {MANIFEST_FILE}: the manifest or the \
         signature's trusted comment was changed after signing, or the two files are from \
         different builds; publish the build's files together, as `k8r-builder assemble` \
         wrote them"
    )]
    Invalid {
        /// The signature's key ID.
        key: KeyId,
    },
    /// A legacy (not prehashed) minisign signature.
    #[error(
        "{SIGNATURE_FILE} (key ID {key}) is a legacy minisign signature (minisign -S -l): \
         sign with k8r-builder or a current minisign's default mode"
    )]
    Legacy {
        /// The signature's key ID.
        key: KeyId,
    },
}

/// The signature's key ID and whether it is prehashed, read from its second line.
fn signature_head(signature: &str) -> Result<(KeyId, bool), SignatureError> {
    let malformed = |reason: &str| SignatureError::Malformed {
        reason: reason.to_owned(),
    };
    let line = signature
        .lines()
        .nth(1)
        .ok_or_else(|| malformed("fewer than 4 lines"))?;
    let bytes = Base64::decode_to_vec(line.trim(), None)
        .map_err(|_| malformed("its second line is not base64"))?;
    if bytes.len() != 74 {
        return Err(malformed("its second line is not a signature"));
    }
    let prehashed = match (bytes[0], bytes[1]) {
        (b'E', b'D') => true,
        (b'E', b'd') => false,
        _ => return Err(malformed("not an Ed25519 signature")),
    };
    let id = key_id_at(&bytes, 2).ok_or_else(|| malformed("too short"))?;
    Ok((id, prehashed))
}

fn key_id_at(bytes: &[u8], at: usize) -> Option<KeyId> {
    let id: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(KeyId(id))
}

/// Checks `signature` (the text of `manifest.toml.minisig`, `None` when there is none) over
/// the exact bytes of `manifest` against the card's `trusted` keys (the table in the module
/// documentation).
///
/// # Errors
/// Why the manifest must not be installed or staged.
pub fn verify(
    manifest: &[u8],
    signature: Option<&str>,
    trusted: &TrustedKeys,
) -> Result<Verdict, SignatureError> {
    let Some(signature) = signature else {
        return if trusted.is_empty() {
            Ok(Verdict::Unsigned)
        } else {
            Err(SignatureError::Unsigned {
                trusts: trusted.ids(),
            })
        };
    };
    if signature.len() > SIGNATURE_MAX {
        return Err(SignatureError::Malformed {
            reason: format!("{} bytes, more than {SIGNATURE_MAX}", signature.len()),
        });
    }
    let (key, prehashed) = signature_head(signature)?;
    if trusted.is_empty() {
        return Ok(Verdict::NotChecked { key });
    }
    let Some(trusted_key) = trusted.0.iter().find(|k| k.id == key) else {
        return Err(SignatureError::UntrustedKey {
            key,
            trusts: trusted.ids(),
        });
    };
    if !prehashed {
        return Err(SignatureError::Legacy { key });
    }
    let sig =
        minisign_verify::Signature::decode(signature).map_err(|e| SignatureError::Malformed {
            reason: e.to_string(),
        })?;
    trusted_key
        .key
        .verify(manifest, &sig, false)
        .map_err(|e| match e {
            minisign_verify::Error::UnexpectedAlgorithm => SignatureError::Legacy { key },
            _ => SignatureError::Invalid { key },
        })?;
    Ok(Verdict::Signed {
        key,
        trusted_comment: sig.trusted_comment().to_owned(),
    })
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
