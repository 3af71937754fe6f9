//! The `k8r` binary on a temp dir playing a node (`--root`), its recovery partition
//! (`--recovery-dir`) and data partition (`--data-dir`): the node's settings are merged at
//! boot, changed with `k8r config`, and survive a reinstall (a fresh root from the image).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BUILD_CFG: &str = "\
IMAGE=\"ubuntu.img\"
K8S_VERSION=\"1.31.2\"
KUBEADM_JOIN_STRING=\"\"
HTTP_IMAGE_URL=\"\"
TOKEN_TTL=\"0\"
";

const BUILD_INFO: &str = "BUILD_ID=b1\nK8S_VERSION=1.31.2\nARCH=arm64\nBUILD_EPOCH=1776902400\nCNI_MANIFEST=calico.yaml\n";

struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
    p1: PathBuf,
    data: PathBuf,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = Node {
            root: dir.path().join("root"),
            p1: dir.path().join("p1"),
            data: dir.path().join("data"),
            _dir: dir,
        };
        node.install_root();
        std::fs::create_dir_all(node.p1.join("k8r/node")).expect("p1");
        std::fs::create_dir_all(&node.data).expect("data");
        node
    }

    /// What the installer leaves: a root fresh from the image.
    fn install_root(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
        let put = |rel: &str, text: &str| {
            let p = self.root.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        };
        put("usr/lib/k8r/build-variables.cfg", BUILD_CFG);
        put("usr/lib/k8r/variables.cfg", BUILD_CFG);
        put("usr/lib/k8r/build-info", BUILD_INFO);
        put("etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        put("var/log/.keep", "");
    }

    fn k8r(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_k8r"))
            .arg("--root")
            .arg(&self.root)
            .arg("--recovery-dir")
            .arg(&self.p1)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .output()
            .expect("run k8r")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.k8r(args);
        assert!(
            out.status.success(),
            "k8r {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn effective(&self) -> String {
        std::fs::read_to_string(self.root.join("usr/lib/k8r/variables.cfg")).expect("effective")
    }

    fn node_file(&self) -> String {
        std::fs::read_to_string(self.p1.join("k8r/node/variables.cfg")).unwrap_or_default()
    }
}

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).expect("write");
}

#[test]
fn node_settings_are_merged_at_boot_and_survive_a_reinstall() {
    let n = Node::new();
    // The builder (or inject) wrote this node's settings on p1: a worker's join command, and a
    // stale K8S_VERSION that must not win over the image's.
    let join = "kubeadm join 10.0.0.1:6443 --token k8rtst.q7w8e9r0t1y2u3i4 --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    write(
        &n.p1.join("k8r/node/variables.cfg"),
        &format!("IMAGE=\"ubuntu.img\"\nK8S_VERSION=\"1.30.0\"\nKUBEADM_JOIN_STRING=\"{join}\"\n"),
    );
    n.ok(&["setup"]);
    let eff = n.effective();
    assert!(
        eff.contains("K8S_VERSION=\"1.31.2\""),
        "the image's version: {eff}"
    );
    assert!(eff.contains(join), "the node's join command: {eff}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(n.root.join("usr/lib/k8r/variables.cfg"))
        .expect("m")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "it holds the token");
    let run = std::fs::metadata(n.root.join("run/k8r")).expect("run dir");
    assert_eq!(
        run.permissions().mode() & 0o777,
        0o700,
        "p1, with the token, is mounted under it"
    );
    assert_eq!(n.ok(&["config", "get", "KUBEADM_JOIN_STRING"]).trim(), join);
    let shown = n.ok(&["config", "show"]);
    assert!(
        !shown.contains("q7w8e9r0t1y2u3i4") && shown.contains("k8rtst…"),
        "redacted: {shown}"
    );

    // `k8r config set` keeps the value on p1 …
    n.ok(&["config", "set", "HTTP_IMAGE_URL=http://nas.lan/k8r/"]);
    assert!(
        n.node_file()
            .contains("HTTP_IMAGE_URL=\"http://nas.lan/k8r/\""),
        "{}",
        n.node_file()
    );
    assert!(n
        .effective()
        .contains("HTTP_IMAGE_URL=\"http://nas.lan/k8r/\""));
    // … a hand edit of the effective file (the seed's way) is copied there by `config sync` …
    let edited = n
        .effective()
        .replace("TOKEN_TTL=\"0\"", "TOKEN_TTL=\"24h\"");
    write(&n.root.join("usr/lib/k8r/variables.cfg"), &edited);
    n.ok(&["config", "sync"]);
    assert!(
        n.node_file().contains("TOKEN_TTL=\"24h\""),
        "{}",
        n.node_file()
    );

    // … and both survive a reinstall: a root fresh from the image, then the boot's setup.
    n.install_root();
    assert!(!n.effective().contains("nas.lan"));
    n.ok(&["setup"]);
    let eff = n.effective();
    assert!(
        eff.contains("HTTP_IMAGE_URL=\"http://nas.lan/k8r/\""),
        "{eff}"
    );
    assert!(eff.contains("TOKEN_TTL=\"24h\""), "{eff}");
    assert!(eff.contains(join), "{eff}");

    // Unset goes back to the image's value.
    n.ok(&["config", "unset", "HTTP_IMAGE_URL"]);
    assert!(
        n.effective().contains("HTTP_IMAGE_URL=\"\""),
        "{}",
        n.effective()
    );
}

#[test]
fn a_bad_value_is_refused_and_nothing_changes() {
    let n = Node::new();
    n.ok(&["setup"]);
    let before = (n.effective(), n.node_file());
    let out = n.k8r(&["config", "set", "POD_NETWORK_CIDR=10.0.0.0/33"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("POD_NETWORK_CIDR") && err.contains("not changed"),
        "{err}"
    );
    let out = n.k8r(&["config", "set", "HTTP_IMAG_URL=x"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean HTTP_IMAGE_URL"),
        "{out:?}"
    );
    assert_eq!((n.effective(), n.node_file()), before);
}

impl Node {
    /// Runs `k8r args`, which must fail; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.k8r(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "k8r {args:?} succeeded: {err}");
        err
    }

    fn node_path(&self) -> PathBuf {
        self.p1.join("k8r/node/variables.cfg")
    }

    fn effective_path(&self) -> PathBuf {
        self.root.join("usr/lib/k8r/variables.cfg")
    }
}

/// A broken node file on the recovery partition fails the boot's setup, naming the file, the
/// line and the key; the effective settings stay as they were (also when there were none).
/// Setup has no fallback: it does not boot on the image's settings alone.
#[test]
fn setup_refuses_a_bad_node_file_and_keeps_the_effective_settings() {
    let n = Node::new();
    write(&n.node_path(), "HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"\n");
    n.ok(&["setup"]);
    let before = n.effective();
    assert!(before.contains("nas.lan"), "{before}");
    let node = n.node_path().display().to_string();
    let cases = [
        (
            "HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"\nNODE_NAME=\"pi 1\n",
            format!("{node}:2: NODE_NAME: expected a closing \" on the same line"),
        ),
        (
            "HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"\n# a hand edit\nPOD_NETWORK_CIDR=\"10.0.0.0/33\"\n",
            format!(
                "{node}:3: POD_NETWORK_CIDR=\"10.0.0.0/33\": expected a network in CIDR notation"
            ),
        ),
    ];
    for (text, expected) in &cases {
        write(&n.node_path(), text);
        let err = n.fails(&["setup"]);
        assert!(err.contains(expected.as_str()), "{expected}: {err}");
        assert!(
            !err.contains(&n.effective_path().display().to_string()),
            "not a line of the effective file: {err}"
        );
        assert_eq!(n.effective(), before, "{err}");
        assert_eq!(n.node_file(), *text, "the node's file is left for the user");
    }
    // A root fresh from an image without the effective file: none is written.
    std::fs::remove_file(n.effective_path()).expect("rm");
    for (text, expected) in &cases {
        write(&n.node_path(), text);
        let err = n.fails(&["setup"]);
        assert!(err.contains(expected.as_str()), "{expected}: {err}");
        assert!(!n.effective_path().exists(), "{err}");
    }
}

/// A hand edit of the effective file that does not validate is not copied to the recovery
/// partition: `config sync` names the file, the line and the key.
#[test]
fn config_sync_copies_nothing_of_an_invalid_hand_edit() {
    let n = Node::new();
    n.ok(&["setup"]);
    n.ok(&["config", "set", "HTTP_IMAGE_URL=http://nas.lan/k8r/"]);
    let before = n.node_file();
    assert!(before.contains("nas.lan"), "{before}");
    let good = n.effective();
    let line = good
        .lines()
        .position(|l| l.starts_with("HTTP_IMAGE_URL="))
        .expect("set")
        + 1;
    let effective = n.effective_path().display().to_string();
    for (from, to, expected) in [
        (
            "HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"",
            "HTTP_IMAGE_URL=\"ftp://nas.lan/k8r/\"",
            format!(
                "{effective}:{line}: HTTP_IMAGE_URL=\"ftp://nas.lan/k8r/\": expected an http:// or https:// URL"
            ),
        ),
        (
            "HTTP_IMAGE_URL=\"http://nas.lan/k8r/\"",
            "HTTP_IMAGE_URL=\"http://nas.lan/k8r/",
            format!("{effective}:{line}: HTTP_IMAGE_URL: expected a closing \""),
        ),
    ] {
        let edited = good.replace(from, to);
        assert_ne!(edited, good);
        write(&n.effective_path(), &edited);
        let err = n.fails(&["config", "sync"]);
        assert!(
            err.contains("the edited settings are invalid; nothing was copied")
                && err.contains(expected.as_str()),
            "{expected}: {err}"
        );
        assert_eq!(n.node_file(), before, "{err}");
        assert_eq!(n.effective(), edited, "the edit is left for the user to fix");
    }
}

#[test]
fn setup_names_the_node_and_keeps_its_identity() {
    let n = Node::new();
    n.ok(&["setup"]);
    let hostname = std::fs::read_to_string(n.root.join("etc/hostname")).expect("hostname");
    assert_eq!(
        hostname, "k8r-01234567\n",
        "no serial number: from the machine id"
    );
    let hosts = std::fs::read_to_string(n.root.join("etc/hosts")).expect("hosts");
    assert!(hosts.contains("127.0.1.1\tk8r-01234567"), "{hosts}");
    n.ok(&["config", "set", "NODE_NAME=pi-master-1"]);
    n.ok(&["setup"]);
    assert_eq!(
        std::fs::read_to_string(n.root.join("etc/hostname")).expect("h"),
        "pi-master-1\n"
    );
}

#[test]
fn help_explains_every_verb() {
    let out = Command::new(env!("CARGO_BIN_EXE_k8r"))
        .arg("--help")
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    let verbs = [
        "setup",
        "bootstrap",
        "update-image",
        "reinstall",
        "status",
        "commit",
        "trial-watch",
        "config",
        "join-command",
        "kubeconfig",
    ];
    for verb in verbs {
        // A line of the command list: the verb, then its explanation.
        let listed = text.lines().any(|l| {
            l.trim_start()
                .strip_prefix(verb)
                .is_some_and(|rest| rest.starts_with("  ") && !rest.trim().is_empty())
        });
        assert!(listed, "{verb}: {text}");
    }
    // Every verb the command line has is in the list above.
    use clap::CommandFactory;
    let mut all: Vec<String> = k8r_node::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    all.sort();
    let mut listed: Vec<String> = verbs.iter().map(|v| (*v).to_owned()).collect();
    listed.sort();
    assert_eq!(all, listed, "a verb is missing from this test");
    let out = Command::new(env!("CARGO_BIN_EXE_k8r"))
        .args(["update-image", "--help"])
        .output()
        .expect("help");
    assert!(String::from_utf8_lossy(&out.stdout).contains("HTTP_IMAGE_URL"));
}
