//! Build configuration: `variables.cfg` (the seed's bash-sourced file), the same settings as
//! TOML, and the optional `password_hash` file beside it.
//!
//! Everything here is pure (text in, [`BuildConfig`] or every [`ConfigError`] out) except
//! [`load`], which reads the files and resolves the image path. The known keys, their
//! defaults and documentation are in [`keys::KEYS`]; `variables.cfg.example` at the repository
//! root documents the same for users.

mod build;
mod cfg_syntax;
mod error;
mod join;
pub mod keys;
pub mod node;
mod password;
pub mod redact;
mod render;
mod signing_keys;
mod toml_input;
mod types;
mod validate;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use build::Syntax;
pub use error::{ConfigError, ConfigErrors, ConfigWarning};
pub use keys::{KeyDoc, KEYS};
pub use node::RawSettings;
pub use password::parse_password_hash;
pub use types::{
    Arch, Cni, Components, Defaulted, Endpoint, ImageUrl, JoinString, Mirrors, SettingPath, Size,
    UrlForm, Version,
};

/// Name of the optional password file, looked up beside the configuration file.
pub const PASSWORD_HASH_FILE: &str = "password_hash";

/// A validated build configuration with every default applied.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// `IMAGE`: the uncompressed vendor image (made absolute-or-config-relative by [`load`]).
    /// Empty when a configuration loaded for [`Purpose::NodeSettings`] has none.
    pub image: PathBuf,
    /// `K8S_VERSION` (>= 1.31.0).
    pub k8s_version: Version,
    /// `ARCH`.
    pub arch: Arch,
    /// `CONTROL_PLANE_ENDPOINT`; `None`: the master's address at bootstrap.
    pub control_plane_endpoint: Option<Endpoint>,
    /// `KUBEADM_JOIN_STRING`; `None`: this image bootstraps the first master.
    pub join: Option<JoinString>,
    /// `TOKEN_TTL`: `0` or a Go duration.
    pub token_ttl: String,
    /// `CNI_TYPE` with `CALICO_VERSION` or `FLANNEL_VERSION`.
    pub cni: Cni,
    /// `POD_NETWORK_CIDR`, canonical, with the CNI's default applied.
    pub pod_network_cidr: String,
    /// `HTTP_IMAGE_URL`, normalised to the directory prefix.
    pub http_image_url: Option<ImageUrl>,
    /// `HOSTNAME_PREFIX`.
    pub hostname_prefix: String,
    /// `NODE_NAME`; `None`: the node makes one from `HOSTNAME_PREFIX` and its serial number.
    pub node_name: Option<String>,
    /// `TRIAL_TIMEOUT` in seconds (default 600).
    pub trial_timeout_secs: u64,
    /// `KERNEL_CMDLINE`: extra tokens for the working system's `cmdline.txt`.
    pub kernel_cmdline: Vec<String>,
    /// `ROOT_SIZE`; `None`: the builder computes it.
    pub root_size: Option<Size>,
    /// `COMPRESSION`: how the builder compresses the root image (default xz).
    pub compression: k8r_manifest::Compression,
    /// containerd, runc, CNI plugins and crictl versions.
    pub components: Components,
    /// Download locations.
    pub mirrors: Mirrors,
    /// The `password_hash` file's hash (set by [`load`]).
    pub password_hash: Option<String>,
    /// `SIGNING_KEY`: the minisign secret key that signs the manifest.
    pub signing_key: Option<SettingPath>,
    /// `TRUSTED_KEYS`: the public key files the card trusts (empty: not set).
    pub trusted_keys: Vec<SettingPath>,
    warnings: Vec<ConfigWarning>,
    /// The file the settings were read from (for messages; not compared).
    source: PathBuf,
}

/// Equality of the settings; warnings (diagnostics about the source text) are not compared.
impl PartialEq for BuildConfig {
    fn eq(&self, other: &Self) -> bool {
        let Self {
            image,
            k8s_version,
            arch,
            control_plane_endpoint,
            join,
            token_ttl,
            cni,
            pod_network_cidr,
            http_image_url,
            hostname_prefix,
            node_name,
            trial_timeout_secs,
            kernel_cmdline,
            root_size,
            compression,
            components,
            mirrors,
            password_hash,
            signing_key,
            trusted_keys,
            warnings: _,
            source: _,
        } = self;
        *image == other.image
            && *k8s_version == other.k8s_version
            && *arch == other.arch
            && *control_plane_endpoint == other.control_plane_endpoint
            && *join == other.join
            && *token_ttl == other.token_ttl
            && *cni == other.cni
            && *pod_network_cidr == other.pod_network_cidr
            && *http_image_url == other.http_image_url
            && *hostname_prefix == other.hostname_prefix
            && *node_name == other.node_name
            && *trial_timeout_secs == other.trial_timeout_secs
            && *kernel_cmdline == other.kernel_cmdline
            && *root_size == other.root_size
            && *compression == other.compression
            && *components == other.components
            && *mirrors == other.mirrors
            && *password_hash == other.password_hash
            && *signing_key == other.signing_key
            && *trusted_keys == other.trusted_keys
    }
}

impl Eq for BuildConfig {}

impl BuildConfig {
    /// Questionable settings that did not stop the build (unknown keys, ...).
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The configuration file these settings were read from, as given.
    pub fn source_file(&self) -> &Path {
        &self.source
    }

    /// True when this image bootstraps the first master (no join command).
    pub fn is_first_master(&self) -> bool {
        self.join.is_none()
    }

    /// The canonical `variables.cfg`: every key in documented order as `KEY="value"` (empty for
    /// "not set"). This is the node's own settings file on the recovery partition
    /// (`k8r/node/variables.cfg`). `HTTP_IMAGE_URL` is written as its directory prefix;
    /// `password_hash` is not part of it.
    pub fn render_cfg(&self) -> String {
        render::render(self, &[])
    }

    /// The configuration baked into the root image (`/usr/lib/k8r/variables.cfg`): like
    /// [`BuildConfig::render_cfg`], without the node secrets ([`NODE_SECRET_KEYS`]). The
    /// upgrade artefacts are uploaded to web servers and shared by every node, so a worker's
    /// join token must live only in its own settings on the recovery partition.
    pub fn render_image_cfg(&self) -> String {
        render::render(self, NODE_SECRET_KEYS)
    }
}

/// What a configuration is loaded for: which keys it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// Building images (`assemble`): `IMAGE` is required.
    #[default]
    Build,
    /// Changing a built card's node settings (`inject`): `IMAGE` is optional (the card is
    /// already built; a given `IMAGE` is still checked) and [`BuildConfig::image`] is empty
    /// when it is absent.
    NodeSettings,
}

/// Keys that hold a node's secrets and never go into the shared upgrade artefacts.
pub const NODE_SECRET_KEYS: &[&str] = &["KUBEADM_JOIN_STRING"];

/// Keys that name files on the build machine: used by `assemble` and `inject`, never written
/// to the card (rendered empty, with a comment).
pub const BUILD_INPUT_KEYS: &[&str] = &["SIGNING_KEY", "TRUSTED_KEYS"];

/// Loads and validates a configuration, logging its warnings (unknown keys, …).
///
/// # Errors
/// Every problem of the file at once.
pub fn load_and_warn(config_path: &Path) -> Result<BuildConfig, ConfigErrors> {
    load_and_warn_for(config_path, Purpose::Build)
}

/// [`load_and_warn`] for `purpose`.
///
/// # Errors
/// Every problem of the file at once.
pub fn load_and_warn_for(
    config_path: &Path,
    purpose: Purpose,
) -> Result<BuildConfig, ConfigErrors> {
    let cfg = load_for(config_path, purpose)?;
    for w in cfg.warnings() {
        log::warn!("{w}");
    }
    Ok(cfg)
}

/// Parses and validates a `variables.cfg` text. `file` is used in messages only.
pub fn parse_cfg(file: &Path, text: &str) -> Result<BuildConfig, ConfigErrors> {
    parse_cfg_for(file, text, Purpose::Build)
}

/// [`parse_cfg`] for `purpose`.
pub fn parse_cfg_for(
    file: &Path,
    text: &str,
    purpose: Purpose,
) -> Result<BuildConfig, ConfigErrors> {
    let (assignments, errors) = cfg_syntax::lex(file, text);
    build::build(file, Syntax::Cfg, &assignments, errors, purpose)
}

/// Parses and validates the TOML form. `file` is used in messages only.
pub fn parse_toml(file: &Path, text: &str) -> Result<BuildConfig, ConfigErrors> {
    parse_toml_for(file, text, Purpose::Build)
}

/// [`parse_toml`] for `purpose`.
pub fn parse_toml_for(
    file: &Path,
    text: &str,
    purpose: Purpose,
) -> Result<BuildConfig, ConfigErrors> {
    let (assignments, errors) = toml_input::lex(file, text);
    if assignments.is_empty() && !errors.is_empty() && errors.iter().all(|e| e.key.is_none()) {
        // A TOML syntax error: nothing else can be said about the file.
        return Err(ConfigErrors(errors));
    }
    build::build(file, Syntax::Toml, &assignments, errors, purpose)
}

fn read(path: &Path, what: &str) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::one(ConfigError::file(
            path,
            format!("a readable {what} ({e})"),
            Some(match e.kind() {
                std::io::ErrorKind::NotFound if what.contains("configuration") => {
                    "copy variables.cfg.example to variables.cfg and edit it".into()
                }
                std::io::ErrorKind::InvalidData => "save the file as UTF-8 text".into(),
                _ => "check the path and its permissions".into(),
            }),
        ))
    })
}

/// Reads a configuration file (`.toml` → TOML, anything else → `variables.cfg` syntax), the
/// `password_hash` file beside it if present, and resolves `IMAGE` relative to the
/// configuration's directory. All problems are reported together. Whether the image exists is
/// not checked here: `assemble` may be given another base image on the command line.
/// `IMAGE` is required; see [`load_for`].
pub fn load(config_path: &Path) -> Result<BuildConfig, ConfigErrors> {
    load_for(config_path, Purpose::Build)
}

/// [`load`] for `purpose`: [`Purpose::NodeSettings`] (`inject`) takes a configuration without
/// `IMAGE`.
pub fn load_for(config_path: &Path, purpose: Purpose) -> Result<BuildConfig, ConfigErrors> {
    let text = read(config_path, "configuration file")?;
    let is_toml = config_path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let parsed = if is_toml {
        parse_toml_for(config_path, &text, purpose)
    } else {
        parse_cfg_for(config_path, &text, purpose)
    };
    let dir = config_path.parent().unwrap_or(Path::new(""));
    let password_path = dir.join(PASSWORD_HASH_FILE);
    let password = if password_path.exists() {
        read(&password_path, "password_hash file")
            .and_then(|t| parse_password_hash(&password_path, &t))
            .map(Some)
    } else {
        Ok(None)
    };
    let (mut config, password_hash) = match (parsed, password) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(mut a), Err(b)) => {
            a.0.extend(b.0);
            return Err(a);
        }
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
    };
    config.password_hash = password_hash;
    if config.image.is_relative() && !config.image.as_os_str().is_empty() {
        config.image = dir.join(&config.image);
    }
    for setting in config
        .signing_key
        .iter_mut()
        .chain(&mut config.trusted_keys)
    {
        if setting.path.is_relative() {
            setting.path = dir.join(&setting.path);
        }
    }
    Ok(config)
}

#[cfg(test)]
mod purpose_tests {
    use super::*;

    const NO_IMAGE: &str = "K8S_VERSION=\"1.31.2\"\nNODE_NAME=\"w1\"\n";

    #[test]
    fn node_settings_need_no_image_but_a_build_does() {
        let file = Path::new("worker.cfg");
        let cfg = parse_cfg_for(file, NO_IMAGE, Purpose::NodeSettings).expect("no IMAGE is fine");
        assert_eq!(cfg.image, PathBuf::new());
        assert_eq!(cfg.node_name.as_deref(), Some("w1"));
        let err = parse_cfg(file, NO_IMAGE)
            .expect_err("a build needs IMAGE")
            .to_string();
        assert!(err.contains("IMAGE, which is required"), "{err}");
        let toml = "k8s_version = \"1.31.2\"\n";
        assert!(parse_toml_for(Path::new("k.toml"), toml, Purpose::NodeSettings).is_ok());
        // A given IMAGE is still checked.
        let xz = format!("{NO_IMAGE}IMAGE=\"u.img.xz\"\n");
        assert!(parse_cfg_for(file, &xz, Purpose::NodeSettings).is_err());
    }

    #[test]
    fn load_for_node_settings_leaves_a_missing_image_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("variables.cfg");
        std::fs::write(&path, NO_IMAGE).expect("write");
        let cfg = load_for(&path, Purpose::NodeSettings).expect("load");
        assert_eq!(
            cfg.image,
            PathBuf::new(),
            "not the configuration's directory"
        );
        assert!(load(&path).is_err());
        std::fs::write(&path, format!("{NO_IMAGE}IMAGE=\"u.img\"\n")).expect("write");
        let cfg = load_for(&path, Purpose::NodeSettings).expect("load");
        assert_eq!(cfg.image, dir.path().join("u.img"));
    }
}
