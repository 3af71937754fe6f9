//! Test stand-in for kubeadm's kubeconfig phase and for kubectl's kubeconfig loading:
//! kubeconfig files shaped like the real ones (`server: https://<endpoint>`, embedded
//! placeholder credentials, mode 0600). It does not merge several files from `$KUBECONFIG`,
//! honour `--context`, or use the credentials for anything.

use serde_json::{json, Value};

use crate::error::{fail, Result};
use crate::{pki, yaml};

/// How the user authenticates in a kubeconfig.
#[derive(Debug, Clone)]
pub enum Client {
    /// Embedded `client-certificate-data`/`client-key-data`.
    Embedded {
        /// PEM certificate.
        cert: String,
        /// PEM key.
        key: String,
    },
    /// Files (the kubelet's rotated `kubelet-client-current.pem`).
    Files(String),
    /// A bootstrap token (`bootstrap-kubelet.conf`).
    Token(String),
}

/// The YAML of a kubeconfig for `user` on cluster `cluster` at `https://<endpoint>`.
pub fn render(endpoint: &str, cluster: &str, user: &str, ca_pem: &str, client: &Client) -> String {
    let user_body = match client {
        Client::Embedded { cert, key } => json!({
            "client-certificate-data": pki::base64(cert.as_bytes()),
            "client-key-data": pki::base64(key.as_bytes()),
        }),
        Client::Files(path) => json!({"client-certificate": path, "client-key": path}),
        Client::Token(t) => json!({"token": t}),
    };
    let context = format!("{user}@{cluster}");
    let v = json!({
        "apiVersion": "v1",
        "clusters": [{
            "cluster": {
                "certificate-authority-data": pki::base64(ca_pem.as_bytes()),
                "server": format!("https://{endpoint}"),
            },
            "name": cluster,
        }],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": user_body}],
    });
    yaml::to_yaml(&v)
}

/// The current context's cluster entry (`clusters[].cluster`).
fn cluster(text: &str) -> Result<Value> {
    let bad = |why: &str| fail(format!("error loading config file: {why}"));
    let docs = yaml::parse_docs(text).map_err(|e| bad(&e))?;
    let doc = docs
        .into_iter()
        .next()
        .ok_or_else(|| bad("empty kubeconfig"))?;
    let clusters = doc
        .get("clusters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted = yaml::str_at(&doc, &["current-context"]).and_then(|ctx| {
        doc.get("contexts")?
            .as_array()?
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(ctx))
            .and_then(|c| yaml::str_at(c, &["context", "cluster"]))
            .map(str::to_string)
    });
    let entry = clusters
        .iter()
        .find(|c| wanted.is_none() || c.get("name").and_then(Value::as_str) == wanted.as_deref())
        .or(clusters.first())
        .ok_or_else(|| bad("no clusters"))?;
    entry
        .get("cluster")
        .cloned()
        .ok_or_else(|| bad("cluster entry without cluster"))
}

/// `host:port` of the current cluster's `server:` (port 443 if none, as for https URLs).
pub fn server(text: &str) -> Result<String> {
    let c = cluster(text)?;
    let url = c
        .get("server")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("error loading config file: cluster has no server"))?;
    let hostport = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url)
        .trim_end_matches('/');
    Ok(if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:443")
    })
}

/// The PEM text of the current cluster's `certificate-authority-data`.
pub fn ca_pem(text: &str) -> Result<String> {
    let c = cluster(text)?;
    let data = c
        .get("certificate-authority-data")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no CA certificates found in kubeconfig"))?;
    let bytes = pki::unbase64(data)
        .ok_or_else(|| fail("failed to parse CA certificate from kubeconfig"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reads_back_server_and_ca() {
        let ca = pki::cert("CN=kubernetes", "").expect("ca");
        let text = render(
            "k8s.lan:6443",
            "kubernetes",
            "kubernetes-admin",
            &ca,
            &Client::Embedded {
                cert: "c".into(),
                key: "k".into(),
            },
        );
        assert!(
            text.contains("    server: https://k8s.lan:6443\n"),
            "{text}"
        );
        assert!(
            text.contains("current-context: kubernetes-admin@kubernetes\n"),
            "{text}"
        );
        assert_eq!(server(&text).expect("server"), "k8s.lan:6443");
        assert_eq!(ca_pem(&text).expect("ca"), ca);
        assert_eq!(
            server("clusters:\n- name: a\n  cluster:\n    server: https://10.0.0.1\n")
                .expect("server"),
            "10.0.0.1:443"
        );
        assert!(server("kind: Config\n").is_err());
    }
}
