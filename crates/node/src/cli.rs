//! The `k8r` command line: argument structs (their doc comments are the `--help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// k8r node agent: makes this Raspberry Pi a Kubernetes node and keeps it one.
///
/// The boot units run `k8r setup` and `k8r bootstrap`; operators use `status`, `config`,
/// `update-image`, `reinstall`, `join-command` and `kubeconfig`. Logs go to the journal and to
/// /var/log/k8r.log; kubeadm's output to /var/log/kubeadm.log.
#[derive(Debug, Parser)]
#[command(name = "k8r", version)]
pub struct Cli {
    /// More output (-v: each command run).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Treat DIR as the machine's root (tests).
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Use DIR as the recovery partition instead of the card's (tests).
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    pub recovery_dir: Option<PathBuf>,
    /// Use DIR as the data partition instead of the card's (tests).
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare this boot (k8r-setup.service runs it early on every boot): the node's settings,
    /// the data partition (grown to the end of the card on the first boot), identity, the kept
    /// directories, the host name.
    Setup,
    /// Bring this node into its cluster (k8r-bootstrap.service runs it after the network and
    /// the clock): kubeadm init on the first master, join on workers, kubeadm upgrade apply
    /// after a newer image was installed on a master.
    Bootstrap(BootstrapArgs),
    /// Stage a new build into the card's image store, from DIR (with the build's
    /// manifest.toml, image.img.xz and boot.tar.xz) or from HTTP_IMAGE_URL; `k8r reinstall`
    /// installs it. Downloads resume after a dropped connection.
    UpdateImage(UpdateArgs),
    /// Reinstall this node from the card's image store: verify the stored build, point the
    /// card at the recovery partition, reboot. A master keeps its cluster.
    Reinstall(ReinstallArgs),
    /// Show this node's role, image, cluster, image store, trial, last install and data
    /// partition.
    Status,
    /// Commit this build's trial now (after an install the card boots it on trial): points
    /// autoboot.txt at this system. Refused while the node is not healthy.
    Commit,
    /// Commit this build's trial once the node is healthy, or reboot into recovery (which
    /// rolls back) when it is not healthy within TRIAL_TIMEOUT of boot (k8r-trial.service
    /// runs it on every boot; without a pending trial it does nothing).
    TrialWatch(TrialWatchArgs),
    /// Show or change this node's settings (kept on the card: they survive a reinstall).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the command that joins a worker to this cluster (on the first master); a new one
    /// when the stored token expired.
    JoinCommand(JoinCommandArgs),
    /// Print the cluster's admin kubeconfig (on the first master), to copy to a workstation.
    Kubeconfig,
}

/// `bootstrap` options.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Wait at most this many seconds for the clock to be synchronised.
    #[arg(long, default_value_t = 600)]
    pub clock_timeout: u64,
    /// Wait at most this many seconds for the local API server, and for a stale Node of the
    /// same name to stop blocking a join.
    #[arg(long, default_value_t = 600)]
    pub wait_timeout: u64,
    /// Seconds between join attempts while a stale Node blocks the join.
    #[arg(long, default_value_t = 20, hide = true)]
    pub join_retry: u64,
}

/// `trial-watch` options.
#[derive(Debug, Args)]
pub struct TrialWatchArgs {
    /// Seconds after boot by which the node must be healthy, instead of the TRIAL_TIMEOUT
    /// setting (default 10 minutes).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Milliseconds between looks.
    #[arg(long, default_value_t = 5000, hide = true)]
    pub interval_ms: u64,
}

/// `update-image` options.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A directory holding the build's manifest.toml, image.img.xz and boot.tar.xz (for
    /// example images/ copied from the build host). Without it, HTTP_IMAGE_URL.
    pub dir: Option<PathBuf>,
    /// Download from this URL prefix instead of HTTP_IMAGE_URL.
    #[arg(long, conflicts_with = "dir")]
    pub url: Option<String>,
}

/// `reinstall` options.
#[derive(Debug, Args)]
pub struct ReinstallArgs {
    /// Cordon and drain this node first (needs the admin kubeconfig: a master, or a node
    /// given one).
    #[arg(long)]
    pub drain: bool,
    /// Only point the card at the recovery partition; the next reboot reinstalls.
    #[arg(long)]
    pub no_reboot: bool,
}

/// `join-command` options.
#[derive(Debug, Args)]
pub struct JoinCommandArgs {
    /// Make a new token even if the stored one is still valid.
    #[arg(long)]
    pub new: bool,
}

/// `config` verbs.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the node's settings (secrets shortened).
    Show,
    /// Print one setting's value (empty when not set).
    Get {
        /// The setting, e.g. HTTP_IMAGE_URL.
        key: String,
    },
    /// Change settings: KEY=VALUE (or KEY VALUE) ..., checked before anything is written.
    Set {
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
    },
    /// Unset settings (back to the image's value or the default).
    Unset {
        /// The settings.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Copy the node settings of /usr/lib/k8r/variables.cfg to the card's recovery partition
    /// (the k8r-config-sync path unit runs it when the file changes).
    Sync,
}
