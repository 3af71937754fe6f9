//! Signing builds: `k8r-builder keygen`, the build's secret key, the signature of
//! `manifest.toml`, and the public key files the card is told to trust. minisign's own file
//! formats throughout, so `minisign -Vm manifest.toml -p k8r-signing.pub` checks a build.
//!
//! Keys from `keygen` are not password-protected: builds run unattended (CI, `cargo xtask
//! build-image`), and a key file that needs a password at every build ends up with the
//! password beside it. Protect the file instead (it is written 0600; keep it off the web
//! server and out of the repository). A password-protected key made with `minisign -G` works
//! too when `assemble` runs on a terminal (minisign asks for the password).

use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ct_codecs::{Base64, Decoder as _};
use k8r_config::{ConfigError, SettingPath};
use k8r_manifest::signature::{KeyId, TrustedKey, TrustedKeys};
use minisign::{KeyPair, PublicKey, SecretKey, SecretKeyBox};

/// `keygen`'s secret key file name.
pub const SECRET_KEY_FILE: &str = "k8r-signing.key";
/// `keygen`'s public key file name.
pub const PUBLIC_KEY_FILE: &str = "k8r-signing.pub";

/// Why a key could not be made, read or used. Each names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// `keygen` would overwrite a key.
    #[error("{path} exists: keygen never overwrites a key (builds signed with it would no longer be \
             verifiable by cards that trust it); choose another --out directory, or delete the file \
             first if you really mean to replace the key")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The secret key file is not a minisign secret key.
    #[error("{0}")]
    BadKey(Box<ConfigError>),
    /// minisign failed.
    #[error("{what}: {message}")]
    Minisign {
        /// What was being done.
        what: String,
        /// minisign's message.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SigningError + '_ {
    move |source| SigningError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn minisign_err(what: impl Into<String>) -> impl FnOnce(minisign::PError) -> SigningError {
    let what = what.into();
    move |e| SigningError::Minisign {
        what,
        message: e.to_string(),
    }
}

/// What `keygen` wrote.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The secret key file (mode 0600).
    pub secret: PathBuf,
    /// The public key file.
    pub public: PathBuf,
    /// The key's ID.
    pub id: KeyId,
}

/// Makes a passwordless minisign key pair in `dir`: [`SECRET_KEY_FILE`] (0600) and
/// [`PUBLIC_KEY_FILE`]. Never overwrites either.
///
/// # Errors
/// A key file exists already, or writing failed.
pub fn keygen(dir: &Path) -> Result<NewKey, SigningError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let secret = dir.join(SECRET_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    for path in [&secret, &public] {
        if path.exists() {
            return Err(SigningError::Exists { path: path.clone() });
        }
    }
    let pair = KeyPair::generate_unencrypted_keypair().map_err(minisign_err("making a key"))?;
    let id = trusted_key(&pair.pk)?.id();
    let secret_text = pair
        .sk
        .to_box(Some(&format!("k8r signing key {id} (no password)")))
        .map_err(minisign_err("encoding the secret key"))?
        .into_string();
    write_new(&secret, secret_text.as_bytes(), 0o600)?;
    let public_text = trusted_key(&pair.pk)?.render_pub();
    if let Err(e) = write_new(&public, public_text.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&secret);
        return Err(e);
    }
    Ok(NewKey { secret, public, id })
}

/// Creates `path` (refusing an existing one) with `mode`, writes and syncs it.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), SigningError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => SigningError::Exists {
                path: path.to_path_buf(),
            },
            _ => io_err(path)(e),
        })?;
    file.write_all(data).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn trusted_key(pk: &PublicKey) -> Result<TrustedKey, SigningError> {
    TrustedKey::from_base64(&pk.to_base64()).map_err(|message| SigningError::Minisign {
        what: "reading back the public key".into(),
        message,
    })
}

/// The build's secret key, loaded. Its `Debug` never shows the key.
pub struct SigningKey {
    sk: SecretKey,
    pk: PublicKey,
    public: TrustedKey,
    path: PathBuf,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.public.id())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads the secret key `setting` names; errors say `file:line: KEY="…"` of the setting
    /// and what to do. A password-protected key is asked for its password on a terminal.
    ///
    /// # Errors
    /// The file is missing, not a minisign secret key, or protected with no terminal to ask.
    pub fn load(setting: &SettingPath, config: &Path) -> Result<SigningKey, SigningError> {
        let bad = |expected: String, hint: &str| {
            SigningError::BadKey(Box::new(ConfigError {
                file: config.to_path_buf(),
                line: setting.line,
                key: Some(setting.key.clone()),
                value: Some(setting.path.display().to_string()),
                expected,
                hint: Some(hint.to_owned()),
            }))
        };
        let text = std::fs::read_to_string(&setting.path).map_err(|e| {
            bad(
                format!("a readable minisign secret key file ({e})"),
                "make one with `k8r-builder keygen --out DIR`, or fix the path",
            )
        })?;
        let not_a_key = |why: &str| {
            bad(
                format!("a minisign secret key ({why})"),
                "give the .key file `k8r-builder keygen` or `minisign -G` wrote, not a .pub or .minisig",
            )
        };
        let encoded = text
            .lines()
            .nth(1)
            .ok_or_else(|| not_a_key("fewer than 2 lines"))?;
        let raw = Base64::decode_to_vec(encoded.trim(), None)
            .map_err(|_| not_a_key("its second line is not base64"))?;
        let parsed = SecretKey::from_bytes(&raw).map_err(|_| not_a_key("too short"))?;
        let boxed = SecretKeyBox::from_string(&text).map_err(|_| not_a_key("not a key box"))?;
        let sk = if parsed.is_encrypted() {
            if !std::io::stdin().is_terminal() {
                return Err(bad(
                    "a passwordless secret key, or a terminal to ask this key's password on".into(),
                    "for unattended builds make a passwordless key with `k8r-builder keygen`, or run \
                     assemble from a terminal",
                ));
            }
            eprintln!("{} is password-protected", setting.path.display());
            SecretKey::from_box(boxed, None)
                .map_err(|e| bad(format!("the right password ({e})"), "try again"))?
        } else {
            SecretKey::from_unencrypted_box(boxed).map_err(|e| not_a_key(&e.to_string()))?
        };
        let pk = PublicKey::from_secret_key(&sk).map_err(|e| not_a_key(&e.to_string()))?;
        let public = trusted_key(&pk)?;
        Ok(SigningKey {
            sk,
            pk,
            public,
            path: setting.path.clone(),
        })
    }

    /// Its public key, as a card trusts it.
    pub fn public(&self) -> &TrustedKey {
        &self.public
    }

    /// The minisign signature of `manifest` (its exact bytes), with the trusted comment
    /// `timestamp:<epoch>\tfile:manifest.toml\tbuild:<build id>`.
    ///
    /// # Errors
    /// minisign failed.
    pub fn sign_manifest(
        &self,
        manifest: &[u8],
        build_id: &str,
        epoch: u64,
    ) -> Result<String, SigningError> {
        let trusted_comment = format!(
            "timestamp:{epoch}\tfile:{}\tbuild:{build_id}",
            k8r_manifest::MANIFEST_FILE
        );
        let untrusted = format!("signature from k8r signing key {}", self.public.id());
        minisign::sign(
            Some(&self.pk),
            &self.sk,
            manifest,
            Some(&trusted_comment),
            Some(&untrusted),
        )
        .map(minisign::SignatureBox::into_string)
        .map_err(minisign_err(format!(
            "signing with {}",
            self.path.display()
        )))
    }
}

/// Reads the public key files `settings` name into one list; errors name the setting's
/// `file:line` and the key file's own line.
///
/// # Errors
/// A file is missing or holds something else than minisign public keys.
pub fn read_trusted(settings: &[SettingPath], config: &Path) -> Result<TrustedKeys, SigningError> {
    let mut keys = Vec::new();
    for s in settings {
        let bad = |expected: String| {
            SigningError::BadKey(Box::new(ConfigError {
                file: config.to_path_buf(),
                line: s.line,
                key: Some(s.key.clone()),
                value: Some(s.path.display().to_string()),
                expected,
                hint: Some(
                    "give the .pub files `k8r-builder keygen` or `minisign -G` wrote".into(),
                ),
            }))
        };
        let text = std::fs::read_to_string(&s.path)
            .map_err(|e| bad(format!("a readable minisign public key file ({e})")))?;
        let list = TrustedKeys::parse(&text)
            .map_err(|e| bad(format!("minisign public keys ({}:{e})", s.path.display())))?;
        if list.is_empty() {
            return Err(bad(format!(
                "a minisign public key, but {} holds none",
                s.path.display()
            )));
        }
        keys.extend(list.keys().iter().cloned());
    }
    TrustedKeys::new(keys).map_err(|e| SigningError::Minisign {
        what: "TRUSTED_KEYS".into(),
        message: e.reason,
    })
}

/// The signing plan of a build: its key and the keys its card trusts.
#[derive(Debug)]
pub struct Signing {
    /// The secret key.
    pub key: SigningKey,
    /// The keys the card is told to trust (the signing key's own when none are given).
    pub trusted: TrustedKeys,
}

/// A key file given on the command line, as a setting (errors then say `command line: --flag`).
pub fn flag_setting(flag: &str, path: &Path) -> SettingPath {
    SettingPath {
        path: path.to_path_buf(),
        key: flag.to_owned(),
        line: None,
    }
}

/// The file errors about command-line key flags are reported against.
pub const COMMAND_LINE: &str = "command line";

/// Decides how a build is signed: the flags over `SIGNING_KEY` and `TRUSTED_KEYS`; `None`
/// for an unsigned build. Refused: trusted keys without a signing key, and a signing key the
/// trusted keys leave out — either card would refuse its own build.
///
/// # Errors
/// A key file cannot be used, or the combination is refused; with `file:line`, the key and
/// the fix.
pub fn plan(
    cfg: &k8r_config::BuildConfig,
    signing_flag: Option<&Path>,
    trusted_flags: &[PathBuf],
) -> Result<Option<Signing>, SigningError> {
    let config = cfg.source_file();
    let (key_setting, key_file) = match signing_flag {
        Some(p) => (
            Some(flag_setting("--signing-key", p)),
            PathBuf::from(COMMAND_LINE),
        ),
        None => (cfg.signing_key.clone(), config.to_path_buf()),
    };
    let (trusted_settings, trusted_file) = if trusted_flags.is_empty() {
        (cfg.trusted_keys.clone(), config.to_path_buf())
    } else {
        (
            trusted_flags
                .iter()
                .map(|p| flag_setting("--trusted-key", p))
                .collect(),
            PathBuf::from(COMMAND_LINE),
        )
    };
    let trusted = read_trusted(&trusted_settings, &trusted_file)?;
    let refuse = |expected: String, hint: &str| {
        let first = trusted_settings.first();
        SigningError::BadKey(Box::new(ConfigError {
            file: trusted_file.clone(),
            line: first.and_then(|s| s.line),
            key: first.map(|s| s.key.clone()),
            value: None,
            expected,
            hint: Some(hint.to_owned()),
        }))
    };
    let Some(setting) = key_setting else {
        if trusted.is_empty() {
            return Ok(None);
        }
        return Err(refuse(
            "a SIGNING_KEY (or --signing-key) as well: a card that trusts keys refuses an unsigned \
             build, its own first install included"
                .into(),
            "set SIGNING_KEY to the secret key of one of these keys (`k8r-builder keygen` makes \
             a pair), or remove TRUSTED_KEYS",
        ));
    };
    let key = SigningKey::load(&setting, &key_file)?;
    let trusted = if trusted.is_empty() {
        TrustedKeys::new([key.public().clone()]).map_err(|e| SigningError::Minisign {
            what: "the signing key".into(),
            message: e.reason,
        })?
    } else {
        trusted
    };
    if !trusted.contains(key.public().id()) {
        return Err(refuse(
            format!(
                "a list that includes the signing key ID {} ({}): the card, which trusts only {}, \
                 would refuse its own build",
                key.public().id(),
                setting.path.display(),
                trusted.ids()
            ),
            "add the signing key's .pub file to TRUSTED_KEYS (rotation: list the old and the new \
             key, and sign with one of them)",
        ));
    }
    Ok(Some(Signing { key, trusted }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_secret_key_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let made = keygen(dir.path()).expect("keygen");
        let mode = std::fs::metadata(&made.secret)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let public = std::fs::read_to_string(&made.public).expect("pub");
        let keys = TrustedKeys::parse(&public).expect("a .pub file");
        assert_eq!(keys.ids().0, vec![made.id]);
        let err = keygen(dir.path()).expect_err("exists");
        assert!(err.to_string().contains("never overwrites"), "{err}");
        // The secret key loads and signs what its public key verifies.
        let key = SigningKey::load(
            &flag_setting("--signing-key", &made.secret),
            Path::new(COMMAND_LINE),
        )
        .expect("load");
        assert_eq!(key.public().id(), made.id);
        assert!(!format!("{key:?}").contains(&std::fs::read_to_string(&made.secret).expect("sk")));
        let sig = key.sign_manifest(b"m", "b1", 7).expect("sign");
        let verdict = k8r_manifest::signature::verify(b"m", Some(&sig), &keys).expect("verifies");
        assert_eq!(
            verdict,
            k8r_manifest::signature::Verdict::Signed {
                key: made.id,
                trusted_comment: "timestamp:7\tfile:manifest.toml\tbuild:b1".into()
            }
        );
    }

    #[test]
    fn a_public_key_given_as_the_secret_key_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = keygen(dir.path()).expect("keygen");
        let setting = SettingPath {
            path: made.public.clone(),
            key: "SIGNING_KEY".into(),
            line: Some(7),
        };
        let err = SigningKey::load(&setting, Path::new("variables.cfg")).expect_err("pub");
        let text = err.to_string();
        assert!(
            text.starts_with("variables.cfg:7: SIGNING_KEY=")
                && text.contains("hint: give the .key"),
            "{text}"
        );
    }
}
