//! Test stand-in plumbing: where a stand-in runs. Every path goes under a root
//! (`K8R_STANDIN_ROOT`, default `/`), so host tests use temporary directories and the QEMU
//! guest uses the real tree. It does not isolate anything: the root is only a path prefix.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::knobs::Knobs;
use crate::Version;

/// What one invocation runs against.
#[derive(Debug, Clone)]
pub struct Env {
    /// Root of every path the stand-ins touch.
    pub root: PathBuf,
    /// The Kubernetes (or containerd) version this copy of the binary plays.
    pub version: Version,
    /// Seconds since the Unix epoch, now.
    pub now: u64,
    /// Test knobs from the kernel command line.
    pub knobs: Knobs,
    /// Working directory, for relative paths on the command line.
    pub cwd: PathBuf,
    /// `$KUBECONFIG`.
    pub kubeconfig_env: Option<String>,
    /// `$HOME`.
    pub home: Option<String>,
    /// `$NOTIFY_SOCKET` (systemd `Type=notify`).
    pub notify_socket: Option<String>,
}

/// The streams of one invocation (buffers in tests, the process's streams otherwise).
pub struct Ctx<'a> {
    /// The environment.
    pub env: &'a Env,
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
    /// Standard input (confirmation prompts, `kubectl apply -f -`).
    pub stdin: &'a mut dyn BufRead,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// Writes a line to the context's stdout, ignoring a closed stdout.
#[macro_export]
macro_rules! say {
    ($ctx:expr, $($t:tt)*) => {{
        let _ = writeln!($ctx.out, $($t)*);
    }};
}

/// Writes a line to the context's stderr.
#[macro_export]
macro_rules! warn {
    ($ctx:expr, $($t:tt)*) => {{
        let _ = writeln!($ctx.err, $($t)*);
    }};
}

impl Env {
    /// The environment of this process.
    pub fn from_process(version: Version) -> Result<Env> {
        let root = std::env::var_os("K8R_STANDIN_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let knobs = Knobs::load(&root)?;
        Ok(Env {
            root,
            version,
            now,
            knobs,
            cwd,
            kubeconfig_env: std::env::var("KUBECONFIG").ok(),
            home: std::env::var("HOME").ok(),
            notify_socket: std::env::var("NOTIFY_SOCKET").ok(),
        })
    }

    /// `abs` (an absolute path as the real tool would use it) under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// A path given on the command line: absolute ones go under the root, relative ones are
    /// relative to the working directory.
    pub fn user_path(&self, given: &str) -> PathBuf {
        if given.starts_with('/') {
            self.path(given)
        } else {
            self.cwd.join(given)
        }
    }

    /// The host name, lowercased like kubeadm does: the kernel's (`/proc/sys/kernel/hostname`
    /// under the root), else `/etc/hostname`, else `localhost`.
    pub fn hostname(&self) -> String {
        for p in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
            if let Ok(s) = std::fs::read_to_string(self.path(p)) {
                let s = s.trim();
                if !s.is_empty() {
                    return s.to_lowercase();
                }
            }
        }
        "localhost".into()
    }

    /// True when this runs on a real systemd boot (root `/` and `/run/systemd/system` exists,
    /// as `sd_booted()` checks): only then do the stand-ins call `systemctl`.
    pub fn systemd_booted(&self) -> bool {
        self.root == Path::new("/") && Path::new("/run/systemd/system").is_dir()
    }

    /// `/run/k8r-standin/` (per-boot counters, pid files, locks), created on demand.
    pub fn run_dir(&self) -> Result<PathBuf> {
        let dir = self.path("/run/k8r-standin");
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        Ok(dir)
    }
}
