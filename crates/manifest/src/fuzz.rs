//! Fuzz target for `manifest.toml`, which comes from the builder, a card or a web server (see
//! `docs/fuzzing.md`). Seeds: `fuzz/manifest/`.
#![allow(clippy::unwrap_used)]

use k8r_fuzzkit::{corpus, hit, input, prop_assert, prop_assert_eq, run};

use crate::{Manifest, MAX_RANGE};

const DICT: &[&str] = &[
    "\n",
    "=",
    "\"",
    "[root]\n",
    "[boot]\n",
    "[[root.ranges]]\n",
    "offset = ",
    "length = ",
    "sha256 = ",
    "size = ",
    "block_size = ",
    "format = ",
    "0",
    "1",
    "4096",
    "512",
    "65536",
    "67108864",
    "9223372036854775807",
    "18446744073709551615",
    "-1",
    "0x10",
    "1_000",
    "1e3",
    "\\u00e9",
    "\\",
    "'",
    "{",
    "}",
    ",",
    "[",
    "]",
    "#",
    "\u{e9}",
];

/// A manifest that parses is valid: its used ranges are sorted, disjoint, non-empty, at most
/// [`MAX_RANGE`], aligned, and inside the image (checked here with wide arithmetic); what it
/// renders parses back to the same manifest.
#[test]
fn manifest() {
    run(
        "manifest",
        192,
        input(corpus(env!("CARGO_MANIFEST_DIR"), "manifest"), DICT),
        |data| {
            let Ok(m) = Manifest::parse(&data.text()) else {
                return Ok(());
            };
            hit("valid");
            prop_assert!(m.validate().is_ok());
            let size = u128::from(m.root.size);
            let align = u128::from(m.root.block_size);
            let mut previous_end = 0u128;
            let mut used = 0u128;
            for r in &m.root.ranges {
                let (start, len) = (u128::from(r.offset), u128::from(r.length));
                prop_assert!(len > 0 && len <= u128::from(MAX_RANGE), "{r:?}");
                prop_assert!(start % align == 0 && len % align == 0, "{r:?}");
                prop_assert!(start >= previous_end, "{r:?} overlaps the range before");
                prop_assert!(start + len <= size, "{r:?} past the image's {size} bytes");
                previous_end = start + len;
                used += len;
            }
            prop_assert_eq!(u128::from(m.used_bytes()), used);
            let again = Manifest::parse(&m.render());
            prop_assert_eq!(again.as_ref().ok(), Some(&m), "{:?}", again);
            Ok(())
        },
    );
}
