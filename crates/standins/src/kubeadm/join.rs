//! Test stand-in for `kubeadm join ENDPOINT --token T --discovery-token-ca-cert-hash sha256:H`
//! (or `--config FILE` with a v1beta4 JoinConfiguration), worker or `--control-plane`. It checks
//! every format, runs kubeadm's join preflight (kubelet.conf, bootstrap-kubelet.conf and
//! pki/ca.crt must be absent), the kubelet version skew check against the control plane's
//! version (knob `k8r.standin.control-plane-version`, default its own), and the failure knobs
//! (`k8r.standin.join=stale-node:N|expired-token`). On success it writes the files a joined
//! node has and records the node in `/var/lib/kubelet/k8r-standin-node.json`. A worker's join is
//! local: the stand-in cannot reach the master, so the token is not checked against it, and the
//! CA it writes is a placeholder that names the hash it was given (it does not hash to it).

use super::config::{self, JoinInputs};
use super::control_plane::{self, Plane};
use super::init::read_config;
use super::kubelet_start::{self, KubeletFiles};
use super::node_record::{self, NodeRecord};
use super::{parse, preflight};
use crate::args::{switch, value, Flag};
use crate::error::{fail, Result};
use crate::kubeconfig::{self, Client};
use crate::state::ClusterState;
use crate::{fsutil, pki, say, Ctx, Version};

const FLAGS: &[Flag] = &[
    value("config"),
    value("token"),
    value("discovery-token"),
    value("tls-bootstrap-token"),
    value("discovery-token-ca-cert-hash"),
    switch("discovery-token-unsafe-skip-ca-verification"),
    value("node-name"),
    value("cri-socket"),
    switch("control-plane"),
    value("certificate-key"),
    value("apiserver-advertise-address"),
    value("apiserver-bind-port"),
    value("ignore-preflight-errors"),
    value("skip-phases"),
];

/// Where the per-boot join attempt counter lives.
pub const ATTEMPTS: &str = "/run/k8r-standin/join-attempts";

/// Runs `kubeadm join`.
pub fn run(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(args, FLAGS)?;
    if p.positional.len() > 1 {
        return Err(fail(format!(
            "unknown command {:?} for \"kubeadm join\"",
            p.positional[1]
        )));
    }
    let hostname = ctx.env.hostname();
    let own = ctx.env.version;
    let cfg = if let Some(file) = p.get("config") {
        let mixed: Vec<&str> = [
            "token",
            "discovery-token",
            "discovery-token-ca-cert-hash",
            "node-name",
            "cri-socket",
            "control-plane",
            "certificate-key",
            "apiserver-advertise-address",
        ]
        .into_iter()
        .filter(|f| p.has(f))
        .collect();
        if !mixed.is_empty() || !p.positional.is_empty() {
            let mut all: Vec<String> = mixed.iter().map(|s| s.to_string()).collect();
            all.extend(p.positional.iter().cloned());
            return Err(fail(format!(
                "can not mix '--config' with arguments [{}]",
                all.join(" ")
            )));
        }
        let text = read_config(ctx.env, file)?;
        let inputs = JoinInputs {
            ignore_preflight: p.list("ignore-preflight-errors"),
            skip_phases: p.list("skip-phases"),
            ..JoinInputs::default()
        };
        config::join(inputs, Some((&text, file)), own, &hostname, ctx)?
    } else {
        let bind_port = match p.get("apiserver-bind-port") {
            None => None,
            Some(s) => Some(s.parse::<u16>().map_err(|_| fail(format!("invalid argument {s:?} for \"--apiserver-bind-port\" flag: strconv.ParseInt: parsing {s:?}: invalid syntax")))?),
        };
        let inputs = JoinInputs {
            endpoint: p.positional.first().cloned(),
            token: p
                .get("discovery-token")
                .or(p.get("token"))
                .map(str::to_string),
            ca_hashes: p.list("discovery-token-ca-cert-hash"),
            unsafe_skip_ca: p.on("discovery-token-unsafe-skip-ca-verification"),
            node_name: p.get("node-name").map(str::to_string),
            cri_socket: p.get("cri-socket").map(str::to_string),
            control_plane: p.on("control-plane"),
            certificate_key: p.get("certificate-key").map(str::to_string),
            advertise_address: p.get("apiserver-advertise-address").map(str::to_string),
            bind_port,
            ignore_preflight: p.list("ignore-preflight-errors"),
            skip_phases: p.list("skip-phases"),
        };
        config::join(inputs, None, own, &hostname, ctx)?
    };
    let env = ctx.env;
    let skipped = |phase: &str| cfg.skip_phases.iter().any(|s| s == phase);

    // preflight: local checks, discovery, then the version skew against the cluster.
    if !skipped("preflight") {
        say!(ctx, "[preflight] Running pre-flight checks");
        let mut problems = Vec::new();
        for f in [
            "/etc/kubernetes/kubelet.conf",
            "/etc/kubernetes/bootstrap-kubelet.conf",
            "/etc/kubernetes/pki/ca.crt",
        ] {
            preflight::file_available(env, f, &mut problems);
        }
        preflight::host(env, &mut problems);
        if cfg.control_plane.is_some() {
            preflight::control_plane(env, &mut problems);
        }
        preflight::report(ctx, &problems, &cfg.ignore_preflight)?;
    }
    let token_id = cfg.token.split('.').next().unwrap_or_default().to_string();
    if env.knobs.expired_token() {
        return Err(fail(format!(
            "error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID {token_id:?}"
        )));
    }
    let cluster_version = env.knobs.control_plane_version.unwrap_or(own);
    say!(ctx, "[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
    say!(ctx, "[preflight] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it.");
    if own > cluster_version && !skipped("preflight") {
        let p = preflight::Problem {
            name: "KubeletVersion".into(),
            message: format!(
                "the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"{own}\" Control plane version: \"{cluster_version}\""
            ),
            warning: false,
        };
        preflight::report(ctx, &[p], &cfg.ignore_preflight)?;
    }

    let ca_note = format!(
        "cluster: https://{}\ndiscovery-token-ca-cert-hash: {}\n",
        cfg.endpoint,
        cfg.ca_hashes.join(",")
    );
    if let Some(cp) = &cfg.control_plane {
        control_plane_prepare(ctx, &cfg, cp, cluster_version, &hostname)?;
    }

    // kubelet-start: bootstrap kubeconfig and CA first (left behind if this phase fails, as
    // by the real kubeadm), then the Node check, then the kubelet's files.
    let ca = if cfg.control_plane.is_some() {
        fsutil::read(&env.path("/etc/kubernetes/pki/ca.crt"))?
    } else {
        let ca = pki::cert("CN=kubernetes", &ca_note)?;
        fsutil::write(&env.path("/etc/kubernetes/pki/ca.crt"), &ca, 0o644)?;
        ca
    };
    let bootstrap = kubeconfig::render(
        &cfg.endpoint,
        "kubernetes",
        "tls-bootstrap-token-user",
        &ca,
        &Client::Token(cfg.token.clone()),
    );
    fsutil::write(
        &env.path("/etc/kubernetes/bootstrap-kubelet.conf"),
        bootstrap,
        0o600,
    )?;
    if let Some(n) = env.knobs.stale_node() {
        let attempt = count_attempt(ctx)?;
        if attempt <= n {
            return Err(fail(format!(
                "error execution phase kubelet-start: a Node with name {:?} and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node",
                cfg.node_name
            )));
        }
    }
    let mut errs = config::FieldErrors::default();
    let kubelet_cfg = config::kubelet_defaults(None, &mut errs);
    kubelet_start::write(
        ctx,
        &KubeletFiles {
            config: &kubelet_cfg,
            cri_socket: &cfg.cri_socket,
            node_name: &cfg.node_name,
            extra_args: &cfg.kubelet_extra_args,
        },
    )?;
    let kubelet_conf = kubeconfig::render(
        &cfg.endpoint,
        "kubernetes",
        &format!("system:node:{}", cfg.node_name),
        &ca,
        &Client::Files("/var/lib/kubelet/pki/kubelet-client-current.pem".into()),
    );
    fsutil::write(
        &env.path("/etc/kubernetes/kubelet.conf"),
        kubelet_conf,
        0o600,
    )?;
    node_record::save(
        env,
        &NodeRecord {
            name: cfg.node_name.clone(),
            role: if cfg.control_plane.is_some() {
                "control-plane"
            } else {
                "worker"
            }
            .into(),
            endpoint: cfg.endpoint.clone(),
            control_plane_version: cluster_version.to_string(),
            by: "join".into(),
            at: env.now,
        },
    )?;
    let started = kubelet_start::start(ctx);
    kubelet_start::wait(ctx, started, cfg.tls_bootstrap_timeout, "kubelet-start")?;
    say!(
        ctx,
        "[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap"
    );
    fsutil::remove_file(&env.path("/etc/kubernetes/bootstrap-kubelet.conf"))?;

    if cfg.control_plane.is_some() {
        ClusterState::update(env, |s| {
            let n = s.node_entry(&cfg.node_name, env.now);
            n.control_plane = true;
            Ok(())
        })?;
        say!(
            ctx,
            "\nThis node has joined the cluster and a new control plane instance was created:\n"
        );
        say!(
            ctx,
            "* Certificate signing request was sent to apiserver and approval was received."
        );
        say!(
            ctx,
            "* The Kubelet was informed of the new secure connection details."
        );
        say!(
            ctx,
            "* Control plane label and taint were applied to the new node."
        );
        say!(ctx, "* The Kubernetes control plane instances scaled up.");
        say!(
            ctx,
            "* A new etcd member was added to the local/stacked etcd cluster.\n"
        );
        say!(ctx, "To start administering your cluster from this node, you need to run the following as a regular user:\n");
        say!(ctx, "\tmkdir -p $HOME/.kube");
        say!(
            ctx,
            "\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config"
        );
        say!(ctx, "\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n");
        say!(
            ctx,
            "Run 'kubectl get nodes' to see this node join the cluster.\n"
        );
    } else {
        say!(ctx, "\nThis node has joined the cluster:");
        say!(
            ctx,
            "* Certificate signing request was sent to apiserver and a response was received."
        );
        say!(
            ctx,
            "* The Kubelet was informed of the new secure connection details.\n"
        );
        say!(
            ctx,
            "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n"
        );
    }
    Ok(())
}

/// Counts a join attempt that reached the kubelet-start phase in this boot; returns its number.
fn count_attempt(ctx: &Ctx<'_>) -> Result<u32> {
    let _ = ctx.env.run_dir()?;
    let path = ctx.env.path(ATTEMPTS);
    let n = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    fsutil::write(&path, format!("{n}\n"), 0o644)?;
    Ok(n)
}

/// `control-plane-prepare`: the certificates from the `kubeadm-certs` Secret (here: new
/// placeholders), kubeconfigs and manifests, and a local stand-in cluster state.
fn control_plane_prepare(
    ctx: &mut Ctx<'_>,
    cfg: &config::JoinConfig,
    cp: &config::ControlPlaneJoin,
    version: Version,
    hostname: &str,
) -> Result<()> {
    let env = ctx.env;
    match &cp.certificate_key {
        None => {
            if !env.path("/etc/kubernetes/pki/ca.crt").exists() {
                return Err(fail("error execution phase preflight: \nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n[failure loading certificate for CA: couldn't load the certificate file /etc/kubernetes/pki/ca.crt: open /etc/kubernetes/pki/ca.crt: no such file or directory, failure loading key for service account: couldn't load the private key file /etc/kubernetes/pki/sa.key: open /etc/kubernetes/pki/sa.key: no such file or directory]\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided."));
            }
        }
        Some(k) if !crate::formats::is_hex64(k) => {
            let why = if k.bytes().all(|b| b.is_ascii_hexdigit()) {
                format!("crypto/aes: invalid key size {}", k.len() / 2)
            } else {
                "encoding/hex: invalid byte".to_string()
            };
            return Err(fail(format!("error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding certificate key: {why}")));
        }
        Some(_) => {
            say!(ctx, "[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
        }
    }
    let advertise = cp
        .advertise_address
        .clone()
        .unwrap_or_else(|| hostname.to_string());
    let plane = Plane {
        version,
        endpoint: cfg.endpoint.clone(),
        local_endpoint: format!("{advertise}:{}", cp.bind_port),
        node_name: cfg.node_name.clone(),
        cluster_name: "kubernetes".into(),
        service_subnet: "10.96.0.0/12".into(),
        pod_subnet: None,
        cert_sans: Vec::new(),
    };
    say!(
        ctx,
        "[certs] Using certificateDir folder \"/etc/kubernetes/pki\""
    );
    control_plane::write(env, &plane)?;
    say!(
        ctx,
        "[control-plane] Using manifest folder \"/etc/kubernetes/manifests\""
    );
    say!(
        ctx,
        "[etcd] Announced new etcd member joining to the existing etcd cluster"
    );
    let mut s = ClusterState::new(version, "kubernetes", &cfg.endpoint, env.now);
    let mut errs = config::FieldErrors::default();
    s.kubelet_config = config::kubelet_defaults(None, &mut errs);
    s.node_entry(&cfg.node_name, env.now).control_plane = true;
    s.create(env)?;
    // The certs phase wrote kubelet.conf; the kubelet-start phase rewrites it.
    fsutil::remove_file(&env.path("/etc/kubernetes/kubelet.conf"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestRoot;
    use crate::Tool;

    fn hash() -> String {
        format!("sha256:{}", "0123456789abcdef".repeat(4))
    }

    fn join(t: &TestRoot, extra: &[&str]) -> crate::testutil::Ran {
        let h = hash();
        let mut args = vec![
            "join",
            "k8s.lan:6443",
            "--token",
            "abcdef.0123456789abcdef",
            "--discovery-token-ca-cert-hash",
            &h,
        ];
        args.extend_from_slice(extra);
        t.run(Tool::Kubeadm, &args)
    }

    #[test]
    fn worker_join_writes_the_joined_node_files() {
        let t = TestRoot::new();
        let r = join(&t, &["--node-name", "pi-2", "-v=5"]);
        r.ok();
        assert!(
            r.out.contains("This node has joined the cluster"),
            "{}",
            r.out
        );
        for f in [
            "/etc/kubernetes/kubelet.conf",
            "/etc/kubernetes/pki/ca.crt",
            "/var/lib/kubelet/config.yaml",
            "/var/lib/kubelet/kubeadm-flags.env",
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
        ] {
            assert!(t.exists(f), "{f}");
        }
        assert!(!t.exists("/etc/kubernetes/bootstrap-kubelet.conf"));
        assert!(!t.exists(crate::state::DB), "a worker has no cluster state");
        let rec = node_record::load(&t.env).expect("record");
        assert_eq!(
            (rec.name.as_str(), rec.role.as_str(), rec.endpoint.as_str()),
            ("pi-2", "worker", "k8s.lan:6443")
        );
        assert!(t
            .read("/etc/kubernetes/kubelet.conf")
            .contains("server: https://k8s.lan:6443"));
        let ca_body = pki::pem_body(&t.read("/etc/kubernetes/pki/ca.crt")).expect("pem");
        assert!(String::from_utf8_lossy(&ca_body).contains(&hash()));
        assert!(t
            .read("/var/lib/kubelet/kubeadm-flags.env")
            .contains("--hostname-override=pi-2"));
        // Joining again: the files are there now.
        let r = join(&t, &[]);
        r.failed();
        assert!(r.err.contains("[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"), "{}", r.err);
        assert!(r.err.contains("[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists"), "{}", r.err);
        // The host name is the default node name.
        let t = TestRoot::new();
        join(&t, &[]).ok();
        assert_eq!(node_record::load(&t.env).expect("record").name, "pi-1");
    }

    #[test]
    fn join_checks_every_format() {
        let t = TestRoot::new();
        let h = hash();
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["join", "k8s.lan:6443", "--token", "abc", "--discovery-token-ca-cert-hash", &h], "discovery.bootstrapToken.token: Invalid value: \"abc\": the bootstrap token \"abc\" was not of the form"),
            (vec!["join", "k8s.lan:6443", "--discovery-token-ca-cert-hash", &h], "discovery.bootstrapToken.token: Invalid value: \"\""),
            (vec!["join", "k8s.lan:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", "sha256:abcd"], "expected a 32 byte SHA-256 hash, found 2 bytes"),
            (vec!["join", "k8s.lan:6443", "--token", "abcdef.0123456789abcdef"], "using token-based discovery without caCertHashes can be unsafe"),
            (vec!["join", "k8s.lan", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", &h], "address k8s.lan: missing port in address"),
            (vec!["join", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", &h], "discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"\""),
            (vec!["join", "k8s.lan:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", &h, "--node-name", "Pi_2"], "nodeRegistration.name: Invalid value: \"Pi_2\""),
            (vec!["join", "k8s.lan:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", &h, "--cri-socket", "/run/containerd/containerd.sock"], "nodeRegistration.criSocket"),
            (vec!["join", "k8s.lan:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", &h, "--control-plane", "--certificate-key", "abcd"], "error decoding certificate key: crypto/aes: invalid key size 2"),
            (vec!["join", "k8s.lan:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", &h, "--control-plane"], "One or more conditions for hosting a new control plane instance is not satisfied"),
            (vec!["join", "k8s.lan:6443", "--bogus"], "unknown flag: --bogus"),
        ];
        for (args, want) in cases {
            let r = t.run(Tool::Kubeadm, &args);
            r.failed();
            assert!(r.err.contains(want), "{args:?}: want {want}\ngot {}", r.err);
        }
        assert!(!t.exists("/etc/kubernetes/kubelet.conf"));
    }

    #[test]
    fn join_from_a_join_configuration() {
        let t = TestRoot::new();
        let cfg = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.1:6443\n    token: abcdef.0123456789abcdef\n    caCertHashes: [\"{}\"]\nnodeRegistration:\n  name: pi-3\n  kubeletExtraArgs:\n  - name: node-ip\n    value: 10.0.0.3\n",
            hash()
        );
        t.file("/etc/k8r/join.yaml", &cfg);
        t.run(Tool::Kubeadm, &["join", "--config", "/etc/k8r/join.yaml"])
            .ok();
        assert_eq!(node_record::load(&t.env).expect("record").name, "pi-3");
        assert!(t
            .read("/var/lib/kubelet/kubeadm-flags.env")
            .contains("--node-ip=10.0.0.3"));
        assert_eq!(t.read("/var/log/k8r-standin/0001-kubeadm-join.yaml"), cfg);
        let t = TestRoot::new();
        t.file(
            "/etc/k8r/join.yaml",
            &cfg.replace("  name: pi-3\n", "  name: pi-3\n  nmae: x\n"),
        );
        let r = t.run(Tool::Kubeadm, &["join", "--config", "/etc/k8r/join.yaml"]);
        assert!(
            r.err.contains("unknown field \"nodeRegistration.nmae\""),
            "{}",
            r.err
        );
        let r = t.run(
            Tool::Kubeadm,
            &[
                "join",
                "--config",
                "/etc/k8r/join.yaml",
                "--token",
                "abcdef.0123456789abcdef",
            ],
        );
        assert!(
            r.err
                .starts_with("can not mix '--config' with arguments [token]"),
            "{}",
            r.err
        );
    }

    #[test]
    fn stale_node_knob_fails_the_first_n_attempts_and_leaves_files_like_kubeadm() {
        let mut t = TestRoot::new();
        t.cmdline("console=ttyAMA0 k8r.standin.join=stale-node:2");
        let want = "error execution phase kubelet-start: a Node with name \"pi-1\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node\n";
        let r = join(&t, &[]);
        r.failed();
        assert!(r.err.starts_with(want), "{}", r.err);
        assert!(
            t.exists("/etc/kubernetes/bootstrap-kubelet.conf")
                && t.exists("/etc/kubernetes/pki/ca.crt")
        );
        // The leftovers fail the next preflight until they are reset.
        let r = join(&t, &[]);
        assert!(
            r.err
                .contains("[ERROR FileAvailable--etc-kubernetes-bootstrap-kubelet.conf]"),
            "{}",
            r.err
        );
        t.run(Tool::Kubeadm, &["reset", "-f"]).ok();
        let r = join(&t, &[]);
        assert!(r.err.starts_with(want), "second attempt: {}", r.err);
        t.run(Tool::Kubeadm, &["reset", "-f"]).ok();
        join(&t, &[]).ok();
        assert_eq!(t.read(ATTEMPTS), "3\n");
    }

    #[test]
    fn expired_token_and_version_skew() {
        let mut t = TestRoot::new();
        t.cmdline("k8r.standin.join=expired-token");
        let r = join(&t, &[]);
        r.failed();
        assert!(r.err.starts_with("error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\"\n"), "{}", r.err);
        assert!(!t.exists("/etc/kubernetes/pki/ca.crt"));

        let mut t = TestRoot::new().with_version(Version::new(1, 32, 1));
        t.cmdline("k8r.standin.control-plane-version=1.31.2");
        let r = join(&t, &[]);
        r.failed();
        assert!(r.err.contains("[ERROR KubeletVersion]: the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"1.32.1\" Control plane version: \"1.31.2\""), "{}", r.err);
        // An older kubelet than the control plane is fine.
        let mut t = TestRoot::new();
        t.cmdline("k8r.standin.control-plane-version=1.32.1");
        join(&t, &[]).ok();
        assert_eq!(
            node_record::load(&t.env)
                .expect("record")
                .control_plane_version,
            "1.32.1"
        );
    }

    #[test]
    fn control_plane_join_creates_the_control_plane_files() {
        let t = TestRoot::new();
        let key = "ab".repeat(32);
        let r = join(
            &t,
            &[
                "--control-plane",
                "--certificate-key",
                &key,
                "--apiserver-advertise-address",
                "10.0.0.2",
            ],
        );
        r.ok();
        assert!(
            r.out.contains(
                "This node has joined the cluster and a new control plane instance was created"
            ),
            "{}",
            r.out
        );
        assert!(t
            .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .contains("image: registry.k8s.io/kube-apiserver:v1.31.2\n"));
        assert!(t.exists("/etc/kubernetes/admin.conf") && t.exists("/etc/kubernetes/pki/sa.key"));
        let s = ClusterState::load(&t.env).expect("load").expect("state");
        assert!(s.nodes.iter().any(|n| n.name == "pi-1" && n.control_plane));
        assert_eq!(
            node_record::load(&t.env).expect("record").role,
            "control-plane"
        );
    }
}
