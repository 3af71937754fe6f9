//! Test stand-in plumbing: dates from Unix seconds (RFC 3339 as Kubernetes prints them,
//! kubeadm's backup-directory stamp, klog's line prefix). UTC only; it does not know time
//! zones or leap seconds.

/// (year, month, day) of the days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

fn parts(unix: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let (y, mo, d) = civil(days);
    let s = unix % 86_400;
    (y, mo, d, s / 3600, s / 60 % 60, s % 60)
}

/// `2026-04-23T00:00:00Z`.
pub fn rfc3339(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = parts(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// kubeadm's backup stamp (`2006-01-02-15-04-05`).
pub fn stamp(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = parts(unix);
    format!("{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}")
}

/// klog's prefix for a line of `level` (`E0423 00:00:00.000000`).
pub fn klog(level: char, unix: u64) -> String {
    let (_, mo, d, h, mi, s) = parts(unix);
    format!("{level}{mo:02}{d:02} {h:02}:{mi:02}:{s:02}.000000")
}

/// kubectl's AGE column (`42s`, `5m`, `3h`, `2d`).
pub fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_776_902_400), "2026-04-23T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 86_399), "2000-02-29T23:59:59Z");
        assert_eq!(stamp(1_776_902_400 + 3723), "2026-04-23-01-02-03");
        assert_eq!(klog('E', 1_776_902_400), "E0423 00:00:00.000000");
        assert_eq!(age(59), "59s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 86_400), "3d");
    }
}
