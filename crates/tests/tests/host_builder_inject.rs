//! `k8r-builder inject` and `inspect` as a user meets them, and `assemble` refusing files that
//! are not a base image: the real binary on one card assembled from the Ubuntu 26.04-shaped
//! fixture (shared by the tests, each working on its own copy of `images/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use k8r_tests::{
    agent, assemble_card, builder_command, fat_partition, fixture, installer, mirror_server,
    scratch, test_config, Built, BASE_2604,
};

/// A password hash (of "k8r"); the test looks for its salt and digest in outputs.
const HASH: &str = "$6$k8rsaltsalt$f6ttKWY.CBvw1dl3yAcQWSMS19p/KAgRUg4.aL65vQJXEqJId34DN0joq4hb1dIwUFSxzKxAudnPFQjnIwzvq/";
const HASH_TAIL: &str = "f6ttKWY.CBvw1dl3yAcQWSMS19p";

fn run(args: &[&str], dir: &Path) -> Output {
    builder_command(args, dir)
        .output()
        .expect("run k8r-builder")
}

use k8r_tests::output_text as text;

/// The card every test starts from, assembled once.
fn shared() -> &'static Built {
    static CARD: OnceLock<Built> = OnceLock::new();
    CARD.get_or_init(|| assemble_card("inject-shared", BASE_2604, ""))
}

/// A copy of the shared `images/` directory in the test's own scratch directory; returns
/// (scratch dir, card path).
fn own_card(test: &str) -> (PathBuf, PathBuf) {
    let built = shared();
    let dir = scratch(test);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    for e in std::fs::read_dir(&built.images).expect("images").flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), images.join(e.file_name())).expect("copy");
        }
    }
    let card = images.join(k8r_builder::assemble::CARD);
    (dir, card)
}

/// The test configuration with its IMAGE line replaced by `image` (`None`: no IMAGE at all).
fn config(dir: &Path, image: Option<&str>, extra: &str) -> PathBuf {
    let text: String = test_config(mirror_server(), &fixture(BASE_2604), extra)
        .lines()
        .filter(|l| !l.starts_with("IMAGE="))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = match image {
        Some(i) => format!("IMAGE=\"{i}\"\n{text}"),
        None => text,
    };
    let path = dir.join("node.cfg");
    std::fs::write(&path, text).expect("config");
    path
}

fn inject(card: &Path, config: &Path, dir: &Path) -> String {
    let out = run(
        &[
            "inject",
            "--image",
            &card.to_string_lossy(),
            "--config",
            &config.to_string_lossy(),
        ],
        dir,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "inject failed: {stdout}{stderr}");
    assert!(
        !stdout.contains(HASH_TAIL) && !stderr.contains(HASH_TAIL),
        "no hash in the output: {stdout}{stderr}"
    );
    stdout
}

fn p1_file(card: &Path, file: &str) -> Option<String> {
    let p1 = fat_partition(card, 1).expect("p1");
    p1.read(file)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn p2_user_data(card: &Path) -> Option<String> {
    let p2 = fat_partition(card, 2).expect("p2");
    p2.read("user-data")
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn image_line(node_cfg: &str) -> String {
    node_cfg
        .lines()
        .find(|l| l.starts_with("IMAGE="))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn inject_in_place_keeps_sha256sums_true_and_says_so() {
    let (dir, card) = own_card("inject-sums");
    let base = fixture(BASE_2604);
    let cfg = config(&dir, base.to_str(), "NODE_NAME=\"worker-7\"\n");
    let report = inject(&card, &cfg, &dir);
    assert!(report.contains("set NODE_NAME=\"worker-7\""), "{report}");
    assert!(
        report.contains("updated") && report.contains("SHA256SUMS"),
        "{report}"
    );
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir.join("images"))
        .output()
        .expect("sha256sum");
    assert!(
        check.status.success(),
        "sha256sum -c: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn inject_refuses_at_once_while_a_build_holds_the_output_directory() {
    let (dir, card) = own_card("inject-locked");
    let images = dir.join("images");
    let cfg = config(&dir, None, "NODE_NAME=\"locked-out\"\n");
    let digest = || k8r_card::digest::sha256_file(&card).expect("hash the card");
    let sums = || std::fs::read_to_string(images.join("SHA256SUMS")).expect("SHA256SUMS");
    let (card_before, sums_before) = (digest(), sums());

    // This test process plays the build: it holds the lock `assemble` takes.
    let lock = k8r_builder::assemble::outdir::OutDirLock::acquire(&images).expect("lock");
    let started = std::time::Instant::now();
    let out = run(
        &[
            "inject",
            "--image",
            &card.to_string_lossy(),
            "--config",
            &cfg.to_string_lossy(),
        ],
        &dir,
    );
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "inject must refuse: {stdout}{stderr}"
    );
    for part in [
        format!("not changing {}", card.display()),
        "is being written by another k8r-builder".to_owned(),
        format!("(pid {})", std::process::id()),
    ] {
        assert!(stderr.contains(&part), "{part} missing: {stderr}");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "refused at once, not after waiting"
    );
    assert_eq!(digest(), card_before, "the card is unchanged");
    assert_eq!(sums(), sums_before, "SHA256SUMS is unchanged");

    // The build is over: inject goes ahead, and leaves no lock file behind.
    drop(lock);
    let report = inject(&card, &cfg, &dir);
    assert!(report.contains("set NODE_NAME=\"locked-out\""), "{report}");
    assert!(report.contains("updated"), "{report}");
    assert!(!images
        .join(k8r_builder::assemble::outdir::LOCK_FILE)
        .exists());
}

#[test]
fn inject_needs_no_image_and_never_writes_one_onto_the_card() {
    let (dir, card) = own_card("inject-no-image");
    let before = image_line(&p1_file(&card, "k8r/node/variables.cfg").expect("node cfg"));
    assert!(before.contains("base-arm64.img"), "{before}");

    let cfg = config(&dir, None, "NODE_NAME=\"w1\"\n");
    inject(&card, &cfg, &dir);
    let node = p1_file(&card, "k8r/node/variables.cfg").expect("node cfg");
    assert!(node.contains("NODE_NAME=\"w1\""), "{node}");
    assert_eq!(
        image_line(&node),
        before,
        "the card keeps its IMAGE: {node}"
    );

    let cfg = config(&dir, Some("made-up-nonexistent.img"), "NODE_NAME=\"w2\"\n");
    let report = inject(&card, &cfg, &dir);
    assert!(!report.contains("IMAGE"), "{report}");
    let node = p1_file(&card, "k8r/node/variables.cfg").expect("node cfg");
    assert!(node.contains("NODE_NAME=\"w2\""), "{node}");
    assert!(!node.contains("made-up-nonexistent"), "{node}");
    assert_eq!(image_line(&node), before);
}

#[test]
fn removing_password_hash_resets_the_login() {
    let (dir, card) = own_card("inject-password");
    let card_s = card.to_string_lossy().into_owned();
    let inspect = |dir: &Path| {
        let out = run(&["inspect", &card_s], dir);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(!stdout.contains(HASH_TAIL), "{stdout}");
        stdout
    };
    let fresh = inspect(&dir);
    assert!(fresh.contains("login password: not set"), "{fresh}");
    assert!(
        fresh.contains("signature: unsigned (this card trusts no signing key)"),
        "{fresh}"
    );

    let cfg = config(&dir, None, "");
    std::fs::write(dir.join("password_hash"), format!("{HASH}\n")).expect("hash");
    let report = inject(&card, &cfg, &dir);
    assert!(report.contains("login password set"), "{report}");
    let p1 = p1_file(&card, "k8r/node/user-data").expect("p1 user-data");
    assert!(p1.contains(HASH), "{p1}");
    assert!(p2_user_data(&card).expect("p2 user-data").contains(HASH));
    let shown = inspect(&dir);
    assert!(shown.contains("login password: set"), "{shown}");

    std::fs::remove_file(dir.join("password_hash")).expect("rm");
    let report = inject(&card, &cfg, &dir);
    assert!(
        report.contains(&format!(
            "no password_hash beside {}: login password reset to the distribution default",
            cfg.display()
        )),
        "{report}"
    );
    let p1 = p1_file(&card, "k8r/node/user-data").unwrap_or_default();
    let p2 = p2_user_data(&card).unwrap_or_default();
    for (part, ud) in [("p1", &p1), ("p2", &p2)] {
        assert!(
            !ud.contains(HASH_TAIL),
            "{part} still sets the password: {ud}"
        );
        assert!(!ud.contains("type: hash"), "{part}: {ud}");
    }
    let shown = inspect(&dir);
    assert!(shown.contains("login password: not set"), "{shown}");
    let again = inject(&card, &cfg, &dir);
    assert!(!again.contains("reset"), "nothing to reset twice: {again}");
}

#[test]
fn inspect_of_a_vendor_image_says_it_is_not_a_card() {
    let dir = scratch("inspect-vendor");
    let base = fixture(BASE_2604);
    let out = run(&["inspect", &base.to_string_lossy()], &dir);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("system-boot"), "what it is: {stdout}");
    let says = "is not a k8r card (no K8R-RECOVER partition): it looks like a vendor image; \
                build a card with `k8r-builder assemble`";
    assert_eq!(
        stderr.matches(says).count() + stdout.matches(says).count(),
        1,
        "{stdout}{stderr}"
    );
}

#[test]
fn assemble_refuses_compressed_and_random_base_images_with_one_message() {
    use std::io::Write;
    let dir = scratch("assemble-not-an-image");
    let cfg = dir.join("variables.cfg");
    std::fs::write(&cfg, test_config(mirror_server(), &fixture(BASE_2604), "")).expect("cfg");
    let xz_img = dir.join("ubuntu.img");
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 0);
    xz.write_all(&vec![7u8; 1 << 20]).expect("xz");
    std::fs::write(&xz_img, xz.finish().expect("xz")).expect("write");
    // 100 MiB (sparse) whose first MiB is noise without a boot signature.
    let random = dir.join("random.img");
    let mut noise = vec![0u8; 1 << 20];
    let mut x: u32 = 0x1234_5678;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x.to_le_bytes()[1];
    }
    noise[510] = 0;
    let f = std::fs::File::create(&random).expect("create");
    (&f).write_all(&noise).expect("write");
    f.set_len(100 << 20).expect("size");
    let small = dir.join("small.img");
    std::fs::write(&small, &noise[..4096]).expect("write");

    let cases = [
        (
            &xz_img,
            "this is xz-compressed data, not a disk image: decompress it first",
        ),
        (&random, "no partition table (no MBR boot signature"),
        (
            &small,
            "only 4096 bytes, smaller than any Raspberry Pi disk image",
        ),
    ];
    let (installer, agent) = (installer(), agent());
    for (file, says) in cases {
        let out = run(
            &[
                "assemble",
                "--config",
                &cfg.to_string_lossy(),
                "--base-image",
                &file.to_string_lossy(),
                "--out",
                &dir.join("images").to_string_lossy(),
                "--installer",
                &installer.to_string_lossy(),
                "--agent",
                &agent.to_string_lossy(),
                "--cache-dir",
                &dir.join("cache").to_string_lossy(),
            ],
            &dir,
        );
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{stdout}{stderr}");
        assert_eq!(stderr.matches(says).count(), 1, "{stderr}");
        assert!(stderr.contains(&*file.to_string_lossy()), "{stderr}");
        assert!(stderr.contains("Ubuntu Server 26.04 LTS"), "{stderr}");
        assert!(
            stderr.matches("no MBR boot signature").count() <= 1,
            "{stderr}"
        );
    }
}
