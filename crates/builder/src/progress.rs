//! Progress of a long step: a bar on a terminal, a line per quarter otherwise (a CI log or a
//! pipe gets a few lines, not a redraw per megabyte).

use std::cell::Cell;
use std::io::IsTerminal as _;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Percent steps at which a line is logged when stderr is not a terminal.
const LINE_EVERY_PERCENT: u64 = 25;

/// Progress over `total` bytes of one step.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: u64,
    bar: Option<ProgressBar>,
    /// The last percentage logged (non-terminal output).
    logged: Cell<u64>,
}

impl Progress {
    /// Progress of `label` over `total` bytes: a bar when stderr is a terminal.
    pub fn bytes(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:>14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_owned());
            bar
        });
        Self {
            label: label.to_owned(),
            total,
            bar,
            logged: Cell::new(0),
        }
    }

    /// `done` of the total bytes are through.
    pub fn set(&self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => {
                if let Some(pct) = milestone(done, self.total, self.logged.get()) {
                    self.logged.set(pct);
                    log::info!(
                        "{}: {pct}% ({} of {})",
                        self.label,
                        HumanBytes(done),
                        HumanBytes(self.total)
                    );
                }
            }
        }
    }

    /// Ends the bar (the step's own log line says it is done).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The next multiple of [`LINE_EVERY_PERCENT`] reached by `done` of `total` beyond the one
/// `logged` last, below 100 % (the step's end is said by the step itself).
fn milestone(done: u64, total: u64, logged: u64) -> Option<u64> {
    if total == 0 {
        return None;
    }
    let pct = u64::try_from(u128::from(done) * 100 / u128::from(total)).unwrap_or(100);
    let reached = pct / LINE_EVERY_PERCENT * LINE_EVERY_PERCENT;
    (reached > logged && reached < 100).then_some(reached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_per_quarter_below_the_end() {
        let total = 1000;
        let mut logged = 0;
        let mut lines = Vec::new();
        for done in (0..=total).step_by(10) {
            if let Some(p) = milestone(done, total, logged) {
                logged = p;
                lines.push(p);
            }
        }
        assert_eq!(lines, [25, 50, 75]);
        assert_eq!(milestone(5, 0, 0), None, "nothing to measure");
        assert_eq!(
            milestone(u64::MAX, u64::MAX, 0),
            None,
            "100 % is the step's own line"
        );
    }
}
