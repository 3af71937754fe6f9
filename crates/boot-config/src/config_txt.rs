//! Lossless parse, in-memory edit and render of `config.txt` (DOC-WHAT, DOC-BOOT, DOC-COND).
//!
//! Every line keeps its exact text and line ending, so `ConfigTxt::parse(x)?.render() == x`.
//! Evaluation of filters lives in [`crate::effective`].

use std::fmt;
use std::ops::Range;

use thiserror::Error;

/// The firmware reads at most this many characters of a line and ignores the rest (DOC-WHAT).
pub const MAX_LINE_CHARS: usize = 98;

/// A config.txt that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A line starting with `[` has no closing `]`.
    #[error("line {line}: section header `{text}` has no closing `]`")]
    UnclosedSection {
        /// 1-based line number.
        line: usize,
        /// The line's text.
        text: String,
    },
}

/// Something in config.txt the firmware will not read the way it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ConfigWarningKind,
}

/// Kinds of [`ConfigWarning`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarningKind {
    /// The line is longer than [`MAX_LINE_CHARS`]; the firmware ignores the excess (DOC-WHAT).
    LineTooLong {
        /// Characters on the line (without its line ending).
        chars: usize,
    },
    /// Not a comment, section, `key=value`, `initramfs` or `include` line.
    Unparsable {
        /// The line's text.
        text: String,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ConfigWarningKind::LineTooLong { chars } => write!(
                f,
                "line {}: {chars} characters, the firmware ignores everything after character {MAX_LINE_CHARS}",
                self.line
            ),
            ConfigWarningKind::Unparsable { text } => write!(
                f,
                "line {}: `{text}` is not a setting, section, comment, initramfs or include line",
                self.line
            ),
        }
    }
}

/// Where the firmware places the initramfs (`initramfs FILE followkernel|ADDRESS`, DOC-BOOT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitramfsPlacement {
    /// No placement word given.
    Default,
    /// `followkernel`: right after the kernel.
    FollowKernel,
    /// An explicit address as written (`0` also means followkernel per DOC-BOOT).
    Address(String),
}

/// A parsed `initramfs` line (or the older `ramfsfile=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsLine {
    /// Files in load order (comma-separated list; concatenated in memory by newer firmware).
    pub files: Vec<String>,
    /// Placement.
    pub placement: InitramfsPlacement,
}

/// What one line of config.txt is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// Empty or whitespace only.
    Blank,
    /// Starts with `#`.
    Comment,
    /// `[filter]`: the text between the brackets, verbatim.
    Section(String),
    /// `key=value` (both trimmed).
    Setting {
        /// Property name.
        key: String,
        /// Value as written.
        value: String,
    },
    /// `initramfs FILE[,FILE...] [followkernel|ADDRESS]`.
    Initramfs(InitramfsLine),
    /// `include FILE`.
    Include(String),
    /// Anything else (kept, reported by [`ConfigTxt::warnings`]).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnding {
    None,
    Lf,
    CrLf,
}

impl LineEnding {
    fn as_str(self) -> &'static str {
        match self {
            LineEnding::None => "",
            LineEnding::Lf => "\n",
            LineEnding::CrLf => "\r\n",
        }
    }
}

/// One line: its text (without line ending), ending, and classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLine {
    text: String,
    ending: LineEnding,
    kind: LineKind,
}

impl ConfigLine {
    /// The line's text without its line ending.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The line's classification.
    pub fn kind(&self) -> &LineKind {
        &self.kind
    }

    /// Character count of the text, for the 98-character limit.
    pub(crate) fn chars(&self) -> usize {
        self.text.chars().count()
    }
}

/// A parsed config.txt. Edits happen in memory only and do not touch disk; call
/// [`ConfigTxt::render`] and write the result yourself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigTxt {
    lines: Vec<ConfigLine>,
}

/// Classify one line's text. `Err(())` means a `[` header without `]`.
pub(crate) fn classify(text: &str) -> Result<LineKind, ()> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(LineKind::Blank);
    }
    if trimmed.starts_with('#') {
        return Ok(LineKind::Comment);
    }
    if let Some(rest) = trimmed.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => Ok(LineKind::Section(rest[..end].to_string())),
            None => Err(()),
        };
    }
    if let Some(rest) = keyword_arg(trimmed, "initramfs") {
        return Ok(parse_initramfs(rest).map_or(LineKind::Unknown, LineKind::Initramfs));
    }
    if let Some(rest) = keyword_arg(trimmed, "include") {
        return Ok(LineKind::Include(rest.to_string()));
    }
    if let Some((key, value)) = trimmed.split_once('=') {
        let key = key.trim();
        if !key.is_empty() && key.chars().all(is_key_char) {
            return Ok(LineKind::Setting {
                key: key.to_string(),
                value: value.trim().to_string(),
            });
        }
    }
    Ok(LineKind::Unknown)
}

/// `word ARG...` → the trimmed arguments, if the line starts with `word` then whitespace.
fn keyword_arg<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(word)?;
    if !rest.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let rest = rest.trim();
    (!rest.is_empty()).then_some(rest)
}

/// Keys are names like `arm_64bit`, `dtparam`, `hdmi_group:0`.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// Comma-separated file list, e.g. `a.img,b.img`; empty items are dropped.
pub(crate) fn split_files(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_initramfs(args: &str) -> Option<InitramfsLine> {
    let mut words = args.split_whitespace();
    let files = split_files(words.next()?);
    let placement = match words.next() {
        None => InitramfsPlacement::Default,
        Some(w) if w.eq_ignore_ascii_case("followkernel") => InitramfsPlacement::FollowKernel,
        Some(w) => InitramfsPlacement::Address(w.to_string()),
    };
    if files.is_empty() || words.next().is_some() {
        return None;
    }
    Some(InitramfsLine { files, placement })
}

/// Split text into lines keeping each ending (`\n`, `\r\n`, or none on the last line).
fn split_lines(text: &str) -> impl Iterator<Item = (&str, LineEnding)> {
    text.split_inclusive('\n').map(|raw| {
        if let Some(body) = raw.strip_suffix("\r\n") {
            (body, LineEnding::CrLf)
        } else if let Some(body) = raw.strip_suffix('\n') {
            (body, LineEnding::Lf)
        } else {
            (raw, LineEnding::None)
        }
    })
}

impl ConfigTxt {
    /// Parse config.txt text. The only error is a section header without `]`; other odd
    /// lines are kept and reported by [`ConfigTxt::warnings`].
    pub fn parse(text: &str) -> Result<ConfigTxt, ConfigError> {
        let mut lines = Vec::new();
        for (index, (body, ending)) in split_lines(text).enumerate() {
            let kind = classify(body).map_err(|()| ConfigError::UnclosedSection {
                line: index + 1,
                text: body.to_string(),
            })?;
            lines.push(ConfigLine {
                text: body.to_string(),
                ending,
                kind,
            });
        }
        Ok(ConfigTxt { lines })
    }

    /// Parse the way the firmware reads: a header without `]` is kept as an unknown line
    /// (ignored) instead of failing.
    pub fn parse_lenient(text: &str) -> ConfigTxt {
        let lines = split_lines(text)
            .map(|(body, ending)| ConfigLine {
                text: body.to_string(),
                ending,
                kind: classify(body).unwrap_or(LineKind::Unknown),
            })
            .collect();
        ConfigTxt { lines }
    }

    /// The exact text: `parse(x)?.render() == x`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(&line.text);
            out.push_str(line.ending.as_str());
        }
        out
    }

    /// All lines in order.
    pub fn lines(&self) -> &[ConfigLine] {
        &self.lines
    }

    /// Lines the firmware will not read as written: over 98 characters, or unparsable.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let mut out = Vec::new();
        for (index, line) in self.lines.iter().enumerate() {
            let chars = line.chars();
            if chars > MAX_LINE_CHARS {
                out.push(ConfigWarning {
                    line: index + 1,
                    kind: ConfigWarningKind::LineTooLong { chars },
                });
            }
            if line.kind == LineKind::Unknown {
                out.push(ConfigWarning {
                    line: index + 1,
                    kind: ConfigWarningKind::Unparsable {
                        text: line.text.clone(),
                    },
                });
            }
        }
        out
    }

    /// Index ranges of the body lines under each `[section]` header equal to `section`
    /// (case-insensitive, surrounding spaces ignored). For `all`, the lines before the first
    /// header count too (no filter is in effect there).
    fn regions(&self, section: &str) -> Vec<Range<usize>> {
        let want = section.trim();
        let mut out = Vec::new();
        let mut current: Option<(usize, bool)> = Some((0, want.eq_ignore_ascii_case("all")));
        for (index, line) in self.lines.iter().enumerate() {
            if let LineKind::Section(name) = &line.kind {
                if let Some((start, true)) = current {
                    out.push(start..index);
                }
                current = Some((index + 1, name.trim().eq_ignore_ascii_case(want)));
            }
        }
        if let Some((start, true)) = current {
            out.push(start..self.lines.len());
        }
        out
    }

    fn setting_indices<'a>(
        &'a self,
        section: &str,
        key: &'a str,
    ) -> impl Iterator<Item = usize> + 'a {
        self.regions(section).into_iter().flatten().filter(
            move |&i| matches!(&self.lines[i].kind, LineKind::Setting { key: k, .. } if k == key),
        )
    }

    /// The value of the last `key=...` directly under `[section]` headers, read literally
    /// (no filter evaluation). `section` is the header text without brackets, e.g. `all`.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        let index = self.setting_indices(section, key).last()?;
        match &self.lines[index].kind {
            LineKind::Setting { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The line ending this file uses (that of its first terminated line; `\n` if none).
    fn ending_style(&self) -> LineEnding {
        self.lines
            .iter()
            .map(|l| l.ending)
            .find(|e| *e != LineEnding::None)
            .unwrap_or(LineEnding::Lf)
    }

    fn new_line(&self, text: String) -> ConfigLine {
        let kind = classify(&text).unwrap_or(LineKind::Unknown);
        ConfigLine {
            text,
            ending: self.ending_style(),
            kind,
        }
    }

    fn insert_line(&mut self, at: usize, line: ConfigLine) {
        if at == self.lines.len() {
            let style = self.ending_style();
            if let Some(last) = self.lines.last_mut() {
                if last.ending == LineEnding::None {
                    last.ending = style;
                }
            }
        }
        self.lines.insert(at, line);
    }

    /// Set `key=value` under `[section]` (in memory; does not touch disk).
    ///
    /// Replaces the last occurrence in that section (keeping its indentation and line
    /// ending), else appends after the section's last non-blank line, else appends
    /// `[section]` and the setting at the end of the file. New lines use the file's line
    /// ending style.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        if let Some(index) = self.setting_indices(section, key).last() {
            let line = &mut self.lines[index];
            let indent_len = line.text.len() - line.text.trim_start().len();
            line.text = format!("{}{key}={value}", &line.text[..indent_len]);
            line.kind = classify(&line.text).unwrap_or(LineKind::Unknown);
            return;
        }
        let setting = self.new_line(format!("{key}={value}"));
        match self.regions(section).last().cloned() {
            Some(region) => {
                let at = region
                    .clone()
                    .rev()
                    .find(|&i| self.lines[i].kind != LineKind::Blank)
                    .map_or(region.start, |i| i + 1);
                self.insert_line(at, setting);
            }
            None => {
                let header = self.new_line(format!("[{}]", section.trim()));
                let end = self.lines.len();
                self.insert_line(end, header);
                self.insert_line(end + 1, setting);
            }
        }
    }

    /// Remove every `key=...` directly under `[section]` (in memory). Returns how many lines
    /// were removed.
    pub fn remove(&mut self, section: &str, key: &str) -> usize {
        let indices: Vec<usize> = self.setting_indices(section, key).collect();
        for &index in indices.iter().rev() {
            self.lines.remove(index);
        }
        indices.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARIED: &[&str] = &[
        "",
        "\n",
        "\r\n",
        "arm_64bit=1",
        "arm_64bit=1\n",
        "arm_64bit=1\r\n[pi4]\r\narm_boost=1\r\n",
        "a=1\r\nb=2\nc=3",
        "# comment\n\n   \n\t# indented comment\n",
        "[all]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n",
        "[pi3+]\nx=1\n[pi02]\ny=2\n[gpio4=1]\nz=3\n[EDID=VSC-TD2220]\n[0x12345678]\n[board-type=0x11]\n[boot_partition=2]\n",
        "  indented=1\n    [pi4]   # trailing\nfoo = bar \n",
        "something odd here\n=novalue\ninclude extra.txt\r\n",
        "initramfs a.img,b.img 0x2000000\ninitramfs\nramfsfile=a,b\n",
        "dtoverlay=vc4-kms-v3d,cma-128\nhdmi_group:0=1\n\n\n",
        "unicode=é✓\nlast line without newline",
        "\r",
        "a=1\r",
    ];

    #[test]
    fn round_trip_varied_inputs() {
        for input in VARIED {
            let cfg = ConfigTxt::parse(input).expect("parses");
            assert_eq!(&cfg.render(), input, "round trip of {input:?}");
            assert_eq!(&ConfigTxt::parse_lenient(input).render(), input);
        }
    }

    #[test]
    fn line_kinds() {
        let text = "# c\n\n[pi3+]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\ninclude extra.txt\nwhat is this\ninitramfs a,b 0x100\n";
        let cfg = ConfigTxt::parse(text).expect("parses");
        let kinds: Vec<&LineKind> = cfg.lines().iter().map(ConfigLine::kind).collect();
        assert_eq!(kinds[0], &LineKind::Comment);
        assert_eq!(kinds[1], &LineKind::Blank);
        assert_eq!(kinds[2], &LineKind::Section("pi3+".into()));
        assert_eq!(
            kinds[3],
            &LineKind::Setting {
                key: "kernel".into(),
                value: "vmlinuz".into()
            }
        );
        assert_eq!(
            kinds[4],
            &LineKind::Initramfs(InitramfsLine {
                files: vec!["initrd.img".into()],
                placement: InitramfsPlacement::FollowKernel
            })
        );
        assert_eq!(kinds[5], &LineKind::Include("extra.txt".into()));
        assert_eq!(kinds[6], &LineKind::Unknown);
        assert_eq!(
            kinds[7],
            &LineKind::Initramfs(InitramfsLine {
                files: vec!["a".into(), "b".into()],
                placement: InitramfsPlacement::Address("0x100".into())
            })
        );
    }

    #[test]
    fn unclosed_header_is_error_with_line() {
        let err = ConfigTxt::parse("a=1\r\n\r\n[pi4\r\n").expect_err("unclosed");
        assert_eq!(
            err,
            ConfigError::UnclosedSection {
                line: 3,
                text: "[pi4".into()
            }
        );
        assert!(err.to_string().starts_with("line 3:"));
        let lenient = ConfigTxt::parse_lenient("[pi4\n");
        assert_eq!(lenient.lines()[0].kind(), &LineKind::Unknown);
    }

    #[test]
    fn warnings_long_and_unparsable() {
        let long = format!("dtoverlay={}", "x".repeat(89)); // 99 chars
        let ok = format!("dtoverlay={}", "x".repeat(88)); // 98 chars
        let text = format!("a=1\n{ok}\n{long}\r\nbogus line\n");
        let cfg = ConfigTxt::parse(&text).expect("parses");
        let warnings = cfg.warnings();
        assert_eq!(
            warnings,
            vec![
                ConfigWarning {
                    line: 3,
                    kind: ConfigWarningKind::LineTooLong { chars: 99 }
                },
                ConfigWarning {
                    line: 4,
                    kind: ConfigWarningKind::Unparsable {
                        text: "bogus line".into()
                    }
                },
            ]
        );
        assert!(warnings[0].to_string().starts_with("line 3:"));
    }

    #[test]
    fn get_is_literal_last_in_section() {
        let cfg =
            ConfigTxt::parse("a=0\n[pi4]\na=1\na=2\n[all]\nb=3\n[pi4]\nc=4\n").expect("parses");
        assert_eq!(cfg.get("pi4", "a"), Some("2"));
        assert_eq!(cfg.get("all", "a"), Some("0"));
        assert_eq!(cfg.get("all", "b"), Some("3"));
        assert_eq!(cfg.get("pi4", "c"), Some("4"));
        assert_eq!(cfg.get("pi3", "a"), None);
        assert_eq!(cfg.get("pi4", "b"), None);
    }

    #[test]
    fn set_replaces_last_occurrence() {
        let mut cfg =
            ConfigTxt::parse("[pi4]\r\n  a=1\r\na=2 \r\n[all]\r\nb=1\r\n").expect("parses");
        cfg.set("pi4", "a", "9");
        assert_eq!(cfg.render(), "[pi4]\r\n  a=1\r\na=9\r\n[all]\r\nb=1\r\n");
        cfg.set("pi4", "a", "7");
        assert_eq!(cfg.get("pi4", "a"), Some("7"));
    }

    #[test]
    fn set_appends_in_section_keeping_crlf() {
        let mut cfg = ConfigTxt::parse("[pi4]\r\na=1\r\n\r\n[all]\r\nb=1\r\n").expect("parses");
        cfg.set("pi4", "c", "3");
        assert_eq!(cfg.render(), "[pi4]\r\na=1\r\nc=3\r\n\r\n[all]\r\nb=1\r\n");
        cfg.set("all", "d", "4");
        assert_eq!(
            cfg.render(),
            "[pi4]\r\na=1\r\nc=3\r\n\r\n[all]\r\nb=1\r\nd=4\r\n"
        );
    }

    #[test]
    fn set_creates_section_at_end() {
        let mut cfg = ConfigTxt::parse("a=1").expect("parses");
        cfg.set("tryboot", "os_prefix", "new/");
        assert_eq!(cfg.render(), "a=1\n[tryboot]\nos_prefix=new/\n");
        assert_eq!(cfg.get("tryboot", "os_prefix"), Some("new/"));

        let mut crlf = ConfigTxt::parse("a=1\r\n").expect("parses");
        crlf.set("pi5", "x", "1");
        assert_eq!(crlf.render(), "a=1\r\n[pi5]\r\nx=1\r\n");
    }

    #[test]
    fn set_all_uses_preamble_when_no_all_header() {
        let mut cfg = ConfigTxt::parse("a=1\n[pi4]\nb=2\n").expect("parses");
        cfg.set("all", "c", "3");
        assert_eq!(cfg.render(), "a=1\nc=3\n[pi4]\nb=2\n");
        let mut empty = ConfigTxt::parse("").expect("parses");
        empty.set("all", "x", "1");
        assert_eq!(empty.render(), "x=1\n");
    }

    #[test]
    fn remove_only_in_section() {
        let mut cfg = ConfigTxt::parse("a=1\n[pi4]\na=2\na=3\n[all]\na=4\n").expect("parses");
        assert_eq!(cfg.remove("pi4", "a"), 2);
        assert_eq!(cfg.render(), "a=1\n[pi4]\n[all]\na=4\n");
        assert_eq!(cfg.remove("all", "a"), 2);
        assert_eq!(cfg.render(), "[pi4]\n[all]\n");
        assert_eq!(cfg.remove("all", "a"), 0);
    }

    #[test]
    fn unknown_sections_kept_byte_for_byte_after_edit() {
        let text = "[pi3+]\nx=1\n[pi02]\ny=2\n[gpio4=1]\nz=3\n[all]\nk=v\n";
        let mut cfg = ConfigTxt::parse(text).expect("parses");
        cfg.set("all", "k", "w");
        assert_eq!(
            cfg.render(),
            "[pi3+]\nx=1\n[pi02]\ny=2\n[gpio4=1]\nz=3\n[all]\nk=w\n"
        );
    }
}
