//! Fuzz target for what an image server answers a resumed download with (see
//! `docs/fuzzing.md`). Seeds: `fuzz/content_range/`.
#![allow(clippy::unwrap_used)]

use k8r_fuzzkit::proptest::prelude::*;
use k8r_fuzzkit::{corpus, hit, input, prop_assert, prop_assert_eq, run};

use crate::update::content_range::ContentRange;

const DICT: &[&str] = &[
    "bytes ",
    "Bytes ",
    "bytes=",
    " ",
    "-",
    "/",
    "*",
    "+",
    "0",
    "1",
    "9",
    "00",
    "18446744073709551615",
    "18446744073709551616",
    ",",
    "\t",
    "\u{e9}",
];

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The RFC 9110 grammar, written apart from the parser: `bytes FIRST-LAST/(LENGTH|*)` with
/// FIRST <= LAST < LENGTH.
fn reference(header: &str) -> Option<u64> {
    let h = header.trim();
    let unit = h.get(..6)?;
    if !unit.eq_ignore_ascii_case("bytes ") {
        return None;
    }
    let (range, length) = h[6..].split_once('/')?;
    let (first, last) = range.split_once('-')?;
    if !(digits(first) && digits(last) && (length == "*" || digits(length))) {
        return None;
    }
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    let length: Option<u64> = if length == "*" {
        None
    } else {
        Some(length.parse().ok()?)
    };
    (first <= last && length.is_none_or(|l| last < l)).then_some(first)
}

/// `Content-Range`: a range is read only from a header the grammar allows, and is the one the
/// header names; a download resumes only from its own length and for a file of its size.
#[test]
fn content_range() {
    let strategy = (
        input(corpus(env!("CARGO_MANIFEST_DIR"), "content_range"), DICT),
        prop_oneof![0..300u64, any::<u64>()],
        prop_oneof![0..300u64, any::<u64>()],
    );
    run("content_range", 512, strategy, |(data, have, size)| {
        let header = data.text();
        let got = ContentRange::parse(&header);
        prop_assert_eq!(got.map(|r| r.first), reference(&header), "{:?}", header);
        if let Some(r) = got {
            hit("accepted");
            prop_assert!(r.first <= r.last && r.complete.is_none_or(|c| r.last < c));
            if r.resumes(have, size) {
                hit("resumes");
                prop_assert!(r.first == have && r.complete.is_none_or(|c| c == size));
            }
        }
        Ok(())
    });
}
