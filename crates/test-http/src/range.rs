//! The `Range` request header, the single-range subset real download servers are asked for
//! (RFC 9110 §14.1.2): `bytes=N-`, `bytes=N-M` and the suffix form `bytes=-N`.

/// What a GET with a `Range` header gets for a body of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// `200 OK` with the whole body: no header, or one the server may ignore (RFC 9110 §14.2:
    /// an invalid or multi-range specifier, or another unit).
    Full,
    /// `206 Partial Content` with bytes `start..=end`.
    Partial {
        /// First byte sent.
        start: u64,
        /// Last byte sent (inclusive, as in `Content-Range`).
        end: u64,
    },
    /// `416 Range Not Satisfiable`: the range starts at or beyond the end of the body.
    Unsatisfiable,
}

/// Decides how to answer `header` (the `Range` value, if any) for a body of `len` bytes.
pub(crate) fn decide(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(header) = header else {
        return RangeAnswer::Full;
    };
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // `bytes=-N`: the last N bytes.
        let Some(n) = number(last) else {
            return RangeAnswer::Full;
        };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    let Some(start) = number(first) else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(end) if end >= start => Some(end),
            // `bytes=5-2` or garbage: invalid, so ignored.
            _ => return RangeAnswer::Full,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    let last_byte = len - 1;
    RangeAnswer::Partial {
        start,
        end: end.map_or(last_byte, |end| end.min(last_byte)),
    }
}

/// A decimal number of ASCII digits only (`u64::from_str` would also take `+5`).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end: u64) -> RangeAnswer {
        RangeAnswer::Partial { start, end }
    }

    #[test]
    fn open_closed_and_suffix_ranges() {
        assert_eq!(decide(Some("bytes=0-"), 10), partial(0, 9));
        assert_eq!(decide(Some("bytes=4-"), 10), partial(4, 9));
        assert_eq!(decide(Some("bytes=2-5"), 10), partial(2, 5));
        assert_eq!(decide(Some("bytes=9-9"), 10), partial(9, 9));
        // An end past the body is clamped to the last byte.
        assert_eq!(decide(Some("bytes=3-1000"), 10), partial(3, 9));
        assert_eq!(decide(Some("bytes=-3"), 10), partial(7, 9));
        assert_eq!(decide(Some("bytes=-30"), 10), partial(0, 9));
        assert_eq!(decide(Some(" Bytes = 1 - 2 "), 10), partial(1, 2));
    }

    #[test]
    fn starts_beyond_the_end_are_unsatisfiable() {
        assert_eq!(decide(Some("bytes=10-"), 10), RangeAnswer::Unsatisfiable);
        assert_eq!(decide(Some("bytes=11-20"), 10), RangeAnswer::Unsatisfiable);
        assert_eq!(decide(Some("bytes=0-"), 0), RangeAnswer::Unsatisfiable);
        assert_eq!(decide(Some("bytes=-0"), 10), RangeAnswer::Unsatisfiable);
        assert_eq!(decide(Some("bytes=-5"), 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn what_a_server_may_ignore_gets_the_whole_body() {
        for header in [
            "bytes=5-2",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=+1-",
            "bytes=a-",
            "bytes=1-b",
            "bytes=",
            "bytes",
            "",
        ] {
            assert_eq!(decide(Some(header), 10), RangeAnswer::Full, "{header:?}");
        }
        assert_eq!(decide(None, 10), RangeAnswer::Full);
    }
}
