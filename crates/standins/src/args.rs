//! Test stand-in plumbing: command-line flags the way cobra/pflag parse them (`--name=value`,
//! `--name value`, `-x value`, `-x=value`, `--switch`, `--switch=false`, `--` ends flags,
//! flags anywhere among positionals), with pflag's error messages. It does not support
//! combined short switches (`-abc`) or flag abbreviations.

use crate::error::{fail, Result};

/// One accepted flag.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Long name without dashes.
    pub long: &'static str,
    /// One-letter name, if any.
    pub short: Option<char>,
    /// Takes a value (else a boolean switch).
    pub value: bool,
}

/// A value flag.
pub const fn value(long: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value: true,
    }
}

/// A boolean switch.
pub const fn switch(long: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value: false,
    }
}

impl Flag {
    /// With a one-letter alias.
    pub const fn short(mut self, c: char) -> Flag {
        self.short = Some(c);
        self
    }
}

/// Parsed arguments.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// Positional arguments in order.
    pub positional: Vec<String>,
    flags: Vec<(&'static str, String)>,
}

impl Parsed {
    /// The last value of `long`.
    pub fn get(&self, long: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| *n == long)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `long`, comma-split (pflag string slices).
    pub fn list(&self, long: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(n, _)| *n == long)
            .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A switch's value (absent = false).
    pub fn on(&self, long: &str) -> bool {
        self.get(long).is_some_and(|v| v == "true")
    }

    /// Whether the flag was given at all.
    pub fn has(&self, long: &str) -> bool {
        self.get(long).is_some()
    }
}

/// Parses `args` against `flags`; `cmd` names the command in errors.
pub fn parse(args: &[String], flags: &[Flag]) -> Result<Parsed> {
    let mut p = Parsed::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            p.positional.extend(it.by_ref().cloned());
            break;
        }
        let (flag, inline, shown) = if let Some(body) = a.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(flag) = flags.iter().find(|f| f.long == name) else {
                return Err(fail(format!("unknown flag: --{name}")));
            };
            (flag, inline, format!("--{name}"))
        } else if a.len() > 1 && a.starts_with('-') {
            let mut chars = a[1..].chars();
            let c = chars.next().unwrap_or('-');
            let rest: String = chars.collect();
            let Some(flag) = flags.iter().find(|f| f.short == Some(c)) else {
                return Err(fail(format!("unknown shorthand flag: '{c}' in {a}")));
            };
            let inline = if rest.is_empty() {
                None
            } else if let Some(v) = rest.strip_prefix('=') {
                Some(v.to_string())
            } else if flag.value {
                Some(rest)
            } else {
                return Err(fail(format!(
                    "unknown shorthand flag: '{}' in {a}",
                    rest.chars().next().unwrap_or('-')
                )));
            };
            (flag, inline, format!("-{c}"))
        } else {
            p.positional.push(a.clone());
            continue;
        };
        let v = if flag.value {
            match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| fail(format!("flag needs an argument: {shown}")))?,
            }
        } else {
            match inline.as_deref() {
                None | Some("true") | Some("1") | Some("t") | Some("T") | Some("TRUE") | Some("True") => "true".into(),
                Some("false") | Some("0") | Some("f") | Some("F") | Some("FALSE") | Some("False") => "false".into(),
                Some(other) => {
                    return Err(fail(format!(
                        "invalid argument {other:?} for \"{shown}\" flag: strconv.ParseBool: parsing {other:?}: invalid syntax"
                    )))
                }
            }
        };
        p.flags.push((flag.long, v));
    }
    Ok(p)
}

/// The leading command words of `args` (before the first flag).
pub fn leading_words(args: &[String]) -> Vec<&str> {
    args.iter()
        .take_while(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        value("config"),
        value("v").short('v'),
        value("output").short('o'),
        switch("yes").short('y'),
        value("ignore-preflight-errors"),
    ];

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_the_pflag_forms() {
        let p = parse(
            &s(&[
                "apply",
                "--config=a.yaml",
                "v1.32.1",
                "-v=5",
                "-o",
                "json",
                "-y",
                "--ignore-preflight-errors=Swap,NumCPU",
                "--ignore-preflight-errors",
                "Mem",
                "--",
                "-x",
            ]),
            FLAGS,
        )
        .expect("parse");
        assert_eq!(p.positional, ["apply", "v1.32.1", "-x"]);
        assert_eq!(p.get("config"), Some("a.yaml"));
        assert_eq!(p.get("v"), Some("5"));
        assert_eq!(p.get("output"), Some("json"));
        assert!(p.on("yes"));
        assert_eq!(p.list("ignore-preflight-errors"), ["Swap", "NumCPU", "Mem"]);
        let p = parse(&s(&["-ojson", "--yes=false"]), FLAGS).expect("parse");
        assert_eq!(p.get("output"), Some("json"));
        assert!(!p.on("yes"));
    }

    #[test]
    fn errors_like_pflag() {
        let e = |v: &[&str]| parse(&s(v), FLAGS).expect_err("error").to_string();
        assert_eq!(e(&["--bogus"]), "unknown flag: --bogus");
        assert_eq!(e(&["-x"]), "unknown shorthand flag: 'x' in -x");
        assert_eq!(e(&["--config"]), "flag needs an argument: --config");
        assert!(e(&["--yes=maybe"]).contains("invalid argument \"maybe\""));
    }
}
