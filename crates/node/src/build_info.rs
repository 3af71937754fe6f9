//! The running image's facts (`/usr/lib/k8r/build-info`, written by the builder).

use anyhow::{anyhow, Context, Result};
use k8r_card::image_root::{build_info as key, parse_info, BUILD_INFO};
use k8r_config::Version;

use crate::host::Host;

/// What the image says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The build id.
    pub build_id: String,
    /// The Kubernetes version it carries.
    pub k8s_version: Version,
    /// `arm64`.
    pub arch: String,
    /// When it was built (seconds since the epoch; 0 if the builder did not say).
    pub build_epoch: u64,
    /// The CNI manifest's file name in `/usr/lib/k8r/cni`.
    pub cni_manifest: Option<String>,
}

impl BuildInfo {
    /// Parses the file's text. Pure.
    pub fn parse(text: &str) -> Result<BuildInfo> {
        let info = parse_info(text);
        let get = |k: &str| info.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let need = |k: &str| get(k).ok_or_else(|| anyhow!("{BUILD_INFO} has no {k}="));
        Ok(BuildInfo {
            build_id: need(key::BUILD_ID)?,
            k8s_version: need(key::K8S_VERSION)?
                .parse()
                .map_err(|e| anyhow!("{BUILD_INFO}: {e}"))?,
            arch: get(key::ARCH).unwrap_or_else(|| "arm64".into()),
            build_epoch: get(key::BUILD_EPOCH)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            cni_manifest: get(key::CNI_MANIFEST).filter(|v| !v.is_empty()),
        })
    }

    /// Reads it from `host`.
    pub fn load(host: &Host) -> Result<BuildInfo> {
        let text = host.read_text_opt(BUILD_INFO)?.ok_or_else(|| {
            anyhow!("{BUILD_INFO} is missing: this root was not built by k8r-builder")
        })?;
        BuildInfo::parse(&text).with_context(|| format!("reading {BUILD_INFO}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_builders_file() {
        let b = BuildInfo::parse(
            "BUILD_ID=20260423T000000Z-1a2b3c4d\nK8S_VERSION=1.31.2\nARCH=arm64\nBUILD_EPOCH=1776902400\nCNI_MANIFEST=calico.yaml\n",
        )
        .expect("parse");
        assert_eq!(b.k8s_version, Version::new(1, 31, 2));
        assert_eq!(b.build_epoch, 1_776_902_400);
        assert_eq!(b.cni_manifest.as_deref(), Some("calico.yaml"));
        assert!(
            BuildInfo::parse("K8S_VERSION=1.31.2\n").is_err(),
            "no build id"
        );
    }
}
