//! Test stand-in plumbing: the record tests read back. Every invocation appends one line
//! `<tool> <args…>` to `/var/log/k8r-standin.log`, and every configuration or manifest file it
//! is given (`--config` for kubeadm and kubelet, `-f`/`--filename` for kubectl) is copied to
//! `/var/log/k8r-standin/<seq>-<tool>-<basename>` as received. It does not record stdin
//! (`kubectl apply -f -`) or quote arguments that contain spaces.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::{Env, Tool};

/// The invocation log.
pub const LOG: &str = "/var/log/k8r-standin.log";
/// Where received files are copied.
pub const FILES: &str = "/var/log/k8r-standin";

/// The file arguments of an invocation of `tool`.
pub fn file_args(tool: Tool, args: &[String]) -> Vec<String> {
    let names: &[&str] = match tool {
        Tool::Kubectl => &["-f", "--filename"],
        Tool::Kubeadm | Tool::Kubelet => &["--config"],
        Tool::Containerd => &["--config", "-c"],
    };
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        for n in names {
            if a == n {
                if let Some(v) = it.next() {
                    out.push(v.clone());
                }
            } else if let Some(v) = a.strip_prefix(&format!("{n}=")) {
                out.push(v.to_string());
            }
        }
    }
    out.retain(|f| f != "-");
    out
}

/// Appends the log line and copies the file arguments.
pub fn record(env: &Env, tool: Tool, args: &[String]) -> Result<()> {
    let log = env.path(LOG);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).ctx("creating", dir)?;
    }
    let mut line = tool.name().to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .ctx("opening", &log)?;
    f.write_all(line.as_bytes()).ctx("appending to", &log)?;
    for given in file_args(tool, args) {
        let src = env.user_path(&given);
        let files: Vec<PathBuf> = if src.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&src)
                .ctx("listing", &src)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v
        } else if src.is_file() {
            vec![src]
        } else {
            // The tool reports the missing file in its own words.
            Vec::new()
        };
        for file in files {
            copy_one(env, tool, &file)?;
        }
    }
    Ok(())
}

fn copy_one(env: &Env, tool: Tool, file: &Path) -> Result<()> {
    let dir = env.path(FILES);
    std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
    let seq = next_seq(&dir)?;
    let base = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let dst = dir.join(format!("{seq:04}-{}-{base}", tool.name()));
    std::fs::copy(file, &dst).ctx("copying to", &dst)?;
    Ok(())
}

/// The next sequence number, shared by all stand-ins under a lock.
fn next_seq(dir: &Path) -> Result<u64> {
    let path = dir.join(".seq");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx("opening", &path)?;
    f.lock().ctx("locking", &path)?;
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).ctx("reading", &path)?;
    let n = s.trim().parse::<u64>().unwrap_or(0) + 1;
    f.set_len(0).ctx("truncating", &path)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).ctx("seeking", &path)?;
    f.write_all(n.to_string().as_bytes())
        .ctx("writing", &path)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestRoot;

    #[test]
    fn logs_each_call_and_copies_given_files() {
        let t = TestRoot::new();
        t.file("/tmp/init.yaml", "kind: InitConfiguration\n");
        t.file("/tmp/m/a.yaml", "a\n");
        t.file("/tmp/m/b.yaml", "b\n");
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        record(
            &t.env,
            Tool::Kubeadm,
            &args(&["init", "--config", "/tmp/init.yaml"]),
        )
        .expect("rec");
        record(&t.env, Tool::Kubeadm, &args(&["reset", "-f"])).expect("rec");
        record(&t.env, Tool::Kubectl, &args(&["apply", "-f=/tmp/m"])).expect("rec");
        assert_eq!(
            t.read(LOG),
            "kubeadm init --config /tmp/init.yaml\nkubeadm reset -f\nkubectl apply -f=/tmp/m\n"
        );
        assert_eq!(
            t.read("/var/log/k8r-standin/0001-kubeadm-init.yaml"),
            "kind: InitConfiguration\n"
        );
        assert_eq!(t.read("/var/log/k8r-standin/0002-kubectl-a.yaml"), "a\n");
        assert_eq!(t.read("/var/log/k8r-standin/0003-kubectl-b.yaml"), "b\n");
        assert!(file_args(Tool::Kubeadm, &args(&["reset", "-f"])).is_empty());
    }
}
