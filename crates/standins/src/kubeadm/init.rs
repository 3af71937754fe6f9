//! Test stand-in for `kubeadm init --config FILE`: validates the configuration, runs the
//! preflight checks, writes what kubeadm leaves on a control-plane node (PKI placeholders,
//! kubeconfigs, static Pod manifests, the kubelet's files) and the stand-in cluster state in
//! `/var/lib/etcd`, registers the Node (Ready once the kubelet stand-in runs), mints the
//! bootstrap tokens and prints kubeadm's success text ending with the worker join command. It
//! does not start anything except, on a real systemd boot, `systemctl restart kubelet`.

use super::config::{self, InitConfig};
use super::control_plane::{self, Plane};
use super::kubelet_start::{self, KubeletFiles};
use super::node_record::{self, NodeRecord};
use super::{parse, preflight};
use crate::args::{switch, value, Flag};
use crate::error::{fail, Result};
use crate::state::{ClusterState, Object, Token};
use crate::{pki, random, say, Ctx, Env};

const FLAGS: &[Flag] = &[
    value("config"),
    switch("upload-certs"),
    value("certificate-key"),
    value("skip-phases"),
    value("ignore-preflight-errors"),
    switch("skip-token-print"),
    switch("skip-certificate-key-print"),
];

/// kubeadm's join command template: `kubeadm join EP --token T \` / `\t--discovery-token-ca-cert-hash H `
/// (and `\` / `\t--control-plane [--certificate-key K]` for control-plane nodes).
pub fn join_command(
    endpoint: &str,
    token: &str,
    hash: &str,
    control_plane: Option<Option<&str>>,
) -> String {
    let mut s = format!(
        "kubeadm join {endpoint} --token {token} \\\n\t--discovery-token-ca-cert-hash {hash} "
    );
    if let Some(key) = control_plane {
        s.push_str("\\\n\t--control-plane ");
        if let Some(k) = key {
            s.push_str(&format!("--certificate-key {k}"));
        }
    }
    s
}

/// Reads a `--config` file the way kubeadm reports a missing one.
pub fn read_config(env: &Env, file: &str) -> Result<String> {
    std::fs::read_to_string(env.user_path(file)).map_err(|_| {
        fail(format!(
            "unable to read config from {file:?} : open {file}: no such file or directory"
        ))
    })
}

/// Runs `kubeadm init`.
pub fn run(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(args, FLAGS)?;
    if let Some(extra) = p.positional.first() {
        return Err(fail(format!(
            "unknown command {extra:?} for \"kubeadm init\""
        )));
    }
    let file = p.get("config").ok_or_else(|| {
        fail("k8r stand-in: kubeadm init needs --config FILE (k8r always passes one)")
    })?;
    let text = read_config(ctx.env, file)?;
    let cfg = config::init(&text, file, ctx.env.version, ctx)?;
    let mut skip = p.list("skip-phases");
    skip.extend(cfg.skip_phases.iter().cloned());
    let skipped = |phase: &str| {
        skip.iter()
            .any(|s| s == phase || phase.starts_with(&format!("{s}/")))
    };
    let mut ignore = p.list("ignore-preflight-errors");
    ignore.extend(cfg.ignore_preflight.iter().cloned());

    let env = ctx.env;
    say!(
        ctx,
        "[init] Using Kubernetes version: {}",
        cfg.kubernetes_version.v()
    );
    if !skipped("preflight") {
        say!(ctx, "[preflight] Running pre-flight checks");
        let mut problems = Vec::new();
        preflight::host(env, &mut problems);
        preflight::control_plane(env, &mut problems);
        for f in ["/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf"] {
            preflight::file_available(env, f, &mut problems);
        }
        preflight::report(ctx, &problems, &ignore)?;
        say!(
            ctx,
            "[preflight] Pulling images required for setting up a Kubernetes cluster"
        );
        say!(ctx, "[preflight] This might take a minute or two, depending on the speed of your internet connection");
        say!(ctx, "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'");
    }
    let hostname = env.hostname();
    let plane = Plane {
        version: cfg.kubernetes_version,
        endpoint: cfg.endpoint(&hostname),
        local_endpoint: cfg.local_endpoint(&hostname),
        node_name: cfg.node_name.clone(),
        cluster_name: cfg.cluster_name.clone(),
        service_subnet: cfg.service_subnet.clone(),
        pod_subnet: cfg.pod_subnet.clone(),
        cert_sans: cfg.cert_sans.clone(),
    };
    say!(
        ctx,
        "[certs] Using certificateDir folder \"/etc/kubernetes/pki\""
    );
    for (name, _) in pki::CERT_PAIRS {
        say!(ctx, "[certs] Generating \"{name}\" certificate and key");
    }
    say!(ctx, "[certs] Generating \"sa\" key and public key");
    say!(
        ctx,
        "[kubeconfig] Using kubeconfig folder \"/etc/kubernetes\""
    );
    for k in control_plane::KUBECONFIGS {
        say!(ctx, "[kubeconfig] Writing \"{k}\" kubeconfig file");
    }
    say!(
        ctx,
        "[etcd] Creating static Pod manifest for local etcd in \"/etc/kubernetes/manifests\""
    );
    say!(
        ctx,
        "[control-plane] Using manifest folder \"/etc/kubernetes/manifests\""
    );
    for c in control_plane::COMPONENTS {
        say!(
            ctx,
            "[control-plane] Creating static Pod manifest for \"{c}\""
        );
    }
    let ca = control_plane::write(env, &plane)?;
    let hash = pki::ca_hash(&ca)?;
    write_state(env, &cfg, &plane)?;

    node_record::save(
        env,
        &NodeRecord {
            name: cfg.node_name.clone(),
            role: "control-plane".into(),
            endpoint: plane.endpoint.clone(),
            control_plane_version: cfg.kubernetes_version.to_string(),
            by: "init".into(),
            at: env.now,
        },
    )?;
    kubelet_start::write(
        ctx,
        &KubeletFiles {
            config: &cfg.kubelet,
            cri_socket: &cfg.cri_socket,
            node_name: &cfg.node_name,
            extra_args: &cfg.kubelet_extra_args,
        },
    )?;
    let started = kubelet_start::start(ctx);
    say!(ctx, "[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\"");
    if !skipped("wait-control-plane") {
        kubelet_start::wait(
            ctx,
            started,
            cfg.kubelet_health_timeout,
            "wait-control-plane",
        )?;
    }
    say!(ctx, "[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace");
    say!(ctx, "[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster");
    let certificate_key = if p.on("upload-certs") {
        let key = match p.get("certificate-key").map(str::to_string).or_else(|| cfg.certificate_key.clone()) {
            Some(k) if crate::formats::is_hex64(&k) => k,
            Some(k) => return Err(fail(format!("error execution phase upload-certs: error uploading certs: error decoding certificate key: {k:?} is not a hex encoded string of 32 bytes"))),
            None => random::hex(32)?,
        };
        say!(ctx, "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
        say!(ctx, "[upload-certs] Using certificate key:");
        say!(
            ctx,
            "{}",
            if p.on("skip-certificate-key-print") {
                "<value withheld>"
            } else {
                &key
            }
        );
        Some(key)
    } else {
        say!(
            ctx,
            "[upload-certs] Skipping phase. Please see --upload-certs"
        );
        None
    };
    say!(ctx, "[mark-control-plane] Marking the node {} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]", cfg.node_name);
    say!(ctx, "[mark-control-plane] Marking the node {} as control-plane by adding the taints [node-role.kubernetes.io/control-plane:NoSchedule]", cfg.node_name);
    let now = env.now;
    let mut minted = Vec::new();
    for spec in &cfg.tokens {
        let token = match &spec.token {
            Some(t) => t.clone(),
            None => random::bootstrap_token()?,
        };
        minted.push(Token {
            token,
            description: if spec.description.is_empty() && spec.token.is_none() {
                "The default bootstrap token generated by 'kubeadm init'.".into()
            } else {
                spec.description.clone()
            },
            created: now,
            ttl_seconds: spec.ttl,
            usages: spec.usages.clone(),
            groups: spec.groups.clone(),
        });
    }
    let first = minted.first().map(|t| t.token.clone()).unwrap_or_default();
    let coredns = !cfg.dns_disabled && !skipped("addon/coredns");
    let proxy = !cfg.proxy_disabled && !skipped("addon/kube-proxy");
    ClusterState::update(env, |s| {
        s.node_entry(&cfg.node_name, now).control_plane = true;
        for t in minted {
            s.tokens.retain(|x| x.token != t.token);
            s.tokens.push(t);
        }
        let mut add = |kind: &str, name: &str| {
            if !s
                .objects
                .iter()
                .any(|o| o.kind == kind && o.name == name && o.namespace == "kube-system")
            {
                s.objects.push(Object {
                    api_version: "apps/v1".into(),
                    kind: kind.into(),
                    namespace: "kube-system".into(),
                    name: name.into(),
                    digest: String::new(),
                    by: "kubeadm".into(),
                    uses_empty_dir: false,
                });
            }
        };
        if coredns {
            add("Deployment", "coredns");
        }
        if proxy {
            add("DaemonSet", "kube-proxy");
        }
        Ok(())
    })?;
    let shown = if p.on("skip-token-print") {
        "<value withheld>".to_string()
    } else {
        first
    };
    say!(ctx, "[bootstrap-token] Using token: {shown}");
    say!(
        ctx,
        "[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles"
    );
    say!(ctx, "[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace");
    say!(ctx, "[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client certificate and key");
    if coredns {
        say!(ctx, "[addons] Applied essential addon: CoreDNS");
    }
    if proxy {
        say!(ctx, "[addons] Applied essential addon: kube-proxy");
    }
    if !skipped("show-join-command") {
        success(
            ctx,
            &plane.endpoint,
            &shown,
            &hash,
            cfg.control_plane_endpoint.is_some(),
            certificate_key.as_deref(),
        );
    }
    Ok(())
}

fn write_state(env: &Env, cfg: &InitConfig, plane: &Plane) -> Result<()> {
    match ClusterState::load(env)? {
        // Only reachable with DirAvailable--var-lib-etcd ignored: keep the old cluster, as
        // etcd would.
        Some(_) => ClusterState::update(env, |s| {
            s.kubernetes_version = cfg.kubernetes_version;
            s.endpoint = plane.endpoint.clone();
            s.kubelet_config = cfg.kubelet.clone();
            Ok(())
        }),
        None => {
            let mut s = ClusterState::new(
                cfg.kubernetes_version,
                &cfg.cluster_name,
                &plane.endpoint,
                env.now,
            );
            s.kubelet_config = cfg.kubelet.clone();
            s.node_entry(&cfg.node_name, env.now).control_plane = true;
            s.create(env)
        }
    }
}

fn success(
    ctx: &mut Ctx<'_>,
    endpoint: &str,
    token: &str,
    hash: &str,
    has_cpe: bool,
    key: Option<&str>,
) {
    say!(
        ctx,
        "\nYour Kubernetes control-plane has initialized successfully!\n"
    );
    say!(
        ctx,
        "To start using your cluster, you need to run the following as a regular user:\n"
    );
    say!(ctx, "  mkdir -p $HOME/.kube");
    say!(
        ctx,
        "  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config"
    );
    say!(ctx, "  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n");
    say!(
        ctx,
        "Alternatively, if you are the root user, you can run:\n"
    );
    say!(ctx, "  export KUBECONFIG=/etc/kubernetes/admin.conf\n");
    say!(ctx, "You should now deploy a pod network to the cluster.");
    say!(
        ctx,
        "Run \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:"
    );
    say!(
        ctx,
        "  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n"
    );
    if let Some(k) = key {
        say!(ctx, "You can now join any number of control-plane nodes running the following command on each as root:\n");
        say!(
            ctx,
            "  {}\n",
            join_command(endpoint, token, hash, Some(Some(k)))
        );
        say!(ctx, "Please note that the certificate-key gives access to cluster sensitive data, keep it secret!");
        say!(ctx, "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use");
        say!(
            ctx,
            "\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward.\n"
        );
    } else if has_cpe {
        say!(
            ctx,
            "You can now join any number of control-plane nodes by copying certificate authorities"
        );
        say!(
            ctx,
            "and service account keys on each node and then running the following as root:\n"
        );
        say!(
            ctx,
            "  {}\n",
            join_command(endpoint, token, hash, Some(None))
        );
    }
    say!(
        ctx,
        "Then you can join any number of worker nodes by running the following on each as root:\n"
    );
    say!(ctx, "{}", join_command(endpoint, token, hash, None));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::TestRoot;
    use crate::Tool;

    pub const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n  - token: \"abcdef.0123456789abcdef\"\n    ttl: \"24h\"\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.1\nnodeRegistration:\n  name: pi-1\n  criSocket: unix:///var/run/containerd/containerd.sock\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.2\ncontrolPlaneEndpoint: \"k8s.lan:6443\"\nnetworking:\n  podSubnet: 10.244.0.0/16\napiServer:\n  certSANs: [\"k8s.lan\", \"10.0.0.1\"]\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n";

    pub fn init(t: &TestRoot, config: &str) -> crate::testutil::Ran {
        t.file("/etc/k8r/kubeadm.yaml", config);
        t.run(
            Tool::Kubeadm,
            &[
                "init",
                "--config",
                "/etc/k8r/kubeadm.yaml",
                "--upload-certs",
                "-v=5",
            ],
        )
    }

    #[test]
    fn init_creates_what_kubeadm_leaves_and_prints_the_join_command() {
        let t = TestRoot::new();
        let r = init(&t, CONFIG);
        r.ok();
        for f in [
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/pki/ca.key",
            "/etc/kubernetes/pki/apiserver.crt",
            "/etc/kubernetes/pki/apiserver.key",
            "/etc/kubernetes/pki/front-proxy-ca.crt",
            "/etc/kubernetes/pki/sa.key",
            "/etc/kubernetes/pki/sa.pub",
            "/etc/kubernetes/pki/etcd/ca.crt",
            "/etc/kubernetes/pki/etcd/ca.key",
            "/etc/kubernetes/pki/etcd/server.crt",
            "/etc/kubernetes/super-admin.conf",
            "/etc/kubernetes/controller-manager.conf",
            "/etc/kubernetes/scheduler.conf",
            "/etc/kubernetes/manifests/etcd.yaml",
            "/etc/kubernetes/manifests/kube-controller-manager.yaml",
            "/etc/kubernetes/manifests/kube-scheduler.yaml",
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
            crate::state::DB,
            node_record::PATH,
        ] {
            assert!(t.exists(f), "{f}");
        }
        use std::os::unix::fs::PermissionsExt;
        for k in control_plane::KUBECONFIGS {
            let meta =
                std::fs::metadata(t.path(&format!("/etc/kubernetes/{k}"))).expect("kubeconfig");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{k}");
        }
        let admin = t.read("/etc/kubernetes/admin.conf");
        assert!(
            admin.contains("    server: https://k8s.lan:6443\n"),
            "{admin}"
        );
        assert!(t
            .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .contains("    image: registry.k8s.io/kube-apiserver:v1.31.2\n"));
        assert!(t
            .read("/var/lib/kubelet/config.yaml")
            .contains("cgroupDriver: systemd\n"));
        assert_eq!(
            t.read("/var/lib/kubelet/kubeadm-flags.env"),
            "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock\"\n"
        );
        let hash = pki::ca_hash(&t.read("/etc/kubernetes/pki/ca.crt")).expect("hash");
        let tail = format!(
            "Then you can join any number of worker nodes by running the following on each as root:\n\nkubeadm join k8s.lan:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash {hash} \n"
        );
        assert!(r.out.ends_with(&tail), "{}", r.out);
        assert!(
            r.out.contains("\t--control-plane --certificate-key "),
            "{}",
            r.out
        );
        let s = ClusterState::load(&t.env).expect("load").expect("state");
        assert_eq!(s.kubernetes_version, crate::testutil::V);
        assert_eq!(s.endpoint, "k8s.lan:6443");
        assert_eq!(s.tokens.len(), 1);
        assert_eq!(s.tokens[0].ttl_seconds, 86_400);
        assert_eq!(s.nodes.len(), 1);
        assert!(
            s.nodes[0].control_plane && !s.nodes[0].ready,
            "Ready only once a kubelet runs"
        );
        assert!(s
            .objects
            .iter()
            .any(|o| o.kind == "DaemonSet" && o.name == "kube-proxy"));
        assert_eq!(
            t.read("/var/log/k8r-standin/0001-kubeadm-kubeadm.yaml"),
            CONFIG
        );
    }

    #[test]
    fn init_twice_fails_preflight_and_each_init_is_unique() {
        let t = TestRoot::new();
        init(&t, CONFIG).ok();
        let ca1 = t.read("/etc/kubernetes/pki/ca.crt");
        let r = init(&t, CONFIG);
        r.failed();
        for want in [
            "error execution phase preflight: [preflight] Some fatal errors occurred:\n",
            "\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists\n",
            "\t[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty\n",
            "\t[ERROR FileAvailable--etc-kubernetes-admin.conf]: /etc/kubernetes/admin.conf already exists\n",
            "\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists\n",
            "To see the stack trace of this error execute with --v=5 or higher\n",
        ] {
            assert!(r.err.contains(want), "{want}\n{}", r.err);
        }
        t.run(Tool::Kubeadm, &["reset", "-f"]).ok();
        init(&t, CONFIG).ok();
        assert_ne!(
            t.read("/etc/kubernetes/pki/ca.crt"),
            ca1,
            "a new CA per init"
        );
    }

    #[test]
    fn init_refuses_bad_hosts() {
        let t = TestRoot::new();
        t.file("/proc/sys/net/ipv4/ip_forward", "0\n");
        t.file("/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io pids\n");
        let r = init(&t, CONFIG);
        r.failed();
        assert!(r.err.contains("[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"), "{}", r.err);
        assert!(
            r.err
                .contains("[ERROR SystemVerification]: missing required cgroups: memory"),
            "{}",
            r.err
        );
        assert!(
            !t.exists("/etc/kubernetes/pki/ca.crt"),
            "nothing written after a failed preflight"
        );
        t.file("/etc/k8r/kubeadm.yaml", CONFIG);
        t.run(
            Tool::Kubeadm,
            &[
                "init",
                "--config",
                "/etc/k8r/kubeadm.yaml",
                "--ignore-preflight-errors=all",
            ],
        )
        .ok();
    }

    #[test]
    fn config_errors_name_the_field_and_document() {
        let t = TestRoot::new();
        let cases = [
            (CONFIG.replace("  name: pi-1\n", "  name: pi-1\n  nmae: x\n"), "error unmarshaling configuration schema.GroupVersionKind{Group:\"kubeadm.k8s.io\", Version:\"v1beta4\", Kind:\"InitConfiguration\"}: strict decoding error: unknown field \"nodeRegistration.nmae\""),
            (CONFIG.replace("kubernetesVersion: v1.31.2", "kubernetesVersion: v1.31.1"), "kubernetesVersion: Invalid value: \"v1.31.1\": k8r stand-in: this kubeadm is v1.31.2"),
            (CONFIG.replace("abcdef.0123456789abcdef", "abcdef.012345"), "bootstrapTokens[0].token: Invalid value: \"abcdef.012345\": the bootstrap token \"abcdef.012345\" was not of the form \"^([a-z0-9]{6})\\\\.([a-z0-9]{16})$\""),
            (CONFIG.replace("ttl: \"24h\"", "ttl: \"1d\""), "bootstrapTokens[0].ttl: Invalid value: \"1d\": time: invalid duration \"1d\""),
            (CONFIG.replace("10.244.0.0/16", "10.244.0.0/33"), "networking.podSubnet: Invalid value: \"10.244.0.0/33\": couldn't parse subnet"),
            (CONFIG.replace("\"k8s.lan:6443\"", "\"https://k8s.lan:6443\""), "controlPlaneEndpoint: Invalid value: \"https://k8s.lan:6443\""),
            (CONFIG.replace("  name: pi-1\n", "  name: Pi_1\n"), "nodeRegistration.name: Invalid value: \"Pi_1\": a lowercase RFC 1123 subdomain"),
            (CONFIG.replace("  name: pi-1\n", ""), "nodeRegistration.name: Required value"),
            (CONFIG.replace("unix:///var/run/containerd/containerd.sock", "/run/containerd/containerd.sock"), "nodeRegistration.criSocket: Invalid value: \"/run/containerd/containerd.sock\""),
            (CONFIG.replace("cgroupDriver: systemd", "cgroupDriver: cgroupfs"), "KubeletConfiguration.cgroupDriver: Invalid value: \"cgroupfs\""),
            (CONFIG.replace("cgroupDriver: systemd", "cgroupDriver: systemd\ncgroupDrvier: x"), "strict decoding error: unknown field \"cgroupDrvier\""),
            (CONFIG.replace("[\"k8s.lan\", \"10.0.0.1\"]", "[\"k8s lan\"]"), "apiServer.certSANs[0]: Invalid value: \"k8s lan\""),
            (CONFIG.replace("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta2"), "your configuration file uses an old API spec: \"kubeadm.k8s.io/v1beta2\" (kind: \"InitConfiguration\"). Please use kubeadm v1.26 instead"),
            (CONFIG.replace("kind: InitConfiguration\n", ""), "kind and apiVersion is mandatory information that must be specified"),
            (CONFIG.replace("advertiseAddress: 10.0.0.1", "advertiseAddress: 6443"), "cannot unmarshal number into Go struct field .localAPIEndpoint.advertiseAddress of type string"),
        ];
        for (config, want) in cases {
            let r = init(&t, &config);
            r.failed();
            assert!(r.err.contains(want), "want {want}\ngot {}", r.err);
            assert!(!t.exists("/etc/kubernetes/admin.conf"));
        }
        let r = t.run(Tool::Kubeadm, &["init", "--config", "/nope.yaml"]);
        assert!(
            r.err
                .starts_with("unable to read config from \"/nope.yaml\""),
            "{}",
            r.err
        );
    }

    #[test]
    fn v1beta3_is_deprecated_before_1_36_and_removed_from_it() {
        let old = CONFIG.replace("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta3");
        let t = TestRoot::new();
        let r = init(&t, &old);
        r.ok();
        assert!(
            r.err.contains(
                "your configuration file uses a deprecated API spec: \"kubeadm.k8s.io/v1beta3\""
            ),
            "{}",
            r.err
        );
        let t = TestRoot::new().with_version(crate::Version::new(1, 36, 0));
        let r = init(&t, &old.replace("v1.31.2", "v1.36.0"));
        r.failed();
        assert!(r.err.contains("uses an old API spec: \"kubeadm.k8s.io/v1beta3\" (kind: \"InitConfiguration\"). Please use kubeadm v1.35 instead"), "{}", r.err);
    }

    #[test]
    fn generated_and_never_expiring_tokens() {
        let t = TestRoot::new();
        let cfg = CONFIG.replace(
            "  - token: \"abcdef.0123456789abcdef\"\n    ttl: \"24h\"\n",
            "  - ttl: \"0\"\n",
        );
        let r = init(&t, &cfg);
        r.ok();
        let s = ClusterState::load(&t.env).expect("load").expect("state");
        assert_eq!(s.tokens[0].ttl_seconds, 0);
        assert!(crate::formats::is_bootstrap_token(&s.tokens[0].token));
        assert!(r
            .out
            .contains(&format!("--token {} \\\n", s.tokens[0].token)));
    }
}
