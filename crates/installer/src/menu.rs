//! The recovery menu: a pure state machine and its rendering, no I/O.
//!
//! The caller prints [`Menu::render`] on the serial console (an 80x24 terminal), reads one
//! line, feeds it to [`Menu::on_input`] and acts on the [`Outcome`]. Refusals and invalid input
//! are remembered and shown on the next render, above the prompt.

/// Terminal width of the serial console.
pub const COLS: usize = 80;
/// Terminal height of the serial console.
pub const ROWS: usize = 24;

/// Lines the last error may take on the menu screen.
const ERROR_LINES: usize = 6;
/// Lines the last rollback may take.
const ROLLBACK_LINES: usize = 2;
/// Lines a refusal or invalid-input message may take.
const MESSAGE_LINES: usize = 2;

/// Why "Boot the working system" is refused when the last install did not verify.
pub const NOT_VERIFIED: &str = "the last install did not verify: reinstall first";
/// Why "Shell" is refused when the recovery image carries none.
pub const NO_SHELL: &str = "this recovery image has no shell";

/// What the menu knows about the card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MenuContext {
    /// The stored image's build id.
    pub build_id: Option<String>,
    /// The stored image's Kubernetes version.
    pub k8s_version: Option<String>,
    /// The last error as one line (the whole cause chain).
    pub last_error: Option<String>,
    /// Whether a shell exists in the initramfs.
    pub shell_available: bool,
    /// Whether the working partitions hold a verified install.
    pub working_verified: bool,
    /// Install attempts since the last verified install.
    pub attempts: u32,
    /// The trial record in one line (`k8r_card::trial`), when there is one.
    pub trial: Option<String>,
    /// The last rollback the install log records, with its reason.
    pub last_rollback: Option<String>,
}

/// What the operator chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 1: reinstall from the stored image now.
    Reinstall,
    /// 2: decode and digest the stored image, no writes.
    Verify,
    /// 3: show the install log.
    ShowLog,
    /// 4: run a shell.
    Shell,
    /// 5: flip autoboot to the working system and reboot.
    BootWorking,
    /// 6: reboot.
    Reboot,
    /// 7: power off.
    PowerOff,
}

/// The result of one line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Do this.
    Run(Action),
    /// A real choice that is not allowed now, with the reason.
    Refused(String),
    /// Not a choice, with a hint.
    Invalid(String),
    /// Nothing chosen (empty line, `help`): draw the menu again.
    Redraw,
}

/// One menu item.
#[derive(Debug, Clone, Copy)]
struct Item {
    number: u8,
    label: &'static str,
    action: Action,
    words: &'static [&'static str],
}

const ITEMS: [Item; 7] = [
    Item {
        number: 1,
        label: "Reinstall now",
        action: Action::Reinstall,
        words: &["reinstall", "install"],
    },
    Item {
        number: 2,
        label: "Verify the stored image (decode and digest, no writes)",
        action: Action::Verify,
        words: &["verify", "check"],
    },
    Item {
        number: 3,
        label: "Show the install log",
        action: Action::ShowLog,
        words: &["log", "show log"],
    },
    Item {
        number: 4,
        label: "Shell",
        action: Action::Shell,
        words: &["shell", "sh"],
    },
    Item {
        number: 5,
        label: "Boot the working system",
        action: Action::BootWorking,
        words: &["boot", "boot working"],
    },
    Item {
        number: 6,
        label: "Reboot",
        action: Action::Reboot,
        words: &["reboot", "restart"],
    },
    Item {
        number: 7,
        label: "Power off",
        action: Action::PowerOff,
        words: &["poweroff", "power off", "halt", "off"],
    },
];

/// The recovery menu.
#[derive(Debug, Clone)]
pub struct Menu {
    ctx: MenuContext,
    /// The last refusal or invalid-input message, shown above the prompt.
    message: Option<String>,
}

impl Menu {
    /// A menu for this card.
    #[must_use]
    pub fn new(ctx: MenuContext) -> Menu {
        Menu { ctx, message: None }
    }

    /// Why `action` is not allowed now, if it is not.
    fn refusal(&self, action: Action) -> Option<&'static str> {
        match action {
            Action::Shell if !self.ctx.shell_available => Some(NO_SHELL),
            Action::BootWorking if !self.ctx.working_verified => Some(NOT_VERIFIED),
            _ => None,
        }
    }

    /// The screen: header, attempts, last error, the items, a message, the prompt (last line,
    /// no newline after it). At most [`ROWS`] lines of at most [`COLS`] characters.
    #[must_use]
    pub fn render(&self) -> String {
        let mut lines = vec![truncate(
            &format!(
                "k8r recovery — build {} (Kubernetes {})",
                self.ctx.build_id.as_deref().unwrap_or("unknown"),
                self.ctx.k8s_version.as_deref().unwrap_or("unknown")
            ),
            COLS,
        )];
        let verified = if self.ctx.working_verified {
            "the working system verified"
        } else {
            "the working system did not verify"
        };
        lines.push(truncate(
            &format!("install attempts: {}; {verified}", self.ctx.attempts),
            COLS,
        ));
        if let Some(trial) = &self.ctx.trial {
            lines.push(truncate(&format!("trial: {trial}"), COLS));
        }
        if let Some(rollback) = &self.ctx.last_rollback {
            lines.extend(wrap_prefixed("last rollback: ", rollback, ROLLBACK_LINES));
        }
        if let Some(error) = self
            .ctx
            .last_error
            .as_deref()
            .filter(|e| !e.trim().is_empty())
        {
            lines.extend(wrap_prefixed("error: ", error, ERROR_LINES));
        }
        lines.push(String::new());
        for item in &ITEMS {
            // The item line carries the short form of the refusal so it fits on one row.
            let line = match self.refusal(item.action) {
                Some(NOT_VERIFIED) => format!(
                    "  {}  {} — refused: the last install did not verify",
                    item.number, item.label
                ),
                Some(why) => format!("  {}  {} — unavailable: {why}", item.number, item.label),
                None => format!("  {}  {}", item.number, item.label),
            };
            lines.push(truncate(&line, COLS));
        }
        lines.push(String::new());
        if let Some(message) = &self.message {
            lines.extend(wrap_prefixed("", message, MESSAGE_LINES));
        }
        lines.push("choose 1-7: ".to_owned());
        lines.join("\n")
    }

    /// Handles one line typed by the operator: a digit 1-7 or a word (`reinstall`, `verify`,
    /// `log`, `shell`, `boot`, `reboot`, `poweroff`, ...); whitespace and CR are ignored,
    /// case too. An empty line, `?`, `help` or `menu` redraws.
    pub fn on_input(&mut self, line: &str) -> Outcome {
        let input = line.trim().to_ascii_lowercase();
        let input = input.split_whitespace().collect::<Vec<_>>().join(" ");
        let outcome = if matches!(input.as_str(), "" | "?" | "help" | "menu") {
            Outcome::Redraw
        } else {
            match ITEMS
                .iter()
                .find(|item| input == item.number.to_string() || item.words.contains(&&*input))
            {
                Some(item) => match self.refusal(item.action) {
                    Some(why) => Outcome::Refused(why.to_owned()),
                    None => Outcome::Run(item.action),
                },
                None => Outcome::Invalid(format!(
                    "{:?} is not a choice: type a number from 1 to 7",
                    truncate(line.trim(), 24)
                )),
            }
        };
        self.message = match &outcome {
            Outcome::Refused(why) => Some(format!("refused: {why}")),
            Outcome::Invalid(why) => Some(why.clone()),
            Outcome::Run(_) | Outcome::Redraw => None,
        };
        outcome
    }
}

/// The countdown line, redrawn every second:
/// `k8r: installing build X (Kubernetes 1.31.2) in 5 s — press any key for the recovery menu`.
/// Shortened to fit [`COLS`] (the build id is cut last).
#[must_use]
pub fn countdown_text(secs_left: u32, build_id: Option<&str>, k8s_version: Option<&str>) -> String {
    let build = build_id.unwrap_or("unknown");
    let k8s = k8s_version
        .map(|v| format!(" (Kubernetes {v})"))
        .unwrap_or_default();
    let full = format!(
        "k8r: installing build {build}{k8s} in {secs_left} s — press any key for the recovery menu"
    );
    if full.chars().count() <= COLS {
        return full;
    }
    let suffix = format!("{k8s} in {secs_left} s — any key for menu");
    let prefix = "k8r: install ";
    let room = COLS.saturating_sub(prefix.len() + suffix.chars().count());
    truncate(&format!("{prefix}{}{suffix}", truncate(build, room)), COLS)
}

/// Splits `text` into screens of at most `rows - 1` lines (the last row is left for the
/// pager's prompt), each line cut to `cols` characters. Tabs become spaces and other control
/// characters `?`, so a log cannot move the cursor. Empty text gives no screens.
#[must_use]
pub fn page(text: &str, rows: usize, cols: usize) -> Vec<String> {
    let per_screen = rows.saturating_sub(1).max(1);
    let lines: Vec<String> = text.lines().map(|l| clean_line(l, cols.max(1))).collect();
    lines
        .chunks(per_screen)
        .map(|chunk| chunk.join("\n"))
        .collect()
}

/// Expands tabs, replaces control characters and cuts to `cols` characters.
fn clean_line(line: &str, cols: usize) -> String {
    let mut out = String::new();
    let mut width = 0;
    for c in line.chars() {
        if width >= cols {
            break;
        }
        match c {
            '\t' => {
                let next = (width / 8 + 1) * 8;
                while width < next.min(cols) {
                    out.push(' ');
                    width += 1;
                }
            }
            c if c.is_control() => {
                out.push('?');
                width += 1;
            }
            c => {
                out.push(c);
                width += 1;
            }
        }
    }
    out
}

/// `text` cut to `max` characters, with `…` marking a cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Word-wraps `text` (control characters become spaces) to [`COLS`] with `prefix` on the
/// first line and as much indent on the others, in at most `max_lines` lines; `…` marks a cut.
fn wrap_prefixed(prefix: &str, text: &str, max_lines: usize) -> Vec<String> {
    let indent = " ".repeat(prefix.chars().count());
    let width = COLS.saturating_sub(indent.len()).max(1);
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut rows: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for word in cleaned.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let gap = usize::from(current_len > 0);
            if current_len + gap + word.len() <= width {
                if gap == 1 {
                    current.push(' ');
                }
                current.extend(word.iter());
                current_len += gap + word.len();
                break;
            }
            if current_len > 0 {
                rows.push(std::mem::take(&mut current));
                current_len = 0;
                continue;
            }
            // A word longer than a line: hard break.
            let rest = word.split_off(width);
            rows.push(word.iter().collect());
            word = rest;
        }
    }
    if current_len > 0 {
        rows.push(current);
    }
    let cut = rows.len() > max_lines;
    rows.truncate(max_lines);
    if cut {
        if let Some(last) = rows.last_mut() {
            let kept: String = last.chars().take(width.saturating_sub(1)).collect();
            *last = format!("{kept}…");
        }
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| format!("{}{row}", if i == 0 { prefix } else { &indent }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MenuContext {
        MenuContext {
            build_id: Some("20250301-abc123".to_owned()),
            k8s_version: Some("1.31.2".to_owned()),
            last_error: None,
            shell_available: true,
            working_verified: true,
            attempts: 0,
            trial: None,
            last_rollback: None,
        }
    }

    fn assert_fits(screen: &str) {
        let lines: Vec<&str> = screen.lines().collect();
        assert!(lines.len() <= ROWS, "{} lines:\n{screen}", lines.len());
        for line in lines {
            assert!(line.chars().count() <= COLS, "too wide: {line:?}");
        }
    }

    #[test]
    fn every_item_by_digit_and_word() {
        let cases = [
            ("1", "reinstall", Action::Reinstall),
            ("2", "verify", Action::Verify),
            ("3", "log", Action::ShowLog),
            ("4", "shell", Action::Shell),
            ("5", "boot", Action::BootWorking),
            ("6", "reboot", Action::Reboot),
            ("7", "poweroff", Action::PowerOff),
        ];
        let mut menu = Menu::new(ctx());
        for (digit, word, action) in cases {
            assert_eq!(menu.on_input(digit), Outcome::Run(action), "{digit}");
            assert_eq!(menu.on_input(word), Outcome::Run(action), "{word}");
        }
    }

    #[test]
    fn trims_whitespace_cr_and_case() {
        let mut menu = Menu::new(ctx());
        assert_eq!(menu.on_input(" 1\r\n"), Outcome::Run(Action::Reinstall));
        assert_eq!(menu.on_input("\tVERIFY \r"), Outcome::Run(Action::Verify));
        assert_eq!(menu.on_input("power   off"), Outcome::Run(Action::PowerOff));
        assert_eq!(menu.on_input("Show Log"), Outcome::Run(Action::ShowLog));
    }

    #[test]
    fn empty_and_help_redraw() {
        let mut menu = Menu::new(ctx());
        for line in ["", "\r\n", "   ", "?", "help", "menu"] {
            assert_eq!(menu.on_input(line), Outcome::Redraw, "{line:?}");
        }
    }

    #[test]
    fn invalid_input_is_reported_and_shown() {
        let mut menu = Menu::new(ctx());
        for line in ["8", "0", "12", "x", "reinstall now please", "\u{1b}[A"] {
            match menu.on_input(line) {
                Outcome::Invalid(hint) => assert!(hint.contains("1 to 7"), "{hint}"),
                other => panic!("{line:?}: expected Invalid, got {other:?}"),
            }
        }
        let screen = menu.render();
        assert!(screen.contains("is not a choice"), "{screen}");
        assert!(!screen.contains('\u{1b}'), "escape echoed raw");
        assert_fits(&screen);
        // A valid choice clears the message.
        assert_eq!(menu.on_input("6"), Outcome::Run(Action::Reboot));
        assert!(!menu.render().contains("is not a choice"));
    }

    #[test]
    fn shell_disabled_when_not_available() {
        let mut menu = Menu::new(MenuContext {
            shell_available: false,
            ..ctx()
        });
        assert_eq!(menu.on_input("4"), Outcome::Refused(NO_SHELL.to_owned()));
        assert_eq!(
            menu.on_input("shell"),
            Outcome::Refused(NO_SHELL.to_owned())
        );
        let screen = menu.render();
        assert!(screen.contains("4  Shell — unavailable: this recovery image has no shell"));
        assert!(screen.contains("refused: this recovery image has no shell"));
        assert_fits(&screen);
    }

    #[test]
    fn boot_working_refused_with_reason_when_not_verified() {
        let mut menu = Menu::new(MenuContext {
            working_verified: false,
            attempts: 3,
            ..ctx()
        });
        let expected = Outcome::Refused("the last install did not verify: reinstall first".into());
        assert_eq!(menu.on_input("5"), expected);
        assert_eq!(menu.on_input("boot"), expected);
        let screen = menu.render();
        assert!(screen.contains(
            "\n  5  Boot the working system — refused: the last install did not verify\n"
        ));
        assert!(screen.contains("\nrefused: the last install did not verify: reinstall first\n"));
        assert!(screen.contains("install attempts: 3; the working system did not verify"));
        assert_fits(&screen);
        // Everything else still runs.
        assert_eq!(menu.on_input("1"), Outcome::Run(Action::Reinstall));
        assert_eq!(menu.on_input("7"), Outcome::Run(Action::PowerOff));
    }

    #[test]
    fn render_shows_header_items_and_prompt_last() {
        let screen = Menu::new(ctx()).render();
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(
            lines[0],
            "k8r recovery — build 20250301-abc123 (Kubernetes 1.31.2)"
        );
        for item in &ITEMS {
            assert!(
                lines.contains(&format!("  {}  {}", item.number, item.label).as_str()),
                "{screen}"
            );
        }
        assert!(screen.ends_with("\nchoose 1-7: "));
        assert!(!screen.contains("error:"));
        assert_fits(&screen);
        let unknown = Menu::new(MenuContext::default()).render();
        assert!(unknown.starts_with("k8r recovery — build unknown (Kubernetes unknown)"));
    }

    #[test]
    fn render_fits_with_long_build_id_and_500_char_error() {
        let error = format!(
            "install: partition 3: range 17 at 0x{:x}: {} digest mismatch: {}",
            1u64 << 34,
            "x".repeat(150),
            "the card may be failing ".repeat(14)
        );
        assert!(error.chars().count() >= 500);
        let mut menu = Menu::new(MenuContext {
            build_id: Some("b".repeat(200)),
            k8s_version: Some("1.31.2-very-long-suffix".repeat(5)),
            last_error: Some(format!("{error}\nsecond line")),
            shell_available: false,
            working_verified: false,
            attempts: u32::MAX,
            trial: Some(format!("build {} on trial, not committed", "t".repeat(100))),
            last_rollback: Some(format!("build b2: rollback: {}", "why ".repeat(60))),
        });
        let _ = menu.on_input(&"z".repeat(300));
        let screen = menu.render();
        assert_fits(&screen);
        assert!(screen.lines().next().is_some_and(|l| l.ends_with('…')));
        let error_lines: Vec<&str> = screen
            .lines()
            .skip_while(|l| !l.starts_with("error: "))
            .take_while(|l| l.starts_with("error: ") || l.starts_with("       "))
            .collect();
        assert_eq!(error_lines.len(), ERROR_LINES, "{screen}");
        assert!(error_lines[0].starts_with("error: install: partition 3: range 17"));
        assert!(error_lines[ERROR_LINES - 1].ends_with('…'));
        assert!(screen.ends_with("choose 1-7: "));
    }

    #[test]
    fn render_shows_the_trial_and_the_last_rollback() {
        let screen = Menu::new(MenuContext {
            trial: Some("build b1 on trial, not committed (rolled back from b2)".into()),
            last_rollback: Some(
                "build b2: rollback: build b2 failed its trial (panic); installing the previous build b1"
                    .into(),
            ),
            ..ctx()
        })
        .render();
        assert!(
            screen.contains("\ntrial: build b1 on trial, not committed (rolled back from b2)\n"),
            "{screen}"
        );
        assert!(
            screen.contains("\nlast rollback: build b2: rollback: build b2 failed its trial"),
            "{screen}"
        );
        assert!(screen.contains("(panic)"), "{screen}");
        assert_fits(&screen);
        assert!(!Menu::new(ctx()).render().contains("trial:"));
    }

    #[test]
    fn short_error_is_one_line() {
        let screen = Menu::new(MenuContext {
            last_error: Some("read back /p1/autoboot.txt: short".to_owned()),
            ..ctx()
        })
        .render();
        assert!(screen.contains("\nerror: read back /p1/autoboot.txt: short\n\n"));
    }

    #[test]
    fn countdown_line() {
        // The full form is 88 columns with any build id: the short form is used.
        assert_eq!(
            countdown_text(5, Some("20250301-abc123"), Some("1.31.2")),
            "k8r: install 20250301-abc123 (Kubernetes 1.31.2) in 5 s — any key for menu"
        );
        let short = countdown_text(3, Some("b1"), None);
        assert_eq!(
            short,
            "k8r: installing build b1 in 3 s — press any key for the recovery menu"
        );
        let long = countdown_text(10, Some(&"b".repeat(120)), Some("1.31.2"));
        assert!(long.chars().count() <= COLS, "{long}");
        assert!(
            long.ends_with("b… (Kubernetes 1.31.2) in 10 s — any key for menu"),
            "{long}"
        );
        assert!(countdown_text(1, None, None).contains("build unknown"));
    }

    #[test]
    fn pager_splits_and_truncates() {
        let text: String = (0..50)
            .map(|i| format!("line {i} {}\n", "w".repeat(i * 3)))
            .collect();
        let screens = page(&text, 24, 80);
        assert_eq!(screens.len(), 3);
        for screen in &screens {
            assert!(screen.lines().count() <= 23);
            assert!(screen.lines().all(|l| l.chars().count() <= 80));
        }
        assert!(screens[0].starts_with("line 0 \nline 1 www\n"));
        assert!(screens[2].ends_with(&"w".repeat(80 - 8)));
        assert!(page("", 24, 80).is_empty());
        assert_eq!(page("a\tb\u{1b}[2Jc\r\n", 24, 12), vec!["a       b?[2"]);
        assert_eq!(page("a\tb", 24, 5), vec!["a    "]);
        assert_eq!(page("a\nb\nc", 1, 80), vec!["a", "b", "c"]);
    }
}
