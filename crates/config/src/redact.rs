//! Hiding secrets in anything shown to a person or written to a log: bootstrap tokens
//! (`abcdef.0123456789abcdef` becomes `abcdef…`: the 6-character id is kept, the secret goes) and
//! certificate keys (64 hex digits after `--certificate-key`, or `certificateKey:`). Discovery
//! CA hashes are public and stay.

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
