//! `KUBEADM_JOIN_STRING`: the `kubeadm join` command a node runs to join the cluster. Each part
//! is checked on its own so the message names the part that is wrong.

use super::redact;
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

/// An unknown flag as shown: up to its first character that is not a letter, digit or `-`
/// (then `…`), so `--token:abcdef.0123456789abcdef` shows no secret.
fn flag_name(flag: &str) -> String {
    let end = flag
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(flag.len());
    match &flag[..end] {
        name if name.len() == flag.len() => name.to_owned(),
        name => format!("{name}…"),
    }
}

/// What is wrong with a `--token` value, by lengths and character classes only: the value
/// may hold the secret.
fn token_shape(token: &str) -> String {
    let lower_alnum = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let Some((id, secret)) = token.split_once('.') else {
        return format!("it has {} characters and no '.'", token.chars().count());
    };
    let mut wrong = Vec::new();
    for (name, part, len) in [("id", id, 6), ("secret", secret, 16)] {
        let count = part.chars().count();
        if count != len {
            wrong.push(format!(
                "its {name} has {count} characters where {len} belong"
            ));
        }
        if !lower_alnum(part) {
            wrong.push(format!("its {name} has characters other than a-z and 0-9"));
        }
    }
    wrong.join(", ")
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
            "the API server address \"{}\" is wrong: expected {}",
            redact::text(address),
            p.expected
        ))
    })?;

    let mut token = None;
    let mut hash = None;
    let mut control_plane = false;
    let mut certificate_key = None;
    let mut rest = words[3..].iter();
    let mut after = "the API server address".to_owned();
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
                after = "--control-plane".to_owned();
                continue;
            }
            f if f.starts_with("--") => {
                return Err(bad(format!(
                    "the flag {} is not supported (k8r accepts {FLAGS})",
                    flag_name(f)
                )))
            }
            // Not shown: a stray word may be part of a token or hash split by a space.
            other => {
                return Err(bad(format!(
                    "a word of {} characters after {after} is not a flag (a value split by a \
                     space?)",
                    other.chars().count()
                )))
            }
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
        after = format!("the value of {flag}");
    }

    let token = token.ok_or_else(|| bad("--token <token> is missing"))?;
    let token_ok = token
        .split_once('.')
        .is_some_and(|(id, secret)| is_lower_alnum(id, 6) && is_lower_alnum(secret, 16));
    if !token_ok {
        return Err(bad(format!(
            "the --token \"{}\" is not 6 and 16 lower-case letters or digits joined by '.' \
             ({})",
            redact::token(&token),
            token_shape(&token)
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
            (format!("kubeadm join k8s.lan:6443 --token abc.def --discovery-token-ca-cert-hash {HASH}"), "the --token \"abc…\" is not 6 and 16 lower-case letters or digits joined by '.' (its id has 3 characters where 6 belong, its secret has 3 characters where 16 belong)"),
            (format!("kubeadm join k8s.lan:6443 --token abcdef.0123456789ABCDEF --discovery-token-ca-cert-hash {HASH}"), "the --token \"abcdef…\" is not 6 and 16 lower-case letters or digits joined by '.' (its secret has characters other than a-z and 0-9)"),
            (format!("kubeadm join k8s.lan:6443 --token abcdef0123456789abcdef --discovery-token-ca-cert-hash {HASH}"), "the --token \"…\" is not 6 and 16 lower-case letters or digits joined by '.' (it has 22 characters and no '.')"),
            (format!("kubeadm join k8s.lan:6443 --token {TOKEN} --discovery-token-ca-cert-hash sha256:0123 4567"), "a word of 4 characters after the value of --discovery-token-ca-cert-hash is not a flag"),
            (format!("kubeadm join k8s.lan:6443 --token:{TOKEN}"), "the flag --token… is not supported"),
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

    #[test]
    fn no_message_shows_a_token_secret_or_a_hash() {
        let secret = "0123456789abcdeX";
        let hex = &HASH["sha256:".len()..];
        for input in [
            format!("kubeadm join k8s.lan:6443 --token abcdef.{secret} --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join k8s.lan:6443 --token=ABCDEF.{secret} --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join k8s.lan:6443 --token {secret} --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join k8s.lan:6443 --token {secret}.abcdef --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join k8s.lan:6443 --token {TOKEN} --discovery-token-ca-cert-hash {} {}", &HASH[..40], &HASH[40..]),
            format!("kubeadm join k8s.lan:6443 {TOKEN} --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join k8s.lan:6443 --token:abcdef.{secret} --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join {TOKEN} --token {TOKEN} --discovery-token-ca-cert-hash {HASH}"),
        ] {
            let problem = join_string(&input).unwrap_err();
            let shown = format!("{} {:?}", problem.expected, problem.hint);
            for hidden in [&secret[..8], &TOKEN[7..], &hex[..8], &hex[40..48]] {
                assert!(!shown.contains(hidden), "{input}: {hidden} in {shown}");
            }
        }
    }
}
