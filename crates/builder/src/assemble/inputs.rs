//! From a validated configuration to what a build is made of.

use std::path::Path;

use super::BuildInputs;
use crate::config::{BuildConfig, Cni};
use crate::fetch::{self, CatalogError, CniManifest, NodeSpec};

impl BuildInputs {
    /// The build inputs `cfg` asks for; `base_image` overrides its `IMAGE`.
    ///
    /// # Errors
    /// The download list cannot be made from the configured versions and mirrors.
    pub fn from_config(cfg: &BuildConfig, base_image: Option<&Path>) -> Result<Self, CatalogError> {
        let arch = cfg.arch.to_string();
        let (cni, cni_manifest_name) = match cfg.cni {
            Cni::Calico { version } => (CniManifest::Calico(version.to_string()), "calico.yaml"),
            Cni::Flannel { version } => (
                CniManifest::Flannel(version.to_string()),
                "kube-flannel.yml",
            ),
        };
        let spec = NodeSpec {
            arch: arch.clone(),
            k8s: cfg.k8s_version.to_string(),
            containerd: cfg.components.containerd.to_string(),
            runc: cfg.components.runc.to_string(),
            cni_plugins: cfg.components.cni_plugins.to_string(),
            crictl: cfg.components.crictl.to_string(),
            cni,
        };
        let mirrors = fetch::Mirrors {
            k8s_release: cfg.mirrors.k8s_release_url.clone(),
            github: cfg.mirrors.github_url.clone(),
            github_raw: cfg.mirrors.github_raw_url.clone(),
        };
        let artifacts = fetch::node_artifacts(&spec, &mirrors)?;
        Ok(BuildInputs {
            base_image: base_image.map_or_else(|| cfg.image.clone(), Path::to_path_buf),
            arch,
            k8s_version: cfg.k8s_version.to_string(),
            artifacts,
            cni_manifest_name: cni_manifest_name.to_owned(),
            image_cfg: cfg.render_image_cfg(),
            node_cfg: cfg.render_cfg(),
            password_hash: cfg.password_hash.clone(),
            root_size: cfg.root_size.map(|s| s.bytes),
            containerd_major: cfg.components.containerd.major,
        })
    }
}
