//! `k8r bootstrap`: bring the node into its cluster, whichever step applies (run by
//! `k8r-bootstrap.service` after the network, the clock and containerd are up):
//!
//! - **first master, empty data partition**: `kubeadm init` with a generated configuration,
//!   the CNI applied, the join command written (0600) to `/usr/lib/k8r/join_string` and the
//!   data partition;
//! - **master after a reinstall** (the data partition holds a cluster): no second init; the
//!   control plane comes back from the kept pki and etcd (the kubelet starts the static pods),
//!   and when the image carries a newer Kubernetes, `kubeadm upgrade apply` to it, one minor
//!   at a time (a skip or a downgrade is refused and the old control plane keeps running);
//! - **worker**: `kubeadm join` with the node's join command, retried while a stale Node of
//!   the same name blocks it (kubernetes-node.md §5), with a clear message for an expired
//!   token; a control plane that this image's kubelet may not run against (older than it, or
//!   more than three minors newer) is refused before kubeadm runs, from the version the API
//!   server tells anyone, and from kubeadm's preflight when it could not be asked.

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use k8r_card::data::JOIN_STRING;
use k8r_card::image_root::{CNI_DIR, JOIN_STRING as ROOT_JOIN_STRING};

use crate::build_info::BuildInfo;
use crate::data::{self, Data, NodeState};
use crate::host::{write_atomic, Host};
use crate::kube::{self, JoinFailure, Kube};
use crate::settings::Settings;
use crate::skew::{self, Upgrade};
use crate::{clock, cni, identity, kubeadm_config};

/// A deliberate refusal (exit code 2): the node is left as it is, and the message says what
/// the operator can do. systemd does not retry it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// How long the steps may wait.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For the clock to be trusted.
    pub clock: Duration,
    /// For the local API server.
    pub api: Duration,
    /// For a stale Node to stop blocking a join.
    pub join: Duration,
    /// Between join attempts.
    pub join_retry: Duration,
    /// Between progress messages.
    pub say_every: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            clock: Duration::from_secs(600),
            api: Duration::from_secs(600),
            join: Duration::from_secs(600),
            join_retry: Duration::from_secs(20),
            say_every: Duration::from_secs(5),
        }
    }
}

/// What bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// `kubeadm init` made a new cluster.
    Initialised,
    /// The kept control plane is up and at the image's version.
    Restored,
    /// The control plane was upgraded to the image's version.
    Upgraded(String),
    /// The node joined the cluster.
    Joined,
    /// The node was already in its cluster.
    AlreadyJoined,
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Initialised => f.write_str("initialised a new cluster"),
            Done::Restored => f.write_str("the kept control plane is up"),
            Done::Upgraded(to) => write!(f, "control plane upgraded to Kubernetes {to}"),
            Done::Joined => f.write_str("joined the cluster"),
            Done::AlreadyJoined => f.write_str("already in the cluster"),
        }
    }
}

/// Everything bootstrap works with.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The machine.
    pub host: &'a Host,
    /// The data partition.
    pub data: &'a Data,
    /// The node's settings.
    pub settings: &'a Settings,
    /// The running image.
    pub build: &'a BuildInfo,
    /// The node's name.
    pub node_name: &'a str,
    /// Waits.
    pub waits: Waits,
    /// The recovery partition, where the trial record is (`None`: no card, no trial).
    pub recovery: Option<&'a crate::card::RecoverySource>,
}

/// Runs the step that applies.
pub fn run(ctx: &Ctx<'_>) -> Result<Done> {
    let why = clock::wait_until_trusted(
        ctx.host,
        ctx.build.build_epoch,
        ctx.waits.clock,
        ctx.waits.say_every,
    )?;
    log::info!("clock trusted ({why})");
    let saved = identity::save_missing(ctx.host, ctx.data)?;
    if !saved.is_empty() {
        log::info!(
            "kept this node's identity on the data partition: {}",
            saved.join(", ")
        );
    }
    let kube = Kube::new(ctx.host);
    let done = match &ctx.settings.config.join {
        None if ctx.data.holds_a_cluster() => restore_master(ctx, &kube)?,
        None => init_master(ctx, &kube)?,
        Some(_) if ctx.host.path(kube::KUBELET_CONF).exists() => Done::AlreadyJoined,
        Some(_) => join(ctx, &kube)?,
    };
    let mut state = ctx.data.state();
    state.role = Some(role_name(ctx.settings).to_owned());
    state.node_name = Some(ctx.node_name.to_owned());
    ctx.data.write_state(&NodeState { ..state })?;
    Ok(done)
}

/// `control-plane` or `worker`.
pub fn role_name(settings: &Settings) -> &'static str {
    match &settings.config.join {
        None => "control-plane",
        Some(j) if j.control_plane => "control-plane",
        Some(_) => "worker",
    }
}

/// What kubeadm's preflight would refuse, said before it runs (kubernetes-node.md §2.3, §2.6).
pub fn check_host(host: &Host) -> Result<()> {
    let controllers =
        std::fs::read_to_string(host.path("/sys/fs/cgroup/cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Err(Refused(format!(
            "the kernel has no memory cgroup (/sys/fs/cgroup/cgroup.controllers: {:?}): kubeadm would fail with \
             \"missing required cgroups: memory\". The boot partition's cmdline.txt must end with \
             cgroup_enable=memory (k8r-builder adds it; check that it was not removed)",
            controllers.trim()
        ))
        .into());
    }
    let forward =
        std::fs::read_to_string(host.path("/proc/sys/net/ipv4/ip_forward")).unwrap_or_default();
    if forward.trim() != "1" {
        return Err(Refused(
            "net.ipv4.ip_forward is not 1: the image's /etc/sysctl.d/60-k8s.conf sets it (was it removed?)".into(),
        )
        .into());
    }
    Ok(())
}

/// This node's address: the source address of its default route (no packet is sent), or,
/// on a network without a default route, its first address that is not loopback
/// (`/proc/net/fib_trie`).
pub fn node_address(host: &Host) -> Result<IpAddr> {
    let probe = |target: &str, bind: &str| -> Option<IpAddr> {
        let s = UdpSocket::bind(bind).ok()?;
        s.connect(target).ok()?;
        Some(s.local_addr().ok()?.ip())
    };
    probe("192.0.2.1:9", "0.0.0.0:0")
        .or_else(|| probe("[2001:db8::1]:9", "[::]:0"))
        .filter(|ip| !ip.is_unspecified())
        .or_else(|| {
            let trie = std::fs::read_to_string(host.path("/proc/net/fib_trie")).unwrap_or_default();
            local_addresses(&trie).into_iter().next().map(IpAddr::V4)
        })
        .ok_or_else(|| {
            anyhow!("this node has no network address to advertise (is the network up?)")
        })
}

/// The local IPv4 addresses in `/proc/net/fib_trie` (an address line followed by
/// `/32 host LOCAL`), loopback left out, in order. Pure.
pub fn local_addresses(trie: &str) -> Vec<std::net::Ipv4Addr> {
    let lines: Vec<&str> = trie.lines().collect();
    let mut out = Vec::new();
    for pair in lines.windows(2) {
        let addr = pair[0]
            .trim()
            .trim_start_matches(['|', '+', '-', ' '])
            .trim();
        if !pair[1].contains("/32 host LOCAL") {
            continue;
        }
        if let Ok(ip) = addr.parse::<std::net::Ipv4Addr>() {
            if !ip.is_loopback() && !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

fn init_master(ctx: &Ctx<'_>, kube: &Kube) -> Result<Done> {
    check_host(ctx.host)?;
    let address = node_address(ctx.host)?;
    let token = kubeadm_config::new_token().context("making a bootstrap token")?;
    let inputs =
        kubeadm_config::InitInputs::new(&ctx.settings.config, ctx.node_name, address, &token);
    let yaml = kubeadm_config::init_config(&inputs);
    let config_path = "/var/lib/k8r/kubeadm-init.yaml";
    ctx.host.write(config_path, yaml.as_bytes(), 0o600)?;
    log::info!(
        "kubeadm init: Kubernetes {}, node {}, endpoint {}, pod network {} (output in /var/log/kubeadm.log)",
        inputs.version, inputs.node_name, inputs.endpoint, inputs.pod_subnet
    );
    let out = kube
        .kubeadm(["init", "--config", config_path])
        .run()
        .context("kubeadm init failed (see /var/log/kubeadm.log)")?;
    data::save_kubelet_files(ctx.host, ctx.data)?;
    let join = match kube::join_command(&out.stdout) {
        Some(j) => j,
        None => kube.new_join_command(&ctx.settings.config.token_ttl)?,
    };
    write_join_string(ctx.host, ctx.data, &join)?;
    log::info!("the worker join command is in {ROOT_JOIN_STRING} (mode 0600); `k8r join-command` prints it");
    kube.wait_ready(ctx.waits.api, ctx.waits.say_every)?;
    apply_cni(ctx, kube)?;
    Ok(Done::Initialised)
}

/// Writes the join command (mode 0600) to the root and the data partition.
pub fn write_join_string(host: &Host, data: &Data, join: &str) -> Result<()> {
    let text = format!("{}\n", join.trim());
    host.write(ROOT_JOIN_STRING, text.as_bytes(), 0o600)?;
    write_atomic(&data.path(JOIN_STRING), text.as_bytes(), 0o600)
}

fn apply_cni(ctx: &Ctx<'_>, kube: &Kube) -> Result<()> {
    let name =
        ctx.build.cni_manifest.clone().ok_or_else(|| {
            anyhow!("the image says no CNI manifest (CNI_MANIFEST in build-info)")
        })?;
    let src = format!("{CNI_DIR}/{name}");
    let text = ctx
        .host
        .read_text_opt(&src)?
        .ok_or_else(|| anyhow!("{src} is missing from the image"))?;
    let edited = cni::set_pod_cidr(&name, &text, &ctx.settings.config.pod_network_cidr)?;
    let dest = format!("/var/lib/k8r/cni/{name}");
    ctx.host.write(&dest, edited.as_bytes(), 0o644)?;
    kube.kubectl(["apply", "-f", dest.as_str()])
        .log_to(&ctx.host.path(k8r_card::image_root::KUBEADM_LOG))
        .run()
        .with_context(|| format!("applying the pod network {name}"))?;
    log::info!(
        "pod network {name} applied ({})",
        ctx.settings.config.pod_network_cidr
    );
    Ok(())
}

fn restore_master(ctx: &Ctx<'_>, kube: &Kube) -> Result<Done> {
    log::info!("the data partition holds this cluster: the control plane comes back from it (no kubeadm init)");
    if ctx.host.read_opt(ROOT_JOIN_STRING)?.is_none() {
        if let Some(j) = crate::host::read_opt(&ctx.data.path(JOIN_STRING))? {
            ctx.host.write(ROOT_JOIN_STRING, &j, 0o600)?;
        }
    }
    kube.wait_ready(ctx.waits.api, ctx.waits.say_every)?;
    let cluster = kube.control_plane_version()?;
    let image = ctx.build.k8s_version;
    match skew::control_plane(cluster, image) {
        Upgrade::None => {
            log::info!("control plane up, Kubernetes {cluster}");
            Ok(Done::Restored)
        }
        Upgrade::Apply { to } => {
            log::info!("this image carries Kubernetes {to}, the cluster runs {cluster}: kubeadm upgrade apply v{to}");
            crate::trial::commit_before_upgrade(ctx.host, ctx.recovery)?;
            let target = format!("v{to}");
            kube.kubeadm(["upgrade", "apply", target.as_str(), "--yes"])
                .run()
                .with_context(|| {
                    format!("kubeadm upgrade apply {target} failed (see /var/log/kubeadm.log)")
                })?;
            data::save_kubelet_files(ctx.host, ctx.data)?;
            let now = kube.control_plane_version()?;
            if now != to {
                anyhow::bail!(
                    "kubeadm upgrade apply {target} finished, but the API server runs {now}"
                );
            }
            if ctx.host.is_system() {
                crate::exec::Cmd::new("systemctl")
                    .args(["restart", "kubelet"])
                    .run()
                    .context("restarting the kubelet after the upgrade")?;
            }
            log::info!("control plane upgraded to Kubernetes {to}");
            Ok(Done::Upgraded(to.to_string()))
        }
        refused => {
            let msg = refused.refusal().unwrap_or_default();
            Err(Refused(msg).into())
        }
    }
}

fn join(ctx: &Ctx<'_>, kube: &Kube) -> Result<Done> {
    check_host(ctx.host)?;
    let Some(j) = &ctx.settings.config.join else {
        return Err(anyhow!("no KUBEADM_JOIN_STRING"));
    };
    let endpoint = j.endpoint.to_string();
    let mut args = vec![
        "join".to_owned(),
        endpoint.clone(),
        "--token".to_owned(),
        j.token.clone(),
        "--discovery-token-ca-cert-hash".to_owned(),
        j.ca_cert_hash.clone(),
        "--node-name".to_owned(),
        ctx.node_name.to_owned(),
    ];
    if j.control_plane {
        args.push("--control-plane".to_owned());
        if let Some(k) = &j.certificate_key {
            args.push("--certificate-key".to_owned());
            args.push(k.clone());
        }
    }
    match kube.remote_version(&endpoint) {
        Ok(cluster) => {
            if let Some(why) = skew::join_refusal(ctx.build.k8s_version, cluster) {
                return Err(Refused(why).into());
            }
            log::info!("the control plane at {endpoint} runs Kubernetes {cluster}");
        }
        Err(e) => log::warn!(
            "{} (kubeadm join checks the version skew itself)",
            crate::one_line(&e)
        ),
    }
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        log::info!(
            "kubeadm join {endpoint} as {} (attempt {attempt}; output in /var/log/kubeadm.log)",
            ctx.node_name
        );
        let err = match kube.kubeadm(&args).run() {
            Ok(_) => break,
            Err(e) => e,
        };
        let output = kube::failed_output(&err);
        match kube::join_failure(&output) {
            JoinFailure::StaleNode if start.elapsed() < ctx.waits.join => {
                log::warn!(
                    "a Node named {} is still Ready in the cluster (this card was reinstalled faster than the \
                     cluster noticed it was gone); retrying in {}s for up to {}s (`kubectl delete node {}` on \
                     the master makes it immediate)",
                    ctx.node_name,
                    ctx.waits.join_retry.as_secs(),
                    ctx.waits.join.as_secs(),
                    ctx.node_name
                );
                std::thread::sleep(ctx.waits.join_retry);
                // The failed attempt already wrote the bootstrap kubeconfig and the CA, which
                // the next one's preflight refuses (kubernetes-node.md §5).
                kube.kubeadm(["reset", "-f"])
                    .run()
                    .context("kubeadm reset before retrying the join")?;
            }
            JoinFailure::StaleNode => {
                return Err(Refused(format!(
                    "a Node named {} still blocks the join after {}s: on the master run `kubectl delete node {}`, \
                     then `systemctl restart k8r-bootstrap` here",
                    ctx.node_name,
                    ctx.waits.join.as_secs(),
                    ctx.node_name
                ))
                .into());
            }
            JoinFailure::BadToken => {
                return Err(Refused(format!(
                    "the cluster at {endpoint} does not accept the join token in KUBEADM_JOIN_STRING (expired or \
                     unknown): on the master run `k8r join-command` and here `k8r config set \
                     KUBEADM_JOIN_STRING=\"<the command it prints>\"` (or inject it into the card with k8r-builder)"
                ))
                .into());
            }
            JoinFailure::KubeletTooNew => {
                return Err(Refused(format!(
                    "this image's kubelet ({}) is newer than the cluster's control plane, which Kubernetes does not \
                     support: upgrade the master first (install this image there), then this node",
                    ctx.build.k8s_version
                ))
                .into());
            }
            JoinFailure::Other => {
                return Err(err).context("kubeadm join failed (see /var/log/kubeadm.log)");
            }
        }
    }
    if j.control_plane {
        data::save_kubelet_files(ctx.host, ctx.data)?;
    }
    log::info!("joined the cluster at {endpoint} as {}", ctx.node_name);
    Ok(Done::Joined)
}

/// `k8r join-command`: the stored join command if its token is still valid (or `fresh` is
/// not asked), else a new one, stored.
pub fn join_command(host: &Host, data: &Data, settings: &Settings, fresh: bool) -> Result<String> {
    if !host.path(kube::ADMIN_CONF).exists() {
        return Err(Refused(format!(
            "{} is missing: `k8r join-command` runs on the first master",
            kube::ADMIN_CONF
        ))
        .into());
    }
    let kube = Kube::new(host);
    let stored = host
        .read_text_opt(ROOT_JOIN_STRING)?
        .map(|s| s.trim().to_owned());
    if let (Some(j), false) = (&stored, fresh) {
        let token = j
            .split_whitespace()
            .skip_while(|w| *w != "--token")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        if kube.valid_tokens()?.contains(&token) {
            return Ok(j.clone());
        }
        log::info!("the stored join command's token has expired: making a new one");
    }
    let j = kube.new_join_command(&settings.config.token_ttl)?;
    write_join_string(host, data, &j)?;
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_from_the_fib_trie() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.2.0\n        /24 link UNICAST\n     |-- 10.0.2.15\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\nLocal:\n     |-- 10.0.2.15\n        /32 host LOCAL\n";
        assert_eq!(
            local_addresses(trie),
            vec![std::net::Ipv4Addr::new(10, 0, 2, 15)]
        );
        assert!(local_addresses("").is_empty());
    }
}
