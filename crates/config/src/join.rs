//! `KUBEADM_JOIN_STRING`: the `kubeadm join` command a node runs to join the cluster. Each part
//! is checked on its own so the message names the part that is wrong.

use super::types::JoinString;
use super::validate::{endpoint, Problem};

const SHAPE: &str = "kubeadm join <host>:<port> --token <6 chars>.<16 chars> \
                     --discovery-token-ca-cert-hash sha256:<64 hex digits>";
const GET_ONE: &str = "on the master, run `kubeadm token create --print-join-command` or copy \
                       /usr/lib/k8r/join_string";
const FLAGS: &str = "--token, --discovery-token-ca-cert-hash, --control-plane, --certificate-key";

fn bad(part: impl std::fmt::Display) -> Problem {
    Problem::new(format!("a join command like `{SHAPE}`, but {part}")).hint(GET_ONE)
}

fn is_lower_alnum(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses and checks a join command. Stand-alone `\` (a pasted line continuation) is ignored.
pub(crate) fn join_string(value: &str) -> Result<JoinString, Problem> {
    let words: Vec<&str> = value.split_whitespace().filter(|w| *w != "\\").collect();
    match words.as_slice() {
        ["kubeadm", "join", ..] => {}
        [first, ..] if first.contains('/') && first.ends_with("kubeadm") => {}
        _ => return Err(bad("it does not start with \"kubeadm join\"")),
    }
    if words.get(1) != Some(&"join") {
        return Err(bad("it does not start with \"kubeadm join\""));
    }
    let address = match words.get(2) {
        Some(a) if !a.starts_with("--") => *a,
        _ => {
            return Err(bad(
                "the API server address host:port after \"kubeadm join\" is missing",
            ))
        }
    };
    let endpoint = endpoint(address, true).map_err(|p| {
        bad(format!(
            "the API server address \"{address}\" is wrong: expected {}",
            p.expected
        ))
    })?;

    let mut token = None;
    let mut hash = None;
    let mut control_plane = false;
    let mut certificate_key = None;
    let mut rest = words[3..].iter();
    while let Some(word) = rest.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (*word, None),
        };
        let slot = match flag {
            "--token" => &mut token,
            "--discovery-token-ca-cert-hash" => &mut hash,
            "--certificate-key" => &mut certificate_key,
            "--control-plane" => {
                if inline.is_some_and(|v| v != "true") {
                    return Err(bad("--control-plane takes no value"));
                }
                if control_plane {
                    return Err(bad("--control-plane is given twice"));
                }
                control_plane = true;
                continue;
            }
            f if f.starts_with("--") => {
                return Err(bad(format!(
                    "the flag {f} is not supported (k8r accepts {FLAGS})"
                )))
            }
            other => return Err(bad(format!("\"{other}\" is not a flag"))),
        };
        let value = match inline {
            Some(v) => v,
            None => match rest.next() {
                Some(v) if !v.starts_with("--") => *v,
                _ => return Err(bad(format!("{flag} has no value"))),
            },
        };
        if slot.replace(value.to_string()).is_some() {
            return Err(bad(format!("{flag} is given twice")));
        }
    }

    let token = token.ok_or_else(|| bad("--token <token> is missing"))?;
    let token_ok = token
        .split_once('.')
        .is_some_and(|(id, secret)| is_lower_alnum(id, 6) && is_lower_alnum(secret, 16));
    if !token_ok {
        return Err(bad(format!(
            "the --token \"{token}\" is not 6 and 16 lower-case letters or digits joined by '.'"
        )));
    }
    let hash = hash.ok_or_else(|| bad("--discovery-token-ca-cert-hash sha256:<hex> is missing"))?;
    match hash.strip_prefix("sha256:") {
        Some(hex) if is_hex(hex, 64) => {}
        Some(hex) => {
            return Err(bad(format!(
                "the --discovery-token-ca-cert-hash has {} characters after \"sha256:\" where 64 \
                 hex digits belong",
                hex.len()
            )))
        }
        None => {
            return Err(bad(
                "the --discovery-token-ca-cert-hash does not start with \"sha256:\"",
            ))
        }
    }
    if let Some(key) = &certificate_key {
        if !is_hex(key, 64) {
            return Err(bad(format!(
                "the --certificate-key has {} characters where 64 hex digits belong",
                key.len()
            )));
        }
        if !control_plane {
            return Err(bad(
                "--certificate-key is only used together with --control-plane",
            ));
        }
    }
    Ok(JoinString {
        raw: value.to_string(),
        endpoint,
        token,
        ca_cert_hash: hash,
        control_plane,
        certificate_key,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const KEY: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn worker_and_control_plane_joins_parse() {
        let worker = format!(
            "kubeadm join 192.168.1.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}"
        );
        let j = join_string(&worker).unwrap();
        assert_eq!(j.endpoint.to_string(), "192.168.1.10:6443");
        assert_eq!((j.token.as_str(), j.ca_cert_hash.as_str()), (TOKEN, HASH));
        assert!(!j.control_plane && j.certificate_key.is_none());
        assert_eq!(j.raw, worker);

        let cp = format!(
            "kubeadm join k8s.lan:6443 --token={TOKEN} \\ --discovery-token-ca-cert-hash {HASH} --control-plane --certificate-key {KEY}"
        );
        let j = join_string(&cp).unwrap();
        assert!(j.control_plane);
        assert_eq!(j.certificate_key.as_deref(), Some(KEY));
    }

    #[test]
    fn each_wrong_part_is_named() {
        let cases = [
            (format!("kubeadm init --token {TOKEN}"), "does not start with \"kubeadm join\""),
            (format!("kubeadm join --token {TOKEN} --discovery-token-ca-cert-hash {HASH}"), "address host:port"),
            (format!("kubeadm join k8s.lan --token {TOKEN} --discovery-token-ca-cert-hash {HASH}"), "the port is missing"),
            (format!("kubeadm join k8s.lan:6443 --discovery-token-ca-cert-hash {HASH}"), "--token <token> is missing"),
            (format!("kubeadm join k8s.lan:6443 --token ABCDEF.0123456789abcdef --discovery-token-ca-cert-hash {HASH}"), "the --token \"ABCDEF"),
            (format!("kubeadm join k8s.lan:6443 --token abc.def --discovery-token-ca-cert-hash {HASH}"), "the --token \"abc.def\""),
            (format!("kubeadm join k8s.lan:6443 --token {TOKEN}"), "--discovery-token-ca-cert-hash sha256:<hex> is missing"),
            (format!("kubeadm join k8s.lan:6443 --token {TOKEN} --discovery-token-ca-cert-hash sha256:abc"), "has 3 characters"),
            (format!("kubeadm join k8s.lan:6443 --token {TOKEN} --discovery-token-ca-cert-hash md5:abc"), "does not start with \"sha256:\""),
            (format!("kubeadm join k8s.lan:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} --certificate-key {KEY}"), "only used together with --control-plane"),
            (format!("kubeadm join k8s.lan:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} --control-plane --certificate-key xyz"), "--certificate-key has 3 characters"),
            (format!("kubeadm join k8s.lan:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} --node-name x"), "--node-name is not supported"),
            (format!("kubeadm join k8s.lan:6443 --token {TOKEN} --token {TOKEN} --discovery-token-ca-cert-hash {HASH}"), "--token is given twice"),
            (format!("kubeadm join k8s.lan:6443 --token --discovery-token-ca-cert-hash {HASH}"), "--token has no value"),
        ];
        for (input, part) in cases {
            let problem = join_string(&input).unwrap_err();
            assert!(
                problem.expected.contains(part),
                "{input}: {}",
                problem.expected
            );
            assert!(problem.expected.contains("kubeadm join <host>:<port>"));
        }
    }
}
