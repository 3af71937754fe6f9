//! Test stand-in for kubeadm's certificate phase: PEM-shaped placeholders, unique per init,
//! under `/etc/kubernetes/pki`. They are not certificates: no ASN.1, no keys, no signatures;
//! nothing can verify TLS with them. The discovery hash is SHA-256 over the placeholder's
//! decoded body ("DER-ish" bytes); the real kubeadm hashes the CA's DER SubjectPublicKeyInfo.
//! Callers only pass the hash through, so the difference does not show.

use sha2::{Digest, Sha256};

use crate::error::{fail, Result};
use crate::{fsutil, random, Env};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (whitespace ignored).
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = u32::try_from(B64.iter().position(|&x| x == c)?).ok()?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// A PEM block of `label` around `body`.
pub fn pem(label: &str, body: &[u8]) -> String {
    let b = base64(body);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// The decoded body of the first PEM block in `text`.
pub fn pem_body(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN ")?;
    let after = &text[start..];
    let body_start = after.find('\n')? + 1;
    let end = after.find("-----END ")?;
    unbase64(after.get(body_start..end)?)
}

/// `sha256:<hex>` for a CA certificate placeholder's PEM text.
pub fn ca_hash(ca_pem: &str) -> Result<String> {
    let body = pem_body(ca_pem).ok_or_else(|| {
        fail("failed to load CA certificate: data does not contain any valid RSA or ECDSA certificates")
    })?;
    Ok(format!("sha256:{}", random::to_hex(&Sha256::digest(&body))))
}

/// A placeholder certificate for `subject`; `note` goes into its body.
pub fn cert(subject: &str, note: &str) -> Result<String> {
    let body = format!(
        "k8r-standin placeholder certificate\nsubject: {subject}\n{note}serial: {}\n",
        random::hex(16)?
    );
    Ok(pem("CERTIFICATE", body.as_bytes()))
}

/// A placeholder private key.
pub fn key(subject: &str) -> Result<String> {
    let body = format!(
        "k8r-standin placeholder key for {subject}\n{}\n",
        random::hex(32)?
    );
    Ok(pem("RSA PRIVATE KEY", body.as_bytes()))
}

/// The files kubeadm's certs phase creates (path under `/etc/kubernetes/pki`, subject).
pub const CERT_PAIRS: &[(&str, &str)] = &[
    ("ca", "CN=kubernetes"),
    ("apiserver", "CN=kube-apiserver"),
    (
        "apiserver-kubelet-client",
        "CN=kube-apiserver-kubelet-client",
    ),
    ("front-proxy-ca", "CN=front-proxy-ca"),
    ("front-proxy-client", "CN=front-proxy-client"),
    ("etcd/ca", "CN=etcd-ca"),
    ("etcd/server", "CN=etcd-server"),
    ("etcd/peer", "CN=etcd-peer"),
    ("etcd/healthcheck-client", "CN=kube-etcd-healthcheck-client"),
    ("apiserver-etcd-client", "CN=kube-apiserver-etcd-client"),
];

/// True for the certificate authorities (kept by renewals).
pub fn is_ca(name: &str) -> bool {
    name.ends_with("ca")
}

/// Writes one pair `<name>.crt` (0644) and `<name>.key` (0600).
pub fn write_pair(env: &Env, name: &str, subject: &str, note: &str) -> Result<()> {
    let dir = "/etc/kubernetes/pki";
    fsutil::write(
        &env.path(&format!("{dir}/{name}.crt")),
        cert(subject, note)?,
        0o644,
    )?;
    fsutil::write(
        &env.path(&format!("{dir}/{name}.key")),
        key(subject)?,
        0o600,
    )?;
    Ok(())
}

/// Writes the whole control-plane PKI; `sans` go into the apiserver placeholder's body.
/// Returns the CA's PEM text.
pub fn write_control_plane(env: &Env, sans: &[String]) -> Result<String> {
    for (name, subject) in CERT_PAIRS {
        let note = if *name == "apiserver" {
            format!("subjectAltNames: {}\n", sans.join(", "))
        } else {
            String::new()
        };
        write_pair(env, name, subject, &note)?;
    }
    fsutil::write(
        &env.path("/etc/kubernetes/pki/sa.key"),
        key("service accounts")?,
        0o600,
    )?;
    let pub_body = format!("k8r-standin placeholder public key\n{}\n", random::hex(32)?);
    fsutil::write(
        &env.path("/etc/kubernetes/pki/sa.pub"),
        pem("PUBLIC KEY", pub_body.as_bytes()),
        0o644,
    )?;
    fsutil::read(&env.path("/etc/kubernetes/pki/ca.crt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_hash_is_stable_per_cert() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(unbase64(&base64(data)).as_deref(), Some(data));
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
        let a = cert("CN=kubernetes", "").expect("cert");
        let b = cert("CN=kubernetes", "").expect("cert");
        assert_ne!(a, b, "unique per call");
        let h = ca_hash(&a).expect("hash");
        assert_eq!(h, ca_hash(&a).expect("again"));
        assert!(crate::formats::check_ca_hash(&h).is_ok(), "{h}");
        assert!(ca_hash("not a pem").is_err());
        assert!(a.starts_with("-----BEGIN CERTIFICATE-----\n"));
    }
}
