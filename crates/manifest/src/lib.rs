//! The k8r image manifest: `manifest.toml`, written by the builder next to the upgrade
//! artefacts (`image.img.xz`, `boot.tar.xz`) and read by the recovery installer, which
//! validates it completely before it writes anything to the card.
//!
//! ```toml
//! format = 1
//! build_id = "20261124T140000Z-1a2b3c4d"
//! arch = "arm64"
//! kubernetes_version = "1.31.2"
//! created = "2026-11-24T14:00:00Z"
//! base_image = "ubuntu-26.04-preinstalled-server-arm64+raspi.img"
//! base_shape = "ubuntu-26.04"
//!
//! [root]                # image.img.xz → partition 3 (ext4)
//! file = "image.img.xz"
//! # compression = "zstd" # absent: xz; zstd needs format = 2 (file image.img.zst);
//! #                      # the boot archive is always xz
//! compressed_size = 123
//! compressed_sha256 = "<64 lowercase hex>"
//! size = 456            # uncompressed bytes (the partition image)
//! sha256 = "<64 lowercase hex>"
//! block_size = 4096
//!
//! [[root.ranges]]       # used byte ranges: sorted, non-overlapping, each <= 64 MiB
//! offset = 0
//! length = 1048576
//! sha256 = "<64 lowercase hex>"
//!
//! [boot]                # boot.tar.xz → partition 2 (FAT)
//! file = "boot.tar.xz"
//! compressed_size = 1
//! compressed_sha256 = "<64 lowercase hex>"
//! size = 2
//! sha256 = "<64 lowercase hex>"
//! ```
//!
//! Compatibility: within one `format` version, unknown keys are accepted and ignored, so a
//! newer builder may add informational keys without breaking older installers. Anything an
//! older installer must not ignore needs a new `format` number; an installer refuses a
//! manifest whose `format` is newer than its own [`FORMAT`] before looking at anything else.
//!
//! This crate does no I/O: [`Manifest::parse`] takes the text, [`Manifest::render`] returns it.

pub mod signature;
pub mod time;

use std::fmt::Write as _;

use serde::Deserialize;

/// The manifest's file name, next to the artefacts it describes.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// The largest `manifest.toml` any reader accepts (a real one is a few KiB): a bigger file is
/// not a manifest, and no reader takes it into memory whole.
pub const MANIFEST_MAX: usize = 1 << 20;

/// The newest manifest format this crate reads and writes. Format 1 is the seed-compatible
/// xz build; format 2 adds `compression = "zstd"` to `[root]`. An xz build is still written as
/// format 1 ([`Compression::format`]), so older cards take it.
pub const FORMAT: u32 = 2;

/// How the root image is compressed: the `compression` key of `[root]`. The boot archive is
/// always xz: a few tens of MB of mostly compressed files (kernel, initramfs) that decode in
/// about a second on a Pi, not where an install spends its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Multi-block xz (`.xz`): the default and the only one format 1 knows.
    #[default]
    Xz,
    /// Independent zstd frames (`.zst`), each with its content size: format 2.
    Zstd,
}

impl Compression {
    /// The name in the manifest and in `COMPRESSION=` (`xz`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// The root image artefact's file name under this compression (`image.img.xz`, the
    /// seed's, or `image.img.zst`).
    pub const fn root_file(self) -> &'static str {
        match self {
            Compression::Xz => "image.img.xz",
            Compression::Zstd => "image.img.zst",
        }
    }

    /// The oldest manifest format that can name this compression: the one k8r-builder writes.
    pub fn format(self) -> u32 {
        match self {
            Compression::Xz => 1,
            Compression::Zstd => 2,
        }
    }

    fn is_default(self) -> bool {
        self == Compression::Xz
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The largest used range: the installer hashes each range on its own, in memory.
pub const MAX_RANGE: u64 = 64 * 1024 * 1024;

/// Ranges (and the image size) must at least be multiples of a disk sector.
pub const SECTOR: u64 = 512;

/// Smallest and largest accepted `root.block_size` (ext4's limits).
pub const BLOCK_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1024..=65536;

/// The architectures an image can be built for.
pub const ARCHES: [&str; 2] = ["arm64", "amd64"];

/// The `arch` a build must name to run on the machine this program was compiled for (`None`
/// on an architecture no image is built for).
pub const NATIVE_ARCH: Option<&str> = if cfg!(target_arch = "aarch64") {
    Some("arm64")
} else if cfg!(target_arch = "x86_64") {
    Some("amd64")
} else {
    None
};

/// A parsed and validated `manifest.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    /// The manifest format, [`FORMAT`].
    pub format: u32,
    /// Identifies the build: `[A-Za-z0-9._-]{1,64}`.
    pub build_id: String,
    /// `arm64` or `amd64`.
    pub arch: String,
    /// The Kubernetes version in the image, `X.Y.Z` (no leading `v`).
    pub kubernetes_version: String,
    /// When the image was built, `YYYY-MM-DDTHH:MM:SSZ` (from `SOURCE_DATE_EPOCH` in
    /// reproducible builds).
    pub created: String,
    /// The vendor image the build started from (informational).
    pub base_image: String,
    /// The base image's shape (informational).
    pub base_shape: String,
    /// The root filesystem image (`image.img.xz`, written to partition 3).
    pub root: RootImage,
    /// The boot partition's content (`boot.tar.xz`, unpacked onto partition 2).
    pub boot: Artifact,
}

/// One compressed artefact next to the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Artifact {
    /// Its file name next to the manifest: a plain name, no directories.
    pub file: String,
    /// Size of the compressed file in bytes.
    pub compressed_size: u64,
    /// SHA-256 of the compressed file, lowercase hex.
    pub compressed_sha256: String,
    /// Size of the uncompressed content in bytes.
    pub size: u64,
    /// SHA-256 of all uncompressed bytes, lowercase hex.
    pub sha256: String,
}

/// The root filesystem image: an [`Artifact`] plus the byte ranges its ext4 uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RootImage {
    /// Its file name next to the manifest: a plain name, no directories.
    pub file: String,
    /// How the file is compressed (absent in the manifest: xz).
    #[serde(default)]
    pub compression: Compression,
    /// Size of the compressed file in bytes.
    pub compressed_size: u64,
    /// SHA-256 of the compressed file, lowercase hex.
    pub compressed_sha256: String,
    /// Size of the uncompressed partition image in bytes.
    pub size: u64,
    /// SHA-256 of all uncompressed bytes, lowercase hex.
    pub sha256: String,
    /// The ext4 block size; every range is aligned to it.
    pub block_size: u32,
    /// The used byte ranges: sorted, non-overlapping, each at most [`MAX_RANGE`]. A manifest
    /// without any is read as an empty list and refused by validation.
    #[serde(default)]
    pub ranges: Vec<Range>,
}

/// One used byte range of the root image with the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Range {
    /// Byte offset into the uncompressed image.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub sha256: String,
}

impl Range {
    /// The first byte after the range (saturating; validation rejects overflow).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }
}

impl RootImage {
    /// The artefact part of the root image.
    pub fn artifact(&self) -> Artifact {
        Artifact {
            file: self.file.clone(),
            compressed_size: self.compressed_size,
            compressed_sha256: self.compressed_sha256.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
        }
    }
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not valid TOML, or a key has the wrong type or is missing.
    #[error("{MANIFEST_FILE}:{line}:{column}: {message}")]
    Syntax {
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The manifest was written for a newer installer and node agent than this one.
    #[error(
        "format = {found}: this card's k8r reads formats up to {FORMAT}; its recovery installer and \
         node agent are older than the image: reflash the card with the new bootable_image.img, or \
         build the image with the builder that made this card"
    )]
    NewerFormat {
        /// The manifest's format.
        found: i64,
    },
    /// The format number is not one any installer knows.
    #[error("format = {found}: not a valid manifest format (expected 1 to {FORMAT})")]
    BadFormat {
        /// The manifest's format.
        found: i64,
    },
    /// A key's value is not acceptable.
    #[error("{field} = {value:?}: expected {expected}")]
    BadValue {
        /// The key, e.g. `root.sha256`.
        field: String,
        /// Its value.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The root image's compression needs a newer format than the manifest says.
    #[error(
        "root.compression = \"{compression}\" needs format = {needed}, the manifest says \
         format = {found} (older cards would misread it: rebuild it with k8r-builder)"
    )]
    FormatTooOld {
        /// The compression.
        compression: Compression,
        /// The format it needs.
        needed: u32,
        /// The manifest's format.
        found: u32,
    },
    /// `root.ranges` is empty.
    #[error("root.ranges: no used ranges (an ext4 image always uses its superblock)")]
    NoRanges,
    /// A range has length zero.
    #[error("root.ranges[{index}]: length 0 (ranges must not be empty)")]
    EmptyRange {
        /// Index in `root.ranges`.
        index: usize,
    },
    /// A range is longer than [`MAX_RANGE`].
    #[error("root.ranges[{index}]: length {length} exceeds the maximum of {MAX_RANGE} bytes")]
    RangeTooLong {
        /// Index in `root.ranges`.
        index: usize,
        /// Its length.
        length: u64,
    },
    /// A range's offset or length is not a multiple of the block size.
    #[error(
        "root.ranges[{index}]: offset {offset}, length {length}: not multiples of block_size {block_size}"
    )]
    MisalignedRange {
        /// Index in `root.ranges`.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
        /// `root.block_size`.
        block_size: u32,
    },
    /// A range starts before the previous one ends (or the list is not sorted).
    #[error("root.ranges[{index}]: offset {offset} overlaps the previous range ending at {previous_end}")]
    OverlappingRange {
        /// Index in `root.ranges`.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Where the previous range ends.
        previous_end: u64,
    },
    /// A range ends after the image.
    #[error("root.ranges[{index}]: ends at {end}, beyond root.size {size}")]
    RangeBeyondImage {
        /// Index in `root.ranges`.
        index: usize,
        /// Where the range ends (`u64::MAX` on overflow).
        end: u64,
        /// `root.size`.
        size: u64,
    },
}

/// Only the format number, read before anything else so that a newer manifest is refused
/// with a clear message even when its other keys no longer fit this crate's types.
#[derive(Deserialize)]
struct FormatOnly {
    format: Option<i64>,
}

impl Manifest {
    /// Parses and validates `text`.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let head: FormatOnly = toml::from_str(text).map_err(|e| syntax(text, &e))?;
        if let Some(found) = head.format {
            check_format(found)?;
        }
        let manifest: Manifest = toml::from_str(text).map_err(|e| syntax(text, &e))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every rule (see the crate documentation); the first violation is returned.
    pub fn validate(&self) -> Result<(), ManifestError> {
        check_format(i64::from(self.format))?;
        check(
            "build_id",
            &self.build_id,
            "1 to 64 characters from [A-Za-z0-9._-]",
            is_build_id,
        )?;
        check("arch", &self.arch, "arm64 or amd64", |s| {
            ARCHES.contains(&s)
        })?;
        check(
            "kubernetes_version",
            &self.kubernetes_version,
            "a version X.Y.Z (digits, no leading v)",
            is_version,
        )?;
        check(
            "created",
            &self.created,
            "a UTC time YYYY-MM-DDTHH:MM:SSZ",
            is_utc_time,
        )?;
        check_artifact("root", &self.root.artifact())?;
        check_artifact("boot", &self.boot)?;
        let compression = self.root.compression;
        if compression.format() > self.format {
            return Err(ManifestError::FormatTooOld {
                compression,
                needed: compression.format(),
                found: self.format,
            });
        }
        self.root.validate_ranges()
    }

    /// Renders the manifest as TOML. Deterministic: the same manifest gives the same bytes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# k8r image manifest: written by k8r-builder, verified by the installer.\n");
        line(&mut out, "format", &self.format.to_string());
        line(&mut out, "build_id", &quote(&self.build_id));
        line(&mut out, "arch", &quote(&self.arch));
        line(
            &mut out,
            "kubernetes_version",
            &quote(&self.kubernetes_version),
        );
        line(&mut out, "created", &quote(&self.created));
        line(&mut out, "base_image", &quote(&self.base_image));
        line(&mut out, "base_shape", &quote(&self.base_shape));
        out.push_str("\n[root]\n");
        render_artifact(&mut out, &self.root.artifact());
        // Absent means xz: an xz build renders exactly as format 1 always did.
        if !self.root.compression.is_default() {
            line(
                &mut out,
                "compression",
                &quote(self.root.compression.name()),
            );
        }
        line(&mut out, "block_size", &self.root.block_size.to_string());
        for range in &self.root.ranges {
            out.push_str("\n[[root.ranges]]\n");
            line(&mut out, "offset", &range.offset.to_string());
            line(&mut out, "length", &range.length.to_string());
            line(&mut out, "sha256", &quote(&range.sha256));
        }
        out.push_str("\n[boot]\n");
        render_artifact(&mut out, &self.boot);
        out
    }

    /// The bytes the installer writes for the root image: the sum of the range lengths.
    pub fn used_bytes(&self) -> u64 {
        self.root
            .ranges
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.length))
    }
}

impl RootImage {
    fn validate_ranges(&self) -> Result<(), ManifestError> {
        let block_size = self.block_size;
        if !BLOCK_SIZE_RANGE.contains(&block_size) || !block_size.is_power_of_two() {
            return Err(bad(
                "root.block_size",
                &block_size.to_string(),
                "a power of two from 1024 to 65536",
            ));
        }
        if !self.size.is_multiple_of(SECTOR) {
            return Err(bad(
                "root.size",
                &self.size.to_string(),
                "a multiple of 512 (a partition image)",
            ));
        }
        if self.ranges.is_empty() {
            return Err(ManifestError::NoRanges);
        }
        let align = u64::from(block_size);
        let mut previous_end = 0u64;
        for (index, range) in self.ranges.iter().enumerate() {
            check(
                &format!("root.ranges[{index}].sha256"),
                &range.sha256,
                "64 lowercase hex digits",
                is_sha256,
            )?;
            if range.length == 0 {
                return Err(ManifestError::EmptyRange { index });
            }
            if range.length > MAX_RANGE {
                return Err(ManifestError::RangeTooLong {
                    index,
                    length: range.length,
                });
            }
            if !range.offset.is_multiple_of(align) || !range.length.is_multiple_of(align) {
                return Err(ManifestError::MisalignedRange {
                    index,
                    offset: range.offset,
                    length: range.length,
                    block_size,
                });
            }
            if index > 0 && range.offset < previous_end {
                return Err(ManifestError::OverlappingRange {
                    index,
                    offset: range.offset,
                    previous_end,
                });
            }
            let end = range.offset.saturating_add(range.length);
            if end > self.size {
                return Err(ManifestError::RangeBeyondImage {
                    index,
                    end,
                    size: self.size,
                });
            }
            previous_end = end;
        }
        Ok(())
    }
}

/// Merges `(offset, length)` extents that overlap or touch (in any input order, zero lengths
/// dropped) and splits the result at multiples of `max`, so every piece is at most `max` bytes
/// and, except at the ends of a merged extent, starts and ends on a multiple of `max`.
/// The pieces come out sorted. `max == 0` means no limit.
pub fn split_ranges(used: &[(u64, u64)], max: u64) -> Vec<(u64, u64)> {
    let mut sorted: Vec<(u64, u64)> = used
        .iter()
        .filter(|&&(_, len)| len > 0)
        .map(|&(off, len)| (off, off.saturating_add(len)))
        .collect();
    sorted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = Vec::with_capacity(merged.len());
    for (start, end) in merged {
        let mut at = start;
        while at < end {
            // The next multiple of `max` after `at`, or `end` if that comes first.
            let cut = at
                .checked_div(max)
                .and_then(|n| n.checked_add(1))
                .and_then(|n| n.checked_mul(max))
                .map_or(end, |next| next.min(end));
            out.push((at, cut - at));
            at = cut;
        }
    }
    out
}

fn check_format(found: i64) -> Result<(), ManifestError> {
    match found {
        f if (1..=i64::from(FORMAT)).contains(&f) => Ok(()),
        f if f > i64::from(FORMAT) => Err(ManifestError::NewerFormat { found: f }),
        f => Err(ManifestError::BadFormat { found: f }),
    }
}

fn check_artifact(table: &str, a: &Artifact) -> Result<(), ManifestError> {
    check(
        &format!("{table}.file"),
        &a.file,
        "a plain file name (no '/', '\\', '..' or control characters, at most 255 bytes)",
        is_plain_name,
    )?;
    for (key, value) in [("compressed_size", a.compressed_size), ("size", a.size)] {
        // TOML integers are i64: anything larger could not be read back.
        if value == 0 || i64::try_from(value).is_err() {
            return Err(bad(
                &format!("{table}.{key}"),
                &value.to_string(),
                "a size from 1 to 2^63 - 1",
            ));
        }
    }
    for (key, value) in [
        ("compressed_sha256", &a.compressed_sha256),
        ("sha256", &a.sha256),
    ] {
        check(
            &format!("{table}.{key}"),
            value,
            "64 lowercase hex digits",
            is_sha256,
        )?;
    }
    Ok(())
}

fn check(
    field: &str,
    value: &str,
    expected: &'static str,
    ok: impl Fn(&str) -> bool,
) -> Result<(), ManifestError> {
    if ok(value) {
        Ok(())
    } else {
        Err(bad(field, value, expected))
    }
}

fn bad(field: &str, value: &str, expected: &'static str) -> ManifestError {
    ManifestError::BadValue {
        field: field.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// Whether `s` is a valid `build_id`: 1–64 of `[A-Za-z0-9._-]`, not starting with `.` (the
/// image store names a directory after it, so `.` and `..` must never be one).
pub fn is_build_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| (1..=9).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s != "."
        && !s.contains("..")
        && !s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

fn is_utc_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 20 {
        return false;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T',
        13 | 16 => c == b':',
        19 => c == b'Z',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return false;
    }
    let num = |from: usize, to: usize| s[from..to].parse::<u32>().unwrap_or(u32::MAX);
    (1..=12).contains(&num(5, 7))
        && (1..=31).contains(&num(8, 10))
        && num(11, 13) <= 23
        && num(14, 16) <= 59
        && num(17, 19) <= 60
}

/// Turns a toml error into [`ManifestError::Syntax`] with a 1-based line and column.
fn syntax(text: &str, e: &toml::de::Error) -> ManifestError {
    let (line, column) = e.span().map_or((0, 0), |span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.len(), |nl| before.len() - nl - 1)
            + 1;
        (line, column)
    });
    ManifestError::Syntax {
        line,
        column,
        message: e.message().trim_end().to_owned(),
    }
}

fn render_artifact(out: &mut String, a: &Artifact) {
    line(out, "file", &quote(&a.file));
    line(out, "compressed_size", &a.compressed_size.to_string());
    line(out, "compressed_sha256", &quote(&a.compressed_sha256));
    line(out, "size", &a.size.to_string());
    line(out, "sha256", &quote(&a.sha256));
}

fn line(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str(" = ");
    out.push_str(value);
    out.push('\n');
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
