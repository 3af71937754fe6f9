//! Test stand-in plumbing: how a stand-in fails. A failure is either the message the real tool
//! would print (exit code 1), or an I/O problem of the stand-in itself. It does not reproduce
//! the real tools' other exit codes (kubeadm uses 2 and 3 in some paths): callers should match
//! on text, and treat every non-zero code as failure.

use std::path::Path;

use crate::Tool;

/// Why a stand-in invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// What the real tool prints on stderr for this input (already in its wording).
    #[error("{0}")]
    Tool(String),
    /// The stand-in could not read or write one of its own files.
    #[error("{context}: {source}")]
    Io {
        /// What the stand-in was doing, naming the path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Failure {
    /// The text printed on stderr when `tool` fails with this.
    pub fn message(&self, tool: Tool) -> String {
        match self {
            Failure::Tool(m) => m.clone(),
            Failure::Io { .. } => format!("k8r stand-in {}: {self}", tool.name()),
        }
    }
}

/// Result of a stand-in step.
pub type Result<T> = std::result::Result<T, Failure>;

/// A failure worded like the real tool.
pub fn fail(message: impl Into<String>) -> Failure {
    Failure::Tool(message.into())
}

/// Adds the path and the action to an I/O error.
pub trait IoContext<T> {
    /// `what` is e.g. "writing", "reading".
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|source| Failure::Io {
            context: format!("{what} {}", path.display()),
            source,
        })
    }
}
