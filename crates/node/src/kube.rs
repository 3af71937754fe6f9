//! The Kubernetes tools the image carries (`/usr/local/bin/kubeadm`, `kubectl`), called
//! the way k8r needs them, and what k8r reads back from their output and files.
//!
//! kubeadm's output goes to `/var/log/kubeadm.log`, as the seed had it. The tools run inside
//! the host's root: paths in their arguments are the root's own (`/etc/kubernetes/admin.conf`),
//! which on a node is the same as the agent's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8r_card::image_root::KUBEADM_LOG;
use k8r_config::Version;

use crate::exec::{Cmd, ExecError, Output};
use crate::host::Host;

/// The admin kubeconfig `kubeadm init` writes.
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// The API server's static pod manifest (its image tag is the control plane's version).
pub const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
/// The kubelet's kubeconfig: present once the node joined (or was initialised).
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";

/// The tools on `host`.
#[derive(Debug, Clone)]
pub struct Kube {
    host: Host,
}

impl Kube {
    /// The tools of `host`.
    pub fn new(host: &Host) -> Kube {
        Kube { host: host.clone() }
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.host.path(&format!("/usr/local/bin/{name}"))
    }

    /// `kubeadm ARGS`, its output appended to the kubeadm log.
    pub fn kubeadm<S: AsRef<str>>(&self, args: impl IntoIterator<Item = S>) -> Cmd {
        Cmd::new(self.tool("kubeadm"))
            .args(args)
            .log_to(&self.host.path(KUBEADM_LOG))
    }

    /// `kubectl --kubeconfig admin.conf ARGS`.
    pub fn kubectl<S: AsRef<str>>(&self, args: impl IntoIterator<Item = S>) -> Cmd {
        Cmd::new(self.tool("kubectl"))
            .args(["--kubeconfig", ADMIN_CONF])
            .args(args)
    }

    /// Waits until the local API server answers `/readyz` with `ok`, for at most `limit`,
    /// saying so every `every`.
    pub fn wait_ready(&self, limit: Duration, every: Duration) -> Result<()> {
        let start = Instant::now();
        let mut said = Instant::now();
        loop {
            let answer = self.kubectl(["get", "--raw=/readyz"]).quiet().run_status();
            let last = match answer {
                Ok(Output {
                    code: 0, stdout, ..
                }) if stdout.trim() == "ok" => return Ok(()),
                Ok(out) => crate::exec::tail(&out.text(), 1),
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= limit {
                bail!(
                    "the local API server did not become ready within {}s (last answer: {last})",
                    limit.as_secs()
                );
            }
            if said.elapsed() >= every {
                log::info!(
                    "waiting for the local API server (/readyz) ({}s so far: {last})",
                    start.elapsed().as_secs()
                );
                said = Instant::now();
            }
            std::thread::sleep(Duration::from_secs(2).min(every));
        }
    }

    /// The control plane's Kubernetes version: the image tag of the API server's static pod
    /// (`registry.k8s.io/kube-apiserver:v1.31.2`).
    pub fn control_plane_version(&self) -> Result<Version> {
        let path = self.host.path(APISERVER_MANIFEST);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        apiserver_version(&text).with_context(|| {
            format!(
                "{}: no kube-apiserver image with a version tag",
                path.display()
            )
        })
    }

    /// The Kubernetes version of the API server at `endpoint` (`host:port`), asked before this
    /// node has any credentials: `kubectl version` against it, which reads `/version` (every
    /// API server answers it anonymously, `system:public-info-viewer`). The server's
    /// certificate is not checked: the node learns the cluster's CA only in kubeadm's
    /// discovery, which checks it against the join command's hash. Nothing secret is sent, and
    /// the answer only lets a join be refused before kubeadm runs; kubeadm checks again.
    pub fn remote_version(&self, endpoint: &str) -> Result<Version> {
        let server = format!("https://{endpoint}");
        let out = Cmd::new(self.tool("kubectl"))
            .args([
                "--server",
                server.as_str(),
                "--insecure-skip-tls-verify",
                "--request-timeout",
                "10s",
                "version",
                "-o",
                "json",
            ])
            .run()
            .with_context(|| format!("asking {server} for its version"))?;
        server_version(&out.stdout)
            .with_context(|| format!("{server}: no server version in kubectl's answer"))
    }

    /// A fresh worker join command (`kubeadm token create --print-join-command`).
    pub fn new_join_command(&self, ttl: &str) -> Result<String> {
        let out = self
            .kubeadm(["token", "create", "--print-join-command", "--ttl", ttl])
            .run()
            .context("creating a join token")?;
        join_command(&out.stdout).context("kubeadm printed no join command")
    }

    /// The bootstrap token ids kubeadm lists as valid (`kubeadm token list -o json`).
    pub fn valid_tokens(&self) -> Result<Vec<String>> {
        let out = self
            .kubeadm(["token", "list", "-o", "json"])
            .quiet()
            .run()
            .context("listing the join tokens")?;
        Ok(token_ids(&out.stdout))
    }
}

/// The version in a kube-apiserver manifest's `image:` line. Pure.
pub fn apiserver_version(manifest: &str) -> Option<Version> {
    manifest.lines().find_map(|l| {
        let image = l.trim().strip_prefix("image:")?.trim().trim_matches('"');
        let (name, tag) = image.rsplit_once(':')?;
        name.ends_with("kube-apiserver")
            .then(|| tag.parse().ok())
            .flatten()
    })
}

/// The server's version in `kubectl version -o json` output (`serverVersion.gitVersion`).
/// Pure.
pub fn server_version(output: &str) -> Option<Version> {
    let v: serde_json::Value = serde_json::from_str(output).ok()?;
    v.get("serverVersion")?
        .get("gitVersion")?
        .as_str()?
        .parse()
        .ok()
}

/// The worker join command in kubeadm's output (`kubeadm init`, `token create
/// --print-join-command`): the last `kubeadm join …` that is not a control-plane join, its
/// continuation lines (`\` at the end) joined. Pure.
pub fn join_command(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().collect();
    let mut found = None;
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("kubeadm join ") {
            let mut words = Vec::new();
            let mut j = i;
            loop {
                let l = lines[j].trim();
                let (text, more) = match l.strip_suffix('\\') {
                    Some(t) => (t, true),
                    None => (l, false),
                };
                words.extend(text.split_whitespace().map(str::to_owned));
                if !more || j + 1 >= lines.len() {
                    break;
                }
                j += 1;
            }
            if !words.iter().any(|w| w == "--control-plane") {
                found = Some(words.join(" "));
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    found
}

/// The token ids in `kubeadm token list -o json` output (one JSON object per token, as
/// kubeadm prints them one after the other). Pure.
pub fn token_ids(output: &str) -> Vec<String> {
    serde_json::Deserializer::from_str(output)
        .into_iter::<serde_json::Value>()
        .flatten()
        .filter_map(|v| v.get("token")?.as_str().map(str::to_owned))
        .collect()
}

/// Why a `kubeadm join` failed, read from its output. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinFailure {
    /// A Ready Node of the same name is still in the cluster (a reinstalled worker came back
    /// before the node controller's grace period): retrying later works.
    StaleNode,
    /// The token is expired or unknown to the cluster.
    BadToken,
    /// The image's kubelet is newer than the control plane.
    KubeletTooNew,
    /// Anything else.
    Other,
}

/// Classifies a failed join by its output.
pub fn join_failure(output: &str) -> JoinFailure {
    let o = output.to_ascii_lowercase();
    if o.contains("already exists in the cluster") {
        JoinFailure::StaleNode
    } else if o.contains("could not find a jws signature")
        || o.contains("token id") && (o.contains("invalid") || o.contains("expired"))
        || o.contains("bootstrap token") && o.contains("expired")
    {
        JoinFailure::BadToken
    } else if o.contains("kubelet version is higher than the control plane version") {
        JoinFailure::KubeletTooNew
    } else {
        JoinFailure::Other
    }
}

/// The failure's text, for a join that exited non-zero.
pub fn failed_output(e: &ExecError) -> String {
    e.output()
        .map(Output::text)
        .unwrap_or_else(|| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end of a real `kubeadm init` (1.31) with `--upload-certs`.
    const INIT: &str = "\
Your Kubernetes control-plane has initialized successfully!

You can now join any number of control-plane nodes running the following command on each as root:

  kubeadm join 192.168.1.10:6443 --token abcdef.0123456789abcdef \\
\t--discovery-token-ca-cert-hash sha256:1111111111111111111111111111111111111111111111111111111111111111 \\
\t--control-plane --certificate-key 2222222222222222222222222222222222222222222222222222222222222222

Then you can join any number of worker nodes by running the following on each as root:

kubeadm join 192.168.1.10:6443 --token abcdef.0123456789abcdef \\
\t--discovery-token-ca-cert-hash sha256:1111111111111111111111111111111111111111111111111111111111111111 
";

    #[test]
    fn the_worker_join_command_of_init_output() {
        assert_eq!(
            join_command(INIT).as_deref(),
            Some("kubeadm join 192.168.1.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:1111111111111111111111111111111111111111111111111111111111111111")
        );
        assert_eq!(
            join_command(
                "kubeadm join k:6443 --token a.b --discovery-token-ca-cert-hash sha256:00 \n"
            )
            .as_deref(),
            Some("kubeadm join k:6443 --token a.b --discovery-token-ca-cert-hash sha256:00")
        );
        assert_eq!(join_command("no join here"), None);
    }

    #[test]
    fn the_control_plane_version_from_the_manifest() {
        let m = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.31.2\n";
        assert_eq!(apiserver_version(m), Some(Version::new(1, 31, 2)));
        assert_eq!(
            apiserver_version("    image: \"registry.k8s.io/etcd:3.5.15-0\"\n"),
            None
        );
    }

    #[test]
    fn the_server_version_of_kubectl_version() {
        let out = r#"{
    "clientVersion": {"major": "1", "minor": "31", "gitVersion": "v1.31.2"},
    "kustomizeVersion": "v5.4.2",
    "serverVersion": {"major": "1", "minor": "30", "gitVersion": "v1.30.4"}
}"#;
        assert_eq!(server_version(out), Some(Version::new(1, 30, 4)));
        assert_eq!(
            server_version(r#"{"clientVersion": {"gitVersion": "v1.31.2"}}"#),
            None
        );
        assert_eq!(server_version("error: couldn't get version"), None);
    }

    #[test]
    fn token_ids_from_kubeadms_json_stream() {
        let out = r#"{"kind":"BootstrapToken","token":"abcdef.0123456789abcdef","usages":["signing"]}
{"kind":"BootstrapToken","token":"ghijkl.0123456789abcdef","expires":"2027-01-01T00:00:00Z"}"#;
        assert_eq!(
            token_ids(out),
            vec!["abcdef.0123456789abcdef", "ghijkl.0123456789abcdef"]
        );
        assert!(token_ids("").is_empty());
    }

    #[test]
    fn join_failures() {
        assert_eq!(
            join_failure("error execution phase kubelet-start: a Node with name \"w1\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node"),
            JoinFailure::StaleNode
        );
        assert_eq!(
            join_failure("error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\""),
            JoinFailure::BadToken
        );
        assert_eq!(
            join_failure("the kubelet version is higher than the control plane version. This is not a supported version skew"),
            JoinFailure::KubeletTooNew
        );
        assert_eq!(join_failure("connection refused"), JoinFailure::Other);
    }
}
