//! Parsers for the SHA-256 checksum files the upstream projects publish (pure, no I/O).
//!
//! Three formats occur (`docs/kubernetes-node.md` §1.2):
//!
//! - [`ChecksumFormat::Bare`]: only the hex digest, maybe followed by whitespace. dl.k8s.io
//!   writes `<bin>.sha256` without a newline (kubernetes/release `WriteChecksums`), crictl's
//!   `hack/release.sh` with one.
//! - [`ChecksumFormat::Sha256Sum`]: `sha256sum` output, one `<hex>  <name>` (text mode) or
//!   `<hex> *<name>` (binary mode) line per file: containerd `.sha256sum`, CNI plugins
//!   `.sha256`, calico `SHA256SUMS`.
//! - [`ChecksumFormat::ClearSigned`]: the same lines inside a PGP clear-signed envelope
//!   (RFC 4880 §7): runc's `runc.sha256sum`. The signature itself is **not** verified here; the
//!   envelope is only taken apart so the digest lines can be read.
//!
//! CRLF line ends are accepted everywhere. Digests are compared case-insensitively by parsing
//! them into bytes.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// The first line of a PGP clear-signed message (RFC 4880 §7).
const PGP_SIGNED_HEADER: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
/// The line that ends the signed text of a clear-signed message.
const PGP_SIGNATURE_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";
/// The last line of a clear-signed message.
const PGP_SIGNATURE_END: &str = "-----END PGP SIGNATURE-----";

/// A SHA-256 digest. Parses from 64 hex digits in either case; displays as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&k8r_card::digest::hex(&self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = ChecksumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex(s).map_err(|reason| ChecksumError::InvalidDigest {
            text: s.to_owned(),
            reason,
        })
    }
}

/// Parses exactly 64 hex digits into a digest, or says what is wrong with them.
fn parse_hex(s: &str) -> Result<Sha256Digest, String> {
    if let Some(bad) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("{bad:?} is not a hex digit"));
    }
    if s.len() != 64 {
        return Err(format!(
            "{} hex digits, a SHA-256 digest has 64 (truncated?)",
            s.len()
        ));
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
        *byte = u8::from_str_radix(text, 16).map_err(|e| e.to_string())?;
    }
    Ok(Sha256Digest(out))
}

pub use k8r_card::digest::sha256_hex;

/// Which layout a published checksum file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumFormat {
    /// Only the digest (dl.k8s.io `<bin>.sha256`, crictl `.sha256`).
    Bare,
    /// `sha256sum` lines `<hex>  <name>` / `<hex> *<name>`.
    Sha256Sum,
    /// `sha256sum` lines inside a PGP clear-signed envelope (runc).
    ClearSigned,
}

impl ChecksumFormat {
    /// Guesses the layout of `text`: a clear-signed envelope, a single bare digest, or
    /// `sha256sum` lines.
    pub fn detect(text: &str) -> Self {
        let trimmed = text.trim();
        if trimmed.starts_with(PGP_SIGNED_HEADER) {
            Self::ClearSigned
        } else if !trimmed.is_empty() && !trimmed.contains(char::is_whitespace) {
            Self::Bare
        } else {
            Self::Sha256Sum
        }
    }
}

/// What is wrong with a checksum file or digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// The file holds nothing but whitespace.
    #[error("the checksum file is empty")]
    Empty,
    /// A digest string is not 64 hex digits.
    #[error("invalid SHA-256 digest {text:?}: {reason}")]
    InvalidDigest {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A line does not have the expected layout.
    #[error("line {line}: {reason}")]
    Malformed {
        /// 1-based line number in the whole file.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file does not list the wanted name.
    #[error("no digest for {file_name:?} in the checksum file (it lists: {})", present.join(", "))]
    NotListed {
        /// The wanted name.
        file_name: String,
        /// The names the file does list.
        present: Vec<String>,
    },
    /// The file lists the wanted name twice with different digests.
    #[error("line {line}: a second, different digest for {file_name:?}")]
    Conflicting {
        /// The name.
        file_name: String,
        /// 1-based line number of the second entry.
        line: usize,
    },
}

/// The digest of `file_name` in a published checksum file, whatever its layout (detected with
/// [`ChecksumFormat::detect`]). For a bare digest `file_name` is not checked: the file names no
/// file.
pub fn digest_for(text: &str, file_name: &str) -> Result<Sha256Digest, ChecksumError> {
    digest_in(text, ChecksumFormat::detect(text), file_name)
}

/// The digest of `file_name` in a checksum file that must have layout `format`.
pub fn digest_in(
    text: &str,
    format: ChecksumFormat,
    file_name: &str,
) -> Result<Sha256Digest, ChecksumError> {
    if text.trim().is_empty() {
        return Err(ChecksumError::Empty);
    }
    match format {
        ChecksumFormat::Bare => parse_bare(text),
        ChecksumFormat::Sha256Sum => {
            let lines: Vec<(usize, &str)> = numbered_lines(text).collect();
            pick(&lines, file_name)
        }
        ChecksumFormat::ClearSigned => {
            let body = clear_signed_body(text)?;
            let lines: Vec<(usize, &str)> = body.iter().map(|(n, l)| (*n, l.as_str())).collect();
            pick(&lines, file_name)
        }
    }
}

/// `text` split into lines numbered from 1, with a trailing `\r` removed from each.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .map(|(index, line)| (index + 1, line))
}

/// A bare digest: the whole file, trimmed, must be one 64-hex-digit token.
fn parse_bare(text: &str) -> Result<Sha256Digest, ChecksumError> {
    let (line, token) = numbered_lines(text)
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or(ChecksumError::Empty)?;
    let token = token.trim();
    if token.contains(char::is_whitespace) {
        return Err(ChecksumError::Malformed {
            line,
            reason: "expected only a digest, found more than one word".to_owned(),
        });
    }
    if let Some((extra, _)) = numbered_lines(text)
        .skip(line)
        .find(|(_, l)| !l.trim().is_empty())
    {
        return Err(ChecksumError::Malformed {
            line: extra,
            reason: "expected only a digest, found a second line".to_owned(),
        });
    }
    parse_hex(token).map_err(|reason| ChecksumError::Malformed { line, reason })
}

/// One parsed `sha256sum` line.
struct SumLine<'a> {
    /// The digest.
    digest: Sha256Digest,
    /// The file name with `*` and a leading `./` removed.
    name: &'a str,
}

/// Parses one `sha256sum` line: `<64 hex>` whitespace, optional `*` (binary mode), optional
/// `./`, file name.
fn parse_sum_line(line: &str) -> Result<SumLine<'_>, String> {
    let line = line.trim_end();
    let (hex, rest) = line
        .split_once([' ', '\t'])
        .ok_or_else(|| "expected `<sha256>  <file name>`, found no file name".to_owned())?;
    let digest = parse_hex(hex)?;
    let name = rest.trim_start();
    let name = name.strip_prefix('*').unwrap_or(name);
    let name = name.strip_prefix("./").unwrap_or(name);
    if name.is_empty() {
        return Err("expected `<sha256>  <file name>`, found no file name".to_owned());
    }
    Ok(SumLine { digest, name })
}

/// Finds `file_name` among `sha256sum` lines; every non-blank line must parse.
fn pick(lines: &[(usize, &str)], file_name: &str) -> Result<Sha256Digest, ChecksumError> {
    let wanted = file_name.strip_prefix("./").unwrap_or(file_name);
    let mut found: Option<Sha256Digest> = None;
    let mut present = Vec::new();
    let mut any = false;
    for &(number, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        any = true;
        let parsed = parse_sum_line(line).map_err(|reason| ChecksumError::Malformed {
            line: number,
            reason,
        })?;
        if parsed.name == wanted {
            match found {
                Some(previous) if previous != parsed.digest => {
                    return Err(ChecksumError::Conflicting {
                        file_name: file_name.to_owned(),
                        line: number,
                    });
                }
                _ => found = Some(parsed.digest),
            }
        }
        present.push(parsed.name.to_owned());
    }
    if !any {
        return Err(ChecksumError::Empty);
    }
    found.ok_or_else(|| ChecksumError::NotListed {
        file_name: file_name.to_owned(),
        present,
    })
}

/// The signed text of a PGP clear-signed message, as numbered lines (numbers count from the
/// top of the whole file), with dash-escaping (`- ` prefix, RFC 4880 §7.1) undone.
fn clear_signed_body(text: &str) -> Result<Vec<(usize, String)>, ChecksumError> {
    let mut lines = numbered_lines(text).skip_while(|(_, l)| l.trim().is_empty());
    match lines.next() {
        Some((_, first)) if first.trim_end() == PGP_SIGNED_HEADER => {}
        Some((number, _)) => {
            return Err(ChecksumError::Malformed {
                line: number,
                reason: format!("expected `{PGP_SIGNED_HEADER}`"),
            })
        }
        None => return Err(ChecksumError::Empty),
    }
    // Armor headers ("Hash: SHA512") up to the blank line that starts the signed text.
    let mut last = 1;
    loop {
        let Some((number, line)) = lines.next() else {
            return Err(ChecksumError::Malformed {
                line: last,
                reason: "clear-signed message ends inside its header (truncated?)".to_owned(),
            });
        };
        last = number;
        if line.trim().is_empty() {
            break;
        }
        if !line.contains(": ") {
            return Err(ChecksumError::Malformed {
                line: number,
                reason: "expected an armor header such as `Hash: SHA512` or a blank line"
                    .to_owned(),
            });
        }
    }
    let mut body = Vec::new();
    let mut signature_started = false;
    for (number, line) in lines.by_ref() {
        last = number;
        if line.trim_end() == PGP_SIGNATURE_BEGIN {
            signature_started = true;
            break;
        }
        if let Some(unescaped) = line.strip_prefix("- ") {
            body.push((number, unescaped.to_owned()));
        } else if line.starts_with('-') {
            return Err(ChecksumError::Malformed {
                line: number,
                reason: "unexpected armor line inside the signed text".to_owned(),
            });
        } else {
            body.push((number, line.to_owned()));
        }
    }
    if !signature_started {
        return Err(ChecksumError::Malformed {
            line: last,
            reason: format!("no `{PGP_SIGNATURE_BEGIN}` line (truncated?)"),
        });
    }
    let mut ended = false;
    for (number, line) in lines {
        last = number;
        if ended {
            if !line.trim().is_empty() {
                return Err(ChecksumError::Malformed {
                    line: number,
                    reason: "text after the end of the PGP signature".to_owned(),
                });
            }
        } else if line.trim_end() == PGP_SIGNATURE_END {
            ended = true;
        }
    }
    if !ended {
        return Err(ChecksumError::Malformed {
            line: last,
            reason: format!("no `{PGP_SIGNATURE_END}` line (truncated?)"),
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    // Fixtures are built inline from three arbitrary 64-hex values (only the parser is under
    // test, not the digests); the runc fixture has the layout `gpg --clearsign runc.sha256sum`
    // writes (runc `script/release_sign.sh`), with a dummy signature body: it is not verified.
    const A: &str = "a9c84ab2f26c7b6c3bd9fa0da5dd1b3a9a1f7fa1e6c8bc6a0b3c9a1ba06a2fd3";
    const B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const C: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn digest_round_trips_lowercase() {
        let upper = A.to_ascii_uppercase();
        let digest: Sha256Digest = upper.parse().unwrap();
        assert_eq!(digest.to_string(), A);
        assert_eq!(digest, A.parse().unwrap());
    }

    #[test]
    fn digest_rejects_short_long_and_non_hex() {
        assert!(A[..40].parse::<Sha256Digest>().is_err());
        assert!(format!("{A}0").parse::<Sha256Digest>().is_err());
        let bad = format!("g{}", &A[1..]);
        let err = bad.parse::<Sha256Digest>().unwrap_err();
        assert!(err.to_string().contains("'g'"), "{err}");
    }

    #[test]
    fn sha256_hex_of_known_input() {
        // printf 'abc' | sha256sum
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Digest::of(b"abc").to_string(), sha256_hex(b"abc"));
    }

    #[test]
    fn bare_without_and_with_newline() {
        // dl.k8s.io: no newline; crictl: newline; CRLF and uppercase also accepted.
        for text in [
            A.to_owned(),
            format!("{A}\n"),
            format!("{A}\r\n"),
            format!("  {}  \n\n", A.to_uppercase()),
        ] {
            assert_eq!(ChecksumFormat::detect(&text), ChecksumFormat::Bare);
            assert_eq!(digest_for(&text, "kubeadm").unwrap().to_string(), A);
            assert_eq!(
                digest_in(&text, ChecksumFormat::Bare, "kubeadm")
                    .unwrap()
                    .to_string(),
                A
            );
        }
    }

    #[test]
    fn bare_truncated_and_empty_are_rejected() {
        let err = digest_for(&A[..40], "kubeadm").unwrap_err();
        assert!(
            matches!(err, ChecksumError::Malformed { line: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("40 hex digits"), "{err}");
        assert_eq!(digest_for("", "kubeadm").unwrap_err(), ChecksumError::Empty);
        assert_eq!(
            digest_for(" \r\n", "kubeadm").unwrap_err(),
            ChecksumError::Empty
        );
    }

    #[test]
    fn bare_format_refuses_a_listing() {
        let text = format!("{A}  kubeadm\n");
        let err = digest_in(&text, ChecksumFormat::Bare, "kubeadm").unwrap_err();
        assert!(matches!(err, ChecksumError::Malformed { line: 1, .. }));
        let text = format!("{A}\n{B}\n");
        let err = digest_in(&text, ChecksumFormat::Bare, "kubeadm").unwrap_err();
        assert!(matches!(err, ChecksumError::Malformed { line: 2, .. }));
    }

    #[test]
    fn sha256sum_single_line_containerd() {
        // sha256sum containerd-2.1.4-linux-arm64.tar.gz > ….sha256sum
        let text = format!("{A}  containerd-2.1.4-linux-arm64.tar.gz\n");
        assert_eq!(ChecksumFormat::detect(&text), ChecksumFormat::Sha256Sum);
        let digest = digest_for(&text, "containerd-2.1.4-linux-arm64.tar.gz").unwrap();
        assert_eq!(digest.to_string(), A);
    }

    #[test]
    fn sha256sum_many_lines_binary_mode_and_dot_slash() {
        // calico SHA256SUMS style, mixing text mode, binary mode and `./` prefixes.
        let text = format!(
            "{B}  release-v3.30.0.tgz\n{A} *calicoctl-linux-arm64\n{}  ./tigera-operator-v3.30.0.tgz\n",
            C.to_uppercase()
        );
        assert_eq!(
            digest_for(&text, "calicoctl-linux-arm64")
                .unwrap()
                .to_string(),
            A
        );
        assert_eq!(
            digest_for(&text, "release-v3.30.0.tgz")
                .unwrap()
                .to_string(),
            B
        );
        assert_eq!(
            digest_for(&text, "tigera-operator-v3.30.0.tgz")
                .unwrap()
                .to_string(),
            C
        );
    }

    #[test]
    fn sha256sum_crlf() {
        let text = format!("{B}  a.tgz\r\n{A}  cni-plugins-linux-arm64-v1.6.2.tgz\r\n");
        let digest = digest_for(&text, "cni-plugins-linux-arm64-v1.6.2.tgz").unwrap();
        assert_eq!(digest.to_string(), A);
    }

    #[test]
    fn sha256sum_missing_name_lists_present() {
        let text = format!("{A}  runc.amd64\n{B}  runc.riscv64\n");
        let err = digest_for(&text, "runc.arm64").unwrap_err();
        assert_eq!(
            err,
            ChecksumError::NotListed {
                file_name: "runc.arm64".to_owned(),
                present: vec!["runc.amd64".to_owned(), "runc.riscv64".to_owned()],
            }
        );
        let message = err.to_string();
        assert!(message.contains("runc.arm64") && message.contains("runc.riscv64"));
    }

    #[test]
    fn sha256sum_name_must_match_exactly() {
        let text = format!("{A}  runc.arm64.asc\n");
        assert!(matches!(
            digest_for(&text, "runc.arm64"),
            Err(ChecksumError::NotListed { .. })
        ));
    }

    #[test]
    fn sha256sum_truncated_line_names_its_number() {
        // A download cut off in the middle of the second line.
        let text = format!("{A}  a.tgz\n{}", &B[..40]);
        let err = digest_for(&text, "a.tgz").unwrap_err();
        assert!(
            matches!(err, ChecksumError::Malformed { line: 2, .. }),
            "{err:?}"
        );
        let text = format!("{A}  a.tgz\n{}  b.tgz\n", &B[..40]);
        let err = digest_for(&text, "a.tgz").unwrap_err();
        assert!(err.to_string().starts_with("line 2: "), "{err}");
        assert!(err.to_string().contains("40 hex digits"), "{err}");
    }

    #[test]
    fn sha256sum_conflicting_duplicate_is_rejected() {
        let text = format!("{A}  a.tgz\n{A}  a.tgz\n");
        assert_eq!(digest_for(&text, "a.tgz").unwrap().to_string(), A);
        let text = format!("{A}  a.tgz\n{B}  ./a.tgz\n");
        assert_eq!(
            digest_for(&text, "a.tgz").unwrap_err(),
            ChecksumError::Conflicting {
                file_name: "a.tgz".to_owned(),
                line: 2
            }
        );
    }

    /// A runc-style clear-signed `runc.sha256sum` (as written by `script/release_sign.sh`).
    fn runc_clear_signed(line_end: &str) -> String {
        [
            "-----BEGIN PGP SIGNED MESSAGE-----",
            "Hash: SHA512",
            "",
            &format!("{B}  runc-1.3.0.tar.xz"),
            &format!("{A}  runc.arm64"),
            &format!("{C}  runc.amd64"),
            "-----BEGIN PGP SIGNATURE-----",
            "",
            "iQIzBAEBCgAdFiEEXfixture+notverified+AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "=AbCd",
            "-----END PGP SIGNATURE-----",
            "",
        ]
        .join(line_end)
    }

    #[test]
    fn clear_signed_runc() {
        let text = runc_clear_signed("\n");
        assert_eq!(ChecksumFormat::detect(&text), ChecksumFormat::ClearSigned);
        assert_eq!(digest_for(&text, "runc.arm64").unwrap().to_string(), A);
        assert_eq!(digest_for(&text, "runc.amd64").unwrap().to_string(), C);
        let strict = digest_in(&text, ChecksumFormat::ClearSigned, "runc.arm64").unwrap();
        assert_eq!(strict.to_string(), A);
    }

    #[test]
    fn clear_signed_crlf() {
        let text = runc_clear_signed("\r\n");
        assert_eq!(digest_for(&text, "runc.arm64").unwrap().to_string(), A);
    }

    #[test]
    fn clear_signed_dash_escaped_lines_are_unescaped() {
        let text = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n- {A}  runc.arm64\n\
             -----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n"
        );
        assert_eq!(digest_for(&text, "runc.arm64").unwrap().to_string(), A);
    }

    #[test]
    fn clear_signed_missing_name_lists_present() {
        let text = runc_clear_signed("\n");
        let err = digest_for(&text, "runc.ppc64le").unwrap_err();
        match err {
            ChecksumError::NotListed { present, .. } => {
                assert_eq!(present, ["runc-1.3.0.tar.xz", "runc.arm64", "runc.amd64"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn clear_signed_truncated_is_rejected() {
        let full = runc_clear_signed("\n");
        // Cut before the signature block, and inside it.
        let before = &full[..full.find(PGP_SIGNATURE_BEGIN).unwrap()];
        let err = digest_for(before, "runc.arm64").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let inside = &full[..full.find(PGP_SIGNATURE_END).unwrap()];
        let err = digest_for(inside, "runc.arm64").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        // Only the header.
        let err =
            digest_for("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n", "x").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn clear_signed_malformed_line_numbers_count_from_the_top() {
        let text = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{A}  runc.arm64\n{}  runc.amd64\n\
             -----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n",
            &C[..40]
        );
        let err = digest_for(&text, "runc.arm64").unwrap_err();
        assert!(
            matches!(err, ChecksumError::Malformed { line: 5, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn clear_signed_format_refuses_plain_lines() {
        let text = format!("{A}  runc.arm64\n");
        let err = digest_in(&text, ChecksumFormat::ClearSigned, "runc.arm64").unwrap_err();
        assert!(matches!(err, ChecksumError::Malformed { line: 1, .. }));
    }

    #[test]
    fn clear_signed_text_after_signature_is_rejected() {
        let text = format!("{}{B}  runc.arm64\n", runc_clear_signed("\n"));
        assert!(matches!(
            digest_for(&text, "runc.arm64"),
            Err(ChecksumError::Malformed { line: 12, .. })
        ));
    }
}
