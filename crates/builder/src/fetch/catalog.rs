//! Which artefacts a Kubernetes node needs, where they are published, how each is verified and
//! where it lands in the image (pure, no I/O).
//!
//! URLs and checksum layouts follow `docs/kubernetes-node.md` §1.1 (sources: K-INSTALL,
//! REL-SUM, CTRD `Makefile`, RUNC `release_build.sh`/`release_sign.sh`, CNI `release.yaml`,
//! CRICTL `hack/release.sh`, CALICO, FLANNEL). Install locations follow §2.1 (K-INSTALL "without
//! a package manager", CTRD getting-started).

use std::path::PathBuf;

use super::checksum::{ChecksumFormat, Sha256Digest};

/// Base URLs of the download sites, so a build can use a mirror and tests can use 127.0.0.1.
/// Each is joined with `/` and a path; a trailing `/` is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrors {
    /// Kubernetes release binaries; default `https://dl.k8s.io/release`.
    pub k8s_release: String,
    /// GitHub release assets; default `https://github.com`.
    pub github: String,
    /// Files in GitHub repositories at a tag; default `https://raw.githubusercontent.com`.
    pub github_raw: String,
}

impl Default for Mirrors {
    fn default() -> Self {
        Self {
            k8s_release: "https://dl.k8s.io/release".to_owned(),
            github: "https://github.com".to_owned(),
            github_raw: "https://raw.githubusercontent.com".to_owned(),
        }
    }
}

/// The CNI manifest to ship, with its upstream version (`3.30.3` or `v3.30.3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CniManifest {
    /// `calico.yaml` (manifest install) from the projectcalico/calico git tag.
    Calico(String),
    /// `kube-flannel.yml` from the flannel-io/flannel GitHub release.
    Flannel(String),
}

/// What to download for one node image. Versions may be written with or without a leading `v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Go architecture name: `arm64` (the Pi) or `amd64`.
    pub arch: String,
    /// Kubernetes version for kubeadm, kubelet and kubectl, e.g. `1.31.2`.
    pub k8s: String,
    /// containerd version, e.g. `2.1.4`.
    pub containerd: String,
    /// runc version, e.g. `1.3.0`.
    pub runc: String,
    /// CNI plugins version, e.g. `1.6.2`.
    pub cni_plugins: String,
    /// cri-tools (crictl) version, e.g. `1.31.1`.
    pub crictl: String,
    /// The CNI manifest.
    pub cni: CniManifest,
}

/// How the downloaded bytes are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumSource {
    /// Upstream publishes a checksum file at `url`; the digest is the one for `file_name`.
    Published {
        /// URL of the checksum file.
        url: String,
        /// Its layout.
        format: ChecksumFormat,
        /// The name to look up in it (ignored for [`ChecksumFormat::Bare`]).
        file_name: String,
    },
    /// k8r knows the digest ([`PINNED_MANIFESTS`]).
    Pinned(Sha256Digest),
    /// No digest is published or pinned: the digest of the first download is recorded (in the
    /// lock file and the cache) and every later download is checked against it.
    Unpinned,
}

/// Where an artefact goes in the root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// The downloaded file itself, written to `path` with `mode`.
    File {
        /// Absolute path in the image.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// A gzip tarball unpacked under `dir` (entries keep their paths inside the archive).
    Untar {
        /// Absolute directory in the image.
        dir: String,
    },
}

/// One file to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Short name, e.g. `kubeadm`.
    pub name: String,
    /// Upstream version without the leading `v`, e.g. `1.31.2`.
    pub version: String,
    /// Where to download it.
    pub url: String,
    /// How to verify it.
    pub checksum: ChecksumSource,
    /// Unique file name in the download cache (contains version and arch).
    pub cache_name: String,
    /// Where it lands in the image.
    pub install: Install,
    /// The configuration key of the mirror it is downloaded from (`K8S_RELEASE_URL`,
    /// `GITHUB_URL`, `GITHUB_RAW_URL`), for network error messages.
    pub mirror_key: &'static str,
    /// Which configuration key set [`Artifact::version`] and how; `None` when not known (the
    /// catalog itself does not know; [`crate::assemble::BuildInputs`] fills it in).
    pub version_origin: Option<VersionOrigin>,
}

impl Artifact {
    /// The name users know it by: [`Artifact::name`], except the CNI manifest's file name
    /// (`calico.yaml`, `kube-flannel.yml`).
    pub fn display_name(&self) -> &str {
        match &self.install {
            Install::File { path, .. } if self.name == CNI_MANIFEST => {
                path.rsplit('/').next().unwrap_or(&self.name)
            }
            _ => &self.name,
        }
    }
}

/// How the configuration chose a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionOrigin {
    /// The key, e.g. `CRICTL_VERSION`.
    pub key: &'static str,
    /// Set by the user, or a default.
    pub set: VersionSet,
}

/// Whether a version was written in the configuration or defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSet {
    /// Written in this configuration file.
    Given {
        /// The configuration file.
        file: PathBuf,
    },
    /// Not set: the default applied.
    Default {
        /// How the default is chosen, e.g. `its default follows K8S_VERSION (1.MINOR.0)`.
        rule: String,
    },
}

impl VersionOrigin {
    /// What to tell a user whose `version` does not exist upstream.
    pub fn not_found_hint(&self, version: &str) -> String {
        let key = self.key;
        match &self.set {
            VersionSet::Given { file } => format!(
                "{key}=\"{version}\" in {}: is that a released version?",
                file.display()
            ),
            VersionSet::Default { rule } => {
                format!("{key} was not set, {rule}; set {key} to a released version")
            }
        }
    }
}

/// [`Artifact::name`] of the CNI manifest (calico or flannel alike).
pub const CNI_MANIFEST: &str = "cni-manifest";

/// SHA-256 digests k8r vouches for, for downloads upstream publishes no digest for (the CNI
/// manifests): `(name, version without "v", lowercase hex)`, `name` being `calico` or
/// `flannel`.
///
/// Empty on purpose: an entry must be the digest of the real upstream file, computed from a
/// download and reviewed, never guessed. A version not listed here is trusted on first
/// download: its digest is recorded in the build's lock file (`variables.lock`, to be
/// committed) and every later build is checked against it. To add an entry:
/// `curl -fsSL <url> | sha256sum`.
pub const PINNED_MANIFESTS: &[(&str, &str, &str)] = &[];

/// The pinned digest of manifest `name` at `version` in `table`, if any. Entries whose hex does
/// not parse are ignored (a unit test keeps the real table clean).
pub fn pinned_digest(
    table: &[(&str, &str, &str)],
    name: &str,
    version: &str,
) -> Option<Sha256Digest> {
    let version = version.strip_prefix('v').unwrap_or(version);
    table
        .iter()
        .find(|(n, v, _)| *n == name && *v == version)
        .and_then(|(_, _, hex)| hex.parse().ok())
}

/// Why no artefact list could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The architecture is not one upstream ships and k8r supports.
    #[error("unsupported architecture {0:?}: use arm64 (Raspberry Pi) or amd64")]
    Arch(String),
    /// A version string is empty or has characters that do not belong in a version.
    #[error("invalid {component} version {version:?}: expected something like 1.31.2")]
    Version {
        /// Which component.
        component: &'static str,
        /// The text given.
        version: String,
    },
}

/// Strips a leading `v` and checks the rest is a plausible version: it ends up in URLs and in
/// cache file names, so `/`, `..` and the like are refused.
fn version(component: &'static str, text: &str) -> Result<String, CatalogError> {
    let bare = text.strip_prefix('v').unwrap_or(text);
    let ok = bare.starts_with(|c: char| c.is_ascii_digit())
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        && !bare.contains("..");
    if ok {
        Ok(bare.to_owned())
    } else {
        Err(CatalogError::Version {
            component,
            version: text.to_owned(),
        })
    }
}

/// `base` and `path` joined with exactly one `/`.
fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path)
}

/// Every artefact a node image needs for `spec`, downloaded from `mirrors`, in install order:
/// kubeadm, kubelet, kubectl, containerd, runc, CNI plugins, crictl, CNI manifest.
pub fn node_artifacts(spec: &NodeSpec, mirrors: &Mirrors) -> Result<Vec<Artifact>, CatalogError> {
    let arch = match spec.arch.as_str() {
        "arm64" | "amd64" => spec.arch.as_str(),
        other => return Err(CatalogError::Arch(other.to_owned())),
    };
    let k8s = version("Kubernetes", &spec.k8s)?;
    let containerd = version("containerd", &spec.containerd)?;
    let runc = version("runc", &spec.runc)?;
    let cni_plugins = version("CNI plugins", &spec.cni_plugins)?;
    let crictl = version("crictl", &spec.crictl)?;
    let github = mirrors.github.as_str();

    let mut out = Vec::new();
    // dl.k8s.io: `<bin>.sha256` holds only the digest (REL-SUM `WriteChecksums`).
    for bin in ["kubeadm", "kubelet", "kubectl"] {
        let url = join(
            &mirrors.k8s_release,
            &format!("v{k8s}/bin/linux/{arch}/{bin}"),
        );
        out.push(Artifact {
            name: bin.to_owned(),
            version: k8s.clone(),
            checksum: ChecksumSource::Published {
                url: format!("{url}.sha256"),
                format: ChecksumFormat::Bare,
                file_name: bin.to_owned(),
            },
            url,
            cache_name: format!("{bin}-v{k8s}-linux-{arch}"),
            install: Install::File {
                path: format!("/usr/local/bin/{bin}"),
                mode: 0o755,
            },
            mirror_key: "K8S_RELEASE_URL",
            version_origin: None,
        });
    }

    // containerd: `sha256sum X.tar.gz > X.tar.gz.sha256sum` (CTRD `Makefile`); the archive
    // holds `bin/…`, unpacked under /usr/local (CTRD getting-started).
    let file = format!("containerd-{containerd}-linux-{arch}.tar.gz");
    let url = join(
        github,
        &format!("containerd/containerd/releases/download/v{containerd}/{file}"),
    );
    out.push(Artifact {
        name: "containerd".to_owned(),
        version: containerd.clone(),
        checksum: ChecksumSource::Published {
            url: format!("{url}.sha256sum"),
            format: ChecksumFormat::Sha256Sum,
            file_name: file.clone(),
        },
        url,
        cache_name: file,
        install: Install::Untar {
            dir: "/usr/local".to_owned(),
        },
        mirror_key: "GITHUB_URL",
        version_origin: None,
    });

    // runc: one clear-signed `runc.sha256sum` for all arches (RUNC `release_sign.sh`).
    let file = format!("runc.{arch}");
    let base = join(
        github,
        &format!("opencontainers/runc/releases/download/v{runc}"),
    );
    out.push(Artifact {
        name: "runc".to_owned(),
        version: runc.clone(),
        url: format!("{base}/{file}"),
        checksum: ChecksumSource::Published {
            url: format!("{base}/runc.sha256sum"),
            format: ChecksumFormat::ClearSigned,
            file_name: file,
        },
        cache_name: format!("runc-v{runc}-linux-{arch}"),
        install: Install::File {
            path: "/usr/local/sbin/runc".to_owned(),
            mode: 0o755,
        },
        mirror_key: "GITHUB_URL",
        version_origin: None,
    });

    // CNI plugins: `.sha256` is `sha256sum` output; entries are `./bridge`, … (CNI
    // `release.yaml`), unpacked into /opt/cni/bin.
    let file = format!("cni-plugins-linux-{arch}-v{cni_plugins}.tgz");
    let url = join(
        github,
        &format!("containernetworking/plugins/releases/download/v{cni_plugins}/{file}"),
    );
    out.push(Artifact {
        name: "cni-plugins".to_owned(),
        version: cni_plugins,
        checksum: ChecksumSource::Published {
            url: format!("{url}.sha256"),
            format: ChecksumFormat::Sha256Sum,
            file_name: file.clone(),
        },
        url,
        cache_name: file,
        install: Install::Untar {
            dir: "/opt/cni/bin".to_owned(),
        },
        mirror_key: "GITHUB_URL",
        version_origin: None,
    });

    // crictl: `.sha256` is the bare digest plus a newline (CRICTL `hack/release.sh`); the
    // archive holds just `crictl`.
    let file = format!("crictl-v{crictl}-linux-{arch}.tar.gz");
    let url = join(
        github,
        &format!("kubernetes-sigs/cri-tools/releases/download/v{crictl}/{file}"),
    );
    out.push(Artifact {
        name: "crictl".to_owned(),
        version: crictl,
        checksum: ChecksumSource::Published {
            url: format!("{url}.sha256"),
            format: ChecksumFormat::Bare,
            file_name: file.clone(),
        },
        url,
        cache_name: file,
        install: Install::Untar {
            dir: "/usr/local/bin".to_owned(),
        },
        mirror_key: "GITHUB_URL",
        version_origin: None,
    });

    // CNI manifest: no upstream digest for these URLs (CALICO, FLANNEL), hence the pin table.
    let (name, manifest_version, url, file, mirror_key) = match &spec.cni {
        CniManifest::Calico(v) => {
            let v = version("Calico", v)?;
            let url = join(
                &mirrors.github_raw,
                &format!("projectcalico/calico/v{v}/manifests/calico.yaml"),
            );
            ("calico", v, url, "calico.yaml", "GITHUB_RAW_URL")
        }
        CniManifest::Flannel(v) => {
            let v = version("flannel", v)?;
            let url = join(
                github,
                &format!("flannel-io/flannel/releases/download/v{v}/kube-flannel.yml"),
            );
            ("flannel", v, url, "kube-flannel.yml", "GITHUB_URL")
        }
    };
    let checksum = match pinned_digest(PINNED_MANIFESTS, name, &manifest_version) {
        Some(digest) => ChecksumSource::Pinned(digest),
        None => ChecksumSource::Unpinned,
    };
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    out.push(Artifact {
        // One name whichever CNI, so the assembly step can find it; the cache name and the
        // URL say which manifest it is.
        name: CNI_MANIFEST.to_owned(),
        cache_name: format!("{stem}-v{manifest_version}.{ext}"),
        version: manifest_version,
        url,
        checksum,
        install: Install::File {
            path: format!("/usr/lib/k8r/cni/{file}"),
            mode: 0o644,
        },
        mirror_key,
        version_origin: None,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use super::*;

    fn spec(arch: &str, cni: CniManifest) -> NodeSpec {
        NodeSpec {
            arch: arch.to_owned(),
            k8s: "v1.31.2".to_owned(),
            containerd: "2.1.4".to_owned(),
            runc: "1.3.0".to_owned(),
            cni_plugins: "1.6.2".to_owned(),
            crictl: "v1.31.1".to_owned(),
            cni,
        }
    }

    fn find<'a>(list: &'a [Artifact], name: &str) -> &'a Artifact {
        list.iter().find(|a| a.name == name).unwrap()
    }

    fn published(a: &Artifact) -> (&str, ChecksumFormat, &str) {
        match &a.checksum {
            ChecksumSource::Published {
                url,
                format,
                file_name,
            } => (url, *format, file_name),
            other => panic!("{} is {other:?}", a.name),
        }
    }

    #[test]
    fn arm64_urls_match_the_upstream_layout() {
        let list = node_artifacts(
            &spec("arm64", CniManifest::Calico("3.30.3".into())),
            &Mirrors::default(),
        )
        .unwrap();
        let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "kubeadm",
                "kubelet",
                "kubectl",
                "containerd",
                "runc",
                "cni-plugins",
                "crictl",
                "cni-manifest"
            ]
        );

        let kubeadm = find(&list, "kubeadm");
        assert_eq!(
            kubeadm.url,
            "https://dl.k8s.io/release/v1.31.2/bin/linux/arm64/kubeadm"
        );
        assert_eq!(kubeadm.version, "1.31.2");
        assert_eq!(
            published(kubeadm),
            (
                "https://dl.k8s.io/release/v1.31.2/bin/linux/arm64/kubeadm.sha256",
                ChecksumFormat::Bare,
                "kubeadm"
            )
        );
        assert_eq!(
            kubeadm.install,
            Install::File {
                path: "/usr/local/bin/kubeadm".into(),
                mode: 0o755
            }
        );

        let containerd = find(&list, "containerd");
        assert_eq!(
            containerd.url,
            "https://github.com/containerd/containerd/releases/download/v2.1.4/containerd-2.1.4-linux-arm64.tar.gz"
        );
        let (url, format, file) = published(containerd);
        assert_eq!(url, format!("{}.sha256sum", containerd.url));
        assert_eq!(format, ChecksumFormat::Sha256Sum);
        assert_eq!(file, "containerd-2.1.4-linux-arm64.tar.gz");

        let runc = find(&list, "runc");
        assert_eq!(
            runc.url,
            "https://github.com/opencontainers/runc/releases/download/v1.3.0/runc.arm64"
        );
        assert_eq!(
            published(runc),
            (
                "https://github.com/opencontainers/runc/releases/download/v1.3.0/runc.sha256sum",
                ChecksumFormat::ClearSigned,
                "runc.arm64"
            )
        );

        let cni = find(&list, "cni-plugins");
        assert_eq!(
            cni.url,
            "https://github.com/containernetworking/plugins/releases/download/v1.6.2/cni-plugins-linux-arm64-v1.6.2.tgz"
        );
        let (url, format, _) = published(cni);
        assert_eq!(url, format!("{}.sha256", cni.url));
        assert_eq!(format, ChecksumFormat::Sha256Sum);
        assert_eq!(
            cni.install,
            Install::Untar {
                dir: "/opt/cni/bin".into()
            }
        );

        let crictl = find(&list, "crictl");
        assert_eq!(
            crictl.url,
            "https://github.com/kubernetes-sigs/cri-tools/releases/download/v1.31.1/crictl-v1.31.1-linux-arm64.tar.gz"
        );
        assert_eq!(published(crictl).1, ChecksumFormat::Bare);

        let calico = find(&list, CNI_MANIFEST);
        assert_eq!(
            calico.url,
            "https://raw.githubusercontent.com/projectcalico/calico/v3.30.3/manifests/calico.yaml"
        );
        assert_eq!(calico.checksum, ChecksumSource::Unpinned);
        assert_eq!(calico.cache_name, "calico-v3.30.3.yaml");
        assert_eq!(calico.display_name(), "calico.yaml");
        assert_eq!(kubeadm.display_name(), "kubeadm");

        let keys: Vec<(&str, &str)> = list
            .iter()
            .map(|a| (a.name.as_str(), a.mirror_key))
            .collect();
        assert_eq!(
            keys,
            [
                ("kubeadm", "K8S_RELEASE_URL"),
                ("kubelet", "K8S_RELEASE_URL"),
                ("kubectl", "K8S_RELEASE_URL"),
                ("containerd", "GITHUB_URL"),
                ("runc", "GITHUB_URL"),
                ("cni-plugins", "GITHUB_URL"),
                ("crictl", "GITHUB_URL"),
                ("cni-manifest", "GITHUB_RAW_URL"),
            ]
        );
        for a in &list {
            assert!(
                k8r_config::keys::lookup(a.mirror_key).is_some(),
                "{}",
                a.mirror_key
            );
        }
    }

    #[test]
    fn flannel_and_amd64_and_mirrors() {
        let mirrors = Mirrors {
            k8s_release: "http://127.0.0.1:1/k8s/".into(),
            github: "http://127.0.0.1:1/gh".into(),
            github_raw: "http://127.0.0.1:1/raw".into(),
        };
        let list = node_artifacts(
            &spec("amd64", CniManifest::Flannel("v0.26.7".into())),
            &mirrors,
        )
        .unwrap();
        assert_eq!(
            find(&list, "kubelet").url,
            "http://127.0.0.1:1/k8s/v1.31.2/bin/linux/amd64/kubelet"
        );
        assert_eq!(
            find(&list, "runc").url,
            "http://127.0.0.1:1/gh/opencontainers/runc/releases/download/v1.3.0/runc.amd64"
        );
        let flannel = find(&list, CNI_MANIFEST);
        assert_eq!(
            flannel.url,
            "http://127.0.0.1:1/gh/flannel-io/flannel/releases/download/v0.26.7/kube-flannel.yml"
        );
        assert_eq!(flannel.version, "0.26.7");
        assert_eq!(flannel.cache_name, "kube-flannel-v0.26.7.yml");
        assert_eq!(flannel.display_name(), "kube-flannel.yml");
        assert_eq!(flannel.mirror_key, "GITHUB_URL");
    }

    #[test]
    fn cache_names_are_unique_and_carry_version_and_arch() {
        let mut seen = HashSet::new();
        for arch in ["arm64", "amd64"] {
            let list = node_artifacts(
                &spec(arch, CniManifest::Calico("3.30.3".into())),
                &Mirrors::default(),
            )
            .unwrap();
            for a in &list {
                assert!(!a.cache_name.contains('/'), "{}", a.cache_name);
                assert!(a.cache_name.contains(&a.version), "{}", a.cache_name);
                // The manifest is the same file for every arch; the rest must differ.
                if a.name != CNI_MANIFEST {
                    assert!(a.cache_name.contains(arch), "{}", a.cache_name);
                    assert!(seen.insert(a.cache_name.clone()), "{}", a.cache_name);
                }
            }
        }
    }

    #[test]
    fn bad_arch_and_versions_are_refused() {
        let err = node_artifacts(
            &spec("armhf", CniManifest::Calico("3.30.3".into())),
            &Mirrors::default(),
        )
        .unwrap_err();
        assert_eq!(err, CatalogError::Arch("armhf".into()));
        for bad in ["", "v", "../1.2", "1.2/3", "1.2 3", "latest"] {
            let mut s = spec("arm64", CniManifest::Calico("3.30.3".into()));
            s.runc = bad.to_owned();
            let err = node_artifacts(&s, &Mirrors::default()).unwrap_err();
            assert!(
                matches!(
                    err,
                    CatalogError::Version {
                        component: "runc",
                        ..
                    }
                ),
                "{bad:?}: {err:?}"
            );
        }
        let s = spec("arm64", CniManifest::Flannel("latest".into()));
        assert!(node_artifacts(&s, &Mirrors::default()).is_err());
    }

    #[test]
    fn pinned_table_entries_parse_and_are_used() {
        for (name, version, hex) in PINNED_MANIFESTS {
            assert!(matches!(*name, "calico" | "flannel"), "{name}");
            assert!(!version.starts_with('v'), "{name} {version}");
            assert!(hex.parse::<Sha256Digest>().is_ok(), "{name} {version}");
            assert_eq!(hex.to_ascii_lowercase(), *hex, "{name} {version}");
        }
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let table = [("calico", "3.30.3", hex)];
        assert_eq!(
            pinned_digest(&table, "calico", "v3.30.3").map(|d| d.to_string()),
            Some(hex.to_owned())
        );
        assert_eq!(pinned_digest(&table, "calico", "3.30.4"), None);
        assert_eq!(pinned_digest(&table, "flannel", "3.30.3"), None);
    }
}
