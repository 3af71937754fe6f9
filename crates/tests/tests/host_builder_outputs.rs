//! What `k8r-builder assemble` does to its output directory, as a user meets it: two builds
//! into one `images/` (the second refused at once, the first's outputs verify), a disk too
//! small (refused before a byte is written, nothing left), a directory it may not write, a
//! build failing half-way (no staging left behind), warnings said again at the end and
//! refused with `--strict`, progress on the compression steps.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8r_tests::{
    builder_bin, builder_command, fixture, mirror_server, scratch, test_config, BASE_2604,
    TEST_EPOCH,
};

fn assemble_args() -> Vec<String> {
    k8r_tests::assemble_args("cache")
}

/// `args` without `--installer PATH` and `--agent PATH`.
fn without_programs<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if *a == "--installer" || *a == "--agent" {
            skip = true;
        } else {
            out.push(*a);
        }
    }
    out
}

fn write_config(dir: &Path, base: &Path, extra: &str) {
    std::fs::write(
        dir.join("variables.cfg"),
        test_config(mirror_server(), base, extra),
    )
    .expect("config");
}

use k8r_tests::output_text as text;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

/// Checks `images/SHA256SUMS` with `sha256sum -c`, as a user would.
fn sums_verify(images: &Path) -> Result<(), String> {
    let out = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(images)
        .output()
        .expect("sha256sum");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn a_second_build_into_the_same_directory_is_refused_and_the_first_verifies() {
    let dir = scratch("outputs-concurrent");
    write_config(&dir, &fixture(BASE_2604), "K8S_VERSON=\"1.31.2\"\n");
    // No --installer/--agent: the builder finds the aarch64 release builds of its own source
    // tree (target/aarch64-unknown-linux-musl/release), as after `cargo xtask build-image`.
    let args = assemble_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let args = without_programs(&args);
    let first = builder_command(&args, &dir)
        .env_remove("K8R_INSTALLER")
        .env_remove("K8R_AGENT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("first build");
    // The first build holds the lock from its start; wait for its staging directory so the
    // second one meets it mid-build.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dir.join("images/.k8r-build").exists() {
        assert!(Instant::now() < deadline, "the first build never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let second = builder_command(&args, &dir).output().expect("second build");
    let refused_in = started.elapsed();
    let (_, err) = text(&second);
    assert!(!second.status.success(), "the second build must be refused");
    assert!(
        err.contains("images is being written by another k8r-builder (pid "),
        "{err}"
    );
    assert!(
        err.contains(&format!("(pid {})", first.id())),
        "names the first build's pid: {err}"
    );
    let first = first.wait_with_output().expect("first build ends");
    let (out, err1) = text(&first);
    assert!(first.status.success(), "{err1}");
    sums_verify(&dir.join("images")).expect("the first build's outputs verify");
    assert!(
        !dir.join("images/.k8r-build").exists() && !dir.join("images/.k8r-build.lock").exists(),
        "no staging or lock left after a build"
    );
    println!("second build refused in {refused_in:?}");

    // The unknown key was warned about before the progress, and said again after the table.
    let tail = out.rsplit("time per step").next().unwrap_or_default();
    assert!(
        tail.contains("warning: variables.cfg:") && tail.contains("unknown key K8S_VERSON"),
        "{out}"
    );
    // Progress on the long steps (a line per quarter, stderr not being a terminal).
    for line in [
        "hash base image: 25%",
        "hash base image: 50%",
        "hash base image: 75%",
        "zero free space: 25%",
        "boot.tar.xz: 25%",
        "image.img.xz: 25%",
        "image.img.xz: 50%",
        "image.img.xz: 75%",
        "range digests: 25%",
        "range digests: 75%",
    ] {
        assert!(err1.contains(line), "{line}: {err1}");
    }
}

#[test]
fn strict_refuses_a_configuration_with_warnings_before_building() {
    let dir = scratch("outputs-strict");
    write_config(&dir, &fixture(BASE_2604), "K8S_VERSON=\"1.31.2\"\n");
    let mut args = assemble_args();
    args.push("--strict".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = builder_command(&args, &dir).output().expect("build");
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("--strict, and the configuration has 1 warning(s)")
            && err.contains("unknown key K8S_VERSON (did you mean K8S_VERSION?)"),
        "{err}"
    );
    assert!(!dir.join("images").exists(), "nothing built: {err}");
}

#[test]
fn a_disk_too_small_is_refused_before_a_byte_is_written() {
    if !is_root() {
        // Mounting a small filesystem needs root (CI runs as root).
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let dir = scratch("outputs-small-disk");
    write_config(&dir, &fixture(BASE_2604), "");
    std::fs::create_dir_all(dir.join("small")).expect("mount point");
    let args = assemble_args()
        .iter()
        .map(|a| {
            if a == "images" {
                "small/images".to_owned()
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>();
    // A private mount namespace: the 40 MiB tmpfs exists for this shell only, so what is left
    // on it is listed from inside.
    let script = "mount -t tmpfs -o size=40m k8r-test small && \"$0\" \"$@\"; \
                  echo \"rc=$?\"; echo left:; find small -mindepth 1";
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(builder_bin())
        .args(&args)
        .current_dir(&dir)
        .env("SOURCE_DATE_EPOCH", TEST_EPOCH.to_string())
        .output()
        .expect("unshare");
    let (stdout, err) = text(&out);
    assert!(stdout.contains("rc=1"), "{stdout}{err}");
    assert!(
        err.contains("not enough free space in small/images: the build needs about ")
            && err.contains("MiB are free"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "one error: {err}");
    let left = stdout
        .split("left:\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("small/"))
        .collect::<Vec<_>>();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

#[test]
fn an_output_directory_that_cannot_be_written_is_named_with_its_cause_once() {
    let dir = scratch("outputs-read-only");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    write_config(&dir, &fixture(BASE_2604), "");
    let locked = dir.join("images");
    std::fs::create_dir_all(&locked).expect("images");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let args = assemble_args();
    let mut cmd = if is_root() {
        // Root writes anywhere: the user meeting this is an ordinary one.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(builder_bin());
        c
    } else {
        Command::new(builder_bin())
    };
    let out = cmd
        .args(&args)
        .current_dir(&dir)
        .env("HOME", &dir)
        .env("SOURCE_DATE_EPOCH", TEST_EPOCH.to_string())
        .output()
        .expect("build");
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot write to the output directory images: "),
        "{err}"
    );
    assert_eq!(
        err.to_lowercase().matches("permission denied").count(),
        1,
        "the cause once: {err}"
    );
    assert!(err.contains("--out DIR"), "a fix: {err}");
}

#[test]
fn a_build_that_fails_half_way_leaves_no_staging() {
    let dir = scratch("outputs-half-way");
    // A base image whose MBR is fine but whose boot partition is not a FAT file system: the
    // build fails reading it, after the staging directory was made.
    let base = dir.join("broken-boot.img");
    std::fs::copy(fixture(BASE_2604), &base).expect("copy base");
    let boot = k8r_builder::image::card::partition(&base, 1).expect("p1");
    let mut bytes = std::fs::read(&base).expect("read");
    let start = usize::try_from(boot.byte_offset()).expect("offset");
    bytes[start..start + 4096].fill(0);
    std::fs::write(&base, bytes).expect("write");
    write_config(&dir, &base, "");
    let args = assemble_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = builder_command(&args, &dir).output().expect("build");
    let (_, err) = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        !dir.join("images/.k8r-build").exists(),
        "staging removed: {err}"
    );
    assert!(
        !dir.join("images").exists(),
        "the directory it made is gone too: {err}"
    );
}
