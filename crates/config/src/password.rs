//! The optional `password_hash` file: one SHA-512 crypt hash (`$6$[rounds=N$]salt$hash`) for
//! the login user. The file may hold a plaintext password by mistake, so errors never show its
//! content: only its length and shape, and the name of a recognised hash type (MD5 `$1$`,
//! yescrypt `$y$`), which is no secret.

use std::path::Path;

use super::error::{ConfigError, ConfigErrors};

const HOW_TO: &str = "make one with `openssl passwd -6` or `mkpasswd -m sha-512` and put that \
                      single line into the file";

fn crypt_alphabet(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

/// What the content looks like, without revealing any of it: its length, and for what starts
/// like a hash its number of `$`-separated parts. (A recognised hash type is named by
/// [`check`] from its prefix; nothing of an unrecognised value is shown.)
fn describe(content: &str) -> String {
    let count = content.chars().count();
    match content.strip_prefix('$') {
        Some(rest) => {
            let parts = rest.split('$').count();
            let plural = if parts == 1 { "" } else { "s" };
            format!("found {count} characters in {parts} '$'-separated part{plural}, not shown")
        }
        None => format!("found {count} characters, not shown"),
    }
}

/// Why `line` is not a SHA-512 crypt hash, if it is not.
fn check(line: &str) -> Result<(), String> {
    let kind = match line.split('$').nth(1) {
        _ if !line.starts_with('$') && line.contains(":$") => {
            return Err(
                "an /etc/shadow line; copy only the second field (from $ to the next :)".into(),
            )
        }
        _ if !line.starts_with('$') => "what looks like a plain password, not a hash",
        Some("6") => "",
        Some("1") => "an MD5 crypt hash ($1$)",
        Some("5") => "a SHA-256 crypt hash ($5$)",
        Some("y") => "a yescrypt hash ($y$, Ubuntu's /etc/shadow default)",
        Some("2a" | "2b" | "2y") => "a bcrypt hash",
        _ => "an unknown hash type",
    };
    if !kind.is_empty() {
        return Err(kind.into());
    }
    let fields: Vec<&str> = line.split('$').collect();
    let (salt, hash) = match fields.as_slice() {
        ["", "6", rounds, salt, hash] if rounds.starts_with("rounds=") => {
            let n = &rounds["rounds=".len()..];
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err("a $6$ hash whose rounds=N is not a number".into());
            }
            (*salt, *hash)
        }
        ["", "6", salt, hash] => (*salt, *hash),
        _ => return Err("a $6$ hash with the wrong number of '$' fields".into()),
    };
    if salt.is_empty() || salt.len() > 16 || !crypt_alphabet(salt) {
        return Err("a $6$ hash whose salt is not 1-16 characters of [./0-9A-Za-z]".into());
    }
    if hash.len() != 86 || !crypt_alphabet(hash) {
        return Err("a $6$ hash whose hash part is not 86 characters of [./0-9A-Za-z]".into());
    }
    Ok(())
}

/// Checks a `password_hash` file and returns the hash (without the line ending).
pub fn parse_password_hash(file: &Path, text: &str) -> Result<String, ConfigErrors> {
    let content = text
        .strip_suffix('\n')
        .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
    let refuse = |problem: String| {
        ConfigErrors::one(ConfigError {
            file: file.to_path_buf(),
            line: Some(1),
            key: None,
            value: None,
            expected: format!(
                "one line holding a SHA-512 crypt hash $6$[rounds=N$]salt$hash, but {problem}"
            ),
            hint: Some(HOW_TO.into()),
        })
    };
    if content.trim().is_empty() {
        return Err(refuse(
            "the file is empty (delete it to keep the image's default password)".into(),
        ));
    }
    if content.contains('\n') {
        return Err(refuse(format!(
            "it has {} lines ({})",
            content.lines().count(),
            describe(content)
        )));
    }
    check(content).map_err(|why| refuse(format!("it holds {why} ({})", describe(content))))?;
    Ok(content.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HASH: &str = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";

    #[test]
    fn good_hashes() {
        assert_eq!(HASH.len(), 3 + 8 + 1 + 86);
        for text in [
            HASH.to_string(),
            format!("{HASH}\n"),
            format!("{HASH}\r\n"),
            HASH.replace("$6$", "$6$rounds=5000$"),
            HASH.replace("saltsalt", "a"),
            HASH.replace("saltsalt", "./0123456789ABCD"),
        ] {
            assert_eq!(
                parse_password_hash(Path::new("password_hash"), &text).unwrap(),
                text.trim_end()
            );
        }
    }

    #[test]
    fn bad_hashes_say_why_without_echoing() {
        let cases = [
            (
                "hunter2-secret\n".to_string(),
                "plain password",
                "found 14 characters, not shown",
            ),
            (String::new(), "the file is empty", ""),
            (
                "$1$abc$defghijk".into(),
                "MD5",
                "found 15 characters in 3 '$'-separated parts, not shown",
            ),
            (
                "$hunter2-secret\n".into(),
                "an unknown hash type",
                "found 15 characters in 1 '$'-separated part, not shown",
            ),
            ("$5$abc$defghijk".into(), "SHA-256", ""),
            ("$y$j9T$abc$def".into(), "yescrypt", ""),
            (
                format!("ubuntu:{HASH}:19000:0:99999:7:::"),
                "/etc/shadow line",
                "",
            ),
            (HASH.replace("saltsalt", "saltsaltsaltsalt1"), "salt", ""),
            (HASH.replace("saltsalt", "salt salt"), "salt", ""),
            (HASH[..HASH.len() - 1].to_string(), "86 characters", ""),
            (HASH.replace("$6$", "$6$rounds=x$"), "rounds=N", ""),
            (format!("{HASH}\n{HASH}\n"), "2 lines", ""),
        ];
        for (text, why, shown) in cases {
            let message = parse_password_hash(Path::new("password_hash"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                message
                    .starts_with("password_hash:1: expected one line holding a SHA-512 crypt hash"),
                "{message}"
            );
            assert!(message.contains(why), "{why}: {message}");
            assert!(message.contains(shown), "{shown}: {message}");
            assert!(message.contains("openssl passwd -6"), "{message}");
            if text.starts_with("$hu") {
                assert!(
                    !message.contains("$hu") && !message.contains("hunter"),
                    "echoed: {message}"
                );
            }
            if !text.starts_with('$') && text.len() >= 3 {
                assert!(!message.contains(&text[..3]), "echoed: {message}");
            } else if text.len() > 3 {
                assert!(
                    !message.contains(&text.trim_end()[3..]),
                    "echoed: {message}"
                );
            }
        }
    }
}
