//! Recording test stand-ins for the Kubernetes tools k8r drives: `kubeadm`, `kubectl`, `kubelet`
//! and `containerd`, in one multi-call binary dispatched on `argv[0]`.
//!
//! They check and log the arguments and configuration files they get, fail the way the real
//! tools fail on bad input (with the real messages where we know them), and create the files
//! the real tools leave behind, so that the k8r node agent can be tested end to end in QEMU
//! without a registry, containers or a network. They do not: run containers or static pods,
//! serve the Kubernetes API over the network, share a cluster between machines, generate real
//! certificates, or implement more than the subcommands k8r uses. `docs/standins.md` is the
//! contract.
//!
//! Every path is resolved under a root (`K8R_STANDIN_ROOT`, default `/`) so host tests run in
//! temporary directories.

pub mod args;
pub mod clock;
pub mod containerd;
pub mod env;
pub mod error;
pub mod formats;
pub mod fsutil;
pub mod knobs;
pub mod kubeadm;
pub mod kubeconfig;
pub mod kubectl;
pub mod kubelet;
pub mod marker;
pub mod pki;
pub mod random;
pub mod record;
pub mod signals;
pub mod state;
pub mod version;
pub mod yaml;

#[cfg(test)]
mod testutil;

pub use env::{Ctx, Env};
pub use error::{Failure, Result};
pub use version::Version;

/// The tools this binary can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `kubeadm`
    Kubeadm,
    /// `kubectl`
    Kubectl,
    /// `kubelet`
    Kubelet,
    /// `containerd`
    Containerd,
}

impl Tool {
    /// Every tool, in the order the docs list them.
    pub const ALL: [Tool; 4] = [
        Tool::Kubeadm,
        Tool::Kubectl,
        Tool::Kubelet,
        Tool::Containerd,
    ];

    /// The tool's file name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Kubeadm => "kubeadm",
            Tool::Kubectl => "kubectl",
            Tool::Kubelet => "kubelet",
            Tool::Containerd => "containerd",
        }
    }

    /// The tool a program name (`argv[0]`, any directory) stands for.
    pub fn from_argv0(argv0: &str) -> Option<Tool> {
        let base = argv0.rsplit('/').next().unwrap_or(argv0);
        Tool::ALL.into_iter().find(|t| t.name() == base)
    }
}

/// Runs as a process: reads the version marker from `/proc/self/exe`, the environment and the
/// knobs, records the call, runs the tool and returns the exit code.
pub fn run_process(argv: Vec<String>) -> i32 {
    let argv0 = argv.first().cloned().unwrap_or_default();
    let Some(tool) = Tool::from_argv0(&argv0) else {
        eprintln!(
            "k8r stand-in: started as {argv0:?}; run me as one of kubeadm, kubectl, kubelet, containerd (a symlink or a copy under that name)"
        );
        return 1;
    };
    let version = match marker::own_version() {
        Ok(Some(v)) => v,
        Ok(None) => {
            eprintln!(
                "k8r stand-in {}: this binary is unpatched: it carries no version. The fixture step writes one copy per version with its version marker patched (k8r_standins::marker::patch_version)",
                tool.name()
            );
            return 1;
        }
        Err(e) => {
            eprintln!("k8r stand-in {}: {e}", tool.name());
            return 1;
        }
    };
    let env = match Env::from_process(version) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("k8r stand-in {}: {e}", tool.name());
            return 1;
        }
    };
    let args = &argv[1..];
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdin = std::io::stdin();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut input = stdin.lock();
    let mut ctx = Ctx {
        env: &env,
        out: &mut out,
        err: &mut err,
        stdin: &mut input,
    };
    let code = run(tool, args, &mut ctx);
    let _ = ctx.out.flush();
    code
}

/// Runs `tool` with `args` in `ctx`: records the call, then dispatches. Returns the exit code.
pub fn run(tool: Tool, args: &[String], ctx: &mut Ctx<'_>) -> i32 {
    if let Err(e) = record::record(ctx.env, tool, args) {
        let _ = writeln!(ctx.err, "{e}");
        return 1;
    }
    let result = match tool {
        Tool::Kubeadm => kubeadm::run(args, ctx),
        Tool::Kubectl => kubectl::run(args, ctx),
        Tool::Kubelet => kubelet::run(args, ctx),
        Tool::Containerd => containerd::run(args, ctx),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(ctx.err, "{}", e.message(tool));
            1
        }
    }
}
