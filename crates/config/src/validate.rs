//! Per-key value rules. Each takes the value text and returns the typed value or a
//! [`Problem`]: what was expected and how to fix it. File, line and key are added by the caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::keys::MIN_K8S_VERSION;
use super::types::{Arch, Endpoint, ImageUrl, Size, UrlForm, Version};
use k8r_manifest::Compression;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub expected: String,
    pub hint: Option<Hint>,
}

/// How to fix a refused value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hint {
    /// Free text.
    Text(String),
    /// "write KEY="<this value>"", spelled in the file's own syntax by the caller.
    Write(String),
}

impl Problem {
    pub fn new(expected: impl Into<String>) -> Self {
        Self {
            expected: expected.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(Hint::Text(hint.into()));
        self
    }

    pub fn write(mut self, value: impl Into<String>) -> Self {
        self.hint = Some(Hint::Write(value.into()));
        self
    }
}

/// `IMAGE`: an uncompressed `.img` file name (the path is resolved by `load`).
pub(crate) fn image(value: &str) -> Result<(), Problem> {
    let lower = value.to_ascii_lowercase();
    let compressed = [
        (".xz", "xz -dk"),
        (".gz", "gunzip -k"),
        (".zip", "unzip"),
        (".zst", "zstd -d"),
        (".bz2", "bunzip2 -k"),
        (".7z", "7z x"),
    ];
    for (ext, tool) in compressed {
        if let Some(stem) = lower.strip_suffix(ext) {
            let stem = &value[..stem.len()];
            let target = if stem.to_ascii_lowercase().ends_with(".img") {
                stem.to_string()
            } else {
                format!("{stem}.img")
            };
            return Err(Problem::new(format!(
                "an uncompressed image ending in .img, not a {ext} archive"
            ))
            .hint(format!(
                "decompress it first ({tool} {value}), then write IMAGE=\"{target}\""
            )));
        }
    }
    if value.ends_with('/') || !lower.ends_with(".img") || lower == ".img" {
        return Err(Problem::new("an image file name ending in .img")
            .hint("give the uncompressed vendor image, e.g. IMAGE=\"ubuntu-26.04-preinstalled-server-arm64+raspi.img\""));
    }
    Ok(())
}

/// A `MAJOR.MINOR.PATCH` version; a `v` prefix is refused with the fix.
pub(crate) fn version(value: &str) -> Result<Version, Problem> {
    let expected = || {
        format!(
            "a version like {} (MAJOR.MINOR.PATCH, digits only)",
            "1.2.3"
        )
    };
    if let Some(rest) = value.strip_prefix(['v', 'V']) {
        if let Ok(v) = plain_version(rest) {
            return Err(
                Problem::new(format!("a version like {v} (no \"v\" prefix)")).write(v.to_string()),
            );
        }
    }
    match plain_version(value) {
        Ok(v) => Ok(v),
        Err(Shape::TwoParts(major, minor)) => Err(Problem::new(format!(
            "a version with three parts like {major}.{minor}.0"
        ))
        .write(format!("{major}.{minor}.0"))),
        Err(Shape::Other) if value.contains('-') || value.contains('+') => {
            Err(Problem::new(format!(
                "{} (pre-release and build suffixes are not supported)",
                expected()
            )))
        }
        Err(Shape::Other) => Err(Problem::new(expected())),
    }
}

enum Shape {
    TwoParts(u32, u32),
    Other,
}

fn plain_version(value: &str) -> Result<Version, Shape> {
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let parts: Vec<&str> = value.split('.').collect();
    match parts.as_slice() {
        [a, b, c] => match (number(a), number(b), number(c)) {
            (Some(major), Some(minor), Some(patch)) => Ok(Version::new(major, minor, patch)),
            _ => Err(Shape::Other),
        },
        [a, b] => match (number(a), number(b)) {
            (Some(major), Some(minor)) => Err(Shape::TwoParts(major, minor)),
            _ => Err(Shape::Other),
        },
        _ => Err(Shape::Other),
    }
}

/// `K8S_VERSION`: a version, at least [`MIN_K8S_VERSION`].
pub(crate) fn k8s_version(value: &str) -> Result<Version, Problem> {
    let v = version(value)?;
    if v < MIN_K8S_VERSION {
        return Err(Problem::new(format!(
            "Kubernetes {MIN_K8S_VERSION} or newer: k8r writes kubeadm configuration in the \
             v1beta4 API only, which kubeadm accepts from 1.31 (v1beta3 is deprecated since 1.31 \
             and removed later)"
        ))
        .hint("pick a 1.31 or newer release from https://kubernetes.io/releases/"));
    }
    Ok(v)
}

/// `ARCH`: only `arm64`.
pub(crate) fn arch(value: &str) -> Result<Arch, Problem> {
    match value {
        "arm64" => Ok(Arch::Arm64),
        "aarch64" | "ARM64" | "AARCH64" => {
            Err(Problem::new("arm64 (the Debian/Kubernetes name)").write("arm64"))
        }
        _ => Err(Problem::new(
            "arm64: k8r builds for Raspberry Pi 4/5 running a 64-bit OS, and its Kubernetes \
             downloads are for linux/arm64 only",
        )
        .write("arm64")),
    }
}

/// A host (DNS name, IPv4, IPv6 in brackets when a port follows) with an optional port.
pub(crate) fn endpoint(value: &str, port_required: bool) -> Result<Endpoint, Problem> {
    let what = if port_required {
        "host:port (a DNS name or IP address, then the port)"
    } else {
        "a DNS name or IP address with an optional :port"
    };
    if let Some((scheme, rest)) = value.split_once("://") {
        let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
        let problem = Problem::new(format!("{what}, not a {scheme}:// URL"));
        return Err(if host_port.is_empty() {
            problem.hint("give only host[:port]")
        } else {
            problem.write(host_port)
        });
    }
    if value.is_empty() {
        return Err(Problem::new(what));
    }
    let (host, port) = split_host_port(value).map_err(|e| Problem::new(format!("{what}: {e}")))?;
    let port = match port {
        Some(p) => Some(parse_port(p).map_err(|e| Problem::new(format!("{what}: {e}")))?),
        None if port_required => {
            return Err(
                Problem::new(format!("{what}: the port is missing")).write(format!("{value}:6443"))
            )
        }
        None => None,
    };
    let host = host_name(host).map_err(|e| Problem::new(format!("{what}: {e}")))?;
    Ok(Endpoint { host, port })
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 address.
fn split_host_port(value: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| "the IPv6 address has no closing ]".to_string())?;
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(format!("\"{inside}\" is not an IPv6 address"));
        }
        return match after {
            "" => Ok((inside, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inside, Some(port))),
                None => Err(format!("unexpected \"{after}\" after the address")),
            },
        };
    }
    if value.matches(':').count() > 1 {
        return if value.parse::<Ipv6Addr>().is_ok() {
            Ok((value, None))
        } else {
            Err(format!(
                "\"{value}\" is not an IPv6 address (write [address]:port to add a port)"
            ))
        };
    }
    Ok(match value.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (value, None),
    })
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the port \"{port}\" is not a number from 1 to 65535"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("the port {port} is not in 1-65535")),
    }
}

/// Validates a DNS name or IP address; returns the canonical text (IP addresses normalised).
fn host_name(host: &str) -> Result<String, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("\"{host}\" is not a valid IPv4 address"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err("the host name is longer than 253 characters".into());
    }
    for label in name.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(format!(
                "\"{host}\" is not a DNS name (label \"{label}\": 1-63 letters, digits or '-')"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "\"{host}\" is not a DNS name (label \"{label}\" starts or ends with '-')"
            ));
        }
    }
    Ok(host.to_string())
}

/// `TOKEN_TTL`: `0` or a Go duration with units h, m, s, ms (`24h0m0s`, `90m`).
pub(crate) fn token_ttl(value: &str) -> Result<String, Problem> {
    let expected =
        "0 (never expires) or a duration like 24h0m0s, 24h, 90m, 1h30m or 45s (units h, m, s, ms)";
    if value == "0" {
        return Ok(value.to_string());
    }
    if value.starts_with('-') {
        return Err(
            Problem::new(format!("{expected}; negative durations are not allowed"))
                .hint("use 0 for a token that never expires"),
        );
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            Problem::new(format!("{expected}; a number needs a unit")).write(format!("{value}h"))
        );
    }
    let mut rest = value;
    if rest.is_empty() {
        return Err(Problem::new(expected));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(Problem::new(format!(
                "{expected}; \"{rest}\" does not start with a number"
            )));
        }
        rest = &rest[digits..];
        let unit = ["ms", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u))
            .ok_or_else(|| {
                let found: String = rest.chars().take_while(|c| !c.is_ascii_digit()).collect();
                if found.is_empty() {
                    Problem::new(format!("{expected}; the last number has no unit"))
                } else {
                    Problem::new(format!("{expected}; unknown unit \"{found}\""))
                }
            })?;
        rest = &rest[unit.len()..];
    }
    Ok(value.to_string())
}

/// `POD_NETWORK_CIDR`: an IPv4 or IPv6 network with host bits zero. Returns the canonical
/// `address/prefix` text.
pub(crate) fn cidr(value: &str) -> Result<(IpAddr, u8), Problem> {
    let expected = "a network in CIDR notation like 10.244.0.0/16";
    let Some((addr, prefix)) = value.split_once('/') else {
        return Err(
            Problem::new(format!("{expected}; the /prefix length is missing"))
                .hint("add the prefix length, e.g. 10.244.0.0/16"),
        );
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| Problem::new(format!("{expected}; \"{addr}\" is not an IP address")))?;
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match prefix.parse::<u8>() {
        Ok(p) if p <= max && prefix.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => {
            return Err(Problem::new(format!(
                "{expected}; the prefix length \"{prefix}\" is not a number from 0 to {max}"
            )))
        }
    };
    let (network, host_bits) = split_network(addr, prefix);
    if host_bits != zero_like(addr) {
        return Err(Problem::new(format!(
            "a network address with all host bits zero, but {value} has host bits set \
             (the last {} bits are {host_bits})",
            max - prefix
        ))
        .write(format!("{network}/{prefix}")));
    }
    // kube-controller-manager gives every node a /24 (IPv4) or /64 (IPv6) out of this range.
    let node_mask: u8 = if addr.is_ipv4() { 24 } else { 64 };
    if prefix > node_mask {
        return Err(Problem::new(format!(
            "a prefix of /{node_mask} or shorter: Kubernetes gives each node a /{node_mask} out of \
             the pod network"
        ))
        .write(format!(
            "{}/{}",
            split_network(addr, if addr.is_ipv4() { 16 } else { 48 }).0,
            if addr.is_ipv4() { 16 } else { 48 }
        )));
    }
    Ok((addr, prefix))
}

fn zero_like(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// (network part, host part) of an address under a prefix length.
pub(crate) fn split_network(addr: IpAddr, prefix: u8) -> (IpAddr, IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            (
                IpAddr::V4(Ipv4Addr::from(bits & mask)),
                IpAddr::V4(Ipv4Addr::from(bits & !mask)),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            (
                IpAddr::V6(Ipv6Addr::from(bits & mask)),
                IpAddr::V6(Ipv6Addr::from(bits & !mask)),
            )
        }
    }
}

/// True when `ip` lies inside `network/prefix`.
pub(crate) fn contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    network.is_ipv4() == ip.is_ipv4() && split_network(ip, prefix).0 == network
}

/// Which CNI; the version is attached by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CniKind {
    Calico,
    Flannel,
}

/// `CNI_TYPE`: calico or flannel.
pub(crate) fn cni_type(value: &str) -> Result<CniKind, Problem> {
    match value {
        "calico" => Ok(CniKind::Calico),
        "flannel" => Ok(CniKind::Flannel),
        v if v.eq_ignore_ascii_case("calico") => {
            Err(Problem::new("calico (lower case)").write("calico"))
        }
        v if v.eq_ignore_ascii_case("flannel") => {
            Err(Problem::new("flannel (lower case)").write("flannel"))
        }
        v if v.to_ascii_lowercase().starts_with("weave") => Err(Problem::new(
            "calico or flannel: Weave Net is not supported because the project has ended and \
             its install manifest is no longer published, so the seed's weave setup is broken",
        )
        .write("calico")),
        _ => Err(Problem::new("one of: calico, flannel")
            .hint("calico is the default and the best tested")),
    }
}

/// An `http://` or `https://` URL with a host and no query or fragment.
/// Returns (scheme://host[:port], path) with the path starting at `/` (or empty).
fn http_url(value: &str) -> Result<(&str, &str), Problem> {
    let expected = "an http:// or https:// URL with a host";
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(Problem::new(expected).write(format!("http://{value}")));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Problem::new(format!(
            "{expected}; the scheme \"{scheme}\" is not supported"
        ))
        .write(format!("http://{rest}")));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(Problem::new(format!("{expected}; it contains white space"))
            .hint("encode spaces as %20"));
    }
    if value.contains(['?', '#']) {
        return Err(Problem::new(format!(
            "{expected}, without ?query or #fragment (k8r appends file names to it)"
        )));
    }
    let host_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return Err(Problem::new(format!("{expected}; the host is missing"))
            .hint(format!("write it like {scheme}://server.lan/path/")));
    }
    endpoint(host_port, false)
        .map_err(|p| Problem::new(format!("{expected}; bad host: {}", p.expected)))?;
    let split = value.len() - rest.len() + host_end;
    Ok((&value[..split], &value[split..]))
}

/// The artefact names nodes download from `HTTP_IMAGE_URL` (the root image under either
/// compression).
pub(crate) const ARTEFACTS: [&str; 3] = ["image.img.xz", "image.img.zst", "boot.tar.xz"];

/// `COMPRESSION`: `xz` or `zstd`.
pub(crate) fn compression(value: &str) -> Result<Compression, Problem> {
    match value {
        "xz" => Ok(Compression::Xz),
        "zstd" => Ok(Compression::Zstd),
        v if v.eq_ignore_ascii_case("xz") => Err(Problem::new("xz (lower case)").write("xz")),
        v if v.eq_ignore_ascii_case("zstd") || v.eq_ignore_ascii_case("zst") => {
            Err(Problem::new("zstd (lower case, the tool's name)").write("zstd"))
        }
        _ => Err(Problem::new("one of: xz, zstd")
            .hint("xz is the default; zstd installs faster and its files are a little larger")),
    }
}

/// `HTTP_IMAGE_URL`: a directory prefix or the full URL of one artefact.
pub(crate) fn image_url(value: &str) -> Result<ImageUrl, Problem> {
    let (base, path) = http_url(value)?;
    if path.is_empty() || path.ends_with('/') {
        let prefix = if path.is_empty() {
            format!("{base}/")
        } else {
            value.to_string()
        };
        return Ok(ImageUrl {
            prefix,
            given_as: UrlForm::Prefix,
        });
    }
    let (dir, last) = path.rsplit_once('/').unwrap_or(("", path));
    if ARTEFACTS.contains(&last) {
        return Ok(ImageUrl {
            prefix: format!("{base}{dir}/"),
            given_as: UrlForm::ArtefactUrl,
        });
    }
    let lower = last.to_ascii_lowercase();
    if lower.ends_with(".xz")
        || lower.ends_with(".zst")
        || lower.ends_with(".img")
        || lower.ends_with(".gz")
    {
        return Err(Problem::new(format!(
            "the URL of the directory holding image.img.xz and boot.tar.xz (nodes download \
             exactly those names), not of \"{last}\""
        ))
        .write(format!("{base}{dir}/")));
    }
    Ok(ImageUrl {
        prefix: format!("{value}/"),
        given_as: UrlForm::Prefix,
    })
}

/// A mirror base URL; returned without the trailing `/`.
pub(crate) fn mirror_url(value: &str) -> Result<String, Problem> {
    http_url(value)?;
    Ok(value.trim_end_matches('/').to_string())
}

/// `ROOT_SIZE`: a positive number with unit K, M, G or T (binary), optionally followed by `iB`.
pub(crate) fn size(value: &str) -> Result<Size, Problem> {
    let expected = "a size like 4G or 3500M (units K, M, G, T; powers of 1024)";
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let shift = match unit.trim_end_matches("iB").trim_end_matches('B') {
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        "" if !number.is_empty() => {
            return Err(Problem::new(format!("{expected}; the unit is missing"))
                .write(format!("{number}M")))
        }
        _ => return Err(Problem::new(expected)),
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| Problem::new(expected))?;
    if bytes == 0 {
        return Err(Problem::new(format!("{expected}; it must be more than 0")));
    }
    Ok(Size { bytes })
}

/// Longest `HOSTNAME_PREFIX`: 63 (DNS label) minus '-' and a 16-digit serial number.
pub(crate) const MAX_HOSTNAME_PREFIX: usize = 46;

/// `HOSTNAME_PREFIX`: lower-case RFC 1123 label characters.
pub(crate) fn hostname_prefix(value: &str) -> Result<String, Problem> {
    let expected = format!(
        "1-{MAX_HOSTNAME_PREFIX} lower-case letters, digits or '-', not starting or ending with '-' \
         (RFC 1123; the node appends -<serial>)"
    );
    let lower = value.to_ascii_lowercase();
    let ok_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let ok_shape = |s: &str| {
        !s.is_empty() && s.len() <= MAX_HOSTNAME_PREFIX && !s.starts_with('-') && !s.ends_with('-')
    };
    if ok_chars(value) && ok_shape(value) {
        return Ok(value.to_string());
    }
    let problem = Problem::new(expected);
    Err(if lower != value && ok_chars(&lower) && ok_shape(&lower) {
        problem.write(lower)
    } else {
        problem
    })
}

/// `NODE_NAME`: an RFC 1123 label (a host name and a Kubernetes node name at once).
pub(crate) fn node_name(value: &str) -> Result<String, Problem> {
    let ok = |s: &str| {
        (1..=63).contains(&s.len())
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if ok(value) {
        return Ok(value.to_string());
    }
    let problem = Problem::new(
        "1-63 lower-case letters, digits or '-', not starting or ending with '-' (RFC 1123: \
         it is the host name and the Kubernetes node name)",
    );
    let lower = value.to_ascii_lowercase().replace(['_', '.', ' '], "-");
    Err(if ok(&lower) {
        problem.write(lower)
    } else {
        problem
    })
}

/// Shortest `TRIAL_TIMEOUT`: a Pi 4 needs about a minute from power-on to a running
/// containerd; less would roll back healthy builds.
pub(crate) const MIN_TRIAL_TIMEOUT_SECS: u64 = 60;
/// Longest `TRIAL_TIMEOUT`: a day.
pub(crate) const MAX_TRIAL_TIMEOUT_SECS: u64 = 24 * 3600;

/// `TRIAL_TIMEOUT`: a duration of whole seconds, minutes or hours (`600s`, `10m`, `1h30m`),
/// between [`MIN_TRIAL_TIMEOUT_SECS`] and [`MAX_TRIAL_TIMEOUT_SECS`]; the seconds.
pub(crate) fn trial_timeout(value: &str) -> Result<u64, Problem> {
    let expected = "a duration like 10m, 600s or 1h30m (units h, m, s), from 60s to 24h";
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            Problem::new(format!("{expected}; a number needs a unit")).write(format!("{value}s"))
        );
    }
    let mut rest = value;
    let mut secs: u64 = 0;
    if rest.is_empty() {
        return Err(Problem::new(expected));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest[..digits].parse().map_err(|_| {
            Problem::new(format!(
                "{expected}; \"{rest}\" does not start with a number"
            ))
        })?;
        rest = &rest[digits..];
        let (unit, scale) = [("h", 3600), ("m", 60), ("s", 1)]
            .into_iter()
            .find(|(u, _)| rest.starts_with(u))
            .ok_or_else(|| {
                Problem::new(format!("{expected}; each number needs a unit h, m or s"))
            })?;
        rest = &rest[unit.len()..];
        secs = number
            .checked_mul(scale)
            .and_then(|n| secs.checked_add(n))
            .unwrap_or(u64::MAX);
    }
    if secs < MIN_TRIAL_TIMEOUT_SECS {
        return Err(Problem::new(format!(
            "{expected}; {value} is shorter than a Pi takes to boot"
        ))
        .write("60s"));
    }
    if secs > MAX_TRIAL_TIMEOUT_SECS {
        return Err(Problem::new(format!("{expected}; {value} is longer than a day")).write("24h"));
    }
    Ok(secs)
}

/// `TRIAL_TIMEOUT` written back: the largest unit that divides it (`600` → `10m`).
pub(crate) fn render_duration(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `KERNEL_CMDLINE`: kernel command-line tokens (printable ASCII separated by spaces, no
/// quotes); `root=` is refused, since the card's layout fixes the root partition.
pub(crate) fn kernel_cmdline(value: &str) -> Result<Vec<String>, Problem> {
    let expected =
        "kernel command-line tokens separated by spaces, like \"panic=30 usbcore.autosuspend=-1\" \
                    (printable ASCII, no quotes)";
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_graphic() || *c == ' ') || *c == '"' || *c == '\'')
    {
        return Err(Problem::new(format!("{expected}; found {c:?}")));
    }
    let tokens: Vec<String> = value.split_whitespace().map(str::to_string).collect();
    if tokens.iter().any(|t| t.starts_with("root=")) {
        return Err(Problem::new(format!(
            "{expected}; root= is set by k8r (the working root is the card's third partition)"
        ))
        .hint("remove root=… from KERNEL_CMDLINE"));
    }
    if tokens.is_empty() {
        return Err(Problem::new(expected));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn trial_timeouts() {
        assert_eq!(trial_timeout("10m").unwrap(), 600);
        assert_eq!(trial_timeout("1h30m").unwrap(), 5400);
        assert_eq!(trial_timeout("90s").unwrap(), 90);
        assert_eq!(
            trial_timeout("600").unwrap_err().hint,
            Some(Hint::Write("600s".into()))
        );
        assert_eq!(
            trial_timeout("30s").unwrap_err().hint,
            Some(Hint::Write("60s".into()))
        );
        assert_eq!(
            trial_timeout("25h").unwrap_err().hint,
            Some(Hint::Write("24h".into()))
        );
        for bad in ["", "m", "10x", "1.5h", "-10m", "99999999999999999999h"] {
            assert!(trial_timeout(bad).is_err(), "{bad:?}");
        }
        for secs in [600, 5400, 90, 3600] {
            assert_eq!(trial_timeout(&render_duration(secs)).unwrap(), secs);
        }
        assert_eq!(render_duration(600), "10m");
    }

    #[test]
    fn kernel_cmdlines() {
        assert_eq!(
            kernel_cmdline(" panic=30  usbcore.autosuspend=-1 ").unwrap(),
            ["panic=30", "usbcore.autosuspend=-1"]
        );
        assert!(kernel_cmdline("root=/dev/sda2 quiet")
            .unwrap_err()
            .expected
            .contains("third partition"));
        for bad in ["", "  ", "a\tb", "x=\"y z\"", "a\nb", "é"] {
            assert!(kernel_cmdline(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn node_names() {
        assert_eq!(node_name("pi-master-1").unwrap(), "pi-master-1");
        for bad in ["", "-a", "a-", "Pi_Master", &"a".repeat(64), "a.b"] {
            assert!(node_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            node_name("Pi_Master").unwrap_err().hint,
            Some(Hint::Write("pi-master".into()))
        );
    }

    #[test]
    fn versions() {
        assert_eq!(version("1.31.0").unwrap(), Version::new(1, 31, 0));
        assert_eq!(
            version("v1.31.0").unwrap_err().hint,
            Some(Hint::Write("1.31.0".into()))
        );
        assert_eq!(
            version("1.31").unwrap_err().hint,
            Some(Hint::Write("1.31.0".into()))
        );
        assert!(version("1.31.0-rc.1")
            .unwrap_err()
            .expected
            .contains("pre-release"));
        for bad in ["", "1", "1.2.3.4", "a.b.c", "1..3", "+1.2.3", "1.2.x"] {
            assert!(version(bad).is_err(), "{bad}");
        }
        assert!(k8s_version("1.30.9")
            .unwrap_err()
            .expected
            .contains("v1beta4"));
        assert_eq!(k8s_version("1.31.0").unwrap(), MIN_K8S_VERSION);
    }

    #[test]
    fn endpoints() {
        for (input, host, port) in [
            ("k8s.lan", "k8s.lan", None),
            ("k8s.lan:6443", "k8s.lan", Some(6443)),
            ("192.168.1.10", "192.168.1.10", None),
            ("192.168.1.10:443", "192.168.1.10", Some(443)),
            ("fd00::10", "fd00::10", None),
            ("[fd00::10]:6443", "fd00::10", Some(6443)),
            ("master-1", "master-1", None),
        ] {
            let e = endpoint(input, false).unwrap();
            assert_eq!((e.host.as_str(), e.port), (host, port), "{input}");
            assert_eq!(e.to_string(), input);
        }
        for bad in [
            "https://k8s.lan:6443",
            "k8s.lan:0",
            "k8s.lan:65536",
            "k8s.lan:x",
            "300.1.1.1",
            "-bad.lan",
            "under_score.lan",
            "fd00::10:6443:x",
            "[fd00::10",
            "",
        ] {
            assert!(endpoint(bad, false).is_err(), "{bad}");
        }
        assert!(endpoint("k8s.lan", true).is_err());
    }

    #[test]
    fn ttls() {
        for good in [
            "0",
            "24h0m0s",
            "24h",
            "90m",
            "1h30m",
            "45s",
            "500ms",
            "1h1m1s1ms",
        ] {
            assert_eq!(token_ttl(good).unwrap(), good);
        }
        for bad in ["-1h", "24", "1d", "h", "1.5h", "24 h", "", "1h30"] {
            assert!(token_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(size("4G").unwrap().bytes, 4 << 30);
        assert_eq!(size("3500M").unwrap().to_string(), "3500M");
        assert_eq!(size("4096M").unwrap().to_string(), "4G");
        assert_eq!(size("2GiB").unwrap().bytes, 2 << 30);
        assert_eq!(
            size("3500").unwrap_err().hint,
            Some(Hint::Write("3500M".into()))
        );
        for bad in ["0G", "G", "4X", "-4G", "99999999999T"] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert!(cidr("10.244.0.0/16").is_ok());
        assert!(cidr("fd00:10:244::/56").is_ok());
        assert!(cidr("10.244.0.0/25").is_err());
        assert!(cidr("fd00::/96").is_err());
        assert!(contains(
            "192.168.0.0".parse().unwrap(),
            16,
            "192.168.1.10".parse().unwrap()
        ));
        assert!(!contains(
            "10.0.0.0".parse().unwrap(),
            8,
            "192.168.1.10".parse().unwrap()
        ));
    }
}
