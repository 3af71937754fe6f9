//! The data partition (p4, `k8r-data`): what a node keeps across a reinstall, and where.
//!
//! The working root (p3) is rewritten from the image on every reinstall; everything a node
//! must not lose lives here instead, mounted at [`DATA_MOUNT`] by the node agent early in
//! every boot and bind-mounted over the root's directories (kubernetes-node.md §4.4, §5):
//!
//! | on k8r-data                 | in the root                | kept for       | why |
//! |-----------------------------|----------------------------|----------------|-----|
//! | `kept/etc-kubernetes`       | `/etc/kubernetes`          | control plane  | pki, kubeconfigs, static pod manifests |
//! | `kept/var-lib-etcd`         | `/var/lib/etcd`            | control plane  | the cluster's state |
//! | `kept/var-lib-kubelet-pki`  | `/var/lib/kubelet/pki`     | control plane  | the kubelet's client certificate |
//! | `kubelet/config.yaml`, `kubelet/kubeadm-flags.env` | `/var/lib/kubelet/…` | control plane | written by kubeadm, needed by the kubelet's unit |
//! | `kept/var-lib-containerd`   | `/var/lib/containerd`      | every node     | the container image store: no re-pull after a reinstall |
//! | `identity/machine-id`       | `/etc/machine-id`          | every node     | the same machine id after a wipe |
//! | `identity/ssh/`             | `/etc/ssh/ssh_host_*`      | every node     | no "host key changed" after a wipe |
//! | `join_string`               | `/usr/lib/k8r/join_string` | control plane  | the worker join command, mode 0600 |
//! | `etcd-snapshots/`           | —                          | control plane  | cold copies of etcd taken before an upgrade |
//! | `node-state`                | —                          | every node     | the role and the last build booted |
//!
//! A worker keeps no Kubernetes identity on purpose: after a reinstall it joins again with a
//! fresh one (`kubeadm join`'s preflight refuses an existing `kubelet.conf`).

/// Where the node agent mounts the data partition.
pub const DATA_MOUNT: &str = "/var/lib/k8r-data";

/// Which nodes keep a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptBy {
    /// Control-plane nodes only.
    ControlPlane,
    /// Every node.
    Every,
}

/// A directory of the root kept on the data partition by a bind mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptDir {
    /// Its directory on the data partition.
    pub on_data: &'static str,
    /// The directory of the root it is mounted over.
    pub in_root: &'static str,
    /// Which nodes keep it.
    pub kept_by: KeptBy,
}

/// The kept etcd data directory on the data partition.
pub const ETCD_DIR: &str = "kept/var-lib-etcd";

/// The kept directories, in mount order.
pub const KEPT_DIRS: &[KeptDir] = &[
    KeptDir {
        on_data: "kept/etc-kubernetes",
        in_root: "/etc/kubernetes",
        kept_by: KeptBy::ControlPlane,
    },
    KeptDir {
        on_data: ETCD_DIR,
        in_root: "/var/lib/etcd",
        kept_by: KeptBy::ControlPlane,
    },
    KeptDir {
        on_data: "kept/var-lib-kubelet-pki",
        in_root: "/var/lib/kubelet/pki",
        kept_by: KeptBy::ControlPlane,
    },
    KeptDir {
        on_data: "kept/var-lib-containerd",
        in_root: "/var/lib/containerd",
        kept_by: KeptBy::Every,
    },
];

/// The kubelet files kubeadm writes outside the kept directories (copied, not mounted: they
/// change only when the agent runs kubeadm), as (on data, in root).
pub const KUBELET_FILES: &[(&str, &str)] = &[
    ("kubelet/config.yaml", "/var/lib/kubelet/config.yaml"),
    (
        "kubelet/kubeadm-flags.env",
        "/var/lib/kubelet/kubeadm-flags.env",
    ),
];

/// The kept machine id.
pub const MACHINE_ID: &str = "identity/machine-id";
/// The kept SSH host keys (`ssh_host_*`), from `/etc/ssh`.
pub const SSH_HOST_KEYS: &str = "identity/ssh";
/// The root's SSH directory.
pub const ROOT_SSH_DIR: &str = "/etc/ssh";
/// The worker join command on the data partition (mode 0600).
pub const JOIN_STRING: &str = "join_string";
/// Cold etcd snapshots.
pub const ETCD_SNAPSHOTS: &str = "etcd-snapshots";
/// How many etcd snapshots are kept.
pub const ETCD_SNAPSHOTS_KEPT: usize = 3;
/// The node's own record (role, last build booted).
pub const NODE_STATE: &str = "node-state";
/// The control plane's admin kubeconfig, whose presence on the data partition means "this
/// data partition holds a cluster".
pub const ADMIN_CONF: &str = "kept/etc-kubernetes/admin.conf";

/// The kept directories for a node that is (or is not) a control-plane node.
pub fn kept_dirs(control_plane: bool) -> impl Iterator<Item = &'static KeptDir> {
    KEPT_DIRS
        .iter()
        .filter(move |k| control_plane || k.kept_by == KeptBy::Every)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_keeps_no_kubernetes_identity() {
        let worker: Vec<&str> = kept_dirs(false).map(|k| k.in_root).collect();
        assert_eq!(worker, vec!["/var/lib/containerd"]);
        let master: Vec<&str> = kept_dirs(true).map(|k| k.in_root).collect();
        assert!(master.contains(&"/etc/kubernetes") && master.contains(&"/var/lib/etcd"));
    }

    #[test]
    fn kept_paths_are_relative_on_data_and_absolute_in_root() {
        for k in KEPT_DIRS {
            assert!(
                !k.on_data.starts_with('/') && !k.on_data.contains(".."),
                "{k:?}"
            );
            assert!(k.in_root.starts_with('/'), "{k:?}");
        }
        assert!(ADMIN_CONF.starts_with(KEPT_DIRS[0].on_data));
    }
}
