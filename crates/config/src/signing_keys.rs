//! The rules of `SIGNING_KEY` and `TRUSTED_KEYS`: paths of minisign key files on the build
//! machine (the builder reads and checks the files; here only what the text can tell).

use super::validate::Problem;

/// `SIGNING_KEY`: a path to the minisign secret key (its content is checked by the builder).
pub(crate) fn signing_key(value: &str) -> Result<std::path::PathBuf, Problem> {
    if value.ends_with('/') {
        return Err(
            Problem::new("the path of a minisign secret key file, not a directory")
                .hint("make one with `k8r-builder keygen` and give its .key file"),
        );
    }
    if value.ends_with(".pub") {
        return Err(Problem::new(
            "the secret key (the .key file), not a public key: the public key goes into TRUSTED_KEYS",
        )
        .write(format!("{}.key", value.trim_end_matches(".pub"))));
    }
    Ok(std::path::PathBuf::from(value))
}

/// `TRUSTED_KEYS`: paths of minisign public key files, separated by spaces.
pub(crate) fn trusted_keys(value: &str) -> Result<Vec<std::path::PathBuf>, Problem> {
    let paths: Vec<&str> = value.split_whitespace().collect();
    if let Some(secret) = paths.iter().find(|p| p.ends_with(".key")) {
        return Err(Problem::new(format!(
            "public key files (.pub), not the secret key {secret}: a secret key never goes onto a card"
        ))
        .write(paths
            .iter()
            .map(|p| p.strip_suffix(".key").map_or((*p).to_owned(), |s| format!("{s}.pub")))
            .collect::<Vec<_>>()
            .join(" ")));
    }
    Ok(paths.into_iter().map(std::path::PathBuf::from).collect())
}
