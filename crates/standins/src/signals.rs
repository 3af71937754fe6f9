//! Test stand-in plumbing for the long-running stand-ins (kubelet, containerd): block until
//! SIGTERM or SIGINT, as systemd stops a unit. Uses signal-hook's safe iterator (no `unsafe`
//! here). It does not handle SIGHUP reloads.

use crate::error::{Failure, Result};

/// A registration for SIGTERM and SIGINT; make it before announcing readiness so no signal
/// between the announcement and the wait is lost.
#[derive(Debug)]
pub struct Stop(signal_hook::iterator::Signals);

impl Stop {
    /// Registers the handlers.
    pub fn register() -> Result<Stop> {
        signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])
        .map(Stop)
        .map_err(|source| Failure::Io {
            context: "registering SIGTERM/SIGINT handlers".into(),
            source,
        })
    }

    /// Blocks until one of the signals arrives; returns its number.
    pub fn wait(&mut self) -> i32 {
        loop {
            if let Some(sig) = self.0.forever().next() {
                return sig;
            }
        }
    }
}
