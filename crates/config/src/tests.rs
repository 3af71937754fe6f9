//! Whole-module tests: each bad-configuration class and its rendered message, TOML/cfg
//! equivalence, render round trips, the example file and `load`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use super::*;

const TOKEN: &str = "abcdef.0123456789abcdef";
const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
const MINIMAL: &str = "IMAGE=\"base.img\"\nK8S_VERSION=\"1.31.0\"\n";
const EXAMPLE: &str = include_str!("../../../variables.cfg.example");

fn cfg(text: &str) -> Result<BuildConfig, ConfigErrors> {
    parse_cfg(Path::new("variables.cfg"), text)
}

/// The rendered errors of a minimal config plus `extra` lines (starting at line 3).
fn errors_with(extra: &str) -> String {
    cfg(&format!("{MINIMAL}{extra}")).unwrap_err().to_string()
}

#[test]
fn minimal_config_gets_every_default() {
    let c = cfg(MINIMAL).unwrap();
    assert_eq!(c.image, PathBuf::from("base.img"));
    assert_eq!(c.k8s_version, Version::new(1, 31, 0));
    assert_eq!(c.arch, Arch::Arm64);
    assert_eq!(c.control_plane_endpoint, None);
    assert!(c.is_first_master());
    assert_eq!(c.token_ttl, "0");
    assert_eq!(
        c.cni,
        Cni::Calico {
            version: keys::DEFAULT_CALICO_VERSION
        }
    );
    assert_eq!(c.pod_network_cidr, "192.168.0.0/16");
    assert_eq!(c.http_image_url, None);
    assert_eq!(c.hostname_prefix, "k8r");
    assert_eq!(c.root_size, None);
    assert_eq!(c.compression, k8r_manifest::Compression::Xz);
    assert_eq!(
        c.components,
        Components {
            containerd: Version::new(2, 1, 4),
            runc: Version::new(1, 3, 0),
            cni_plugins: Version::new(1, 7, 1),
            crictl: Version::new(1, 31, 0),
            defaulted: Defaulted::default(),
        }
    );
    assert_eq!(
        c.components.defaulted,
        Defaulted {
            containerd: true,
            runc: true,
            cni_plugins: true,
            crictl: true,
            cni: true,
        }
    );
    assert_eq!(c.source_file(), Path::new("variables.cfg"));
    assert_eq!(c.mirrors.k8s_release_url, "https://dl.k8s.io/release");
    assert_eq!(c.mirrors.github_url, "https://github.com");
    assert_eq!(
        c.mirrors.github_raw_url,
        "https://raw.githubusercontent.com"
    );
    assert_eq!(c.password_hash, None);
    assert!(c.warnings().is_empty());
}

#[test]
fn crictl_default_follows_the_kubernetes_minor_and_is_marked_as_default() {
    for (k8s, crictl) in [
        ("1.31.2", "1.31.0"),
        ("1.32.7", "1.32.0"),
        ("1.33.4", "1.33.0"),
    ] {
        let c = cfg(&format!("IMAGE=\"base.img\"\nK8S_VERSION=\"{k8s}\"\n")).unwrap();
        assert_eq!(c.components.crictl.to_string(), crictl, "{k8s}");
        assert!(c.components.defaulted.crictl);
    }
    let c = cfg(&format!(
        "{MINIMAL}CRICTL_VERSION=\"1.31.1\"\nCALICO_VERSION=\"3.30.3\"\n"
    ))
    .unwrap();
    assert_eq!(c.components.crictl, Version::new(1, 31, 1));
    let d = c.components.defaulted;
    assert!(!d.crictl && !d.cni && d.containerd && d.runc && d.cni_plugins);
    // Provenance is not a setting: the rendered file (every key written) parses to an equal
    // configuration.
    let again = cfg(&cfg(MINIMAL).unwrap().render_cfg()).unwrap();
    assert_eq!(again, cfg(MINIMAL).unwrap());
    assert!(!again.components.defaulted.crictl);
}

#[test]
fn flannel_defaults_to_its_own_cidr_and_version() {
    let c = cfg(&format!("{MINIMAL}CNI_TYPE=flannel\n")).unwrap();
    assert_eq!(
        c.cni,
        Cni::Flannel {
            version: keys::DEFAULT_FLANNEL_VERSION
        }
    );
    assert_eq!(c.pod_network_cidr, "10.244.0.0/16");
}

#[test]
fn key_docs_state_the_defaults_in_use() {
    for (name, default) in [
        ("CALICO_VERSION", keys::DEFAULT_CALICO_VERSION.to_string()),
        ("FLANNEL_VERSION", keys::DEFAULT_FLANNEL_VERSION.to_string()),
        (
            "CONTAINERD_VERSION",
            keys::DEFAULT_CONTAINERD_VERSION.to_string(),
        ),
        ("RUNC_VERSION", keys::DEFAULT_RUNC_VERSION.to_string()),
        (
            "CNI_PLUGINS_VERSION",
            keys::DEFAULT_CNI_PLUGINS_VERSION.to_string(),
        ),
        ("CRICTL_VERSION", keys::CRICTL_DEFAULT_DOC.to_string()),
        ("HOSTNAME_PREFIX", keys::DEFAULT_HOSTNAME_PREFIX.to_string()),
        ("K8S_RELEASE_URL", keys::DEFAULT_K8S_RELEASE_URL.to_string()),
        ("GITHUB_URL", keys::DEFAULT_GITHUB_URL.to_string()),
        ("GITHUB_RAW_URL", keys::DEFAULT_GITHUB_RAW_URL.to_string()),
        ("ARCH", "arm64".to_string()),
        ("CNI_TYPE", "calico".to_string()),
    ] {
        assert_eq!(keys::lookup(name).unwrap().default, default, "{name}");
        assert!(
            EXAMPLE.contains(&format!("# Default: {default}\n#{name}=")),
            "{name} in example"
        );
    }
}

/// (extra lines after MINIMAL, the complete rendered message).
#[test]
fn each_bad_value_has_its_documented_message() {
    let cases: &[(&str, &str)] = &[
        (
            "IMAGE=\"ubuntu.img.xz\"",
            "variables.cfg:3: IMAGE=\"ubuntu.img.xz\": expected an uncompressed image ending in .img, not a .xz archive; hint: decompress it first (xz -dk ubuntu.img.xz), then write IMAGE=\"ubuntu.img\"",
        ),
        (
            "IMAGE=ubuntu.zip",
            "variables.cfg:3: IMAGE=\"ubuntu.zip\": expected an uncompressed image ending in .img, not a .zip archive; hint: decompress it first (unzip ubuntu.zip), then write IMAGE=\"ubuntu.img\"",
        ),
        (
            "CONTROL_PLANE_ENDPOINT=\"https://k8s.lan:6443/\"",
            "variables.cfg:3: CONTROL_PLANE_ENDPOINT=\"https://k8s.lan:6443/\": expected a DNS name or IP address with an optional :port, not a https:// URL; hint: write CONTROL_PLANE_ENDPOINT=\"k8s.lan:6443\"",
        ),
        (
            "CONTROL_PLANE_ENDPOINT=k8s.lan:70000",
            "variables.cfg:3: CONTROL_PLANE_ENDPOINT=\"k8s.lan:70000\": expected a DNS name or IP address with an optional :port: the port 70000 is not in 1-65535",
        ),
        (
            "TOKEN_TTL=24",
            "variables.cfg:3: TOKEN_TTL=\"24\": expected 0 (never expires) or a duration like 24h0m0s, 24h, 90m, 1h30m or 45s (units h, m, s, ms); a number needs a unit; hint: write TOKEN_TTL=\"24h\"",
        ),
        (
            "TOKEN_TTL=-24h",
            "variables.cfg:3: TOKEN_TTL=\"-24h\": expected 0 (never expires) or a duration like 24h0m0s, 24h, 90m, 1h30m or 45s (units h, m, s, ms); negative durations are not allowed; hint: use 0 for a token that never expires",
        ),
        (
            "TOKEN_TTL=2d",
            "variables.cfg:3: TOKEN_TTL=\"2d\": expected 0 (never expires) or a duration like 24h0m0s, 24h, 90m, 1h30m or 45s (units h, m, s, ms); unknown unit \"d\"",
        ),
        (
            "POD_NETWORK_CIDR=10.244.1.0/16",
            "variables.cfg:3: POD_NETWORK_CIDR=\"10.244.1.0/16\": expected a network address with all host bits zero, but 10.244.1.0/16 has host bits set (the last 16 bits are 0.0.1.0); hint: write POD_NETWORK_CIDR=\"10.244.0.0/16\"",
        ),
        (
            "POD_NETWORK_CIDR=fd00::1/64",
            "variables.cfg:3: POD_NETWORK_CIDR=\"fd00::1/64\": expected a network address with all host bits zero, but fd00::1/64 has host bits set (the last 64 bits are ::1); hint: write POD_NETWORK_CIDR=\"fd00::/64\"",
        ),
        (
            "POD_NETWORK_CIDR=10.244.0.0",
            "variables.cfg:3: POD_NETWORK_CIDR=\"10.244.0.0\": expected a network in CIDR notation like 10.244.0.0/16; the /prefix length is missing; hint: add the prefix length, e.g. 10.244.0.0/16",
        ),
        (
            "POD_NETWORK_CIDR=10.244.0.300/16",
            "variables.cfg:3: POD_NETWORK_CIDR=\"10.244.0.300/16\": expected a network in CIDR notation like 10.244.0.0/16; \"10.244.0.300\" is not an IP address",
        ),
        (
            "POD_NETWORK_CIDR=10.0.0.0/33",
            "variables.cfg:3: POD_NETWORK_CIDR=\"10.0.0.0/33\": expected a network in CIDR notation like 10.244.0.0/16; the prefix length \"33\" is not a number from 0 to 32",
        ),
        (
            "CNI_TYPE=weave",
            "variables.cfg:3: CNI_TYPE=\"weave\": expected calico or flannel: Weave Net is not supported because the project has ended and its install manifest is no longer published, so the seed's weave setup is broken; hint: write CNI_TYPE=\"calico\"",
        ),
        (
            "CNI_TYPE=cilium",
            "variables.cfg:3: CNI_TYPE=\"cilium\": expected one of: calico, flannel; hint: calico is the default and the best tested",
        ),
        (
            "CALICO_VERSION=v3.30.2",
            "variables.cfg:3: CALICO_VERSION=\"v3.30.2\": expected a version like 3.30.2 (no \"v\" prefix); hint: write CALICO_VERSION=\"3.30.2\"",
        ),
        (
            "CNI_TYPE=flannel\nFLANNEL_VERSION=0.26",
            "variables.cfg:4: FLANNEL_VERSION=\"0.26\": expected a version with three parts like 0.26.0; hint: write FLANNEL_VERSION=\"0.26.0\"",
        ),
        (
            "HTTP_IMAGE_URL=\"ftp://nas.lan/k8r/\"",
            "variables.cfg:3: HTTP_IMAGE_URL=\"ftp://nas.lan/k8r/\": expected an http:// or https:// URL with a host; the scheme \"ftp\" is not supported; hint: write HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"",
        ),
        (
            "HTTP_IMAGE_URL=\"http:///k8r/\"",
            "variables.cfg:3: HTTP_IMAGE_URL=\"http:///k8r/\": expected an http:// or https:// URL with a host; the host is missing; hint: write it like http://server.lan/path/",
        ),
        (
            "HTTP_IMAGE_URL=\"nas.lan/k8r/\"",
            "variables.cfg:3: HTTP_IMAGE_URL=\"nas.lan/k8r/\": expected an http:// or https:// URL with a host; hint: write HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"",
        ),
        (
            "HTTP_IMAGE_URL=\"http://nas.lan/k8r/bootable_image.img\"",
            "variables.cfg:3: HTTP_IMAGE_URL=\"http://nas.lan/k8r/bootable_image.img\": expected the URL of the directory holding image.img.xz and boot.tar.xz (nodes download exactly those names), not of \"bootable_image.img\"; hint: write HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"",
        ),
        (
            "GITHUB_URL=\"https://\"",
            "variables.cfg:3: GITHUB_URL=\"https://\": expected an http:// or https:// URL with a host; the host is missing; hint: write it like https://server.lan/path/",
        ),
        (
            "ARCH=amd64",
            "variables.cfg:3: ARCH=\"amd64\": expected arm64: k8r builds for Raspberry Pi 4/5 running a 64-bit OS, and its Kubernetes downloads are for linux/arm64 only; hint: write ARCH=\"arm64\"",
        ),
        (
            "ROOT_SIZE=3500",
            "variables.cfg:3: ROOT_SIZE=\"3500\": expected a size like 4G or 3500M (units K, M, G, T; powers of 1024); the unit is missing; hint: write ROOT_SIZE=\"3500M\"",
        ),
        (
            "HOSTNAME_PREFIX=Pi",
            "variables.cfg:3: HOSTNAME_PREFIX=\"Pi\": expected 1-46 lower-case letters, digits or '-', not starting or ending with '-' (RFC 1123; the node appends -<serial>); hint: write HOSTNAME_PREFIX=\"pi\"",
        ),
        (
            "CONTROL_PLANE_ENDPOINT=192.168.1.10",
            "variables.cfg: POD_NETWORK_CIDR=\"192.168.0.0/16\": expected a pod network that does not contain the master's address 192.168.1.10 (from CONTROL_PLANE_ENDPOINT); this is the CNI's default range; hint: write POD_NETWORK_CIDR=\"10.244.0.0/16\"",
        ),
    ];
    for (extra, message) in cases {
        let got = if extra.starts_with("IMAGE=") {
            cfg(&format!("K8S_VERSION=1.31.0\n\n{extra}\n"))
                .unwrap_err()
                .to_string()
        } else {
            errors_with(&format!("{extra}\n"))
        };
        assert_eq!(&got, message, "for {extra}");
    }
}

#[test]
fn k8s_version_messages() {
    for (value, message) in [
        (
            "v1.29.3",
            "variables.cfg:2: K8S_VERSION=\"v1.29.3\": expected a version like 1.29.3 (no \"v\" prefix); hint: write K8S_VERSION=\"1.29.3\"",
        ),
        (
            "1.30.4",
            "variables.cfg:2: K8S_VERSION=\"1.30.4\": expected Kubernetes 1.31.0 or newer: k8r writes kubeadm configuration in the v1beta4 API only, which kubeadm accepts from 1.31 (v1beta3 is deprecated since 1.31 and removed later); hint: pick a 1.31 or newer release from https://kubernetes.io/releases/",
        ),
        (
            "1.33.0-rc.1",
            "variables.cfg:2: K8S_VERSION=\"1.33.0-rc.1\": expected a version like 1.2.3 (MAJOR.MINOR.PATCH, digits only) (pre-release and build suffixes are not supported)",
        ),
        (
            "",
            "variables.cfg:2: K8S_VERSION: expected a value for K8S_VERSION, which is required; hint: add K8S_VERSION=\"1.33.4\"",
        ),
    ] {
        let got = cfg(&format!("IMAGE=base.img\nK8S_VERSION=\"{value}\"\n")).unwrap_err().to_string();
        assert_eq!(got, message);
    }
}

#[test]
fn missing_required_keys_are_listed_last() {
    let got = cfg("# nothing\nTOKEN_TTL=1x\n").unwrap_err().to_string();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 3, "{got}");
    assert!(
        lines[0].starts_with("variables.cfg:2: TOKEN_TTL=\"1x\": expected 0"),
        "{got}"
    );
    assert_eq!(
        lines[1],
        "variables.cfg: IMAGE: expected a value for IMAGE, which is required; hint: add IMAGE=\"ubuntu-26.04-preinstalled-server-arm64+raspi.img\""
    );
    assert!(
        lines[2].starts_with("variables.cfg: K8S_VERSION: expected a value"),
        "{got}"
    );
}

#[test]
fn join_string_is_parsed_and_its_bad_parts_named() {
    let good =
        format!("kubeadm join 10.0.0.5:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}");
    let c = cfg(&format!("{MINIMAL}KUBEADM_JOIN_STRING=\"{good}\"\n")).unwrap();
    let join = c.join.as_ref().unwrap();
    assert!(!c.is_first_master());
    assert_eq!(join.raw, good);
    assert_eq!(
        join.endpoint,
        Endpoint {
            host: "10.0.0.5".into(),
            port: Some(6443)
        }
    );
    assert_eq!(join.token, TOKEN);
    assert_eq!(join.ca_cert_hash, HASH);

    let hex = &HASH["sha256:".len()..];
    for (value, part) in [
        (good.replace(TOKEN, "abcdef.0123"), "but the --token \"abcdef…\" is not 6 and 16 lower-case letters or digits joined by '.' (its secret has 4 characters where 16 belong)"),
        (good.replace(TOKEN, "abcdef.0123456789abcdeX"), "but the --token \"abcdef…\" is not 6 and 16 lower-case letters or digits joined by '.' (its secret has characters other than a-z and 0-9)"),
        (good.replace(HASH, "sha256:1234"), "but the --discovery-token-ca-cert-hash has 4 characters after \"sha256:\" where 64 hex digits belong"),
        (good.replace(&format!("--token {TOKEN} "), ""), "but --token <token> is missing"),
        (good.replace("10.0.0.5:6443", "10.0.0.5"), "but the API server address \"10.0.0.5\" is wrong: expected host:port (a DNS name or IP address, then the port): the port is missing"),
    ] {
        let got = errors_with(&format!("KUBEADM_JOIN_STRING=\"{value}\"\n"));
        // The value is shown with the token's secret and the hash hidden.
        let shown = value
            .replace(&TOKEN[6..], "…")
            .replace("abcdef.0123456789abcdeX", "abcdef…")
            .replace("abcdef.0123", "abcdef…")
            .replace(HASH, "sha256:…")
            .replace("sha256:1234", "sha256:…");
        assert!(got.starts_with(&format!("variables.cfg:3: KUBEADM_JOIN_STRING=\"{shown}\": expected a join command like `kubeadm join <host>:<port> --token")), "{got}");
        for secret in [&TOKEN[7..], "0123456789abcdeX", "abcdef.0123", hex, "sha256:1234"] {
            assert!(!got.contains(secret), "{secret} shown: {got}");
        }
        assert!(got.contains(part), "{part}\n{got}");
        assert!(got.ends_with("hint: on the master, run `kubeadm token create --print-join-command` or copy /usr/lib/k8r/join_string"), "{got}");
    }
}

#[test]
fn join_secrets_stay_hidden_in_syntax_duplicate_and_toml_errors() {
    let join = format!(
        "kubeadm join 10.0.0.5:6443 --token abcdef.0123456789abcdeX --discovery-token-ca-cert-hash {HASH}"
    );
    let hex = &HASH["sha256:".len()..];
    for got in [
        // Unquoted: the rest of the line is shown as what follows the value.
        errors_with(&format!("KUBEADM_JOIN_STRING={join}\n")),
        errors_with(&format!("KUBEADM_JOIN_STRING = \"{join}\"\n")),
        errors_with(&format!(
            "KUBEADM_JOIN_STRING=\"{join}\"\nKUBEADM_JOIN_STRING=\"{join}\"\n"
        )),
        errors_with(&format!("KUBEADM_JOIN_STRING=\"{join} $X\"\n")),
        parse_toml(
            Path::new("site.toml"),
            &format!(
                "image = \"base.img\"\nk8s_version = \"1.31.0\"\nkubeadm_join_string = \"{join}\"\n"
            ),
        )
        .unwrap_err()
        .to_string(),
    ] {
        assert!(
            got.contains("KUBEADM_JOIN_STRING") || got.contains("kubeadm_join_string"),
            "{got}"
        );
        for secret in ["0123456789abcdeX", "789abcde", hex, &hex[40..]] {
            assert!(!got.contains(secret), "{secret} shown: {got}");
        }
    }
}

#[test]
fn join_endpoint_inside_the_pod_network_is_refused() {
    let join = format!(
        "kubeadm join 192.168.1.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}"
    );
    let got = errors_with(&format!(
        "KUBEADM_JOIN_STRING=\"{join}\"\nPOD_NETWORK_CIDR=192.168.0.0/16\n"
    ));
    assert_eq!(got, "variables.cfg:4: POD_NETWORK_CIDR=\"192.168.0.0/16\": expected a pod network that does not contain the master's address 192.168.1.10 (from KUBEADM_JOIN_STRING); hint: write POD_NETWORK_CIDR=\"10.244.0.0/16\"");
}

#[test]
fn control_plane_join_without_key_warns() {
    let join = format!("kubeadm join k8s.lan:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} --control-plane");
    let c = cfg(&format!("{MINIMAL}KUBEADM_JOIN_STRING=\"{join}\"\n")).unwrap();
    assert!(c.join.as_ref().unwrap().control_plane);
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].to_string().starts_with("variables.cfg:3: KUBEADM_JOIN_STRING joins k8s.lan:6443 as a control-plane node without --certificate-key"));
}

#[test]
fn compression_is_xz_or_zstd_and_a_near_miss_names_the_fix() {
    let c = cfg(&format!("{MINIMAL}COMPRESSION=\"zstd\"\n")).unwrap();
    assert_eq!(c.compression, k8r_manifest::Compression::Zstd);
    assert!(c.render_cfg().contains("COMPRESSION=\"zstd\"\n"));
    let c = cfg(&format!("{MINIMAL}COMPRESSION=\"xz\"\n")).unwrap();
    assert_eq!(c.compression, k8r_manifest::Compression::Xz);
    assert_eq!(
        errors_with("COMPRESSION=\"zst\"\n"),
        "variables.cfg:3: COMPRESSION=\"zst\": expected zstd (lower case, the tool's name); \
         hint: write COMPRESSION=\"zstd\""
    );
    let err = errors_with("COMPRESSION=\"gzip\"\n");
    assert!(
        err.starts_with("variables.cfg:3: COMPRESSION=\"gzip\": expected one of: xz, zstd"),
        "{err}"
    );
}

#[test]
fn http_image_url_forms_are_normalised() {
    for (value, prefix, form) in [
        (
            "http://example.com/my_images/image.img.zst",
            "http://example.com/my_images/",
            UrlForm::ArtefactUrl,
        ),
        (
            "http://example.com/my_images/image.img.xz",
            "http://example.com/my_images/",
            UrlForm::ArtefactUrl,
        ),
        (
            "http://example.com/k8r/boot.tar.xz",
            "http://example.com/k8r/",
            UrlForm::ArtefactUrl,
        ),
        (
            "http://example.com/k8r/images/1.29.3/",
            "http://example.com/k8r/images/1.29.3/",
            UrlForm::Prefix,
        ),
        (
            "https://example.com/k8r/images/1.29.3",
            "https://example.com/k8r/images/1.29.3/",
            UrlForm::Prefix,
        ),
        (
            "http://nas.lan:8080",
            "http://nas.lan:8080/",
            UrlForm::Prefix,
        ),
        (
            "http://[fd00::2]:8080/k8r/",
            "http://[fd00::2]:8080/k8r/",
            UrlForm::Prefix,
        ),
    ] {
        let c = cfg(&format!("{MINIMAL}HTTP_IMAGE_URL=\"{value}\"\n")).unwrap();
        assert_eq!(
            c.http_image_url,
            Some(ImageUrl {
                prefix: prefix.into(),
                given_as: form
            }),
            "{value}"
        );
    }
}

#[test]
fn mirrors_lose_their_trailing_slash() {
    let c = cfg(&format!("{MINIMAL}GITHUB_URL=\"http://127.0.0.1:8080/gh/\"\nK8S_RELEASE_URL=http://127.0.0.1:8080/k8s\n")).unwrap();
    assert_eq!(c.mirrors.github_url, "http://127.0.0.1:8080/gh");
    assert_eq!(c.mirrors.k8s_release_url, "http://127.0.0.1:8080/k8s");
}

#[test]
fn unknown_keys_warn_with_a_suggestion() {
    let c = cfg(&format!(
        "{MINIMAL}\n\n\n\nK8S_VERISON=1.31.0\nSOMETHING_ELSE_ENTIRELY=1\n"
    ))
    .unwrap();
    let shown: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "variables.cfg:7: unknown key K8S_VERISON (did you mean K8S_VERSION?)",
            "variables.cfg:8: unknown key SOMETHING_ELSE_ENTIRELY",
        ]
    );
    // Lower case is a different (unknown) variable for bash.
    let c = cfg(&format!("{MINIMAL}cni_type=flannel\n")).unwrap();
    assert_eq!(
        c.warnings()[0].to_string(),
        "variables.cfg:3: unknown key cni_type (did you mean CNI_TYPE?)"
    );
    assert_eq!(c.cni.name(), "calico");
}

#[test]
fn duplicate_key_is_an_error() {
    let got = errors_with("K8S_VERSION=\"1.32.0\"\n");
    assert_eq!(got, "variables.cfg:3: K8S_VERSION=\"1.32.0\": expected each key once, but K8S_VERSION is already set on line 2; hint: delete one of the two lines");
}

#[test]
fn syntax_errors() {
    for (extra, message) in [
        ("CNI_TYPE=\"calico", "variables.cfg:3: CNI_TYPE: expected a closing \" on the same line; hint: close the quote; write a literal \" as \\\" (values are one line)"),
        ("HOSTNAME_PREFIX='pi", "variables.cfg:3: HOSTNAME_PREFIX: expected a closing ' on the same line; hint: close the quote (a single-quoted value cannot contain ')"),
        ("IMAGE2=\"$HOME/ubuntu.img\"", "variables.cfg:3: IMAGE2=\"$HOME/ubuntu.img\": expected a literal value (variable expansion like $VAR is not supported); hint: write the literal value instead; for a literal $ or ` write \\$ or \\` inside double quotes, or use single quotes"),
        ("ROOT_SIZE=${SIZE}", "variables.cfg:3: ROOT_SIZE=\"${SIZE}\": expected a literal value (variable expansion like $VAR is not supported)"),
        ("CNI_TYPE", "variables.cfg:3: CNI_TYPE: expected KEY=\"value\" (no '=' found); hint: every setting is one line KEY=\"value\"; comments start with #"),
        ("2FAST=1", "variables.cfg:3: 2FAST: expected a key name of letters, digits and '_', not starting with a digit; hint: key names are like K8S_VERSION; see variables.cfg.example"),
    ] {
        let got = errors_with(&format!("{extra}\n"));
        assert!(got.starts_with(message), "{extra}:\n{got}\n{message}");
    }
}

#[test]
fn escapes_crlf_export_and_comments() {
    let text = "# k8r\r\nexport IMAGE=\"my \\\"pi\\\" \\$image\\\\.img\"  # quoted\r\n  K8S_VERSION=1.32.1 # unquoted\r\nexport CNI_TYPE='flannel'\t# single\r\n\r\n";
    let c = cfg(text).unwrap();
    assert_eq!(c.image, PathBuf::from("my \"pi\" $image\\.img"));
    assert_eq!(c.k8s_version, Version::new(1, 32, 1));
    assert_eq!(c.cni.name(), "flannel");
    assert!(c.warnings().is_empty());
}

#[test]
fn several_errors_are_reported_together() {
    let text = "IMAGE=\"a.img.gz\"\nK8S_VERSION=v1.31.0\nCNI_TYPE=\"weave\nTOKEN_TTL=1d\nPOD_NETWORK_CIDR=10.0.0.1/8\nBROKEN LINE\n"; // a line without =
    let errors = cfg(text).unwrap_err();
    let lines: Vec<Option<usize>> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        [Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)],
        "{errors}"
    );
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), 6, "{shown}");
    let keys: Vec<Option<&str>> = errors.0.iter().map(|e| e.key.as_deref()).collect();
    assert_eq!(
        keys,
        [
            Some("IMAGE"),
            Some("K8S_VERSION"),
            Some("CNI_TYPE"),
            Some("TOKEN_TTL"),
            Some("POD_NETWORK_CIDR"),
            None
        ]
    );
}

#[test]
fn empty_optional_values_mean_not_set() {
    let c = cfg(&format!(
        "{MINIMAL}KUBEADM_JOIN_STRING=\"\"\nCONTROL_PLANE_ENDPOINT=\nTOKEN_TTL=''\n"
    ))
    .unwrap();
    assert_eq!(c, cfg(MINIMAL).unwrap());
}

const FULL_CFG: &str = "\
IMAGE=\"images/ubuntu.img\"
K8S_VERSION=\"1.32.3\"
CONTROL_PLANE_ENDPOINT=\"k8s.lan:6443\"
KUBEADM_JOIN_STRING=\"kubeadm join k8s.lan:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --control-plane --certificate-key fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\"
TOKEN_TTL=\"1h30m\"
CNI_TYPE=\"flannel\"
POD_NETWORK_CIDR=\"10.200.0.0/16\"
FLANNEL_VERSION=\"0.27.0\"
HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"
HOSTNAME_PREFIX=\"pi\"
ROOT_SIZE=\"3500M\"
ARCH=\"arm64\"
CONTAINERD_VERSION=\"2.0.5\"
RUNC_VERSION=\"1.2.6\"
CNI_PLUGINS_VERSION=\"1.6.2\"
CRICTL_VERSION=\"1.32.0\"
K8S_RELEASE_URL=\"http://127.0.0.1:9000/release\"
GITHUB_URL=\"http://127.0.0.1:9000/github\"
GITHUB_RAW_URL=\"http://127.0.0.1:9000/raw\"
";

const FULL_TOML: &str = r#"
image = "images/ubuntu.img"
k8s_version = "1.32.3"
control_plane_endpoint = "k8s.lan:6443"
kubeadm_join_string = """
kubeadm join k8s.lan:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --control-plane --certificate-key fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"""
TOKEN_TTL = "1h30m"
cni_type = "flannel"
pod_network_cidr = "10.200.0.0/16"
flannel_version = "0.27.0"
http_image_url = "http://nas.lan/k8r/"
hostname_prefix = "pi"
root_size = "3500M"
arch = "arm64"
containerd_version = "2.0.5"
runc_version = "1.2.6"
cni_plugins_version = "1.6.2"
crictl_version = "1.32.0"
k8s_release_url = "http://127.0.0.1:9000/release"
github_url = "http://127.0.0.1:9000/github"
github_raw_url = "http://127.0.0.1:9000/raw"
"#;

#[test]
fn toml_equivalent_parses_to_the_same_config() {
    let from_cfg = cfg(FULL_CFG).unwrap();
    let from_toml = parse_toml(Path::new("k8r.toml"), FULL_TOML).unwrap();
    assert_eq!(from_cfg, from_toml);
    assert!(
        from_toml.warnings().is_empty(),
        "{:?}",
        from_toml.warnings()
    );
    assert_eq!(from_cfg.root_size, Some(Size { bytes: 3500 << 20 }));

    let minimal = parse_toml(
        Path::new("k8r.toml"),
        "image = \"base.img\"\nk8s_version = \"1.31.0\"\ntoken_ttl = 0\n",
    )
    .unwrap();
    assert_eq!(minimal, cfg(MINIMAL).unwrap());
}

#[test]
fn toml_errors_use_the_files_spelling() {
    let text = "image = \"base.img\"\nk8s_version = \"v1.31.0\"\nk8s_verison = \"x\"\nK8S_VERSION = \"1.31.0\"\n";
    let got = parse_toml(Path::new("k8r.toml"), text)
        .unwrap_err()
        .to_string();
    assert_eq!(
        got,
        "k8r.toml:2: k8s_version=\"v1.31.0\": expected a version like 1.31.0 (no \"v\" prefix); hint: write k8s_version = \"1.31.0\"\n\
         k8r.toml:4: K8S_VERSION=\"1.31.0\": expected each key once, but k8s_version is already set on line 2; hint: delete one of the two lines"
    );
    let c = parse_toml(
        Path::new("k8r.toml"),
        "image = \"base.img\"\nk8s_version = \"1.31.0\"\nk8s_verison = \"x\"\n",
    )
    .unwrap();
    assert_eq!(
        c.warnings()[0].to_string(),
        "k8r.toml:3: unknown key k8s_verison (did you mean k8s_version?)"
    );
    let got = parse_toml(Path::new("k8r.toml"), "image = \"base.img\"\n")
        .unwrap_err()
        .to_string();
    assert_eq!(got, "k8r.toml: k8s_version: expected a value for K8S_VERSION, which is required; hint: add k8s_version = \"1.33.4\"");
    let got = parse_toml(
        Path::new("k8r.toml"),
        "image = \"base.img\"\nk8s_version = \"1.31.0\"\ncni_type = \"calico\nflannel\"\n",
    )
    .unwrap_err();
    assert_eq!(got.0[0].line, Some(3), "{got}");
}

#[test]
fn render_round_trips() {
    for text in [
        MINIMAL,
        FULL_CFG,
        &format!("{MINIMAL}CNI_TYPE=flannel\nIMAGE2=x\n"),
    ] {
        let original = cfg(text).unwrap();
        let rendered = original.render_cfg();
        let reparsed = cfg(&rendered).unwrap();
        assert_eq!(reparsed, original, "{rendered}");
        assert!(reparsed.warnings().is_empty());
        assert_eq!(reparsed.render_cfg(), rendered);
        // Every key is written, in documented order.
        let keys: Vec<&str> = rendered
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .collect();
        let documented: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        assert_eq!(keys, documented);
    }
}

#[test]
fn render_escapes_values_for_bash() {
    let c = cfg("IMAGE=\"we \\\"ird\\\" $\\`path\\\\.img\"\nK8S_VERSION=1.31.0\n");
    // `$\`` is refused unescaped; build it from escapes instead.
    assert!(c.is_err());
    let c = cfg("IMAGE=\"we \\\"ird\\\" \\$\\`path\\\\.img\"\nK8S_VERSION=1.31.0\n").unwrap();
    assert_eq!(c.image, PathBuf::from("we \"ird\" $`path\\.img"));
    let rendered = c.render_cfg();
    assert!(
        rendered.contains("IMAGE=\"we \\\"ird\\\" \\$\\`path\\\\.img\"\n"),
        "{rendered}"
    );
    assert_eq!(cfg(&rendered).unwrap(), c);
}

#[test]
fn artefact_url_renders_as_its_prefix() {
    let c = cfg(&format!(
        "{MINIMAL}HTTP_IMAGE_URL=\"http://example.com/my_images/image.img.xz\"\n"
    ))
    .unwrap();
    let again = cfg(&c.render_cfg()).unwrap();
    assert_eq!(
        again.http_image_url,
        Some(ImageUrl {
            prefix: "http://example.com/my_images/".into(),
            given_as: UrlForm::Prefix
        })
    );
    assert_eq!(again.render_cfg(), c.render_cfg());
}

#[test]
fn example_file_parses_cleanly_and_documents_every_key_in_order() {
    let c = cfg(EXAMPLE).unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let mentioned: Vec<&str> = EXAMPLE
        .lines()
        .filter_map(|l| l.trim_start_matches('#').split_once('='))
        .map(|(k, _)| k)
        .filter(|k| keys::lookup(k).is_some())
        .collect();
    let documented: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(mentioned, documented);
    for key in KEYS {
        assert!(
            EXAMPLE.contains(&format!("# {}: ", key.name)),
            "{} has no comment block",
            key.name
        );
        // Uncommenting the example line gives a valid setting.
        let line = EXAMPLE
            .lines()
            .find(|l| {
                l.trim_start_matches('#')
                    .starts_with(&format!("{}=", key.name))
            })
            .unwrap();
        let uncommented = line.trim_start_matches('#');
        let text = if key.required {
            EXAMPLE.to_string()
        } else {
            format!("{EXAMPLE}{uncommented}\n")
        };
        assert!(
            cfg(&text).is_ok(),
            "{uncommented}: {:?}",
            cfg(&text).err().map(|e| e.to_string())
        );
    }
}

#[test]
fn load_reads_password_and_resolves_the_image() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    std::fs::write(dir.path().join("images/ubuntu.img"), b"").unwrap();
    let path = dir.path().join("variables.cfg");
    std::fs::write(&path, FULL_CFG).unwrap();

    let c = load(&path).unwrap();
    assert_eq!(c.image, dir.path().join("images/ubuntu.img"));
    assert_eq!(c.password_hash, None);

    std::fs::write(dir.path().join(PASSWORD_HASH_FILE), format!("{PASSWORD}\n")).unwrap();
    assert_eq!(
        load(&path).unwrap().password_hash.as_deref(),
        Some(PASSWORD)
    );

    let toml_path = dir.path().join("k8r.toml");
    std::fs::write(&toml_path, FULL_TOML).unwrap();
    assert_eq!(load(&toml_path).unwrap(), load(&path).unwrap());

    // A bad config and a plaintext password are reported together, the password not echoed.
    std::fs::write(
        dir.path().join(PASSWORD_HASH_FILE),
        "correct horse battery\n",
    )
    .unwrap();
    std::fs::write(&path, "IMAGE=images/ubuntu.img\nK8S_VERSION=1.2\n").unwrap();
    let got = load(&path).unwrap_err().to_string();
    assert_eq!(got.lines().count(), 2, "{got}");
    assert!(got.contains("K8S_VERSION=\"1.2\""), "{got}");
    assert!(got.contains("found 21 characters, not shown"), "{got}");
    assert!(!got.contains("cor") && !got.contains("horse"), "{got}");
}

#[test]
fn load_names_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("variables.cfg");
    let got = load(&path).unwrap_err().to_string();
    assert!(
        got.starts_with(&format!(
            "{}: expected a readable configuration file (",
            path.display()
        )),
        "{got}"
    );
    assert!(
        got.ends_with("hint: copy variables.cfg.example to variables.cfg and edit it"),
        "{got}"
    );
    // The base image need not exist (inject loads a config without it).
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(load(&path).unwrap().image, dir.path().join("base.img"));
}

/// bash reads the rendered file (and the example) the way the parser does.
#[test]
fn bash_agrees_with_the_parser() {
    let Ok(probe) = std::process::Command::new("bash")
        .arg("-c")
        .arg("true")
        .status()
    else {
        eprintln!("bash not found; skipped");
        return;
    };
    assert!(probe.success());
    let dir = tempfile::tempdir().unwrap();
    let tricky = "IMAGE=\"we \\\"ird\\\" \\$\\`path # not a comment.img\"\nK8S_VERSION=1.31.0 # c\nexport CNI_TYPE='flannel'\r\n";
    for (name, text) in [
        ("rendered.cfg", cfg(tricky).unwrap().render_cfg()),
        ("example.cfg", EXAMPLE.to_string()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        let config = cfg(&text).unwrap();
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg("set -eu; source \"$1\"; printf '%s\\0%s\\0%s' \"$IMAGE\" \"$K8S_VERSION\" \"${CNI_TYPE:-calico}\"")
            .arg("bash")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        let got: Vec<&str> = stdout.split('\0').collect();
        assert_eq!(
            got,
            [
                config.image.to_str().unwrap(),
                &config.k8s_version.to_string(),
                config.cni.name()
            ],
            "{name}"
        );
    }
}

#[test]
fn signing_keys_are_build_inputs_with_their_lines_and_never_rendered() {
    let c = cfg(&format!(
        "{MINIMAL}SIGNING_KEY=\"keys/ci.key\"\nTRUSTED_KEYS=\"keys/ci.pub  keys/next.pub\"\n"
    ))
    .unwrap();
    let sk = c.signing_key.clone().unwrap();
    assert_eq!(
        (sk.path, sk.key.as_str(), sk.line),
        (PathBuf::from("keys/ci.key"), "SIGNING_KEY", Some(3))
    );
    let trusted: Vec<(PathBuf, Option<usize>)> = c
        .trusted_keys
        .iter()
        .map(|t| (t.path.clone(), t.line))
        .collect();
    assert_eq!(
        trusted,
        vec![
            (PathBuf::from("keys/ci.pub"), Some(4)),
            (PathBuf::from("keys/next.pub"), Some(4))
        ]
    );
    for rendered in [c.render_cfg(), c.render_image_cfg()] {
        assert!(!rendered.contains("keys/"), "{rendered}");
        assert!(rendered.contains("SIGNING_KEY=\"\"\n"), "{rendered}");
    }
}

#[test]
fn a_public_key_as_signing_key_and_a_secret_key_as_trusted_key_are_refused() {
    assert_eq!(
        errors_with("SIGNING_KEY=\"ci.pub\"\n"),
        "variables.cfg:3: SIGNING_KEY=\"ci.pub\": expected the secret key (the .key file), not a \
         public key: the public key goes into TRUSTED_KEYS; hint: write SIGNING_KEY=\"ci.key\""
    );
    let got = errors_with("TRUSTED_KEYS=\"a.pub ci.key\"\n");
    assert!(
        got.starts_with(
            "variables.cfg:3: TRUSTED_KEYS=\"a.pub ci.key\": expected public key files"
        ) && got.ends_with("hint: write TRUSTED_KEYS=\"a.pub ci.pub\""),
        "{got}"
    );
}

#[test]
fn load_resolves_key_paths_against_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("variables.cfg");
    std::fs::write(
        &path,
        format!("{MINIMAL}SIGNING_KEY=\"ci.key\"\nTRUSTED_KEYS=\"/abs/ci.pub\"\n"),
    )
    .unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.signing_key.unwrap().path, dir.path().join("ci.key"));
    assert_eq!(c.trusted_keys[0].path, PathBuf::from("/abs/ci.pub"));
}
