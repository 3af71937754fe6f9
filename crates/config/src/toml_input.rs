//! The TOML form of the same settings: top-level `key = "value"` pairs, keys in lower snake case
//! (`k8s_version`) or the upper-case `variables.cfg` names. Values are strings; integers are
//! taken as their decimal text (so `token_ttl = 0` works).

use std::collections::BTreeMap;
use std::path::Path;

use super::cfg_syntax::Assignment;
use super::error::ConfigError;

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

/// Splits a TOML text into assignments. A TOML syntax error stops here (the toml crate reports
/// one error); wrongly typed values are all collected.
pub(crate) fn lex(file: &Path, text: &str) -> (Vec<Assignment>, Vec<ConfigError>) {
    let table: BTreeMap<String, toml::Spanned<toml::Value>> = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let error = ConfigError {
                file: file.to_path_buf(),
                line: e.span().map(|s| line_of(text, s.start)),
                key: None,
                value: None,
                expected: format!("valid TOML ({})", e.message().trim_end()),
                hint: Some("write one setting per line as key = \"value\"".into()),
            };
            return (Vec::new(), vec![error]);
        }
    };
    let mut assignments = Vec::new();
    let mut errors = Vec::new();
    for (key, spanned) in table {
        let line = line_of(text, spanned.span().start);
        let quote_hint = |shown: &str| format!("quote the value: {key} = \"{shown}\"");
        let refused = |what: &str, hint: String| ConfigError {
            file: file.to_path_buf(),
            line: Some(line),
            key: Some(key.clone()),
            value: None,
            expected: format!("a string value, found {what}"),
            hint: Some(hint),
        };
        match spanned.into_inner() {
            toml::Value::String(value) => assignments.push(Assignment { line, key, value }),
            toml::Value::Integer(i) => assignments.push(Assignment {
                line,
                key,
                value: i.to_string(),
            }),
            toml::Value::Float(f) => errors.push(refused("a number", quote_hint(&f.to_string()))),
            toml::Value::Boolean(b) => {
                errors.push(refused("a boolean", quote_hint(&b.to_string())))
            }
            toml::Value::Datetime(d) => errors.push(refused("a date", quote_hint(&d.to_string()))),
            toml::Value::Array(_) => errors.push(refused(
                "an array",
                "settings are single values: key = \"value\"".into(),
            )),
            toml::Value::Table(_) => errors.push(refused(
                "a table",
                "write the settings at the top level, without [sections]".into(),
            )),
        }
    }
    assignments.sort_by_key(|a| a.line);
    errors.sort_by_key(|e| e.line);
    (assignments, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lines_and_types() {
        let text =
            "# c\nimage = \"a.img\"\n\ntoken_ttl = 0\nk8s_version = 1.31\n[extra]\nx = \"y\"\n";
        let (a, e) = lex(Path::new("c.toml"), text);
        let got: Vec<_> = a
            .iter()
            .map(|a| (a.line, a.key.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(got, [(2, "image", "a.img"), (4, "token_ttl", "0")]);
        let shown: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "c.toml:5: k8s_version: expected a string value, found a number; hint: quote the value: k8s_version = \"1.31\"",
                "c.toml:6: extra: expected a string value, found a table; hint: write the settings at the top level, without [sections]",
            ]
        );
    }

    #[test]
    fn syntax_error_has_a_line() {
        let (_, e) = lex(
            Path::new("c.toml"),
            "image = \"a.img\"\nk8s_version = \"1.31.0\n",
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, Some(2), "{}", e[0]);
        assert!(
            e[0].to_string()
                .starts_with("c.toml:2: expected valid TOML"),
            "{}",
            e[0]
        );
    }
}
