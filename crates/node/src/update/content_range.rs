//! The `Content-Range` header of a `206 Partial Content` answer (RFC 9110 section 14.4):
//! which bytes of which length the server sent, so a resumed download is appended to only
//! when the answer continues exactly the file that was being fetched.

/// `bytes FIRST-LAST/LENGTH`, `LENGTH` being `*` when the server does not know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// The first byte sent.
    pub first: u64,
    /// The last byte sent (inclusive).
    pub last: u64,
    /// The length of the whole file, when given.
    pub complete: Option<u64>,
}

fn number(text: &str) -> Option<u64> {
    // `u64::from_str` also takes a leading `+`, which the grammar does not.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl ContentRange {
    /// Parses the header value; `None` for anything else than a satisfied byte range with
    /// `FIRST <= LAST < LENGTH` (an unsatisfied `bytes */LENGTH` included).
    pub fn parse(header: &str) -> Option<ContentRange> {
        let header = header.trim();
        let (unit, rest) = header.split_once(' ')?;
        if !unit.eq_ignore_ascii_case("bytes") {
            return None;
        }
        let (range, complete) = rest.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        let (first, last) = (number(first)?, number(last)?);
        let complete = match complete {
            "*" => None,
            n => Some(number(n)?),
        };
        if first > last || complete.is_some_and(|c| last >= c) {
            return None;
        }
        Some(ContentRange {
            first,
            last,
            complete,
        })
    }

    /// Whether this answer continues a download of a `size`-byte file of which `have` bytes
    /// are already there: it starts at `have` and, when it says so, the file is still `size`
    /// bytes long (another length is another file, which must not be glued onto this one).
    pub fn resumes(&self, have: u64, size: u64) -> bool {
        self.first == have && self.complete.is_none_or(|c| c == size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_headers() {
        let r = |first, last, complete| {
            Some(ContentRange {
                first,
                last,
                complete,
            })
        };
        assert_eq!(
            ContentRange::parse("bytes 100-199/200"),
            r(100, 199, Some(200))
        );
        assert_eq!(ContentRange::parse(" Bytes 0-0/*"), r(0, 0, None));
        assert_eq!(ContentRange::parse("bytes */200"), None);
        assert_eq!(ContentRange::parse("bytes 100-199/150"), None);
        assert_eq!(ContentRange::parse("bytes 100-99/200"), None);
        assert_eq!(ContentRange::parse("items 1-2/3"), None);
    }

    /// Found by the `content_range` fuzz target: the old parser read only the first number,
    /// so a header without a range or length, or with a sign, counted as a resume.
    #[test]
    fn content_range_needs_the_whole_grammar() {
        for bad in [
            "bytes +1200",
            "bytes 1200",
            "bytes 1200-/3000",
            "bytes +1-2/3",
            "bytes 1-2",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_same_file_from_the_same_byte_resumes() {
        let range = ContentRange::parse("bytes 100-199/200").expect("valid");
        assert!(range.resumes(100, 200));
        assert!(!range.resumes(99, 200));
        assert!(
            !range.resumes(100, 300),
            "the file at the server changed size"
        );
        assert!(ContentRange::parse("bytes 100-150/*")
            .expect("valid")
            .resumes(100, 300));
    }
}
