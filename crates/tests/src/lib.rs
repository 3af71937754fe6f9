//! Shared helpers for the end-to-end scenarios in `tests/`: where the fixtures are, scratch
//! copies of cards, and card edits through the builder's image primitives.
//!
//! Suites are named by what they need: `host_*` run without a VM, `qemu_*` boot QEMU (TCG)
//! and write only to their own scratch cards.

use std::path::{Path, PathBuf};

use builder::image::fat::FatImage;
use builder::image::{card, ImageError};
use k8r_qemu::assets::{fixtures_dir, target_dir};

/// The Ubuntu 26.04-shaped fixture card.
pub const BASE_2604: &str = "base-arm64.img";
/// The Ubuntu 24.04-shaped fixture card.
pub const BASE_2404: &str = "base-arm64-2404.img";

/// Path of a fixture image; panics with the command to run if it is missing.
pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask fixtures` (or `cargo xtask test`, which builds it)",
        path.display()
    );
    path
}

/// A fresh scratch directory for one test under `target/test-scratch/<name>`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = target_dir().join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Copies a fixture card into the test's scratch directory (tests write to their cards).
pub fn scratch_card(test: &str, fixture_name: &str) -> PathBuf {
    let dir = scratch(test);
    let card = dir.join("card.img");
    std::fs::copy(fixture(fixture_name), &card).expect("copy fixture card");
    card
}

/// The FAT filesystem of partition `number` of `card`, for mtools edits in place.
pub fn fat_partition(card: &Path, number: u8) -> Result<FatImage, ImageError> {
    let part = card::partition(card, number)?;
    Ok(FatImage {
        path: card.to_path_buf(),
        offset: part.byte_offset(),
    })
}
