//! The kubeadm configuration the first master is initialised with: `kubeadm.k8s.io/v1beta4`
//! (kubeadm accepts it from 1.31; v1beta3 is gone in 1.36: kubernetes-node.md §3.1), an
//! `InitConfiguration`, a `ClusterConfiguration` and a `KubeletConfiguration`
//! (`cgroupDriver: systemd`, as containerd is configured).
//!
//! Pure: [`InitInputs`] in, YAML text out. Every value is quoted as a YAML double-quoted
//! string, so no setting can change the document's structure.

use std::fmt::Write as _;
use std::net::IpAddr;

use k8r_config::{BuildConfig, Version};

/// containerd's CRI socket (kubernetes-node.md §2.5).
pub const CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
/// kubeadm's default service network.
pub const SERVICE_SUBNET: &str = "10.96.0.0/12";
/// The API server's port.
pub const API_PORT: u16 = 6443;
/// How long kubeadm waits for the control plane to come up: SD cards are slow (§6).
pub const HEALTH_TIMEOUT: &str = "10m0s";

/// What the configuration is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitInputs {
    /// `kubernetesVersion`.
    pub version: Version,
    /// The node's name.
    pub node_name: String,
    /// The node's address (the API server advertises it).
    pub address: IpAddr,
    /// `controlPlaneEndpoint`: `CONTROL_PLANE_ENDPOINT`, or the node's address.
    pub endpoint: String,
    /// Extra names and addresses for the API server's certificate.
    pub cert_sans: Vec<String>,
    /// `networking.podSubnet`.
    pub pod_subnet: String,
    /// The bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
    pub token: String,
    /// Its TTL: `0` (never expires) or a Go duration.
    pub token_ttl: String,
}

impl InitInputs {
    /// The inputs from the node's settings.
    pub fn new(config: &BuildConfig, node_name: &str, address: IpAddr, token: &str) -> InitInputs {
        let endpoint = match &config.control_plane_endpoint {
            Some(e) => {
                let host = match e.ip() {
                    Some(IpAddr::V6(_)) => format!("[{}]", e.host),
                    _ => e.host.clone(),
                };
                format!("{host}:{}", e.port.unwrap_or(API_PORT))
            }
            None => match address {
                IpAddr::V6(a) => format!("[{a}]:{API_PORT}"),
                IpAddr::V4(a) => format!("{a}:{API_PORT}"),
            },
        };
        let mut cert_sans = Vec::new();
        if let Some(e) = &config.control_plane_endpoint {
            cert_sans.push(e.host.clone());
        }
        for s in [address.to_string(), node_name.to_owned()] {
            if !cert_sans.contains(&s) {
                cert_sans.push(s);
            }
        }
        InitInputs {
            version: config.k8s_version,
            node_name: node_name.to_owned(),
            address,
            endpoint,
            cert_sans,
            pod_subnet: config.pod_network_cidr.clone(),
            token: token.to_owned(),
            token_ttl: ttl(&config.token_ttl),
        }
    }
}

/// kubeadm's duration for `TOKEN_TTL` (`0` stays `0`: never expires).
fn ttl(value: &str) -> String {
    if value.trim().is_empty() {
        "0".to_owned()
    } else {
        value.trim().to_owned()
    }
}

/// A YAML double-quoted scalar.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The configuration for `kubeadm init --config`.
pub fn init_config(i: &InitInputs) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# k8r: kubeadm configuration of the first master (generated)"
    );
    let _ = writeln!(y, "apiVersion: kubeadm.k8s.io/v1beta4");
    let _ = writeln!(y, "kind: InitConfiguration");
    let _ = writeln!(y, "bootstrapTokens:");
    let _ = writeln!(y, "  - token: {}", q(&i.token));
    let _ = writeln!(y, "    ttl: {}", q(&i.token_ttl));
    let _ = writeln!(y, "    usages: [\"signing\", \"authentication\"]");
    let _ = writeln!(
        y,
        "    groups: [\"system:bootstrappers:kubeadm:default-node-token\"]"
    );
    let _ = writeln!(y, "localAPIEndpoint:");
    let _ = writeln!(y, "  advertiseAddress: {}", q(&i.address.to_string()));
    let _ = writeln!(y, "  bindPort: {API_PORT}");
    let _ = writeln!(y, "nodeRegistration:");
    let _ = writeln!(y, "  name: {}", q(&i.node_name));
    let _ = writeln!(y, "  criSocket: {}", q(CRI_SOCKET));
    let _ = writeln!(y, "  kubeletExtraArgs:");
    let _ = writeln!(y, "    - name: \"node-ip\"");
    let _ = writeln!(y, "      value: {}", q(&i.address.to_string()));
    let _ = writeln!(y, "timeouts:");
    let _ = writeln!(
        y,
        "  controlPlaneComponentHealthCheck: {}",
        q(HEALTH_TIMEOUT)
    );
    let _ = writeln!(y, "---");
    let _ = writeln!(y, "apiVersion: kubeadm.k8s.io/v1beta4");
    let _ = writeln!(y, "kind: ClusterConfiguration");
    let _ = writeln!(y, "kubernetesVersion: {}", q(&format!("v{}", i.version)));
    let _ = writeln!(y, "controlPlaneEndpoint: {}", q(&i.endpoint));
    let _ = writeln!(y, "networking:");
    let _ = writeln!(y, "  podSubnet: {}", q(&i.pod_subnet));
    let _ = writeln!(y, "  serviceSubnet: {}", q(SERVICE_SUBNET));
    let _ = writeln!(y, "apiServer:");
    let _ = writeln!(y, "  certSANs:");
    for san in &i.cert_sans {
        let _ = writeln!(y, "    - {}", q(san));
    }
    let _ = writeln!(y, "---");
    let _ = writeln!(y, "apiVersion: kubelet.config.k8s.io/v1beta1");
    let _ = writeln!(y, "kind: KubeletConfiguration");
    let _ = writeln!(y, "cgroupDriver: \"systemd\"");
    y
}

/// A new bootstrap token from `random` bytes (at least 22): `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn token_from(random: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |b: u8| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]);
    let id: String = random.iter().take(6).map(|&b| pick(b)).collect();
    let secret: String = random.iter().skip(6).take(16).map(|&b| pick(b)).collect();
    format!("{id}.{secret}")
}

/// A new bootstrap token from the kernel's random numbers.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 22];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(token_from(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;
    use std::path::Path;

    fn config(extra: &str) -> BuildConfig {
        let text = format!("IMAGE=\"u.img\"\nK8S_VERSION=\"1.31.2\"\n{extra}");
        k8r_config::parse_cfg(Path::new("t.cfg"), &text).expect("config")
    }

    fn docs(yaml: &str) -> Vec<Value> {
        serde_yaml_ng::Deserializer::from_str(yaml)
            .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
            .collect()
    }

    fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
        path.iter().fold(v, |v, k| &v[*k])
    }

    const TOKEN: &str = "abcdef.0123456789abcdef";

    #[test]
    fn defaults_parse_back_field_by_field() {
        let ip: IpAddr = "192.168.1.10".parse().expect("ip");
        let y = init_config(&InitInputs::new(&config(""), "k8r-1a2b3c4d", ip, TOKEN));
        let d = docs(&y);
        assert_eq!(d.len(), 3);
        assert_eq!(get(&d[0], &["apiVersion"]), "kubeadm.k8s.io/v1beta4");
        assert_eq!(get(&d[0], &["kind"]), "InitConfiguration");
        assert_eq!(d[0]["bootstrapTokens"][0]["token"], TOKEN);
        assert_eq!(
            d[0]["bootstrapTokens"][0]["ttl"], "0",
            "TOKEN_TTL default: never expires"
        );
        assert_eq!(
            get(&d[0], &["localAPIEndpoint", "advertiseAddress"]),
            "192.168.1.10"
        );
        assert_eq!(get(&d[0], &["nodeRegistration", "name"]), "k8r-1a2b3c4d");
        assert_eq!(get(&d[0], &["nodeRegistration", "criSocket"]), CRI_SOCKET);
        assert_eq!(
            d[0]["nodeRegistration"]["kubeletExtraArgs"][0]["value"],
            "192.168.1.10"
        );
        assert_eq!(get(&d[1], &["kind"]), "ClusterConfiguration");
        assert_eq!(get(&d[1], &["kubernetesVersion"]), "v1.31.2");
        assert_eq!(get(&d[1], &["controlPlaneEndpoint"]), "192.168.1.10:6443");
        assert_eq!(
            get(&d[1], &["networking", "podSubnet"]),
            "192.168.0.0/16",
            "calico's default"
        );
        assert_eq!(d[1]["apiServer"]["certSANs"][0], "192.168.1.10");
        assert_eq!(d[1]["apiServer"]["certSANs"][1], "k8r-1a2b3c4d");
        assert_eq!(get(&d[2], &["apiVersion"]), "kubelet.config.k8s.io/v1beta1");
        assert_eq!(get(&d[2], &["cgroupDriver"]), "systemd");
    }

    #[test]
    fn a_matrix_of_settings() {
        let ip: IpAddr = "10.0.0.5".parse().expect("ip");
        for (extra, endpoint, sans0, cidr, ttl) in [
            (
                "CONTROL_PLANE_ENDPOINT=\"k8s.lan\"\n",
                "k8s.lan:6443",
                "k8s.lan",
                "192.168.0.0/16",
                "0",
            ),
            (
                "CONTROL_PLANE_ENDPOINT=\"k8s.lan:7443\"\nTOKEN_TTL=\"24h0m0s\"\n",
                "k8s.lan:7443",
                "k8s.lan",
                "192.168.0.0/16",
                "24h0m0s",
            ),
            (
                "CNI_TYPE=\"flannel\"\n",
                "10.0.0.5:6443",
                "10.0.0.5",
                "10.244.0.0/16",
                "0",
            ),
            (
                "POD_NETWORK_CIDR=\"172.16.0.0/16\"\nTOKEN_TTL=\"90m\"\n",
                "10.0.0.5:6443",
                "10.0.0.5",
                "172.16.0.0/16",
                "90m",
            ),
            (
                "CONTROL_PLANE_ENDPOINT=\"10.0.0.9\"\n",
                "10.0.0.9:6443",
                "10.0.0.9",
                "192.168.0.0/16",
                "0",
            ),
        ] {
            let y = init_config(&InitInputs::new(&config(extra), "n1", ip, TOKEN));
            let d = docs(&y);
            assert_eq!(d[1]["controlPlaneEndpoint"], endpoint, "{extra}");
            assert_eq!(d[1]["apiServer"]["certSANs"][0], sans0, "{extra}");
            assert_eq!(d[1]["networking"]["podSubnet"], cidr, "{extra}");
            assert_eq!(d[0]["bootstrapTokens"][0]["ttl"], ttl, "{extra}");
            assert!(d[1]["apiServer"]["certSANs"]
                .as_sequence()
                .expect("list")
                .iter()
                .any(|s| s == "10.0.0.5"));
        }
    }

    #[test]
    fn ipv6_addresses_are_bracketed_in_the_endpoint() {
        let ip: IpAddr = "fd00::5".parse().expect("ip");
        let y = init_config(&InitInputs::new(&config(""), "n1", ip, TOKEN));
        assert_eq!(docs(&y)[1]["controlPlaneEndpoint"], "[fd00::5]:6443");
    }

    #[test]
    fn quoting_keeps_the_structure() {
        assert_eq!(q("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn tokens_have_kubeadms_shape() {
        let t = token_from(&(0u8..22).map(|i| i * 11).collect::<Vec<_>>());
        assert_eq!(t.len(), 23);
        assert_eq!(t.as_bytes()[6], b'.');
        assert!(
            t.bytes()
                .all(|b| b == b'.' || b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{t}"
        );
        assert_ne!(new_token().expect("random"), new_token().expect("random"));
    }
}
