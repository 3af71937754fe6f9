//! Signed builds as a user makes them, with the real `k8r-builder` binary: `keygen`,
//! `assemble` with `SIGNING_KEY`, the signature checked by the real `minisign -V`, the public
//! keys on the card (p1 and the root) and the secret key nowhere on it; `inspect`; `inject
//! --trusted-key` rotating a card's keys and refusing a list that would make the card refuse
//! its own build; and configurations that would do the same refused by `assemble`, with
//! `file:line`, the key and the fix.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use k8r_tests::{
    assemble_args, builder_command, fat_partition, fixture, mirror_server, output_text as text,
    scratch, test_config, BASE_2604,
};

fn run(args: &[&str], dir: &Path) -> Output {
    builder_command(args, dir)
        .output()
        .expect("run k8r-builder")
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = run(args, dir);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "k8r-builder {args:?}: {stdout}{stderr}"
    );
    stdout
}

/// A key pair made by `keygen` in `dir/<name>/`; returns (secret, public, key ID).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let out = ok(&["keygen", "--out", name], dir);
    let id = out
        .strip_prefix("key ID ")
        .and_then(|r| r.split(':').next())
        .expect("key ID line")
        .to_owned();
    let keys = dir.join(name);
    (
        keys.join("k8r-signing.key"),
        keys.join("k8r-signing.pub"),
        id,
    )
}

struct Signed {
    dir: PathBuf,
    public: PathBuf,
    id: String,
}

impl Signed {
    fn card(&self) -> PathBuf {
        self.dir.join("images/bootable_image.img")
    }
}

/// One card signed with a `keygen` key, assembled by the binary (shared by the tests; each
/// changes its own copy).
fn signed() -> &'static Signed {
    static BUILT: OnceLock<Signed> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = scratch("signing-shared");
        let (_, public, id) = keygen(&dir, "keys");
        std::fs::write(
            dir.join("variables.cfg"),
            test_config(
                mirror_server(),
                &fixture(BASE_2604),
                "SIGNING_KEY=\"keys/k8r-signing.key\"\n",
            ),
        )
        .expect("config");
        let args = assemble_args("cache");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args, &dir);
        Signed { dir, public, id }
    })
}

fn copy_card(test: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(test);
    let card = dir.join("card.img");
    std::fs::copy(signed().card(), &card).expect("copy");
    (dir, card)
}

fn sha(path: &Path) -> String {
    k8r_card::digest::sha256_file(path).expect("hash")
}

#[test]
fn keygen_explains_itself_and_never_overwrites_a_key() {
    let dir = scratch("signing-keygen");
    let help = ok(&["keygen", "--help"], &dir);
    for words in [
        "no password",
        "0600",
        "minisign -Vm manifest.toml",
        "SIGNING_KEY",
    ] {
        assert!(help.contains(words), "{words}: {help}");
    }
    let (secret, _, _) = keygen(&dir, "k");
    let before = std::fs::read(&secret).expect("key");
    let out = run(&["keygen", "--out", "k"], &dir);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("never overwrites a key"), "{stderr}");
    assert_eq!(std::fs::read(&secret).expect("key"), before);
}

#[test]
fn a_signed_build_verifies_with_minisign_and_the_card_carries_only_public_keys() {
    let s = signed();
    let images = s.dir.join("images");
    // The real minisign checks the build, as the docs tell users to.
    let out = std::process::Command::new("minisign")
        .args(["-Vm", "manifest.toml", "-p"])
        .arg(&s.public)
        .current_dir(&images)
        .output()
        .expect("minisign (cargo xtask setup installs it)");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("Signature and comment signature verified"),
        "{stdout}"
    );
    let manifest = std::fs::read_to_string(images.join("manifest.toml")).expect("manifest");
    let m = k8r_manifest::Manifest::parse(&manifest).expect("parse");
    assert!(
        stdout.contains(&format!("file:manifest.toml\tbuild:{}", m.build_id)),
        "the trusted comment names the build: {stdout}"
    );
    // SHA256SUMS lists the signature.
    let sums = std::fs::read_to_string(images.join("SHA256SUMS")).expect("sums");
    let sig = images.join("manifest.toml.minisig");
    assert!(
        sums.contains(&format!("{}  manifest.toml.minisig\n", sha(&sig))),
        "{sums}"
    );
    // p1: the trusted keys and the stored signature; the root: the build's key list.
    let p1 = fat_partition(&s.card(), 1).expect("p1");
    let public = std::fs::read_to_string(&s.public).expect("pub");
    let key_line = public.lines().nth(1).expect("key line");
    let trust =
        String::from_utf8(p1.read("k8r/trusted-keys").expect("trusted-keys")).expect("utf8");
    assert!(
        trust.contains(key_line) && trust.contains(&format!("build={}", m.build_id)),
        "{trust}"
    );
    let stored = p1
        .read(&format!("k8r/images/{}/manifest.toml.minisig", m.build_id))
        .expect("stored signature");
    assert_eq!(stored, std::fs::read(&sig).expect("sig"));
    let p3 = k8r_builder::image::card::partition(&s.card(), 3).expect("p3");
    let spec = format!("{}?offset={}", s.card().display(), p3.byte_offset());
    let root_keys =
        k8r_builder::image::ext4::read_file(Path::new(&spec), "/usr/lib/k8r/trusted-keys")
            .expect("root trusted-keys");
    assert!(String::from_utf8_lossy(&root_keys).contains(key_line));
    // The secret key is on no partition of the card, in no form.
    let secret = std::fs::read_to_string(s.dir.join("keys/k8r-signing.key")).expect("secret");
    let secret_line = secret
        .lines()
        .nth(1)
        .expect("secret line")
        .trim()
        .to_owned();
    let raw = {
        use ct_codecs::{Base64, Decoder as _};
        Base64::decode_to_vec(&secret_line, None).expect("base64")
    };
    // minisign's secret key: algorithms and KDF parameters, key ID, then the Ed25519 key.
    let ed25519 = &raw[54 + 8..54 + 8 + 32];
    for file in [
        "bootable_image.img",
        "image.img.xz",
        "boot.tar.xz",
        "manifest.toml",
    ] {
        let bytes = std::fs::read(images.join(file)).expect("output");
        for needle in [secret_line.as_bytes(), ed25519] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{file} holds the secret key"
            );
        }
    }
    // inspect says how it is signed.
    let shown = ok(&["inspect", &s.card().to_string_lossy()], &s.dir);
    assert!(
        shown.contains(&format!("signature: signed by key ID {} (", s.id))
            && shown.contains(&format!("this card trusts {}", s.id)),
        "{shown}"
    );
}

#[test]
fn inject_rotates_a_cards_keys_and_refuses_a_list_without_the_builds_key() {
    let (dir, card) = copy_card("signing-inject");
    let s = signed();
    let (_, next_pub, next_id) = keygen(&dir, "next");
    std::fs::write(
        dir.join("node.cfg"),
        test_config(mirror_server(), &fixture(BASE_2604), ""),
    )
    .expect("config");
    let card_s = card.to_string_lossy().into_owned();
    let next_s = next_pub.to_string_lossy().into_owned();
    let before = sha(&card);
    let out = run(
        &[
            "inject",
            "--image",
            &card_s,
            "--config",
            "node.cfg",
            "--trusted-key",
            &next_s,
        ],
        &dir,
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "not changing the card's trusted keys to {next_id}"
        )) && stderr.contains(&format!(
            "signed by key ID {}, this card trusts {next_id}",
            s.id
        )),
        "{stderr}"
    );
    let refusal = stderr
        .lines()
        .find(|l| l.contains("not changing the card's trusted keys"))
        .unwrap_or_default();
    assert!(
        refusal.contains("would then be refused (") && !refusal.contains("  "),
        "one space between words: {refusal}"
    );
    assert_eq!(sha(&card), before, "the card is unchanged");
    // Old and new together: accepted (the stored build is signed by the old one).
    let old_s = s.public.to_string_lossy().into_owned();
    let report = ok(
        &[
            "inject",
            "--image",
            &card_s,
            "--config",
            "node.cfg",
            "--trusted-key",
            &old_s,
            "--trusted-key",
            &next_s,
        ],
        &dir,
    );
    assert!(
        report.contains(&format!(
            "the card trusts key ID {}, {next_id} (was: {})",
            s.id, s.id
        )),
        "{report}"
    );
    let shown = ok(&["inspect", &card_s], &dir);
    assert!(
        shown.contains(&format!("this card trusts {}, {next_id}", s.id)),
        "{shown}"
    );
}

#[test]
fn assemble_refuses_a_card_that_would_refuse_its_own_build() {
    let dir = scratch("signing-refusals");
    let (_, _, _) = keygen(&dir, "a");
    let (_, _, _) = keygen(&dir, "b");
    let cases = [
        (
            "TRUSTED_KEYS=\"a/k8r-signing.pub\"\n",
            "TRUSTED_KEYS",
            "TRUSTED_KEYS: expected a SIGNING_KEY (or --signing-key) as well",
        ),
        (
            "SIGNING_KEY=\"a/k8r-signing.key\"\nTRUSTED_KEYS=\"b/k8r-signing.pub\"\n",
            "TRUSTED_KEYS",
            "TRUSTED_KEYS: expected a list that includes the signing key ID",
        ),
        (
            "SIGNING_KEY=\"missing.key\"\n",
            "SIGNING_KEY",
            "expected a readable minisign secret key file",
        ),
        (
            "SIGNING_KEY=\"a/k8r-signing.key\"\nTRUSTED_KEYS=\"a/k8r-signing.key\"\n",
            "TRUSTED_KEYS",
            "TRUSTED_KEYS=\"a/k8r-signing.key\": expected public key files (.pub), not the secret key",
        ),
    ];
    for (extra, key, expected) in cases {
        let config = test_config(mirror_server(), &fixture(BASE_2604), extra);
        std::fs::write(dir.join("variables.cfg"), &config).expect("config");
        let args = assemble_args("cache");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, &dir);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{extra}: {stdout}");
        let line = config
            .lines()
            .position(|l| l.starts_with(&format!("{key}=")))
            .expect("the key's line")
            + 1;
        assert!(
            stderr.contains(&format!("variables.cfg:{line}: ")) && stderr.contains(expected),
            "{extra}: {stderr}"
        );
        assert!(stderr.contains("hint:"), "{stderr}");
        assert!(!dir.join("images").exists(), "nothing built");
    }
}
