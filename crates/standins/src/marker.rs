//! Test stand-in plumbing: the version marker. One binary serves several Kubernetes versions:
//! the version lives in a fixed-size byte field after `K8R-STANDIN-VERSION=` inside the
//! executable, read back at run time from `/proc/self/exe`. The fixture step writes one copy
//! per version with [`patch_version`]. It does not sign or otherwise protect the field.

use std::path::Path;

use crate::Version;

/// What precedes the version field.
pub const PREFIX: &[u8] = b"K8R-STANDIN-VERSION=";
/// Size of the version field: the version, then NUL padding (at least one NUL).
pub const FIELD: usize = 32;
const LEN: usize = PREFIX.len() + FIELD;

const fn unpatched() -> [u8; LEN] {
    let mut a = [0u8; LEN];
    let mut i = 0;
    while i < PREFIX.len() {
        a[i] = PREFIX[i];
        i += 1;
    }
    a
}

/// The marker in this binary: kept by `#[used]`, and referenced at run time so the linker
/// keeps it too.
#[used]
static MARKER: [u8; LEN] = unpatched();

/// Why a marker could not be read or patched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MarkerError {
    /// No well-formed marker in the bytes.
    #[error(
        "no K8R-STANDIN-VERSION= marker with a {FIELD}-byte field found: not a k8r stand-in binary"
    )]
    Missing,
    /// More than one candidate: refuse to guess.
    #[error("{0} K8R-STANDIN-VERSION= markers found; expected exactly one")]
    Ambiguous(usize),
    /// The version to write is not a plain version.
    #[error("version {0:?} is not of the form 1.31.2 (at most {max} characters)", max = FIELD - 1)]
    BadVersion(String),
    /// `/proc/self/exe` could not be read.
    #[error("reading {path}: {message}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error text.
        message: String,
    },
}

fn field_ok(field: &[u8]) -> bool {
    let used = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    used < field.len()
        && field[..used]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(b))
        && field[used..].iter().all(|&b| b == 0)
}

/// Offsets of the well-formed markers in `bytes` (the prefix followed by a valid field).
fn find(bytes: &[u8], prefix: &[u8]) -> Vec<usize> {
    let mut hits = Vec::new();
    let mut start = 0;
    while start + prefix.len() + FIELD <= bytes.len() {
        let Some(pos) = bytes[start..]
            .windows(prefix.len())
            .position(|w| w == prefix)
        else {
            break;
        };
        let at = start + pos;
        let field_at = at + prefix.len();
        if field_at + FIELD <= bytes.len() && field_ok(&bytes[field_at..field_at + FIELD]) {
            hits.push(at);
        }
        start = at + 1;
    }
    hits
}

fn one(bytes: &[u8], prefix: &[u8]) -> Result<usize, MarkerError> {
    match find(bytes, prefix).as_slice() {
        [] => Err(MarkerError::Missing),
        [at] => Ok(*at),
        many => Err(MarkerError::Ambiguous(many.len())),
    }
}

/// The version in `bytes`' marker: `None` if unpatched.
pub fn read_version(bytes: &[u8]) -> Result<Option<String>, MarkerError> {
    read_with(bytes, PREFIX)
}

fn read_with(bytes: &[u8], prefix: &[u8]) -> Result<Option<String>, MarkerError> {
    let at = one(bytes, prefix)? + prefix.len();
    let field = &bytes[at..at + FIELD];
    let used = field.iter().position(|&b| b == 0).unwrap_or(FIELD);
    if used == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&field[..used]).into_owned()))
}

/// A copy of `bytes` (a stand-in binary) whose marker says `version`. Pure: same input, same
/// output. Re-patching a patched binary works.
pub fn patch_version(bytes: &[u8], version: &str) -> Result<Vec<u8>, MarkerError> {
    let ok_chars = version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if version.is_empty()
        || version.len() >= FIELD
        || !ok_chars
        || Version::parse(version).is_none()
    {
        return Err(MarkerError::BadVersion(version.to_string()));
    }
    let at = one(bytes, PREFIX)? + PREFIX.len();
    let mut out = bytes.to_vec();
    let field = &mut out[at..at + FIELD];
    field.fill(0);
    field[..version.len()].copy_from_slice(version.as_bytes());
    Ok(out)
}

/// The version of the running executable, from `/proc/self/exe`.
pub fn own_version() -> Result<Option<Version>, MarkerError> {
    // The needle comes from the static itself, so the running binary holds no second copy of
    // the prefix as a separate literal (and the linker keeps the static).
    let marker: &[u8; LEN] = std::hint::black_box(&MARKER);
    let prefix = &marker[..PREFIX.len()];
    let path = Path::new("/proc/self/exe");
    let bytes = std::fs::read(path).map_err(|e| MarkerError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    match read_with(&bytes, prefix)? {
        None => Ok(None),
        Some(v) => Version::parse(&v)
            .map(Some)
            .ok_or(MarkerError::BadVersion(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary() -> Vec<u8> {
        let mut b =
            b"\x7fELF some code K8R-STANDIN-VERSION=looks-like-a-literal-but-has-no-padding "
                .to_vec();
        // Built at run time: a constant copy of an unpatched marker in the test binary's data
        // would be a second marker there.
        let mut m = PREFIX.to_vec();
        m.resize(LEN, 0);
        b.extend_from_slice(&m);
        b.extend_from_slice(b" trailing data");
        b
    }

    #[test]
    fn patches_reads_and_repatches() {
        let b = binary();
        assert_eq!(read_version(&b), Ok(None));
        let p = patch_version(&b, "1.32.1").expect("patch");
        assert_eq!(p.len(), b.len());
        assert_eq!(read_version(&p), Ok(Some("1.32.1".into())));
        assert_eq!(patch_version(&b, "1.32.1").expect("again"), p, "pure");
        let q = patch_version(&p, "1.31.2").expect("repatch");
        assert_eq!(read_version(&q), Ok(Some("1.31.2".into())));
        // Only the field changed.
        let diff: Vec<usize> = (0..b.len()).filter(|&i| b[i] != q[i]).collect();
        assert!(diff.len() <= 6 && !diff.is_empty(), "{diff:?}");
    }

    #[test]
    fn refuses_bad_versions_and_bad_binaries() {
        let b = binary();
        for bad in ["", "1.32", "v1.32.1 ", "1.2.3;rm", &"9".repeat(FIELD)] {
            assert!(
                matches!(patch_version(&b, bad), Err(MarkerError::BadVersion(_))),
                "{bad}"
            );
        }
        assert_eq!(
            patch_version(b"no marker here", "1.31.2"),
            Err(MarkerError::Missing)
        );
        let mut two = b.clone();
        two.extend_from_slice(&b[b.len() - 14 - LEN..b.len() - 14]);
        assert_eq!(
            patch_version(&two, "1.31.2"),
            Err(MarkerError::Ambiguous(2))
        );
        // A marker cut short by the end of the file is not a marker.
        let cut = &b[..b.len() - 14 - 4];
        assert_eq!(read_version(cut), Err(MarkerError::Missing));
    }

    #[test]
    fn the_test_binary_itself_carries_one_unpatched_marker() {
        let exe = std::fs::read("/proc/self/exe").expect("read exe");
        assert_eq!(read_version(&exe), Ok(None));
        assert_eq!(own_version(), Ok(None));
    }
}
