//! Test stand-in for `kubectl`: finds the API server in the kubeconfig (`--kubeconfig`,
//! `$KUBECONFIG`, `~/.kube/config`), refuses the connection the way kubectl reports it unless
//! the stand-in API server is "up" (the kubelet stand-in runs, the kube-apiserver static pod
//! manifest exists, the cluster state exists, all on this node), and serves `get --raw`,
//! `apply -f`, `get nodes`, `cordon`, `uncordon`, `drain`, `delete node` and `version` from the
//! cluster state. It does not talk to a network server, merge kubeconfigs, watch, wait for
//! rollouts, or know any resource types beyond Nodes and the identities of applied objects.
//!
//! One exception stands in for another machine's API server: `version --server URL` on a node
//! whose own API server stand-in is not up (a worker before its join) answers with the version
//! of the cluster a node joins, as `kubeadm join`'s stand-in sees it (the
//! `k8r.standin.control-plane-version` knob, default its own version): a real API server
//! serves `/version` to anyone, without credentials.

mod apply;
mod jsonpath;
mod nodes;

use serde_json::{json, Value};

use crate::args::{self, value, Flag};
use crate::error::{fail, Result};
use crate::state::ClusterState;
use crate::{kubeconfig, kubelet, say, yaml, Ctx, Env};

/// Flags every kubectl command takes.
pub const GLOBAL: &[Flag] = &[
    value("kubeconfig"),
    value("namespace").short('n'),
    value("v").short('v'),
    value("request-timeout"),
    value("server").short('s'),
    value("context"),
    args::switch("insecure-skip-tls-verify"),
];

/// The kustomize version kubectl reports.
pub const KUSTOMIZE: &str = "v5.4.2";

/// Runs the kubectl stand-in.
pub fn run(argv: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let (verb, rest) = split_verb(argv);
    match verb.as_deref() {
        Some("version") => version(&rest, ctx),
        Some("get") => nodes::get(&rest, ctx),
        Some("apply") => apply::apply(&rest, ctx),
        Some("cordon") => nodes::cordon(&rest, ctx, true),
        Some("uncordon") => nodes::cordon(&rest, ctx, false),
        Some("drain") => nodes::drain(&rest, ctx),
        Some("delete") => nodes::delete(&rest, ctx),
        Some(other) => Err(fail(format!(
            "error: unknown command \"{other}\" for \"kubectl\"\nRun 'kubectl --help' for usage."
        ))),
        None => Err(fail(
            "kubectl controls the Kubernetes cluster manager (k8r stand-in: version, get, apply, cordon, uncordon, drain, delete)",
        )),
    }
}

/// The verb (first word that is neither a global flag nor its value) and the other args.
fn split_verb(argv: &[String]) -> (Option<String>, Vec<String>) {
    let mut rest = Vec::new();
    let mut verb = None;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if verb.is_some() {
            rest.push(a.clone());
            continue;
        }
        if let Some(name) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) {
            rest.push(a.clone());
            let takes = GLOBAL.iter().any(|f| {
                f.value && (f.long == name || (name.len() == 1 && f.short == name.chars().next()))
            });
            if takes && !name.contains('=') {
                if let Some(v) = it.next() {
                    rest.push(v.clone());
                }
            }
        } else {
            verb = Some(a.clone());
        }
    }
    (verb, rest)
}

/// Parses `args` with the command's `flags` plus the global ones.
pub fn parse(args: &[String], flags: &[Flag]) -> Result<args::Parsed> {
    let all: Vec<Flag> = GLOBAL.iter().chain(flags).copied().collect();
    args::parse(args, &all)
        .map_err(|e| fail(format!("error: {e}\nSee 'kubectl --help' for usage.")))
}

/// The kubeconfig kubectl would use: `(path shown, path under root)`, or `None` for the
/// built-in default (`localhost:8080`).
fn kubeconfig_path(env: &Env, flag: Option<&str>) -> Result<Option<(String, std::path::PathBuf)>> {
    if let Some(f) = flag {
        let p = env.user_path(f);
        if !p.exists() {
            return Err(fail(format!("error: stat {f}: no such file or directory")));
        }
        return Ok(Some((f.to_string(), p)));
    }
    if let Some(list) = &env.kubeconfig_env {
        for f in list.split(':').filter(|f| !f.is_empty()) {
            let p = env.user_path(f);
            if p.exists() {
                return Ok(Some((f.to_string(), p)));
            }
        }
        return Ok(None);
    }
    if let Some(home) = &env.home {
        let f = format!("{}/.kube/config", home.trim_end_matches('/'));
        let p = env.user_path(&f);
        if p.exists() {
            return Ok(Some((f, p)));
        }
    }
    Ok(None)
}

/// The server's `host:port` from the kubeconfig (`localhost:8080` without one).
pub fn server(env: &Env, p: &args::Parsed) -> Result<String> {
    if let Some(s) = p.get("server") {
        return Ok(s
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string());
    }
    match kubeconfig_path(env, p.get("kubeconfig"))? {
        None => Ok("localhost:8080".into()),
        Some((shown, path)) => {
            let text = crate::fsutil::read(&path)?;
            kubeconfig::server(&text)
                .map_err(|e| fail(format!("error: error loading config file \"{shown}\": {e}")))
        }
    }
}

/// Whether the stand-in API server on this node is up; `Err` names the missing piece.
pub fn apiserver_up(env: &Env) -> std::result::Result<ClusterState, &'static str> {
    if kubelet::running(env).is_none() {
        return Err("the kubelet stand-in is not running");
    }
    if !env
        .path("/etc/kubernetes/manifests/kube-apiserver.yaml")
        .exists()
    {
        return Err("there is no kube-apiserver static pod manifest");
    }
    match ClusterState::load(env) {
        Ok(Some(s)) => Ok(s),
        _ => Err("there is no cluster state in /var/lib/etcd"),
    }
}

/// kubectl's refused-connection error for `server`.
pub fn refused(server: &str) -> crate::Failure {
    fail(format!(
        "The connection to the server {server} was refused - did you specify the right host or port?"
    ))
}

/// Connects: the cluster state if the API server is up, else kubectl's refusal.
pub fn connect(ctx: &mut Ctx<'_>, p: &args::Parsed) -> Result<ClusterState> {
    let server = server(ctx.env, p)?;
    if server == "localhost:8080" {
        return Err(refused(&server));
    }
    apiserver_up(ctx.env).map_err(|_| refused(&server))
}

/// kubectl's JSON (four-space indent).
pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return "{}".into();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The version object kubectl and the API server print.
pub fn version_info(v: crate::Version) -> Value {
    let platform = match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        "x86_64" => "linux/amd64",
        other => other,
    };
    json!({
        "major": v.major.to_string(),
        "minor": v.minor.to_string(),
        "gitVersion": v.v(),
        "gitCommit": "k8r-standin",
        "gitTreeState": "clean",
        "buildDate": "2026-04-23T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": platform,
    })
}

fn version(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(args, &[args::switch("client"), value("output").short('o')])?;
    let output = p.get("output").unwrap_or("");
    if !matches!(output, "" | "json" | "yaml") {
        return Err(fail("error: --output must be 'yaml' or 'json'"));
    }
    let client = version_info(ctx.env.version);
    let server = if p.on("client") {
        None
    } else {
        Some(match connect(ctx, &p) {
            Ok(s) => Ok(s.kubernetes_version),
            Err(_) if p.get("server").is_some() && apiserver_up(ctx.env).is_err() => Ok(ctx
                .env
                .knobs
                .control_plane_version
                .unwrap_or(ctx.env.version)),
            Err(e) => Err(e),
        })
    };
    let mut doc = json!({"clientVersion": client, "kustomizeVersion": KUSTOMIZE});
    if let Some(Ok(v)) = &server {
        doc["serverVersion"] = version_info(*v);
    }
    match output {
        "json" => say!(ctx, "{}", to_json(&doc)),
        "yaml" => {
            let _ = write!(ctx.out, "{}", yaml::to_yaml(&doc));
        }
        _ => {
            say!(ctx, "Client Version: {}", ctx.env.version.v());
            say!(ctx, "Kustomize Version: {KUSTOMIZE}");
            if let Some(Ok(v)) = &server {
                say!(ctx, "Server Version: {}", v.v());
            }
        }
    }
    match server {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestRoot;
    use crate::Tool;

    #[test]
    fn finds_the_verb_after_global_flags() {
        let a: Vec<String> = [
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "get",
            "--raw",
            "/readyz",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (verb, rest) = split_verb(&a);
        assert_eq!(verb.as_deref(), Some("get"));
        assert_eq!(
            rest,
            [
                "--kubeconfig",
                "/etc/kubernetes/admin.conf",
                "--raw",
                "/readyz"
            ]
        );
    }

    #[test]
    fn unknown_verbs_and_missing_kubeconfigs_fail_like_kubectl() {
        let t = TestRoot::new();
        let r = t.run(Tool::Kubectl, &["frob"]);
        r.failed();
        assert!(
            r.err
                .starts_with("error: unknown command \"frob\" for \"kubectl\""),
            "{}",
            r.err
        );
        let r = t.run(
            Tool::Kubectl,
            &["--kubeconfig", "/etc/kubernetes/admin.conf", "get", "nodes"],
        );
        r.failed();
        assert_eq!(
            r.err,
            "error: stat /etc/kubernetes/admin.conf: no such file or directory\n"
        );
        let r = t.run(Tool::Kubectl, &["get", "nodes"]);
        r.failed();
        assert_eq!(
            r.err,
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n"
        );
        let r = t.run(Tool::Kubectl, &["version", "--client"]);
        r.ok();
        assert_eq!(
            r.out,
            "Client Version: v1.31.2\nKustomize Version: v5.4.2\n"
        );
        let r = t.run(Tool::Kubectl, &["version", "--client", "-o", "json"]);
        r.ok();
        let v: Value = serde_json::from_str(&r.out).expect("json");
        assert_eq!(v["clientVersion"]["gitVersion"], "v1.31.2");
        assert!(v.get("serverVersion").is_none());
    }

    #[test]
    fn the_cluster_a_node_joins_answers_its_version_without_credentials() {
        let mut t = TestRoot::new();
        let ask = [
            "--server",
            "https://10.0.0.1:6443",
            "--insecure-skip-tls-verify",
            "--request-timeout",
            "10s",
            "version",
            "-o",
            "json",
        ];
        let r = t.run(Tool::Kubectl, &ask);
        r.ok();
        let v: Value = serde_json::from_str(&r.out).expect("json");
        assert_eq!(v["serverVersion"]["gitVersion"], "v1.31.2", "its own");
        t.cmdline("k8r.standin.control-plane-version=1.30.4");
        let r = t.run(Tool::Kubectl, &ask);
        r.ok();
        let v: Value = serde_json::from_str(&r.out).expect("json");
        assert_eq!(v["serverVersion"]["gitVersion"], "v1.30.4", "the knob");
        // Only the version: other requests need this node's own API server.
        let r = t.run(
            Tool::Kubectl,
            &["--server", "https://10.0.0.1:6443", "get", "nodes"],
        );
        r.failed();
        assert!(r.err.contains("10.0.0.1:6443 was refused"), "{}", r.err);
    }
}
