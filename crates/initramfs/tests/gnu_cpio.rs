//! Host-only: read our archives back with GNU cpio (`/usr/bin/cpio`), an independent reader.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use k8r_initramfs::Archive;

/// A fresh path under Cargo's per-test-target scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("initramfs-gnu-cpio");
    fs::create_dir_all(&dir).expect("create scratch dir");
    let path = dir.join(name);
    if path.exists() {
        if path.is_dir() {
            fs::remove_dir_all(&path).expect("clear old scratch dir");
        } else {
            fs::remove_file(&path).expect("clear old scratch file");
        }
    }
    path
}

/// Run `cpio ARGS < input` in `cwd`, returning stdout; panic with stderr on failure.
fn cpio(args: &[&str], input: &PathBuf, cwd: Option<&PathBuf>) -> String {
    let stdin = fs::File::open(input).expect("open archive");
    let mut cmd = Command::new("cpio");
    cmd.args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::from(stdin));
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().expect("run /usr/bin/cpio");
    assert!(
        out.status.success(),
        "cpio {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 listing")
}

fn sample() -> Archive {
    let mut a = Archive::new().with_mtime(1_700_000_000);
    a.add_file("init", 0o755, "#!/bin/sh\nexec /bin/sh\n")
        .expect("init")
        .add_file("bin/busybox", 0o755, vec![0u8; 1001])
        .expect("busybox")
        .add_symlink("bin/sh", "busybox")
        .expect("sh")
        .add_char_device("dev/console", 0o600, 5, 1)
        .expect("console")
        .add_block_device("dev/mmcblk0", 0o660, 179, 0)
        .expect("mmcblk0")
        .add_dir("proc", 0o555)
        .expect("proc")
        .add_file("lib/modules/6.1.0-k8r/modules.dep", 0o644, "")
        .expect("modules.dep");
    a
}

#[test]
fn gnu_cpio_lists_the_expected_names() {
    let file = scratch("list.cpio");
    fs::write(&file, sample().to_newc()).expect("write archive");
    let listing = cpio(&["-it", "--quiet"], &file, None);
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/busybox",
            "bin/sh",
            "dev",
            "dev/console",
            "dev/mmcblk0",
            "init",
            "lib",
            "lib/modules",
            "lib/modules/6.1.0-k8r",
            "lib/modules/6.1.0-k8r/modules.dep",
            "proc",
        ]
    );
}

#[test]
fn gnu_cpio_verbose_shows_devices_symlinks_and_owners() {
    let file = scratch("verbose.cpio");
    fs::write(&file, sample().to_newc()).expect("write archive");
    let listing = cpio(&["-itv", "--quiet"], &file, None);
    let line = |name: &str| -> Vec<String> {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} -> ")))
            .unwrap_or_else(|| panic!("{name} not in listing:\n{listing}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let console = line("dev/console");
    assert_eq!(console[0], "crw-------", "{console:?}");
    assert_eq!((console[2].as_str(), console[3].as_str()), ("root", "root"));
    assert_eq!((console[4].as_str(), console[5].as_str()), ("5,", "1"));
    let mmc = line("dev/mmcblk0");
    assert_eq!(mmc[0], "brw-rw----", "{mmc:?}");
    assert_eq!((mmc[4].as_str(), mmc[5].as_str()), ("179,", "0"));
    let sh = line("bin/sh");
    assert_eq!(sh[0], "lrwxrwxrwx", "{sh:?}");
    assert!(
        sh.ends_with(&["bin/sh".into(), "->".into(), "busybox".into()]),
        "{sh:?}"
    );
    let proc_dir = line("proc");
    assert_eq!(
        (proc_dir[0].as_str(), proc_dir[1].as_str()),
        ("dr-xr-xr-x", "2")
    );
    let busybox = line("bin/busybox");
    assert_eq!(
        (busybox[0].as_str(), busybox[4].as_str()),
        ("-rwxr-xr-x", "1001")
    );
    assert!(
        listing.contains("2023"),
        "mtime 1700000000 is in Nov 2023:\n{listing}"
    );
}

#[test]
fn gzip_output_gunzips_to_the_newc_bytes() {
    let file = scratch("list.cpio.gz");
    fs::write(&file, sample().to_newc_gzip()).expect("write archive");
    let out = Command::new("gzip")
        .args(["-dc"])
        .arg(&file)
        .output()
        .expect("run gzip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, sample().to_newc());
}

#[test]
fn gnu_cpio_extracts_files_and_symlinks_intact() {
    // No device nodes here: extraction would need root, and the test may run as root.
    let mut a = Archive::new();
    a.add_file("etc/motd", 0o640, "k8r recovery\n")
        .expect("motd")
        .add_symlink("etc/issue", "motd")
        .expect("issue")
        .add_file("odd", 0o600, "abc")
        .expect("odd");
    let file = scratch("extract.cpio");
    fs::write(&file, a.to_newc()).expect("write archive");
    let root = scratch("extract-root");
    fs::create_dir_all(&root).expect("extract dir");
    cpio(
        &["-id", "--quiet", "--no-absolute-filenames"],
        &file,
        Some(&root),
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/motd")).expect("motd"),
        "k8r recovery\n"
    );
    assert_eq!(fs::read(root.join("odd")).expect("odd"), b"abc");
    assert_eq!(
        fs::read_link(root.join("etc/issue")).expect("symlink"),
        PathBuf::from("motd")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(root.join("etc/motd"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
}
