//! Running the node's tools (kubeadm, kubectl, systemctl, resize2fs, …) through one helper:
//! the command line is logged, the output can be appended to a log file (kubeadm's goes to
//! `/var/log/kubeadm.log`, as the seed had it), and a failure becomes an error that names the
//! command and quotes the end of what it printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Both streams, stdout first.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A command failed to run or exited non-zero.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program could not be started.
    #[error("{command}: cannot run it: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// It exited with a non-zero status.
    #[error("{command} exited with {code}: {tail}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit code.
        code: i32,
        /// The last lines it printed.
        tail: String,
        /// Everything it printed.
        output: Output,
    },
}

impl ExecError {
    /// What the command printed, when it ran.
    pub fn output(&self) -> Option<&Output> {
        match self {
            ExecError::Failed { output, .. } => Some(output),
            ExecError::Spawn { .. } => None,
        }
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<String>,
    log: Option<PathBuf>,
    quiet: bool,
}

impl Cmd {
    /// `program` with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            log: None,
            quiet: false,
        }
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Appends the command line and everything it prints to `file`.
    #[must_use]
    pub fn log_to(mut self, file: &Path) -> Cmd {
        self.log = Some(file.to_path_buf());
        self
    }

    /// Does not log the command line (a polling loop).
    #[must_use]
    pub fn quiet(mut self) -> Cmd {
        self.quiet = true;
        self
    }

    /// The command line as shown in logs and errors (secrets redacted).
    pub fn display(&self) -> String {
        let mut words = vec![self.program.display().to_string()];
        words.extend(self.args.iter().cloned());
        k8r_config::redact::command_line(&words)
    }

    /// Runs it and waits; a non-zero exit is an error.
    pub fn run(&self) -> Result<Output, ExecError> {
        let out = self.run_status()?;
        if out.code == 0 {
            Ok(out)
        } else {
            Err(ExecError::Failed {
                command: self.display(),
                code: out.code,
                tail: tail(&out.text(), 6),
                output: out,
            })
        }
    }

    /// Runs it and waits; returns whatever the exit status.
    pub fn run_status(&self) -> Result<Output, ExecError> {
        let command = self.display();
        if !self.quiet {
            log::debug!("running {command}");
        }
        let out = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ExecError::Spawn {
                command: command.clone(),
                source,
            })?;
        let out = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if let Some(file) = &self.log {
            append_log(file, &command, &out);
        }
        Ok(out)
    }
}

fn append_log(file: &Path, command: &str, out: &Output) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = writeln!(
            f,
            "=== {} {command} (exit {})",
            crate::clock::utc_now_text(),
            out.code
        );
        let _ = f.write_all(k8r_config::redact::text(&out.text()).as_bytes());
    }
}

/// The last `n` non-empty lines of `text`, joined with ` | `.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(n)..].join(" | ");
    k8r_config::redact::text(&tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_exit_code_and_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log/kubeadm.log");
        let out = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .log_to(&log)
            .run()
            .expect("run");
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (0, "out\n", "err\n")
        );
        let logged = std::fs::read_to_string(&log).expect("log");
        assert!(
            logged.contains("sh -c") && logged.contains("out\nerr\n"),
            "{logged}"
        );
    }

    #[test]
    fn failure_names_the_command_and_quotes_its_end() {
        let err = Cmd::new("sh")
            .args(["-c", "echo first; echo 'second line'; exit 3"])
            .run()
            .expect_err("exit 3");
        let msg = err.to_string();
        assert!(
            msg.contains("exited with 3") && msg.contains("second line"),
            "{msg}"
        );
        assert_eq!(err.output().map(|o| o.code), Some(3));
        let err = Cmd::new("/nonexistent/tool").run().expect_err("missing");
        assert!(matches!(err, ExecError::Spawn { .. }), "{err}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b | c");
    }
}
