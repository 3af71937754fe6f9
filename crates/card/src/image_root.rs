//! What k8r puts into the working root (p3) at build time and where the node agent finds it:
//! one list, so the builder writes and the agent reads the same paths.

/// The node agent.
pub const AGENT: &str = "/usr/local/bin/k8r";
/// k8r's directory in the root.
pub const K8R_LIB: &str = "/usr/lib/k8r";
/// The node's effective settings (mode 0600): written by the agent at every boot from the
/// build's configuration and the node's own settings on the recovery partition; operators
/// may edit it (the seed's documented way), the agent copies their node settings back.
pub const VARIABLES: &str = "/usr/lib/k8r/variables.cfg";
/// The build's own configuration, without node secrets (so mode 0644). The base every boot
/// merges the node's own settings over.
pub const BUILD_VARIABLES: &str = "/usr/lib/k8r/build-variables.cfg";
/// `KEY=value` facts of the build (`BUILD_ID`, `K8S_VERSION`, `BUILD_EPOCH`, …).
pub const BUILD_INFO: &str = "/usr/lib/k8r/build-info";
/// The signing keys the build was made with (`TRUSTED_KEYS`), in minisign's `.pub` format:
/// the node agent makes them the card's when the build commits (`crate::trust`).
pub const TRUSTED_KEYS: &str = "/usr/lib/k8r/trusted-keys";
/// The worker join command a master writes (mode 0600), the seed's path.
pub const JOIN_STRING: &str = "/usr/lib/k8r/join_string";
/// The CNI manifests the image carries.
pub const CNI_DIR: &str = "/usr/lib/k8r/cni";
/// The seed's operator scripts (thin wrappers around the agent).
pub const TASKS_DIR: &str = "/usr/lib/k8r/tasks";
/// Temporary files, locks and so on (the seed's path).
pub const SPOOL: &str = "/var/spool/k8r";
/// The agent's own log.
pub const AGENT_LOG: &str = "/var/log/k8r.log";
/// kubeadm's output, as the seed had it.
pub const KUBEADM_LOG: &str = "/var/log/kubeadm.log";
/// Where the agent mounts the recovery partition while it reads or writes it.
pub const RECOVERY_MOUNT: &str = "/run/k8r/recovery";

/// `BUILD_INFO` keys.
pub mod build_info {
    /// The build id (the image store's directory name).
    pub const BUILD_ID: &str = "BUILD_ID";
    /// The Kubernetes version the image carries.
    pub const K8S_VERSION: &str = "K8S_VERSION";
    /// `arm64`.
    pub const ARCH: &str = "ARCH";
    /// Seconds since the epoch the build was made at (SOURCE_DATE_EPOCH): a clock earlier
    /// than this is certainly wrong.
    pub const BUILD_EPOCH: &str = "BUILD_EPOCH";
    /// The CNI manifest's file name in [`super::CNI_DIR`].
    pub const CNI_MANIFEST: &str = "CNI_MANIFEST";
    /// The base kernel's release.
    pub const BASE_KERNEL: &str = "BASE_KERNEL";
    /// The builder's version.
    pub const BUILDER: &str = "BUILDER";
}

/// Parses `KEY=value` lines (`#` comments and blank lines skipped; values unquoted).
pub fn parse_info(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines() {
        let info = parse_info("# build\nBUILD_ID=b1\nK8S_VERSION=\"1.31.2\"\n\nbroken\n");
        assert_eq!(
            info,
            vec![
                ("BUILD_ID".to_owned(), "b1".to_owned()),
                ("K8S_VERSION".to_owned(), "1.31.2".to_owned())
            ]
        );
    }

    #[test]
    fn paths_are_absolute_and_under_their_dirs() {
        for p in [
            AGENT,
            VARIABLES,
            BUILD_VARIABLES,
            BUILD_INFO,
            JOIN_STRING,
            CNI_DIR,
            TRUSTED_KEYS,
        ] {
            assert!(p.starts_with('/'), "{p}");
        }
        for p in [
            VARIABLES,
            BUILD_VARIABLES,
            BUILD_INFO,
            JOIN_STRING,
            TRUSTED_KEYS,
        ] {
            assert!(p.starts_with(K8R_LIB), "{p}");
        }
    }
}
