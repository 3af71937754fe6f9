//! `k8r`, the node agent of a k8r card: first boot, `kubeadm init` on the first master,
//! `kubeadm join` on workers, `update-image`, `reinstall`, `kubeadm upgrade` when a new image
//! carries a newer Kubernetes, and the node's settings.
//!
//! What a card is (partitions, the image store, the data partition's layout, records) comes
//! from `k8r-card`; the settings' rules from `k8r-config`. Every path goes through
//! [`host::Host`], so flows run on a temp dir in tests with the Kubernetes stand-ins.
//!
//! Exit codes: 0 done, 1 failed, 2 refused on purpose (a version skip, an expired token …:
//! the message says what to do; the boot unit does not retry those).

pub mod bootstrap;
pub mod build_info;
pub mod card;
pub mod cli;
pub mod clock;
pub mod cni;
pub mod data;
pub mod exec;
pub mod failpoint;
#[cfg(test)]
mod fuzz;
pub mod grow;
pub mod host;
pub mod hostname;
pub mod identity;
pub mod kube;
pub mod kubeadm_config;
mod logging;
pub mod reinstall;
pub mod settings;
pub mod setup;
pub mod skew;
pub mod snapshot;
pub mod status;
mod sys;
pub mod trial;
pub mod update;

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use k8r_card::image_root::{AGENT_LOG, VARIABLES};
use k8r_card::recovery::NODE_VARIABLES;
use k8r_config::RawSettings;

use crate::bootstrap::Refused;
use crate::card::P1;
use crate::cli::{Cli, Command, ConfigCommand};
use crate::data::Data;
use crate::host::Host;
use crate::setup::Target;

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let host = cli.root.as_deref().map_or_else(Host::system, Host::at);
    let log_file = host.path(AGENT_LOG);
    logging::init(cli.verbose, Some(log_file));
    match run(&host, &cli) {
        Ok(()) => 0,
        Err(e) => {
            let refused = e.chain().any(|c| c.is::<Refused>());
            log::error!("{}", one_line(&e));
            if refused {
                2
            } else {
                1
            }
        }
    }
}

/// The error's chain on one line, each cause once.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn run(host: &Host, cli: &Cli) -> Result<()> {
    let target = || Target::resolve(host, cli.recovery_dir.as_deref(), cli.data_dir.as_deref());
    let data = || match &cli.data_dir {
        Some(d) => Data::at(d),
        None => Data::on(host),
    };
    match &cli.command {
        Command::Setup => setup::run(host, &target()?),
        Command::Bootstrap(args) => {
            let s = settings::load(host)?;
            let build = build_info::BuildInfo::load(host)?;
            let name = setup::node_name(host, &s);
            let waits = bootstrap::Waits {
                clock: Duration::from_secs(args.clock_timeout),
                api: Duration::from_secs(args.wait_timeout),
                join: Duration::from_secs(args.wait_timeout),
                join_retry: Duration::from_secs(args.join_retry),
                ..bootstrap::Waits::default()
            };
            let d = data();
            let done = bootstrap::run(&bootstrap::Ctx {
                host,
                data: &d,
                settings: &s,
                build: &build,
                node_name: &name,
                waits,
                recovery: target().ok().map(|t| t.recovery).as_ref(),
            })?;
            log::info!("bootstrap done: {done}");
            Ok(())
        }
        Command::UpdateImage(args) => {
            let s = settings::load(host)?;
            let source = update::source(args.dir.clone(), args.url.clone(), &s)?;
            let t = target()?;
            let (m, staged) = update::run(
                host,
                &t.recovery,
                &s,
                &source,
                &failpoint::Failpoints::from_system(),
            )?;
            match staged {
                update::Staged::AlreadyCurrent => {
                    println!(
                        "build {} is already the current build: nothing to do",
                        m.build_id
                    );
                }
                update::Staged::Done { previous, .. } => {
                    println!(
                        "build {} (Kubernetes {}) staged and current in the image store{}; `k8r reinstall` installs it",
                        m.build_id,
                        m.kubernetes_version,
                        previous.map(|p| format!(" (previous: {p}, kept for a rollback)")).unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        Command::Reinstall(args) => {
            let s = settings::load(host)?;
            let name = setup::node_name(host, &s);
            reinstall::run(
                host,
                &target()?.recovery,
                &s,
                &name,
                reinstall::Options {
                    drain: args.drain,
                    no_reboot: args.no_reboot,
                },
            )
        }
        Command::Status => {
            let s = settings::load(host).ok();
            let name = s
                .as_ref()
                .map_or_else(String::new, |s| setup::node_name(host, s));
            let p1 = target()
                .ok()
                .and_then(|t| P1::open(host, &t.recovery, false).ok());
            print!("{}", status::report(host, p1.as_ref(), s.as_ref(), &name));
            Ok(())
        }
        Command::Commit => {
            match trial::commit(host, &target()?.recovery)? {
                trial::Outcome::Committed(b) => println!("build {b} committed"),
                _ => println!("no trial pending: nothing to commit"),
            }
            Ok(())
        }
        Command::TrialWatch(args) => {
            let timeout = args.timeout.unwrap_or_else(|| trial::timeout_setting(host));
            let outcome = trial::watch(
                host,
                &target()?.recovery,
                Duration::from_secs(timeout),
                Duration::from_millis(args.interval_ms),
            )?;
            log::info!("trial watch: {outcome}");
            Ok(())
        }
        Command::Config(c) => config(host, &target, c),
        Command::JoinCommand(args) => {
            let s = settings::load(host)?;
            println!("{}", bootstrap::join_command(host, &data(), &s, args.new)?);
            Ok(())
        }
        Command::Kubeconfig => {
            let conf = host.read_text_opt(kube::ADMIN_CONF)?.ok_or_else(|| {
                Refused(format!(
                    "{} is missing: this is not the first master",
                    kube::ADMIN_CONF
                ))
            })?;
            print!("{conf}");
            Ok(())
        }
    }
}

fn config(host: &Host, target: &dyn Fn() -> Result<Target>, c: &ConfigCommand) -> Result<()> {
    match c {
        ConfigCommand::Show => {
            let text = host
                .read_text_opt(VARIABLES)?
                .ok_or_else(|| anyhow!("{VARIABLES} is missing"))?;
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                println!("{}", k8r_config::redact::text(line));
            }
            Ok(())
        }
        ConfigCommand::Get { key } => {
            let s = settings::load(host)?;
            if k8r_config::keys::lookup(key).is_none() {
                return Err(anyhow!(
                    "{key} is not a setting{}",
                    k8r_config::keys::suggest(key)
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default()
                ));
            }
            println!("{}", s.raw.get(key).unwrap_or_default());
            Ok(())
        }
        ConfigCommand::Set { assignments } => {
            let pairs = settings::split_assignment(assignments)?;
            change(host, target, |node| {
                let mut changed = Vec::new();
                for (k, v) in &pairs {
                    node.set(k, v).map_err(|e| anyhow!("{e}"))?;
                    changed.push(k8r_config::keys::lookup(k).map_or("", |d| d.name));
                }
                Ok(changed)
            })
        }
        ConfigCommand::Unset { keys } => change(host, target, |node| {
            let mut changed = Vec::new();
            for k in keys {
                let doc =
                    k8r_config::keys::lookup(k).ok_or_else(|| anyhow!("{k} is not a setting"))?;
                node.unset(doc.name);
                changed.push(doc.name);
            }
            Ok(changed)
        }),
        ConfigCommand::Sync => {
            let s = settings::load(host)
                .context("the edited settings are invalid; nothing was copied")?;
            let t = target()?;
            let p1 = P1::open(host, &t.recovery, true)?;
            if reinstall::sync_settings(host, &p1, &s)? {
                log::info!("node settings copied to the recovery partition ({NODE_VARIABLES})");
            }
            Ok(())
        }
    }
}

/// Changes the node's own settings on the recovery partition with `edit`, after checking the
/// result; then rewrites the effective file.
fn change(
    host: &Host,
    target: &dyn Fn() -> Result<Target>,
    edit: impl FnOnce(&mut RawSettings) -> Result<Vec<&'static str>>,
) -> Result<()> {
    let t = target()?;
    let p1 = P1::open(host, &t.recovery, true)?;
    let image = settings::image_settings(host)?;
    let mut node = settings::node_settings(&p1)?.unwrap_or_default();
    let changed = edit(&mut node)?;
    for w in settings::image_key_warnings(&changed) {
        log::warn!("{w}");
    }
    let (text, _) = settings::compose(host, &image, Some(&node)).context("not changed")?;
    let node_text = node.render(
        "# k8r: this node's own settings (k8r config set / k8r-builder inject). Node keys here win\n\
         # over the image's configuration; the image keys are the image's.",
    );
    p1.recovery()
        .write_node_file(NODE_VARIABLES, node_text.as_bytes())
        .context("writing the node's settings to the recovery partition")?;
    settings::write_effective(host, &text)?;
    for k in changed {
        let v = settings::parse(&host.path(VARIABLES), &text)?
            .raw
            .get(k)
            .unwrap_or_default()
            .to_owned();
        println!("{}", k8r_config::redact::text(&format!("{k}=\"{v}\"")));
    }
    log::info!("kept on the recovery partition; KUBEADM_JOIN_STRING and NODE_NAME take effect at the next boot");
    Ok(())
}
