//! UTC times as k8r writes them: RFC 3339 (`created` in the manifest, log lines) and the
//! compact `YYYYMMDDTHHMMSSZ` of build ids and snapshot names. The Pi has no real-time clock
//! and k8r's programs are static: no time zone database, no `chrono`; just the civil calendar.

/// `YYYYMMDDTHHMMSSZ` for a Unix time (days-from-civil, proleptic Gregorian).
pub fn utc_compact(epoch: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(epoch);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// RFC 3339 UTC for a Unix time.
pub fn utc_rfc3339(epoch: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(epoch);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `(year, month, day, hour, minute, second)` of a Unix time.
pub fn civil(epoch: u64) -> (i64, u64, u64, u64, u64, u64) {
    let days = i64::try_from(epoch / 86_400).unwrap_or(0);
    let secs = epoch % 86_400;
    // Howard Hinnant's civil_from_days.
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
        u64::try_from(m).unwrap_or(1),
        u64::try_from(d).unwrap_or(1),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
    )
}

/// The Unix time of an RFC 3339 UTC time as [`utc_rfc3339`] writes it (`2026-04-23T00:00:00Z`).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| s.get(from..to)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc_compact(0), "19700101T000000Z");
        assert_eq!(utc_rfc3339(1_776_902_400), "2026-04-23T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parse_inverts_format() {
        for t in [0, 951_782_400, 1_776_902_400, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&utc_rfc3339(t)), Some(t), "{t}");
        }
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-04-23 00:00:00Z",
            "2026-04-23T00:00:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
