//! Staging against a 127.0.0.1 server (k8r-test-http plays the user's `HTTP_IMAGE_URL`) and
//! a temp dir playing the mounted recovery partition, with a current build `b1` in its store.

use std::path::Path;

use k8r_card::store::{Pointer, Store, VerifyOptions};
use k8r_card::testkit::{build_manifest, write_build, BuildSpec};
use k8r_test_http::{Fault, Server, Times};

use super::*;

const BIG: u64 = 1 << 40;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    served: std::path::PathBuf,
}

/// A store whose current build is `b1`, and a served directory holding build `b2`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(&dir.path().join("p1"));
    write_build(&store.build_dir("b1").expect("id"), &BuildSpec::new("b1"));
    store
        .set_pointer(&Pointer::to("b1").expect("id"))
        .expect("pointer");
    let served = dir.path().join("www");
    write_build(&served, &BuildSpec::new("b2"));
    Fixture {
        _dir: dir,
        store,
        served,
    }
}

fn opts() -> VerifyOptions {
    VerifyOptions {
        threads: 2,
        mem_total: 1 << 30,
    }
}

fn no_progress(_: &str) -> Box<dyn FnMut(u64, u64)> {
    Box::new(|_, _| {})
}

fn run(f: &Fixture, source: &Source, free: u64, fp: &Failpoints) -> Result<Staged> {
    run_manifest(f, &build_manifest(&BuildSpec::new("b2")), source, free, fp)
}

/// Stages `m` (as if its manifest had passed the checks) from `source`.
fn run_manifest(
    f: &Fixture,
    m: &Manifest,
    source: &Source,
    free: u64,
    fp: &Failpoints,
) -> Result<Staged> {
    let text = m.render();
    let incoming = Incoming {
        manifest: m,
        text: &text,
        signature: None,
        trusted: &TrustedKeys::default(),
    };
    stage(
        &f.store,
        &incoming,
        source,
        &|| Ok(free),
        fp,
        opts(),
        &no_progress,
    )
}

fn http(server: &Server) -> Source {
    Source::Http(format!("{}/", server.url()))
}

/// The store's current build verifies and is `id`.
fn assert_current(store: &Store, id: &str) {
    let b = store.current().expect("current");
    assert_eq!(b.manifest.build_id, id);
    b.verify(opts(), &mut |_| {})
        .expect("the current build verifies");
}

#[test]
fn a_zstd_build_is_fetched_by_its_manifest_name_and_verified() {
    let f = fixture();
    let www = f._dir.path().join("www-zstd");
    let mut spec = BuildSpec::new("z2");
    spec.compression = k8r_manifest::Compression::Zstd;
    let m = write_build(&www, &spec);
    let server = Server::serve_dir(&www).expect("server");
    let staged = run_manifest(&f, &m, &http(&server), BIG, &Failpoints::default()).expect("stage");
    assert!(matches!(staged, Staged::Done { .. }), "{staged:?}");
    assert_eq!(server.hits("/image.img.zst"), 1);
    assert_eq!(server.hits("/image.img.xz"), 0);
    assert_current(&f.store, "z2");
    let stored = f.store.build_dir("z2").expect("dir");
    assert!(stored.join("image.img.zst").is_file());
}

#[test]
fn a_build_is_staged_and_made_current_with_the_old_one_kept() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    let staged = run(&f, &http(&server), BIG, &Failpoints::default()).expect("stage");
    assert_eq!(
        staged,
        Staged::Done {
            previous: Some("b1".into()),
            removed: Vec::new()
        }
    );
    assert_current(&f.store, "b2");
    assert_eq!(
        f.store.pointer().expect("pointer").previous.as_deref(),
        Some("b1")
    );
    assert_eq!(
        run(&f, &http(&server), BIG, &Failpoints::default()).expect("again"),
        Staged::AlreadyCurrent
    );
}

#[test]
fn a_dropped_download_resumes_with_a_range_request() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    server.inject("/image.img.xz", Fault::DropAfter(100_000), Times::Next(2));
    run(&f, &http(&server), BIG, &Failpoints::default()).expect("stage despite two drops");
    assert_current(&f.store, "b2");
    let gets: Vec<_> = server
        .log()
        .into_iter()
        .filter(|r| r.path == "/image.img.xz")
        .collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[1].range.as_deref(), Some("bytes=100000-"), "{gets:?}");
    assert_eq!(gets[1].status, 206);
    assert_eq!(gets[2].range.as_deref(), Some("bytes=200000-"), "{gets:?}");
    let size = std::fs::metadata(f.served.join("image.img.xz"))
        .expect("meta")
        .len();
    let sent: u64 = gets.iter().map(|r| r.body_bytes).sum();
    assert_eq!(sent, size, "no byte fetched twice");
}

#[test]
fn a_server_without_ranges_is_downloaded_again_from_the_start() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    server.inject("/image.img.xz", Fault::DropAfter(50_000), Times::Next(1));
    server.inject("/image.img.xz", Fault::IgnoreRange, Times::Always);
    run(&f, &http(&server), BIG, &Failpoints::default()).expect("stage");
    assert_current(&f.store, "b2");
}

#[test]
fn an_interrupted_run_is_resumed_by_the_next_one() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    // More drops than one run retries: the run fails, the part stays.
    server.inject(
        "/image.img.xz",
        Fault::DropAfter(10_000),
        Times::Next(usize::try_from(super::super::fetch::RETRIES).expect("small") + 1),
    );
    let err = run(&f, &http(&server), BIG, &Failpoints::default()).expect_err("gives up");
    assert!(format!("{err:#}").contains("resume"), "{err:#}");
    assert_current(&f.store, "b1");
    let part = f.store.dir().join("b2/image.img.xz.part");
    let have = std::fs::metadata(&part).expect("the part stays").len();
    assert!(have > 0);
    run(&f, &http(&server), BIG, &Failpoints::default()).expect("the next run");
    assert_current(&f.store, "b2");
    let last = server
        .log()
        .into_iter()
        .rfind(|r| r.path == "/image.img.xz")
        .expect("log");
    assert_eq!(
        last.range,
        Some(format!("bytes={have}-")),
        "continued where the part ended"
    );
}

#[test]
fn a_wrong_digest_is_refused_with_nothing_staged() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    let mut other = std::fs::read(f.served.join("boot.tar.xz")).expect("read");
    other[0] ^= 1;
    server.put("/boot.tar.xz", other);
    let err = run(&f, &http(&server), BIG, &Failpoints::default()).expect_err("wrong file");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("boot.tar.xz")
            && msg.contains("SHA-256")
            && msg.contains("nothing was staged"),
        "{msg}"
    );
    assert_current(&f.store, "b1");
    assert_eq!(
        f.store.pointer().expect("pointer"),
        Pointer::to("b1").expect("id")
    );
    assert_eq!(
        f.store.build_dirs().expect("dirs"),
        vec!["b1"],
        "no b2 directory left"
    );
}

#[test]
fn too_little_room_is_refused_before_anything_is_fetched() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    let err = run(&f, &http(&server), 1 << 20, &Failpoints::default()).expect_err("no room");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("recovery partition has") && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert_eq!(server.total_hits(), 0, "refused before downloading");
    assert_current(&f.store, "b1");
}

#[test]
fn the_previous_build_is_given_up_only_when_room_needs_it() {
    let f = fixture();
    write_build(&f.store.build_dir("b0").expect("id"), &BuildSpec::new("b0"));
    f.store
        .set_pointer(&Pointer::to("b0").expect("id").advance("b1"))
        .expect("b1 current, b0 previous");
    let server = Server::serve_dir(&f.served).expect("server");
    let need = needed(
        &build_manifest(&BuildSpec::new("b2")),
        Path::new("/nonexistent"),
    );
    // Room for b2 only if b0 goes.
    let staged = run(
        &f,
        &http(&server),
        need - f.store.build_bytes("b0") + 1,
        &Failpoints::default(),
    )
    .expect("stage");
    assert_eq!(
        staged,
        Staged::Done {
            previous: Some("b1".into()),
            removed: Vec::new()
        }
    );
    assert_eq!(f.store.build_dirs().expect("dirs"), vec!["b1", "b2"]);
}

#[test]
fn a_local_directory_works_like_the_server() {
    let f = fixture();
    run(
        &f,
        &Source::Dir(f.served.clone()),
        BIG,
        &Failpoints::default(),
    )
    .expect("stage");
    assert_current(&f.store, "b2");
}

/// A failpoint at every step: the store is always usable (its pointer names a complete
/// build), and the next run ends with b2 current.
#[test]
fn an_interruption_at_each_step_never_leaves_a_half_staged_build_current() {
    for point in [
        "after-mkdir",
        "after-root",
        "after-boot",
        "after-manifest",
        "after-verify",
        "after-pointer",
    ] {
        let f = fixture();
        let server = Server::serve_dir(&f.served).expect("server");
        let err = run(&f, &http(&server), BIG, &Failpoints::only(point)).expect_err(point);
        assert!(
            err.chain().any(|c| c.is::<crate::failpoint::Hit>()),
            "{point}: {err:#}"
        );
        let expected = if point == "after-pointer" { "b2" } else { "b1" };
        assert_current(&f.store, expected);
        run(&f, &http(&server), BIG, &Failpoints::default())
            .unwrap_or_else(|e| panic!("{point}: {e:#}"));
        assert_current(&f.store, "b2");
        assert_eq!(
            f.store.build_dirs().expect("dirs"),
            vec!["b1", "b2"],
            "{point}"
        );
    }
}

/// What `update-image` does with a served build on a card trusting `trusted`: the
/// signature check on the fetched bytes, then staging.
fn offer(f: &Fixture, source: &Source, trusted: &TrustedKeys) -> Result<Staged> {
    let text = source.manifest()?;
    let signature = source.signature()?;
    let m = super::super::accept_manifest(&text, signature.as_deref(), trusted, source)?;
    let incoming = Incoming {
        manifest: &m,
        text: &text,
        signature: signature.as_deref(),
        trusted,
    };
    stage(
        &f.store,
        &incoming,
        source,
        &|| Ok(BIG),
        &Failpoints::default(),
        opts(),
        &no_progress,
    )
}

/// The store still has `b1` current and nothing of `b2`.
fn assert_untouched(f: &Fixture) {
    assert_current(&f.store, "b1");
    assert_eq!(f.store.build_dirs().expect("dirs"), vec!["b1".to_owned()]);
}

#[test]
fn a_card_with_keys_refuses_unsigned_and_foreign_builds_before_staging() {
    use k8r_card::testkit::{keypair, sign_build, trusted};
    let f = fixture();
    let (mine, theirs) = (keypair(), keypair());
    let server = Server::serve_dir(&f.served).expect("server");
    let card = trusted(&[&mine]);
    // Unsigned (the server has no manifest.toml.minisig: a 404).
    let err = offer(&f, &http(&server), &card).expect_err("unsigned");
    assert!(err.is::<crate::bootstrap::Refused>(), "{err:#}");
    assert!(
        format!("{err:#}").contains("manifest.toml is not signed"),
        "{err:#}"
    );
    assert_untouched(&f);
    // Signed by another key, from a directory and over HTTP.
    sign_build(&f.served, &theirs);
    for source in [http(&server), Source::Dir(f.served.clone())] {
        let err = offer(&f, &source, &card).expect_err("foreign key");
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!(
                "signed by key ID {}, this card trusts {}",
                trusted(&[&theirs]).ids(),
                card.ids()
            )),
            "{text}"
        );
        assert_untouched(&f);
    }
    // Signed by the card's key: staged, the signature and the manifest's bytes beside it.
    sign_build(&f.served, &mine);
    offer(&f, &http(&server), &card).expect("signed by a trusted key");
    assert_current(&f.store, "b2");
    let staged = f.store.build("b2").expect("b2");
    assert_eq!(
        staged.manifest_bytes,
        std::fs::read(f.served.join("manifest.toml")).expect("served")
    );
    assert!(matches!(
        staged.check_signature(&card),
        Ok(k8r_manifest::signature::Verdict::Signed { .. })
    ));
}

#[test]
fn a_signature_that_does_not_match_the_manifest_is_refused() {
    use k8r_card::testkit::{keypair, sign, trusted};
    let f = fixture();
    let mine = keypair();
    // A signature made over other bytes (a manifest of another build).
    let other = build_manifest(&BuildSpec::new("b3")).render();
    std::fs::write(
        f.served.join("manifest.toml.minisig"),
        sign(&mine, other.as_bytes()),
    )
    .expect("write");
    let err = offer(&f, &Source::Dir(f.served.clone()), &trusted(&[&mine])).expect_err("bad");
    assert!(
        format!("{err:#}").contains("does not match manifest.toml"),
        "{err:#}"
    );
    assert_untouched(&f);
}

#[test]
fn a_card_without_keys_stages_unsigned_builds_and_warns_about_plain_http() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    let none = TrustedKeys::default();
    offer(&f, &http(&server), &none).expect("unsigned on a card without keys");
    assert_current(&f.store, "b2");
    let warning = super::super::plain_http_warning(&http(&server), &none).expect("warned");
    assert!(
        warning.contains("plain HTTP") && warning.contains("keygen"),
        "{warning}"
    );
    assert!(!warning.contains("  "), "no runs of spaces: {warning:?}");
    let keyed = k8r_card::testkit::trusted(&[&k8r_card::testkit::keypair()]);
    assert_eq!(
        super::super::plain_http_warning(&http(&server), &keyed),
        None
    );
    assert_eq!(
        super::super::plain_http_warning(&Source::Http("https://h/".into()), &none),
        None
    );
}

/// The store as the fixture made it: `b1` current (no previous), nothing of `b2`.
fn assert_untouched_pointer(f: &Fixture) {
    assert_untouched(f);
    assert_eq!(
        f.store.pointer().expect("pointer"),
        Pointer::to("b1").expect("id")
    );
}

#[test]
fn a_local_file_of_the_wrong_size_is_refused_with_nothing_staged() {
    let path = |f: &Fixture| f.served.join("image.img.xz");
    let size = std::fs::metadata(path(&fixture())).expect("meta").len();
    for len in [size + 1, size - 1] {
        let f = fixture();
        let mut img = std::fs::read(path(&f)).expect("read");
        img.resize(usize::try_from(len).expect("small"), 0);
        std::fs::write(path(&f), img).expect("write");
        let err = run(
            &f,
            &Source::Dir(f.served.clone()),
            BIG,
            &Failpoints::default(),
        )
        .expect_err("wrong size");
        let msg = format!("{err:#}");
        assert_eq!(
            msg,
            format!(
                "fetching {}: image.img.xz: {len} bytes, the manifest says {size} bytes: the file \
                 at the source is not this build's (upload the build's three files together); \
                 nothing was staged",
                path(&f).display()
            )
        );
        assert_untouched_pointer(&f);
    }
}

#[test]
fn a_flipped_byte_in_the_root_image_is_refused_with_nothing_staged() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    let mut img = std::fs::read(f.served.join("image.img.xz")).expect("read");
    let middle = img.len() / 2;
    img[middle] ^= 0x10;
    server.put("/image.img.xz", img);
    let err = run(&f, &http(&server), BIG, &Failpoints::default()).expect_err("wrong file");
    let msg = format!("{err:#}");
    let expected = build_manifest(&BuildSpec::new("b2")).root.compressed_sha256;
    assert!(
        msg.starts_with(&format!(
            "fetching {}/image.img.xz: image.img.xz: SHA-256 ",
            server.url()
        )) && msg.contains(&format!("the manifest says {expected}"))
            && msg.ends_with("nothing was staged"),
        "{msg}"
    );
    assert_eq!(server.hits("/boot.tar.xz"), 0, "stopped at the first file");
    assert_untouched_pointer(&f);
}

#[test]
fn a_build_whose_ranges_do_not_match_its_image_is_removed_after_staging() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    // The compressed files are the served ones; one range's digest is not their content's.
    let mut m = build_manifest(&BuildSpec::new("b2"));
    let last = m.root.ranges.len() - 1;
    let wrong = "0".repeat(64);
    m.root.ranges[last].sha256.clone_from(&wrong);
    let r = m.root.ranges[last].clone();
    let err = run_manifest(&f, &m, &http(&server), BIG, &Failpoints::default())
        .expect_err("does not verify");
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with(
            "build b2 does not verify after staging; it was removed, the current build is unchanged: "
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "range {last} (offset {}, length {}) of the image has sha256 ",
            r.offset, r.length
        )) && msg.contains(&format!("the manifest says {wrong}")),
        "{msg}"
    );
    assert_eq!(server.hits("/image.img.xz"), 1, "fetched, then refused");
    assert_eq!(server.hits("/boot.tar.xz"), 1);
    assert_untouched_pointer(&f);
}

#[test]
fn a_manifest_this_node_cannot_read_is_refused_before_any_artefact_is_fetched() {
    let newer =
        build_manifest(&BuildSpec::new("b2"))
            .render()
            .replacen("format = 1\n", "format = 3\n", 1);
    assert!(newer.contains("format = 3\n"), "{newer}");
    let mut overlapping = build_manifest(&BuildSpec::new("b2"));
    let previous_end = overlapping.root.ranges[1].end();
    let offset = 6 << 20;
    assert!(offset < previous_end && offset % 1024 == 0);
    overlapping.root.ranges[2].offset = offset;
    let cases = [
        (
            newer,
            "format = 3: this card's k8r reads formats up to 2".to_owned(),
        ),
        (
            overlapping.render(),
            format!(
                "root.ranges[2]: offset {offset} overlaps the previous range ending at {previous_end}"
            ),
        ),
    ];
    for (text, reason) in cases {
        let f = fixture();
        let server = Server::serve_dir(&f.served).expect("server");
        server.put("/manifest.toml", text);
        let err = offer(&f, &http(&server), &TrustedKeys::default()).expect_err("refused");
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with(&format!("{}/manifest.toml: {reason}", server.url())),
            "{msg}"
        );
        assert_eq!(
            server.total_hits(),
            2,
            "only manifest.toml and manifest.toml.minisig: {:?}",
            server.log()
        );
        assert_untouched_pointer(&f);
    }
}

#[test]
fn too_little_room_even_without_the_previous_build_keeps_it() {
    let f = fixture();
    write_build(&f.store.build_dir("b0").expect("id"), &BuildSpec::new("b0"));
    let pointer = Pointer::to("b0").expect("id").advance("b1");
    f.store
        .set_pointer(&pointer)
        .expect("b1 current, b0 previous");
    let server = Server::serve_dir(&f.served).expect("server");
    let need = needed(
        &build_manifest(&BuildSpec::new("b2")),
        Path::new("/nonexistent"),
    );
    // One byte short even with b0's room.
    let free = need - f.store.build_bytes("b0") - 1;
    let err = run(&f, &http(&server), free, &Failpoints::default()).expect_err("no room");
    assert_eq!(
        format!("{err:#}"),
        format!(
            "the recovery partition has {} MiB free even without the previous build, build b2 \
             needs {} MiB: nothing was changed (make room on the card, or rebuild the card with \
             a larger recovery partition)",
            (need - 1) >> 20,
            need.div_ceil(1 << 20)
        )
    );
    assert_eq!(server.total_hits(), 0, "refused before downloading");
    assert_eq!(
        f.store.pointer().expect("pointer"),
        pointer,
        "b0 still previous"
    );
    assert_eq!(f.store.build_dirs().expect("dirs"), vec!["b0", "b1"]);
    assert_current(&f.store, "b1");
    f.store
        .build("b0")
        .expect("b0")
        .verify(opts(), &mut |_| {})
        .expect("the previous build is intact");
}

/// `manifest` padded with a comment to `len` bytes (still a valid manifest).
fn padded(manifest: &str, len: usize) -> String {
    let pad = len - manifest.len() - 3;
    format!("{manifest}# {}\n", "x".repeat(pad))
}

#[test]
fn an_oversize_manifest_is_refused_with_nothing_staged() {
    let max = k8r_manifest::MANIFEST_MAX;
    let manifest = build_manifest(&BuildSpec::new("b2")).render();
    // Its first MiB parses: it must not be cut short and staged.
    let over = padded(&manifest, max + 100);
    k8r_manifest::Manifest::parse(&over[..max]).expect("the first MiB parses");
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    server.put("/manifest.toml", over.clone());
    std::fs::write(f.served.join("manifest.toml"), &over).expect("write");
    for source in [http(&server), Source::Dir(f.served.clone())] {
        let err = offer(&f, &source, &TrustedKeys::default()).expect_err("too big");
        assert_eq!(
            format!("{err:#}"),
            format!(
                "{}: larger than 1 MiB, so not a build's manifest (k8r-builder writes a few \
                 KiB): nothing was staged",
                source.location("manifest.toml")
            )
        );
        assert_eq!(
            server.total_hits(),
            1,
            "the manifest only, nothing else fetched"
        );
        assert_untouched_pointer(&f);
    }
    // Exactly the limit is read.
    server.put("/manifest.toml", padded(&manifest, max));
    offer(&f, &http(&server), &TrustedKeys::default()).expect("1 MiB is accepted");
    assert_current(&f.store, "b2");
}

#[test]
fn an_oversize_signature_is_refused_with_nothing_staged() {
    let f = fixture();
    let server = Server::serve_dir(&f.served).expect("server");
    server.put("/manifest.toml.minisig", "x".repeat(10_000));
    // Even a card that checks no signature refuses it.
    let err = offer(&f, &http(&server), &TrustedKeys::default()).expect_err("too big");
    assert!(err.is::<crate::bootstrap::Refused>(), "{err:#}");
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with(&format!(
            "not staged: {}/manifest.toml: manifest.toml.minisig is not a minisign signature (",
            server.url()
        )) && msg.contains("more than 4096)"),
        "{msg}"
    );
    assert_eq!(
        server.total_hits(),
        2,
        "manifest.toml and manifest.toml.minisig only"
    );
    assert_untouched_pointer(&f);
}
