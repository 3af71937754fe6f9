//! Fuzz targets for the card's own records on partition 1, which a power cut can tear and a
//! user can edit: the install record, the trial record, the store pointer and the install log
//! (see `docs/fuzzing.md`). Seeds: `fuzz/<target>/`.
#![allow(clippy::unwrap_used)]

use k8r_fuzzkit::proptest::prelude::*;
use k8r_fuzzkit::{corpus, hit, input, prop_assert, prop_assert_eq, run};

use crate::install_log::{append_bounded, format_entry, DROPPED_MARKER};
use crate::install_state::InstallState;
use crate::store::Pointer;
use crate::trial::{last_rollback, on_recovery_boot, Phase, RecoveryPlan, Trial};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

const RECORD_DICT: &[&str] = &[
    "\n",
    "\r\n",
    "\0",
    "=",
    "#",
    " ",
    "attempts=",
    "last=",
    "cause=",
    "build=",
    "kind=",
    "from=",
    "phase=",
    "failure=",
    "current=",
    "previous=",
    "new",
    "retry",
    "rollback",
    "install",
    "boot",
    "committed",
    "in-progress",
    "failed",
    "verified",
    "none",
    "0",
    "1",
    "4294967295",
    "4294967296",
    "-1",
    "b1",
    "20250301-abc123",
    "\u{1}",
    "\u{85}",
    "\u{e9}",
];

/// The install record, the trial record and the store pointer (one input, three parts split
/// at NUL bytes): each parsed record renders to text that parses back to it, and what recovery
/// decides from them installs the build the pointer it leaves names, as a trial being
/// installed, with records that round-trip.
#[test]
fn card_records() {
    let strategy = (input(corpus(DIR, "card_records"), RECORD_DICT), 0..5u32);
    run("card_records", 256, strategy, |(data, max_attempts)| {
        let text = data.text();
        let mut parts = text.split('\0');
        let (state_text, trial_text, pointer_text) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let (state, _) = InstallState::parse_with_warnings(state_text);
        prop_assert_eq!(InstallState::parse(&state.render()), state.clone());
        let trial = Trial::parse(trial_text).ok();
        if let Some(t) = &trial {
            hit("trial");
            prop_assert_eq!(Trial::parse(&t.render()), Ok(t.clone()));
            let _ = (t.to_string(), t.failure_cause());
        }
        let Ok(pointer) = Pointer::parse(pointer_text) else {
            return Ok(());
        };
        hit("pointer");
        prop_assert_eq!(Pointer::parse(&pointer.render()), Ok(pointer.clone()));
        match on_recovery_boot(&state, trial.as_ref(), &pointer, max_attempts) {
            RecoveryPlan::Install {
                attempt,
                trial: next,
                pointer: written,
                ..
            } => {
                hit("install");
                prop_assert!(attempt >= 1);
                let installs = written.as_ref().unwrap_or(&pointer);
                prop_assert_eq!(&next.build, &installs.current);
                prop_assert_eq!(next.phase, Phase::Install);
                prop_assert_eq!(Trial::parse(&next.render()), Ok(next.clone()));
                if let Some(w) = &written {
                    prop_assert_eq!(Pointer::parse(&w.render()), Ok(w.clone()));
                }
            }
            RecoveryPlan::StopAtMenu { reason, .. } => prop_assert!(!reason.is_empty()),
        }
        Ok(())
    });
}

/// The install log: whatever the old log holds (torn, not UTF-8, huge), an append stays within
/// the bound, ends with a newline, keeps the new entry whole when it fits and never stacks the
/// "dropped" marker.
#[test]
fn install_log() {
    let dict = [
        "\n",
        "\r\n",
        DROPPED_MARKER,
        "... (older entries dropped)\n",
        "] ",
        ": rollback: ",
        ": rollback failed: ",
        "[",
        "build ",
        "\u{e9}",
        "\u{20ac}",
        "\u{1F600}",
        "\0",
    ];
    let strategy = (
        input(corpus(DIR, "install_log"), &dict),
        prop_oneof![0..200usize, 0..4096usize, Just(64 * 1024)],
        any::<f64>(),
        any::<bool>(),
    );
    run(
        "install_log",
        256,
        strategy,
        |(data, max_bytes, uptime, split)| {
            let text = data.text();
            let (existing, outcome) = match text.char_indices().nth(text.chars().count() / 2) {
                Some((mid, _)) if split => text.split_at(mid),
                _ => (text.as_str(), "installed and verified"),
            };
            let _ = last_rollback(existing);
            let entry = format_entry(uptime, "20250301-abc123", outcome);
            prop_assert!(
                entry.ends_with('\n') && entry.matches('\n').count() == 1,
                "{entry:?}"
            );
            let out = append_bounded(existing, &entry, max_bytes);
            prop_assert!(
                out.len() <= max_bytes,
                "{} bytes over a bound of {max_bytes}",
                out.len()
            );
            prop_assert!(out.is_empty() || out.ends_with('\n'));
            if DROPPED_MARKER.len() + 1 + entry.len() <= max_bytes {
                hit("kept");
                prop_assert!(out.ends_with(&entry));
            }
            let twice = format!("{DROPPED_MARKER}\n{DROPPED_MARKER}\n");
            prop_assert!(!out.starts_with(&twice) || existing.starts_with(&twice));
            Ok(())
        },
    );
}

/// The zstd decoder (`stream::zstd_reader` over `stream::zstd_frames`), which reads
/// `image.img.zst` from the card or a download: on raw bytes (mutated seeds) it ends with data
/// or an error, never a panic, a hang or an allocation beyond one frame's limit; on a stream
/// of real frames made from the input it gives the input back, and with one byte flipped it
/// either fails or still gives the input back exactly (each frame's checksum).
#[test]
fn zstd_stream() {
    use std::io::Read;

    use crate::stream::zstd_reader::ZstdReader;
    use crate::testkit::compress_zstd_frames;

    let dict: [&[u8]; 6] = [
        &[0x28, 0xb5, 0x2f, 0xfd],
        &[0x50, 0x2a, 0x4d, 0x18],
        &[0x00, 0x00, 0x00],
        &[0x01, 0x00, 0x00],
        &[0xff, 0xff, 0xff, 0xff],
        &[0xe0],
    ];
    let strategy = (
        input(corpus(DIR, "zstd_stream"), &dict),
        any::<bool>(),
        1..5000usize,
        k8r_fuzzkit::proptest::option::of((any::<usize>(), 1..=255u8)),
        1..4u32,
    );
    run(
        "zstd_stream",
        128,
        strategy,
        |(data, raw, frame, flip, threads)| {
            let decode = |stream: &[u8]| {
                let mut out = Vec::new();
                ZstdReader::new(stream, threads, 1 << 20)
                    .and_then(|mut r| r.read_to_end(&mut out))
                    .map(|_| out)
            };
            if raw {
                if decode(&data).is_ok() {
                    hit("raw decoded");
                }
                return Ok(());
            }
            let mut stream = compress_zstd_frames(&data, frame);
            let flipped = flip.filter(|_| !stream.is_empty()).map(|(at, byte)| {
                let i = at % stream.len();
                stream[i] ^= byte;
            });
            match decode(&stream) {
                Ok(out) => {
                    prop_assert!(out == data[..], "decoded bytes differ (flip {flip:?})");
                    hit(if flipped.is_some() {
                        "flip harmless"
                    } else {
                        "frames decoded"
                    });
                }
                Err(e) => {
                    prop_assert!(flipped.is_some(), "an intact stream failed: {e}");
                    hit("flip refused");
                }
            }
            Ok(())
        },
    );
}
