//! Shared helpers for the end-to-end scenarios in `tests/`: where the fixtures are, scratch
//! copies of cards, and card edits through the builder's image primitives.
//!
//! Suites are named by what they need: `host_*` run without a VM, `qemu_*` boot QEMU (TCG)
//! and write only to their own scratch cards.

/// The loopback HTTP server that plays dl.k8s.io and GitHub (also used by `cargo xtask demo`).
pub use k8r_test_http as http;
pub mod node;
pub mod systemd;

use std::path::{Path, PathBuf};

use k8r_builder::image::fat::FatImage;
use k8r_builder::image::{card, ImageError};
use k8r_qemu::assets::{fixtures_dir, target_dir};

/// The Ubuntu 26.04-shaped fixture card.
pub const BASE_2604: &str = "base-arm64.img";
/// The Ubuntu 24.04-shaped fixture card.
pub const BASE_2404: &str = "base-arm64-2404.img";
/// The Ubuntu 26.04-shaped fixture card whose root runs Debian 12's systemd as PID 1.
pub const BASE_2604_SYSTEMD: &str = "base-arm64-systemd.img";

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

/// Checks partition `number` of `card` with the reference checker, read-only: `fsck.fat -n`
/// for FAT, `e2fsck -fn` for ext4 (`fat` says which). The partition is copied out first
/// beside the card (neither tool takes an offset). Returns whether it is clean, and what the tool printed.
pub fn fsck_partition(card: &Path, number: u8, fat: bool) -> (bool, String) {
    let copy = card.with_extension(format!("p{number}.fsck"));
    card::extract_partition(card, number, &copy).expect("copy the partition out");
    let mut cmd = if fat {
        let mut c = std::process::Command::new("fsck.fat");
        c.arg("-n");
        c
    } else {
        let mut c = std::process::Command::new("e2fsck");
        c.arg("-fn");
        c
    };
    let out = cmd
        .arg(&copy)
        .output()
        .expect("fsck (dosfstools, e2fsprogs)");
    let _ = std::fs::remove_file(&copy);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The host `k8r-builder` program (a debug build, made by `cargo xtask test`).
pub fn builder_bin() -> PathBuf {
    let path = target_dir().join("debug/k8r-builder");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test` (or `cargo build -p k8r-builder`)",
        path.display()
    );
    path
}

/// `k8r-builder ARGS` run in `dir` with the tests' fixed build time.
pub fn builder_command(args: &[&str], dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(builder_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", TEST_EPOCH.to_string());
    cmd
}

/// `k8r-builder assemble` arguments for a build in the current directory: its
/// `variables.cfg`, `images/`, the download cache `cache`, the test programs, xz preset 0.
pub fn assemble_args(cache: &str) -> Vec<String> {
    [
        "assemble",
        "--config",
        "variables.cfg",
        "--out",
        "images",
        "--installer",
        &installer().to_string_lossy(),
        "--agent",
        &agent().to_string_lossy(),
        "--cache-dir",
        cache,
        "--xz-preset",
        "0",
        "--zstd-level",
        "3",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A finished program's stdout and stderr as text.
pub fn output_text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The static aarch64 recovery installer, built by `cargo xtask test` (and `demo`).
pub fn installer() -> PathBuf {
    let path = target_dir().join("aarch64-unknown-linux-musl/release/k8r-installer");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test`, or `cargo build --release -p k8r-installer --target aarch64-unknown-linux-musl`",
        path.display()
    );
    path
}

/// The static aarch64 node agent, built by `cargo xtask test` (and `demo`).
pub fn agent() -> PathBuf {
    let path = target_dir().join("aarch64-unknown-linux-musl/release/k8r");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test`, or `cargo build --release -p k8r-node --target aarch64-unknown-linux-musl`",
        path.display()
    );
    path
}

/// Fixed build time for reproducible test builds (SOURCE_DATE_EPOCH).
pub const TEST_EPOCH: u64 = 1_776_902_400;

/// A `variables.cfg` for the fixture artefacts served by `server`, on base image `base`, with
/// `extra` lines appended.
pub fn test_config(server: &http::Server, base: &Path, extra: &str) -> String {
    // `extra` may choose another Kubernetes (the upgrade scenarios): then it is its line.
    let k8s = if extra.contains("K8S_VERSION=") {
        String::new()
    } else {
        "K8S_VERSION=\"1.31.2\"\n".to_owned()
    };
    format!(
        "# k8r test configuration: fixture artefacts from a 127.0.0.1 server\n\
         IMAGE=\"{}\"\n{k8s}CALICO_VERSION=\"3.99.0\"\n\
         CONTAINERD_VERSION=\"2.1.4\"\nRUNC_VERSION=\"1.3.0\"\nCNI_PLUGINS_VERSION=\"1.7.1\"\n\
         CRICTL_VERSION=\"1.31.1\"\nK8S_RELEASE_URL=\"{url}/k8s\"\nGITHUB_URL=\"{url}/github\"\n\
         GITHUB_RAW_URL=\"{url}/raw\"\n{extra}",
        base.display(),
        url = server.url()
    )
}

/// One 127.0.0.1 server for the fixture artefacts, shared by all tests of a test binary (so
/// builds that should be identical also see the same URLs).
pub fn mirror_server() -> &'static http::Server {
    static SERVER: std::sync::OnceLock<http::Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| http::Server::serve_dir(mirror()).expect("file server"))
}

/// The fixture artefact tree (`target/fixtures/mirror`).
pub fn mirror() -> PathBuf {
    let dir = fixtures_dir().join("mirror");
    assert!(
        dir.exists(),
        "{} is missing: run `cargo xtask fixtures`",
        dir.display()
    );
    dir
}

/// A card built by the builder library from a fixture base image.
#[derive(Debug)]
pub struct Built {
    /// The test's scratch directory (config, cache, images/).
    pub dir: PathBuf,
    /// `images/`.
    pub images: PathBuf,
    /// `images/bootable_image.img`.
    pub card: PathBuf,
    /// What the builder reported.
    pub report: k8r_builder::assemble::Report,
}

/// Builds a card in `target/test-scratch/<test>` from `fixture_name` with the fixture
/// artefacts; `extra` lines go into variables.cfg. xz preset 0 keeps tests fast.
pub fn assemble_card(test: &str, fixture_name: &str, extra: &str) -> Built {
    let dir = scratch(test);
    let config = dir.join("variables.cfg");
    std::fs::write(
        &config,
        test_config(mirror_server(), &fixture(fixture_name), extra),
    )
    .expect("config");
    let report = build_with(&dir, &config, &dir.join("images")).expect("assemble");
    Built {
        images: dir.join("images"),
        card: dir.join("images").join(k8r_builder::assemble::CARD),
        dir,
        report,
    }
}

/// The path of a stored build's file on the card's recovery partition
/// (`k8r/images/<build id>/<file>`).
pub fn stored(built: &Built, file: &str) -> String {
    format!(
        "{}/{}/{file}",
        k8r_card::store::STORE_DIR,
        built.report.build_id
    )
}

/// Runs the builder library on `config` into `out` with a cache under `dir`.
pub fn build_with(
    dir: &Path,
    config: &Path,
    out: &Path,
) -> anyhow::Result<k8r_builder::assemble::Report> {
    let cfg = k8r_builder::config::load_and_warn(config)?;
    let mut inputs = k8r_builder::assemble::BuildInputs::from_config(&cfg, None)?;
    // SIGNING_KEY and TRUSTED_KEYS in the configuration, as `assemble` reads them.
    let signing = k8r_builder::signing::plan(&cfg, None, &[])?;
    if let Some(s) = &signing {
        inputs.trusted_keys = s.trusted.clone();
    }
    let fetcher = k8r_builder::fetch::Fetcher::new(dir.join("cache"));
    let opts = k8r_builder::assemble::AssembleOptions {
        inputs,
        out_dir: out.to_path_buf(),
        installer: installer(),
        agent: agent(),
        busybox: Some(
            k8r_qemu::assets::Assets::discover()
                .busybox()
                .expect("busybox: run cargo xtask setup"),
        ),
        fetcher,
        xz_preset: 0,
        zstd_level: 3,
        epoch: TEST_EPOCH,
        threads: 2,
        signing_key: signing.map(|s| s.key),
    };
    Ok(k8r_builder::assemble::assemble(&opts)?)
}
