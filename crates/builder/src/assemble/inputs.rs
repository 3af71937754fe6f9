//! From a validated configuration to what a build is made of.

use std::path::Path;

use super::BuildInputs;
use crate::config::{BuildConfig, Cni};
use crate::fetch::{self, CatalogError, CniManifest, NodeSpec, VersionOrigin, VersionSet};

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
        let mut artifacts = fetch::node_artifacts(&spec, &mirrors)?;
        for a in &mut artifacts {
            a.version_origin = version_origin(cfg, &a.name);
        }
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
            kernel_cmdline: cfg.kernel_cmdline.clone(),
            compression: cfg.compression,
            trusted_keys: k8r_manifest::signature::TrustedKeys::default(),
        })
    }
}

/// Which key set the version of artefact `name`, and whether it was a default.
fn version_origin(cfg: &BuildConfig, name: &str) -> Option<VersionOrigin> {
    let d = cfg.components.defaulted;
    let c = &cfg.components;
    let (key, defaulted, default) = match name {
        "kubeadm" | "kubelet" | "kubectl" => ("K8S_VERSION", false, String::new()),
        "containerd" => (
            "CONTAINERD_VERSION",
            d.containerd,
            format!("its default is {}", c.containerd),
        ),
        "runc" => ("RUNC_VERSION", d.runc, format!("its default is {}", c.runc)),
        "cni-plugins" => (
            "CNI_PLUGINS_VERSION",
            d.cni_plugins,
            format!("its default is {}", c.cni_plugins),
        ),
        "crictl" => (
            "CRICTL_VERSION",
            d.crictl,
            format!("its default follows K8S_VERSION (1.MINOR.0: {})", c.crictl),
        ),
        fetch::CNI_MANIFEST => match cfg.cni {
            Cni::Calico { version } => {
                ("CALICO_VERSION", d.cni, format!("its default is {version}"))
            }
            Cni::Flannel { version } => (
                "FLANNEL_VERSION",
                d.cni,
                format!("its default is {version}"),
            ),
        },
        _ => return None,
    };
    let set = if defaulted {
        VersionSet::Default { rule: default }
    } else {
        VersionSet::Given {
            file: cfg.source_file().to_path_buf(),
        }
    };
    Some(VersionOrigin { key, set })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    fn origin_of(text: &str, name: &str) -> VersionOrigin {
        let cfg = crate::config::parse_cfg(Path::new("/site/variables.cfg"), text).unwrap();
        let inputs = BuildInputs::from_config(&cfg, None).unwrap();
        let a = inputs.artifacts.iter().find(|a| a.name == name).unwrap();
        a.version_origin.clone().unwrap()
    }

    #[test]
    fn artefacts_know_the_key_that_set_their_version() {
        let base = "IMAGE=\"b.img\"\nK8S_VERSION=\"1.32.3\"\n";
        let crictl = origin_of(base, "crictl");
        assert_eq!(crictl.key, "CRICTL_VERSION");
        assert_eq!(
            crictl.not_found_hint("1.32.0"),
            "CRICTL_VERSION was not set, its default follows K8S_VERSION (1.MINOR.0: 1.32.0); \
             set CRICTL_VERSION to a released version"
        );
        let given = origin_of(&format!("{base}CRICTL_VERSION=\"1.99.0\"\n"), "crictl");
        assert_eq!(
            given.not_found_hint("1.99.0"),
            "CRICTL_VERSION=\"1.99.0\" in /site/variables.cfg: is that a released version?"
        );
        assert_eq!(origin_of(base, "kubeadm").key, "K8S_VERSION");
        let calico = origin_of(base, fetch::CNI_MANIFEST);
        assert_eq!(calico.key, "CALICO_VERSION");
        assert!(matches!(calico.set, VersionSet::Default { .. }));
    }
}
