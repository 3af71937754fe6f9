//! Test stand-in for the cluster's stored state (etcd): one JSON file where real etcd keeps
//! its bbolt database, `/var/lib/etcd/member/snap/db`, so that preserving `/var/lib/etcd` over
//! a reinstall preserves the stand-in cluster exactly as it would the real one. It holds the
//! control plane's Kubernetes version, bootstrap tokens, Nodes and applied objects. Updates
//! take a lock (`/run/k8r-standin/state.lock`), read, change in memory, and replace the file.
//! It does not store whole objects (only their identity and a digest), run controllers, or
//! replicate between masters.

use serde::{Deserialize, Serialize};

use crate::error::{fail, IoContext, Result};
use crate::{fsutil, Env, Version};

/// Where the state lives (real etcd's bbolt file).
pub const DB: &str = "/var/lib/etcd/member/snap/db";
/// The format tag in the file.
pub const FORMAT: &str = "k8r-standin-cluster/1";

/// A bootstrap token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// `id.secret`.
    pub token: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Creation time (Unix seconds).
    pub created: u64,
    /// Time to live in seconds; 0 = never expires.
    pub ttl_seconds: u64,
    /// Usages (`signing`, `authentication`).
    pub usages: Vec<String>,
    /// Extra groups.
    pub groups: Vec<String>,
}

impl Token {
    /// Expiry time, if it expires.
    pub fn expires(&self) -> Option<u64> {
        (self.ttl_seconds > 0).then(|| self.created + self.ttl_seconds)
    }

    /// Still valid at `now`.
    pub fn valid_at(&self, now: u64) -> bool {
        self.expires().is_none_or(|e| now < e)
    }
}

/// A Node object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Name.
    pub name: String,
    /// `Ready` condition is `True`.
    pub ready: bool,
    /// Cordoned.
    pub unschedulable: bool,
    /// The kubelet's version (empty until a kubelet reported).
    pub kubelet_version: String,
    /// Labelled and tainted as a control-plane node.
    pub control_plane: bool,
    /// Creation time.
    pub created: u64,
}

/// An object created by `kubectl apply` or by kubeadm's addons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace` (empty for cluster-scoped or unset).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// SHA-256 of the applied document.
    pub digest: String,
    /// Who created it (`kubectl`, `kubeadm`).
    pub by: String,
    /// Its pod template mounts an `emptyDir` (matters to `kubectl drain`).
    #[serde(default)]
    pub uses_empty_dir: bool,
}

/// The whole stand-in cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    /// [`FORMAT`].
    pub format: String,
    /// The control plane's version.
    pub kubernetes_version: Version,
    /// `clusterName`.
    pub cluster_name: String,
    /// The API endpoint `host:port` (controlPlaneEndpoint or the advertise address).
    pub endpoint: String,
    /// When `kubeadm init` ran.
    pub created: u64,
    /// Bootstrap tokens.
    pub tokens: Vec<Token>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Objects.
    pub objects: Vec<Object>,
    /// The KubeletConfiguration kubeadm stored (kube-system/kubelet-config).
    pub kubelet_config: serde_json::Value,
}

impl ClusterState {
    /// A new cluster.
    pub fn new(version: Version, cluster_name: &str, endpoint: &str, now: u64) -> ClusterState {
        ClusterState {
            format: FORMAT.into(),
            kubernetes_version: version,
            cluster_name: cluster_name.into(),
            endpoint: endpoint.into(),
            created: now,
            tokens: Vec::new(),
            nodes: Vec::new(),
            objects: Vec::new(),
            kubelet_config: serde_json::Value::Null,
        }
    }

    /// Reads the state, if there is one.
    pub fn load(env: &Env) -> Result<Option<ClusterState>> {
        let path = env.path(DB);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("reading", &path),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            fail(format!(
                "k8r stand-in: {} is not stand-in cluster state ({FORMAT}): {e}",
                DB
            ))
        })
    }

    fn save(&self, env: &Env) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| fail(format!("k8r stand-in: encoding cluster state: {e}")))?;
        fsutil::write(&env.path(DB), text + "\n", 0o600)
    }

    /// Writes a new state (under the lock).
    pub fn create(&self, env: &Env) -> Result<()> {
        let _lock = lock(env)?;
        self.save(env)
    }

    /// Locks, loads, applies `change`, saves. Fails if there is no state.
    pub fn update<R>(env: &Env, change: impl FnOnce(&mut ClusterState) -> Result<R>) -> Result<R> {
        let _lock = lock(env)?;
        let mut s = ClusterState::load(env)?
            .ok_or_else(|| fail(format!("k8r stand-in: no cluster state at {DB}")))?;
        let r = change(&mut s)?;
        s.save(env)?;
        Ok(r)
    }

    /// The node called `name`.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// Adds or returns the node called `name` (NotReady, schedulable).
    pub fn node_entry(&mut self, name: &str, now: u64) -> &mut Node {
        if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
            return &mut self.nodes[i];
        }
        self.nodes.push(Node {
            name: name.into(),
            ready: false,
            unschedulable: false,
            kubelet_version: String::new(),
            control_plane: false,
            created: now,
        });
        let last = self.nodes.len() - 1;
        &mut self.nodes[last]
    }
}

/// Held while the state is read and replaced.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] std::fs::File);

/// Takes the state lock.
pub fn lock(env: &Env) -> Result<Lock> {
    let path = env.run_dir()?.join("state.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx("opening", &path)?;
    f.lock().ctx("locking", &path)?;
    Ok(Lock(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TestRoot, NOW, V};

    #[test]
    fn round_trips_under_the_lock_and_refuses_foreign_files() {
        let t = TestRoot::new();
        assert_eq!(ClusterState::load(&t.env).expect("load"), None);
        assert!(
            ClusterState::update(&t.env, |_| Ok(())).is_err(),
            "no state yet"
        );
        ClusterState::new(V, "kubernetes", "k8s.lan:6443", NOW)
            .create(&t.env)
            .expect("create");
        ClusterState::update(&t.env, |s| {
            s.node_entry("pi-1", NOW).ready = true;
            s.node_entry("pi-1", NOW).kubelet_version = "1.31.2".into();
            Ok(())
        })
        .expect("update");
        let s = ClusterState::load(&t.env).expect("load").expect("some");
        assert_eq!(s.nodes.len(), 1);
        assert!(s.nodes[0].ready);
        assert!(t.read(DB).contains("\"kubernetesVersion\": \"1.31.2\""));
        t.file(DB, "bbolt bytes");
        assert!(ClusterState::load(&t.env).is_err());
    }

    #[test]
    fn token_expiry() {
        let t = Token {
            token: "abcdef.0123456789abcdef".into(),
            description: String::new(),
            created: 100,
            ttl_seconds: 60,
            usages: vec![],
            groups: vec![],
        };
        assert!(t.valid_at(159));
        assert!(!t.valid_at(160));
        let forever = Token {
            ttl_seconds: 0,
            ..t
        };
        assert!(forever.valid_at(u64::MAX));
        assert_eq!(forever.expires(), None);
    }
}
