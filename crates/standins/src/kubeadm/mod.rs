//! Test stand-in for `kubeadm`: `version`, `init`, `join`, `token create|list`,
//! `upgrade apply` and `reset`, with kubeadm's phase messages and error texts where known (every
//! error ends with kubeadm's "To see the stack trace…" line and exits 1). The "cluster" is the
//! stand-in state in `/var/lib/etcd` on the master; a worker's join is checked locally and with
//! the kernel-command-line knobs, since no stand-in talks to another machine. It does not pull
//! images, start static pods, generate real certificates, run `kubeadm upgrade node|plan`,
//! `config`, `certs` or `kubeconfig` subcommands, or honour `--dry-run`.

pub mod config;
pub mod control_plane;
mod init;
mod join;
pub mod kubelet_start;
pub mod node_record;
pub mod preflight;
mod reset;
pub mod schema;
mod token;
mod upgrade;

use crate::args::{self, Flag};
use crate::error::{fail, Failure, Result};
use crate::{kubectl, say, yaml, Ctx};

/// The stack-trace hint kubeadm appends to every error.
pub const HINT: &str = "To see the stack trace of this error execute with --v=5 or higher";

/// The `-v`/`--v` flag every kubeadm command takes.
pub const VERBOSITY: Flag = args::value("v").short('v');

/// Runs the kubeadm stand-in.
pub fn run(argv: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    dispatch(argv, ctx).map_err(|e| match e {
        Failure::Tool(m) => Failure::Tool(format!("{m}\n{HINT}")),
        other => other,
    })
}

fn dispatch(argv: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let words = args::leading_words(argv);
    let rest = argv.get(1..).unwrap_or_default();
    match words.first().copied() {
        Some("version") => version(rest, ctx),
        Some("init") => init::run(rest, ctx),
        Some("join") => join::run(rest, ctx),
        Some("token") => token::run(rest, ctx),
        Some("upgrade") => upgrade::run(rest, ctx),
        Some("reset") => reset::run(rest, ctx),
        Some(other) => Err(fail(format!("unknown command {other:?} for \"kubeadm\""))),
        None => Err(fail(
            "k8r stand-in kubeadm: give a command: version, init, join, token, upgrade, reset",
        )),
    }
}

/// Parses `args` against `flags` plus `-v`.
pub fn parse(args: &[String], flags: &[Flag]) -> Result<args::Parsed> {
    let all: Vec<Flag> = flags.iter().copied().chain([VERBOSITY]).collect();
    args::parse(args, &all)
}

/// Asks `question [y/N]:` on stdout and reads the answer; `Ok(())` only for y/yes.
pub fn confirm(ctx: &mut Ctx<'_>, prefix: &str, question: &str) -> Result<()> {
    let _ = write!(ctx.out, "{prefix} {question} [y/N]: ");
    let _ = ctx.out.flush();
    let mut line = String::new();
    let _ = ctx.stdin.read_line(&mut line);
    let answer = line.trim().to_lowercase();
    if answer == "y" || answer == "yes" {
        Ok(())
    } else {
        Err(fail(
            "won't proceed; the user didn't answer (Y|y) in order to continue",
        ))
    }
}

fn version(args: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let p = parse(args, &[args::value("output").short('o')])?;
    let v = ctx.env.version;
    let info = kubectl::version_info(v);
    match p.get("output").unwrap_or("") {
        "short" => say!(ctx, "{}", v.v()),
        "json" => say!(ctx, "{}", kubectl::to_json(&serde_json::json!({"clientVersion": info}))),
        "yaml" => {
            let _ = write!(ctx.out, "{}", yaml::to_yaml(&serde_json::json!({"clientVersion": info})));
        }
        "" => say!(
            ctx,
            "kubeadm version: &version.Info{{Major:\"{}\", Minor:\"{}\", GitVersion:\"{}\", GitCommit:\"k8r-standin\", GitTreeState:\"clean\", BuildDate:\"2026-04-23T00:00:00Z\", GoVersion:\"go1.24.0\", Compiler:\"gc\", Platform:\"{}\"}}",
            v.major,
            v.minor,
            v.v(),
            info["platform"].as_str().unwrap_or("linux/arm64")
        ),
        other => return Err(fail(format!("invalid output format: {other}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testutil::TestRoot;
    use crate::Tool;

    #[test]
    fn version_forms_and_unknown_commands() {
        let t = TestRoot::new();
        let r = t.run(Tool::Kubeadm, &["version", "-o", "short"]);
        r.ok();
        assert_eq!(r.out, "v1.31.2\n");
        let r = t.run(Tool::Kubeadm, &["version"]);
        assert!(
            r.out.starts_with(
                "kubeadm version: &version.Info{Major:\"1\", Minor:\"31\", GitVersion:\"v1.31.2\""
            ),
            "{}",
            r.out
        );
        let r = t.run(Tool::Kubeadm, &["version", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&r.out).expect("json");
        assert_eq!(v["clientVersion"]["gitVersion"], "v1.31.2");
        let r = t.run(Tool::Kubeadm, &["frobnicate", "--now"]);
        r.failed();
        assert_eq!(r.err, "unknown command \"frobnicate\" for \"kubeadm\"\nTo see the stack trace of this error execute with --v=5 or higher\n");
        t.run(Tool::Kubeadm, &["version", "-o", "xml"]).failed();
    }
}
