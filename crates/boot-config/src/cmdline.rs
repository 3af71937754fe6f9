//! `cmdline.txt`: the kernel command line (DOC-CMDLINE, K-MOUNT).

use crate::mbr::partuuid;

/// A kernel command line as a list of tokens, order kept. Edits are in memory only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmdline {
    tokens: Vec<String>,
}

/// The key of a token: the text before the first `=` (outside quotes), or the whole token.
fn token_key(token: &str) -> &str {
    token.split_once('=').map_or(token, |(key, _)| key)
}

/// Split on whitespace, keeping double-quoted runs (`key="a b"`) in one token as the kernel
/// does.
///
/// A quote left open runs to the end of the line (so does the kernel's); the token gets its
/// closing quote here, so that a setting appended after it stays a token of its own instead of
/// joining the open quote when the line is written back.
fn tokenize(line: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if quoted {
        current.push('"');
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// The first line of a cmdline.txt without its line ending; the firmware ignores the rest
/// (DOC-CMDLINE).
pub fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or("");
    line.strip_suffix('\r').unwrap_or(line)
}

impl Cmdline {
    /// Parse cmdline.txt text: only the first line counts (DOC-CMDLINE); tokens split on
    /// whitespace.
    pub fn parse(text: &str) -> Cmdline {
        Cmdline {
            tokens: tokenize(first_line(text)),
        }
    }

    /// The tokens in order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.tokens.iter().position(|t| token_key(t) == key)
    }

    /// The value of the first `key=value` token; a bare flag such as `rootwait` gives `""`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let token = &self.tokens[self.position(key)?];
        Some(token.split_once('=').map_or("", |(_, value)| value))
    }

    /// Whether a token with this key (bare or `key=...`) is present.
    pub fn has(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Set `key=value`: replace the first occurrence in place and drop later duplicates, else
    /// append at the end (k8r's cgroup flags rely on landing at the end).
    pub fn set(&mut self, key: &str, value: &str) {
        let token = format!("{key}={value}");
        match self.position(key) {
            Some(first) => {
                self.tokens[first] = token;
                let mut index = 0;
                self.tokens.retain(|t| {
                    let keep = index <= first || token_key(t) != key;
                    index += 1;
                    keep
                });
            }
            None => self.tokens.push(token),
        }
    }

    /// Remove every token with this key. Returns how many were removed.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.tokens.len();
        self.tokens.retain(|t| token_key(t) != key);
        before - self.tokens.len()
    }

    /// Append a bare flag (e.g. `rootwait`) at the end unless the exact token is present.
    pub fn append_flag(&mut self, flag: &str) {
        if !self.tokens.iter().any(|t| t == flag) {
            self.tokens.push(flag.to_string());
        }
    }

    /// `root=PARTUUID=xxxxxxxx-NN` for an MBR disk id and 1-based partition (K-MOUNT).
    pub fn set_root_partuuid(&mut self, disk_id: u32, partition: u8) {
        self.set(
            "root",
            &format!("PARTUUID={}", partuuid(disk_id, partition)),
        );
    }

    /// One line with a trailing `\n`.
    pub fn render(&self) -> String {
        let mut out = self.tokens.join(" ");
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `cmdline` fuzz target: an open quote swallowed the `root=` k8r appends.
    #[test]
    fn unterminated_quote_does_not_swallow_added_settings() {
        let mut cmd = Cmdline::parse("\"console=tty1 root=LABEL=writable rootwait\n");
        assert_eq!(
            cmd.tokens(),
            ["\"console=tty1 root=LABEL=writable rootwait\""]
        );
        cmd.set_root_partuuid(0x2d6b_036c, 2);
        let back = Cmdline::parse(&cmd.render());
        assert_eq!(back.get("root"), Some("PARTUUID=2d6b036c-02"));
        assert_eq!(back.tokens(), cmd.tokens());
    }

    const UBUNTU: &str = "console=serial0,115200 multipath=off dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable rootfstype=ext4 rootwait fixrtc\n";

    #[test]
    fn parse_first_line_only_crlf() {
        let c = Cmdline::parse("a=1  b\tc=2\r\nsecond=line\n");
        assert_eq!(c.tokens(), ["a=1", "b", "c=2"]);
        assert!(!c.has("second"));
        assert_eq!(first_line("x y\r\nz"), "x y");
        assert_eq!(first_line(""), "");
        assert_eq!(Cmdline::parse("").render(), "\n");
    }

    #[test]
    fn get_and_has() {
        let c = Cmdline::parse(UBUNTU);
        assert_eq!(c.get("console"), Some("serial0,115200"));
        assert_eq!(c.get("root"), Some("LABEL=writable"));
        assert_eq!(c.get("rootwait"), Some(""));
        assert_eq!(c.get("quiet"), None);
        assert!(c.has("fixrtc"));
        assert!(!c.has("root=LABEL"));
    }

    #[test]
    fn set_replaces_first_drops_duplicates_or_appends() {
        let mut c = Cmdline::parse("a=1 console=ttyS0 b console=tty1 c\n");
        c.set("console", "ttyAMA0,115200");
        assert_eq!(c.render(), "a=1 console=ttyAMA0,115200 b c\n");
        c.set("cgroup_enable", "memory");
        c.set("cgroup_memory", "1");
        assert_eq!(
            c.render(),
            "a=1 console=ttyAMA0,115200 b c cgroup_enable=memory cgroup_memory=1\n"
        );
    }

    #[test]
    fn remove_and_flags() {
        let mut c = Cmdline::parse("quiet splash a=1 quiet\n");
        assert_eq!(c.remove("quiet"), 2);
        assert_eq!(c.remove("nothing"), 0);
        c.append_flag("rootwait");
        c.append_flag("rootwait");
        assert_eq!(c.render(), "splash a=1 rootwait\n");
    }

    #[test]
    fn root_partuuid() {
        let mut c = Cmdline::parse(UBUNTU);
        c.set_root_partuuid(0x2d6b_036c, 2);
        assert_eq!(c.get("root"), Some("PARTUUID=2d6b036c-02"));
        assert!(c
            .render()
            .contains(" root=PARTUUID=2d6b036c-02 rootfstype=ext4 "));
    }

    #[test]
    fn quoted_values_stay_one_token() {
        let c = Cmdline::parse("a=\"x y\" b\n");
        assert_eq!(c.tokens(), ["a=\"x y\"", "b"]);
        assert_eq!(c.get("a"), Some("\"x y\""));
    }
}
