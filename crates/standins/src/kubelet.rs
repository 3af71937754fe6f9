//! Test stand-in for the `kubelet`: a long-running process that logs its arguments, fails
//! like the real kubelet when its `--config` file is missing or bad or swap is on (systemd
//! then restarts it: the crash loop before `kubeadm init`/`join`), and otherwise writes
//! `/run/k8r-standin/kubelet.pid`, marks its Node Ready with its own version when the node
//! holds the stand-in cluster state (a master), and waits for SIGTERM/SIGINT. It does not run
//! pods or static pods, serve `:10250`/`:10248`, rotate certificates, or report anything to a
//! remote master.

use crate::args::{self, switch, value, Flag};
use crate::error::{fail, Result};
use crate::state::ClusterState;
use crate::{clock, fsutil, say, warn, yaml, Ctx, Env};

/// The pid file the other stand-ins check.
pub const PID_FILE: &str = "/run/k8r-standin/kubelet.pid";

const FLAGS: &[Flag] = &[
    value("config"),
    value("kubeconfig"),
    value("bootstrap-kubeconfig"),
    value("container-runtime-endpoint"),
    value("node-ip"),
    value("hostname-override"),
    value("pod-infra-container-image"),
    value("node-labels"),
    value("register-with-taints"),
    value("cgroup-driver"),
    value("root-dir"),
    value("cert-dir"),
    value("runtime-request-timeout"),
    value("provider-id"),
    value("cloud-provider"),
    value("v").short('v'),
    switch("fail-swap-on"),
    switch("version"),
];

fn klog_error(ctx: &mut Ctx<'_>, err: &str) -> crate::Failure {
    fail(format!(
        "{}    {} run.go:72] \"command failed\" err=\"{}\"",
        clock::klog('E', ctx.env.now),
        std::process::id(),
        err.replace('"', "\\\"")
    ))
}

/// Runs the kubelet stand-in.
pub fn run(argv: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    // kubeadm writes flags as `--name=value`; accept real kubelet flags the stand-in does not
    // model in that form (e.g. from kubeletExtraArgs) rather than failing on them.
    let (argv, unmodelled): (Vec<String>, Vec<String>) =
        argv.iter().cloned().partition(|a| !unmodelled_long(a));
    let p = match args::parse(&argv, FLAGS) {
        Ok(p) => p,
        Err(e) => {
            return Err(klog_error(
                ctx,
                &format!("failed to parse kubelet flag: {e}"),
            ))
        }
    };
    if p.on("version") {
        say!(ctx, "Kubernetes {}", ctx.env.version.v());
        return Ok(());
    }
    let config = p.get("config").ok_or_else(|| {
        fail("k8r stand-in kubelet: --config is required (the kubeadm drop-in passes --config=/var/lib/kubelet/config.yaml)")
    })?;
    let cfg_path = ctx.env.user_path(config);
    let load_err = |why: String| {
        format!("failed to load kubelet config file, path: {config}, error: failed to load Kubelet config file {config}, error {why}")
    };
    let text = match std::fs::read_to_string(&cfg_path) {
        Ok(t) => t,
        Err(e) => {
            let why = format!(
                "failed to read kubelet config file \"{config}\", error: open {config}: {}",
                io_text(&e)
            );
            return Err(klog_error(ctx, &load_err(why)));
        }
    };
    let cfg = match yaml::parse_docs(&text) {
        Ok(d) if d.len() == 1 => d.into_iter().next().unwrap_or_default(),
        Ok(_) => {
            return Err(klog_error(
                ctx,
                &load_err("failed to decode: expected one YAML document".into()),
            ))
        }
        Err(e) => return Err(klog_error(ctx, &load_err(format!("failed to decode: {e}")))),
    };
    let kind = yaml::str_at(&cfg, &["kind"]).unwrap_or_default();
    let api = yaml::str_at(&cfg, &["apiVersion"]).unwrap_or_default();
    if kind != "KubeletConfiguration" || api != "kubelet.config.k8s.io/v1beta1" {
        let why = format!("failed to decode: no kind {kind:?} is registered for version {api:?} in scheme \"pkg/kubelet/apis/config/scheme/scheme.go:33\"");
        return Err(klog_error(ctx, &load_err(why)));
    }
    let fail_swap_on = if p.has("fail-swap-on") {
        p.on("fail-swap-on")
    } else {
        cfg.get("failSwapOn")
            .and_then(|v| v.as_bool())
            .unwrap_or(true)
    };
    if fail_swap_on && swap_on(ctx.env) {
        return Err(klog_error(ctx, "failed to run Kubelet: running with swap on is not supported, please disable swap or set --fail-swap-on flag to false"));
    }
    if !unmodelled.is_empty() {
        warn!(
            ctx,
            "k8r stand-in kubelet: accepted without checking: {}",
            unmodelled.join(" ")
        );
    }
    let node = node_name(ctx.env, p.get("hostname-override"));
    let mut stop = crate::signals::Stop::register()?;
    let pid_file = ctx.env.path(PID_FILE);
    let me = std::process::id();
    fsutil::write(&pid_file, format!("{me}\n"), 0o644)?;
    warn!(
        ctx,
        "{}    {me} server.go:486] \"Kubelet version\" kubeletVersion=\"{}\" (k8r stand-in: no pods are run)",
        clock::klog('I', ctx.env.now),
        ctx.env.version.v()
    );
    report_ready(ctx, &node)?;
    let _ = ctx.err.flush();
    let sig = stop.wait();
    warn!(
        ctx,
        "{}    {me} kubelet.go] \"Shutting down\" signal={sig}",
        clock::klog('I', ctx.env.now)
    );
    if std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim() == me.to_string()) {
        fsutil::remove_file(&pid_file)?;
    }
    Ok(())
}

/// `--name=value` for a flag not in [`FLAGS`].
fn unmodelled_long(arg: &str) -> bool {
    arg.strip_prefix("--")
        .and_then(|body| body.split_once('='))
        .is_some_and(|(name, _)| !FLAGS.iter().any(|f| f.long == name))
}

fn io_text(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "input/output error",
    }
}

/// Whether `/proc/swaps` (under the root) lists a swap device.
pub fn swap_on(env: &Env) -> bool {
    std::fs::read_to_string(env.path("/proc/swaps"))
        .map(|s| s.lines().skip(1).any(|l| !l.trim().is_empty()))
        .unwrap_or(false)
}

/// The node name: `--hostname-override`, else the name kubeadm recorded for this node, else
/// the host name.
pub fn node_name(env: &Env, hostname_override: Option<&str>) -> String {
    if let Some(n) = hostname_override {
        return n.to_string();
    }
    crate::kubeadm::node_record::load(env)
        .map(|r| r.name)
        .unwrap_or_else(|| env.hostname())
}

/// On a node with the cluster state (a master), mark `node` Ready with this kubelet's version.
fn report_ready(ctx: &mut Ctx<'_>, node: &str) -> Result<()> {
    if ClusterState::load(ctx.env)?.is_none() {
        return Ok(());
    }
    let env = ctx.env;
    let control_plane = env
        .path("/etc/kubernetes/manifests/kube-apiserver.yaml")
        .exists();
    ClusterState::update(env, |s| {
        let n = s.node_entry(node, env.now);
        n.ready = true;
        n.kubelet_version = env.version.to_string();
        n.control_plane |= control_plane;
        Ok(())
    })?;
    warn!(
        ctx,
        "{}    {} kubelet_node_status.go] \"Successfully registered node\" node=\"{node}\"",
        clock::klog('I', env.now),
        std::process::id()
    );
    Ok(())
}

/// The pid of the running kubelet stand-in, if its pid file names a live process started as
/// `kubelet` (zombies and reused pids do not count).
pub fn running(env: &Env) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(env.path(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let cmdline = std::fs::read(proc_dir.join("cmdline")).ok()?;
    let argv0 = cmdline.split(|&b| b == 0).next()?;
    let argv0 = String::from_utf8_lossy(argv0);
    (argv0.rsplit('/').next()? == "kubelet").then_some(pid)
}

/// Removes a stale pid file (e.g. left by a killed kubelet).
pub fn clear_pid(env: &Env) -> Result<()> {
    fsutil::remove_file(&env.path(PID_FILE)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestRoot;
    use crate::Tool;

    #[test]
    fn missing_config_fails_like_the_real_crash_loop() {
        let t = TestRoot::new();
        let r = t.run(
            Tool::Kubelet,
            &[
                "--config=/var/lib/kubelet/config.yaml",
                "--kubeconfig=/etc/kubernetes/kubelet.conf",
            ],
        );
        r.failed();
        assert!(
            r.err.contains(
                "failed to load kubelet config file, path: /var/lib/kubelet/config.yaml, error: "
            ),
            "{}",
            r.err
        );
        assert!(r.err.contains("no such file or directory"), "{}", r.err);
        assert!(!t.exists(PID_FILE));
        assert_eq!(t.read("/var/log/k8r-standin.log"), "kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf\n");
    }

    #[test]
    fn bad_config_swap_and_flags_fail() {
        let t = TestRoot::new();
        t.file(
            "/var/lib/kubelet/config.yaml",
            "apiVersion: v1\nkind: Pod\n",
        );
        let r = t.run(Tool::Kubelet, &["--config", "/var/lib/kubelet/config.yaml"]);
        r.failed();
        assert!(
            r.err.contains("no kind \\\"Pod\\\" is registered"),
            "{}",
            r.err
        );
        t.file(
            "/var/lib/kubelet/config.yaml",
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n",
        );
        t.file(
            "/proc/swaps",
            "Filename Type Size Used Priority\n/swap.img file 1024 0 -2\n",
        );
        let r = t.run(Tool::Kubelet, &["--config", "/var/lib/kubelet/config.yaml"]);
        r.failed();
        assert!(
            r.err.contains("running with swap on is not supported"),
            "{}",
            r.err
        );
        let r = t.run(Tool::Kubelet, &["--bogus"]);
        r.failed();
        assert!(r.err.contains("unknown flag: --bogus"), "{}", r.err);
        let r = t.run(Tool::Kubelet, &["--max-pods", "110"]);
        r.failed();
        assert!(r.err.contains("unknown flag: --max-pods"), "{}", r.err);
        t.file("/proc/swaps", "Filename Type Size Used Priority\n");
        t.file(
            "/var/lib/kubelet/config.yaml",
            "kind: KubeletConfiguration\n",
        );
        let r = t.run(
            Tool::Kubelet,
            &["--max-pods=110", "--config=/var/lib/kubelet/config.yaml"],
        );
        r.failed();
        assert!(
            r.err.contains(
                "no kind \\\"KubeletConfiguration\\\" is registered for version \\\"\\\""
            ),
            "a --name=value flag passes; the config is then checked: {}",
            r.err
        );
        t.run(Tool::Kubelet, &["--version"]).ok();
    }

    #[test]
    fn liveness_needs_a_live_process_named_kubelet() {
        let t = TestRoot::new();
        assert_eq!(running(&t.env), None);
        t.file(PID_FILE, &format!("{}\n", std::process::id()));
        assert_eq!(
            running(&t.env),
            None,
            "the test runner is not called kubelet"
        );
        let mut child = t.fake_kubelet();
        assert_eq!(running(&t.env), Some(child.id()));
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert_eq!(running(&t.env), None);
    }
}
