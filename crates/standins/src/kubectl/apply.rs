//! Test stand-in for `kubectl apply -f FILE|DIR|-`: every document must parse and carry
//! `apiVersion`, `kind` and `metadata.name` (else nothing is applied); kinds of API groups that
//! are not built in need a CustomResourceDefinition of that group applied earlier, as the real
//! RESTMapper does; each object is recorded in the cluster state and reported as `created`,
//! `configured` or `unchanged` in kubectl's `<kind>.<group>/<name>` form. It does not run
//! admission, defaulting, pruning or server-side field management: "configured" means the
//! document's digest changed.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{connect, parse};
use crate::args::{switch, value};
use crate::error::{fail, IoContext, Result};
use crate::state::{ClusterState, Object};
use crate::{random, say, warn, yaml, Ctx};

const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
];

const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// kubectl's `<kind>.<group>/<name>` for an object.
pub fn display(kind: &str, api_version: &str, name: &str) -> String {
    let g = group(api_version);
    let k = kind.to_lowercase();
    if g.is_empty() {
        format!("{k}/{name}")
    } else {
        format!("{k}.{g}/{name}")
    }
}

struct Doc {
    source: String,
    value: Value,
}

fn read_sources(
    files: &[String],
    recursive: bool,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for f in files {
        if f == "-" {
            let mut s = String::new();
            ctx.stdin
                .read_to_string(&mut s)
                .map_err(|e| fail(format!("error: reading stdin: {e}")))?;
            out.push(("STDIN".to_string(), s));
            continue;
        }
        if f.starts_with("http://") || f.starts_with("https://") {
            return Err(fail(format!("error: unable to read URL \"{f}\", server reported 404 Not Found (k8r stand-in: no network)")));
        }
        let p = ctx.env.user_path(f);
        if p.is_dir() {
            let mut entries = Vec::new();
            collect_dir(&p, f, recursive, &mut entries)?;
            entries.sort();
            for (shown, path) in entries {
                out.push((shown, crate::fsutil::read(&path)?));
            }
        } else if p.is_file() {
            out.push((f.clone(), crate::fsutil::read(&p)?));
        } else {
            return Err(fail(format!("error: the path \"{f}\" does not exist")));
        }
    }
    Ok(out)
}

fn collect_dir(
    dir: &std::path::Path,
    shown: &str,
    recursive: bool,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<()> {
    for e in std::fs::read_dir(dir).ctx("listing", dir)? {
        let e = e.ctx("listing", dir)?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let shown_child = format!("{}/{name}", shown.trim_end_matches('/'));
        if path.is_dir() {
            if recursive {
                collect_dir(&path, &shown_child, recursive, out)?;
            }
        } else if [".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x)) {
            out.push((shown_child, path));
        }
    }
    Ok(())
}

fn flatten(source: &str, v: Value, out: &mut Vec<Doc>) {
    let is_list = v
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && v.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Some(Value::Array(items)) = v.get("items").cloned() {
            for item in items {
                flatten(source, item, out);
            }
        }
    } else {
        out.push(Doc {
            source: source.to_string(),
            value: v,
        });
    }
}

fn validate(d: &Doc, namespace: &str) -> Result<()> {
    let v = &d.value;
    let mut missing = Vec::new();
    if yaml::str_at(v, &["apiVersion"]).is_none_or(str::is_empty) {
        missing.push("apiVersion not set");
    }
    if yaml::str_at(v, &["kind"]).is_none_or(str::is_empty) {
        missing.push("kind not set");
    }
    if !missing.is_empty() {
        return Err(fail(format!(
            "error: error validating \"{}\": error validating data: [{}]; if you choose to ignore these errors, turn validation off with --validate=false",
            d.source,
            missing.join(", ")
        )));
    }
    if yaml::str_at(v, &["metadata", "name"]).is_none_or(str::is_empty) {
        let kind = yaml::str_at(v, &["kind"]).unwrap_or_default();
        let api = yaml::str_at(v, &["apiVersion"]).unwrap_or_default();
        let (g, ver) = api.rsplit_once('/').unwrap_or(("", api));
        return Err(fail(format!(
            "error: error when retrieving current configuration of:\nResource: \"{g}/{ver}, Resource={}s\", GroupVersionKind: \"{g}/{ver}, Kind={kind}\"\nName: \"\", Namespace: \"{namespace}\"\nfrom server for: \"{}\": resource name may not be empty",
            kind.to_lowercase(),
            d.source
        )));
    }
    Ok(())
}

fn uses_empty_dir(v: &Value) -> bool {
    let vols = yaml::at(v, &["spec", "template", "spec", "volumes"])
        .or_else(|| yaml::at(v, &["spec", "volumes"]));
    vols.and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|vol| vol.get("emptyDir").is_some()))
}

/// `kubectl apply`.
pub fn apply(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(
        args,
        &[
            value("filename").short('f'),
            switch("recursive").short('R'),
            switch("server-side"),
            switch("force-conflicts"),
            value("field-manager"),
            value("validate"),
            value("dry-run"),
            switch("wait"),
            value("timeout"),
            value("output").short('o'),
        ],
    )?;
    let files = p.list("filename");
    if files.is_empty() {
        return Err(fail("error: must specify one of -f and -k"));
    }
    let default_ns = p.get("namespace").unwrap_or("default").to_string();
    let mut docs = Vec::new();
    for (source, text) in read_sources(&files, p.on("recursive"), ctx)? {
        let values = yaml::parse_docs(&text)
            .map_err(|e| fail(format!("error: error parsing {source}: {e}")))?;
        for v in values {
            flatten(&source, v, &mut docs);
        }
    }
    if docs.is_empty() {
        return Err(fail("error: no objects passed to apply"));
    }
    for d in &docs {
        validate(d, &default_ns)?;
    }
    connect(ctx, &p)?;
    let server_side = p.on("server-side");
    let dry = p.get("dry-run").is_some_and(|d| d != "none");
    let results = ClusterState::update(ctx.env, |s| {
        let crd_groups: Vec<String> = s
            .objects
            .iter()
            .filter(|o| o.kind == "CustomResourceDefinition")
            .filter_map(|o| o.name.split_once('.').map(|(_, g)| g.to_string()))
            .collect();
        let mut lines = Vec::new();
        for d in &docs {
            let v = &d.value;
            let api = yaml::str_at(v, &["apiVersion"])
                .unwrap_or_default()
                .to_string();
            let kind = yaml::str_at(v, &["kind"]).unwrap_or_default().to_string();
            let name = yaml::str_at(v, &["metadata", "name"])
                .unwrap_or_default()
                .to_string();
            let g = group(&api).to_string();
            if !BUILTIN_GROUPS.contains(&g.as_str()) && !crd_groups.contains(&g) {
                let ns = yaml::str_at(v, &["metadata", "namespace"]).unwrap_or_default();
                lines.push(Err(format!(
                    "error: resource mapping not found for name: \"{name}\" namespace: \"{ns}\" from \"{}\": no matches for kind \"{kind}\" in version \"{api}\"\nensure CRDs are installed first",
                    d.source
                )));
                continue;
            }
            let namespace = if CLUSTER_SCOPED.contains(&kind.as_str()) {
                String::new()
            } else {
                yaml::str_at(v, &["metadata", "namespace"])
                    .map(str::to_string)
                    .unwrap_or_else(|| default_ns.clone())
            };
            let digest = random::to_hex(&Sha256::digest(v.to_string().as_bytes()));
            let shown = display(&kind, &api, &name);
            let existing = s.objects.iter_mut().find(|o| {
                group(&o.api_version) == g
                    && o.kind == kind
                    && o.namespace == namespace
                    && o.name == name
            });
            let word = match existing {
                Some(o) if o.digest == digest => "unchanged",
                Some(o) => {
                    if !dry {
                        o.digest = digest;
                        o.api_version = api.clone();
                        o.uses_empty_dir = uses_empty_dir(v);
                    }
                    "configured"
                }
                None => {
                    if !dry {
                        s.objects.push(Object {
                            api_version: api.clone(),
                            kind: kind.clone(),
                            namespace,
                            name: name.clone(),
                            digest,
                            by: "kubectl".into(),
                            uses_empty_dir: uses_empty_dir(v),
                        });
                    }
                    "created"
                }
            };
            let word = if server_side {
                "serverside-applied"
            } else {
                word
            };
            let suffix = if dry { " (dry run)" } else { "" };
            lines.push(Ok(format!("{shown} {word}{suffix}")));
        }
        Ok(lines)
    })?;
    let mut failed = Vec::new();
    for l in results {
        match l {
            Ok(line) => say!(ctx, "{line}"),
            Err(e) => failed.push(e),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        for e in &failed[..failed.len() - 1] {
            warn!(ctx, "{e}");
        }
        Err(fail(failed.pop().unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TestRoot, NOW, V};
    use crate::Tool;

    const KC: &str = "--kubeconfig=/etc/kubernetes/admin.conf";

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
        t.file("/etc/kubernetes/manifests/kube-apiserver.yaml", "x\n");
        ClusterState::new(V, "kubernetes", "10.0.0.1:6443", NOW)
            .create(&t.env)
            .expect("state");
        t.fake_kubelet()
    }

    const MANIFEST: &str = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: calico-system\n---\n# comment-only document\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: calico-node\n  namespace: calico-system\nspec:\n  template:\n    spec:\n      volumes:\n      - name: tmp\n        emptyDir: {}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: installations.operator.tigera.io\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: calico-node\n";

    #[test]
    fn multi_doc_manifest_is_created_then_unchanged_then_configured() {
        let t = TestRoot::new();
        let mut kubelet = up(&t);
        t.file("/tmp/calico.yaml", MANIFEST);
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/calico.yaml"]);
        r.ok();
        assert_eq!(
            r.out,
            "namespace/calico-system created\ndaemonset.apps/calico-node created\ncustomresourcedefinition.apiextensions.k8s.io/installations.operator.tigera.io created\nclusterrole.rbac.authorization.k8s.io/calico-node created\n"
        );
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/calico.yaml"]);
        assert!(
            r.out.lines().all(|l| l.ends_with(" unchanged")),
            "{}",
            r.out
        );
        t.file(
            "/tmp/calico.yaml",
            &MANIFEST.replace("name: tmp", "name: scratch"),
        );
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/calico.yaml"]);
        assert!(
            r.out.contains("daemonset.apps/calico-node configured\n"),
            "{}",
            r.out
        );
        let s = ClusterState::load(&t.env).expect("load").expect("state");
        assert_eq!(s.objects.len(), 4);
        let ds = s
            .objects
            .iter()
            .find(|o| o.kind == "DaemonSet")
            .expect("ds");
        assert_eq!(ds.namespace, "calico-system");
        assert!(ds.uses_empty_dir);
        assert_eq!(
            t.read("/var/log/k8r-standin/0001-kubectl-calico.yaml"),
            MANIFEST
        );

        // A custom resource whose CRD exists is fine; one without is refused, others applied.
        t.file("/tmp/cr.yaml", "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\n---\napiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata:\n  name: pool\n");
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/cr.yaml"]);
        r.failed();
        assert_eq!(r.out, "installation.operator.tigera.io/default created\n");
        assert!(r.err.contains("no matches for kind \"IPPool\" in version \"crd.projectcalico.org/v1\"\nensure CRDs are installed first"), "{}", r.err);
        kubelet.kill().expect("kill");
        let _ = kubelet.wait();
    }

    #[test]
    fn invalid_documents_apply_nothing() {
        let t = TestRoot::new();
        let mut kubelet = up(&t);
        t.file(
            "/tmp/bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\nmetadata:\n  name: x\n",
        );
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/bad.yaml"]);
        r.failed();
        assert!(
            r.err
                .contains("error validating data: [apiVersion not set, kind not set]"),
            "{}",
            r.err
        );
        t.file(
            "/tmp/noname.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
        );
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/noname.yaml"]);
        assert!(
            r.err.contains("resource name may not be empty"),
            "{}",
            r.err
        );
        t.file("/tmp/broken.yaml", "a: [\n");
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/broken.yaml"]);
        assert!(
            r.err.starts_with(
                "error: error parsing /tmp/broken.yaml: error converting YAML to JSON"
            ),
            "{}",
            r.err
        );
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/missing.yaml"]);
        assert_eq!(
            r.err,
            "error: the path \"/tmp/missing.yaml\" does not exist\n"
        );
        t.run(Tool::Kubectl, &[KC, "apply"]).failed();
        let s = ClusterState::load(&t.env).expect("load").expect("state");
        assert!(s.objects.is_empty());
        // Valid input while the API server is down: refused.
        kubelet.kill().expect("kill");
        let _ = kubelet.wait();
        t.file(
            "/tmp/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n",
        );
        let r = t.run(Tool::Kubectl, &[KC, "apply", "-f", "/tmp/cm.yaml"]);
        r.failed();
        assert!(
            r.err
                .starts_with("The connection to the server 10.0.0.1:6443 was refused"),
            "{}",
            r.err
        );
    }
}
