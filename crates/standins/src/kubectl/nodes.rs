//! Test stand-in for `kubectl get` (`--raw` health paths, Nodes), `cordon`, `uncordon`, `drain`
//! and `delete node`, against the stand-in cluster state. Nodes are rendered in the real
//! shape (`metadata.name`, `spec.unschedulable` — omitted when false, as the API server does —,
//! `status.conditions[type=Ready]`, `status.nodeInfo.kubeletVersion`). It does not list other
//! resource types, evict real pods, or wait for anything: drain reports the pods the cluster's
//! DaemonSets and Deployments would have on the node.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{connect, jsonpath, parse, to_json};
use crate::args::{switch, value};
use crate::error::{fail, Result};
use crate::state::{ClusterState, Node};
use crate::{clock, formats, say, warn, yaml, Ctx};

fn not_found(name: &str) -> crate::Failure {
    fail(format!(
        "Error from server (NotFound): nodes \"{name}\" not found"
    ))
}

/// A Node object as the API server returns it.
pub fn node_json(n: &Node, now: u64) -> Value {
    let mut labels = json!({
        "beta.kubernetes.io/arch": "arm64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
    });
    let mut taints = Vec::new();
    if n.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
        taints
            .push(json!({"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}));
    }
    if !n.ready {
        taints.push(json!({"effect": "NoSchedule", "key": "node.kubernetes.io/not-ready"}));
    }
    let mut spec = json!({});
    if n.unschedulable {
        taints.push(json!({"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable", "timeAdded": clock::rfc3339(now)}));
        spec["unschedulable"] = json!(true);
    }
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    let ready = if n.ready {
        json!({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"})
    } else {
        json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"})
    };
    let kubelet = if n.kubelet_version.is_empty() {
        String::new()
    } else {
        format!("v{}", n.kubelet_version)
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "creationTimestamp": clock::rfc3339(n.created),
            "labels": labels,
            "name": n.name,
        },
        "spec": spec,
        "status": {
            "conditions": [ready],
            "nodeInfo": {
                "architecture": "arm64",
                "containerRuntimeVersion": "containerd://2.1.4",
                "kubeProxyVersion": kubelet,
                "kubeletVersion": kubelet,
                "operatingSystem": "linux",
                "osImage": "Ubuntu (k8r stand-in)",
            },
        },
    })
}

const OUTPUTS: &str = "custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml";

/// `kubectl get …`.
pub fn get(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(
        args,
        &[
            value("raw"),
            value("output").short('o'),
            switch("no-headers"),
        ],
    )?;
    if let Some(raw) = p.get("raw") {
        let state = connect(ctx, &p)?;
        return get_raw(raw, &state, ctx);
    }
    let Some(kind) = p.positional.first() else {
        return Err(fail("error: Required resource not specified.\nUse \"kubectl explain <resource>\" for a detailed description of that resource (e.g. kubectl explain pods).\nSee 'kubectl get -h' for help and examples"));
    };
    let (kind, inline_name) = match kind.split_once('/') {
        Some((k, n)) => (k.to_string(), Some(n.to_string())),
        None => (kind.clone(), None),
    };
    if !matches!(kind.as_str(), "nodes" | "node" | "no") {
        connect(ctx, &p)?;
        return Err(fail(format!(
            "error: the server doesn't have a resource type \"{kind}\""
        )));
    }
    let output = p.get("output").unwrap_or("");
    let jsonpath = output.strip_prefix("jsonpath=");
    if !(matches!(output, "" | "json" | "yaml" | "name" | "wide") || jsonpath.is_some()) {
        return Err(fail(format!("error: unable to match a printer suitable for the output format \"{output}\", allowed formats are: {OUTPUTS}")));
    }
    let state = connect(ctx, &p)?;
    let now = ctx.env.now;
    let names: Vec<String> = inline_name
        .into_iter()
        .chain(p.positional.iter().skip(1).cloned())
        .collect();
    let selected: Vec<&Node> = if names.is_empty() {
        state.nodes.iter().collect()
    } else {
        let mut v = Vec::new();
        for n in &names {
            v.push(
                state
                    .nodes
                    .iter()
                    .find(|x| &x.name == n)
                    .ok_or_else(|| not_found(n))?,
            );
        }
        v
    };
    let single = names.len() == 1;
    let doc = if single {
        node_json(selected[0], now)
    } else {
        json!({
            "apiVersion": "v1",
            "items": selected.iter().map(|n| node_json(n, now)).collect::<Vec<_>>(),
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        })
    };
    if let Some(template) = jsonpath {
        let text = jsonpath::render(template.trim_matches('\''), &doc)
            .map_err(|e| fail(format!("error: error parsing jsonpath {template}, {e}")))?;
        let _ = write!(ctx.out, "{text}");
        return Ok(());
    }
    match output {
        "json" => say!(ctx, "{}", to_json(&doc)),
        "yaml" => {
            let _ = write!(ctx.out, "{}", yaml::to_yaml(&doc));
        }
        "name" => {
            for n in &selected {
                say!(ctx, "node/{}", n.name);
            }
        }
        _ => table(ctx, &selected, now, p.on("no-headers")),
    }
    Ok(())
}

fn table(ctx: &mut Ctx<'_>, nodes: &[&Node], now: u64, no_headers: bool) {
    if nodes.is_empty() {
        warn!(ctx, "No resources found");
        return;
    }
    let mut rows = vec![["NAME", "STATUS", "ROLES", "AGE", "VERSION"].map(String::from)];
    for n in nodes {
        let mut status = if n.ready { "Ready" } else { "NotReady" }.to_string();
        if n.unschedulable {
            status.push_str(",SchedulingDisabled");
        }
        let roles = if n.control_plane {
            "control-plane"
        } else {
            "<none>"
        };
        let version = if n.kubelet_version.is_empty() {
            String::new()
        } else {
            format!("v{}", n.kubelet_version)
        };
        rows.push([
            n.name.clone(),
            status,
            roles.into(),
            clock::age(now.saturating_sub(n.created)),
            version,
        ]);
    }
    if no_headers {
        rows.remove(0);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i == 4 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        say!(ctx, "{}", line.trim_end());
    }
}

fn get_raw(path: &str, state: &ClusterState, ctx: &mut Ctx<'_>) -> Result<()> {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    match base {
        "/readyz" | "/livez" | "/healthz" => {
            if query.contains("verbose") {
                let name = base.trim_start_matches('/');
                for check in [
                    "ping",
                    "log",
                    "etcd",
                    "poststarthook/start-apiserver-admission-initializer",
                ] {
                    say!(ctx, "[+]{check} ok");
                }
                say!(ctx, "{name} check passed");
            } else {
                let _ = write!(ctx.out, "ok");
            }
            Ok(())
        }
        "/version" => {
            say!(
                ctx,
                "{}",
                to_json(&super::version_info(state.kubernetes_version))
            );
            Ok(())
        }
        _ => Err(fail(
            "Error from server (NotFound): the server could not find the requested resource",
        )),
    }
}

fn node_names(positional: &[String], verb: &str) -> Result<Vec<String>> {
    let names: Vec<String> = positional
        .iter()
        .map(|n| {
            n.strip_prefix("node/")
                .or_else(|| n.strip_prefix("nodes/"))
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    if names.is_empty() {
        return Err(fail(format!("error: resource(s) were provided, but no name was specified\nSee 'kubectl {verb} -h' for help and examples")));
    }
    Ok(names)
}

/// `kubectl cordon NAME` / `kubectl uncordon NAME`.
pub fn cordon(args: &[String], ctx: &mut Ctx<'_>, on: bool) -> Result<()> {
    let p = parse(args, &[value("selector").short('l'), value("dry-run")])?;
    let names = node_names(&p.positional, if on { "cordon" } else { "uncordon" })?;
    connect(ctx, &p)?;
    let lines = ClusterState::update(ctx.env, |s| {
        let mut lines = Vec::new();
        for name in &names {
            let n = s.node_mut(name).ok_or_else(|| not_found(name))?;
            let word = if on { "cordoned" } else { "uncordoned" };
            if n.unschedulable == on {
                lines.push(format!("node/{name} already {word}"));
            } else {
                n.unschedulable = on;
                lines.push(format!("node/{name} {word}"));
            }
        }
        Ok(lines)
    })?;
    for l in lines {
        say!(ctx, "{l}");
    }
    Ok(())
}

/// A pod name like the controllers make (`<owner>-<5 chars>`), stable per node.
fn pod_name(owner: &str, node: &str) -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let h = Sha256::digest(format!("{owner}/{node}").as_bytes());
    let suffix: String = h[..5]
        .iter()
        .map(|b| char::from(ALPHA[usize::from(*b) % ALPHA.len()]))
        .collect();
    format!("{owner}-{suffix}")
}

/// `kubectl drain NAME --ignore-daemonsets --delete-emptydir-data [--timeout=D] [--force]`.
pub fn drain(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(
        args,
        &[
            switch("ignore-daemonsets"),
            switch("delete-emptydir-data"),
            switch("delete-local-data"),
            switch("force"),
            switch("disable-eviction"),
            value("timeout"),
            value("grace-period"),
            value("pod-selector"),
            value("selector").short('l'),
            value("skip-wait-for-delete-timeout"),
        ],
    )?;
    if let Some(t) = p.get("timeout") {
        if formats::parse_duration(t).is_none() {
            return Err(fail(format!("error: invalid argument \"{t}\" for \"--timeout\" flag: time: invalid duration \"{t}\"\nSee 'kubectl drain --help' for usage.")));
        }
    }
    let names = node_names(&p.positional, "drain")?;
    connect(ctx, &p)?;
    let ignore_ds = p.on("ignore-daemonsets");
    let delete_empty = p.on("delete-emptydir-data") || p.on("delete-local-data");
    let result = ClusterState::update(ctx.env, |s| {
        let mut out = Vec::new();
        for name in &names {
            let n = s.node_mut(name).ok_or_else(|| not_found(name))?;
            if n.unschedulable {
                out.push(format!("node/{name} already cordoned"));
            } else {
                n.unschedulable = true;
                out.push(format!("node/{name} cordoned"));
            }
        }
        Ok((out, s.objects.clone()))
    });
    let (lines, objects) = result?;
    for l in lines {
        say!(ctx, "{l}");
    }
    for name in &names {
        let ds_pods: Vec<String> = objects
            .iter()
            .filter(|o| o.kind == "DaemonSet")
            .map(|o| format!("{}/{}", o.namespace, pod_name(&o.name, name)))
            .collect();
        let local: Vec<String> = objects
            .iter()
            .filter(|o| o.uses_empty_dir && o.kind != "DaemonSet")
            .map(|o| format!("{}/{}", o.namespace, pod_name(&o.name, name)))
            .collect();
        let mut problems = Vec::new();
        if !ds_pods.is_empty() && !ignore_ds {
            problems.push(format!(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
                ds_pods.join(", ")
            ));
        }
        if !local.is_empty() && !delete_empty {
            problems.push(format!("cannot delete Pods with local storage (use --delete-emptydir-data to override): {}", local.join(", ")));
        }
        if !problems.is_empty() {
            let joined = problems.join(", ");
            return Err(fail(format!("error: unable to drain node \"{name}\" due to error: {joined}, continuing command...\nThere are pending nodes to be drained:\n {name}\n{}", problems.join("\n"))));
        }
        if !ds_pods.is_empty() {
            warn!(
                ctx,
                "Warning: ignoring DaemonSet-managed Pods: {}",
                ds_pods.join(", ")
            );
        }
        let evicted: Vec<String> = objects
            .iter()
            .filter(|o| matches!(o.kind.as_str(), "Deployment" | "StatefulSet" | "ReplicaSet"))
            .map(|o| (o.namespace.clone(), pod_name(&o.name, name)))
            .map(|(ns, pod)| format!("{ns}/{pod}"))
            .collect();
        for pod in &evicted {
            say!(ctx, "evicting pod {pod}");
        }
        for pod in &evicted {
            say!(ctx, "pod/{} evicted", pod.rsplit('/').next().unwrap_or(pod));
        }
        say!(ctx, "node/{name} drained");
    }
    Ok(())
}

/// `kubectl delete node NAME…`.
pub fn delete(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(
        args,
        &[
            switch("ignore-not-found"),
            switch("wait"),
            value("timeout"),
            value("grace-period"),
        ],
    )?;
    let mut pos = p.positional.clone();
    let first = pos.first().cloned().unwrap_or_default();
    if matches!(first.as_str(), "node" | "nodes" | "no") {
        pos.remove(0);
    } else if !first.starts_with("node/") && !first.starts_with("nodes/") {
        if first.is_empty() {
            return Err(fail("error: You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'"));
        }
        connect(ctx, &p)?;
        return Err(fail(format!("error: the server doesn't have a resource type \"{first}\" (k8r stand-in: only nodes can be deleted)")));
    }
    let names = node_names(&pos, "delete")?;
    connect(ctx, &p)?;
    let ignore = p.on("ignore-not-found");
    let deleted = ClusterState::update(ctx.env, |s| {
        let mut gone = Vec::new();
        for name in &names {
            match s.nodes.iter().position(|n| &n.name == name) {
                Some(i) => {
                    s.nodes.remove(i);
                    gone.push(name.clone());
                }
                None if ignore => {}
                None => return Err(not_found(name)),
            }
        }
        Ok(gone)
    })?;
    for n in deleted {
        say!(ctx, "node \"{n}\" deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Object;
    use crate::testutil::{TestRoot, NOW, V};
    use crate::Tool;

    const KC: &str = "--kubeconfig=/etc/kubernetes/admin.conf";

    /// A master whose API server stand-in is up; returns the fake kubelet.
    fn up(t: &TestRoot) -> std::process::Child {
        let ca = crate::pki::cert("CN=kubernetes", "").expect("ca");
        let kc = crate::kubeconfig::render(
            "10.0.0.1:6443",
            "kubernetes",
            "kubernetes-admin",
            &ca,
            &crate::kubeconfig::Client::Token("x".into()),
        );
        t.file("/etc/kubernetes/admin.conf", &kc);
        t.file(
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "image: registry.k8s.io/kube-apiserver:v1.31.2\n",
        );
        let mut s = ClusterState::new(V, "kubernetes", "10.0.0.1:6443", NOW - 600);
        let n = s.node_entry("pi-1", NOW - 600);
        n.ready = true;
        n.control_plane = true;
        n.kubelet_version = "1.31.2".into();
        s.node_entry("worker-1", NOW - 60).kubelet_version = "1.31.2".into();
        s.objects.push(Object {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            namespace: "kube-system".into(),
            name: "kube-proxy".into(),
            digest: String::new(),
            by: "kubeadm".into(),
            uses_empty_dir: false,
        });
        s.objects.push(Object {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "kube-system".into(),
            name: "metrics-server".into(),
            digest: String::new(),
            by: "kubectl".into(),
            uses_empty_dir: true,
        });
        s.create(&t.env).expect("state");
        t.fake_kubelet()
    }

    #[test]
    fn readyz_is_ok_only_while_the_apiserver_stand_in_is_up() {
        let t = TestRoot::new();
        let r = t.run(Tool::Kubectl, &[KC, "get", "--raw", "/readyz"]);
        assert!(
            r.err.contains("stat /etc/kubernetes/admin.conf"),
            "{}",
            r.err
        );
        let mut kubelet = up(&t);
        let r = t.run(Tool::Kubectl, &[KC, "get", "--raw", "/readyz"]);
        r.ok();
        assert_eq!(r.out, "ok");
        let r = t.run(Tool::Kubectl, &[KC, "get", "--raw", "/livez?verbose"]);
        r.ok();
        assert!(r.out.ends_with("livez check passed\n"), "{}", r.out);
        t.run(Tool::Kubectl, &[KC, "get", "--raw", "/nope"])
            .failed();
        kubelet.kill().expect("kill");
        kubelet.wait().expect("wait");
        let r = t.run(Tool::Kubectl, &[KC, "get", "--raw", "/readyz"]);
        r.failed();
        assert_eq!(r.err, "The connection to the server 10.0.0.1:6443 was refused - did you specify the right host or port?\n");
    }

    #[test]
    fn nodes_as_json_table_and_jsonpath() {
        let t = TestRoot::new();
        let mut kubelet = up(&t);
        let r = t.run(Tool::Kubectl, &[KC, "get", "nodes", "-o", "json"]);
        r.ok();
        let v: Value = serde_json::from_str(&r.out).expect("json");
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["metadata"]["name"], "pi-1");
        assert_eq!(v["items"][0]["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(v["items"][0]["status"]["conditions"][0]["status"], "True");
        assert_eq!(
            v["items"][0]["status"]["nodeInfo"]["kubeletVersion"],
            "v1.31.2"
        );
        assert!(v["items"][0]["spec"].get("unschedulable").is_none());
        assert_eq!(v["items"][1]["status"]["conditions"][0]["status"], "False");
        let r = t.run(Tool::Kubectl, &[KC, "get", "node", "pi-1", "-o", "json"]);
        let v: Value = serde_json::from_str(&r.out).expect("json");
        assert_eq!(v["kind"], "Node");
        let r = t.run(Tool::Kubectl, &[KC, "get", "nodes"]);
        assert_eq!(
            r.out,
            "NAME       STATUS     ROLES           AGE   VERSION\npi-1       Ready      control-plane   10m   v1.31.2\nworker-1   NotReady   <none>          60s   v1.31.2\n"
        );
        let r = t.run(
            Tool::Kubectl,
            &[
                KC,
                "get",
                "node",
                "pi-1",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        );
        assert_eq!(r.out, "True");
        let r = t.run(Tool::Kubectl, &[KC, "get", "node", "ghost"]);
        r.failed();
        assert_eq!(
            r.err,
            "Error from server (NotFound): nodes \"ghost\" not found\n"
        );
        t.run(Tool::Kubectl, &[KC, "get", "pods"]).failed();
        t.run(Tool::Kubectl, &[KC, "get", "nodes", "-o", "xml"])
            .failed();
        kubelet.kill().expect("kill");
        let _ = kubelet.wait();
    }

    #[test]
    fn cordon_drain_uncordon_delete_change_the_state() {
        let t = TestRoot::new();
        let mut kubelet = up(&t);
        let r = t.run(Tool::Kubectl, &[KC, "cordon", "worker-1"]);
        assert_eq!(r.out, "node/worker-1 cordoned\n");
        let r = t.run(Tool::Kubectl, &[KC, "cordon", "worker-1"]);
        assert_eq!(r.out, "node/worker-1 already cordoned\n");
        let unsched = |t: &TestRoot| {
            let s = ClusterState::load(&t.env).expect("load").expect("state");
            s.nodes
                .iter()
                .find(|n| n.name == "worker-1")
                .map(|n| n.unschedulable)
        };
        assert_eq!(unsched(&t), Some(true));
        t.run(Tool::Kubectl, &[KC, "uncordon", "worker-1"]).ok();
        assert_eq!(unsched(&t), Some(false));

        let r = t.run(Tool::Kubectl, &[KC, "drain", "worker-1"]);
        r.failed();
        assert!(r.err.contains("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-system/kube-proxy-"), "{}", r.err);
        assert!(
            r.err.contains("cannot delete Pods with local storage"),
            "{}",
            r.err
        );
        assert_eq!(
            unsched(&t),
            Some(true),
            "a failed drain leaves the node cordoned"
        );
        let r = t.run(
            Tool::Kubectl,
            &[
                KC,
                "drain",
                "worker-1",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=5m",
                "--force",
            ],
        );
        r.ok();
        assert!(
            r.out.starts_with(
                "node/worker-1 already cordoned\nevicting pod kube-system/metrics-server-"
            ),
            "{}",
            r.out
        );
        assert!(r.out.ends_with("node/worker-1 drained\n"), "{}", r.out);
        assert!(
            r.err
                .contains("Warning: ignoring DaemonSet-managed Pods: kube-system/kube-proxy-"),
            "{}",
            r.err
        );
        t.run(Tool::Kubectl, &[KC, "drain", "worker-1", "--timeout=soon"])
            .failed();

        let r = t.run(Tool::Kubectl, &[KC, "delete", "node", "worker-1"]);
        r.ok();
        assert_eq!(r.out, "node \"worker-1\" deleted\n");
        assert_eq!(unsched(&t), None);
        let r = t.run(Tool::Kubectl, &[KC, "delete", "node", "worker-1"]);
        r.failed();
        assert_eq!(
            r.err,
            "Error from server (NotFound): nodes \"worker-1\" not found\n"
        );
        t.run(
            Tool::Kubectl,
            &[KC, "drain", "worker-1", "--ignore-daemonsets"],
        )
        .failed();
        kubelet.kill().expect("kill");
        let _ = kubelet.wait();
    }
}
