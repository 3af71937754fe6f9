//! `autoboot.txt`: which partition the bootloader should boot (DOC-AUTOBOOT, DOC-FLOW).

use std::fmt;

use thiserror::Error;

/// autoboot.txt is at most 512 bytes (DOC-AUTOBOOT).
pub const MAX_AUTOBOOT_BYTES: usize = 512;

/// Highest partition number the reboot register can carry (6 bits; 63 = halt, K-WDT).
pub const MAX_PARTITION: u8 = 63;

/// An autoboot.txt that must not be used at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AutobootError {
    /// Larger than 512 bytes. DOC-AUTOBOOT gives 512 bytes as the maximum but not what the
    /// bootloader does with a larger file; safe reading: such a file is invalid as a whole,
    /// so writers never produce one and the selection model ignores it (default partition).
    #[error("autoboot.txt is {len} bytes; the bootloader reads at most 512")]
    TooLarge {
        /// Size in bytes.
        len: usize,
    },
}

/// A line the bootloader will not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutobootWarning {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for AutobootWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "autoboot.txt line {}: {}", self.line, self.message)
    }
}

/// The sections autoboot.txt understands (DOC-AUTOBOOT: only `[all]`, `[none]`, `[tryboot]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    All,
    Tryboot,
    /// `[none]` or an unsupported header: lines are ignored.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    BootPartition(u8),
    TrybootAB(bool),
}

/// A parsed autoboot.txt: its valid assignments in file order, each with its section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Autoboot {
    entries: Vec<(Section, Entry)>,
    warnings: Vec<AutobootWarning>,
}

impl Autoboot {
    /// Parse autoboot.txt bytes.
    ///
    /// Only a file over 512 bytes is an error. Everything else that is wrong — a torn write
    /// (`boot_parti`, `boot_partition=`), non-UTF-8 bytes, values out of range, unknown keys —
    /// is ignored line by line and recorded in [`Autoboot::warnings`]: the safe reading is
    /// that the bootloader skips what it cannot parse and falls back to its defaults.
    pub fn parse(bytes: &[u8]) -> Result<Autoboot, AutobootError> {
        if bytes.len() > MAX_AUTOBOOT_BYTES {
            return Err(AutobootError::TooLarge { len: bytes.len() });
        }
        let mut out = Autoboot::default();
        let mut section = Section::All;
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            let Ok(text) = std::str::from_utf8(raw) else {
                out.warn(line, "not valid UTF-8, ignored".to_string());
                continue;
            };
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if let Some(rest) = text.strip_prefix('[') {
                section = match rest.strip_suffix(']').map(str::trim) {
                    Some(name) if name.eq_ignore_ascii_case("all") => Section::All,
                    Some(name) if name.eq_ignore_ascii_case("tryboot") => Section::Tryboot,
                    Some(name) if name.eq_ignore_ascii_case("none") => Section::Ignored,
                    _ => {
                        out.warn(
                            line,
                            format!("section `{text}` is not supported in autoboot.txt; lines under it are ignored"),
                        );
                        Section::Ignored
                    }
                };
                continue;
            }
            if section == Section::Ignored {
                continue;
            }
            match parse_entry(text) {
                Ok(entry) => out.entries.push((section, entry)),
                Err(message) => out.warn(line, message),
            }
        }
        Ok(out)
    }

    fn warn(&mut self, line: usize, message: String) {
        self.warnings.push(AutobootWarning { line, message });
    }

    /// Lines that were ignored.
    pub fn warnings(&self) -> &[AutobootWarning] {
        &self.warnings
    }

    /// Assignments that apply: `[all]` always, `[tryboot]` only in tryboot mode; in file
    /// order, so a later line overrides an earlier one (the usual layout puts `[tryboot]`
    /// last, so its value overrides `[all]`).
    fn applying(&self, tryboot: bool) -> impl Iterator<Item = Entry> + '_ {
        self.entries
            .iter()
            .filter(move |(section, _)| *section == Section::All || tryboot)
            .map(|(_, entry)| *entry)
    }

    /// The `boot_partition` that applies (`None` if not set; `Some(0)` = default partition).
    pub fn boot_partition(&self, tryboot: bool) -> Option<u8> {
        self.applying(tryboot)
            .filter_map(|e| match e {
                Entry::BootPartition(n) => Some(n),
                Entry::TrybootAB(_) => None,
            })
            .last()
    }

    /// Whether `tryboot_a_b=1` applies: tryboot mode then reads `config.txt` of the selected
    /// partition instead of `tryboot.txt` (DOC-AUTOBOOT, DOC-FLOW).
    pub fn tryboot_a_b(&self, tryboot: bool) -> bool {
        self.applying(tryboot)
            .filter_map(|e| match e {
                Entry::TrybootAB(on) => Some(on),
                Entry::BootPartition(_) => None,
            })
            .last()
            .unwrap_or(false)
    }

    /// The normal k8r autoboot.txt: `[all]`, `tryboot_a_b=1` if asked, `boot_partition=N`.
    pub fn render_normal(boot_partition: u8, tryboot_a_b: bool) -> String {
        let mut out = String::from("[all]\n");
        if tryboot_a_b {
            out.push_str("tryboot_a_b=1\n");
        }
        out.push_str(&format!("boot_partition={boot_partition}\n"));
        out
    }

    /// Like [`Autoboot::render_normal`] plus a `[tryboot]` section selecting
    /// `tryboot_partition` in tryboot mode (pi-boot notes section 4 example).
    pub fn render_with_tryboot(
        boot_partition: u8,
        tryboot_partition: u8,
        tryboot_a_b: bool,
    ) -> String {
        let mut out = Autoboot::render_normal(boot_partition, tryboot_a_b);
        out.push_str(&format!("[tryboot]\nboot_partition={tryboot_partition}\n"));
        out
    }
}

fn parse_entry(text: &str) -> Result<Entry, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("`{text}` is not key=value, ignored"));
    };
    let (key, value) = (key.trim(), value.trim());
    let number = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse::<u8>().ok()
    } else {
        None
    };
    match key {
        "boot_partition" => match number {
            Some(n) if n <= MAX_PARTITION => Ok(Entry::BootPartition(n)),
            _ => Err(format!(
                "boot_partition value `{value}` is not a number 0..=63, ignored"
            )),
        },
        "tryboot_a_b" => match number {
            Some(n) => Ok(Entry::TrybootAB(n != 0)),
            None => Err(format!(
                "tryboot_a_b value `{value}` is not a number, ignored"
            )),
        },
        _ => Err(format!("unknown key `{key}`, ignored")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Autoboot {
        Autoboot::parse(bytes).expect("parses")
    }

    #[test]
    fn normal_and_tryboot_sections() {
        let ab = parse(b"[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n");
        assert_eq!(ab.boot_partition(false), Some(2));
        assert_eq!(ab.boot_partition(true), Some(3));
        assert!(ab.tryboot_a_b(true));
        assert!(ab.tryboot_a_b(false));
        assert!(ab.warnings().is_empty());
    }

    #[test]
    fn crlf_and_no_header() {
        let ab = parse(b"boot_partition=4\r\n[tryboot]\r\ntryboot_a_b=1\r\n");
        assert_eq!(ab.boot_partition(false), Some(4));
        assert_eq!(ab.boot_partition(true), Some(4));
        assert!(!ab.tryboot_a_b(false));
        assert!(ab.tryboot_a_b(true));
    }

    #[test]
    fn torn_and_garbage_lines_ignored() {
        let cases: &[(&[u8], Option<u8>)] = &[
            (b"[all]\nboot_parti", None),
            (b"[all]\nboot_partition=", None),
            (b"[all]\nboot_partition=2x", None),
            (b"[all]\nboot_partition=64", None),
            (b"[all]\nboot_partition=-1", None),
            (b"\xff\xfe\x00garbage\x80", None),
            (b"[all]\nboot_partition=2\nboot_partition=\xff", Some(2)),
            (b"[all]\nboot_partition=3\nboot_parti", Some(3)),
            (b"", None),
        ];
        for (bytes, expected) in cases {
            let ab = parse(bytes);
            assert_eq!(ab.boot_partition(false), *expected, "{bytes:?}");
        }
        let torn = parse(b"[all]\nboot_parti");
        assert_eq!(torn.warnings().len(), 1);
        assert_eq!(torn.warnings()[0].line, 2);
    }

    #[test]
    fn too_large_is_error() {
        let mut big = b"[all]\nboot_partition=2\n".to_vec();
        big.resize(513, b'#');
        assert_eq!(
            Autoboot::parse(&big),
            Err(AutobootError::TooLarge { len: 513 })
        );
        big.truncate(512);
        assert_eq!(parse(&big).boot_partition(false), Some(2));
    }

    #[test]
    fn none_and_unknown_sections_ignored() {
        let ab = parse(b"boot_partition=2\n[none]\nboot_partition=3\n[pi4]\nboot_partition=4\n[all]\ntryboot_a_b=1\n");
        assert_eq!(ab.boot_partition(false), Some(2));
        assert_eq!(ab.boot_partition(true), Some(2));
        assert!(ab.tryboot_a_b(false));
        assert_eq!(ab.warnings().len(), 1, "{:?}", ab.warnings());
    }

    #[test]
    fn later_line_wins_in_file_order() {
        let ab = parse(b"[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n");
        assert_eq!(ab.boot_partition(true), Some(2));
        assert_eq!(ab.boot_partition(false), Some(2));
    }

    #[test]
    fn render_round_trips() {
        let normal = Autoboot::render_normal(2, true);
        assert_eq!(normal, "[all]\ntryboot_a_b=1\nboot_partition=2\n");
        assert_eq!(
            Autoboot::render_normal(1, false),
            "[all]\nboot_partition=1\n"
        );
        let ab = parse(normal.as_bytes());
        assert_eq!(ab.boot_partition(false), Some(2));
        assert!(ab.tryboot_a_b(true));

        let with_try = Autoboot::render_with_tryboot(2, 3, true);
        assert!(with_try.len() < MAX_AUTOBOOT_BYTES);
        let ab = parse(with_try.as_bytes());
        assert_eq!(ab.boot_partition(false), Some(2));
        assert_eq!(ab.boot_partition(true), Some(3));
    }
}
