//! Host integration test of the stand-ins as programs: the host-built binary, patched to a
//! version and run under each tool's name (symlinks in a temporary directory), through a whole
//! master flow — init → kubelet running → readyz → apply → token create → upgrade apply with
//! a patched newer kubeadm → kubelet restarted at the new version — plus containerd's
//! `Type=notify` start. All paths go under a temporary `K8R_STANDIN_ROOT`. It does not use
//! systemd (the test starts and stops the daemons itself) or a second machine.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8r_standins::marker::patch_version;

const BIN: &str = env!("CARGO_BIN_EXE_k8r-standins");

const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n  - token: abcdef.0123456789abcdef\n    ttl: 24h0m0s\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.1\nnodeRegistration:\n  name: pi-1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.2\ncontrolPlaneEndpoint: k8s.lan:6443\nnetworking:\n  podSubnet: 10.244.0.0/16\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n";

const MANIFEST: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-flannel\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: kube-flannel-ds\n  namespace: kube-flannel\n";

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
}

/// A directory `dir` with a copy of the binary patched to `version` and links `names` to it.
fn install(dir: &Path, version: &str, names: &[&str]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let exe = dir.join(format!("k8r-standins-{version}"));
    let bytes = std::fs::read(BIN).expect("read binary");
    std::fs::write(&exe, patch_version(&bytes, version).expect("patch")).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for n in names {
        std::os::unix::fs::symlink(&exe, dir.join(n)).expect("symlink");
    }
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("root");
        for (p, c) in [
            ("proc/sys/net/ipv4/ip_forward", "1\n"),
            (
                "sys/fs/cgroup/cgroup.controllers",
                "cpuset cpu io memory pids\n",
            ),
            ("proc/sys/kernel/hostname", "pi-1\n"),
            (
                "proc/cmdline",
                "console=ttyAMA0 root=LABEL=writable quiet\n",
            ),
            ("etc/k8r/kubeadm.yaml", CONFIG),
            ("etc/k8r/flannel.yaml", MANIFEST),
        ] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::write(f, c).expect("write");
        }
        let bin = tmp.path().join("bin");
        install(
            &bin,
            "1.31.2",
            &["kubeadm", "kubectl", "kubelet", "containerd"],
        );
        install(
            &tmp.path().join("bin-1.32.1"),
            "1.32.1",
            &["kubeadm", "kubelet"],
        );
        World {
            root,
            bin,
            _tmp: tmp,
        }
    }

    fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bin.join(tool));
        c.env("K8R_STANDIN_ROOT", &self.root)
            .env("HOME", "/root")
            .env_remove("KUBECONFIG")
            .env_remove("NOTIFY_SOCKET");
        c
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.cmd(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run")
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.root.join(p.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn kubelet(&self, bin: &Path) -> Child {
        let flags = self.read("/var/lib/kubelet/kubeadm-flags.env");
        let flags = flags
            .trim()
            .trim_start_matches("KUBELET_KUBEADM_ARGS=\"")
            .trim_end_matches('"')
            .to_string();
        let mut c = Command::new(bin.join("kubelet"));
        c.env("K8R_STANDIN_ROOT", &self.root)
            .args([
                "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                "--kubeconfig=/etc/kubernetes/kubelet.conf",
                "--config=/var/lib/kubelet/config.yaml",
            ])
            .args(flags.split_whitespace())
            .stderr(Stdio::null());
        c.spawn().expect("spawn kubelet")
    }
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn term(child: &mut Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let code = child.wait().expect("wait");
    assert!(
        code.success(),
        "a stand-in daemon exits 0 on SIGTERM: {code:?}"
    );
}

fn node(w: &World) -> serde_json::Value {
    let out = ok(&w.run(
        "kubectl",
        &[
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "get",
            "node",
            "pi-1",
            "-o",
            "json",
        ],
    ));
    serde_json::from_str(&out).expect("node json")
}

#[test]
fn unpatched_binary_and_unknown_names_refuse_to_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let link = tmp.path().join("kubeadm");
    std::os::unix::fs::symlink(BIN, &link).expect("symlink");
    let o = Command::new(&link)
        .arg("version")
        .env("K8R_STANDIN_ROOT", tmp.path())
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("this binary is unpatched"),
        "{o:?}"
    );
    assert_eq!(o.status.code(), Some(1));
    let o = Command::new(BIN).output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("run me as one of kubeadm, kubectl, kubelet, containerd"));
}

#[test]
fn a_whole_master_flow() {
    let w = World::new();
    assert_eq!(
        ok(&w.run("kubeadm", &["version", "-o", "short"])),
        "v1.31.2\n"
    );

    let init = ok(&w.run(
        "kubeadm",
        &[
            "init",
            "--config",
            "/etc/k8r/kubeadm.yaml",
            "--upload-certs",
        ],
    ));
    let lines: Vec<&str> = init.lines().collect();
    let n = lines.len();
    assert_eq!(
        lines[n - 2],
        "kubeadm join k8s.lan:6443 --token abcdef.0123456789abcdef \\"
    );
    assert!(
        lines[n - 1].starts_with("\t--discovery-token-ca-cert-hash sha256:"),
        "{init}"
    );
    let hash = lines[n - 1]
        .trim()
        .trim_start_matches("--discovery-token-ca-cert-hash ")
        .to_string();

    let refused = err(&w.run(
        "kubectl",
        &[
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "get",
            "--raw",
            "/readyz",
        ],
    ));
    assert_eq!(refused, "The connection to the server k8s.lan:6443 was refused - did you specify the right host or port?\n");

    let mut kubelet = w.kubelet(&w.bin);
    wait_for("the kubelet's pid file", || {
        w.root.join("run/k8r-standin/kubelet.pid").exists()
    });
    assert_eq!(
        ok(&w.run(
            "kubectl",
            &[
                "--kubeconfig",
                "/etc/kubernetes/admin.conf",
                "get",
                "--raw",
                "/readyz"
            ]
        )),
        "ok"
    );
    wait_for("the node to be Ready", || {
        node(&w)["status"]["conditions"][0]["status"] == "True"
    });
    assert_eq!(node(&w)["status"]["nodeInfo"]["kubeletVersion"], "v1.31.2");

    let applied = ok(&w.run(
        "kubectl",
        &[
            "--kubeconfig=/etc/kubernetes/admin.conf",
            "apply",
            "-f",
            "/etc/k8r/flannel.yaml",
        ],
    ));
    assert_eq!(
        applied,
        "namespace/kube-flannel created\ndaemonset.apps/kube-flannel-ds created\n"
    );

    let join = ok(&w.run(
        "kubeadm",
        &["token", "create", "--print-join-command", "--ttl", "1h"],
    ));
    assert!(
        join.starts_with("kubeadm join k8s.lan:6443 --token "),
        "{join}"
    );
    assert!(
        join.ends_with(&format!(" --discovery-token-ca-cert-hash {hash} \n")),
        "{join:?}"
    );

    // The image's new kubeadm upgrades the control plane one minor up.
    let new_bin = w._tmp.path().join("bin-1.32.1");
    let mut up = Command::new(new_bin.join("kubeadm"));
    up.env("K8R_STANDIN_ROOT", &w.root)
        .args(["upgrade", "apply", "v1.32.1", "-y"]);
    let out = ok(&up.output().expect("upgrade"));
    assert!(
        out.contains(
            "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v1.32.1\". Enjoy!"
        ),
        "{out}"
    );
    assert!(w
        .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
        .contains("\n    image: registry.k8s.io/kube-apiserver:v1.32.1\n"));
    let version: serde_json::Value = serde_json::from_str(&ok(&w.run(
        "kubectl",
        &[
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "version",
            "-o",
            "json",
        ],
    )))
    .expect("json");
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.32.1");

    // The kubelet restarts at the new version.
    term(&mut kubelet);
    assert!(!w.root.join("run/k8r-standin/kubelet.pid").exists());
    let mut kubelet = w.kubelet(&new_bin);
    wait_for("the new kubelet's version", || {
        w.root.join("run/k8r-standin/kubelet.pid").exists()
            && node(&w)["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.1"
    });
    term(&mut kubelet);

    let log = w.read("/var/log/k8r-standin.log");
    assert!(log.starts_with("kubeadm version -o short\nkubeadm init --config /etc/k8r/kubeadm.yaml --upload-certs\n"), "{log}");
    assert!(
        log.contains("\nkubeadm upgrade apply v1.32.1 -y\n"),
        "{log}"
    );
    let copies: Vec<String> = std::fs::read_dir(w.root.join("var/log/k8r-standin"))
        .expect("copies")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(
        copies.contains(&"0001-kubeadm-kubeadm.yaml".to_string()),
        "{copies:?}"
    );
    assert!(
        copies.iter().any(|c| c.ends_with("-kubectl-flannel.yaml")),
        "{copies:?}"
    );
}

#[test]
fn containerd_notifies_systemd_and_serves_its_socket() {
    let w = World::new();
    assert!(ok(&w.run("containerd", &["--version"]))
        .starts_with("containerd github.com/containerd/containerd/v2 v1.31.2 "));
    let notify = w.root.join("notify.sock");
    let rx = UnixDatagram::bind(&notify).expect("bind");
    rx.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut c = w.cmd("containerd");
    c.env("NOTIFY_SOCKET", &notify).stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn containerd");
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).expect("READY=1 within 20 s");
    assert!(
        buf[..n].starts_with(b"READY=1\n"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let sock = w.root.join("run/containerd/containerd.sock");
    std::os::unix::net::UnixStream::connect(&sock).expect("the socket accepts connections");
    term(&mut child);
    assert!(!sock.exists(), "the socket is removed on stop");
}
