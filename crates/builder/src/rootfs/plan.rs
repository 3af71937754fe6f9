//! A root-filesystem change list and its rendering as one `debugfs -w` script.
//!
//! Pure: the plan says what goes where with which mode; [`RootPlan::script`] turns it into
//! debugfs commands. Every written inode gets owner root:root and the build's fixed time.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

/// One change to the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Make a directory (and its missing parents) with this mode.
    Dir {
        /// Absolute path in the image.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// Write a regular file from a local file, replacing what is there.
    File {
        /// Absolute path in the image.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Local file with the content.
        source: PathBuf,
    },
    /// Make a symbolic link, replacing what is there.
    Symlink {
        /// Absolute path in the image.
        path: String,
        /// Link target.
        target: String,
    },
}

impl Op {
    /// The image path this op writes.
    pub fn path(&self) -> &str {
        match self {
            Op::Dir { path, .. } | Op::File { path, .. } | Op::Symlink { path, .. } => path,
        }
    }
}

/// An ordered list of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootPlan {
    /// The changes, applied in order.
    pub ops: Vec<Op>,
}

/// The directories whose listings tell whether the plan's paths exist: every ancestor of every
/// op's path (the root included).
pub fn dirs_to_list(plan: &RootPlan) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    dirs.insert("/".to_owned());
    for op in &plan.ops {
        dirs.extend(parents(op.path()));
    }
    dirs
}

/// Parses the stdout of a debugfs script of `ls -p DIR` commands into the set of existing
/// paths. Each listing starts with an echo line `debugfs: ls -p DIR`; entries look like
/// `/ino/mode/uid/gid/name/size/`. A directory that does not exist lists nothing.
pub fn parse_listings(stdout: &str) -> BTreeSet<String> {
    let mut existing = BTreeSet::new();
    let mut dir: Option<String> = None;
    for line in stdout.lines() {
        if let Some(d) = line.strip_prefix("debugfs: ls -p ") {
            dir = Some(d.trim().trim_matches('"').to_owned());
            continue;
        }
        let (Some(d), Some(rest)) = (dir.as_deref(), line.strip_prefix('/')) else {
            continue;
        };
        let fields: Vec<&str> = rest.splitn(6, '/').collect();
        let Some(name) = fields.get(4).copied() else {
            continue;
        };
        if name.is_empty() || name == "." || name == ".." {
            continue;
        }
        let path = if d == "/" {
            format!("/{name}")
        } else {
            format!("{d}/{name}")
        };
        existing.insert(path);
    }
    existing
}

fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\\\""))
}

fn parents(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        cur.push('/');
        cur.push_str(part);
        out.push(cur.clone());
    }
    out
}

impl RootPlan {
    /// Adds an op.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Paths of all ops (for reports and `inspect`).
    pub fn paths(&self) -> Vec<&str> {
        self.ops.iter().map(Op::path).collect()
    }

    /// Renders the debugfs script. Missing parents are created first (mode 0755 unless a `Dir`
    /// op names them); existing directories are left as they are; existing files and links are
    /// removed before they are written. `existing` comes from [`parse_listings`].
    pub fn script(&self, epoch: u64, existing: &BTreeSet<String>) -> String {
        let mut s = String::new();
        let mut made: BTreeSet<String> = BTreeSet::new();
        let explicit: std::collections::BTreeMap<&str, u32> = self
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Dir { path, mode } => Some((path.as_str(), *mode)),
                _ => None,
            })
            .collect();
        let mut mkdir = |s: &mut String, dir: &str| {
            if !existing.contains(dir) && made.insert(dir.to_owned()) {
                let mode = explicit.get(dir).copied().unwrap_or(0o755);
                let _ = writeln!(s, "mkdir {}", quote(dir));
                let _ = writeln!(s, "sif {} mode 0{:o}", quote(dir), 0o040_000 | mode);
                stamp(s, dir, epoch);
            }
        };
        for op in &self.ops {
            for parent in parents(op.path()) {
                mkdir(&mut s, &parent);
            }
            match op {
                Op::Dir { path, .. } => mkdir(&mut s, path),
                Op::File { path, mode, source } => {
                    if existing.contains(path) {
                        let _ = writeln!(s, "rm {}", quote(path));
                    }
                    let _ = writeln!(
                        s,
                        "write {} {}",
                        quote(&source.to_string_lossy()),
                        quote(path)
                    );
                    let _ = writeln!(s, "sif {} mode 0{:o}", quote(path), 0o100_000 | mode);
                    stamp(&mut s, path, epoch);
                }
                Op::Symlink { path, target } => {
                    if existing.contains(path) {
                        let _ = writeln!(s, "rm {}", quote(path));
                    }
                    let _ = writeln!(s, "symlink {} {}", quote(path), quote(target));
                    stamp(&mut s, path, epoch);
                }
            }
        }
        s
    }
}

fn stamp(s: &mut String, path: &str, epoch: u64) {
    let _ = writeln!(s, "sif {} uid 0", quote(path));
    let _ = writeln!(s, "sif {} gid 0", quote(path));
    for field in ["atime", "mtime", "ctime", "crtime"] {
        let time = crate::image::ext4::debugfs_time(epoch);
        let _ = writeln!(s, "sif {} {field} {time}", quote(path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_makes_parents_once_and_replaces_files() {
        let mut plan = RootPlan::default();
        plan.push(Op::Dir {
            path: "/usr/lib/k8r".into(),
            mode: 0o700,
        });
        plan.push(Op::File {
            path: "/usr/lib/k8r/variables.cfg".into(),
            mode: 0o600,
            source: "/tmp/v.cfg".into(),
        });
        plan.push(Op::Symlink {
            path: "/etc/systemd/system/swap.target".into(),
            target: "/dev/null".into(),
        });
        let existing: BTreeSet<String> = [
            "/usr/lib/k8r/variables.cfg".to_owned(),
            "/etc/systemd/system/swap.target".to_owned(),
        ]
        .into();
        let s = plan.script(42, &existing);
        assert_eq!(s.matches("mkdir \"/usr\"\n").count(), 1, "{s}");
        assert!(s.contains("sif \"/usr/lib/k8r\" mode 040700\n"), "{s}");
        assert!(s.contains("rm \"/usr/lib/k8r/variables.cfg\"\nwrite \"/tmp/v.cfg\" \"/usr/lib/k8r/variables.cfg\"\n"), "{s}");
        assert!(
            s.contains("sif \"/usr/lib/k8r/variables.cfg\" mode 0100600\n"),
            "{s}"
        );
        assert!(
            s.contains("symlink \"/etc/systemd/system/swap.target\" \"/dev/null\"\n"),
            "{s}"
        );
        assert!(
            s.contains("sif \"/usr/lib/k8r/variables.cfg\" mtime @42\n"),
            "{s}"
        );
        let usr = s.find("mkdir \"/usr\"").expect("usr");
        let k8r = s.find("mkdir \"/usr/lib/k8r\"").expect("k8r");
        assert!(usr < k8r, "parents first");
    }

    #[test]
    fn listings_give_existing_paths() {
        let out = "debugfs: ls -p /\n/2/040755/0/0/.//\n/2/040755/0/0/..//\n/12/040755/0/0/etc//\n\n\
                   debugfs: ls -p /nope\ndebugfs: ls -p /etc\n/12/040755/0/0/.//\n/13/0100644/0/0/hostname/4/\n";
        let got = parse_listings(out);
        let want: BTreeSet<String> = ["/etc", "/etc/hostname"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn existing_dirs_are_not_touched_and_missing_files_not_removed() {
        let mut plan = RootPlan::default();
        plan.push(Op::File {
            path: "/etc/k8r/a".into(),
            mode: 0o644,
            source: "/tmp/a".into(),
        });
        assert_eq!(
            dirs_to_list(&plan).into_iter().collect::<Vec<_>>(),
            vec!["/".to_owned(), "/etc".to_owned(), "/etc/k8r".to_owned()]
        );
        let existing: BTreeSet<String> = ["/etc".to_owned()].into();
        let s = plan.script(1, &existing);
        assert!(!s.contains("mkdir \"/etc\"\n"), "{s}");
        assert!(!s.contains("sif \"/etc\""), "{s}");
        assert!(s.contains("mkdir \"/etc/k8r\"\n"), "{s}");
        assert!(!s.contains("rm "), "{s}");
    }
}
