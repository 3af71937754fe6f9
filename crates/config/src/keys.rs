//! The table of known settings: name, whether required, default, example and documentation.
//! The order is the documented order (`variables.cfg.example` and `render_cfg` follow it).

use super::types::Version;

/// Default `TOKEN_TTL`: the bootstrap token never expires (the seed's default; a trade-off
/// that lets worker images built months later still join).
pub const DEFAULT_TOKEN_TTL: &str = "0";
/// Calico's own default pool.
pub const DEFAULT_CALICO_CIDR: &str = "192.168.0.0/16";
/// The `Network` in flannel's `kube-flannel.yml`.
pub const DEFAULT_FLANNEL_CIDR: &str = "10.244.0.0/16";
/// Calico release used when `CALICO_VERSION` is absent.
pub const DEFAULT_CALICO_VERSION: Version = Version::new(3, 30, 2);
/// Flannel release used when `FLANNEL_VERSION` is absent.
pub const DEFAULT_FLANNEL_VERSION: Version = Version::new(0, 26, 1);
/// containerd release used when `CONTAINERD_VERSION` is absent.
pub const DEFAULT_CONTAINERD_VERSION: Version = Version::new(2, 1, 4);
/// runc release used when `RUNC_VERSION` is absent.
pub const DEFAULT_RUNC_VERSION: Version = Version::new(1, 3, 0);
/// CNI plugins release used when `CNI_PLUGINS_VERSION` is absent.
pub const DEFAULT_CNI_PLUGINS_VERSION: Version = Version::new(1, 7, 1);
/// The cri-tools (crictl) release used when `CRICTL_VERSION` is absent: `1.<minor>.0` for
/// Kubernetes `1.<minor>.<patch>`. cri-tools releases one minor per Kubernetes minor, each
/// starting with its `.0` (kubernetes-sigs/cri-tools releases); a fixed default would not
/// follow `K8S_VERSION` and ask for a crictl of another minor.
pub const fn default_crictl_version(k8s: Version) -> Version {
    Version::new(1, k8s.minor, 0)
}
/// [`KeyDoc::default`] of `CRICTL_VERSION`, the rule [`default_crictl_version`] applies.
pub const CRICTL_DEFAULT_DOC: &str =
    "1.MINOR.0, MINOR being the minor of K8S_VERSION (1.33.4: 1.33.0)";
/// Default `TRIAL_TIMEOUT`, in seconds.
pub const DEFAULT_TRIAL_TIMEOUT_SECS: u64 = 600;
/// Default `HOSTNAME_PREFIX`.
pub const DEFAULT_HOSTNAME_PREFIX: &str = "k8r";
/// Default `K8S_RELEASE_URL`.
pub const DEFAULT_K8S_RELEASE_URL: &str = "https://dl.k8s.io/release";
/// Default `GITHUB_URL`.
pub const DEFAULT_GITHUB_URL: &str = "https://github.com";
/// Default `GITHUB_RAW_URL`.
pub const DEFAULT_GITHUB_RAW_URL: &str = "https://raw.githubusercontent.com";
/// The oldest Kubernetes k8r can configure: it writes kubeadm's v1beta4 API only, which
/// kubeadm accepts from 1.31 (kubernetes-node.md §3.1).
pub const MIN_K8S_VERSION: Version = Version::new(1, 31, 0);

/// Documentation of one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// Upper-case name as in `variables.cfg` (TOML also accepts the lower-case form).
    pub name: &'static str,
    /// The build refuses to start without it.
    pub required: bool,
    /// What happens when it is absent or empty.
    pub default: &'static str,
    /// A typical value.
    pub example: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every known setting, in documented order.
pub const KEYS: &[KeyDoc] = &[
    KeyDoc {
        name: "IMAGE",
        required: true,
        default: "none (required)",
        example: "ubuntu-26.04-preinstalled-server-arm64+raspi.img",
        doc: "File name of the vendor OS image all nodes are built from. Must be the \
              uncompressed .img (decompress a .img.xz with `xz -dk`). A relative path is \
              relative to the directory of this configuration file.",
    },
    KeyDoc {
        name: "K8S_VERSION",
        required: true,
        default: "none (required)",
        example: "1.33.4",
        doc: "Kubernetes version as MAJOR.MINOR.PATCH without a \"v\" prefix. 1.31.0 or newer: \
              k8r writes kubeadm's v1beta4 configuration, which kubeadm accepts from 1.31.",
    },
    KeyDoc {
        name: "CONTROL_PLANE_ENDPOINT",
        required: false,
        default: "the master's IP address at bootstrap",
        example: "k8s.lan:6443",
        doc: "DNS name or fixed IP address (optionally :port) of the master. It is baked into \
              the cluster certificates, so give it a DHCP reservation or a DNS name before the \
              first build.",
    },
    KeyDoc {
        name: "KUBEADM_JOIN_STRING",
        required: false,
        default: "empty: the image bootstraps the first master",
        example: "kubeadm join k8s.lan:6443 --token abcdef.0123456789abcdef \
                  --discovery-token-ca-cert-hash sha256:<64 hex digits>",
        doc: "The join command printed by the master into /usr/lib/k8r/join_string. Set it to \
              build images for nodes that join an existing cluster (add --control-plane \
              --certificate-key <64 hex> for another master).",
    },
    KeyDoc {
        name: "TOKEN_TTL",
        required: false,
        default: "0 (the join token never expires)",
        example: "24h0m0s",
        doc: "Lifetime of the bootstrap token the master creates for joining nodes: 0 or a \
              duration such as 24h, 90m, 1h30m (units h, m, s, ms).",
    },
    KeyDoc {
        name: "CNI_TYPE",
        required: false,
        default: "calico",
        example: "flannel",
        doc: "Pod network add-on: calico or flannel. Weave Net is no longer available.",
    },
    KeyDoc {
        name: "POD_NETWORK_CIDR",
        required: false,
        default: "192.168.0.0/16 for calico, 10.244.0.0/16 for flannel",
        example: "10.244.0.0/16",
        doc: "Address range for pods (IPv4 prefix /24 or shorter). Must not overlap your home \
              network: with calico's default and a 192.168.x.y LAN, pick another range.",
    },
    KeyDoc {
        name: "CALICO_VERSION",
        required: false,
        default: "3.30.2",
        example: "3.30.2",
        doc: "Calico release (no \"v\" prefix), used when CNI_TYPE is calico.",
    },
    KeyDoc {
        name: "FLANNEL_VERSION",
        required: false,
        default: "0.26.1",
        example: "0.26.1",
        doc: "Flannel release (no \"v\" prefix), used when CNI_TYPE is flannel.",
    },
    KeyDoc {
        name: "HTTP_IMAGE_URL",
        required: false,
        default: "none (nodes upgrade from a local directory only)",
        example: "http://nas.lan/k8r/1.33.4/",
        doc: "http(s) URL of the directory holding image.img.xz and boot.tar.xz, from which \
              nodes download upgrades. The full URL of image.img.xz is accepted too.",
    },
    KeyDoc {
        name: "HOSTNAME_PREFIX",
        required: false,
        default: "k8r",
        example: "pi",
        doc: "Start of each node's host name; the node appends a suffix from its serial \
              number. Lower-case letters, digits and '-', at most 46 characters.",
    },
    KeyDoc {
        name: "NODE_NAME",
        required: false,
        default: "HOSTNAME_PREFIX and the Pi's serial number (k8r-1a2b3c4d)",
        example: "pi-master-1",
        doc: "This node's host name and Kubernetes node name, instead of the generated one. \
              Lower-case letters, digits and '-', at most 63 characters. Set it per card \
              (k8r-builder inject, or k8r config set on the node), never for a whole cluster.",
    },
    KeyDoc {
        name: "TRIAL_TIMEOUT",
        required: false,
        default: "10m",
        example: "20m",
        doc: "How long a newly installed build may take to become healthy on its trial boot \
              (setup done, containerd and the kubelet running, a master's API server ready) \
              before the node gives it up and recovery rolls back to the previous build. \
              A duration in h, m or s, from 60s to 24h. Read on the node at each boot.",
    },
    KeyDoc {
        name: "KERNEL_CMDLINE",
        required: false,
        default:
            "none (the vendor's command line with k8r's serial console, panic=10 and cgroup flags)",
        example: "usbcore.autosuspend=-1",
        doc: "Extra kernel command-line tokens, appended to the working system's cmdline.txt \
              by the builder; a token whose key k8r also sets (panic=) replaces k8r's. root= \
              is refused. Part of the build: it changes with the next image, not on a \
              running node.",
    },
    KeyDoc {
        name: "ROOT_SIZE",
        required: false,
        default: "computed by the builder from the image contents",
        example: "4G",
        doc: "Size of the working root partition in the image, a number with unit K, M, G or \
              T (binary units).",
    },
    KeyDoc {
        name: "COMPRESSION",
        required: false,
        default: "xz",
        example: "zstd",
        doc: "How image.img is compressed for the upgrade artefacts and the card's image store: \
              xz (image.img.xz, smallest, what every k8r card reads) or zstd (image.img.zst in \
              independent frames: a little larger, decoded several times faster on all cores; \
              needs a card whose k8r reads manifest format 2). boot.tar.xz is always xz.",
    },
    KeyDoc {
        name: "ARCH",
        required: false,
        default: "arm64",
        example: "arm64",
        doc: "Node CPU architecture. Only arm64 (Raspberry Pi 4/5 with a 64-bit OS).",
    },
    KeyDoc {
        name: "CONTAINERD_VERSION",
        required: false,
        default: "2.1.4",
        example: "2.1.4",
        doc: "containerd release installed on the nodes.",
    },
    KeyDoc {
        name: "RUNC_VERSION",
        required: false,
        default: "1.3.0",
        example: "1.3.0",
        doc: "runc release installed on the nodes.",
    },
    KeyDoc {
        name: "CNI_PLUGINS_VERSION",
        required: false,
        default: "1.7.1",
        example: "1.7.1",
        doc: "containernetworking/plugins release installed into /opt/cni/bin.",
    },
    KeyDoc {
        name: "CRICTL_VERSION",
        required: false,
        default: CRICTL_DEFAULT_DOC,
        example: "1.33.0",
        doc: "cri-tools (crictl) release. cri-tools follows the Kubernetes minor version, and \
              so does the default: set it only to pick a later patch release of the same minor.",
    },
    KeyDoc {
        name: "K8S_RELEASE_URL",
        required: false,
        default: "https://dl.k8s.io/release",
        example: "http://mirror.lan/k8s/release",
        doc: "Where kubeadm, kubelet and kubectl are downloaded from (a mirror of dl.k8s.io).",
    },
    KeyDoc {
        name: "GITHUB_URL",
        required: false,
        default: "https://github.com",
        example: "http://mirror.lan/github",
        doc: "Where GitHub release assets (containerd, runc, CNI plugins, crictl, flannel) are \
              downloaded from.",
    },
    KeyDoc {
        name: "GITHUB_RAW_URL",
        required: false,
        default: "https://raw.githubusercontent.com",
        example: "http://mirror.lan/github-raw",
        doc: "Where files from GitHub repositories (calico manifests) are downloaded from.",
    },
    KeyDoc {
        name: "SIGNING_KEY",
        required: false,
        default: "none: the build is not signed",
        example: "k8r-signing.key",
        doc: "The minisign secret key (made by `k8r-builder keygen`) that signs manifest.toml \
              into manifest.toml.minisig. A relative path is relative to the directory of this \
              configuration file. It never goes onto the card: only its public key does.",
    },
    KeyDoc {
        name: "TRUSTED_KEYS",
        required: false,
        default: "the public key of SIGNING_KEY",
        example: "k8r-signing.pub next-signing.pub",
        doc: "The minisign public keys (.pub files, separated by spaces) the card trusts: it \
              installs and stages only builds signed by one of them. Several keys rotate a key: \
              list the old and the new one, and sign the following builds with the new one.",
    },
];

/// The documentation of a known key (upper-case name).
pub fn lookup(name: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|k| k.name == name)
}

/// The known key nearest to an unknown one: case-insensitive Levenshtein distance <= 3, or the
/// unknown key is a prefix of a known one. Ties go to the earlier key in the table.
pub fn suggest(unknown: &str) -> Option<&'static str> {
    let upper = unknown.to_ascii_uppercase();
    let nearest = KEYS
        .iter()
        .map(|k| (levenshtein(&upper, k.name), k.name))
        .min_by_key(|(distance, _)| *distance);
    match nearest {
        Some((distance, name)) if distance <= 3 => Some(name),
        _ if upper.is_empty() => None,
        _ => KEYS
            .iter()
            .find(|k| k.name.starts_with(&upper))
            .map(|k| k.name),
    }
}

/// Edit distance (insertions, deletions, substitutions) between two strings, by characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("ABC", "", 3),
            ("K8S_VERISON", "K8S_VERSION", 2),
            ("KITTEN", "SITTING", 3),
            ("IMAGE", "IMAGE", 0),
        ] {
            assert_eq!(levenshtein(a, b), d, "{a} vs {b}");
        }
    }

    #[test]
    fn suggestions() {
        for (unknown, expected) in [
            ("K8S_VERISON", Some("K8S_VERSION")),
            ("k8s_version", Some("K8S_VERSION")),
            ("IMAGES", Some("IMAGE")),
            ("CALICO", Some("CALICO_VERSION")),
            ("CONTROL_PLANE", Some("CONTROL_PLANE_ENDPOINT")),
            ("TOTALLY_UNRELATED_SETTING", None),
        ] {
            assert_eq!(suggest(unknown), expected, "{unknown}");
        }
    }

    #[test]
    fn table_has_unique_upper_case_names_and_docs() {
        for (i, key) in KEYS.iter().enumerate() {
            assert!(
                key.name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                key.name
            );
            assert!(!key.doc.is_empty() && !key.example.is_empty() && !key.default.is_empty());
            assert!(
                KEYS[..i].iter().all(|k| k.name != key.name),
                "{} twice",
                key.name
            );
        }
    }
}
