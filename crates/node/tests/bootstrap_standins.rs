//! `k8r bootstrap` on temp dirs playing a node, with the Kubernetes stand-ins (crates/standins,
//! the test doubles of kubeadm, kubectl and the kubelet) as the image's tools: the first
//! master's `kubeadm init` and CNI, a master after a reinstall upgraded one minor, a minor skip
//! refused with the old control plane kept, a worker's join with a stale Node, an expired
//! token and a control plane its kubelet may not run against, and `k8r kubeconfig`.
//!
//! The host-built stand-in binary is found in the target directory (`cargo xtask test` and
//! `cargo test --workspace` build it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8r_standins::marker::patch_version;

const BUILD_CFG: &str =
    "IMAGE=\"ubuntu.img\"\nK8S_VERSION=\"{v}\"\nKUBEADM_JOIN_STRING=\"\"\nTOKEN_TTL=\"0\"\n";

const CALICO: &str = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: calico-node\nspec:\n  template:\n    spec:\n      containers:\n        - name: calico-node\n          env:\n            # - name: CALICO_IPV4POOL_CIDR\n            #   value: \"192.168.0.0/16\"\n";

fn standins() -> PathBuf {
    let p = std::env::var_os("K8R_STANDINS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/k8r-standins"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p k8r-standins` (cargo xtask test does)",
        p.display()
    );
    p
}

/// A node: a root, a recovery partition and a data partition, all directories.
struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
    p1: PathBuf,
    data: PathBuf,
}

impl Node {
    /// A fresh root from an image of Kubernetes `version` with the node's own settings `node`.
    fn new(version: &str, node: &str) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = Node {
            root: dir.path().join("root"),
            p1: dir.path().join("p1"),
            data: dir.path().join("data"),
            _dir: dir,
        };
        let cfg = BUILD_CFG.replace("{v}", version);
        for (rel, text) in [
            ("usr/lib/k8r/build-variables.cfg", cfg.as_str()),
            ("usr/lib/k8r/variables.cfg", cfg.as_str()),
            ("usr/lib/k8r/cni/calico.yaml", CALICO),
            ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
            ("proc/sys/net/ipv4/ip_forward", "1\n"),
            (
                "sys/fs/cgroup/cgroup.controllers",
                "cpuset cpu io memory pids\n",
            ),
            ("proc/cmdline", "console=ttyAMA0 root=LABEL=writable\n"),
            ("run/systemd/timesync/synchronized", ""),
            ("var/log/.keep", ""),
        ] {
            n.put(rel, text);
        }
        n.put(
            "usr/lib/k8r/build-info",
            &format!("BUILD_ID=b-{version}\nK8S_VERSION={version}\nARCH=arm64\nBUILD_EPOCH=1776902400\nCNI_MANIFEST=calico.yaml\n"),
        );
        std::fs::create_dir_all(n.p1.join("k8r/node")).expect("p1");
        std::fs::write(n.p1.join("k8r/node/variables.cfg"), node).expect("node settings");
        std::fs::create_dir_all(&n.data).expect("data");
        n.tools(version);
        n.ok(&["setup"]);
        let hostname = std::fs::read_to_string(n.root.join("etc/hostname")).expect("hostname");
        n.put("proc/sys/kernel/hostname", &hostname);
        n
    }

    fn put(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    /// The stand-ins, patched to `version`, as the image's kubeadm, kubectl and kubelet.
    fn tools(&self, version: &str) {
        let bin = self.root.join("usr/local/bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let exe = bin.join("k8r-standins");
        let bytes = std::fs::read(standins()).expect("stand-ins");
        let _ = std::fs::remove_file(&exe);
        std::fs::write(&exe, patch_version(&bytes, version).expect("patch")).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for tool in ["kubeadm", "kubectl", "kubelet"] {
            let _ = std::fs::remove_file(bin.join(tool));
            std::os::unix::fs::symlink("k8r-standins", bin.join(tool)).expect("link");
        }
    }

    fn k8r(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_k8r"));
        c.arg("--root")
            .arg(&self.root)
            .arg("--recovery-dir")
            .arg(&self.p1)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .env("K8R_STANDIN_ROOT", &self.root);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.k8r(args).output().expect("k8r");
        assert!(out.status.success(), "k8r {args:?}: {}", text(&out));
        text(&out)
    }

    /// `k8r bootstrap`, with the kubelet stand-in started once kubeadm wrote its
    /// configuration (systemd does that on a node).
    fn bootstrap(&self) -> Output {
        let mut child = self
            .k8r(&[
                "bootstrap",
                "--clock-timeout",
                "5",
                "--wait-timeout",
                "30",
                "--join-retry",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bootstrap");
        let config = self.root.join("var/lib/kubelet/config.yaml");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !config.exists() && Instant::now() < deadline && matches!(child.try_wait(), Ok(None))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let kubelet = config.exists().then(|| self.kubelet());
        let out = child.wait_with_output().expect("wait");
        if let Some(mut k) = kubelet {
            let _ = k.kill();
            let _ = k.wait();
        }
        out
    }

    /// Waits until the stand-in API server answers `/readyz` (the kubelet stand-in is up).
    fn wait_api(&self) {
        let start = Instant::now();
        loop {
            let out = Command::new(self.root.join("usr/local/bin/kubectl"))
                .args([
                    "--kubeconfig",
                    "/etc/kubernetes/admin.conf",
                    "get",
                    "--raw=/readyz",
                ])
                .env("K8R_STANDIN_ROOT", &self.root)
                .output()
                .expect("kubectl");
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the API stand-in did not come up: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kubelet(&self) -> Child {
        Command::new(self.root.join("usr/local/bin/kubelet"))
            .args(["--config", "/var/lib/kubelet/config.yaml"])
            .env("K8R_STANDIN_ROOT", &self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubelet")
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn standin_log(&self) -> String {
        std::fs::read_to_string(self.root.join("var/log/k8r-standin.log")).unwrap_or_default()
    }

    /// Puts `from`'s cluster into this node's root and data partition, as the data
    /// partition's bind mounts do after a reinstall.
    fn take_cluster_of(&self, from: &Node) {
        for dir in ["etc/kubernetes", "var/lib/etcd", "var/lib/kubelet"] {
            copy(&from.root.join(dir), &self.root.join(dir));
        }
        copy(&from.data, &self.data);
        copy(
            &from.root.join("etc/kubernetes"),
            &self.data.join("kept/etc-kubernetes"),
        );
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success(), "{} -> {}", from.display(), to.display());
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn master() -> Node {
    let n = Node::new("1.31.2", "");
    let out = n.bootstrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("bootstrap done: initialised a new cluster"),
        "{}",
        text(&out)
    );
    n
}

/// The `--token` of a join command.
fn token_of(join: &str) -> String {
    join.split_whitespace()
        .skip_while(|w| *w != "--token")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Makes every bootstrap token of the node's stand-in cluster one that expired an hour ago
/// (made two hours ago with a TTL of one hour): the stand-in keeps tokens with their creation
/// time and TTL and lists only the unexpired ones, as kubeadm does.
fn expire_tokens(n: &Node) {
    use k8r_standins::state::ClusterState;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let env = k8r_standins::Env {
        root: n.root.clone(),
        version: k8r_standins::Version::new(1, 31, 2),
        now,
        knobs: k8r_standins::knobs::Knobs::default(),
        cwd: n.root.clone(),
        kubeconfig_env: None,
        home: None,
        notify_socket: None,
    };
    ClusterState::update(&env, |s| {
        assert!(!s.tokens.is_empty(), "the cluster has tokens");
        for t in &mut s.tokens {
            t.created = now - 7200;
            t.ttl_seconds = 3600;
        }
        Ok(())
    })
    .expect("expiring the tokens");
}

#[test]
fn the_first_master_initialises_its_cluster() {
    let n = master();
    let log = n.standin_log();
    assert!(
        log.contains("kubeadm init --config /var/lib/k8r/kubeadm-init.yaml"),
        "{log}"
    );
    assert!(
        log.contains(
            "kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /var/lib/k8r/cni/calico.yaml"
        ),
        "{log}"
    );
    let join = n.read("usr/lib/k8r/join_string");
    assert!(
        join.starts_with("kubeadm join ")
            && join.contains("--discovery-token-ca-cert-hash sha256:"),
        "{join}"
    );
    assert_eq!(
        std::fs::read_to_string(n.data.join("join_string")).expect("kept"),
        join
    );
    use std::os::unix::fs::PermissionsExt;
    for p in [
        n.root.join("usr/lib/k8r/join_string"),
        n.data.join("join_string"),
    ] {
        assert_eq!(
            std::fs::metadata(&p).expect("m").permissions().mode() & 0o777,
            0o600,
            "{}",
            p.display()
        );
    }
    assert!(
        n.data.join("kubelet/config.yaml").exists(),
        "the kubelet's files kept"
    );
    assert!(n
        .read("var/lib/k8r/cni/calico.yaml")
        .contains("value: \"192.168.0.0/16\""));
    let state = std::fs::read_to_string(n.data.join("node-state")).expect("state");
    assert!(state.contains("role=control-plane"), "{state}");
    // The agent's log, each line with its time, and kubeadm's output in its own log.
    let agent_log = n.read("var/log/k8r.log");
    let done = agent_log
        .lines()
        .find(|l| l.ends_with(" k8r: bootstrap done: initialised a new cluster"))
        .unwrap_or_else(|| panic!("{agent_log}"));
    assert!(
        done.starts_with(char::is_numeric),
        "a time first: {agent_log}"
    );
    assert!(
        agent_log.contains(" k8r: kubeadm init: Kubernetes 1.31.2"),
        "{agent_log}"
    );
    let kubeadm_log = n.read("var/log/kubeadm.log");
    assert!(
        kubeadm_log.lines().any(|l| l.starts_with("=== ")
            && l.contains(
                "/usr/local/bin/kubeadm init --config /var/lib/k8r/kubeadm-init.yaml (exit 0)"
            )),
        "{kubeadm_log}"
    );
    assert!(
        kubeadm_log.contains("Your Kubernetes control-plane has initialized successfully!"),
        "the stand-in's output: {kubeadm_log}"
    );
    // `k8r join-command` prints the stored command while its token is valid, a new one on ask
    // (with the control plane up: the kubelet runs it).
    let mut kubelet = n.kubelet();
    n.wait_api();
    let again = n.ok(&["join-command"]);
    assert_eq!(again.trim(), join.trim());
    let fresh = n.ok(&["join-command", "--new"]);
    assert_ne!(fresh.trim(), join.trim());
    assert_eq!(n.read("usr/lib/k8r/join_string").trim(), fresh.trim());
    // Once the stored command's token expired, a new one without asking.
    expire_tokens(&n);
    let out = n.k8r(&["join-command"]).output().expect("k8r");
    assert!(out.status.success(), "{}", text(&out));
    let renewed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        renewed.starts_with("kubeadm join ") && token_of(&renewed) != token_of(&fresh),
        "{renewed}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token has expired: making a new one"),
        "{}",
        text(&out)
    );
    assert_eq!(n.read("usr/lib/k8r/join_string").trim(), renewed);
    assert_eq!(
        std::fs::read_to_string(n.data.join("join_string"))
            .expect("kept")
            .trim(),
        renewed
    );
    let _ = kubelet.kill();
    let _ = kubelet.wait();
}

#[test]
fn a_master_after_a_reinstall_upgrades_one_minor() {
    let old = master();
    let n = Node::new("1.32.1", "");
    n.take_cluster_of(&old);
    let out = n.bootstrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("bootstrap done: control plane upgraded to Kubernetes 1.32.1"),
        "{t}"
    );
    assert!(!n.standin_log().contains("kubeadm init"), "no second init");
    assert!(n
        .standin_log()
        .contains("kubeadm upgrade apply v1.32.1 --yes"));
    assert!(n
        .read("etc/kubernetes/manifests/kube-apiserver.yaml")
        .contains("kube-apiserver:v1.32.1"));
}

#[test]
fn a_minor_skip_is_refused_and_the_old_control_plane_stays() {
    let old = master();
    let n = Node::new("1.33.0", "");
    n.take_cluster_of(&old);
    let out = n.bootstrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "a refusal: {t}");
    assert!(
        t.contains("1.32.x first") && t.contains("keeps running its 1.31.2"),
        "{t}"
    );
    assert!(
        !n.standin_log().contains("upgrade apply"),
        "nothing half-done"
    );
    assert!(n
        .read("etc/kubernetes/manifests/kube-apiserver.yaml")
        .contains("kube-apiserver:v1.31.2"));
}

const JOIN: &str = "kubeadm join 10.0.0.1:6443 --token k8rwrk.q7w8e9r0t1y2u3i4 --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn worker(cmdline: &str) -> (Node, Output) {
    let n = Node::new("1.31.2", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    n.put("proc/cmdline", &format!("console=ttyAMA0 {cmdline}\n"));
    let out = n.bootstrap();
    (n, out)
}

#[test]
fn a_worker_joins_and_waits_out_a_stale_node() {
    let (n, out) = worker("k8r.standin.join=stale-node:2");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("bootstrap done: joined the cluster")
            && t.contains("still Ready in the cluster"),
        "{t}"
    );
    let name = n.read("etc/hostname").trim().to_owned();
    let joins = n
        .standin_log()
        .lines()
        .filter(|l| l.starts_with("kubeadm join"))
        .count();
    assert_eq!(joins, 3, "two refused attempts and the join");
    assert!(n
        .standin_log()
        .contains(&format!("{JOIN} --node-name {name}")));
    assert!(n.root.join("etc/kubernetes/kubelet.conf").exists());
    // Joined: the next boot's step has nothing to do.
    let again = n.bootstrap();
    assert!(
        text(&again).contains("bootstrap done: already in the cluster"),
        "{}",
        text(&again)
    );
}

#[test]
fn an_expired_token_says_what_to_do() {
    let (_n, out) = worker("k8r.standin.join=expired-token");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("k8r join-command") && t.contains("k8r config set"),
        "{t}"
    );
}

#[test]
fn a_control_plane_the_kubelet_may_not_run_against_is_refused_before_kubeadm_join() {
    // Older than the image's kubelet, and more than three minors newer.
    for (cluster, why) in [
        ("1.30.4", "(1.31.2) is newer than the cluster's control plane (1.30.4)"),
        (
            "1.35.0",
            "(1.31.2) is more than three minor versions older than the cluster's control plane (1.35.0)",
        ),
    ] {
        let (n, out) = worker(&format!("k8r.standin.control-plane-version={cluster}"));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(why), "{t}");
        let log = n.standin_log();
        assert!(
            log.contains("kubectl --server https://10.0.0.1:6443 --insecure-skip-tls-verify"),
            "the version asked of the control plane: {log}"
        );
        assert!(
            !log.lines().any(|l| l.starts_with("kubeadm join")),
            "refused before kubeadm join: {log}"
        );
    }
}

#[test]
fn kubeconfig_prints_the_admin_kubeconfig_on_the_first_master_only() {
    let n = master();
    let out = n.k8r(&["kubeconfig"]).output().expect("k8r");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        n.read("etc/kubernetes/admin.conf")
    );
    let (w, joined) = worker("");
    assert!(joined.status.success(), "{}", text(&joined));
    let out = w.k8r(&["kubeconfig"]).output().expect("k8r");
    assert_eq!(out.status.code(), Some(2), "refused: {}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/etc/kubernetes/admin.conf is missing: this is not the first master"),
        "{}",
        text(&out)
    );
}

/// The recovery partition holds a stored build, `autoboot.txt` points at the working system.
fn with_stored_build(n: &Node) {
    use k8r_card::store::{Pointer, Store};
    use k8r_card::testkit::{write_build, BuildSpec};
    let store = Store::new(&n.p1);
    write_build(&store.build_dir("b1").expect("id"), &BuildSpec::new("b1"));
    store
        .set_pointer(&Pointer::to("b1").expect("id"))
        .expect("pointer");
    std::fs::write(
        n.p1.join("autoboot.txt"),
        "[all]\ntryboot_a_b=1\nboot_partition=2\n",
    )
    .expect("autoboot");
}

#[test]
fn reinstall_drains_with_admin_credentials_and_points_the_card_at_recovery() {
    let n = master();
    with_stored_build(&n);
    // The running build is still on trial: the reinstall is no failed trial.
    std::fs::write(
        n.p1.join("k8r/trial"),
        "build=b-1.31.2\nkind=new\nphase=boot\n",
    )
    .expect("trial");
    let mut kubelet = n.kubelet();
    n.wait_api();
    let out = n
        .k8r(&["reinstall", "--drain", "--no-reboot"])
        .output()
        .expect("reinstall");
    let _ = kubelet.kill();
    let _ = kubelet.wait();
    assert!(out.status.success(), "{}", text(&out));
    let name = n.read("etc/hostname").trim().to_owned();
    let log = n.standin_log();
    assert!(
        log.contains(&format!(
            "kubectl --kubeconfig /etc/kubernetes/admin.conf cordon {name}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "drain {name} --ignore-daemonsets --delete-emptydir-data"
        )),
        "{log}"
    );
    let autoboot = std::fs::read_to_string(n.p1.join("autoboot.txt")).expect("autoboot");
    assert_eq!(autoboot, "[all]\ntryboot_a_b=1\nboot_partition=1\n");
    let install_log = std::fs::read_to_string(n.p1.join("k8r/install.log")).expect("log");
    assert!(install_log.contains("reinstall requested"), "{install_log}");
    let trial = std::fs::read_to_string(n.p1.join("k8r/trial")).expect("trial");
    assert_eq!(trial, "build=b1\nkind=new\nphase=install\n");
}

#[test]
fn reinstall_refuses_a_damaged_stored_build_and_changes_nothing() {
    let n = Node::new("1.31.2", "");
    with_stored_build(&n);
    let xz = n.p1.join("k8r/images/b1/image.img.xz");
    let mut bytes = std::fs::read(&xz).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&xz, bytes).expect("damage");
    let out = n
        .k8r(&["reinstall", "--no-reboot"])
        .output()
        .expect("reinstall");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("does not verify") && t.contains("image.img.xz"),
        "{t}"
    );
    let autoboot = std::fs::read_to_string(n.p1.join("autoboot.txt")).expect("autoboot");
    assert!(
        autoboot.contains("boot_partition=2"),
        "untouched: {autoboot}"
    );
}

// The trial commit (crate::trial, k8r_card::trial): the card boots a fresh install on trial
// with autoboot.txt still at recovery; the agent commits once the node is locally healthy.

const ON_RECOVERY: &str = "[all]\ntryboot_a_b=1\nboot_partition=1\n";
const ON_WORKING: &str = "[all]\ntryboot_a_b=1\nboot_partition=2\n";

impl Node {
    /// The card as the installer leaves it after installing `build`: a pending trial.
    fn on_trial(&self, build: &str) {
        std::fs::write(self.p1.join("autoboot.txt"), ON_RECOVERY).expect("autoboot");
        std::fs::write(
            self.p1.join("k8r/trial"),
            format!("build={build}\nkind=new\nphase=boot\n"),
        )
        .expect("trial");
    }

    fn autoboot(&self) -> String {
        std::fs::read_to_string(self.p1.join("autoboot.txt")).expect("autoboot")
    }

    fn trial(&self) -> String {
        std::fs::read_to_string(self.p1.join("k8r/trial")).expect("trial")
    }

    /// The containerd stand-in, listening on the root's containerd socket.
    fn containerd(&self) -> Child {
        let bin = self.root.join("usr/local/bin");
        let _ = std::fs::remove_file(bin.join("containerd"));
        std::os::unix::fs::symlink("k8r-standins", bin.join("containerd")).expect("link");
        let child = Command::new(bin.join("containerd"))
            .env("K8R_STANDIN_ROOT", &self.root)
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("containerd");
        let sock = self.root.join("run/containerd/containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "containerd stand-in: no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn a_worker_that_cannot_reach_its_master_commits_once_setup_and_containerd_run() {
    // Not joined (no bootstrap ran, no master anywhere): health is local.
    let n = Node::new("1.31.2", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    n.on_trial("b-1.31.2");
    let status = n.ok(&["status"]);
    assert!(
        status.contains("trial:       build b-1.31.2 on trial, not committed"),
        "{status}"
    );
    // Unhealthy (no containerd): `k8r commit` refuses and changes nothing.
    let out = n.k8r(&["commit"]).output().expect("k8r");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("containerd"), "{}", text(&out));
    assert_eq!(n.autoboot(), ON_RECOVERY);
    let containerd = n.containerd();
    let out = n.ok(&["trial-watch", "--timeout", "60", "--interval-ms", "100"]);
    stop(containerd);
    assert!(out.contains("committed"), "{out}");
    assert_eq!(n.autoboot(), ON_WORKING);
    assert!(n.trial().contains("phase=committed"), "{}", n.trial());
    let log = std::fs::read_to_string(n.p1.join("k8r/install.log")).expect("log");
    assert!(
        log.contains("build b-1.31.2: committed by the node agent"),
        "{log}"
    );
    // Later boots: nothing to do.
    let again = n.ok(&["trial-watch", "--timeout", "1", "--interval-ms", "100"]);
    assert!(again.contains("trial watch: no trial pending"), "{again}");
}

#[test]
fn a_trial_not_healthy_in_time_is_given_up_with_its_cause() {
    let n = Node::new("1.31.2", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    n.on_trial("b-1.31.2");
    let out = n.ok(&["trial-watch", "--timeout", "1", "--interval-ms", "100"]);
    assert!(out.contains("not rebooting a test root"), "{out}");
    assert_eq!(n.autoboot(), ON_RECOVERY, "recovery decides next");
    let trial = n.trial();
    assert!(trial.contains("phase=boot"), "{trial}");
    assert!(
        trial.contains("failure=build b-1.31.2 not healthy 1 s after boot: containerd not up"),
        "{trial}"
    );
    let log = std::fs::read_to_string(n.p1.join("k8r/install.log")).expect("log");
    assert!(log.contains("trial given up by the node agent"), "{log}");
}

/// `k8r trial-watch` without `--timeout`, as k8r-trial.service runs it, on a root whose
/// `/proc/uptime` says 100 s; its output once it ended, or `None` if still running after 15 s.
fn watch_at_100_s(n: &Node) -> Option<String> {
    n.put("proc/uptime", "100.00 180.00\n");
    let mut child = n
        .k8r(&["trial-watch", "--interval-ms", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("k8r");
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return Some(text(&child.wait_with_output().expect("output")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    assert!(
        text(&out).contains("commit within 600 s of boot"),
        "{}",
        text(&out)
    );
    None
}

#[test]
fn status_names_the_last_rollback_and_its_cause() {
    let n = Node::new("1.31.2", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    std::fs::write(
        n.p1.join("k8r/install.log"),
        "[    3.100000] build b-bad: rollback: build b-bad failed its trial (panic); installing the previous build b-1.31.2\n\
         [    9.200000] build b-1.31.2: install verified\n",
    )
    .expect("log");
    let status = n.ok(&["status"]);
    assert!(
        status.contains("last rollback: build b-bad: rollback: build b-bad failed its trial (panic); installing the previous build b-1.31.2"),
        "{status}"
    );
    assert!(
        status.contains("install log: [    9.200000] build b-1.31.2: install verified"),
        "{status}"
    );
}

#[test]
fn the_trial_timeout_is_the_nodes_trial_timeout_setting() {
    let n = Node::new(
        "1.31.2",
        &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\nTRIAL_TIMEOUT=\"1m\"\n"),
    );
    n.on_trial("b-1.31.2");
    let out = watch_at_100_s(&n).expect("given up at once: 100 s is past TRIAL_TIMEOUT=1m");
    assert!(out.contains("not healthy 60 s after boot"), "{out}");
    assert_eq!(n.autoboot(), ON_RECOVERY);
    // Without the setting: the default, 10 minutes, so at 100 s it still waits.
    let n = Node::new("1.31.2", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    n.on_trial("b-1.31.2");
    assert_eq!(watch_at_100_s(&n), None, "waits within the default");
}

#[test]
fn a_healthy_trial_of_another_build_than_the_running_one_is_given_up() {
    let n = Node::new("1.31.2", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    n.on_trial("b-other");
    let containerd = n.containerd();
    let out = n.ok(&["trial-watch", "--timeout", "60", "--interval-ms", "100"]);
    stop(containerd);
    assert!(out.contains("trial watch: trial failed: "), "{out}");
    assert!(
        n.trial().contains("but build b-1.31.2 is running"),
        "{}",
        n.trial()
    );
    assert_eq!(n.autoboot(), ON_RECOVERY);
}

#[test]
fn a_master_upgrading_commits_its_trial_before_kubeadm_upgrade_apply() {
    let old = master();
    // Without containerd the node is not healthy: no commit, and so no upgrade.
    let n = Node::new("1.32.1", "");
    n.take_cluster_of(&old);
    n.on_trial("b-1.32.1");
    let out = n.bootstrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not upgrading: this build's trial is not committed"));
    assert!(
        !n.standin_log().contains("upgrade apply"),
        "nothing half-done"
    );
    assert_eq!(n.autoboot(), ON_RECOVERY);
    // Healthy: committed, then upgraded.
    let containerd = n.containerd();
    let out = n.bootstrap();
    stop(containerd);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("build b-1.32.1 committed before kubeadm upgrade apply"),
        "{t}"
    );
    assert!(
        t.contains("control plane upgraded to Kubernetes 1.32.1"),
        "{t}"
    );
    assert_eq!(n.autoboot(), ON_WORKING);
    assert!(n.trial().contains("phase=committed"));
}

/// A worker with a stored build whose card trusts key `old` (the build before this one
/// brought it), running a build made with `TRUSTED_KEYS` = `old` and `new`.
fn rotating_keys() -> (
    Node,
    k8r_card::recovery::Recovery,
    k8r_card::testkit::KeyPair,
    k8r_card::testkit::KeyPair,
) {
    use k8r_card::testkit::{keypair, trusted};
    use k8r_card::trust::CardTrust;
    let n = Node::new("1.31.2", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    with_stored_build(&n);
    let (old, new) = (keypair(), keypair());
    let recovery = k8r_card::recovery::Recovery::new(&n.p1);
    recovery
        .write_trust(&CardTrust {
            keys: trusted(&[&old]),
            since_build: Some("b-before".into()),
        })
        .expect("trust");
    n.put("usr/lib/k8r/trusted-keys", &trusted(&[&old, &new]).render());
    (n, recovery, old, new)
}

#[test]
fn a_commit_takes_in_the_builds_trusted_keys_for_the_next_update() {
    use k8r_card::testkit::trusted;
    use k8r_card::trust::CardTrust;
    let (n, recovery, old, new) = rotating_keys();
    let status = n.ok(&["status"]);
    assert!(
        status.contains("signature:   REFUSED: build b1: manifest.toml is not signed"),
        "the stored build is unsigned and the card has a key: {status}"
    );
    n.on_trial("b-1.31.2");
    // Not committed yet: the old list is in force.
    assert_eq!(recovery.trust().expect("trust").keys, trusted(&[&old]));
    let containerd = n.containerd();
    let out = n.ok(&["trial-watch", "--timeout", "60", "--interval-ms", "100"]);
    stop(containerd);
    assert!(out.contains("committed"), "{out}");
    let now = recovery.trust().expect("trust");
    assert_eq!(now.keys, trusted(&[&old, &new]));
    assert_eq!(now.since_build.as_deref(), Some("b-1.31.2"));
    let log = recovery.install_log();
    assert!(log.contains("this card now trusts key ID"), "{log}");
    // A list written for this build afterwards (inject) is not replaced at the next boot.
    recovery
        .write_trust(&CardTrust {
            keys: trusted(&[&new]),
            since_build: Some("b-1.31.2".into()),
        })
        .expect("inject");
    n.ok(&["trial-watch", "--timeout", "1", "--interval-ms", "100"]);
    assert_eq!(recovery.trust().expect("trust").keys, trusted(&[&new]));
}

#[test]
fn a_commit_cut_short_at_each_step_is_finished_or_left_for_recovery() {
    use k8r_card::testkit::trusted;
    // (failpoint, autoboot.txt after the cut, the record's phase after the cut)
    let cuts = [
        ("trial-before-commit", ON_RECOVERY, "phase=boot"),
        ("trial-after-autoboot", ON_WORKING, "phase=boot"),
        ("trial-after-record", ON_WORKING, "phase=committed"),
    ];
    for (point, autoboot, phase) in cuts {
        let (n, recovery, old, new) = rotating_keys();
        n.on_trial("b-1.31.2");
        let containerd = n.containerd();
        let cut = n
            .k8r(&["trial-watch", "--timeout", "60", "--interval-ms", "100"])
            .env("K8R_FAILPOINT", point)
            .output()
            .expect("k8r");
        let t = text(&cut);
        assert!(!cut.status.success(), "{point}: {t}");
        assert!(
            t.contains(&format!("k8r-failpoint: {point}")),
            "{point}: {t}"
        );
        assert_eq!(n.autoboot(), autoboot, "{point}");
        assert!(n.trial().contains(phase), "{point}: {}", n.trial());
        assert_eq!(
            recovery.trust().expect("trust").keys,
            trusted(&[&old]),
            "{point}: the old keys stay until the commit is whole"
        );
        if autoboot == ON_RECOVERY {
            // The power cut's reset boots recovery, which finds the trial uncommitted: the
            // rows of k8r_card::trial's failure matrix. Nothing for the agent to finish.
            stop(containerd);
            continue;
        }
        // The next boot is the working system again (autoboot.txt says so): its agent
        // finishes the commit.
        let out = n.ok(&["trial-watch", "--timeout", "60", "--interval-ms", "100"]);
        stop(containerd);
        assert!(
            out.contains("committed") || out.contains("no trial pending"),
            "{point}: {out}"
        );
        assert_eq!(n.autoboot(), ON_WORKING, "{point}");
        assert!(n.trial().contains("phase=committed"), "{point}");
        assert_eq!(
            recovery.trust().expect("trust").keys,
            trusted(&[&old, &new]),
            "{point}: the build's keys taken in at the next boot"
        );
    }
}
