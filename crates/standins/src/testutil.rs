//! Test stand-in plumbing for unit tests: a temporary root shaped like a node that passes
//! kubeadm's preflight, and a way to run a tool in it with captured streams. It does not
//! start real processes except `fake_kubelet` (`sleep` under the name `kubelet`).

use std::path::PathBuf;

use crate::knobs::Knobs;
use crate::{Env, Tool, Version};

pub const V: Version = Version::new(1, 31, 2);
pub const NOW: u64 = 1_776_902_400;

pub struct TestRoot {
    pub dir: tempfile::TempDir,
    pub env: Env,
}

pub struct Ran {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Ran {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "stdout:\n{}\nstderr:\n{}", self.out, self.err);
        self
    }
    pub fn failed(&self) -> &Self {
        assert_eq!(self.code, 1, "stdout:\n{}\nstderr:\n{}", self.out, self.err);
        self
    }
}

impl TestRoot {
    /// A node that passes preflight: ip_forward 1, memory cgroup, host name `pi-1`.
    pub fn new() -> TestRoot {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Env {
            root: dir.path().to_path_buf(),
            version: V,
            now: NOW,
            knobs: Knobs::default(),
            cwd: dir.path().to_path_buf(),
            kubeconfig_env: None,
            home: Some("/root".into()),
            notify_socket: None,
        };
        let t = TestRoot { dir, env };
        t.file("/proc/sys/net/ipv4/ip_forward", "1\n");
        t.file(
            "/sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        );
        t.file("/proc/sys/kernel/hostname", "pi-1\n");
        t.file(
            "/proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        );
        t
    }

    pub fn with_version(mut self, v: Version) -> Self {
        self.env.version = v;
        self
    }

    pub fn path(&self, abs: &str) -> PathBuf {
        self.env.path(abs)
    }

    pub fn file(&self, abs: &str, content: &str) {
        let p = self.path(abs);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
    }

    pub fn read(&self, abs: &str) -> String {
        std::fs::read_to_string(self.path(abs)).unwrap_or_else(|e| panic!("{abs}: {e}"))
    }

    pub fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }

    pub fn cmdline(&mut self, line: &str) {
        self.file("/proc/cmdline", line);
        self.env.knobs = Knobs::load(&self.env.root).expect("knobs");
    }

    /// A live process whose argv[0] is `.../kubelet` (`sleep` under that name), recorded in
    /// the kubelet pid file.
    pub fn fake_kubelet(&self) -> std::process::Child {
        let bin = self.path("/fake-bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let link = bin.join("kubelet");
        if !link.exists() {
            std::os::unix::fs::symlink("/bin/sleep", &link).expect("symlink");
        }
        let child = std::process::Command::new(&link)
            .arg("600")
            .spawn()
            .expect("spawn");
        self.file(crate::kubelet::PID_FILE, &format!("{}\n", child.id()));
        // `spawn` returns once the exec began, but the kernel may not have set up the new
        // argv yet (`/proc/<pid>/cmdline` is briefly empty): wait until it names the kubelet.
        let t0 = std::time::Instant::now();
        while crate::kubelet::running(&self.env) != Some(child.id()) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "fake kubelet not visible"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child
    }

    pub fn run(&self, tool: Tool, args: &[&str]) -> Ran {
        self.run_stdin(tool, args, "")
    }

    pub fn run_stdin(&self, tool: Tool, args: &[&str], stdin: &str) -> Ran {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
        let mut ctx = crate::Ctx {
            env: &self.env,
            out: &mut out,
            err: &mut err,
            stdin: &mut input,
        };
        let code = crate::run(tool, &args, &mut ctx);
        Ran {
            code,
            out: String::from_utf8_lossy(&out).into_owned(),
            err: String::from_utf8_lossy(&err).into_owned(),
        }
    }
}
