//! Failpoints at every commit point of the install, switched on from the kernel command line
//! (`k8r.failpoint=NAME[,NAME]`): the installer prints `k8r-failpoint: NAME` and stops there
//! (as if the power went at that instant), so QEMU tests can cut the power at an exact step.

use std::time::Duration;

/// The commit points, in install order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// The attempt is being recorded: the recovery partition is mounted read-write.
    WhileRecoveryWritable,
    /// The attempt is recorded, nothing written yet.
    AfterBegin,
    /// The first part of the root is being written.
    DuringRootWrite,
    /// The root is written and synced, not yet read back.
    AfterRootWrite,
    /// p2's new FAT is formatted, empty.
    AfterBootFormat,
    /// p2 holds the new boot files.
    AfterBootUnpack,
    /// Everything verified; the record and `autoboot.txt` not yet changed.
    BeforeFlip,
    /// `autoboot.txt` points at the working system; not rebooted yet.
    AfterFlip,
}

impl Point {
    /// Every point, in install order.
    pub(crate) const ALL: [Point; 8] = [
        Point::WhileRecoveryWritable,
        Point::AfterBegin,
        Point::DuringRootWrite,
        Point::AfterRootWrite,
        Point::AfterBootFormat,
        Point::AfterBootUnpack,
        Point::BeforeFlip,
        Point::AfterFlip,
    ];

    /// The name on the command line and in the console line.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Point::WhileRecoveryWritable => "while-p1-writable",
            Point::AfterBegin => "after-begin",
            Point::DuringRootWrite => "during-root-write",
            Point::AfterRootWrite => "after-root-write",
            Point::AfterBootFormat => "after-boot-format",
            Point::AfterBootUnpack => "after-boot-unpack",
            Point::BeforeFlip => "before-flip",
            Point::AfterFlip => "after-flip",
        }
    }
}

/// Failpoints parsed from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Failpoints {
    armed: Vec<Point>,
    unknown: Vec<String>,
}

impl Failpoints {
    /// Reads `k8r.failpoint=a,b` tokens from a kernel command line.
    pub(crate) fn from_cmdline(cmdline: &str) -> Self {
        let mut f = Failpoints::default();
        for name in cmdline
            .split_whitespace()
            .filter_map(|t| t.strip_prefix("k8r.failpoint="))
            .flat_map(|v| v.split(','))
            .filter(|v| !v.is_empty())
        {
            match Point::ALL.iter().find(|p| p.name() == name) {
                Some(p) => f.armed.push(*p),
                None => f.unknown.push(name.to_owned()),
            }
        }
        f
    }

    /// Names on the command line that are not failpoints (a typo in a test's command line
    /// would otherwise silently test nothing).
    pub(crate) fn unknown(&self) -> &[String] {
        &self.unknown
    }

    /// Whether `point` is armed.
    pub(crate) fn armed(&self, point: Point) -> bool {
        self.armed.contains(&point)
    }

    /// If `point` is armed, announces it and stops forever (never returns).
    pub(crate) fn hit(&self, point: Point, say: &dyn Fn(&str)) {
        if self.armed(point) {
            say(&format!("k8r-failpoint: {}", point.name()));
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
        let f = Failpoints::from_cmdline(
            "console=ttyAMA0 k8r.failpoint=before-flip,after-begin,befor-flip quiet",
        );
        assert!(f.armed(Point::BeforeFlip));
        assert!(f.armed(Point::AfterBegin));
        assert!(!f.armed(Point::AfterFlip));
        assert_eq!(f.unknown(), ["befor-flip"]);
        assert_eq!(
            Failpoints::from_cmdline("k8r.failpoint="),
            Failpoints::default()
        );
        for p in Point::ALL {
            assert!(!Failpoints::default().armed(p));
            assert_eq!(
                Failpoints::from_cmdline(&format!("k8r.failpoint={}", p.name())).armed,
                vec![p]
            );
        }
    }
}
