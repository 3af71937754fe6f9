//! What a bad configuration looks like to the user: one [`ConfigError`] per problem, all of
//! them collected into [`ConfigErrors`], plus [`ConfigWarning`]s that do not stop the build.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a configuration file, with everything needed to fix it.
///
/// Rendered as `variables.cfg:3: K8S_VERSION="v1.29.3": expected a version like 1.29.3 (no "v"
/// prefix); hint: write K8S_VERSION="1.29.3"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the user named it.
    pub file: PathBuf,
    /// 1-based line number, when the problem sits on one line.
    pub line: Option<usize>,
    /// The key as written in the file, when known.
    pub key: Option<String>,
    /// The offending value, when known (never set for password files; a join command's token
    /// secret, discovery hash and certificate key are hidden: [`crate::redact::join_command`]).
    pub value: Option<String>,
    /// What was expected instead.
    pub expected: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl ConfigError {
    /// An error about the whole file (no line, key or value).
    pub fn file(file: &Path, expected: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            key: None,
            value: None,
            expected: expected.into(),
            hint,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        match (&self.key, &self.value) {
            (Some(key), Some(value)) => write!(f, "{key}=\"{}\": ", escape_for_display(value))?,
            (Some(key), None) => write!(f, "{key}: ")?,
            (None, Some(value)) => write!(f, "\"{}\": ", escape_for_display(value))?,
            (None, None) => {}
        }
        write!(f, "expected {}", self.expected)?;
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single error.
    pub fn one(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A questionable but usable setting (an unknown key, a combination worth a second look).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file as the user named it.
    pub file: PathBuf,
    /// 1-based line number, when known.
    pub line: Option<usize>,
    /// The key as written, when known.
    pub key: Option<String>,
    /// What is questionable.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Shows a value inside double quotes: quotes and backslashes escaped, control characters
/// spelled out, so the message is one line and unambiguous.
fn escape_for_display(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}
