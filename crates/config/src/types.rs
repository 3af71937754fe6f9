//! The typed values a validated configuration is made of. Each `Display` gives the canonical
//! text that `render_cfg` writes back, so parsing the rendered text yields the same value.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// A `MAJOR.MINOR.PATCH` release number (no `v` prefix, no pre-release suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch number.
    pub patch: u32,
}

impl Version {
    /// A version from its three numbers.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl std::str::FromStr for Version {
    type Err = String;

    /// `1.31.2` or `v1.31.2` (as kubeadm and image tags write it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let parts: Vec<&str> = t.split('.').collect();
        let num = |p: &str| {
            (!p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u32>().ok())
                .flatten()
        };
        match parts.as_slice() {
            [a, b, c] => match (num(a), num(b), num(c)) {
                (Some(major), Some(minor), Some(patch)) => Ok(Version::new(major, minor, patch)),
                _ => Err(format!("{s:?} is not a version MAJOR.MINOR.PATCH")),
            },
            _ => Err(format!("{s:?} is not a version MAJOR.MINOR.PATCH")),
        }
    }
}

/// The CPU architecture of the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 64-bit ARM (Raspberry Pi 4 and 5 with a 64-bit OS).
    Arm64,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Arm64 => f.write_str("arm64"),
        }
    }
}

/// The pod network add-on and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cni {
    /// Project Calico.
    Calico {
        /// `CALICO_VERSION`.
        version: Version,
    },
    /// Flannel.
    Flannel {
        /// `FLANNEL_VERSION`.
        version: Version,
    },
}

impl Cni {
    /// The `CNI_TYPE` value.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Calico { .. } => "calico",
            Self::Flannel { .. } => "flannel",
        }
    }

    /// The add-on's version.
    pub fn version(&self) -> Version {
        match self {
            Self::Calico { version } | Self::Flannel { version } => *version,
        }
    }
}

/// A host (DNS name or IP address) with an optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// DNS name (as written) or IP address (canonical text, IPv6 without brackets).
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
}

impl Endpoint {
    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = self.host.parse::<Ipv6Addr>().is_ok();
        match (v6, self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.host),
            (false, Some(port)) => write!(f, "{}:{port}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

/// A parsed `kubeadm join` command (`KUBEADM_JOIN_STRING`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinString {
    /// The command as written (single line).
    pub raw: String,
    /// The API server address, `host:port`.
    pub endpoint: Endpoint,
    /// The bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub token: String,
    /// `sha256:<64 hex>` (as written).
    pub ca_cert_hash: String,
    /// `--control-plane`: the node joins as another master.
    pub control_plane: bool,
    /// `--certificate-key` (64 hex), for control-plane joins.
    pub certificate_key: Option<String>,
}

/// How `HTTP_IMAGE_URL` was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlForm {
    /// The directory prefix (`http://host/k8r/1.31.0/`), with or without the trailing `/`.
    Prefix,
    /// The full URL of one of the artefacts (`.../image.img.xz` or `.../boot.tar.xz`), as the
    /// seed's README also shows.
    ArtefactUrl,
}

/// `HTTP_IMAGE_URL`, normalised to the directory under which `image.img.xz` and
/// `boot.tar.xz` live.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageUrl {
    /// Ends in `/`; append `image.img.xz` or `boot.tar.xz`.
    pub prefix: String,
    /// How the user wrote it (a rendered configuration always has [`UrlForm::Prefix`]).
    pub given_as: UrlForm,
}

/// A size in bytes, written as a number with a binary unit (`4G`, `3500M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size {
    /// Bytes.
    pub bytes: u64,
}

impl fmt::Display for Size {
    /// The largest unit that divides the size exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "T"),
            (1 << 30, "G"),
            (1 << 20, "M"),
            (1 << 10, "K"),
        ];
        for (factor, unit) in UNITS {
            if self.bytes.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.bytes / factor);
            }
        }
        write!(f, "{}", self.bytes)
    }
}

/// Where the builder downloads from (tests point these at 127.0.0.1). No trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mirrors {
    /// `K8S_RELEASE_URL`, e.g. `https://dl.k8s.io/release`.
    pub k8s_release_url: String,
    /// `GITHUB_URL`, e.g. `https://github.com`.
    pub github_url: String,
    /// `GITHUB_RAW_URL`, e.g. `https://raw.githubusercontent.com`.
    pub github_raw_url: String,
}

/// Versions of the node's container runtime pieces.
///
/// Equality and hashing compare the versions only: [`Components::defaulted`] says where they
/// came from, which is not a setting (a rendered configuration writes every version out).
#[derive(Debug, Clone, Copy)]
pub struct Components {
    /// `CONTAINERD_VERSION`.
    pub containerd: Version,
    /// `RUNC_VERSION`.
    pub runc: Version,
    /// `CNI_PLUGINS_VERSION`.
    pub cni_plugins: Version,
    /// `CRICTL_VERSION`.
    pub crictl: Version,
    /// Which of these versions (and the CNI's) were not set, so their default applied.
    pub defaulted: Defaulted,
}

impl Components {
    /// The versions as a tuple (what equality compares).
    fn versions(&self) -> (Version, Version, Version, Version) {
        (self.containerd, self.runc, self.cni_plugins, self.crictl)
    }
}

impl PartialEq for Components {
    fn eq(&self, other: &Self) -> bool {
        self.versions() == other.versions()
    }
}

impl Eq for Components {}

impl std::hash::Hash for Components {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.versions().hash(state);
    }
}

/// For each component version: `true` when its key was absent (or empty) and k8r's default
/// was used. Error messages say so: a default that does not exist upstream needs the key set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Defaulted {
    /// `CONTAINERD_VERSION`.
    pub containerd: bool,
    /// `RUNC_VERSION`.
    pub runc: bool,
    /// `CNI_PLUGINS_VERSION`.
    pub cni_plugins: bool,
    /// `CRICTL_VERSION` (its default follows `K8S_VERSION`).
    pub crictl: bool,
    /// `CALICO_VERSION` or `FLANNEL_VERSION`, whichever `CNI_TYPE` uses.
    pub cni: bool,
}

/// A file named by a setting (`SIGNING_KEY`, `TRUSTED_KEYS`), with where it was set: what the
/// builder needs to say `file:line: KEY=...: ...` about the file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingPath {
    /// The file (relative paths resolved against the configuration's directory by `load`).
    pub path: std::path::PathBuf,
    /// The key as written in the configuration.
    pub key: String,
    /// The line of the setting.
    pub line: Option<usize>,
}
