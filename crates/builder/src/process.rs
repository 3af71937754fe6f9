//! Running external tools (e2fsprogs, dosfstools, mtools) with errors that say what failed.
//!
//! Every child process goes through [`run`], so a failure always names the command line and the
//! tail of what the tool wrote on stderr.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

/// How many trailing stderr lines a [`ProcessError`] keeps.
const STDERR_TAIL_LINES: usize = 12;

/// A child process that could not be started or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started (usually: not installed).
    #[error("cannot run `{command}`: {source} (is it installed? `cargo xtask setup` installs the tools)")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr_tail}")]
    Failed {
        /// The command line.
        command: String,
        /// Exit status as text.
        status: String,
        /// The last lines it printed on stderr.
        stderr_tail: String,
    },
}

/// Renders a command line for messages (program and arguments, space separated).
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    if s.is_empty() || s.contains(char::is_whitespace) {
        format!("'{s}'")
    } else {
        s.into_owned()
    }
}

/// The last [`STDERR_TAIL_LINES`] non-empty lines of `stderr`, joined with " | ".
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..].join(" | ")
}

/// Runs `cmd` to completion with stdin closed, capturing stdout and stderr; a non-zero exit is an
/// error carrying the command line and the tail of stderr.
pub fn run(cmd: &mut Command) -> Result<Output, ProcessError> {
    let command = describe(cmd);
    log::debug!("running {command}");
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ProcessError::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ProcessError::Failed {
            command,
            status: output.status.to_string(),
            stderr_tail: stderr_tail(&output.stderr),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_command_and_stderr_tail() {
        let err = run(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]))
            .expect_err("exit 3 must fail");
        let msg = err.to_string();
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("one | two"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(&mut Command::new("k8r-no-such-tool")).expect_err("must not start");
        assert!(matches!(err, ProcessError::Spawn { .. }), "{err}");
    }

    #[test]
    fn success_returns_stdout() {
        let out = run(Command::new("printf").arg("hello")).expect("printf runs");
        assert_eq!(out.stdout, b"hello");
    }

    #[test]
    fn tail_keeps_last_lines_only() {
        let many: String = (0..20).map(|i| format!("l{i}\n")).collect();
        let tail = stderr_tail(many.as_bytes());
        assert!(tail.starts_with("l8 |"), "{tail}");
        assert!(tail.ends_with("l19"), "{tail}");
    }
}
