//! Test stand-in for the control-plane files kubeadm writes on `init` and on a control-plane
//! `join`: the PKI placeholders, the kubeconfigs (mode 0600) and the static Pod manifests
//! `/etc/kubernetes/manifests/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler}.yaml`
//! with `image: registry.k8s.io/kube-apiserver:v<version>` lines exactly as kubeadm writes
//! them (the node agent reads the control plane's version back from that tag). The etcd and
//! CoreDNS tags per minor are approximations of kubeadm's tables. Nothing runs these pods.

use serde_json::{json, Value};

use crate::error::Result;
use crate::kubeconfig::{self, Client};
use crate::{fsutil, pki, yaml, Env, Version};

/// The manifests directory.
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
/// The control-plane components with a `registry.k8s.io/<name>` image of the Kubernetes version.
pub const COMPONENTS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
/// Kubeconfigs of a control-plane node.
pub const KUBECONFIGS: [&str; 5] = [
    "admin.conf",
    "super-admin.conf",
    "kubelet.conf",
    "controller-manager.conf",
    "scheduler.conf",
];

/// The etcd image tag kubeadm pairs with a Kubernetes minor (approximate).
pub fn etcd_tag(v: Version) -> &'static str {
    match v.minor {
        0..=30 => "3.5.15-0",
        31 => "3.5.15-0",
        32 => "3.5.16-0",
        33 => "3.5.21-0",
        34 => "3.6.4-0",
        _ => "3.6.5-0",
    }
}

/// The CoreDNS image tag kubeadm pairs with a Kubernetes minor (approximate).
pub fn coredns_tag(v: Version) -> &'static str {
    match v.minor {
        0..=32 => "v1.11.3",
        33 => "v1.12.0",
        _ => "v1.12.1",
    }
}

/// What the control-plane files need to know.
#[derive(Debug, Clone)]
pub struct Plane {
    /// Kubernetes version of the control plane.
    pub version: Version,
    /// The cluster's API endpoint (`host:port`).
    pub endpoint: String,
    /// This node's API endpoint (`advertise:port`).
    pub local_endpoint: String,
    /// This node's name.
    pub node_name: String,
    /// `clusterName`.
    pub cluster_name: String,
    /// Service CIDR.
    pub service_subnet: String,
    /// Pod CIDR, if set.
    pub pod_subnet: Option<String>,
    /// Extra SANs for the API server certificate.
    pub cert_sans: Vec<String>,
}

fn pod(name: &str, image: String, command: Vec<String>, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": annotations,
            "labels": {"component": name, "tier": "control-plane"},
            "name": name,
            "namespace": "kube-system",
        },
        "spec": {
            "containers": [{
                "command": command,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "name": name,
            }],
            "hostNetwork": true,
            "priority": 2_000_001_000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        },
        "status": {},
    })
}

fn host_of(endpoint: &str) -> &str {
    endpoint
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(endpoint)
}

/// The four static Pod manifests (file name, YAML).
pub fn manifests(p: &Plane) -> Vec<(String, String)> {
    let v = p.version.v();
    let advertise = host_of(&p.local_endpoint).to_string();
    let port = p
        .local_endpoint
        .rsplit(':')
        .next()
        .unwrap_or("6443")
        .to_string();
    let mut out = Vec::new();
    let mut apiserver = vec![
        "kube-apiserver".to_string(),
        format!("--advertise-address={advertise}"),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        "--client-ca-file=/etc/kubernetes/pki/ca.crt".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--etcd-servers=https://127.0.0.1:2379".into(),
        format!("--secure-port={port}"),
        format!("--service-cluster-ip-range={}", p.service_subnet),
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt".into(),
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key".into(),
    ];
    apiserver.sort();
    out.push((
        "kube-apiserver.yaml".to_string(),
        pod(
            "kube-apiserver",
            format!("registry.k8s.io/kube-apiserver:{v}"),
            apiserver,
            json!({"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": p.local_endpoint}),
        ),
    ));
    let mut cm = vec![
        "kube-controller-manager".to_string(),
        "--kubeconfig=/etc/kubernetes/controller-manager.conf".into(),
        "--leader-elect=true".into(),
        "--use-service-account-credentials=true".into(),
        format!("--service-cluster-ip-range={}", p.service_subnet),
        format!("--cluster-name={}", p.cluster_name),
    ];
    if let Some(pods) = &p.pod_subnet {
        cm.push("--allocate-node-cidrs=true".into());
        cm.push(format!("--cluster-cidr={pods}"));
    }
    out.push((
        "kube-controller-manager.yaml".to_string(),
        pod(
            "kube-controller-manager",
            format!("registry.k8s.io/kube-controller-manager:{v}"),
            cm,
            json!({}),
        ),
    ));
    out.push((
        "kube-scheduler.yaml".to_string(),
        pod(
            "kube-scheduler",
            format!("registry.k8s.io/kube-scheduler:{v}"),
            vec![
                "kube-scheduler".into(),
                "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
                "--leader-elect=true".into(),
            ],
            json!({}),
        ),
    ));
    out.push((
        "etcd.yaml".to_string(),
        pod(
            "etcd",
            format!("registry.k8s.io/etcd:{}", etcd_tag(p.version)),
            vec![
                "etcd".into(),
                format!("--advertise-client-urls=https://{advertise}:2379"),
                "--data-dir=/var/lib/etcd".into(),
                format!("--name={}", p.node_name),
                "--cert-file=/etc/kubernetes/pki/etcd/server.crt".into(),
                "--key-file=/etc/kubernetes/pki/etcd/server.key".into(),
                "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt".into(),
            ],
            json!({"kubeadm.kubernetes.io/etcd.advertise-client-urls": format!("https://{advertise}:2379")}),
        ),
    ));
    out.into_iter()
        .map(|(n, v)| (n, yaml::to_yaml(&v)))
        .collect()
}

/// Writes the PKI, the kubeconfigs and the manifests of a control-plane node; returns the CA PEM.
pub fn write(env: &Env, p: &Plane) -> Result<String> {
    let mut sans = vec![
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        p.node_name.clone(),
        host_of(&p.local_endpoint).to_string(),
        host_of(&p.endpoint).to_string(),
    ];
    sans.extend(p.cert_sans.iter().cloned());
    sans.dedup();
    let ca = pki::write_control_plane(env, &sans)?;
    write_kubeconfigs(env, p, &ca)?;
    for (name, text) in manifests(p) {
        fsutil::write(&env.path(&format!("{MANIFESTS}/{name}")), text, 0o600)?;
    }
    Ok(ca)
}

/// Writes the five kubeconfigs of a control-plane node.
pub fn write_kubeconfigs(env: &Env, p: &Plane, ca: &str) -> Result<()> {
    let embedded = |user: &str| -> Result<Client> {
        Ok(Client::Embedded {
            cert: pki::cert(&format!("CN={user}"), "")?,
            key: pki::key(user)?,
        })
    };
    let files = [
        (
            "admin.conf",
            "kubernetes-admin",
            p.endpoint.clone(),
            embedded("kubernetes-admin")?,
        ),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            p.endpoint.clone(),
            embedded("kubernetes-super-admin")?,
        ),
        (
            "kubelet.conf",
            &*format!("system:node:{}", p.node_name),
            p.endpoint.clone(),
            Client::Files("/var/lib/kubelet/pki/kubelet-client-current.pem".into()),
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            p.local_endpoint.clone(),
            embedded("system:kube-controller-manager")?,
        ),
        (
            "scheduler.conf",
            "system:kube-scheduler",
            p.local_endpoint.clone(),
            embedded("system:kube-scheduler")?,
        ),
    ];
    for (file, user, server, client) in files {
        let text = kubeconfig::render(&server, &p.cluster_name, user, ca, &client);
        fsutil::write(&env.path(&format!("/etc/kubernetes/{file}")), text, 0o600)?;
    }
    Ok(())
}

/// `text` (a manifest) with the tag of `image: <repo>/<name>:<tag>` lines replaced.
pub fn retag(text: &str, name: &str, tag: &str) -> String {
    let needle = format!("image: registry.k8s.io/{name}:");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.find(&needle) {
            Some(i) => {
                out.push_str(&line[..i + needle.len()]);
                out.push_str(tag);
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The tag of `registry.k8s.io/<name>` in a manifest.
pub fn image_tag(text: &str, name: &str) -> Option<String> {
    let needle = format!("image: registry.k8s.io/{name}:");
    text.lines()
        .find_map(|l| l.split_once(&needle).map(|(_, tag)| tag.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_carry_the_image_tags_and_retag() {
        let p = Plane {
            version: Version::new(1, 31, 2),
            endpoint: "k8s.lan:6443".into(),
            local_endpoint: "10.0.0.1:6443".into(),
            node_name: "pi-1".into(),
            cluster_name: "kubernetes".into(),
            service_subnet: "10.96.0.0/12".into(),
            pod_subnet: Some("10.244.0.0/16".into()),
            cert_sans: vec![],
        };
        let m = manifests(&p);
        let api = &m
            .iter()
            .find(|(n, _)| n == "kube-apiserver.yaml")
            .expect("apiserver")
            .1;
        assert!(
            api.contains("\n    image: registry.k8s.io/kube-apiserver:v1.31.2\n"),
            "{api}"
        );
        assert!(
            api.contains("    - --advertise-address=10.0.0.1\n"),
            "{api}"
        );
        let etcd = &m.iter().find(|(n, _)| n == "etcd.yaml").expect("etcd").1;
        assert_eq!(image_tag(etcd, "etcd").as_deref(), Some("3.5.15-0"));
        let up = retag(api, "kube-apiserver", "v1.32.1");
        assert_eq!(image_tag(&up, "kube-apiserver").as_deref(), Some("v1.32.1"));
        assert_eq!(up.len(), api.len());
        assert_eq!(retag(api, "kube-scheduler", "v9.9.9"), *api);
    }
}
