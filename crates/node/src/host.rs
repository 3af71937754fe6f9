//! The machine the agent runs on, as a root directory: every absolute path the agent touches
//! goes through [`Host::path`], so tests run whole flows on a temp dir (with the Kubernetes
//! stand-ins under its `usr/local/bin`), and the real agent runs with the root `/`.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The agent's runtime directory (tmpfs, gone at each boot): its lock, the mount point of the
/// recovery partition, the mark that this boot's setup succeeded.
pub const RUN_DIR: &str = "/run/k8r";

/// The machine's filesystem root.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    /// The real machine.
    pub fn system() -> Host {
        Host {
            root: PathBuf::from("/"),
        }
    }

    /// A machine whose root is `root` (tests).
    pub fn at(root: &Path) -> Host {
        Host {
            root: root.to_path_buf(),
        }
    }

    /// Whether this is the real machine (mounts, reboots and hostnames only happen there).
    pub fn is_system(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The host path of absolute path `abs` (e.g. `/etc/hostname`).
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// Reads a file, `None` when it does not exist.
    pub fn read_opt(&self, abs: &str) -> Result<Option<Vec<u8>>> {
        read_opt(&self.path(abs))
    }

    /// Reads a text file, `None` when it does not exist.
    pub fn read_text_opt(&self, abs: &str) -> Result<Option<String>> {
        Ok(self
            .read_opt(abs)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The agent's runtime directory [`RUN_DIR`], created (with its parents) if needed and
    /// made `0700 root`: the recovery partition is mounted under it while the agent reads or
    /// writes it, with the node's join secret in its settings, so no other user may enter.
    pub fn run_dir(&self) -> Result<PathBuf> {
        let dir = self.path(RUN_DIR);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (0700)", dir.display()))?;
        Ok(dir)
    }

    /// Writes `data` to `abs` atomically (temp file, fsync, rename) with `mode`, creating
    /// the parent directories.
    pub fn write(&self, abs: &str, data: &[u8], mode: u32) -> Result<()> {
        write_atomic(&self.path(abs), data, mode)
    }
}

/// Reads a file, `None` when it does not exist.
pub fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `data` to `path` atomically (temp file beside it, fsync, rename, fsync of the
/// directory) with permission bits `mode` set before the data is written, so a secret is never
/// readable by others, not even for a moment.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.k8r-tmp"));
    let result = (|| -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_directory_is_private_even_when_it_existed_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::at(dir.path());
        fs::create_dir_all(h.path(RUN_DIR)).expect("mkdir");
        fs::set_permissions(h.path(RUN_DIR), fs::Permissions::from_mode(0o755)).expect("chmod");
        let got = h.run_dir().expect("run dir");
        assert_eq!(got, h.path(RUN_DIR));
        let mode = fs::metadata(&got).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        for inside in [k8r_card::image_root::RECOVERY_MOUNT, crate::trial::SETUP_OK] {
            assert!(inside.starts_with(&format!("{RUN_DIR}/")), "{inside}");
        }
    }

    #[test]
    fn paths_are_under_the_root() {
        let h = Host::at(Path::new("/tmp/x"));
        assert_eq!(h.path("/etc/hostname"), Path::new("/tmp/x/etc/hostname"));
        assert!(!h.is_system());
        assert!(Host::system().is_system());
        assert_eq!(Host::system().path("/etc"), Path::new("/etc"));
    }

    #[test]
    fn atomic_write_sets_the_mode_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::at(dir.path());
        assert_eq!(h.read_opt("/a/b").expect("read"), None);
        h.write("/a/b", b"one", 0o600).expect("write");
        h.write("/a/b", b"two", 0o600).expect("write");
        assert_eq!(
            h.read_text_opt("/a/b").expect("read").as_deref(),
            Some("two")
        );
        let mode = fs::metadata(h.path("/a/b"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(h.path("/a"))
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }
}
