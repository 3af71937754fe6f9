//! ext4 partitions built and edited with e2fsprogs, without mounting.
//!
//! `mke2fs -d DIR` builds the filesystem from a staging tree; `debugfs -w` edits it. Both get
//! `E2FSPROGS_FAKE_TIME` so times are reproducible, and every inode is given owner root and the
//! fixed time afterwards, because `mke2fs -d` copies the host's uid/gid and ctime
//! (`docs/assembly.md`). debugfs always exits 0: its stderr is the only error signal.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, ImageError};
use crate::process::run;

/// How to make an ext4 filesystem.
#[derive(Debug, Clone)]
pub struct Ext4Spec {
    /// Filesystem size in bytes (a multiple of 4 KiB).
    pub size: u64,
    /// Volume label (Ubuntu's root is `writable`).
    pub label: String,
    /// Filesystem UUID.
    pub uuid: String,
    /// Directory hash seed (a UUID), fixed for reproducible directories.
    pub hash_seed: String,
    /// Seconds since the epoch for every timestamp.
    pub epoch: u64,
}

/// Makes a standalone ext4 file at `path` holding the tree under `root` (owner root:root for
/// every inode, modes as in the tree, all times = `spec.epoch`).
pub fn make_from_dir(path: &Path, spec: &Ext4Spec, root: &Path) -> Result<(), ImageError> {
    if path.exists() {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    let mut cmd = Command::new("mke2fs");
    cmd.env("E2FSPROGS_FAKE_TIME", spec.epoch.to_string())
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256"])
        .args(["-L", &spec.label, "-U", &spec.uuid])
        .arg("-E")
        .arg(format!("hash_seed={},root_owner=0:0", spec.hash_seed))
        .arg("-d")
        .arg(root)
        .arg(path)
        .arg(format!("{}k", spec.size / 1024));
    run(&mut cmd)?;
    let mut script = String::new();
    for rel in tree_paths(root)? {
        let p = format!("/{rel}");
        // Quote paths for debugfs (it splits on spaces otherwise).
        let _ = writeln!(script, "sif \"{p}\" uid 0");
        let _ = writeln!(script, "sif \"{p}\" gid 0");
        for field in ["atime", "mtime", "ctime", "crtime"] {
            let _ = writeln!(script, "sif \"{p}\" {field} {}", debugfs_time(spec.epoch));
        }
    }
    for field in ["atime", "mtime", "ctime", "crtime"] {
        let _ = writeln!(script, "sif / {field} {}", debugfs_time(spec.epoch));
    }
    debugfs(path, &script, spec.epoch)
}

/// A time for debugfs' `set_inode_field`: `@SECONDS` (a bare number is read as a date, so
/// 1776902400 would become a day in the 24th century).
pub fn debugfs_time(epoch: u64) -> String {
    format!("@{epoch}")
}

/// All paths under `root`, relative, sorted, directories before their contents.
fn tree_paths(root: &Path) -> Result<Vec<String>, ImageError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let child = rel.join(entry.file_name());
            let is_dir = entry.file_type().map_err(io_err(entry.path()))?.is_dir();
            out.push(child.to_string_lossy().into_owned());
            if is_dir {
                stack.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs a debugfs script with write access. Fails if debugfs printed anything on stderr besides
/// its version banner (it exits 0 even when commands fail).
pub fn debugfs(path: &Path, script: &str, epoch: u64) -> Result<(), ImageError> {
    let script_path = super::temp_path("debugfs");
    std::fs::write(&script_path, script).map_err(io_err(&script_path))?;
    let mut cmd = Command::new("debugfs");
    cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .arg("-w")
        .arg("-f")
        .arg(&script_path)
        .arg(path);
    let result = run(&mut cmd);
    let _ = std::fs::remove_file(&script_path);
    let output = result?;
    let errors = debugfs_errors(&String::from_utf8_lossy(&output.stderr));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ImageError::Debugfs {
            path: path.to_path_buf(),
            message: errors.join(" | "),
        })
    }
}

/// The stderr lines of a debugfs run that are errors (all but the version banner).
fn debugfs_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .map(str::to_owned)
        .collect()
}

/// Runs a read-only debugfs script; returns its stdout and its error lines (stderr without
/// the banner). The caller decides which errors matter.
pub fn debugfs_query(path: &Path, script: &str) -> Result<(String, Vec<String>), ImageError> {
    let script_path = super::temp_path("debugfs-query");
    std::fs::write(&script_path, script).map_err(io_err(&script_path))?;
    let result = run(Command::new("debugfs")
        .arg("-f")
        .arg(&script_path)
        .arg(path));
    let _ = std::fs::remove_file(&script_path);
    let output = result?;
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        debugfs_errors(&String::from_utf8_lossy(&output.stderr)),
    ))
}

/// Block size, block count and free blocks from the superblock (`dumpe2fs -h`).
pub fn geometry(path: &Path) -> Result<Geometry, ImageError> {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(path))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Result<u64, ImageError> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim_start_matches(':').trim().parse().ok())
            .ok_or_else(|| {
                ImageError::Layout(format!("{}: dumpe2fs shows no {name}", path.display()))
            })
    };
    Ok(Geometry {
        block_size: field("Block size")?,
        blocks: field("Block count")?,
        free_blocks: field("Free blocks")?,
    })
}

/// Sizes from an ext4 superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block.
    pub block_size: u64,
    /// Blocks in the filesystem.
    pub blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
}

impl Geometry {
    /// Filesystem size in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks * self.block_size
    }
    /// Free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free_blocks * self.block_size
    }
}

/// Grows (or shrinks) a standalone ext4 file to `bytes` with `resize2fs` (which also sets the
/// file length). Never point it at a card with an offset: it truncates the whole file.
pub fn resize(path: &Path, bytes: u64, epoch: u64) -> Result<(), ImageError> {
    // Grow the file first (sparse zeros): when resize2fs has to extend a file itself it writes
    // the character '0' into its last byte, leaving a non-zero byte in free space.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    if bytes > len {
        file.set_len(bytes).map_err(io_err(path))?;
    }
    drop(file);
    run(Command::new("resize2fs")
        .env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .arg("-f")
        .arg(path)
        .arg(format!("{}K", bytes / 1024)))?;
    Ok(())
}

/// Reads one file out of an ext4 image (`debugfs -R "cat PATH"`).
pub fn read_file(image: &Path, path: &str) -> Result<Vec<u8>, ImageError> {
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat \"{path}\""))
        .arg(image))?;
    let errors = debugfs_errors(&String::from_utf8_lossy(&out.stderr));
    if errors.is_empty() {
        Ok(out.stdout)
    } else {
        Err(ImageError::Debugfs {
            path: image.to_path_buf(),
            message: errors.join(" | "),
        })
    }
}

/// `e2fsck -fn`: checks the filesystem without changing it.
pub fn check(image: &Path) -> Result<(), ImageError> {
    run(Command::new("e2fsck").arg("-fn").arg(image))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::image::MIB;

    fn spec(epoch: u64) -> Ext4Spec {
        Ext4Spec {
            size: 8 * MIB,
            label: "writable".into(),
            uuid: "5a1ee7e5-0000-4000-8000-000000000001".into(),
            hash_seed: "5a1ee7e5-0000-4000-8000-000000000002".into(),
            epoch,
        }
    }

    fn tree(dir: &Path) -> PathBuf {
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sbin")).expect("mkdir");
        std::fs::write(root.join("sbin/init"), "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(
            root.join("sbin/init"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        std::fs::write(root.join("with space.txt"), "s").expect("write");
        std::os::unix::fs::symlink("sbin/init", root.join("init")).expect("symlink");
        root
    }

    #[test]
    fn reproducible_clean_and_owned_by_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = tree(dir.path());
        let a = dir.path().join("a.ext4");
        let b = dir.path().join("b.ext4");
        make_from_dir(&a, &spec(1_700_000_000), &root).expect("mke2fs a");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        make_from_dir(&b, &spec(1_700_000_000), &root).expect("mke2fs b");
        assert!(std::fs::read(&a).expect("a") == std::fs::read(&b).expect("b"));
        check(&a).expect("e2fsck clean");
        assert_eq!(read_file(&a, "/sbin/init").expect("cat"), b"#!/bin/sh\n");
        let stat = run(Command::new("debugfs")
            .arg("-R")
            .arg("stat /sbin/init")
            .arg(&a))
        .expect("stat");
        let text = String::from_utf8_lossy(&stat.stdout);
        assert!(text.contains("User:     0   Group:     0"), "{text}");
        assert!(text.contains("Mode:  0755"), "{text}");
        // The fixed time is the epoch given (1_700_000_000 = 0x6553f100), not a date debugfs
        // made of the bare number.
        for field in ["mtime", "ctime", "atime", "crtime"] {
            assert!(
                text.contains(&format!("{field}: 0x6553f100")),
                "{field}: {text}"
            );
        }
    }

    #[test]
    fn debugfs_errors_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = tree(dir.path());
        let a = dir.path().join("a.ext4");
        make_from_dir(&a, &spec(0), &root).expect("mke2fs");
        let err = debugfs(&a, "sif /no/such/file uid 0\n", 0).expect_err("must fail");
        assert!(err.to_string().contains("/no/such/file"), "{err}");
        let err = read_file(&a, "/missing").expect_err("must fail");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
