//! The shell-style syntax of `variables.cfg` (the seed's file is `source`d by bash): one
//! `KEY=value` per line, with the subset of bash quoting whose meaning is unambiguous. Anything
//! bash would expand or execute is refused rather than guessed.

use std::path::Path;

use super::error::ConfigError;
use super::redact;

/// One `KEY=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    /// 1-based line number.
    pub line: usize,
    /// The key as written.
    pub key: String,
    /// The value after quote removal.
    pub value: String,
}

/// A syntax problem on one line (file and line are added by [`lex`]).
struct LineError {
    key: Option<String>,
    value: Option<String>,
    expected: String,
    hint: Option<String>,
}

impl LineError {
    fn new(key: Option<&str>, expected: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            key: key.map(str::to_string),
            value: None,
            expected: expected.into(),
            hint: Some(hint.into()),
        }
    }
}

/// Splits a `variables.cfg` text into assignments, collecting every line's syntax error.
pub(crate) fn lex(file: &Path, text: &str) -> (Vec<Assignment>, Vec<ConfigError>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut assignments = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let content = raw.strip_suffix('\r').unwrap_or(raw);
        match lex_line(content) {
            Ok(None) => {}
            Ok(Some((key, value))) => assignments.push(Assignment { line, key, value }),
            // The value, the rest of the line and a hint repeating it may hold a join
            // command's secrets.
            Err(e) => errors.push(ConfigError {
                file: file.to_path_buf(),
                line: Some(line),
                key: e.key,
                value: e.value.as_deref().map(redact::join_command),
                expected: redact::join_command(&e.expected),
                hint: e.hint.as_deref().map(redact::join_command),
            }),
        }
    }
    (assignments, errors)
}

fn is_key(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One line: `None` for blank lines and comments.
fn lex_line(content: &str) -> Result<Option<(String, String)>, LineError> {
    let trimmed = content.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let rest = match trimmed.strip_prefix("export") {
        Some(after) if after.starts_with([' ', '\t']) => after.trim_start(),
        _ => trimmed,
    };
    let Some((name, rhs)) = rest.split_once('=') else {
        // A lone word is probably a key missing its value; anything longer is not a setting.
        let word = Some(rest.trim_end()).filter(|w| is_key(w));
        return Err(LineError::new(
            word,
            "KEY=\"value\" (no '=' found)",
            "every setting is one line KEY=\"value\"; comments start with #",
        ));
    };
    if name.ends_with([' ', '\t']) || rhs.starts_with([' ', '\t']) {
        let key = name.trim_end();
        return Err(LineError::new(
            is_key(key).then_some(key),
            "no spaces around '='",
            format!("write {key}=\"{}\"", rhs.trim()),
        ));
    }
    if !is_key(name) {
        return Err(LineError {
            key: Some(name.to_string()),
            value: None,
            expected: "a key name of letters, digits and '_', not starting with a digit".into(),
            hint: Some("key names are like K8S_VERSION; see variables.cfg.example".into()),
        });
    }
    let key = Some(name);
    let (value, after) = match rhs.chars().next() {
        Some('"') => double_quoted(key, &rhs[1..])?,
        Some('\'') => single_quoted(key, &rhs[1..])?,
        _ => unquoted(key, rhs)?,
    };
    let tail = after.trim_start();
    let comment = tail.starts_with('#') && tail.len() < after.len();
    if !(tail.is_empty() || comment) {
        return Err(LineError {
            key: Some(name.to_string()),
            value: Some(value),
            expected: format!("the end of the line after the value, found \"{tail}\""),
            hint: Some(
                "quote the whole value (KEY=\"a b\"); a comment needs a space before the #".into(),
            ),
        });
    }
    Ok(Some((name.to_string(), value)))
}

fn expansion_error(key: Option<&str>, value: String, what: &str) -> LineError {
    LineError {
        key: key.map(str::to_string),
        value: Some(value),
        expected: format!("a literal value ({what} is not supported)"),
        hint: Some(
            "write the literal value instead; for a literal $ or ` write \\$ or \\` inside \
             double quotes, or use single quotes"
                .into(),
        ),
    }
}

/// After the opening `"`: escapes `\"`, `\\`, `\$`, `` \` ``; other backslashes stay (as in
/// bash). Returns the value and the text after the closing quote.
fn double_quoted<'a>(key: Option<&str>, body: &'a str) -> Result<(String, &'a str), LineError> {
    let mut value = String::new();
    let mut refused: Option<&str> = None;
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                return match refused {
                    Some(what) => Err(expansion_error(key, value, what)),
                    None => Ok((value, &body[i + 1..])),
                }
            }
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\' | '$' | '`'))) => value.push(e),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            },
            '$' => {
                refused.get_or_insert("variable expansion like $VAR");
                value.push(c);
            }
            '`' => {
                refused.get_or_insert("command substitution with `...`");
                value.push(c);
            }
            _ => value.push(c),
        }
    }
    Err(LineError::new(
        key,
        "a closing \" on the same line",
        "close the quote; write a literal \" as \\\" (values are one line)",
    ))
}

/// After the opening `'`: everything up to the next `'` is literal.
fn single_quoted<'a>(key: Option<&str>, body: &'a str) -> Result<(String, &'a str), LineError> {
    match body.split_once('\'') {
        Some((value, after)) => Ok((value.to_string(), after)),
        None => Err(LineError::new(
            key,
            "a closing ' on the same line",
            "close the quote (a single-quoted value cannot contain ')",
        )),
    }
}

/// An unquoted word: ends at white space; shell metacharacters are refused.
fn unquoted<'a>(key: Option<&str>, rhs: &'a str) -> Result<(String, &'a str), LineError> {
    let end = rhs.find([' ', '\t']).unwrap_or(rhs.len());
    let (word, after) = rhs.split_at(end);
    if word.contains('$') {
        return Err(expansion_error(
            key,
            word.to_string(),
            "variable expansion like $VAR",
        ));
    }
    if word.contains('`') {
        return Err(expansion_error(
            key,
            word.to_string(),
            "command substitution with `...`",
        ));
    }
    if let Some(c) = word.chars().find(|c| "\"'\\;&|<>()".contains(*c)) {
        return Err(LineError {
            key: key.map(str::to_string),
            value: Some(word.to_string()),
            expected: format!("a value without {c} unless it is quoted"),
            hint: Some("put the whole value in double quotes: KEY=\"value\"".into()),
        });
    }
    Ok((word.to_string(), after))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn one(line: &str) -> Result<(String, String), String> {
        let (mut a, e) = lex(Path::new("t.cfg"), line);
        match (a.pop(), e.first()) {
            (Some(a), None) => Ok((a.key, a.value)),
            (None, Some(e)) => Err(e.to_string()),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn accepted_forms() {
        for (line, key, value) in [
            ("K=\"v\"", "K", "v"),
            ("K='v'", "K", "v"),
            ("K=v", "K", "v"),
            ("K=", "K", ""),
            ("K=\"\"", "K", ""),
            ("export K=\"v\"", "K", "v"),
            ("  export\tK=v", "K", "v"),
            (
                "K=\"a \\\"b\\\" \\\\ \\$x \\`y\\`\"",
                "K",
                "a \"b\" \\ $x `y`",
            ),
            ("K=\"a\\nb\"", "K", "a\\nb"),
            ("K='$HOME \"x\" \\'", "K", "$HOME \"x\" \\"),
            ("K=\"v\" # comment", "K", "v"),
            ("K='v'\t# comment", "K", "v"),
            ("K=v # comment", "K", "v"),
            ("K=a#b", "K", "a#b"),
            ("K=\"a # b\"", "K", "a # b"),
            ("K=\"v\"\r", "K", "v"),
            ("_K9=v", "_K9", "v"),
        ] {
            assert_eq!(
                one(line),
                Ok((key.to_string(), value.to_string())),
                "{line}"
            );
        }
    }

    #[test]
    fn refused_forms() {
        for (line, message) in [
            ("K=\"v", "t.cfg:1: K: expected a closing \" on the same line"),
            ("K='v", "t.cfg:1: K: expected a closing ' on the same line"),
            ("K=\"$HOME/x\"", "t.cfg:1: K=\"$HOME/x\": expected a literal value (variable expansion like $VAR is not supported); hint: write the literal value"),
            ("K=$HOME", "t.cfg:1: K=\"$HOME\": expected a literal value (variable expansion"),
            ("K=\"`date`\"", "command substitution"),
            ("K", "t.cfg:1: K: expected KEY=\"value\" (no '=' found)"),
            ("just some words", "t.cfg:1: expected KEY=\"value\" (no '=' found)"),
            ("K = v", "t.cfg:1: K: expected no spaces around '='; hint: write K=\"v\""),
            ("K= v", "expected no spaces around '='"),
            ("9K=v", "t.cfg:1: 9K: expected a key name"),
            ("K-X=v", "t.cfg:1: K-X: expected a key name"),
            ("K=a b", "t.cfg:1: K=\"a\": expected the end of the line after the value, found \"b\""),
            ("K=\"a\"b", "found \"b\""),
            ("K=\"a\"# no space", "found \"# no space\""),
            ("K=a;b", "expected a value without ; unless it is quoted"),
        ] {
            let got = one(line).unwrap_err();
            assert!(got.starts_with(message) || got.contains(message), "{line}: {got}");
        }
    }

    #[test]
    fn blank_lines_comments_bom_and_line_numbers() {
        let text = "\u{feff}# header\r\n\r\n   \nA=1\r\n  # indented comment\nB=\"2\"\n";
        let (a, e) = lex(Path::new("t.cfg"), text);
        assert!(e.is_empty(), "{e:?}");
        let got: Vec<_> = a
            .iter()
            .map(|a| (a.line, a.key.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(got, [(4, "A", "1"), (6, "B", "2")]);
    }
}
