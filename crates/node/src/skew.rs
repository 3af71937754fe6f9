//! Version skew: what a node may do when its image carries another Kubernetes than the
//! cluster runs (kubernetes-node.md §4.1, §4.2; kubeadm's own policy is the same: one minor
//! at a time, never down).
//!
//! Pure: versions in, a decision out.

use k8r_config::Version;

/// What a control-plane node does at boot, given the cluster's version and its image's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// Same version: nothing to do.
    None,
    /// `kubeadm upgrade apply v<to>` (a patch, or the next minor).
    Apply {
        /// The image's version.
        to: Version,
    },
    /// Refused: the image skips at least one minor. The node keeps its old control plane.
    SkipsMinor {
        /// The cluster's version.
        from: Version,
        /// The image's version.
        to: Version,
    },
    /// Refused: the image is older than the cluster.
    Downgrade {
        /// The cluster's version.
        from: Version,
        /// The image's version.
        to: Version,
    },
}

/// The decision for a control plane at `cluster` with an image carrying `image`.
pub fn control_plane(cluster: Version, image: Version) -> Upgrade {
    if image == cluster {
        return Upgrade::None;
    }
    if image < cluster {
        return Upgrade::Downgrade {
            from: cluster,
            to: image,
        };
    }
    if image.major != cluster.major || image.minor > cluster.minor + 1 {
        return Upgrade::SkipsMinor {
            from: cluster,
            to: image,
        };
    }
    Upgrade::Apply { to: image }
}

impl Upgrade {
    /// The operator's message for a refusal (`None` for the others).
    pub fn refusal(&self) -> Option<String> {
        match self {
            Upgrade::SkipsMinor { from, to } => Some(format!(
                "this image carries Kubernetes {to}, the cluster runs {from}: kubeadm upgrades one \
                 minor version at a time, so {from} cannot go to {to} directly. The node keeps \
                 running its {from} control plane. Install an image with Kubernetes {}.{}.x first \
                 (k8r update-image, then k8r reinstall), then this one",
                from.major,
                from.minor + 1
            )),
            Upgrade::Downgrade { from, to } => Some(format!(
                "this image carries Kubernetes {to}, older than the cluster's {from}: kubeadm \
                 cannot downgrade a control plane. The node keeps running its {from} control \
                 plane. Install an image with Kubernetes {from} or newer"
            )),
            Upgrade::None | Upgrade::Apply { .. } => None,
        }
    }
}

/// Whether a kubelet of `kubelet` may run against an API server of `apiserver`: never newer,
/// at most three minors older (kubernetes-node.md §4.2).
pub fn kubelet_supported(kubelet: Version, apiserver: Version) -> bool {
    kubelet.major == apiserver.major
        && kubelet.minor <= apiserver.minor
        && apiserver.minor - kubelet.minor <= 3
}

/// Why a node whose image's kubelet is `kubelet` must not join a control plane running
/// `apiserver` (the operator's message), or `None` when it may.
pub fn join_refusal(kubelet: Version, apiserver: Version) -> Option<String> {
    if kubelet_supported(kubelet, apiserver) {
        return None;
    }
    Some(if kubelet > apiserver {
        format!(
            "this image's kubelet ({kubelet}) is newer than the cluster's control plane ({apiserver}), which \
             Kubernetes does not support: upgrade the master first (install this image there), then this node"
        )
    } else {
        format!(
            "this image's kubelet ({kubelet}) is more than three minor versions older than the cluster's \
             control plane ({apiserver}), which Kubernetes does not support: install an image with \
             Kubernetes {}.{}.x or newer on this node (k8r update-image, then k8r reinstall)",
            apiserver.major,
            apiserver.minor.saturating_sub(3)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect("version")
    }

    #[test]
    fn the_rules() {
        assert_eq!(control_plane(v("1.31.2"), v("1.31.2")), Upgrade::None);
        assert_eq!(
            control_plane(v("1.31.2"), v("1.31.5")),
            Upgrade::Apply { to: v("1.31.5") },
            "patch up"
        );
        assert_eq!(
            control_plane(v("1.31.2"), v("1.32.0")),
            Upgrade::Apply { to: v("1.32.0") },
            "minor up by one"
        );
        assert!(
            matches!(
                control_plane(v("1.31.2"), v("1.33.0")),
                Upgrade::SkipsMinor { .. }
            ),
            "minor skip"
        );
        assert!(
            matches!(
                control_plane(v("1.31.2"), v("1.31.1")),
                Upgrade::Downgrade { .. }
            ),
            "patch down"
        );
        assert!(
            matches!(
                control_plane(v("1.32.0"), v("1.31.9")),
                Upgrade::Downgrade { .. }
            ),
            "minor down"
        );
        assert!(
            matches!(
                control_plane(v("1.31.2"), v("2.0.0")),
                Upgrade::SkipsMinor { .. }
            ),
            "major"
        );
    }

    #[test]
    fn refusals_name_the_image_to_install_first() {
        let m = control_plane(v("1.31.2"), v("1.33.0"))
            .refusal()
            .expect("refused");
        assert!(
            m.contains("1.32.x first") && m.contains("keeps running its 1.31.2"),
            "{m}"
        );
        let m = control_plane(v("1.32.0"), v("1.31.9"))
            .refusal()
            .expect("refused");
        assert!(m.contains("cannot downgrade"), "{m}");
        assert_eq!(control_plane(v("1.31.2"), v("1.32.0")).refusal(), None);
    }

    #[test]
    fn kubelet_skew() {
        assert!(kubelet_supported(v("1.31.0"), v("1.31.5")));
        assert!(kubelet_supported(v("1.28.0"), v("1.31.5")));
        assert!(
            !kubelet_supported(v("1.27.0"), v("1.31.5")),
            "four minors older"
        );
        assert!(
            !kubelet_supported(v("1.32.0"), v("1.31.5")),
            "newer than the API server"
        );
    }

    #[test]
    fn a_join_is_refused_outside_the_kubelet_skew() {
        assert_eq!(join_refusal(v("1.31.2"), v("1.31.2")), None);
        assert_eq!(join_refusal(v("1.30.0"), v("1.31.2")), None);
        let m = join_refusal(v("1.31.2"), v("1.30.4")).expect("newer");
        assert!(
            m.contains("(1.31.2) is newer than the cluster's control plane (1.30.4)")
                && m.contains("upgrade the master first"),
            "{m}"
        );
        let m = join_refusal(v("1.27.9"), v("1.31.2")).expect("too old");
        assert!(
            m.contains("more than three minor versions older") && m.contains("1.28.x or newer"),
            "{m}"
        );
        assert!(!m.contains("  "), "{m:?}");
    }

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!(v("v1.31.2"), Version::new(1, 31, 2));
        assert!("1.31".parse::<Version>().is_err());
        assert!("1.31.x".parse::<Version>().is_err());
    }
}
