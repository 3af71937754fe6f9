//! Test stand-in plumbing: random tokens and placeholder bytes from `/dev/urandom` (the real
//! device, not under the stand-in root). Not for cryptography: nothing here protects anything.

use std::io::Read;

use crate::error::{IoContext, Result};

/// `n` random bytes.
pub fn bytes(n: usize) -> Result<Vec<u8>> {
    let path = std::path::Path::new("/dev/urandom");
    let mut f = std::fs::File::open(path).ctx("opening", path)?;
    let mut buf = vec![0u8; n];
    f.read_exact(&mut buf).ctx("reading", path)?;
    Ok(buf)
}

/// `n` random characters from `[a-z0-9]`.
pub fn lower_alnum(n: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    Ok(bytes(n)?
        .into_iter()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect())
}

/// `n` random bytes as lowercase hex.
pub fn hex(n: usize) -> Result<String> {
    Ok(to_hex(&bytes(n)?))
}

/// Lowercase hex of `data`.
// Own copy, not `k8r_card::digest::hex`: the stand-ins depend on no k8r crate.
pub fn to_hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// A bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn bootstrap_token() -> Result<String> {
    Ok(format!("{}.{}", lower_alnum(6)?, lower_alnum(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_bootstrap_shape_and_differ() {
        let a = bootstrap_token().expect("token");
        let b = bootstrap_token().expect("token");
        assert!(crate::formats::is_bootstrap_token(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(hex(32).expect("hex").len(), 64);
    }
}
