//! Fuzz targets for what the installer unpacks from a build it was handed: the tar path rule
//! and the whole `boot.tar.xz` path onto a partition (see `docs/fuzzing.md`). Seeds:
//! `fuzz/tar_path/` (one name a line).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Write;
use std::path::{Component, Path};

use k8r_fuzzkit::proptest::prelude::*;
use k8r_fuzzkit::{corpus, hit, input, prop_assert, prop_assert_eq, run, Input};

use crate::unpack::{components, unpack_tar_xz, Expect};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

const PATH_DICT: &[&str] = &[
    "/",
    "./",
    "../",
    "..",
    ".",
    "//",
    "\\",
    "\0",
    "a",
    "overlays",
    "config.txt",
    "link",
    "\u{e9}",
    "\u{2215}",
    "..\u{0}",
    "/..",
    "%2e%2e",
];

fn names() -> Vec<Vec<u8>> {
    corpus(DIR, "tar_path")
        .iter()
        .flat_map(|file| file.split(|&b| b == b'\n').map(<[u8]>::to_vec))
        .filter(|name| !name.is_empty())
        .collect()
}

/// The tar path rule: a name it admits has only plain components (none empty, `.`, `..`, or
/// holding `/`, `\` or NUL), so joined under the partition it stays there, as the standard
/// library reads it too; and every plain relative name is admitted with its components.
#[test]
fn tar_path() {
    let segment = prop::sample::select(vec!["a", "overlays", "config.txt", "b-1_2.dtbo", "x.y"]);
    let plain = (
        any::<bool>(),
        prop::collection::vec(segment, 1..5),
        any::<bool>(),
    );
    let strategy = (input(names(), PATH_DICT), plain);
    run("tar_path", 512, strategy, |(data, (dot, parts, slash))| {
        if let Ok(name) = std::str::from_utf8(&data) {
            if let Ok(admitted) = components(name) {
                hit("admitted");
                for part in &admitted {
                    prop_assert!(!part.is_empty() && *part != "." && *part != "..");
                    prop_assert!(!part.contains(['/', '\\', '\0']), "{part:?}");
                }
                for c in Path::new(name).components() {
                    prop_assert!(
                        matches!(c, Component::Normal(_) | Component::CurDir),
                        "{name:?} admitted with {c:?}"
                    );
                }
                let joined = admitted
                    .iter()
                    .fold(Path::new("/dest").to_path_buf(), |p, c| p.join(c));
                prop_assert!(joined.starts_with("/dest"));
            }
        }
        let name = format!(
            "{}{}{}",
            if dot { "./" } else { "" },
            parts.join("/"),
            if slash { "/" } else { "" }
        );
        prop_assert_eq!(components(&name), Ok(parts.clone()), "{}", name);
        Ok(())
    });
}

/// One generated tar entry: a name, a type byte, contents, a link target, and how the name
/// is carried (0: the header, 1: a GNU long-name entry, 2: a PAX `path` record).
#[derive(Debug, Clone)]
struct Entry {
    name: Input,
    kind: u8,
    data: Vec<u8>,
    link: Input,
    carrier: u8,
}

fn header(name: &[u8], kind: u8, size: u64, link: &[u8]) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let n = name.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(100);
    h.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    h
}

fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e.carrier {
            1 => {
                let mut long = e.name.to_vec();
                long.push(0);
                let h = header(b"././@LongLink", b'L', long.len() as u64, b"");
                b.append(&h, long.as_slice()).unwrap();
            }
            2 => {
                // `<len> path=<name>\n`, where <len> counts its own digits too.
                let body = [b" path=".as_slice(), &e.name, b"\n"].concat();
                let mut len = body.len() + 1;
                while len != body.len() + len.to_string().len() {
                    len = body.len() + len.to_string().len();
                }
                let record = [len.to_string().as_bytes(), &body].concat();
                let h = header(b"PaxHeader", b'x', record.len() as u64, b"");
                b.append(&h, record.as_slice()).unwrap();
            }
            _ => {}
        }
        let h = header(&e.name, e.kind, e.data.len() as u64, &e.link);
        b.append(&h, e.data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 0);
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// What is under `dir`: (relative path, is a real directory), symlinks not followed.
fn tree(dir: &Path, prefix: &Path, out: &mut Vec<(String, bool)>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let kind = e.file_type().unwrap();
        let rel = prefix.join(e.file_name());
        out.push((rel.display().to_string(), kind.is_dir()));
        if kind.is_dir() {
            tree(&e.path(), &rel, out);
        }
    }
}

/// `boot.tar.xz` onto a partition: whatever the archive holds (`..`, absolute names, long
/// names, links, devices, a symlink already in the partition, a flipped byte), nothing
/// appears outside the partition, nothing but plain files and directories appears inside it,
/// and an archive that unpacks wrote exactly its regular files.
#[test]
fn boot_archive() {
    let kinds = prop::sample::select(b"00000555122346 7SgxLK".to_vec());
    let entry = (
        prop_oneof![input(names(), PATH_DICT), Just(Input(b"link/x".to_vec()))],
        prop_oneof![4 => kinds, 1 => any::<u8>()],
        prop::collection::vec(any::<u8>(), 0..600),
        input(vec![b"../outside".to_vec(), b"/etc".to_vec()], PATH_DICT),
        prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(|(name, kind, data, link, carrier)| Entry {
            name,
            kind,
            data,
            link,
            carrier,
        });
    let strategy = (
        prop::collection::vec(entry, 0..6),
        any::<bool>(),
        prop::option::weighted(0.2, (any::<usize>(), any::<u8>())),
    );
    run("boot_archive", 48, strategy, |(entries, planted, flip)| {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        let outside = root.path().join("outside");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        if planted {
            std::os::unix::fs::symlink("../outside", dest.join("link")).unwrap();
        }
        let mut tar = tar_bytes(&entries);
        if let Some((at, byte)) = flip {
            let i = at % tar.len().max(1);
            if let Some(b) = tar.get_mut(i) {
                *b ^= byte | 1;
            }
        }
        let txz = xz(&tar);
        let expect = Expect {
            compressed_sha256: k8r_card::digest::sha256_hex(&txz),
            size: tar.len() as u64,
            sha256: k8r_card::digest::sha256_hex(&tar),
        };
        let result = unpack_tar_xz(txz.as_slice(), &dest, &expect);
        let mut top: Vec<String> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        prop_assert_eq!(top, ["dest", "outside"]);
        prop_assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "wrote outside: {:?}",
            result
        );
        let mut inside = Vec::new();
        tree(&dest, Path::new(""), &mut inside);
        for (path, _) in &inside {
            let meta = fs::symlink_metadata(dest.join(path)).unwrap();
            let planted_link = planted && path == "link";
            prop_assert!(
                meta.is_file() || meta.is_dir() || planted_link,
                "{path}: {:?}",
                meta.file_type()
            );
        }
        if let Ok(report) = result {
            hit("unpacked");
            let files = inside
                .iter()
                .filter(|(p, dir)| !dir && (!planted || p != "link"));
            prop_assert_eq!(report.files, files.count() as u64);
        }
        Ok(())
    });
}
