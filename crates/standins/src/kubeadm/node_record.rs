//! Test stand-in record of what kubeadm did on this node: `/var/lib/kubelet/k8r-standin-node.json`
//! (name, role, endpoint, control-plane version, when), written by `init` and `join` so tests
//! can see that a node joined, and read by the kubelet stand-in for its node name. The real
//! kubeadm writes no such file; `kubeadm reset` removes it with the rest of `/var/lib/kubelet`.

use serde::{Deserialize, Serialize};

use crate::error::{fail, Result};
use crate::{fsutil, Env};

/// The record's path.
pub const PATH: &str = "/var/lib/kubelet/k8r-standin-node.json";

/// What kubeadm did here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// Node name.
    pub name: String,
    /// `control-plane` or `worker`.
    pub role: String,
    /// The cluster's API endpoint.
    pub endpoint: String,
    /// The control plane's version when this node was set up.
    pub control_plane_version: String,
    /// `init` or `join`.
    pub by: String,
    /// Unix seconds.
    pub at: u64,
}

/// Writes the record.
pub fn save(env: &Env, r: &NodeRecord) -> Result<()> {
    let text = serde_json::to_string_pretty(r)
        .map_err(|e| fail(format!("k8r stand-in: encoding node record: {e}")))?;
    fsutil::write(&env.path(PATH), text + "\n", 0o644)
}

/// Reads the record, if any.
pub fn load(env: &Env) -> Option<NodeRecord> {
    let text = std::fs::read_to_string(env.path(PATH)).ok()?;
    serde_json::from_str(&text).ok()
}
