//! Fuzz targets for the build configuration a user writes: `variables.cfg` and its TOML form,
//! with every value check in `validate` behind them (see `docs/fuzzing.md`). Seeds:
//! `fuzz/<target>/` and `variables.cfg.example`.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use k8r_fuzzkit::{corpus, hit, input, prop_assert, prop_assert_eq, run};

use crate::{parse_cfg_for, parse_password_hash, parse_toml_for, Purpose, RawSettings};

const DIR: &str = env!("CARGO_MANIFEST_DIR");
const EXAMPLE: &str = include_str!("../../../variables.cfg.example");

/// Keys and values the validators have rules for, and shell and TOML syntax.
const DICT: &[&str] = &[
    "\n",
    "\r\n",
    "=",
    "\"",
    "'",
    "\\",
    "$",
    "`",
    "#",
    " ",
    "export ",
    "IMAGE=",
    "K8S_VERSION=",
    "CONTROL_PLANE_ENDPOINT=",
    "KUBEADM_JOIN_STRING=",
    "TOKEN_TTL=",
    "CNI_TYPE=",
    "POD_NETWORK_CIDR=",
    "HTTP_IMAGE_URL=",
    "ROOT_SIZE=",
    "NODE_NAME=",
    "HOSTNAME_PREFIX=",
    "ARCH=",
    "k8s_version = ",
    "pod_network_cidr = ",
    "\"\"\"",
    "[x]\n",
    "1.31.0",
    "v1.31.0",
    "0",
    "1h30m",
    "-1s",
    "99999999999999999999h",
    "10.244.0.0/16",
    "::/0",
    "fd00::/129",
    "[fd00::1]:6443",
    "k8s.lan:6443",
    ":65536",
    "http://",
    "https://nas.lan/k8r/",
    "manifest.toml",
    "4G",
    "3500M",
    "18446744073709551615K",
    "calico",
    "flannel",
    "arm64",
    "pi-",
    "\u{e9}",
    "\u{feff}",
    "\0",
];

fn path() -> &'static Path {
    Path::new("variables.cfg")
}

/// `variables.cfg`: a file that validates renders (`render_cfg`) to one that validates to the
/// same configuration; the raw settings round-trip too; errors format.
#[test]
fn variables_cfg() {
    let mut seeds = corpus(DIR, "variables_cfg");
    seeds.push(EXAMPLE.as_bytes().to_vec());
    run("variables_cfg", 96, input(seeds, DICT), |data| {
        let text = data.text();
        let _ = parse_password_hash(Path::new("password_hash"), &text).map_err(|e| e.to_string());
        if let Ok(raw) = RawSettings::parse(path(), &text) {
            let again = RawSettings::parse(path(), &raw.render("# header")).unwrap();
            prop_assert_eq!(again.changed_keys(&raw), Vec::<&str>::new());
        }
        match parse_cfg_for(path(), &text, Purpose::NodeSettings) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(cfg) => {
                hit("valid");
                renders_back(&cfg)?;
                let _ = cfg.render_image_cfg();
            }
        }
        Ok(())
    });
}

/// A configuration that validated renders to a `variables.cfg` that validates and renders to
/// the same text.
fn renders_back(cfg: &crate::BuildConfig) -> k8r_fuzzkit::Outcome {
    let rendered = cfg.render_cfg();
    let again = parse_cfg_for(path(), &rendered, Purpose::NodeSettings);
    prop_assert!(
        again.is_ok(),
        "{rendered:?} does not parse: {:?}",
        again.err()
    );
    prop_assert_eq!(again.unwrap().render_cfg(), rendered);
    Ok(())
}

/// The TOML form: a file that validates renders to a `variables.cfg` that validates to the
/// same configuration.
#[test]
fn config_toml() {
    run(
        "config_toml",
        96,
        input(corpus(DIR, "config_toml"), DICT),
        |data| {
            let text = data.text();
            match parse_toml_for(Path::new("k8r.toml"), &text, Purpose::NodeSettings) {
                Err(e) => prop_assert!(!e.to_string().is_empty()),
                Ok(cfg) => {
                    hit("valid");
                    renders_back(&cfg)?;
                }
            }
            Ok(())
        },
    );
}
