//! The install attempt record on partition 1 (`k8r/install-state`).
//!
//! Pure parse, render and decisions (style rule 3, "decide, then commit"): every method here
//! returns a new [`InstallState`] and does not touch disk; the caller writes [`InstallState::render`]
//! with [`crate::replace::careful_replace`].
//!
//! Text format, one `key=value` a line:
//!
//! ```text
//! attempts=2
//! last=failed
//! cause=partition 3: range 4 digest mismatch
//! build=20250301-abc123
//! ```
//!
//! The parser is tolerant: unknown keys and blank lines are ignored (newer installers may add
//! keys), and anything it cannot trust (no `attempts=`, a value it cannot read, bytes that are
//! not text) gives the empty state with a warning, because a torn record must never block
//! recovery.
//!
//! Step by step, what the next boot does if the power is cut (autoboot still points at the
//! recovery during the whole install): before `begin` is written, the same attempt again;
//! after `begin`, the record says `in-progress`, which [`InstallState::on_boot`] counts as a
//! failed attempt, so a card that keeps hanging or losing power stops at the menu after
//! `max_attempts` instead of looping forever.

use std::fmt;

/// Failed install attempts after which the installer stops at its menu instead of looping.
pub const MAX_ATTEMPTS: u32 = 3;

/// How the last install attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LastResult {
    /// No attempt recorded.
    #[default]
    None,
    /// An attempt began and has not ended; found at boot, it was interrupted.
    InProgress,
    /// An attempt failed, with its one-line cause.
    Failed(String),
    /// An attempt wrote and verified everything.
    Verified,
}

impl fmt::Display for LastResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LastResult::None => f.write_str("none"),
            LastResult::InProgress => f.write_str("interrupted (power cut or hang)"),
            LastResult::Failed(cause) => write!(f, "failed: {cause}"),
            LastResult::Verified => f.write_str("verified"),
        }
    }
}

/// The install attempt record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstallState {
    /// Attempts begun since the last verified install.
    pub attempts: u32,
    /// How the last attempt ended.
    pub last: LastResult,
    /// The build the last attempt installed.
    pub build_id: Option<String>,
}

/// What to do at boot, decided from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootDecision {
    /// Count down and install; `attempt` is 1-based.
    Install {
        /// The number of this attempt.
        attempt: u32,
    },
    /// Too many failed attempts: show the menu and wait for the operator.
    StopAtMenu {
        /// One line for the menu.
        reason: String,
    },
}

impl InstallState {
    /// Parses the record; never fails (see the module docs). Warnings are dropped; use
    /// [`InstallState::parse_with_warnings`] to log them.
    #[must_use]
    pub fn parse(text: &str) -> InstallState {
        InstallState::parse_with_warnings(text).0
    }

    /// Parses the record and says what it could not trust.
    #[must_use]
    pub fn parse_with_warnings(text: &str) -> (InstallState, Vec<String>) {
        if text.trim().is_empty() {
            return (InstallState::default(), Vec::new());
        }
        match parse_strict(text) {
            Ok(state) => (state, Vec::new()),
            Err(why) => (
                InstallState::default(),
                vec![format!(
                    "install state unreadable ({why}); starting from 0 attempts"
                )],
            ),
        }
    }

    /// Renders the record; [`InstallState::parse`] reads it back unchanged.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = format!("attempts={}\n", self.attempts);
        match &self.last {
            LastResult::None => out.push_str("last=none\n"),
            LastResult::InProgress => out.push_str("last=in-progress\n"),
            LastResult::Verified => out.push_str("last=verified\n"),
            LastResult::Failed(cause) => {
                out.push_str("last=failed\n");
                out.push_str(&format!("cause={}\n", one_line(cause)));
            }
        }
        if let Some(build) = &self.build_id {
            out.push_str(&format!("build={}\n", one_line(build)));
        }
        out
    }

    /// Decides what this boot does. Does not touch disk.
    ///
    /// `attempts` counts attempts begun, so an `in-progress` record (the last attempt was
    /// interrupted) already counts as a failed one. With `max_attempts` 0 the installer never
    /// installs on its own.
    #[must_use]
    pub fn on_boot(&self, max_attempts: u32) -> BootDecision {
        if self.attempts < max_attempts {
            return BootDecision::Install {
                attempt: self.attempts.saturating_add(1),
            };
        }
        let build = self
            .build_id
            .as_deref()
            .map(|b| format!(" of build {b}"))
            .unwrap_or_default();
        BootDecision::StopAtMenu {
            reason: format!(
                "{} install attempts{build} did not verify (last: {}); stopped to avoid a loop",
                self.attempts, self.last
            ),
        }
    }

    /// The record to write before the first byte of an install. Does not touch disk.
    #[must_use]
    pub fn begin(&self, build_id: &str) -> InstallState {
        InstallState {
            attempts: self.attempts.saturating_add(1),
            last: LastResult::InProgress,
            build_id: Some(build_id.to_owned()),
        }
    }

    /// The record to write once everything verified. Does not touch disk.
    #[must_use]
    pub fn succeed(&self) -> InstallState {
        InstallState {
            attempts: 0,
            last: LastResult::Verified,
            build_id: self.build_id.clone(),
        }
    }

    /// The record to write when an attempt fails with `cause`. Does not touch disk.
    #[must_use]
    pub fn fail(&self, cause: &str) -> InstallState {
        InstallState {
            attempts: self.attempts,
            last: LastResult::Failed(one_line(cause)),
            build_id: self.build_id.clone(),
        }
    }

    /// Whether the last install verified; the menu refuses "boot the working system" otherwise.
    #[must_use]
    pub fn last_install_verified(&self) -> bool {
        self.last == LastResult::Verified
    }

    /// The last attempt's failure as one line, for the menu; `None` unless it failed or was
    /// interrupted.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        match self.last {
            LastResult::Failed(_) | LastResult::InProgress => Some(self.last.to_string()),
            LastResult::None | LastResult::Verified => None,
        }
    }
}

/// Parses, rejecting anything it cannot trust.
fn parse_strict(text: &str) -> Result<InstallState, String> {
    let mut attempts = None;
    let mut last = None;
    let mut cause = None;
    let mut build_id = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.chars().any(char::is_control) {
            return Err(format!("line {} holds control bytes", index + 1));
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "attempts" => {
                attempts = Some(value.parse::<u32>().map_err(|_| {
                    format!("line {}: attempts={value:?} is not a number", index + 1)
                })?);
            }
            "last" => {
                last = Some(match value {
                    "none" => LastResult::None,
                    "in-progress" => LastResult::InProgress,
                    "failed" => LastResult::Failed(String::new()),
                    "verified" => LastResult::Verified,
                    other => return Err(format!("line {}: unknown last={other:?}", index + 1)),
                });
            }
            "cause" => cause = Some(value.to_owned()),
            "build" => build_id = (!value.is_empty()).then(|| value.to_owned()),
            _ => {}
        }
    }
    let attempts = attempts.ok_or("no attempts= line")?;
    let last = match last.unwrap_or_default() {
        LastResult::Failed(_) => {
            LastResult::Failed(cause.unwrap_or_else(|| "cause not recorded".to_owned()))
        }
        other => other,
    };
    Ok(InstallState {
        attempts,
        last,
        build_id,
    })
}

/// Folds line breaks and other control characters to spaces so a value stays on its line.
fn one_line(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = MAX_ATTEMPTS;

    #[test]
    fn empty_text_is_a_fresh_card_without_warning() {
        let (state, warnings) = InstallState::parse_with_warnings("");
        assert_eq!(state, InstallState::default());
        assert!(warnings.is_empty());
        assert_eq!(state.on_boot(MAX), BootDecision::Install { attempt: 1 });
        assert!(!state.last_install_verified());
    }

    #[test]
    fn parses_the_documented_format() {
        let state = InstallState::parse("attempts=2\nlast=failed\nbuild=b42\n");
        assert_eq!(state.attempts, 2);
        assert_eq!(
            state.last,
            LastResult::Failed("cause not recorded".to_owned())
        );
        assert_eq!(state.build_id.as_deref(), Some("b42"));
    }

    #[test]
    fn render_parse_round_trip() {
        let states = [
            InstallState::default(),
            InstallState::default().begin("b1"),
            InstallState::default().begin("b1").succeed(),
            InstallState::default()
                .begin("b1")
                .fail("partition 3: range 4: digest mismatch"),
        ];
        for state in states {
            let text = state.render();
            let (back, warnings) = InstallState::parse_with_warnings(&text);
            assert_eq!(back, state, "{text}");
            assert!(warnings.is_empty());
        }
    }

    #[test]
    fn tolerant_of_unknown_lines_crlf_and_spaces() {
        let state = InstallState::parse(
            "# k8r\r\nattempts = 1\r\nfuture_key=x\r\nnonsense line\r\nlast=verified\r\n",
        );
        assert_eq!(state.attempts, 1);
        assert!(state.last_install_verified());
        assert_eq!(state.build_id, None);
    }

    #[test]
    fn torn_text_is_empty_state_with_a_warning() {
        for torn in [
            "attem",
            "attempts=2\nlast=in-pro",
            "attempts=x2\n",
            "attempts=99999999999\n",
            "\0\0\0\0\0\0\0\0",
            "last=failed\n",
        ] {
            let (state, warnings) = InstallState::parse_with_warnings(torn);
            assert_eq!(state, InstallState::default(), "{torn:?}");
            assert_eq!(warnings.len(), 1, "{torn:?}");
            assert!(warnings[0].contains("0 attempts"), "{}", warnings[0]);
            assert_eq!(state.on_boot(MAX), BootDecision::Install { attempt: 1 });
        }
    }

    #[test]
    fn begin_counts_and_marks_in_progress() {
        let state = InstallState::default().begin("b7");
        assert_eq!(state.attempts, 1);
        assert_eq!(state.last, LastResult::InProgress);
        assert_eq!(state.build_id.as_deref(), Some("b7"));
        assert!(!state.last_install_verified());
    }

    #[test]
    fn succeed_resets_attempts() {
        let state = InstallState::default()
            .begin("b1")
            .fail("x")
            .begin("b1")
            .succeed();
        assert_eq!(state.attempts, 0);
        assert_eq!(state.last, LastResult::Verified);
        assert_eq!(state.build_id.as_deref(), Some("b1"));
        assert!(state.last_install_verified());
        assert_eq!(state.last_error(), None);
        assert_eq!(state.on_boot(MAX), BootDecision::Install { attempt: 1 });
    }

    #[test]
    fn fail_keeps_the_count_and_a_one_line_cause() {
        let state = InstallState::default().begin("b1").fail("a\nb\r\n");
        assert_eq!(state.attempts, 1);
        assert_eq!(state.last, LastResult::Failed("a b".to_owned()));
        assert_eq!(state.last_error().as_deref(), Some("failed: a b"));
        assert_eq!(state.render().lines().count(), 4);
    }

    #[test]
    fn three_interrupted_boots_stop_at_the_menu() {
        let mut state = InstallState::default();
        for expected in 1..=3 {
            assert_eq!(
                state.on_boot(MAX),
                BootDecision::Install { attempt: expected }
            );
            // begin is written, then the power is cut: the next boot parses what was written.
            state = InstallState::parse(&state.begin("b9").render());
        }
        assert_eq!(state.last, LastResult::InProgress);
        match state.on_boot(MAX) {
            BootDecision::StopAtMenu { reason } => {
                assert!(reason.contains("3 install attempts"), "{reason}");
                assert!(reason.contains("interrupted"), "{reason}");
                assert!(reason.contains("b9"), "{reason}");
            }
            other => panic!("expected StopAtMenu, got {other:?}"),
        }
    }

    #[test]
    fn failures_and_interruptions_count_alike() {
        let state = InstallState::default()
            .begin("b")
            .fail("digest mismatch")
            .begin("b")
            .begin("b")
            .fail("read back");
        assert_eq!(state.attempts, 3);
        assert!(matches!(
            state.on_boot(MAX),
            BootDecision::StopAtMenu { reason } if reason.contains("failed: read back")
        ));
        assert_eq!(
            state.begin("b").succeed().on_boot(MAX),
            BootDecision::Install { attempt: 1 }
        );
    }

    #[test]
    fn max_zero_never_installs_on_its_own() {
        assert!(matches!(
            InstallState::default().on_boot(0),
            BootDecision::StopAtMenu { .. }
        ));
    }

    #[test]
    fn attempts_saturate() {
        let state = InstallState {
            attempts: u32::MAX,
            ..InstallState::default()
        };
        assert_eq!(state.begin("b").attempts, u32::MAX);
    }
}
