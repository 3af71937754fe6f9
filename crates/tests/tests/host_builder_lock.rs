//! `variables.lock` with the real `k8r-builder` binary against a 127.0.0.1 mirror: the
//! default configuration (no CALICO_VERSION, no CRICTL_VERSION) builds on the first try and
//! writes the lock; a build from the full cache needs no network; `--locked` refuses a lock
//! that lacks entries before downloading; a changed upstream file is refused against the lock.

use std::path::{Path, PathBuf};
use std::process::Output;

use k8r_tests::{assemble_args, builder_command, fixture, mirror, scratch, BASE_2404};

/// `k8r-builder assemble` in `dir` with the test's programs, cache `cache` and `extra` flags.
fn assemble(dir: &Path, cache: &str, extra: &[&str]) -> Output {
    let mut args = assemble_args(cache);
    args.extend(extra.iter().map(|e| (*e).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    builder_command(&args, dir)
        .output()
        .expect("run k8r-builder")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).expect("copy");
        }
    }
}

/// A copy of the fixture mirror that also carries what the defaults for Kubernetes 1.31.2
/// ask for: crictl 1.31.0 (default 1.MINOR.0) and calico 3.30.2 (DEFAULT_CALICO_VERSION),
/// as copies of the fixture's crictl 1.31.1 and calico 3.99.0.
fn default_mirror(dir: &Path) -> PathBuf {
    let root = dir.join("mirror");
    copy_dir(&mirror(), &root);
    let cri = root.join("github/kubernetes-sigs/cri-tools/releases/download");
    let (from, to) = (cri.join("v1.31.1"), cri.join("v1.31.0"));
    std::fs::create_dir_all(&to).expect("mkdir");
    let tgz = "crictl-v1.31.0-linux-arm64.tar.gz";
    std::fs::copy(from.join("crictl-v1.31.1-linux-arm64.tar.gz"), to.join(tgz)).expect("copy");
    std::fs::copy(
        from.join("crictl-v1.31.1-linux-arm64.tar.gz.sha256"),
        to.join(format!("{tgz}.sha256")),
    )
    .expect("copy");
    let calico = root.join("raw/projectcalico/calico");
    let to = calico.join("v3.30.2/manifests");
    std::fs::create_dir_all(&to).expect("mkdir");
    std::fs::copy(
        calico.join("v3.99.0/manifests/calico.yaml"),
        to.join("calico.yaml"),
    )
    .expect("copy calico");
    root
}

/// Only the required keys and the mirror URLs: every version is a default.
fn write_default_config(dir: &Path, server: &k8r_tests::http::Server) {
    let url = server.url();
    std::fs::write(
        dir.join("variables.cfg"),
        format!(
            "IMAGE=\"{}\"\nK8S_VERSION=\"1.31.2\"\nK8S_RELEASE_URL=\"{url}/k8s\"\n\
             GITHUB_URL=\"{url}/github\"\nGITHUB_RAW_URL=\"{url}/raw\"\n",
            fixture(BASE_2404).display()
        ),
    )
    .expect("config");
}

fn sha256_hex(data: &[u8]) -> String {
    k8r_card::digest::hex(&<sha2::Sha256 as sha2::Digest>::digest(data))
}

/// The lock's text without the `[[artifact]]` block of `name`.
fn without_entry(lock: &str, name: &str) -> String {
    lock.split("\n[[artifact]]\n")
        .filter(|block| !block.starts_with(&format!("name = \"{name}\"\n")))
        .collect::<Vec<_>>()
        .join("\n[[artifact]]\n")
}

#[test]
fn the_lock_file_is_written_used_offline_enforced_and_required_with_locked() {
    let dir = scratch("lock-defaults");
    let root = default_mirror(&dir);
    let server = k8r_tests::http::Server::serve_dir(&root).expect("server");
    write_default_config(&dir, &server);
    let lock_path = dir.join("variables.lock");

    // (a) Defaults only, no trust flag: builds on the first try and writes the lock.
    let out = assemble(&dir, "cache", &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lock = std::fs::read_to_string(&lock_path).expect("variables.lock written");
    assert!(lock.contains("Commit this file"), "{lock}");
    let calico = std::fs::read(root.join("raw/projectcalico/calico/v3.30.2/manifests/calico.yaml"))
        .expect("calico");
    let calico_hex = sha256_hex(&calico);
    assert!(
        lock.contains(&format!(
            "name = \"calico.yaml\"\nversion = \"3.30.2\"\nurl = \"{}/raw/projectcalico/calico/v3.30.2/manifests/calico.yaml\"\nsha256 = \"{calico_hex}\"\n",
            server.url()
        )),
        "{lock}"
    );
    assert!(lock.contains("digest = \"first-download\""), "{lock}");
    assert!(
        lock.contains("name = \"crictl\"\nversion = \"1.31.0\""),
        "{lock}"
    );
    assert!(
        err.contains(&format!(
            "calico.yaml 3.30.2: no published SHA-256; recorded the digest of this download, sha256 {calico_hex}, in {}",
            lock_path.display()
        )) || err.contains(&format!(
            "calico.yaml 3.30.2: no published SHA-256; recorded the digest of this download, sha256 {calico_hex}, in variables.lock"
        )),
        "{err}"
    );
    let card = dir.join("images/bootable_image.img");
    assert!(card.exists());

    // (d) The network is down (mirror stopped), the cache is full: the build succeeds and the
    // lock is left as it was.
    drop(server);
    let out = assemble(&dir, "cache", &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(std::fs::read_to_string(&lock_path).expect("lock"), lock);
    assert!(
        !err.contains("no published SHA-256"),
        "the first-download digest is announced once: {err}"
    );
    let built = std::fs::metadata(&card)
        .expect("card")
        .modified()
        .expect("mtime");

    // (c) --locked with entries missing from the lock: refused before anything is downloaded
    // (a fresh cache stays absent), every missing artefact listed.
    let edited = without_entry(&without_entry(&lock, "crictl"), "kubelet");
    assert!(edited.len() < lock.len() && !edited.contains("name = \"crictl\""));
    std::fs::write(&lock_path, &edited).expect("edit lock");
    let out = assemble(&dir, "cache-locked", &["--locked"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "--locked must refuse");
    for part in [
        "--locked",
        "crictl 1.31.0 (not in the lock)",
        "kubelet 1.31.2 (not in the lock)",
    ] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
    assert!(!err.contains("calico.yaml 3.30.2 (not"), "{err}");
    assert!(!dir.join("cache-locked").exists(), "nothing downloaded");
    std::fs::write(&lock_path, &lock).expect("restore lock");

    // (b) Another machine (empty cache); the mirror now serves another calico.yaml: refused
    // with both digests and the lock file; the outputs stay as they were.
    let changed = b"# calico.yaml, changed upstream\n".repeat(50);
    std::fs::write(
        root.join("raw/projectcalico/calico/v3.30.2/manifests/calico.yaml"),
        &changed,
    )
    .expect("change calico");
    let server = k8r_tests::http::Server::serve_dir(&root).expect("server");
    write_default_config(&dir, &server);
    let out = assemble(&dir, "cache-other", &[]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "a changed calico.yaml must be refused"
    );
    for part in [
        calico_hex.as_str(),
        sha256_hex(&changed).as_str(),
        "variables.lock",
        "calico.yaml 3.30.2",
        "first-download",
    ] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
    assert_eq!(std::fs::read_to_string(&lock_path).expect("lock"), lock);
    assert_eq!(
        std::fs::metadata(&card)
            .expect("card")
            .modified()
            .expect("mtime"),
        built,
        "the outputs are not replaced"
    );
}
