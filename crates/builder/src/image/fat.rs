//! FAT32 partitions built and edited with dosfstools and mtools, as an ordinary user.
//!
//! `mkfs.vfat` formats a standalone file; mtools (`mmd`, `mcopy`) fill it. Files are copied one
//! directory at a time in sorted order with `SOURCE_DATE_EPOCH` set, so the same tree gives the
//! same bytes. (The `fatfs` crate's directories fail `fsck.fat`; see `docs/assembly.md`.)

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, ImageError, MIB};
use crate::process::run;

/// FAT32 needs at least this many clusters, or readers take it for FAT16.
const FAT32_MIN_CLUSTERS: u64 = 65_525;

/// How to format a FAT32 partition.
#[derive(Debug, Clone)]
pub struct FatSpec {
    /// Partition size in bytes (a multiple of 1 MiB, at least 33 MiB).
    pub size: u64,
    /// Volume label (Ubuntu's boot partition is `system-boot`).
    pub label: String,
    /// Volume serial number.
    pub volume_id: u32,
}

/// A FAT filesystem inside an image file, at a byte offset (0 for a standalone partition file).
#[derive(Debug, Clone)]
pub struct FatImage {
    /// The image file.
    pub path: PathBuf,
    /// Byte offset of the filesystem inside it.
    pub offset: u64,
}

impl FatImage {
    /// A standalone partition file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            offset: 0,
        }
    }

    /// mtools' `-i` argument: `image@@offset`.
    fn mtools_image(&self) -> OsString {
        let mut s = self.path.clone().into_os_string();
        s.push(format!("@@{}", self.offset));
        s
    }

    fn mtools(&self, program: &str, epoch: u64) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("MTOOLS_SKIP_CHECK", "1")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .arg("-i")
            .arg(self.mtools_image());
        cmd
    }

    /// Reads one file (path relative to the root, `/`-separated).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, ImageError> {
        let mut cmd = self.mtools("mcopy", 0);
        cmd.arg(format!("::/{}", path.trim_start_matches('/')))
            .arg("-");
        Ok(run(&mut cmd)?.stdout)
    }

    /// Writes (creates or replaces) one file, creating missing parent directories.
    pub fn write(&self, path: &str, data: &[u8], epoch: u64) -> Result<(), ImageError> {
        let path = path.trim_start_matches('/');
        let dir = tempfile_dir()?;
        let local = dir.join("data");
        std::fs::write(&local, data).map_err(io_err(&local))?;
        let mut parent = String::new();
        if let Some((dirs, _)) = path.rsplit_once('/') {
            for part in dirs.split('/') {
                parent.push('/');
                parent.push_str(part);
                if !self.exists(&parent)? {
                    run(self.mtools("mmd", epoch).arg(format!("::{parent}")))?;
                }
            }
        }
        let result = run(self
            .mtools("mcopy", epoch)
            .arg("-o")
            .arg(&local)
            .arg(format!("::/{path}")));
        let _ = std::fs::remove_dir_all(&dir);
        result.map(|_| ()).map_err(ImageError::from)
    }

    /// Copies every file and directory of the filesystem into `dest` (which must exist).
    pub fn extract_all(&self, dest: &Path) -> Result<(), ImageError> {
        let mut cmd = self.mtools("mcopy", 0);
        cmd.args(["-s", "-n", "-m"]).arg("::/*").arg(dest);
        run(&mut cmd)?;
        Ok(())
    }

    /// Deletes one file.
    pub fn remove(&self, path: &str) -> Result<(), ImageError> {
        let mut cmd = self.mtools("mdel", 0);
        cmd.arg(format!("::/{}", path.trim_start_matches('/')));
        run(&mut cmd)?;
        Ok(())
    }

    /// Whether `path` exists (file or directory).
    pub fn exists(&self, path: &str) -> Result<bool, ImageError> {
        let mut cmd = self.mtools("mdir", 0);
        cmd.arg("-b")
            .arg(format!("::/{}", path.trim_start_matches('/')));
        match run(&mut cmd) {
            Ok(_) => Ok(true),
            Err(crate::process::ProcessError::Failed { stderr_tail, .. })
                if stderr_tail.contains("not found") =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Copies the tree under `dir` into the filesystem root, directories first, each directory's
    /// entries in sorted order (reproducible), with file times from `epoch`.
    pub fn copy_tree(&self, dir: &Path, epoch: u64) -> Result<(), ImageError> {
        self.copy_dir(dir, "", epoch)
    }

    fn copy_dir(&self, local: &Path, fat_dir: &str, epoch: u64) -> Result<(), ImageError> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(local)
            .map_err(io_err(local))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io_err(local))?;
        entries.sort();
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for entry in entries {
            let meta = std::fs::symlink_metadata(&entry).map_err(io_err(&entry))?;
            if meta.is_dir() {
                dirs.push(entry);
            } else if meta.is_file() {
                files.push(entry);
            } else {
                return Err(ImageError::Layout(format!(
                    "{}: FAT holds only regular files and directories",
                    entry.display()
                )));
            }
        }
        if !files.is_empty() {
            let mut cmd = self.mtools("mcopy", epoch);
            cmd.args(&files).arg(format!("::{fat_dir}/"));
            run(&mut cmd)?;
        }
        for sub in dirs {
            let name = sub
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = format!("{fat_dir}/{name}");
            run(self.mtools("mmd", epoch).arg(format!("::{target}")))?;
            self.copy_dir(&sub, &target, epoch)?;
        }
        Ok(())
    }
}

/// Sectors per cluster for a FAT32 of `size` bytes: the largest of 1, 2, 4, 8 that still
/// leaves comfortably more than the FAT32 minimum cluster count.
pub fn sectors_per_cluster(size: u64) -> Result<u8, ImageError> {
    let sectors = size / 512;
    // Reserved sectors and two FATs take a few percent; ask for 10 % headroom.
    let needed = FAT32_MIN_CLUSTERS + FAT32_MIN_CLUSTERS / 10;
    [8u8, 4, 2, 1]
        .into_iter()
        .find(|&spc| sectors / u64::from(spc) >= needed)
        .ok_or_else(|| {
            ImageError::Layout(format!(
                "a FAT32 partition needs at least {} MiB, {} MiB was asked for",
                (needed * 512).div_ceil(MIB),
                size / MIB
            ))
        })
}

/// Formats a new standalone FAT32 partition file at `path` (replacing any file there).
pub fn format(path: &Path, spec: &FatSpec) -> Result<FatImage, ImageError> {
    let spc = sectors_per_cluster(spec.size)?;
    if path.exists() {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    let mut cmd = Command::new("mkfs.vfat");
    cmd.arg("-C")
        .args(["-F", "32", "-S", "512", "-s", &spc.to_string()])
        .args(["-n", &spec.label])
        .arg("--invariant")
        .args(["-i", &format!("{:08x}", spec.volume_id)])
        .arg(path)
        .arg((spec.size / 1024).to_string());
    run(&mut cmd)?;
    Ok(FatImage::file(path))
}

fn tempfile_dir() -> Result<PathBuf, ImageError> {
    let dir = super::temp_path("fat");
    std::fs::create_dir(&dir).map_err(io_err(&dir))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FatSpec {
        FatSpec {
            size: 40 * MIB,
            label: "system-boot".into(),
            volume_id: 0x1234_abcd,
        }
    }

    #[test]
    fn cluster_size_keeps_fat32_minimum() {
        assert_eq!(sectors_per_cluster(40 * MIB).expect("40 MiB"), 1);
        assert_eq!(sectors_per_cluster(512 * MIB).expect("512 MiB"), 8);
        let err = sectors_per_cluster(32 * MIB).expect_err("too small for FAT32");
        assert!(err.to_string().contains("at least"), "{err}");
    }

    #[test]
    fn tree_copy_is_reproducible_and_fsck_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("current/overlays")).expect("mkdir");
        std::fs::write(tree.join("config.txt"), "[all]\nos_prefix=current/\n").expect("w");
        std::fs::write(tree.join("current/vmlinuz"), vec![7u8; 5000]).expect("w");
        std::fs::write(tree.join("current/overlays/README"), "x").expect("w");
        let mut images = Vec::new();
        for name in ["a.img", "b.img"] {
            let img = format(&dir.path().join(name), &spec()).expect("format");
            img.copy_tree(&tree, 1_700_000_000).expect("copy");
            images.push(std::fs::read(&img.path).expect("read"));
        }
        assert!(images[0] == images[1], "same tree must give the same bytes");
        let img = FatImage::file(dir.path().join("a.img"));
        assert_eq!(img.read("current/vmlinuz").expect("read"), vec![7u8; 5000]);
        assert!(img.exists("current/overlays").expect("exists"));
        assert!(!img.exists("new").expect("exists"));
        let fsck = run(Command::new("fsck.vfat").arg("-n").arg(&img.path)).expect("fsck clean");
        assert!(String::from_utf8_lossy(&fsck.stdout).contains("files"));
    }

    #[test]
    fn write_creates_parents_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = format(&dir.path().join("p.img"), &spec()).expect("format");
        img.write("new/cmdline.txt", b"one\n", 0).expect("write");
        img.write("new/cmdline.txt", b"two\n", 0).expect("rewrite");
        assert_eq!(img.read("new/cmdline.txt").expect("read"), b"two\n");
        img.remove("new/cmdline.txt").expect("remove");
        assert!(!img.exists("new/cmdline.txt").expect("exists"));
        let err = img.read("missing.txt").expect_err("absent file");
        assert!(err.to_string().contains("not found"), "{err}");
    }
}
