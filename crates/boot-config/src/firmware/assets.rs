//! Which files the firmware loads from the chosen partition: config file, kernel, initramfs,
//! device tree, command line (pi-boot notes sections 5-7; DOC-BOOT, DOC-FLOW, DOC-CMDLINE).

use super::{BootChoice, FileLookup, NoBoot, PartitionView};
use crate::board::Board;
use crate::cmdline::first_line;
use crate::config_txt::ConfigTxt;
use crate::effective::Effective;
use crate::filter::FilterContext;

fn read_text(files: &dyn FileLookup, path: &str) -> Option<String> {
    files
        .read(path.trim_start_matches('/'))
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// `${prefix}${name}`; a name starting with `/` bypasses the prefix (DOC-BOOT `os_prefix`).
/// Plain concatenation, as the firmware does: a prefix without a trailing `/` is a file
/// name prefix.
fn apply_prefix(prefix: &str, name: &str) -> String {
    match name.strip_prefix('/') {
        Some(absolute) => absolute.to_string(),
        None => format!("{prefix}{name}"),
    }
}

/// A non-empty setting.
fn setting<'a>(eff: &'a Effective, key: &str) -> Option<&'a str> {
    eff.get(key).filter(|v| !v.is_empty())
}

/// `auto_initramfs=1` name for a kernel: `kernel8.img` → `initramfs8`, `kernel_2712.img` →
/// `initramfs_2712`, `kernel7.img` → `initramfs7` (DOC-BOOT; file names UNCERTAIN). A custom
/// kernel name has none (ISSUE raspberrypi/linux#6802).
fn auto_initramfs_name(kernel: &str) -> Option<String> {
    let (dir, file) = kernel
        .rsplit_once('/')
        .map_or(("", kernel), |(d, f)| (d, f));
    let lower = file.to_ascii_lowercase();
    let middle = lower.strip_prefix("kernel")?.strip_suffix(".img")?;
    let name = format!("initramfs{middle}");
    Some(if dir.is_empty() && !kernel.starts_with('/') {
        name
    } else {
        format!("{dir}/{name}")
    })
}

/// Read and evaluate the config file. tryboot without `tryboot_a_b` reads `tryboot.txt`
/// (DOC-FLOW). A missing config file means firmware defaults. What the firmware does when
/// `tryboot.txt` is missing is UNCERTAIN (pi-boot notes section 5); we model defaults, not a
/// fallback to `config.txt`, so a card that relies on either reading shows up as a failure
/// in the model instead of working by luck on one firmware version.
fn load_config(
    view: &PartitionView,
    tryboot: bool,
    tryboot_a_b: bool,
    board: Board,
    trace: &mut Vec<String>,
) -> Result<(String, Effective), NoBoot> {
    let config_file = if tryboot && !tryboot_a_b {
        "tryboot.txt"
    } else {
        "config.txt"
    };
    let cfg = match read_text(view.files, config_file) {
        Some(text) => {
            trace.push(format!("partition {}: reading {config_file}", view.number));
            let cfg = ConfigTxt::parse_lenient(&text);
            for warning in cfg.warnings() {
                trace.push(format!("{config_file} {warning}"));
            }
            cfg
        }
        None => {
            trace.push(format!(
                "partition {}: {config_file} missing, firmware defaults",
                view.number
            ));
            ConfigTxt::default()
        }
    };
    let ctx = FilterContext {
        board,
        tryboot,
        boot_partition: view.number,
    };
    let include = |name: &str| read_text(view.files, name);
    let eff = cfg
        .effective(&ctx, &include)
        .map_err(|source| NoBoot::Config {
            partition: view.number,
            config_file: config_file.to_string(),
            source,
        })?;
    for name in eff.included_files() {
        trace.push(format!("include {name} read"));
    }
    for skipped in eff.skipped_includes() {
        trace.push(format!("include {}: {}", skipped.name, skipped.reason));
    }
    Ok((config_file.to_string(), eff))
}

/// `os_prefix` is kept only if both `${prefix}${kernel}` and `${prefix}${dtb}` exist; else it
/// is silently dropped (DOC-BOOT viability check).
fn viable_prefix(
    view: &PartitionView,
    prefix: &str,
    kernel: &str,
    dtb: &str,
    trace: &mut Vec<String>,
) -> String {
    if prefix.is_empty() {
        return String::new();
    }
    let missing: Vec<String> = [kernel, dtb]
        .iter()
        .map(|name| apply_prefix(prefix, name))
        .filter(|path| !view.files.exists(path))
        .collect();
    if missing.is_empty() {
        trace.push(format!("os_prefix={prefix} kept"));
        prefix.to_string()
    } else {
        trace.push(format!(
            "os_prefix={prefix} dropped: {} not found",
            missing.join(", ")
        ));
        String::new()
    }
}

fn initramfs_paths(
    view: &PartitionView,
    eff: &Effective,
    prefix: &str,
    kernel_name: &str,
    trace: &mut Vec<String>,
) -> Result<Vec<String>, NoBoot> {
    if let Some(line) = eff.initramfs() {
        let mut paths = Vec::new();
        for file in &line.files {
            let path = apply_prefix(prefix, file);
            if !view.files.exists(&path) {
                return Err(NoBoot::InitramfsMissing {
                    partition: view.number,
                    path,
                });
            }
            paths.push(path);
        }
        return Ok(paths);
    }
    if eff.flag("auto_initramfs") == Some(true) {
        if let Some(name) = auto_initramfs_name(kernel_name) {
            let path = apply_prefix(prefix, &name);
            if view.files.exists(&path) {
                trace.push(format!("auto_initramfs: {path}"));
                return Ok(vec![path]);
            }
            trace.push(format!("auto_initramfs: {path} not present, none loaded"));
        }
    }
    Ok(Vec::new())
}

/// Resolve every file of the boot from the chosen partition.
pub(super) fn resolve(
    view: &PartitionView,
    tryboot: bool,
    tryboot_a_b: bool,
    board: Board,
    mut trace: Vec<String>,
) -> Result<BootChoice, NoBoot> {
    let (config_file, eff) = load_config(view, tryboot, tryboot_a_b, board, &mut trace)?;
    let kernel_name = setting(&eff, "kernel")
        .unwrap_or_else(|| board.default_kernel(eff.flag("arm_64bit")))
        .to_string();
    let dtb_name = setting(&eff, "device_tree")
        .unwrap_or_else(|| board.default_dtb())
        .to_string();
    let prefix = eff.get("os_prefix").unwrap_or("");
    let os_prefix = viable_prefix(view, prefix, &kernel_name, &dtb_name, &mut trace);

    let kernel = apply_prefix(&os_prefix, &kernel_name);
    if !view.files.exists(&kernel) {
        return Err(NoBoot::KernelMissing {
            partition: view.number,
            path: kernel,
        });
    }
    trace.push(format!("kernel {kernel}"));

    let dtb_path = apply_prefix(&os_prefix, &dtb_name);
    let dtb = if view.files.exists(&dtb_path) {
        Some(dtb_path)
    } else {
        trace.push(format!("device tree {dtb_path} not found"));
        None
    };

    let initramfs = initramfs_paths(view, &eff, &os_prefix, &kernel_name, &mut trace)?;

    let cmdline_file = apply_prefix(
        &os_prefix,
        setting(&eff, "cmdline").unwrap_or("cmdline.txt"),
    );
    let cmdline = match read_text(view.files, &cmdline_file) {
        Some(text) => first_line(&text).to_string(),
        None => {
            trace.push(format!("{cmdline_file} missing, empty command line"));
            String::new()
        }
    };

    Ok(BootChoice {
        partition: view.number,
        tryboot,
        tryboot_a_b,
        config_file,
        os_prefix,
        kernel,
        initramfs,
        cmdline_file,
        cmdline,
        dtb,
        config: eff,
        trace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert_eq!(apply_prefix("current/", "vmlinuz"), "current/vmlinuz");
        assert_eq!(apply_prefix("current/", "/vmlinuz"), "vmlinuz");
        assert_eq!(apply_prefix("", "a/b"), "a/b");
        assert_eq!(apply_prefix("v1-", "kernel8.img"), "v1-kernel8.img");
    }

    #[test]
    fn auto_initramfs_names() {
        let cases = [
            ("kernel8.img", Some("initramfs8")),
            ("kernel_2712.img", Some("initramfs_2712")),
            ("kernel7.img", Some("initramfs7")),
            ("kernel7l.img", Some("initramfs7l")),
            ("boot/kernel8.img", Some("boot/initramfs8")),
            ("/kernel8.img", Some("/initramfs8")),
            ("vmlinuz", None),
        ];
        for (kernel, expected) in cases {
            assert_eq!(auto_initramfs_name(kernel).as_deref(), expected, "{kernel}");
        }
    }
}
