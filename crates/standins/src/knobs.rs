//! Test stand-in plumbing: test knobs, read only from the kernel command line
//! (`/proc/cmdline` under the root) as `k8r.standin.KEY=VALUE` tokens, so a QEMU harness can
//! set them per boot. A malformed knob fails every stand-in loudly rather than being ignored.
//! It does not read knobs from the environment or from files.

use std::path::Path;

use crate::error::{fail, Result};
use crate::Version;

/// One injected `kubeadm join` failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinFault {
    /// `stale-node:N`: the first N join attempts of this boot that reach the kubelet-start
    /// phase fail because a Ready Node of the same name still exists.
    StaleNode(u32),
    /// `expired-token`: discovery fails as with an expired or deleted bootstrap token.
    ExpiredToken,
}

/// All knobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    /// `k8r.standin.join=…` (comma-separated faults).
    pub join: Vec<JoinFault>,
    /// `k8r.standin.control-plane-version=X.Y.Z`: the version of the cluster a worker joins.
    pub control_plane_version: Option<Version>,
}

/// The token prefix.
pub const PREFIX: &str = "k8r.standin.";

impl Knobs {
    /// Reads `/proc/cmdline` under `root`; a missing file means no knobs.
    pub fn load(root: &Path) -> Result<Knobs> {
        match std::fs::read_to_string(root.join("proc/cmdline")) {
            Ok(s) => Knobs::parse(&s),
            Err(_) => Ok(Knobs::default()),
        }
    }

    /// Parses the knobs out of a kernel command line.
    pub fn parse(cmdline: &str) -> Result<Knobs> {
        let mut k = Knobs::default();
        for token in cmdline.split_whitespace() {
            let Some(rest) = token.strip_prefix(PREFIX) else {
                continue;
            };
            let bad = |why: &str| {
                fail(format!(
                    "k8r stand-in: bad knob {token:?} on the kernel command line: {why}"
                ))
            };
            let Some((key, value)) = rest.split_once('=') else {
                return Err(bad("expected k8r.standin.KEY=VALUE"));
            };
            match key {
                "join" => {
                    for v in value.split(',') {
                        let fault =
                            if v == "expired-token" {
                                JoinFault::ExpiredToken
                            } else if let Some(n) = v.strip_prefix("stale-node:") {
                                JoinFault::StaleNode(n.parse().map_err(|_| {
                                    bad("stale-node takes a count, e.g. stale-node:2")
                                })?)
                            } else {
                                return Err(bad("join takes stale-node:N or expired-token"));
                            };
                        k.join.push(fault);
                    }
                }
                "control-plane-version" => {
                    k.control_plane_version = Some(
                        Version::parse(value)
                            .ok_or_else(|| bad("expected a version like 1.31.2"))?,
                    );
                }
                _ => {
                    return Err(bad(
                        "known keys: join=stale-node:N|expired-token, control-plane-version=X.Y.Z",
                    ))
                }
            }
        }
        Ok(k)
    }

    /// The `stale-node:N` count, if set.
    pub fn stale_node(&self) -> Option<u32> {
        self.join.iter().find_map(|f| match f {
            JoinFault::StaleNode(n) => Some(*n),
            JoinFault::ExpiredToken => None,
        })
    }

    /// Whether `expired-token` is set.
    pub fn expired_token(&self) -> bool {
        self.join.contains(&JoinFault::ExpiredToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_knobs_among_other_tokens() {
        let k = Knobs::parse(
            "console=ttyAMA0 root=LABEL=writable k8r.standin.join=stale-node:2,expired-token k8r.standin.control-plane-version=1.31.2 quiet",
        )
        .expect("parse");
        assert_eq!(k.stale_node(), Some(2));
        assert!(k.expired_token());
        assert_eq!(k.control_plane_version, Some(Version::new(1, 31, 2)));
        assert_eq!(
            Knobs::parse("quiet splash").expect("none"),
            Knobs::default()
        );
    }

    #[test]
    fn refuses_malformed_knobs() {
        for bad in [
            "k8r.standin.join=stale-nod:2",
            "k8r.standin.join=stale-node:x",
            "k8r.standin.joinstale",
            "k8r.standin.control-plane-version=1.31",
            "k8r.standin.colour=blue",
        ] {
            let e = Knobs::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
