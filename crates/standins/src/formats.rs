//! Test stand-in plumbing: the value formats kubeadm and kubectl check (bootstrap tokens, Go
//! durations, CIDRs, endpoints, DNS-1123 names, hex digests), with the real validation
//! messages where we know them. It does not resolve names or check reachability.

use std::net::IpAddr;
use std::time::Duration;

/// The bootstrap token pattern, as kubeadm prints it.
pub const TOKEN_PATTERN: &str = "^([a-z0-9]{6})\\.([a-z0-9]{16})$";

fn lower_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn is_bootstrap_token(s: &str) -> bool {
    match s.split_once('.') {
        Some((id, secret)) => {
            id.len() == 6 && secret.len() == 16 && lower_alnum(id) && lower_alnum(secret)
        }
        None => false,
    }
}

/// The message for a malformed token (kubeadm's `bootstraptoken` wording).
pub fn token_error(s: &str) -> String {
    format!("the bootstrap token {s:?} was not of the form {TOKEN_PATTERN:?}")
}

/// Parses a Go `time.Duration` string (`0`, `24h0m0s`, `90m`, `1h30m`, `1.5h`, `300ms`).
/// Negative durations are refused: nothing the stand-ins take may be negative.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += value * scale;
        rest = after;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = nanos.round() as u64;
    Some(Duration::from_nanos(n))
}

/// Formats whole seconds like Go's `Duration.String()` (`24h0m0s`, `1m30s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

/// One CIDR (`10.244.0.0/16`, `fd00::/56`).
pub fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    bits <= if ip.is_ipv4() { 32 } else { 128 }
}

/// A comma-separated list of one or two CIDRs (dual stack), as kubeadm accepts for subnets.
pub fn is_cidr_list(s: &str) -> bool {
    let parts: Vec<&str> = s.split(',').collect();
    parts.len() <= 2 && parts.iter().all(|p| is_cidr(p))
}

/// The apimachinery message for a bad DNS-1123 subdomain.
pub const DNS1123_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// A DNS-1123 subdomain (node names, host names).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// `host`, `host:port`, `[v6]:port`: the host is an IP or a DNS-1123 subdomain. Returns the
/// host and the port if there is one, or the reason it is not an endpoint.
pub fn parse_endpoint(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {s}: missing ']' in address"))?;
        match tail.strip_prefix(':') {
            Some(p) => (h.to_string(), Some(p)),
            None if tail.is_empty() => (h.to_string(), None),
            None => return Err(format!("address {s}: unexpected text after ']'")),
        }
    } else if s.matches(':').count() > 1 {
        (s.to_string(), None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    if s.contains("://") {
        return Err(format!("{s:?} is a URL, expected host or host:port"));
    }
    let host_ok = host.parse::<IpAddr>().is_ok() || is_dns1123_subdomain(&host);
    if !host_ok {
        return Err(format!("{host:?} is neither an IP address nor a DNS name"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("address {s}: invalid port {p:?}")),
        },
    };
    Ok((host, port))
}

/// 64 hex digits (a SHA-256, or a 32-byte AES key).
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks `sha256:<64 hex>` the way kubeadm's `pubkeypin` does; returns its error text.
pub fn check_ca_hash(s: &str) -> Result<(), String> {
    let Some((format, value)) = s.split_once(':') else {
        return Err(
            "invalid hash, expected \"format:hex-value\". Known format(s) are: sha256".into(),
        );
    };
    if !format.eq_ignore_ascii_case("sha256") {
        return Err(format!(
            "unknown hash format {format:?}. Known format(s) are: sha256"
        ));
    }
    if value.len() != 64 {
        return Err(format!(
            "expected a 32 byte SHA-256 hash, found {} bytes",
            value.len() / 2
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("could not decode SHA-256 from hex: encoding/hex: invalid byte".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef.x",
        ] {
            assert!(!is_bootstrap_token(bad), "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        for (s, secs) in [
            ("0", 0),
            ("24h0m0s", 86_400),
            ("90m", 5400),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("10s", 10),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration(s), Some(Duration::from_secs(secs)), "{s}");
        }
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        for bad in ["", "24", "1d", "h", "-1h", "1h 30m", "1..5h", "abc"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(86_400)), "24h0m0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn cidrs_names_endpoints_hashes() {
        assert!(is_cidr_list("10.244.0.0/16"));
        assert!(is_cidr_list("10.244.0.0/16,fd00::/56"));
        for bad in [
            "10.244.0.0",
            "10.244.0.0/33",
            "x/8",
            "10.0.0.0/8,10.1.0.0/16,10.2.0.0/16",
        ] {
            assert!(!is_cidr_list(bad), "{bad}");
        }
        assert!(is_dns1123_subdomain("pi-1.lan"));
        for bad in ["", "Pi-1", "pi_1", "-pi", "pi.", "a..b"] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert_eq!(
            parse_endpoint("k8s.lan:6443"),
            Ok(("k8s.lan".into(), Some(6443)))
        );
        assert_eq!(parse_endpoint("10.0.0.1"), Ok(("10.0.0.1".into(), None)));
        assert_eq!(
            parse_endpoint("[fd00::1]:6443"),
            Ok(("fd00::1".into(), Some(6443)))
        );
        for bad in [
            "k8s.lan:0",
            "k8s.lan:70000",
            "https://k8s.lan:6443",
            "bad_host:6443",
            "k8s.lan:",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        let h = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(check_ca_hash(&h), Ok(()));
        assert!(check_ca_hash("sha256:abcd")
            .expect_err("short")
            .contains("found 2 bytes"));
        assert!(check_ca_hash(&format!("md5:{}", "ab".repeat(32))).is_err());
        assert!(check_ca_hash(&"ab".repeat(32)).is_err());
        assert!(check_ca_hash(&format!("sha256:{}", "zz".repeat(32))).is_err());
    }
}
