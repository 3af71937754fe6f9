//! The canonical `variables.cfg` the builder bakes into the image: every key, in documented
//! order, as `KEY="value"` (empty for "not set"), values escaped for bash and for our parser.

use std::fmt::Write as _;

use super::keys::KEYS;
use super::BuildConfig;

/// `"value"` with `\`, `"`, `$` and `` ` `` escaped (bash and [`super::parse_cfg`] agree on it).
pub(crate) fn quote_cfg(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A TOML basic string.
pub(crate) fn quote_toml(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// The canonical text of one key, `None` for a name that is not in the table.
pub(crate) fn value_of(config: &BuildConfig, name: &str) -> Option<String> {
    let c = config;
    let v = &c.components;
    let m = &c.mirrors;
    Some(match name {
        "IMAGE" => c.image.to_string_lossy().into_owned(),
        "K8S_VERSION" => c.k8s_version.to_string(),
        "CONTROL_PLANE_ENDPOINT" => c
            .control_plane_endpoint
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        "KUBEADM_JOIN_STRING" => c.join.as_ref().map(|j| j.raw.clone()).unwrap_or_default(),
        "TOKEN_TTL" => c.token_ttl.clone(),
        "CNI_TYPE" => c.cni.name().to_string(),
        "POD_NETWORK_CIDR" => c.pod_network_cidr.clone(),
        "CALICO_VERSION" => match c.cni {
            super::Cni::Calico { version } => version.to_string(),
            super::Cni::Flannel { .. } => super::keys::DEFAULT_CALICO_VERSION.to_string(),
        },
        "FLANNEL_VERSION" => match c.cni {
            super::Cni::Flannel { version } => version.to_string(),
            super::Cni::Calico { .. } => super::keys::DEFAULT_FLANNEL_VERSION.to_string(),
        },
        "HTTP_IMAGE_URL" => c
            .http_image_url
            .as_ref()
            .map(|u| u.prefix.clone())
            .unwrap_or_default(),
        "HOSTNAME_PREFIX" => c.hostname_prefix.clone(),
        "NODE_NAME" => c.node_name.clone().unwrap_or_default(),
        "TRIAL_TIMEOUT" => super::validate::render_duration(c.trial_timeout_secs),
        "KERNEL_CMDLINE" => c.kernel_cmdline.join(" "),
        "ROOT_SIZE" => c.root_size.map(|s| s.to_string()).unwrap_or_default(),
        "COMPRESSION" => c.compression.name().to_string(),
        "ARCH" => c.arch.to_string(),
        "CONTAINERD_VERSION" => v.containerd.to_string(),
        "RUNC_VERSION" => v.runc.to_string(),
        "CNI_PLUGINS_VERSION" => v.cni_plugins.to_string(),
        "CRICTL_VERSION" => v.crictl.to_string(),
        "K8S_RELEASE_URL" => m.k8s_release_url.clone(),
        "GITHUB_URL" => m.github_url.clone(),
        "GITHUB_RAW_URL" => m.github_raw_url.clone(),
        "SIGNING_KEY" | "TRUSTED_KEYS" => String::new(),
        _ => return None,
    })
}

/// Every key of `config` in documented order; the keys in `withheld` are written empty, with a
/// comment saying where their value lives instead.
pub(crate) fn render(config: &BuildConfig, withheld: &[&str]) -> String {
    let mut out = String::from(
        "# k8r build configuration, rendered by k8r-builder.\n\
         # Every key is listed; an empty value means \"not set\". See variables.cfg.example.\n",
    );
    for key in KEYS {
        if super::BUILD_INPUT_KEYS.contains(&key.name) {
            let _ = writeln!(
                out,
                "# {} names a file on the build machine: it is not kept on the card.\n{}=\"\"",
                key.name, key.name
            );
            continue;
        }
        if withheld.contains(&key.name) {
            let _ = writeln!(
                out,
                "# {} is kept only in this node's own settings (k8r/node/variables.cfg on the recovery partition).\n{}=\"\"",
                key.name, key.name
            );
            continue;
        }
        let value = value_of(config, key.name).unwrap_or_default();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}={}", key.name, quote_cfg(&value));
    }
    out
}
