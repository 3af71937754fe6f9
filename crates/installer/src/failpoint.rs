//! Failpoints at every commit point of the install, switched on from the kernel command line
//! (`k8r.failpoint=NAME`): the installer prints `k8r-failpoint: NAME` and stops there (as if
//! the power went at that instant), so QEMU tests can cut the power at an exact step.

use std::time::Duration;

/// The named commit points, in install order.
pub const POINTS: &[&str] = &[
    "after-begin",
    "during-root-write",
    "after-root-write",
    "after-boot-format",
    "after-boot-unpack",
    "before-flip",
    "after-flip",
];

/// Failpoints parsed from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failpoints {
    armed: Vec<String>,
}

impl Failpoints {
    /// Reads `k8r.failpoint=a,b` tokens from a kernel command line.
    pub fn from_cmdline(cmdline: &str) -> Self {
        let armed = cmdline
            .split_whitespace()
            .filter_map(|t| t.strip_prefix("k8r.failpoint="))
            .flat_map(|v| v.split(','))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        Self { armed }
    }

    /// Whether `name` is armed.
    pub fn armed(&self, name: &str) -> bool {
        self.armed.iter().any(|a| a == name)
    }

    /// If `name` is armed, announces it and stops forever (never returns).
    pub fn hit(&self, name: &str, say: &dyn Fn(&str)) {
        if self.armed(name) {
            say(&format!("k8r-failpoint: {name}"));
            crate::sys::sync();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_and_lists() {
        let f =
            Failpoints::from_cmdline("console=ttyAMA0 k8r.failpoint=before-flip,after-begin quiet");
        assert!(f.armed("before-flip"));
        assert!(f.armed("after-begin"));
        assert!(!f.armed("after-flip"));
        assert_eq!(
            Failpoints::from_cmdline("k8r.failpoint="),
            Failpoints::default()
        );
        for p in POINTS {
            assert!(!Failpoints::default().armed(p));
        }
    }
}
