//! The `k8r-builder` program as a user meets it: bad configurations refused with the file,
//! line and fix; a tampered download refused and not cached; `inject` changing only what it
//! says; `inspect`; and a whole build as an unprivileged user.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use k8r_builder::image::card::extract_partition;
use k8r_tests::{
    assemble_card, build_with, builder_bin, builder_command, fat_partition, fixture, mirror,
    mirror_server, scratch, test_config, BASE_2404, TEST_EPOCH,
};

fn run_builder(args: &[&str], dir: &Path) -> Output {
    builder_command(args, dir)
        .output()
        .expect("run k8r-builder")
}

#[test]
fn help_explains_the_subcommands() {
    let out = run_builder(&["--help"], Path::new("."));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["assemble", "inject", "inspect"] {
        assert!(text.contains(word), "{text}");
    }
    let out = run_builder(&["assemble", "--help"], Path::new("."));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--base-image",
        "--offline",
        "--locked",
        "--xz-preset",
    ] {
        assert!(text.contains(flag), "{flag}: {text}");
    }
}

#[test]
fn bad_configurations_are_refused_with_file_line_and_fix() {
    let dir = scratch("cli-bad-config");
    let base = fixture(BASE_2404);
    let cases: &[(&str, &[&str])] = &[
        (
            "K8S_VERSION=\"v1.31.2\"",
            &["variables.cfg:2", "K8S_VERSION", "no \"v\" prefix"],
        ),
        (
            "POD_NETWORK_CIDR=\"10.244.1.0/16\"",
            &["variables.cfg:3", "POD_NETWORK_CIDR", "10.244.0.0/16"],
        ),
        (
            "CNI_TYPE=\"weave\"",
            &["variables.cfg:3", "CNI_TYPE", "weave"],
        ),
        ("TOKEN_TTL=\"forever\"", &["variables.cfg:3", "TOKEN_TTL"]),
        (
            "HTTP_IMAGE_URL=\"ftp://x/\"",
            &["variables.cfg:3", "HTTP_IMAGE_URL"],
        ),
        (
            "KUBEADM_JOIN_STRING=\"kubeadm join 1.2.3.4:6443 --token bad\"",
            &["variables.cfg:3", "--token"],
        ),
    ];
    for (line, wants) in cases {
        let cfg = if line.starts_with("K8S_VERSION") {
            format!("IMAGE=\"{}\"\n{line}\n", base.display())
        } else {
            format!(
                "IMAGE=\"{}\"\nK8S_VERSION=\"1.31.2\"\n{line}\n",
                base.display()
            )
        };
        std::fs::write(dir.join("variables.cfg"), cfg).expect("write");
        let out = run_builder(&["assemble", "--out", "images"], &dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{line} must be refused");
        for want in *wants {
            assert!(err.contains(want), "{line}: {want:?} missing from: {err}");
        }
        assert!(
            !dir.join("images").exists(),
            "nothing is written for a bad config"
        );
    }
    std::fs::write(
        dir.join("variables.cfg"),
        format!("IMAGE=\"{}\"\nK8S_VERSION=\"1.31.2\"\n", base.display()),
    )
    .expect("write");
    std::fs::write(dir.join("password_hash"), "hunter2\n").expect("write");
    let out = run_builder(&["assemble"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("password_hash") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn secrets_of_a_refused_configuration_appear_in_no_output() {
    let dir = scratch("cli-secrets-refused");
    let base = fixture(BASE_2404);
    let minimal = format!("IMAGE=\"{}\"\nK8S_VERSION=\"1.31.2\"\n", base.display());
    // A plain-text password that starts like a hash; a join command whose token secret has an
    // upper-case letter (so it is malformed and no well-formed-token redaction applies).
    let password = "$hunter2-like-plain-text";
    let secret = "0123456789abcdeX";
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let join = format!(
        "kubeadm join 10.0.0.5:6443 --token abcdef.{secret} --discovery-token-ca-cert-hash sha256:{hex}"
    );
    let cases: [(&str, String, Option<&str>, &[&str]); 3] = [
        (
            "password",
            minimal.clone(),
            Some(password),
            &["password_hash:1", "an unknown hash type", "24 characters"],
        ),
        (
            "quoted join",
            format!("{minimal}KUBEADM_JOIN_STRING=\"{join}\"\n"),
            None,
            &[
                "variables.cfg:3",
                "KUBEADM_JOIN_STRING",
                "--token \"abcdef…\"",
                "its secret has characters other than a-z and 0-9",
            ],
        ),
        (
            "unquoted join",
            format!("{minimal}KUBEADM_JOIN_STRING={join}\n"),
            None,
            &[
                "variables.cfg:3",
                "KUBEADM_JOIN_STRING",
                "--token abcdef…",
                "sha256:…",
            ],
        ),
    ];
    for (what, cfg, password_hash, wants) in cases {
        std::fs::write(dir.join("variables.cfg"), &cfg).expect("config");
        let hash_file = dir.join("password_hash");
        match password_hash {
            Some(p) => std::fs::write(&hash_file, format!("{p}\n")).expect("password_hash"),
            None => {
                let _ = std::fs::remove_file(&hash_file);
            }
        }
        for args in [
            &["assemble", "--out", "images"][..],
            &[
                "inject",
                "--image",
                "no-such-card.img",
                "--config",
                "variables.cfg",
            ][..],
        ] {
            let out = run_builder(args, &dir);
            let (stdout, stderr) = k8r_tests::output_text(&out);
            assert!(!out.status.success(), "{what}, {args:?}: must be refused");
            for want in wants {
                assert!(
                    stderr.contains(want),
                    "{what}, {args:?}: {want:?} missing: {stderr}"
                );
            }
            for hidden in ["hunter2", "$hu", secret, &secret[4..12], hex, &hex[32..48]] {
                assert!(
                    !stdout.contains(hidden) && !stderr.contains(hidden),
                    "{what}, {args:?}: {hidden} shown: {stdout}{stderr}"
                );
            }
        }
        assert!(!dir.join("images").exists(), "nothing is written");
    }
}

#[test]
fn a_download_with_the_wrong_digest_is_refused_and_not_cached() {
    let dir = scratch("cli-bad-digest");
    let tampered = dir.join("mirror");
    copy_dir(&mirror(), &tampered);
    let kubeadm = tampered.join("k8s/v1.31.2/bin/linux/arm64/kubeadm");
    std::fs::write(&kubeadm, "#!/bin/sh\necho tampered\n").expect("tamper");
    let server = k8r_tests::http::Server::serve_dir(&tampered).expect("server");
    let config = dir.join("variables.cfg");
    std::fs::write(&config, test_config(&server, &fixture(BASE_2404), "")).expect("config");
    let err = build_with(&dir, &config, &dir.join("images")).expect_err("tampered kubeadm");
    let msg = format!("{err:#}");
    assert!(msg.contains("kubeadm") && msg.contains("expected"), "{msg}");
    let cached: Vec<String> = std::fs::read_dir(dir.join("cache"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !cached
            .iter()
            .any(|n| n.starts_with("kubeadm") && !n.ends_with(".sha256")),
        "kubeadm must not be cached: {cached:?}"
    );
    assert!(!dir.join("images/bootable_image.img").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).expect("copy");
        }
    }
}

#[test]
fn inject_changes_only_the_node_configuration() {
    let built = assemble_card("cli-inject", BASE_2404, "");
    let before = scratch("cli-inject-before");
    for n in [2u8, 3, 4] {
        extract_partition(&built.card, n, &before.join(format!("p{n}"))).expect("extract");
    }
    let stored_xz = format!("k8r/images/{}/image.img.xz", built.report.build_id);
    let store_before = fat_partition(&built.card, 1)
        .expect("p1")
        .read(&stored_xz)
        .expect("xz");
    let join = "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let config = built.dir.join("worker.cfg");
    std::fs::write(
        &config,
        test_config(
            mirror_server(),
            &fixture(BASE_2404),
            &format!("KUBEADM_JOIN_STRING=\"{join}\"\n"),
        ),
    )
    .expect("config");
    let card = built.card.to_string_lossy().into_owned();
    let cfg = config.to_string_lossy().into_owned();
    let out = run_builder(&["inject", "--image", &card, "--config", &cfg], &built.dir);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("set KUBEADM_JOIN_STRING"), "{report}");
    assert!(
        !report.contains("0123456789abcdef --"),
        "the token is not printed: {report}"
    );

    let p1 = fat_partition(&built.card, 1).expect("p1");
    let node =
        String::from_utf8(p1.read("k8r/node/variables.cfg").expect("node cfg")).expect("utf8");
    assert!(node.contains(join), "{node}");
    let after = scratch("cli-inject-after");
    for n in [2u8, 3, 4] {
        extract_partition(&built.card, n, &after.join(format!("p{n}"))).expect("extract");
        assert!(
            std::fs::read(before.join(format!("p{n}"))).expect("b")
                == std::fs::read(after.join(format!("p{n}"))).expect("a"),
            "p{n} must not change"
        );
    }
    assert!(
        p1.read(&stored_xz).expect("xz") == store_before,
        "the store is untouched"
    );
    let out = run_builder(&["inspect", &card], &built.dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("K8R-RECOVER") && text.contains("next boot: partition 1"),
        "{text}"
    );
    assert!(
        text.contains("stored image: build") && !text.contains("0123456789abcdef --"),
        "{text}"
    );
    assert!(
        text.contains(" ranges, image.img.xz (xz, manifest format 1)\n"),
        "{text}"
    );
}

/// A worker card's join token lives only in its own settings on the recovery partition, never
/// in the upgrade artefacts users upload to `HTTP_IMAGE_URL` (nor in the card's root).
#[test]
fn node_secrets_stay_out_of_the_upgrade_artefacts() {
    let join = "kubeadm join 10.0.0.1:6443 --token k8rtst.q7w8e9r0t1y2u3i4 --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let dir = scratch("cli-join-secret");
    let config = dir.join("variables.cfg");
    std::fs::write(
        &config,
        test_config(
            mirror_server(),
            &fixture(BASE_2404),
            &format!("KUBEADM_JOIN_STRING=\"{join}\"\n"),
        ),
    )
    .expect("config");
    // The login password's hash: not a node's own secret, but one the upgrade artefacts,
    // uploaded to a web server, must not hand out either.
    let hash_secret =
        "q2w3e4r5t6y7u8i9o0p1a2s3d4f5g6h7j8k9l0z1x2c3v4b5n6m7q8w9e0r1t2y3u4i5o6p7a8s9d0f1g2h3j4";
    let hash = format!("$6$k8rsalt${hash_secret}");
    std::fs::write(dir.join("password_hash"), format!("{hash}\n")).expect("password_hash");
    let images = dir.join("images");
    build_with(&dir, &config, &images).expect("build");
    let card = images.join("bootable_image.img");
    let secret = "q7w8e9r0t1y2u3i4";
    let root = dir.join("root.img");
    let xz = std::fs::File::open(images.join("image.img.xz")).expect("xz");
    let mut plain = std::fs::File::create(&root).expect("root");
    std::io::copy(&mut liblzma::read::XzDecoder::new(xz), &mut plain).expect("decompress");
    let baked = k8r_builder::image::ext4::read_file(&root, "/usr/lib/k8r/variables.cfg")
        .expect("baked configuration");
    let baked = String::from_utf8_lossy(&baked);
    assert!(baked.contains("K8S_VERSION=\"1.31.2\""), "{baked}");
    assert!(
        baked.contains("KUBEADM_JOIN_STRING=\"\"") && !baked.contains(secret),
        "no token in image.img.xz: {baked}"
    );
    let raw = std::fs::read(&root).expect("read root");
    for s in [secret, hash_secret] {
        assert!(
            !raw.windows(s.len()).any(|w| w == s.as_bytes()),
            "no {s} anywhere in the root image's bytes"
        );
    }
    let txz = std::fs::File::open(images.join("boot.tar.xz")).expect("boot.tar.xz");
    let mut boot = Vec::new();
    std::io::Read::read_to_end(&mut liblzma::read::XzDecoder::new(txz), &mut boot)
        .expect("decompress boot.tar.xz");
    for s in [secret, hash_secret] {
        assert!(
            !boot.windows(s.len()).any(|w| w == s.as_bytes()),
            "no {s} in boot.tar.xz"
        );
    }
    let p1 = fat_partition(&card, 1).expect("p1");
    let node = String::from_utf8(p1.read("k8r/node/variables.cfg").expect("node")).expect("utf8");
    assert!(
        node.contains(join),
        "the node's own settings keep it: {node}"
    );
    // The card itself logs in with the password: the node's user-data on p1 (the installer
    // puts it on every boot partition it writes) and the card's own boot partition.
    let p1_user =
        String::from_utf8(p1.read("k8r/node/user-data").expect("p1 user-data")).expect("utf8");
    assert!(p1_user.contains(&hash), "{p1_user}");
    let boot_fat = fat_partition(&card, 2).expect("p2");
    let p2_user =
        String::from_utf8(boot_fat.read("user-data").expect("p2 user-data")).expect("utf8");
    assert!(p2_user.contains(&hash), "{p2_user}");
}

#[test]
fn assemble_runs_as_an_unprivileged_user() {
    let dir = scratch("cli-unprivileged");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let config = dir.join("variables.cfg");
    std::fs::write(
        &config,
        test_config(mirror_server(), &fixture(BASE_2404), ""),
    )
    .expect("config");
    let args = k8r_tests::assemble_args("cache");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let out = if root {
        // As root, drop to nobody:nogroup for the whole build.
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(builder_bin())
            .args(args)
            .current_dir(&dir)
            .env("SOURCE_DATE_EPOCH", TEST_EPOCH.to_string())
            .env("HOME", &dir)
            .output()
            .expect("setpriv")
    } else {
        run_builder(&args, &dir)
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let card = dir.join("images/bootable_image.img");
    let meta = std::fs::metadata(&card).expect("card");
    if root {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.uid(), 65534, "written by the unprivileged user");
    }
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("time per step") && table.contains("total"),
        "{table}"
    );
}
