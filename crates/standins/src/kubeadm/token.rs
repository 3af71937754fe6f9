//! Test stand-in for `kubeadm token create [TOKEN] [--print-join-command] [--ttl D]` and
//! `kubeadm token list [-o json|yaml]`: tokens live in the stand-in cluster state with their
//! creation time and TTL; the join command's endpoint and CA hash come from the admin
//! kubeconfig, as for the real one. Expired tokens are not listed (the real token cleaner
//! deletes them). It does not support `token delete`, `generate` or `--config`.

use std::time::Duration;

use serde_json::{json, Value};

use super::init::join_command;
use super::parse;
use crate::args::{switch, value};
use crate::error::{fail, Result};
use crate::state::{ClusterState, Token};
use crate::{clock, formats, fsutil, kubeconfig, kubectl, pki, random, say, yaml, Ctx};

/// The default kubeconfig of kubeadm's cluster commands.
pub const ADMIN: &str = "/etc/kubernetes/admin.conf";

/// Runs `kubeadm token …`.
pub fn run(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let words = crate::args::leading_words(args);
    let rest = args.get(1..).unwrap_or_default();
    match words.first().copied() {
        Some("create") => create(rest, ctx),
        Some("list") => list(rest, ctx),
        Some(other) => Err(fail(format!(
            "unknown command {other:?} for \"kubeadm token\" (k8r stand-in: create, list)"
        ))),
        None => Err(fail("k8r stand-in: kubeadm token needs create or list")),
    }
}

/// The admin kubeconfig text, or kubeadm's error.
pub fn admin_kubeconfig(ctx: &Ctx<'_>, flag: Option<&str>) -> Result<(String, String)> {
    let shown = flag.unwrap_or(ADMIN).to_string();
    let path = ctx.env.user_path(&shown);
    if !path.exists() {
        return Err(fail(format!(
            "failed to load admin kubeconfig: open {shown}: no such file or directory"
        )));
    }
    Ok((shown, fsutil::read(&path)?))
}

/// The cluster state if the API server stand-in answers at the kubeconfig's server.
fn cluster(ctx: &Ctx<'_>, kubeconfig_text: &str, what: &str) -> Result<ClusterState> {
    let server = kubeconfig::server(kubeconfig_text)?;
    kubectl::apiserver_up(ctx.env).map_err(|_| {
        fail(format!("{what}: Get \"https://{server}/api/v1/namespaces/kube-system/secrets?timeout=10s\": dial tcp {server}: connect: connection refused"))
    })
}

fn create(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(
        args,
        &[
            switch("print-join-command"),
            value("ttl"),
            value("kubeconfig"),
            value("description"),
            value("usages"),
            value("groups"),
            value("certificate-key"),
        ],
    )?;
    let token = match p.positional.first() {
        Some(t) if !formats::is_bootstrap_token(t) => return Err(fail(formats::token_error(t))),
        Some(t) => t.clone(),
        None => random::bootstrap_token()?,
    };
    let ttl = match p.get("ttl") {
        None => Duration::from_secs(86_400),
        Some(s) => formats::parse_duration(s).ok_or_else(|| {
            fail(format!(
                "invalid argument {s:?} for \"--ttl\" flag: time: invalid duration {s:?}"
            ))
        })?,
    };
    if let Some(k) = p.get("certificate-key") {
        if !formats::is_hex64(k) {
            return Err(fail(format!(
                "error decoding certificate key: {k:?} is not a hex encoded string of 32 bytes"
            )));
        }
    }
    let (_, kc) = admin_kubeconfig(ctx, p.get("kubeconfig"))?;
    let id = token.split('.').next().unwrap_or_default().to_string();
    cluster(ctx, &kc, &format!("failed to create or update bootstrap token with name bootstrap-token-{id}: unable to create Secret"))?;
    let mut usages = p.list("usages");
    if usages.is_empty() {
        usages = vec!["signing".into(), "authentication".into()];
    }
    let mut groups = p.list("groups");
    if groups.is_empty() {
        groups = vec!["system:bootstrappers:kubeadm:default-node-token".into()];
    }
    let now = ctx.env.now;
    let t = Token {
        token: token.clone(),
        description: p.get("description").unwrap_or_default().to_string(),
        created: now,
        ttl_seconds: ttl.as_secs(),
        usages,
        groups,
    };
    ClusterState::update(ctx.env, |s| {
        s.tokens.retain(|x| x.token != t.token);
        s.tokens.push(t);
        Ok(())
    })?;
    if p.on("print-join-command") {
        let endpoint = kubeconfig::server(&kc)?;
        let hash = pki::ca_hash(&kubeconfig::ca_pem(&kc)?)?;
        let cp = p.get("certificate-key").map(Some);
        let line = join_command(&endpoint, &token, &hash, cp)
            .replace("\\\n", "")
            .replace('\t', "");
        say!(ctx, "{line}");
    } else {
        say!(ctx, "{token}");
    }
    Ok(())
}

fn ttl_left(t: &Token, now: u64) -> String {
    match t.expires() {
        None => "<forever>".into(),
        Some(e) if e <= now => "<invalid>".into(),
        Some(e) => {
            let left = e - now;
            if left >= 3600 {
                format!("{}h", left / 3600)
            } else if left >= 60 {
                format!("{}m", left / 60)
            } else {
                format!("{left}s")
            }
        }
    }
}

/// The output object of one token (`output.kubeadm.k8s.io/v1alpha3`).
pub fn token_json(t: &Token) -> Value {
    let mut usages = t.usages.clone();
    usages.sort();
    let mut v = json!({
        "kind": "BootstrapToken",
        "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
        "token": t.token,
        "ttl": formats::format_duration(Duration::from_secs(t.ttl_seconds)),
        "usages": usages,
        "groups": t.groups,
    });
    if !t.description.is_empty() {
        v["description"] = json!(t.description);
    }
    if let Some(e) = t.expires() {
        v["expires"] = json!(clock::rfc3339(e));
    }
    v
}

fn list(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(
        args,
        &[
            value("output").short('o'),
            value("kubeconfig"),
            switch("allow-missing-template-keys"),
        ],
    )?;
    let (_, kc) = admin_kubeconfig(ctx, p.get("kubeconfig"))?;
    let state = cluster(ctx, &kc, "failed to list bootstrap tokens")?;
    let now = ctx.env.now;
    let tokens: Vec<&Token> = state.tokens.iter().filter(|t| t.valid_at(now)).collect();
    match p.get("output").unwrap_or("text") {
        "json" => {
            for t in tokens {
                say!(ctx, "{}", kubectl::to_json(&token_json(t)));
            }
        }
        "yaml" => {
            for t in tokens {
                let _ = writeln!(ctx.out, "{}---", yaml::to_yaml(&token_json(t)));
            }
        }
        "text" => {
            let mut rows = vec![[
                "TOKEN",
                "TTL",
                "EXPIRES",
                "USAGES",
                "DESCRIPTION",
                "EXTRA GROUPS",
            ]
            .map(String::from)];
            for t in tokens {
                let mut usages = t.usages.clone();
                usages.sort();
                rows.push([
                    t.token.clone(),
                    ttl_left(t, now),
                    t.expires()
                        .map(clock::rfc3339)
                        .unwrap_or_else(|| "<never>".into()),
                    usages.join(","),
                    if t.description.is_empty() {
                        "<none>".into()
                    } else {
                        t.description.clone()
                    },
                    t.groups.join(","),
                ]);
            }
            let widths: Vec<usize> = (0..6)
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in rows {
                let line: String = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<w$}   ", w = widths[i]))
                    .collect();
                say!(ctx, "{}", line.trim_end());
            }
        }
        other => return Err(fail(format!("invalid output format: {other}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::init::tests::{init, CONFIG};
    use super::*;
    use crate::testutil::TestRoot;
    use crate::Tool;

    #[test]
    fn create_prints_one_join_line_and_list_shows_unexpired_tokens() {
        let mut t = TestRoot::new();
        init(&t, CONFIG).ok();
        let r = t.run(Tool::Kubeadm, &["token", "create", "--print-join-command"]);
        r.failed();
        assert!(r.err.contains("connect: connection refused"), "{}", r.err);
        let mut kubelet = t.fake_kubelet();
        let r = t.run(
            Tool::Kubeadm,
            &["token", "create", "--print-join-command", "--ttl", "1h"],
        );
        r.ok();
        let hash = pki::ca_hash(&t.read("/etc/kubernetes/pki/ca.crt")).expect("hash");
        let line = r.out.trim_end_matches('\n');
        assert!(
            line.starts_with("kubeadm join k8s.lan:6443 --token "),
            "{line}"
        );
        assert!(
            line.ends_with(&format!(" --discovery-token-ca-cert-hash {hash} ")),
            "{line:?}"
        );
        assert_eq!(r.out.lines().count(), 1);
        let minted = line.split_whitespace().nth(4).expect("token").to_string();
        assert!(formats::is_bootstrap_token(&minted));
        let r = t.run(
            Tool::Kubeadm,
            &["token", "create", "abcdef.fedcba9876543210", "--ttl=0"],
        );
        assert_eq!(r.out, "abcdef.fedcba9876543210\n");
        t.run(Tool::Kubeadm, &["token", "create", "bad"]).failed();
        t.run(Tool::Kubeadm, &["token", "create", "--ttl", "1d"])
            .failed();

        let r = t.run(Tool::Kubeadm, &["token", "list", "-o", "json"]);
        r.ok();
        let objs: Vec<Value> = serde_json::Deserializer::from_str(&r.out)
            .into_iter::<Value>()
            .map(|v| v.expect("json"))
            .collect();
        assert_eq!(objs.len(), 3);
        assert_eq!(objs[0]["kind"], "BootstrapToken");
        assert_eq!(objs[0]["apiVersion"], "output.kubeadm.k8s.io/v1alpha3");
        assert_eq!(objs[0]["token"], "abcdef.0123456789abcdef");
        assert_eq!(objs[0]["ttl"], "24h0m0s");
        assert_eq!(objs[0]["expires"], clock::rfc3339(t.env.now + 86_400));
        assert_eq!(objs[0]["usages"], json!(["authentication", "signing"]));
        assert_eq!(objs[1]["token"], minted);
        assert!(objs[2].get("expires").is_none(), "ttl 0 never expires");

        // Two hours later the 1h token is gone; a day later only the forever token is left.
        t.env.now += 2 * 3600;
        let r = t.run(Tool::Kubeadm, &["token", "list", "-o", "json"]);
        assert_eq!(r.out.matches("\"kind\"").count(), 2, "{}", r.out);
        t.env.now += 86_400;
        let r = t.run(Tool::Kubeadm, &["token", "list"]);
        assert_eq!(r.out.lines().count(), 2, "{}", r.out);
        assert!(
            r.out
                .contains("abcdef.fedcba9876543210   <forever>   <never>"),
            "{}",
            r.out
        );
        kubelet.kill().expect("kill");
        let _ = kubelet.wait();
    }

    #[test]
    fn token_commands_need_the_admin_kubeconfig() {
        let t = TestRoot::new();
        let r = t.run(Tool::Kubeadm, &["token", "create", "--print-join-command"]);
        r.failed();
        assert!(r.err.starts_with("failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory\n"), "{}", r.err);
        t.run(Tool::Kubeadm, &["token", "list"]).failed();
        t.run(Tool::Kubeadm, &["token", "delete", "x"]).failed();
    }
}
