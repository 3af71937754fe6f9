//! Reading a request head and turning its target into a path that is safe to serve.

use std::io::{self, Read};
use std::path::{Component, Path};

/// Longest request head accepted (request line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// The parts of a request the server looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// `GET`, `HEAD`, ...
    pub(crate) method: String,
    /// The request target as sent (`/a/b?x=1`).
    pub(crate) target: String,
    /// The `Range` header's value.
    pub(crate) range: Option<String>,
}

/// Reads one request head (up to the blank line). `Ok(None)`: the client closed the
/// connection, or sent something too long or not HTTP, before a complete head.
pub(crate) fn read_head(stream: &mut impl Read) -> io::Result<Option<Head>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() > MAX_HEAD {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(parse_head(&String::from_utf8_lossy(&head)))
}

/// Parses the request line and the `Range` header.
fn parse_head(text: &str) -> Option<Head> {
    let mut lines = text.split("\r\n");
    let mut words = lines.next()?.split_whitespace();
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return None;
    }
    let range = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("range"))
        .map(|(_, value)| value.trim().to_owned());
    Some(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        range,
    })
}

/// The path of a request target, percent-decoded: `/a%20b?x` → `/a b`. `None` for a target
/// that is not origin-form (does not start with `/`) or has a bad `%` escape or decodes to
/// something that is not UTF-8.
pub(crate) fn decoded_path(target: &str) -> Option<String> {
    let raw = target.split(['?', '#']).next().unwrap_or("");
    if !raw.starts_with('/') {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded request path as a path relative to the served directory, or `None` if it
/// could name something outside it: a `..` segment (also when sent as `%2e%2e`), an absolute
/// path after the leading `/` (`//etc/passwd`), a backslash or a NUL byte.
pub(crate) fn relative(path: &str) -> Option<&Path> {
    let rest = path.strip_prefix('/')?;
    if rest.contains(['\\', '\0']) || rest.split('/').any(|segment| segment == "..") {
        return None;
    }
    let rel = Path::new(rest);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then_some(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_method_target_and_range_case_insensitively() {
        let head = parse_head(
            "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nrAnGe:  bytes=3-\r\n\r\nRange: bytes=9-\r\n",
        )
        .expect("parses");
        assert_eq!(
            head,
            Head {
                method: "GET".into(),
                target: "/a/b?x=1".into(),
                range: Some("bytes=3-".into()),
            }
        );
        let head = parse_head("HEAD / HTTP/1.0\r\n\r\n").expect("parses");
        assert_eq!(head.range, None);
        assert_eq!(parse_head("GET /\r\n\r\n"), None);
        assert_eq!(parse_head("GET / SPDY/3\r\n\r\n"), None);
        assert_eq!(parse_head("GET / HTTP/1.1 extra\r\n\r\n"), None);
    }

    #[test]
    fn reads_a_head_split_across_reads_and_gives_up_on_eof() {
        let mut input: &[u8] = b"GET /x HTTP/1.1\r\nRange: bytes=1-2\r\n\r\nbody";
        let head = read_head(&mut input).expect("reads").expect("complete");
        assert_eq!(head.target, "/x");
        assert_eq!(head.range.as_deref(), Some("bytes=1-2"));
        let mut cut: &[u8] = b"GET /x HTTP/1.1\r\nHost:";
        assert_eq!(read_head(&mut cut).expect("reads"), None);
        let mut endless = std::io::repeat(b'a');
        assert_eq!(read_head(&mut endless).expect("reads"), None);
    }

    #[test]
    fn decodes_percent_escapes_and_drops_the_query() {
        assert_eq!(decoded_path("/a%20b/c?d=%zz").as_deref(), Some("/a b/c"));
        assert_eq!(decoded_path("/%2e%2E/x").as_deref(), Some("/../x"));
        assert_eq!(decoded_path("/a#frag").as_deref(), Some("/a"));
        assert_eq!(decoded_path("/a+b").as_deref(), Some("/a+b"));
        assert_eq!(decoded_path("/bad%2"), None);
        assert_eq!(decoded_path("/bad%zz"), None);
        assert_eq!(decoded_path("/%ff"), None);
        assert_eq!(decoded_path("http://127.0.0.1/a"), None);
        assert_eq!(decoded_path("a/b"), None);
        assert_eq!(decoded_path("*"), None);
    }

    #[test]
    fn refuses_paths_that_could_leave_the_directory() {
        assert_eq!(relative("/a/b.txt"), Some(Path::new("a/b.txt")));
        assert_eq!(relative("/a/./b"), Some(Path::new("a/./b")));
        assert_eq!(relative("/./a"), Some(Path::new("./a")));
        assert_eq!(relative("/"), Some(Path::new("")));
        for path in [
            "/..",
            "/../secret",
            "/a/../../secret",
            "/a/..",
            "//etc/passwd",
            "/a\\..\\b",
            "/a\0b",
            "no-slash",
        ] {
            assert_eq!(relative(path), None, "{path:?}");
        }
    }
}
