#![allow(clippy::unwrap_used)]

use super::*;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const MIB: u64 = 1024 * 1024;

fn sample() -> Manifest {
    Manifest {
        format: 1,
        build_id: "20261124T140000Z-1a2b3c4d".into(),
        arch: "arm64".into(),
        kubernetes_version: "1.31.2".into(),
        created: "2026-11-24T14:00:00Z".into(),
        base_image: "ubuntu-26.04-preinstalled-server-arm64+raspi.img".into(),
        base_shape: "ubuntu-26.04".into(),
        root: RootImage {
            file: "image.img.xz".into(),
            compression: Compression::Xz,
            compressed_size: 123,
            compressed_sha256: A.into(),
            size: 256 * MIB,
            sha256: B.into(),
            block_size: 4096,
            ranges: vec![
                Range {
                    offset: 0,
                    length: MIB,
                    sha256: A.into(),
                },
                Range {
                    offset: MIB,
                    length: 64 * MIB,
                    sha256: B.into(),
                },
                Range {
                    offset: 128 * MIB,
                    length: 4096,
                    sha256: A.into(),
                },
            ],
        },
        boot: Artifact {
            file: "boot.tar.xz".into(),
            compressed_size: 1,
            compressed_sha256: B.into(),
            size: 2,
            sha256: A.into(),
        },
    }
}

fn invalid(edit: impl FnOnce(&mut Manifest)) -> ManifestError {
    let mut m = sample();
    edit(&mut m);
    let err = m.validate().unwrap_err();
    // Every rule is also enforced through parse.
    assert_eq!(Manifest::parse(&m.render()).unwrap_err(), err);
    err
}

fn bad_field(err: &ManifestError) -> &str {
    match err {
        ManifestError::BadValue { field, .. } => field,
        other => panic!("expected BadValue, got {other:?}"),
    }
}

#[test]
fn sample_is_valid_and_round_trips() {
    let m = sample();
    m.validate().unwrap();
    let text = m.render();
    assert_eq!(Manifest::parse(&text).unwrap(), m);
    assert_eq!(Manifest::parse(&text).unwrap().render(), text);
    assert_eq!(m.used_bytes(), MIB + 64 * MIB + 4096);
}

#[test]
fn render_layout() {
    let text = sample().render();
    assert!(text.contains("format = 1\nbuild_id = \"20261124T140000Z-1a2b3c4d\"\n"));
    let root = text.find("\n[root]\n").unwrap();
    let ranges = text
        .find("\n[[root.ranges]]\noffset = 0\nlength = 1048576\n")
        .unwrap();
    let boot = text.find("\n[boot]\nfile = \"boot.tar.xz\"\n").unwrap();
    assert!(root < ranges && ranges < boot);
    assert!(text.ends_with(&format!("sha256 = \"{A}\"\n")));
}

#[test]
fn render_escapes_strings() {
    let mut m = sample();
    m.base_image = "a \"quoted\" \\ name\twith\u{1}controls".into();
    let back = Manifest::parse(&m.render()).unwrap();
    assert_eq!(back.base_image, m.base_image);
}

#[test]
fn unknown_keys_are_ignored() {
    let mut text = sample().render();
    text = text.replace("format = 1\n", "format = 1\nsigned_by = \"someone\"\n");
    text = text.replace("[boot]\n", "[boot]\nmode = \"tar\"\n");
    text.push_str("\n[extra]\nwhatever = [1, 2]\n");
    assert_eq!(Manifest::parse(&text).unwrap(), sample());
}

#[test]
fn newer_format_is_refused_first() {
    // Even if the rest no longer fits, the format is what the user is told about.
    let err = Manifest::parse("format = 3\nroot = \"something new\"\n").unwrap_err();
    assert_eq!(err, ManifestError::NewerFormat { found: 3 });
    assert!(err
        .to_string()
        .contains("recovery installer and node agent are older than the image: reflash the card"));
    assert_eq!(
        invalid(|m| m.format = 4),
        ManifestError::NewerFormat { found: 4 }
    );
}

#[test]
fn an_xz_build_renders_as_format_1_without_a_compression_key() {
    let m = sample();
    assert_eq!(m.root.compression.format(), 1);
    let text = m.render();
    assert!(!text.contains("compression"), "{text}");
    assert_eq!(Manifest::parse(&text).unwrap(), m);
    // A format-2 manifest may still hold an xz root.
    let mut two = sample();
    two.format = 2;
    assert_eq!(Manifest::parse(&two.render()).unwrap(), two);
}

#[test]
fn a_zstd_root_round_trips_in_format_2() {
    let mut m = sample();
    m.format = Compression::Zstd.format();
    m.root.compression = Compression::Zstd;
    m.root.file = "image.img.zst".into();
    assert_eq!(m.format, 2);
    let text = m.render();
    assert_eq!(
        text.matches("compression = \"zstd\"\n").count(),
        1,
        "{text}"
    );
    assert!(
        text.find("compression").unwrap() < text.find("[boot]").unwrap(),
        "in [root]: {text}"
    );
    assert_eq!(Manifest::parse(&text).unwrap(), m);
}

#[test]
fn zstd_in_a_format_1_manifest_is_refused() {
    // A format-1 reader ignores unknown keys: it would take zstd for xz.
    let err = invalid(|m| m.root.compression = Compression::Zstd);
    assert_eq!(
        err,
        ManifestError::FormatTooOld {
            compression: Compression::Zstd,
            needed: 2,
            found: 1
        }
    );
    assert!(err
        .to_string()
        .contains("root.compression = \"zstd\" needs format = 2"));
}

#[test]
fn an_unknown_compression_is_a_syntax_error_naming_the_line() {
    let text = sample()
        .render()
        .replace("block_size = ", "compression = \"lz4\"\nblock_size = ")
        .replace("format = 1\n", "format = 2\n");
    let err = Manifest::parse(&text).unwrap_err();
    match &err {
        ManifestError::Syntax { line, message, .. } => {
            assert!(*line > 1, "{err}");
            assert!(
                message.contains("lz4") || message.contains("variant"),
                "{err}"
            );
        }
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn bad_format() {
    assert_eq!(
        invalid(|m| m.format = 0),
        ManifestError::BadFormat { found: 0 }
    );
    let err = Manifest::parse("format = -1\n").unwrap_err();
    assert_eq!(err, ManifestError::BadFormat { found: -1 });
}

#[test]
fn syntax_errors_carry_the_line() {
    let text = sample().render().replace("size = 2\n", "size = = 2\n");
    match Manifest::parse(&text).unwrap_err() {
        ManifestError::Syntax { line, .. } => {
            let expected = text.lines().position(|l| l == "size = = 2").unwrap() + 1;
            assert_eq!(line, expected);
        }
        other => panic!("{other:?}"),
    }
    let err = Manifest::parse("").unwrap_err();
    assert!(err.to_string().contains("missing field"), "{err}");
}

#[test]
fn wrong_types_carry_the_line() {
    let text = sample()
        .render()
        .replace("block_size = 4096", "block_size = \"4096\"");
    let err = Manifest::parse(&text).unwrap_err();
    let ManifestError::Syntax { line, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        *line,
        text.lines()
            .position(|l| l.starts_with("block_size"))
            .unwrap()
            + 1
    );
    let text = sample().render().replace("size = 2\n", "size = -2\n");
    assert!(matches!(
        Manifest::parse(&text).unwrap_err(),
        ManifestError::Syntax { .. }
    ));
}

#[test]
fn build_id() {
    for id in [
        "",
        "has space",
        "slash/",
        "é",
        &"x".repeat(65),
        ".",
        "..",
        ".hidden",
    ] {
        assert_eq!(bad_field(&invalid(|m| m.build_id = id.into())), "build_id");
    }
    let mut m = sample();
    m.build_id = "A-z_0.9".repeat(10)[..64].to_owned();
    m.validate().unwrap();
}

#[test]
fn arch() {
    assert_eq!(bad_field(&invalid(|m| m.arch = "aarch64".into())), "arch");
    let mut m = sample();
    m.arch = "amd64".into();
    m.validate().unwrap();
}

#[test]
fn kubernetes_version() {
    for v in [
        "v1.31.2",
        "1.31",
        "1.31.2.1",
        "1..2",
        "1.31.x",
        "1.31.2-rc.1",
    ] {
        let err = invalid(|m| m.kubernetes_version = v.into());
        assert_eq!(bad_field(&err), "kubernetes_version");
    }
}

#[test]
fn created() {
    for t in [
        "2026-11-24 14:00:00Z",
        "2026-11-24T14:00:00",
        "2026-13-24T14:00:00Z",
        "2026-11-24T24:00:00Z",
        "2026-11-24T14:00:00+01:00",
    ] {
        assert_eq!(bad_field(&invalid(|m| m.created = t.into())), "created");
    }
}

#[test]
fn file_names_are_plain() {
    for name in ["", "../image.img.xz", "a/b", "..", ".", "a\\b", "x\ny"] {
        assert_eq!(
            bad_field(&invalid(|m| m.root.file = name.into())),
            "root.file"
        );
        assert_eq!(
            bad_field(&invalid(|m| m.boot.file = name.into())),
            "boot.file"
        );
    }
}

#[test]
fn digests_are_lowercase_hex() {
    let upper = A.to_uppercase();
    let short = &A[1..];
    let err = invalid(|m| m.root.sha256 = upper.clone());
    assert_eq!(bad_field(&err), "root.sha256");
    assert_eq!(
        err.to_string(),
        format!("root.sha256 = \"{upper}\": expected 64 lowercase hex digits")
    );
    let err = invalid(|m| m.boot.compressed_sha256 = short.into());
    assert_eq!(bad_field(&err), "boot.compressed_sha256");
    let err = invalid(|m| m.root.ranges[2].sha256 = "g".repeat(64));
    assert_eq!(bad_field(&err), "root.ranges[2].sha256");
}

#[test]
fn sizes_are_positive() {
    assert_eq!(bad_field(&invalid(|m| m.boot.size = 0)), "boot.size");
    assert_eq!(
        bad_field(&invalid(|m| m.root.compressed_size = 0)),
        "root.compressed_size"
    );
    let mut m = sample();
    m.boot.size = u64::MAX;
    assert_eq!(bad_field(&m.validate().unwrap_err()), "boot.size");
}

#[test]
fn root_size_is_sector_multiple() {
    let err = invalid(|m| m.root.size = 256 * MIB + 1);
    assert_eq!(bad_field(&err), "root.size");
}

#[test]
fn block_size() {
    for bs in [0, 512, 3000, 131_072] {
        let err = invalid(|m| m.root.block_size = bs);
        assert_eq!(bad_field(&err), "root.block_size");
    }
    let mut m = sample();
    m.root.block_size = 1024;
    m.validate().unwrap();
}

#[test]
fn ranges_must_exist() {
    assert_eq!(invalid(|m| m.root.ranges.clear()), ManifestError::NoRanges);
}

#[test]
fn empty_range() {
    assert_eq!(
        invalid(|m| m.root.ranges[1].length = 0),
        ManifestError::EmptyRange { index: 1 }
    );
}

#[test]
fn range_too_long() {
    let err = invalid(|m| m.root.ranges[1].length = MAX_RANGE + 4096);
    assert_eq!(
        err,
        ManifestError::RangeTooLong {
            index: 1,
            length: MAX_RANGE + 4096
        }
    );
}

#[test]
fn ranges_aligned_to_block_size() {
    let err = invalid(|m| m.root.ranges[2].offset += 512);
    assert_eq!(
        err,
        ManifestError::MisalignedRange {
            index: 2,
            offset: 128 * MIB + 512,
            length: 4096,
            block_size: 4096
        }
    );
    let err = invalid(|m| m.root.ranges[2].length = 1024);
    assert!(matches!(
        err,
        ManifestError::MisalignedRange { index: 2, .. }
    ));
}

#[test]
fn ranges_overlap_or_unsorted() {
    let err = invalid(|m| m.root.ranges[1].offset = MIB - 4096);
    assert_eq!(
        err,
        ManifestError::OverlappingRange {
            index: 1,
            offset: MIB - 4096,
            previous_end: MIB
        }
    );
    let err = invalid(|m| m.root.ranges.swap(1, 2));
    assert!(matches!(
        err,
        ManifestError::OverlappingRange { index: 2, .. }
    ));
    assert_eq!(
        invalid(|m| m.root.ranges[2].offset = 4096).to_string(),
        format!(
            "root.ranges[2]: offset 4096 overlaps the previous range ending at {}",
            65 * MIB
        )
    );
}

#[test]
fn ranges_within_image() {
    let err = invalid(|m| m.root.ranges[2].offset = 256 * MIB);
    assert_eq!(
        err,
        ManifestError::RangeBeyondImage {
            index: 2,
            end: 256 * MIB + 4096,
            size: 256 * MIB
        }
    );
    // Ending exactly at the end is fine.
    let mut m = sample();
    m.root.ranges[2].offset = 256 * MIB - 4096;
    m.validate().unwrap();
    // Overflow is caught, not wrapped.
    let mut m = sample();
    m.root.ranges[2].offset = u64::MAX - 4095;
    assert!(matches!(
        m.validate().unwrap_err(),
        ManifestError::RangeBeyondImage { end: u64::MAX, .. }
    ));
}

#[test]
fn split_merges_and_sorts() {
    assert_eq!(split_ranges(&[], 100), vec![]);
    assert_eq!(split_ranges(&[(5, 0)], 100), vec![]);
    // Unsorted, overlapping, touching and contained extents merge.
    assert_eq!(
        split_ranges(
            &[(50, 10), (0, 10), (10, 5), (52, 3), (58, 4), (70, 1)],
            1000
        ),
        vec![(0, 15), (50, 12), (70, 1)]
    );
}

#[test]
fn split_at_multiples_of_max() {
    assert_eq!(split_ranges(&[(0, 100)], 100), vec![(0, 100)]);
    assert_eq!(split_ranges(&[(0, 101)], 100), vec![(0, 100), (100, 1)]);
    assert_eq!(
        split_ranges(&[(30, 250)], 100),
        vec![(30, 70), (100, 100), (200, 80)]
    );
    // Adjacent extents merge before splitting, so the cut is aligned.
    assert_eq!(
        split_ranges(&[(0, 60), (60, 60)], 100),
        vec![(0, 100), (100, 20)]
    );
    assert_eq!(
        split_ranges(&[(MAX_RANGE - 4096, 8192)], MAX_RANGE),
        vec![(MAX_RANGE - 4096, 4096), (MAX_RANGE, 4096)]
    );
}

#[test]
fn split_edge_cases() {
    // No limit.
    assert_eq!(split_ranges(&[(0, 10), (10, 10)], 0), vec![(0, 20)]);
    // Near the end of the address space: saturates instead of overflowing.
    assert_eq!(
        split_ranges(&[(u64::MAX - 10, 100)], 8),
        vec![(u64::MAX - 10, 3), (u64::MAX - 7, 7)]
    );
    // Every piece is within bounds.
    let pieces = split_ranges(&[(4096, 3 * MAX_RANGE)], MAX_RANGE);
    assert_eq!(pieces.len(), 4);
    assert!(pieces.iter().all(|&(_, len)| len <= MAX_RANGE));
    assert_eq!(pieces.iter().map(|p| p.1).sum::<u64>(), 3 * MAX_RANGE);
}

#[test]
fn split_output_validates() {
    let mut m = sample();
    m.root.ranges = split_ranges(&[(0, 70 * MIB), (200 * MIB, 8192)], MAX_RANGE)
        .into_iter()
        .map(|(offset, length)| Range {
            offset,
            length,
            sha256: A.into(),
        })
        .collect();
    assert_eq!(m.root.ranges.len(), 3);
    m.validate().unwrap();
    assert_eq!(m.used_bytes(), 70 * MIB + 8192);
}
