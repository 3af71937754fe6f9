//! Hiding secrets in anything shown to a person or written to a log: bootstrap tokens
//! (`abcdef.0123456789abcdef` becomes `abcdef…`: the 6-character id is kept, the secret goes) and
//! certificate keys (64 hex digits after `--certificate-key`, or `certificateKey:`). Discovery
//! CA hashes are public and stay in logs; configuration messages hide them too
//! ([`join_command`]), along with a malformed token's secret.

/// `text` with every bootstrap token's secret and every certificate key replaced by `…`.
#[must_use]
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(len) = token_at(rest) {
            out.push_str(&rest[..6]);
            out.push('…');
            rest = &rest[len..];
            continue;
        }
        if let Some(after) = key_marker(rest) {
            out.push_str(&rest[..after]);
            let value = &rest[after..];
            let hex = value.bytes().take_while(u8::is_ascii_hexdigit).count();
            if hex >= 32 {
                out.push('…');
                rest = &value[hex..];
            } else {
                rest = value;
            }
            continue;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// A command line with its secrets redacted, words joined by spaces.
#[must_use]
pub fn command_line(words: &[String]) -> String {
    text(&words.join(" "))
}

/// A `kubeadm join` command (or any configuration text holding one) as shown in a
/// configuration message: the value after `--token` keeps only a token id of at most 6
/// characters before its `.` (`abcdef…`, or `…`), whatever its shape; the value after
/// `--discovery-token-ca-cert-hash` becomes `sha256:…` (or `…`) and the one after
/// `--certificate-key` `…`; then [`text`] hides any other well-formed token. White space
/// is kept as it was.
#[must_use]
pub fn join_command(command: &str) -> String {
    const TOKEN: &str = "--token";
    const HASH: &str = "--discovery-token-ca-cert-hash";
    const KEY: &str = "--certificate-key";
    let hide = |flag: &str, value: &str| match flag {
        TOKEN => token(value),
        HASH if value.starts_with("sha256:") => "sha256:…".to_owned(),
        _ => "…".to_owned(),
    };
    let mut out = String::with_capacity(command.len());
    let mut pending: Option<&str> = None;
    let mut rest = command;
    while !rest.is_empty() {
        let space = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..space]);
        rest = &rest[space..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        rest = after;
        if word.is_empty() {
            break;
        }
        match pending {
            Some(_) if word == "\\" => out.push_str(word),
            Some(flag) if !word.starts_with("--") => {
                out.push_str(&hide(flag, word));
                pending = None;
            }
            _ => {
                pending = None;
                let (flag, inline) = match word.split_once('=') {
                    Some((f, v)) => (f, Some(v)),
                    None => (word, None),
                };
                let flag = [TOKEN, HASH, KEY].into_iter().find(|f| *f == flag);
                match (flag, inline) {
                    (Some(f), Some(v)) => {
                        out.push_str(f);
                        out.push('=');
                        out.push_str(&hide(f, v));
                    }
                    (Some(f), None) => {
                        out.push_str(word);
                        pending = Some(f);
                    }
                    (None, _) => out.push_str(word),
                }
            }
        }
    }
    text(&out)
}

/// A `--token` value of any shape without its secret: the id before the first `.` when it
/// has at most 6 characters, then `…` (`abcdef.0123456789abcdef` becomes `abcdef…`; a value
/// without a `.`, or with a longer first part, which may be the secret, becomes `…`).
#[must_use]
pub fn token(value: &str) -> String {
    match value.split_once('.') {
        Some((id, _)) if id.chars().count() <= 6 => format!("{id}…"),
        _ => "…".to_owned(),
    }
}

/// The length of a bootstrap token starting at `s` (`[a-z0-9]{6}\.[a-z0-9]{16}` not inside
/// a longer word), if there is one.
fn token_at(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.len() < 23 || !b[..6].iter().all(|&c| word(c)) || b[6] != b'.' {
        return None;
    }
    if !b[7..23].iter().all(|&c| word(c)) {
        return None;
    }
    if b.get(23).is_some_and(|&c| word(c) || c == b'.') {
        return None;
    }
    Some(23)
}

/// After a certificate-key marker at `s`: the offset of the value.
fn key_marker(s: &str) -> Option<usize> {
    for marker in [
        "--certificate-key ",
        "--certificate-key=",
        "certificateKey: ",
    ] {
        if let Some(rest) = s.strip_prefix(marker) {
            return Some(marker.len() + usize::from(rest.starts_with('"')));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_keys_are_hidden_hashes_are_not() {
        let hash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let key = "a".repeat(64);
        let line = format!(
            "KUBEADM_JOIN_STRING=\"kubeadm join k:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {hash} --control-plane --certificate-key {key}\""
        );
        let r = text(&line);
        assert!(!r.contains("abcdef.0123456789abcdef"), "{r}");
        assert!(r.contains("--token abcdef… "), "{r}");
        assert!(r.contains(hash), "{r}");
        assert!(
            !r.contains(&key) && r.contains("--certificate-key …"),
            "{r}"
        );
    }

    #[test]
    fn yaml_and_bare_tokens_too() {
        let r = text(
            "  - token: \"abcdef.0123456789abcdef\"\n  certificateKey: \"{k}\"\n"
                .replace("{k}", &"b".repeat(64))
                .as_str(),
        );
        assert!(
            !r.contains("0123456789abcdef") && !r.contains(&"b".repeat(64)),
            "{r}"
        );
    }

    #[test]
    fn join_commands_lose_every_token_secret_hash_and_key_whatever_their_shape() {
        let hash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let key = "c".repeat(64);
        for (token, shown) in [
            ("abcdef.0123456789abcdef", "abcdef…"),
            ("ABCDEF.0123456789ABCDEF", "ABCDEF…"),
            ("abcdef.0123456789abcdeX", "abcdef…"),
            ("abcdef.0123", "abcdef…"),
            ("abcdef0123456789abcdef", "…"),
            ("0123456789abcdef.abcdef", "…"),
        ] {
            let secret = &token[7..];
            for command in [
                format!("kubeadm join k:6443 --token {token} --discovery-token-ca-cert-hash {hash} --certificate-key {key}"),
                format!("kubeadm join k:6443 --token={token}\t\\ --discovery-token-ca-cert-hash={hash} --certificate-key=xyz{key}"),
                format!("found \"join k:6443 --token {token} --discovery-token-ca-cert-hash md5:{hash}\""),
            ] {
                let r = join_command(&command);
                assert!(!r.contains(secret), "{command}: {r}");
                if shown == "…" {
                    assert!(!r.contains(&token[..6]), "{command}: {r}");
                }
                assert!(!r.contains("0123456789abcdef0123"), "{command}: {r}");
                assert!(!r.contains(&key[..8]), "{command}: {r}");
                assert!(r.contains(&format!("--token{}{shown}", if command.contains("--token=") { "=" } else { " " })), "{r}");
                assert!(r.contains("kubeadm join k:6443 ") || r.contains("\"join k:6443 "), "{r}");
            }
        }
        assert_eq!(
            join_command("kubeadm join k:6443 --token --discovery-token-ca-cert-hash sha256:ab\t--control-plane"),
            "kubeadm join k:6443 --token --discovery-token-ca-cert-hash sha256:…\t--control-plane"
        );
        assert_eq!(join_command("10.244.0.0/16"), "10.244.0.0/16");
    }

    #[test]
    fn other_words_stay() {
        for s in [
            "version 1.31.2",
            "abcdef.0123456789abcdefg",
            "short.x",
            "ubuntu-26.04.img",
        ] {
            assert_eq!(text(s), s);
        }
        assert_eq!(
            command_line(&["kubeadm".into(), "join".into()]),
            "kubeadm join"
        );
    }
}
