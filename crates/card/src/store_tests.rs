//! Tests of the image store on a temp dir standing in for a mounted recovery partition.

use super::*;
use crate::testkit::{write_build, BuildSpec};

fn store_with(builds: &[&str]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    for id in builds {
        write_build(&store.build_dir(id).expect("id"), &BuildSpec::new(id));
    }
    (dir, store)
}

fn opts() -> VerifyOptions {
    VerifyOptions {
        threads: 2,
        mem_total: 1 << 30,
    }
}

#[test]
fn pointer_round_trips_and_advances() {
    let p = Pointer::to("b1").expect("id");
    assert_eq!(Pointer::parse(&p.render()), Ok(p.clone()));
    let q = p.advance("b2");
    assert_eq!(
        (q.current.as_str(), q.previous.as_deref()),
        ("b2", Some("b1"))
    );
    assert_eq!(Pointer::parse(&q.render()), Ok(q.clone()));
    assert_eq!(
        q.advance("b2"),
        q,
        "advancing to the current build changes nothing"
    );
    assert_eq!(q.names().collect::<Vec<_>>(), vec!["b2", "b1"]);
    assert_eq!(q.without_previous().previous, None);
    assert!(q.render().len() < POINTER_MAX);
}

#[test]
fn pointer_refuses_what_it_cannot_trust() {
    for (text, why) in [
        ("", "no current="),
        ("previous=b1\n", "no current="),
        ("current=..\n", "not a build id"),
        ("current=a/b\n", "not a build id"),
        ("current=b1\ngarbage line\n", "expected key=value"),
        (&"#".repeat(600), "more than a pointer file"),
    ] {
        let err = Pointer::parse(text).expect_err(text);
        assert!(err.contains(why), "{text:?}: {err}");
    }
    // Unknown keys are ignored; previous equal to current is dropped.
    let p = Pointer::parse("current=b1\nprevious=b1\nnewer_key=x\n").expect("ok");
    assert_eq!(p.previous, None);
}

#[test]
fn no_pointer_says_the_store_is_empty() {
    let (_dir, store) = store_with(&[]);
    let err = store.current().expect_err("empty");
    assert!(matches!(err, StoreError::NoPointer { .. }), "{err:?}");
    assert!(err.to_string().contains("holds no build"), "{err}");
}

#[test]
fn current_follows_the_pointer() {
    let (_dir, store) = store_with(&["b1", "b2"]);
    store
        .set_pointer(&Pointer::to("b1").expect("id"))
        .expect("set");
    assert_eq!(store.current().expect("current").manifest.build_id, "b1");
    store
        .set_pointer(&store.pointer().expect("read").advance("b2"))
        .expect("advance");
    let current = store.current().expect("current");
    assert_eq!(current.manifest.build_id, "b2");
    assert_eq!(current.dir, store.dir().join("b2"));
    assert_eq!(
        store.pointer().expect("read").previous.as_deref(),
        Some("b1")
    );
}

#[test]
fn a_manifest_for_another_build_is_refused() {
    let (_dir, store) = store_with(&["b1"]);
    let other = store.dir().join("b9");
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::copy(
        store.dir().join("b1/manifest.toml"),
        other.join("manifest.toml"),
    )
    .expect("cp");
    let err = store.build("b9").expect_err("wrong build");
    assert!(matches!(err, StoreError::WrongBuild { .. }), "{err:?}");
    assert!(matches!(
        store.build("../b1"),
        Err(StoreError::BadBuildId { .. })
    ));
}

#[test]
fn prune_removes_only_unreferenced_builds() {
    let (_dir, store) = store_with(&["b1", "b2", "b3", "leftover"]);
    let pointer = Pointer::to("b1").expect("id").advance("b2");
    std::fs::write(store.dir().join("not-a-dir"), b"x").expect("file");
    let removed = store.prune(&pointer, &["b3"]).expect("prune");
    assert_eq!(removed, vec!["leftover".to_owned()]);
    assert_eq!(store.build_dirs().expect("list"), vec!["b1", "b2", "b3"]);
    assert!(store.build_bytes("b1") > 0);
    assert_eq!(store.build_bytes("leftover"), 0);
}

#[test]
fn a_good_build_verifies() {
    let (_dir, store) = store_with(&["b1"]);
    let build = store.build("b1").expect("open");
    build.check_compressed().expect("compressed digest");
    let mut calls = 0;
    build.verify(opts(), &mut |_| calls += 1).expect("verify");
    assert!(calls > 0, "progress was reported");
}

#[test]
fn a_zstd_build_verifies_and_a_damaged_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    let mut spec = BuildSpec::new("z1");
    spec.compression = k8r_manifest::Compression::Zstd;
    let m = write_build(&store.build_dir("z1").expect("id"), &spec);
    assert_eq!((m.format, m.root.file.as_str()), (2, "image.img.zst"));
    let build = store.build("z1").expect("open");
    assert_eq!(
        build.manifest.root.compression,
        k8r_manifest::Compression::Zstd
    );
    build.check_compressed().expect("compressed digest");
    let mut last = None;
    build
        .verify(opts(), &mut |p| last = Some(p))
        .expect("a zstd build verifies");
    assert!(last.is_some(), "progress was reported");

    // A byte flipped inside a frame: the decode fails, naming the file.
    let root = build.root_file();
    let len = i64::try_from(std::fs::metadata(&root).expect("meta").len()).expect("len");
    flip(&root, len / 2);
    let err = build.verify(opts(), &mut |_| {}).expect_err("verify");
    assert!(err.to_string().contains("image.img.zst"), "{err}");

    // The same bytes under an xz manifest are refused, not written as garbage.
    let (_dir, xz_store) = store_with(&["x1"]);
    let xz_build = xz_store.build("x1").expect("open");
    std::fs::write(xz_build.root_file(), crate::testkit::image_zst()).expect("swap");
    let err = xz_build
        .verify(opts(), &mut |_| {})
        .expect_err("zstd read as xz");
    assert!(err.to_string().contains("image.img.xz"), "{err}");
}

/// Flips one byte of `path` at `offset` (from the end when negative).
fn flip(path: &Path, offset: i64) {
    let mut bytes = std::fs::read(path).expect("read");
    let len = i64::try_from(bytes.len()).expect("len");
    let at = usize::try_from(if offset < 0 { len + offset } else { offset }).expect("at");
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn damage_is_found_and_named() {
    // A flipped byte in the middle of the compressed root: the xz check or a digest fails.
    let (_dir, store) = store_with(&["b1"]);
    let build = store.build("b1").expect("open");
    let root = build.root_file();
    let len = i64::try_from(std::fs::metadata(&root).expect("meta").len()).expect("len");
    flip(&root, len / 2);
    let err = build.check_compressed().expect_err("compressed digest");
    assert!(matches!(err, StoreError::Digest { .. }), "{err:?}");
    assert!(err.to_string().contains("image.img.xz"), "{err}");
    let err = build.verify(opts(), &mut |_| {}).expect_err("verify");
    assert!(err.to_string().contains("image.img.xz"), "{err}");

    // A truncated boot archive: its size is refused before hashing.
    let (_dir, store) = store_with(&["b2"]);
    let build = store.build("b2").expect("open");
    let boot = build.boot_file();
    let data = std::fs::read(&boot).expect("read");
    std::fs::write(&boot, &data[..data.len() - 1]).expect("truncate");
    let err = build.verify(opts(), &mut |_| {}).expect_err("boot size");
    assert!(matches!(err, StoreError::Size { .. }), "{err:?}");

    // A truncated root: its size is refused by the check the installer makes before p3.
    let (_dir, store) = store_with(&["b4"]);
    let build = store.build("b4").expect("open");
    let data = std::fs::read(build.root_file()).expect("read");
    std::fs::write(build.root_file(), &data[..data.len() - 100]).expect("truncate");
    let err = build.check_compressed().expect_err("root size");
    assert!(matches!(err, StoreError::Size { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("image.img.xz: ")
            && text.contains(&format!(
                "{} bytes, the manifest says {}",
                data.len() - 100,
                data.len()
            )),
        "{text}"
    );

    // A changed boot archive of the same size: its digest.
    let (_dir, store) = store_with(&["b3"]);
    let build = store.build("b3").expect("open");
    flip(&build.boot_file(), 0);
    let err = build.verify(opts(), &mut |_| {}).expect_err("boot digest");
    assert!(matches!(err, StoreError::Digest { .. }), "{err:?}");
    assert!(err.to_string().contains("boot.tar.xz"), "{err}");
}

#[test]
fn a_stored_build_is_checked_against_the_cards_keys() {
    use crate::testkit::{keypair, sign_build, trusted};
    use k8r_manifest::signature::TrustedKeys;
    let (_dir, store) = store_with(&["b1"]);
    let (mine, theirs) = (keypair(), keypair());
    let open = || store.build("b1").expect("open");
    // Unsigned: fine for a card without keys, refused by one with keys.
    assert_eq!(
        open()
            .check_signature(&TrustedKeys::default())
            .expect("no keys"),
        Verdict::Unsigned
    );
    let err = open()
        .check_signature(&trusted(&[&mine]))
        .expect_err("unsigned");
    assert!(
        err.to_string()
            .starts_with("build b1: manifest.toml is not signed"),
        "{err}"
    );
    // Signed by the card's key, then by another one.
    sign_build(&store.build_dir("b1").expect("dir"), &mine);
    assert!(matches!(
        open().check_signature(&trusted(&[&mine])),
        Ok(Verdict::Signed { .. })
    ));
    sign_build(&store.build_dir("b1").expect("dir"), &theirs);
    let err = open()
        .check_signature(&trusted(&[&mine]))
        .expect_err("other key");
    assert!(matches!(
        err,
        StoreError::Signature {
            source: SignatureError::UntrustedKey { .. },
            ..
        }
    ));
    // The signature covers the stored bytes exactly: a re-rendered but changed manifest fails.
    let path = store.build_dir("b1").expect("dir").join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("testkit.img", "testkit2.img")).expect("write");
    let err = open()
        .check_signature(&trusted(&[&theirs]))
        .expect_err("changed");
    assert!(matches!(
        err,
        StoreError::Signature {
            source: SignatureError::Invalid { .. },
            ..
        }
    ));
}

#[test]
fn a_manifest_of_a_newer_format_in_the_store_is_named_with_its_file() {
    let (_dir, store) = store_with(&["b1"]);
    store
        .set_pointer(&Pointer::to("b1").expect("id"))
        .expect("pointer");
    let path = store.build_dir("b1").expect("dir").join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("format = 1", "format = 3")).expect("write");
    let err = store.current().expect_err("newer format");
    let msg = err.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("format = 3: this card's k8r reads formats up to 2"),
        "{msg}"
    );
}

#[test]
fn an_oversize_signature_or_manifest_is_refused_without_being_read_whole() {
    let (_dir, store) = store_with(&["b1", "b2"]);
    let sig = store.build_dir("b1").expect("dir").join(SIGNATURE_FILE);
    std::fs::write(&sig, vec![b'x'; signature::SIGNATURE_MAX + 1]).expect("write");
    let msg = store.build("b1").expect_err("signature").to_string();
    assert!(
        msg.contains("manifest.toml.minisig") && msg.contains("more than a signature ever holds"),
        "{msg}"
    );
    // Exactly the bound is read (and then refused by the signature check, not here).
    std::fs::write(&sig, vec![b'x'; signature::SIGNATURE_MAX]).expect("write");
    assert!(store.build("b1").is_ok());
    let manifest = store.build_dir("b2").expect("dir").join(MANIFEST_FILE);
    let mut text = std::fs::read_to_string(&manifest).expect("read");
    text.push_str(&"#".repeat(MANIFEST_MAX));
    std::fs::write(&manifest, text).expect("write");
    let msg = store.build("b2").expect_err("manifest").to_string();
    assert!(
        msg.contains("manifest.toml") && msg.contains("more than a manifest ever holds"),
        "{msg}"
    );
}

#[test]
fn a_build_without_a_manifest_names_the_file_and_the_systems_reason() {
    let (_dir, store) = store_with(&["b1"]);
    let path = store.build_dir("b1").expect("dir").join(MANIFEST_FILE);
    std::fs::remove_file(&path).expect("remove");
    let err = store.build("b1").expect_err("no manifest");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    let os = std::io::Error::from_raw_os_error(2).to_string();
    assert!(msg.contains(&os), "{msg}");
}
