//! Test stand-in for kubeadm's configuration loading: multi-document YAML with
//! InitConfiguration/ClusterConfiguration/JoinConfiguration (`kubeadm.k8s.io/v1beta4`) and
//! KubeletConfiguration (`kubelet.config.k8s.io/v1beta1`), decoded strictly (unknown fields are
//! errors, where the real kubeadm only warns), then validated the way kubeadm validates (token,
//! TTL, CIDRs, endpoint, SANs, node name, CRI socket) plus two k8r-specific rules:
//! `kubernetesVersion` must be this kubeadm's own version and `cgroupDriver` must be `systemd`.
//! v1beta3 is accepted with kubeadm's deprecation warning before 1.36 (then only leniently
//! checked) and refused from 1.36; older APIs are refused. It does not default or migrate
//! configurations, or read component configs other than the kubelet's.

use std::time::Duration;

use serde_json::{json, Value};

use super::schema::{self, Ty};
use crate::error::{fail, Result};
use crate::{formats, yaml, Ctx, Version};

/// Default CRI socket.
pub const CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";

/// One bootstrap token from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// The token, if given (else generated).
    pub token: Option<String>,
    /// TTL in seconds, 0 = never.
    pub ttl: u64,
    /// Description.
    pub description: String,
    /// Usages.
    pub usages: Vec<String>,
    /// Groups.
    pub groups: Vec<String>,
}

impl TokenSpec {
    /// kubeadm's default token.
    pub fn default_token(ttl: u64) -> TokenSpec {
        TokenSpec {
            token: None,
            ttl,
            description: String::new(),
            usages: vec!["signing".into(), "authentication".into()],
            groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
        }
    }
}

/// What `kubeadm init --config` asks for.
#[derive(Debug, Clone)]
pub struct InitConfig {
    /// Bootstrap tokens.
    pub tokens: Vec<TokenSpec>,
    /// `nodeRegistration.name`.
    pub node_name: String,
    /// `nodeRegistration.criSocket`.
    pub cri_socket: String,
    /// `nodeRegistration.kubeletExtraArgs`.
    pub kubelet_extra_args: Vec<(String, String)>,
    /// `nodeRegistration.ignorePreflightErrors`.
    pub ignore_preflight: Vec<String>,
    /// `skipPhases`.
    pub skip_phases: Vec<String>,
    /// `localAPIEndpoint.advertiseAddress`.
    pub advertise_address: Option<String>,
    /// `localAPIEndpoint.bindPort`.
    pub bind_port: u16,
    /// `certificateKey`.
    pub certificate_key: Option<String>,
    /// `timeouts.kubeletHealthCheck`.
    pub kubelet_health_timeout: Duration,
    /// `kubernetesVersion`.
    pub kubernetes_version: Version,
    /// `controlPlaneEndpoint`.
    pub control_plane_endpoint: Option<String>,
    /// `networking.podSubnet`.
    pub pod_subnet: Option<String>,
    /// `networking.serviceSubnet`.
    pub service_subnet: String,
    /// `apiServer.certSANs`.
    pub cert_sans: Vec<String>,
    /// `clusterName`.
    pub cluster_name: String,
    /// `proxy.disabled`.
    pub proxy_disabled: bool,
    /// `dns.disabled`.
    pub dns_disabled: bool,
    /// The KubeletConfiguration document, with kubeadm's defaults for the fields it sets.
    pub kubelet: Value,
}

impl InitConfig {
    /// The API endpoint `host:port` kubeconfigs and join commands use.
    pub fn endpoint(&self, hostname: &str) -> String {
        if let Some(cpe) = &self.control_plane_endpoint {
            if let Ok((host, port)) = formats::parse_endpoint(cpe) {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                return format!("{host}:{}", port.unwrap_or(self.bind_port));
            }
        }
        self.local_endpoint(hostname)
    }

    /// `advertiseAddress:bindPort` (the host name if no address is set).
    pub fn local_endpoint(&self, hostname: &str) -> String {
        let host = self
            .advertise_address
            .clone()
            .unwrap_or_else(|| hostname.to_string());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        format!("{host}:{}", self.bind_port)
    }
}

/// What `kubeadm join` asks for.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// `host:port` of the API server.
    pub endpoint: String,
    /// Bootstrap token.
    pub token: String,
    /// `sha256:…` pins.
    pub ca_hashes: Vec<String>,
    /// `--discovery-token-unsafe-skip-ca-verification`.
    pub unsafe_skip_ca: bool,
    /// Node name.
    pub node_name: String,
    /// CRI socket.
    pub cri_socket: String,
    /// `nodeRegistration.kubeletExtraArgs`.
    pub kubelet_extra_args: Vec<(String, String)>,
    /// Preflight errors to ignore.
    pub ignore_preflight: Vec<String>,
    /// Phases to skip.
    pub skip_phases: Vec<String>,
    /// `--control-plane`: the certificate key, if given.
    pub control_plane: Option<ControlPlaneJoin>,
    /// `timeouts.tlsBootstrap`.
    pub tls_bootstrap_timeout: Duration,
}

/// The control-plane part of a join.
#[derive(Debug, Clone)]
pub struct ControlPlaneJoin {
    /// `--certificate-key`.
    pub certificate_key: Option<String>,
    /// `--apiserver-advertise-address`.
    pub advertise_address: Option<String>,
    /// `--apiserver-bind-port`.
    pub bind_port: u16,
}

/// Field errors, reported as kubeadm aggregates them.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<String>);

impl FieldErrors {
    /// Adds `path: Invalid value: "v": why`.
    pub fn invalid(&mut self, path: &str, value: &str, why: &str) {
        self.0
            .push(format!("{path}: Invalid value: {value:?}: {why}"));
    }

    /// Adds `path: Required value: why`.
    pub fn required(&mut self, path: &str, why: &str) {
        self.0.push(format!("{path}: Required value: {why}"));
    }

    /// `Err` with the aggregate if there are any.
    pub fn into_result(self) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(fail(self.0.concat())),
            _ => Err(fail(format!("[{}]", self.0.join(", ")))),
        }
    }
}

fn gvk(api: &str, kind: &str) -> String {
    let (g, v) = api.rsplit_once('/').unwrap_or(("", api));
    format!("schema.GroupVersionKind{{Group:{g:?}, Version:{v:?}, Kind:{kind:?}}}")
}

/// The kubeadm versions to use for old config APIs.
fn old_api(version: &str, own: Version) -> Option<&'static str> {
    match version {
        "v1alpha1" | "v1alpha2" | "v1alpha3" => Some("v1.13"),
        "v1beta1" => Some("v1.21"),
        "v1beta2" => Some("v1.26"),
        "v1beta3" if own >= Version::new(1, 36, 0) => Some("v1.35"),
        _ => None,
    }
}

/// Documents of a kubeadm config file, sorted by kind after API checks. `strict` says whether
/// the document is a v1beta4 kind (strict field checks apply).
struct Loaded {
    docs: Vec<(String, Value, bool)>,
}

fn load(text: &str, file: &str, own: Version, known: &[&str], ctx: &mut Ctx<'_>) -> Result<Loaded> {
    let values = yaml::parse_docs(text)
        .map_err(|e| fail(format!("unable to decode config from {file:?}: {e}")))?;
    let mut docs = Vec::new();
    for v in values {
        let api = yaml::str_at(&v, &["apiVersion"])
            .unwrap_or_default()
            .to_string();
        let kind = yaml::str_at(&v, &["kind"]).unwrap_or_default().to_string();
        if api.is_empty() || kind.is_empty() {
            return Err(fail(format!(
                "invalid configuration for GroupVersionKind {}, Kind={kind}: kind and apiVersion is mandatory information that must be specified",
                if api.is_empty() { "/".to_string() } else { api.clone() }
            )));
        }
        let (group, version) = api.rsplit_once('/').unwrap_or(("", api.as_str()));
        match group {
            "kubeadm.k8s.io" => {
                if let Some(use_version) = old_api(version, own) {
                    return Err(fail(format!(
                        "your configuration file uses an old API spec: {api:?} (kind: {kind:?}). Please use kubeadm {use_version} instead and run 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version."
                    )));
                }
                let strict = match version {
                    "v1beta4" => true,
                    "v1beta3" => {
                        crate::warn!(
                            ctx,
                            "{}    {} common.go:101] your configuration file uses a deprecated API spec: {api:?} (kind: {kind:?}). Please use 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version.",
                            crate::clock::klog('W', ctx.env.now),
                            std::process::id()
                        );
                        false
                    }
                    _ => {
                        return Err(fail(format!(
                            "no kind {kind:?} is registered for version {api:?} in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\""
                        )))
                    }
                };
                if !matches!(
                    kind.as_str(),
                    "InitConfiguration"
                        | "ClusterConfiguration"
                        | "JoinConfiguration"
                        | "ResetConfiguration"
                        | "UpgradeConfiguration"
                ) {
                    return Err(fail(format!(
                        "no kind {kind:?} is registered for version {api:?} in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\""
                    )));
                }
                if !known.contains(&kind.as_str()) {
                    crate::warn!(ctx, "[config] WARNING: Ignored configuration document with GroupVersionKind {api}, Kind={kind}");
                    continue;
                }
                docs.push((kind, v, strict));
            }
            "kubelet.config.k8s.io" if kind == "KubeletConfiguration" => {
                if version != "v1beta1" {
                    return Err(fail(format!("no kind {kind:?} is registered for version {api:?} in scheme \"pkg/kubelet/apis/config/scheme/scheme.go:33\"")));
                }
                if known.contains(&"KubeletConfiguration") {
                    docs.push((kind, v, true));
                }
            }
            "kubeproxy.config.k8s.io" if kind == "KubeProxyConfiguration" => {}
            _ => {
                crate::warn!(ctx, "[config] WARNING: Ignored configuration document with GroupVersionKind {api}, Kind={kind}");
            }
        }
    }
    for (kind, v, strict) in &docs {
        if docs.iter().filter(|(k, _, _)| k == kind).count() > 1 {
            return Err(fail(format!(
                "k8r stand-in: {file:?} has more than one {kind} document"
            )));
        }
        let api = yaml::str_at(v, &["apiVersion"]).unwrap_or_default();
        let (unknown, types) = if kind == "KubeletConfiguration" {
            (schema::kubelet_unknown(v), Vec::new())
        } else if *strict {
            let ty: &Ty = match kind.as_str() {
                "InitConfiguration" => &schema::INIT,
                "ClusterConfiguration" => &schema::CLUSTER,
                _ => &schema::JOIN,
            };
            schema::check(v, ty)
        } else {
            (Vec::new(), Vec::new())
        };
        if let Some(t) = types.first() {
            return Err(fail(format!(
                "error unmarshaling configuration {}: {t}",
                gvk(api, kind)
            )));
        }
        if !unknown.is_empty() {
            let list: Vec<String> = unknown
                .iter()
                .map(|u| format!("unknown field {u:?}"))
                .collect();
            return Err(fail(format!(
                "error unmarshaling configuration {}: strict decoding error: {}",
                gvk(api, kind),
                list.join(", ")
            )));
        }
    }
    Ok(Loaded { docs })
}

impl Loaded {
    fn get(&self, kind: &str) -> Option<&Value> {
        self.docs
            .iter()
            .find(|(k, _, _)| k == kind)
            .map(|(_, v, _)| v)
    }
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn extra_args(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some((
                        e.get("name")?.as_str()?.to_string(),
                        e.get("value")?.as_str().unwrap_or("").to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn duration_field(v: &Value, path: &[&str], default: Duration, errs: &mut FieldErrors) -> Duration {
    match yaml::str_at(v, path) {
        None => default,
        Some(s) => formats::parse_duration(s).unwrap_or_else(|| {
            errs.invalid(&path.join("."), s, &format!("time: invalid duration {s:?}"));
            default
        }),
    }
}

fn check_node_registration(v: &Value, errs: &mut FieldErrors) -> (String, String) {
    let name = yaml::str_at(v, &["nodeRegistration", "name"])
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        errs.required("nodeRegistration.name", "k8r stand-in: k8r always sets the node name (the real kubeadm would default it to the host name)");
    } else if !formats::is_dns1123_subdomain(&name) {
        errs.invalid("nodeRegistration.name", &name, formats::DNS1123_MSG);
    }
    let cri = yaml::str_at(v, &["nodeRegistration", "criSocket"])
        .unwrap_or(CRI_SOCKET)
        .to_string();
    check_cri_socket("nodeRegistration.criSocket", &cri, errs);
    (name, cri)
}

/// `unix:///absolute/path`.
pub fn check_cri_socket(path: &str, cri: &str, errs: &mut FieldErrors) {
    match cri.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') && p.len() > 1 => {}
        _ => errs.invalid(path, cri, "k8r stand-in: expected a unix:// URL of an absolute socket path, e.g. unix:///var/run/containerd/containerd.sock"),
    }
}

/// Reads and validates `kubeadm init --config FILE` (`text` is its content).
pub fn init(text: &str, file: &str, own: Version, ctx: &mut Ctx<'_>) -> Result<InitConfig> {
    let loaded = load(
        text,
        file,
        own,
        &[
            "InitConfiguration",
            "ClusterConfiguration",
            "KubeletConfiguration",
        ],
        ctx,
    )?;
    let empty = json!({});
    let init = loaded.get("InitConfiguration");
    let cluster = loaded.get("ClusterConfiguration");
    if init.is_none() && cluster.is_none() {
        return Err(fail(
            "no InitConfiguration or ClusterConfiguration kind was found in the YAML file",
        ));
    }
    let init = init.unwrap_or(&empty);
    let cluster = cluster.unwrap_or(&empty);
    let mut errs = FieldErrors::default();

    let mut tokens = Vec::new();
    match init.get("bootstrapTokens").and_then(Value::as_array) {
        None => tokens.push(TokenSpec::default_token(86_400)),
        Some(list) => {
            for (i, t) in list.iter().enumerate() {
                let p = format!("bootstrapTokens[{i}]");
                let token = yaml::str_at(t, &["token"]).map(str::to_string);
                if let Some(tok) = &token {
                    if !formats::is_bootstrap_token(tok) {
                        errs.invalid(&format!("{p}.token"), tok, &formats::token_error(tok));
                    }
                }
                let ttl = match yaml::str_at(t, &["ttl"]) {
                    None => 86_400,
                    Some(s) => match formats::parse_duration(s) {
                        Some(d) => d.as_secs(),
                        None => {
                            errs.invalid(
                                &format!("{p}.ttl"),
                                s,
                                &format!("time: invalid duration {s:?}"),
                            );
                            0
                        }
                    },
                };
                let mut spec = TokenSpec::default_token(ttl);
                spec.token = token;
                spec.description = yaml::str_at(t, &["description"])
                    .unwrap_or_default()
                    .to_string();
                if t.get("usages").is_some() {
                    spec.usages = strs(t.get("usages"));
                    for u in &spec.usages {
                        if !matches!(u.as_str(), "signing" | "authentication") {
                            errs.invalid(&format!("{p}.usages"), u, "invalid bootstrap token usage string: valid usages are [signing, authentication]");
                        }
                    }
                }
                if t.get("groups").is_some() {
                    spec.groups = strs(t.get("groups"));
                }
                tokens.push(spec);
            }
        }
    }
    let (node_name, cri_socket) = check_node_registration(init, &mut errs);
    let advertise_address =
        yaml::str_at(init, &["localAPIEndpoint", "advertiseAddress"]).map(str::to_string);
    if let Some(a) = &advertise_address {
        if a.parse::<std::net::IpAddr>().is_err() {
            errs.invalid(
                "localAPIEndpoint.advertiseAddress",
                a,
                "could not parse as an IP address",
            );
        }
    }
    let bind_port = match init
        .get("localAPIEndpoint")
        .and_then(|e| e.get("bindPort"))
        .and_then(Value::as_i64)
    {
        None => 6443,
        Some(p) => u16::try_from(p).ok().filter(|p| *p > 0).unwrap_or_else(|| {
            errs.invalid(
                "localAPIEndpoint.bindPort",
                &p.to_string(),
                "must be between 1 and 65535, inclusive",
            );
            6443
        }),
    };
    let certificate_key = yaml::str_at(init, &["certificateKey"]).map(str::to_string);
    if let Some(k) = &certificate_key {
        if !formats::is_hex64(k) {
            errs.invalid(
                "certificateKey",
                k,
                "the certificate key must be a hex encoded string of 32 bytes",
            );
        }
    }
    let kubelet_health_timeout = duration_field(
        init,
        &["timeouts", "kubeletHealthCheck"],
        Duration::from_secs(240),
        &mut errs,
    );

    let kubernetes_version = match yaml::str_at(cluster, &["kubernetesVersion"]) {
        None => {
            errs.required("kubernetesVersion", &format!("k8r stand-in: k8r always passes the image's own version (v{own}); the real kubeadm would look up \"stable-1\" on the internet"));
            own
        }
        Some(s) => match Version::parse(s) {
            Some(v) if v == own => v,
            _ => {
                errs.invalid("kubernetesVersion", s, &format!("k8r stand-in: this kubeadm is v{own} and k8r always passes the image's own version, so a different one is a k8r bug (the real kubeadm would also accept a lower version)"));
                own
            }
        },
    };
    let control_plane_endpoint =
        yaml::str_at(cluster, &["controlPlaneEndpoint"]).map(str::to_string);
    if let Some(c) = &control_plane_endpoint {
        if let Err(why) = formats::parse_endpoint(c) {
            errs.invalid("controlPlaneEndpoint", c, &why);
        }
    }
    let pod_subnet = yaml::str_at(cluster, &["networking", "podSubnet"]).map(str::to_string);
    if let Some(s) = &pod_subnet {
        if !formats::is_cidr_list(s) {
            errs.invalid("networking.podSubnet", s, "couldn't parse subnet");
        }
    }
    let service_subnet = yaml::str_at(cluster, &["networking", "serviceSubnet"])
        .unwrap_or("10.96.0.0/12")
        .to_string();
    if !formats::is_cidr_list(&service_subnet) {
        errs.invalid(
            "networking.serviceSubnet",
            &service_subnet,
            "couldn't parse subnet",
        );
    }
    let cert_sans = strs(yaml::at(cluster, &["apiServer", "certSANs"]));
    for (i, san) in cert_sans.iter().enumerate() {
        let wildcard = san.strip_prefix("*.").unwrap_or(san);
        if san.parse::<std::net::IpAddr>().is_err() && !formats::is_dns1123_subdomain(wildcard) {
            errs.invalid(&format!("apiServer.certSANs[{i}]"), san, "altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards");
        }
    }
    let kubelet = kubelet_defaults(loaded.get("KubeletConfiguration"), &mut errs);
    errs.into_result()?;
    Ok(InitConfig {
        tokens,
        node_name,
        cri_socket,
        kubelet_extra_args: extra_args(yaml::at(init, &["nodeRegistration", "kubeletExtraArgs"])),
        ignore_preflight: strs(yaml::at(
            init,
            &["nodeRegistration", "ignorePreflightErrors"],
        )),
        skip_phases: strs(init.get("skipPhases")),
        advertise_address,
        bind_port,
        certificate_key,
        kubelet_health_timeout,
        kubernetes_version,
        control_plane_endpoint,
        pod_subnet,
        service_subnet,
        cert_sans,
        cluster_name: yaml::str_at(cluster, &["clusterName"])
            .unwrap_or("kubernetes")
            .to_string(),
        proxy_disabled: yaml::at(cluster, &["proxy", "disabled"])
            .and_then(Value::as_bool)
            .unwrap_or(false),
        dns_disabled: yaml::at(cluster, &["dns", "disabled"])
            .and_then(Value::as_bool)
            .unwrap_or(false),
        kubelet,
    })
}

/// The KubeletConfiguration kubeadm writes: the given document (or none) with the fields
/// kubeadm defaults.
pub fn kubelet_defaults(doc: Option<&Value>, errs: &mut FieldErrors) -> Value {
    let mut v = doc.cloned().unwrap_or_else(|| json!({}));
    if let Some(d) = yaml::str_at(&v, &["cgroupDriver"]) {
        if d != "systemd" {
            errs.invalid("KubeletConfiguration.cgroupDriver", d, "k8r stand-in: k8r configures containerd with SystemdCgroup = true, so the kubelet must use the \"systemd\" cgroup driver");
        }
    }
    let obj = match v.as_object_mut() {
        Some(o) => o,
        None => return v,
    };
    let defaults = [
        ("apiVersion", json!("kubelet.config.k8s.io/v1beta1")),
        ("kind", json!("KubeletConfiguration")),
        ("cgroupDriver", json!("systemd")),
        ("clusterDNS", json!(["10.96.0.10"])),
        ("clusterDomain", json!("cluster.local")),
        ("rotateCertificates", json!(true)),
        ("staticPodPath", json!("/etc/kubernetes/manifests")),
        (
            "authentication",
            json!({"anonymous": {"enabled": false}, "webhook": {"enabled": true}, "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}}),
        ),
        ("authorization", json!({"mode": "Webhook"})),
    ];
    for (k, d) in defaults {
        obj.entry(k).or_insert(d);
    }
    v
}

/// `kubeadm join` inputs: flags, or a JoinConfiguration file.
#[derive(Debug, Default)]
pub struct JoinInputs {
    /// Positional endpoint.
    pub endpoint: Option<String>,
    /// `--token` / `--discovery-token`.
    pub token: Option<String>,
    /// `--discovery-token-ca-cert-hash` (repeatable).
    pub ca_hashes: Vec<String>,
    /// `--discovery-token-unsafe-skip-ca-verification`.
    pub unsafe_skip_ca: bool,
    /// `--node-name`.
    pub node_name: Option<String>,
    /// `--cri-socket`.
    pub cri_socket: Option<String>,
    /// `--control-plane`.
    pub control_plane: bool,
    /// `--certificate-key`.
    pub certificate_key: Option<String>,
    /// `--apiserver-advertise-address`.
    pub advertise_address: Option<String>,
    /// `--apiserver-bind-port`.
    pub bind_port: Option<u16>,
    /// `--ignore-preflight-errors`.
    pub ignore_preflight: Vec<String>,
    /// `--skip-phases`.
    pub skip_phases: Vec<String>,
}

/// Validates a join from flags (`config` = None) or from a JoinConfiguration file.
pub fn join(
    inputs: JoinInputs,
    config: Option<(&str, &str)>,
    own: Version,
    hostname: &str,
    ctx: &mut Ctx<'_>,
) -> Result<JoinConfig> {
    let mut errs = FieldErrors::default();
    let (
        endpoint,
        token,
        ca_hashes,
        unsafe_skip,
        node_name,
        cri,
        extra,
        ignore,
        skip,
        cp,
        tls_timeout,
    ) = match config {
        Some((text, file)) => {
            let loaded = load(text, file, own, &["JoinConfiguration"], ctx)?;
            let v = loaded
                .get("JoinConfiguration")
                .cloned()
                .ok_or_else(|| fail("no JoinConfiguration kind was found in the YAML file"))?;
            let bt = |k: &str| yaml::at(&v, &["discovery", "bootstrapToken", k]).cloned();
            let (name, cri) = check_node_registration(&v, &mut errs);
            let cp = v
                .get("controlPlane")
                .filter(|c| !c.is_null())
                .map(|c| ControlPlaneJoin {
                    certificate_key: yaml::str_at(c, &["certificateKey"]).map(str::to_string),
                    advertise_address: yaml::str_at(c, &["localAPIEndpoint", "advertiseAddress"])
                        .map(str::to_string),
                    bind_port: yaml::at(c, &["localAPIEndpoint", "bindPort"])
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(6443),
                });
            let tls = duration_field(
                &v,
                &["timeouts", "tlsBootstrap"],
                Duration::from_secs(300),
                &mut errs,
            );
            (
                bt("apiServerEndpoint")
                    .and_then(|e| e.as_str().map(str::to_string))
                    .unwrap_or_default(),
                bt("token")
                    .and_then(|e| e.as_str().map(str::to_string))
                    .or_else(|| {
                        yaml::str_at(&v, &["discovery", "tlsBootstrapToken"]).map(str::to_string)
                    })
                    .unwrap_or_default(),
                strs(bt("caCertHashes").as_ref()),
                bt("unsafeSkipCAVerification")
                    .and_then(|b| b.as_bool())
                    .unwrap_or(false),
                name,
                cri,
                extra_args(yaml::at(&v, &["nodeRegistration", "kubeletExtraArgs"])),
                strs(yaml::at(&v, &["nodeRegistration", "ignorePreflightErrors"])),
                strs(v.get("skipPhases")),
                cp,
                tls,
            )
        }
        None => {
            let name = inputs
                .node_name
                .clone()
                .unwrap_or_else(|| hostname.to_string());
            if !formats::is_dns1123_subdomain(&name) {
                errs.invalid("nodeRegistration.name", &name, formats::DNS1123_MSG);
            }
            let cri = inputs
                .cri_socket
                .clone()
                .unwrap_or_else(|| CRI_SOCKET.to_string());
            check_cri_socket("nodeRegistration.criSocket", &cri, &mut errs);
            let cp = inputs.control_plane.then(|| ControlPlaneJoin {
                certificate_key: inputs.certificate_key.clone(),
                advertise_address: inputs.advertise_address.clone(),
                bind_port: inputs.bind_port.unwrap_or(6443),
            });
            (
                inputs.endpoint.clone().unwrap_or_default(),
                inputs.token.clone().unwrap_or_default(),
                inputs.ca_hashes.clone(),
                inputs.unsafe_skip_ca,
                name,
                cri,
                Vec::new(),
                Vec::new(),
                Vec::new(),
                cp,
                Duration::from_secs(300),
            )
        }
    };
    if token.is_empty() {
        errs.invalid(
            "discovery.bootstrapToken.token",
            "",
            "the bootstrap token is invalid",
        );
    } else if !formats::is_bootstrap_token(&token) {
        errs.invalid(
            "discovery.bootstrapToken.token",
            &token,
            &formats::token_error(&token),
        );
    }
    match formats::parse_endpoint(&endpoint) {
        Ok((_, Some(_))) => {}
        Ok((_, None)) => errs.invalid(
            "discovery.bootstrapToken.apiServerEndpoint",
            &endpoint,
            &format!("address {endpoint}: missing port in address"),
        ),
        Err(why) if endpoint.is_empty() => errs.invalid(
            "discovery.bootstrapToken.apiServerEndpoint",
            "",
            &format!("address : missing port in address ({why})"),
        ),
        Err(why) => errs.invalid(
            "discovery.bootstrapToken.apiServerEndpoint",
            &endpoint,
            &why,
        ),
    }
    if ca_hashes.is_empty() && !unsafe_skip {
        errs.invalid("discovery.bootstrapToken.caCertHashes", "", "using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue");
    }
    for h in &ca_hashes {
        if let Err(why) = formats::check_ca_hash(h) {
            errs.invalid("discovery.bootstrapToken.caCertHashes", h, &why);
        }
    }
    if let Some(c) = &cp {
        if let Some(a) = &c.advertise_address {
            if a.parse::<std::net::IpAddr>().is_err() {
                errs.invalid(
                    "controlPlane.localAPIEndpoint.advertiseAddress",
                    a,
                    "could not parse as an IP address",
                );
            }
        }
    }
    errs.into_result()?;
    let mut ignore_preflight = ignore;
    ignore_preflight.extend(inputs.ignore_preflight);
    let mut skip_phases = skip;
    skip_phases.extend(inputs.skip_phases);
    Ok(JoinConfig {
        endpoint,
        token,
        ca_hashes,
        unsafe_skip_ca: unsafe_skip,
        node_name,
        cri_socket: cri,
        kubelet_extra_args: extra,
        ignore_preflight,
        skip_phases,
        control_plane: cp,
        tls_bootstrap_timeout: tls_timeout,
    })
}
