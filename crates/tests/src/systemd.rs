//! Checking systemd unit files on the host with `systemd-analyze verify` (Debian's `systemd`
//! package, which `cargo xtask setup` installs), against a guest root tree whose programs are
//! arm64 files: nothing is run, so they only have to exist there.
//!
//! `systemd-analyze --root=TREE verify UNIT...` loads the units through TREE's own unit search
//! path (`TREE/etc/systemd/system`, `TREE/lib/systemd/system`, ...), resolves their
//! dependencies there, and checks that every `Exec*=` program exists and is executable *inside
//! TREE*. A unit file given by a path outside TREE is not found in that mode, so units that are
//! not in the tree yet are copied into `TREE/etc/systemd/system/` for the check and removed
//! afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Verifies `unit_files` as installed in `root_tree` (see the module comment). Units already
/// inside `root_tree` are checked where they are; others are copied into
/// `root_tree/etc/systemd/system/` for the duration of the check (a file of the same name there
/// is replaced, so pass a scratch tree). Man pages are not checked (`--man=no`: fixture trees
/// carry none) and generators are not run (`--generators=no`: they are arm64 programs).
///
/// `Err` holds what systemd-analyze complained about (it reports some problems, such as an
/// unknown key, only as a warning with exit status 0: any output counts as a complaint), or why
/// it could not run.
pub fn systemd_verify<P: AsRef<Path>>(unit_files: &[P], root_tree: &Path) -> Result<(), String> {
    if unit_files.is_empty() {
        return Err("no unit files to verify".into());
    }
    let tree = root_tree
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root_tree.display()))?;
    let unit_dir = tree.join("etc/systemd/system");
    let mut names = Vec::new();
    let mut copied: Vec<PathBuf> = Vec::new();
    let result = (|| {
        for unit in unit_files {
            let unit = unit.as_ref();
            let name = unit
                .file_name()
                .ok_or_else(|| format!("{} is not a unit file", unit.display()))?;
            let real = unit
                .canonicalize()
                .map_err(|e| format!("{}: {e}", unit.display()))?;
            if !real.starts_with(&tree) {
                std::fs::create_dir_all(&unit_dir)
                    .map_err(|e| format!("{}: {e}", unit_dir.display()))?;
                let dest = unit_dir.join(name);
                std::fs::copy(&real, &dest)
                    .map_err(|e| format!("copying {} into the tree: {e}", unit.display()))?;
                copied.push(dest);
            }
            names.push(name.to_owned());
        }
        let out = Command::new("systemd-analyze")
            .arg(format!("--root={}", tree.display()))
            .args(["verify", "--man=no", "--generators=no"])
            .args(&names)
            .output()
            .map_err(|e| {
                format!("cannot run systemd-analyze: {e} (`cargo xtask setup` installs systemd)")
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && text.trim().is_empty() {
            Ok(())
        } else {
            Err(format!(
                "systemd-analyze verify ({}): {}",
                out.status,
                text.trim()
            ))
        }
    })();
    for file in copied {
        let _ = std::fs::remove_file(file);
    }
    result
}
