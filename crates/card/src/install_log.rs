//! The bounded install log on partition 1 (`k8r/install.log`).
//!
//! Pure: [`append_bounded`] returns the new text and the caller writes it with
//! [`crate::replace::careful_replace`], so a power cut leaves either the old log or the new one.
//! The log is bounded because partition 1 also holds the image store and the firmware: when it
//! grows past the bound, whole oldest lines go and one marker line says so.

/// The first line of a log that lost its oldest entries.
pub const DROPPED_MARKER: &str = "... (older entries dropped)";

/// The bound of `k8r/install.log` (the partition also holds the image store and the firmware).
pub const MAX_BYTES: usize = 64 * 1024;

/// Appends `entry` to `existing` and keeps the result within `max_bytes`.
///
/// `entry` gets a trailing newline if it lacks one, and so does a torn `existing`. When the
/// result would exceed `max_bytes`, whole lines are dropped from the front and
/// [`DROPPED_MARKER`] is the first line (once, however often this runs). The newest entry is
/// always kept; only if it alone does not fit is it cut at its end.
#[must_use]
pub fn append_bounded(existing: &str, entry: &str, max_bytes: usize) -> String {
    let mut entry = entry.to_owned();
    if !entry.ends_with('\n') {
        entry.push('\n');
    }
    let mut had_marker = false;
    let mut body = existing;
    // Every marker line at the start is the one marker (a torn or glued log can hold more).
    while let Some(rest) = body
        .strip_prefix(DROPPED_MARKER)
        .filter(|rest| rest.is_empty() || rest.starts_with('\n'))
    {
        had_marker = true;
        body = rest.strip_prefix('\n').unwrap_or(rest);
    }
    let mut body = body.to_owned();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }

    let marker_len = DROPPED_MARKER.len() + 1;
    let unbounded = if had_marker { marker_len } else { 0 } + body.len() + entry.len();
    if unbounded <= max_bytes {
        let mut out = String::with_capacity(unbounded);
        if had_marker {
            out.push_str(DROPPED_MARKER);
            out.push('\n');
        }
        out.push_str(&body);
        out.push_str(&entry);
        return out;
    }

    // Something goes: the marker line is needed.
    if marker_len + entry.len() > max_bytes {
        // The entry alone is too big: keep the marker if there is room, and the entry's start.
        let mut out = String::new();
        let mut room = max_bytes;
        if max_bytes >= marker_len + 2 {
            out.push_str(DROPPED_MARKER);
            out.push('\n');
            room -= marker_len;
        }
        if room == 0 {
            return out;
        }
        let cut = floor_char_boundary(&entry, room - 1);
        out.push_str(&entry[..cut]);
        out.push('\n');
        return out;
    }
    let room = max_bytes - marker_len - entry.len();
    // Keep the longest suffix of body that starts at a line start and fits in `room`.
    // Searched as bytes: `start` may fall inside a multi-byte character, and the byte after
    // a `\n` is always a character boundary.
    let mut start = body.len() - room.min(body.len());
    if start > 0 && body.as_bytes()[start - 1] != b'\n' {
        start = body.as_bytes()[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| start + i + 1);
    }
    // The marker is written once, first: a kept part that starts with old marker lines (a
    // log edited by hand, or glued from two) loses them.
    while body[start..].starts_with(&format!("{DROPPED_MARKER}\n")) {
        start += marker_len;
    }
    let mut out = String::with_capacity(max_bytes);
    out.push_str(DROPPED_MARKER);
    out.push('\n');
    out.push_str(&body[start..]);
    out.push_str(&entry);
    out
}

/// One log line: `[  uptime] build <id>: <outcome>` with a trailing newline.
///
/// The Pi has no real-time clock, so the time is the kernel's uptime in seconds. Line breaks
/// in the arguments become spaces.
#[must_use]
pub fn format_entry(uptime_secs: f64, build_id: &str, outcome: &str) -> String {
    let uptime = if uptime_secs.is_finite() && uptime_secs >= 0.0 {
        uptime_secs
    } else {
        0.0
    };
    let build = one_line(build_id);
    let build = if build.is_empty() {
        "unknown".to_owned()
    } else {
        build
    };
    format!("[{uptime:10.3}] build {build}: {}\n", one_line(outcome))
}

fn one_line(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The largest char boundary of `s` at or below `index`.
fn floor_char_boundary(s: &str, index: usize) -> usize {
    let mut i = index.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `install_log` fuzz target: dropping old lines cut the log inside a
    /// multi-byte character and panicked.
    /// Found by the `install_log` fuzz target: marker lines inside an old log ended up right
    /// after the new marker.
    #[test]
    fn the_marker_is_not_stacked() {
        let existing = format!("x: y\n{DROPPED_MARKER}\n{DROPPED_MARKER}\nold line\n");
        let entry = "[     1.000] build b: installed and verified\n";
        // One byte short of everything: the cut lands in the first marker line.
        let max = existing.len() + entry.len() - 1;
        let out = append_bounded(&existing, entry, max);
        assert_eq!(out, format!("{DROPPED_MARKER}\nold line\n{entry}"));
        // The second case the target found: a torn second marker line, with room to spare.
        let torn = format!("{DROPPED_MARKER}\n{DROPPED_MARKER}");
        let out = append_bounded(&torn, entry, MAX_BYTES);
        assert_eq!(out, format!("{DROPPED_MARKER}\n{entry}"));
    }

    #[test]
    fn trimming_a_log_of_multibyte_text_does_not_panic() {
        let existing = format!("{}\n{}\n", "\u{e9}".repeat(100), "\u{20ac}".repeat(50));
        let entry = "[     1.000] build b: installed and verified\n";
        for max in 80..existing.len() + entry.len() {
            let out = append_bounded(&existing, entry, max);
            assert!(out.len() <= max, "{max}: {} bytes", out.len());
            assert!(out.ends_with(entry), "{max}: {out:?}");
        }
    }

    fn log_of(n: usize) -> String {
        (0..n)
            .map(|i| format_entry(f64::from(u32::try_from(i).unwrap_or(0)), "b1", "verified"))
            .collect()
    }

    #[test]
    fn appends_under_the_bound() {
        let log = append_bounded("", "one", 100);
        assert_eq!(log, "one\n");
        let log = append_bounded(&log, "two\n", 100);
        assert_eq!(log, "one\ntwo\n");
    }

    #[test]
    fn repairs_a_torn_last_line() {
        assert_eq!(append_bounded("one\ntw", "three", 100), "one\ntw\nthree\n");
    }

    #[test]
    fn bound_respected_newest_kept_marker_once() {
        let mut log = String::new();
        let mut dropped = false;
        for i in 0..200 {
            let entry = format_entry(f64::from(i), "20250301-abc", &format!("attempt {i} ok"));
            log = append_bounded(&log, &entry, 1000);
            assert!(log.len() <= 1000, "{} bytes", log.len());
            assert!(log.ends_with(&entry));
            let markers = log.matches(DROPPED_MARKER).count();
            assert!(markers <= 1 && markers >= usize::from(dropped), "{log}");
            dropped = markers == 1;
        }
        assert!(log.starts_with(&format!("{DROPPED_MARKER}\n")));
        // Only whole lines remain after the marker.
        for line in log.lines().skip(1) {
            assert!(line.starts_with('[') && line.ends_with(" ok"), "{line:?}");
        }
        assert!(log.contains("attempt 199 ok"));
        assert!(!log.contains("attempt 0 ok"));
    }

    #[test]
    fn drops_oldest_lines_first() {
        let line = |c: &str| format!("{}\n", c.repeat(19));
        let log = format!("{}{}{}", line("a"), line("b"), line("c"));
        let marker = DROPPED_MARKER.len() + 1;
        let out = append_bounded(&log, &line("d"), marker + 40);
        assert_eq!(out, format!("{DROPPED_MARKER}\n{}{}", line("c"), line("d")));
        // One byte less and "c" goes too.
        let out = append_bounded(&log, &line("d"), marker + 39);
        assert_eq!(out, format!("{DROPPED_MARKER}\n{}", line("d")));
    }

    #[test]
    fn an_entry_bigger_than_the_bound_is_cut() {
        let entry = "é".repeat(100);
        let out = append_bounded(&log_of(5), &entry, 60);
        assert!(out.len() <= 60);
        assert!(out.starts_with(DROPPED_MARKER));
        assert!(out.ends_with("é\n"));
        assert!(append_bounded("x\n", "yyyy", 3).len() <= 3);
        assert_eq!(append_bounded("x\n", "yyyy", 0), "");
    }

    #[test]
    fn format_entry_is_one_line() {
        let line = format_entry(12.5, "b\n1", "failed: a\nb");
        assert_eq!(line, "[    12.500] build b 1: failed: a b\n");
        assert_eq!(line.matches('\n').count(), 1);
        assert!(format_entry(f64::NAN, "", "x").contains("build unknown"));
    }
}
