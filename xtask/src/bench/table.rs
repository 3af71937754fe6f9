//! The bench's result table (pure): medians of paired runs, peak memory, and the ratios that
//! are the result (times depend on the machine; ratios measured in one run do not).

use std::fmt::Write as _;
use std::time::Duration;

/// What a row is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something a user would run instead of k8r.
    Rival,
    /// k8r's own data path.
    K8r,
    /// A lower bound: one piece of the work alone.
    Floor,
    /// One piece of the work on one core, over the bytes named: a rate, not a comparison.
    PerCore(Over),
}

/// What a per-core row works through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The whole decompressed image (a decode).
    Image,
    /// The bytes of the used ranges (hashing).
    Used,
}

/// One method's runs.
#[derive(Debug, Clone)]
pub struct Row {
    /// What ran, as a user would name it.
    pub name: String,
    /// Its role in the comparison.
    pub kind: Kind,
    /// Wall time of each run.
    pub runs: Vec<Duration>,
    /// Peak resident memory of the method's processes, KiB (largest of the runs).
    pub rss_kib: u64,
}

impl Row {
    /// The median run (the lower middle one for an even count); zero without runs.
    pub fn median(&self) -> Duration {
        let mut sorted = self.runs.clone();
        sorted.sort_unstable();
        sorted
            .get(sorted.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default()
    }
}

/// `a / b` of two durations; `None` when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> Option<f64> {
    (!b.is_zero()).then(|| a.as_secs_f64() / b.as_secs_f64())
}

/// The table: one line per row with its median and peak memory, then for each k8r path how
/// fast it is against each rival (`rival time / k8r time`: above 1, k8r is faster) and its
/// time against each floor (`k8r time / floor time`: 1 is the floor itself). `k8r` and `k8r_read_back` name the
/// two k8r rows.
pub fn render(rows: &[Row], k8r: &str, k8r_read_back: &str) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
    let mut out = String::new();
    let runs = rows.iter().map(|r| r.runs.len()).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "| {:<width$} | median of {runs} | peak RSS |",
        "method"
    );
    let _ = writeln!(out, "| {} | ---: | ---: |", "-".repeat(width));
    for r in rows {
        let _ = writeln!(
            out,
            "| {:<width$} | {:>7.2} s | {:>4} MiB |",
            r.name,
            r.median().as_secs_f64(),
            r.rss_kib / 1024
        );
    }
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mut mine_rows = vec![k8r];
    if k8r_read_back != k8r {
        mine_rows.push(k8r_read_back);
    }
    for mine in mine_rows {
        let Some(me) = find(mine) else { continue };
        let _ = writeln!(out, "\n{mine}:");
        for r in rows.iter().filter(|r| r.kind == Kind::Rival) {
            if let Some(x) = ratio(r.median(), me.median()) {
                let _ = writeln!(out, "  {x:>5.2}x as fast as {}", r.name);
            }
        }
        for r in rows.iter().filter(|r| r.kind == Kind::Floor) {
            if let Some(x) = ratio(me.median(), r.median()) {
                let _ = writeln!(out, "  {x:>5.2}x the time of {}", r.name);
            }
        }
    }
    out
}

/// The per-core rates: for each [`Kind::PerCore`] row, the bytes it works through (`image`
/// or `used`) per second of its median, in MB/s (10^6 bytes, as card and CPU rates are
/// quoted).
pub fn rates(rows: &[Row], image: u64, used: u64) -> String {
    let mut out = String::new();
    for r in rows {
        let Kind::PerCore(over) = r.kind else {
            continue;
        };
        let bytes = match over {
            Over::Image => image,
            Over::Used => used,
        };
        let secs = r.median().as_secs_f64();
        if secs > 0.0 {
            let what = match over {
                Over::Image => "of decoded image",
                Over::Used => "of used bytes",
            };
            let _ = writeln!(
                out,
                "per core: {}: {:.0} MB/s {what}",
                r.name,
                bytes as f64 / secs / 1e6
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, kind: Kind, secs: &[u64]) -> Row {
        Row {
            name: name.into(),
            kind,
            runs: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
            rss_kib: 2048,
        }
    }

    #[test]
    fn medians_ignore_the_outlier_and_pick_the_lower_middle() {
        assert_eq!(
            row("a", Kind::Rival, &[9, 1, 3]).median(),
            Duration::from_secs(3)
        );
        assert_eq!(
            row("a", Kind::Rival, &[4, 2]).median(),
            Duration::from_secs(2)
        );
        assert_eq!(row("a", Kind::Rival, &[]).median(), Duration::ZERO);
    }

    #[test]
    fn ratios_say_how_much_faster_and_how_far_above_the_floor() {
        let rows = [
            row("seed", Kind::Rival, &[30, 28, 29]),
            row("k8r", Kind::K8r, &[10, 10, 11]),
            row("k8r+rb", Kind::K8r, &[12, 12, 12]),
            row("decode", Kind::Floor, &[8, 8, 8]),
        ];
        let t = render(&rows, "k8r", "k8r+rb");
        assert!(t.contains("|   29.00 s |    2 MiB |"), "{t}");
        assert!(t.contains("k8r:\n   2.90x as fast as seed"), "{t}");
        assert!(t.contains("   1.25x the time of decode"), "{t}");
        assert!(t.contains("k8r+rb:\n   2.42x as fast as seed"), "{t}");
        assert!(t.contains("   1.50x the time of decode"), "{t}");
        assert_eq!(ratio(Duration::from_secs(1), Duration::ZERO), None);
    }

    #[test]
    fn per_core_rows_are_rates_over_their_own_bytes_and_no_floor() {
        let rows = [
            row("k8r", Kind::K8r, &[10]),
            row("xz one core", Kind::PerCore(Over::Image), &[20]),
            row("sha one core", Kind::PerCore(Over::Used), &[4]),
        ];
        let r = rates(&rows, 2_000_000_000, 800_000_000);
        assert!(
            r.contains("per core: xz one core: 100 MB/s of decoded image"),
            "{r}"
        );
        assert!(
            r.contains("per core: sha one core: 200 MB/s of used bytes"),
            "{r}"
        );
        let t = render(&rows, "k8r", "k8r");
        assert!(!t.contains("the time of xz one core"), "{t}");
    }
}
