//! The fetcher against a 127.0.0.1 HTTP server: downloads, cache reuse, digest failures,
//! offline mode, first-download digests, the lock file and error hints. No other network
//! access.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use k8r_test_http::Server;

use super::*;

/// Versions used throughout.
fn spec() -> NodeSpec {
    NodeSpec {
        arch: "arm64".to_owned(),
        k8s: "1.31.2".to_owned(),
        containerd: "2.1.4".to_owned(),
        runc: "1.3.0".to_owned(),
        cni_plugins: "1.6.2".to_owned(),
        crictl: "1.31.1".to_owned(),
        cni: CniManifest::Calico("3.30.3".to_owned()),
    }
}

/// The bytes served for an artefact: distinct per artefact, larger than one read buffer.
fn body_of(a: &Artifact) -> Vec<u8> {
    format!("{} {} fixture\n", a.name, a.version)
        .repeat(5000)
        .into_bytes()
}

/// A server publishing every artefact of [`spec`] with its checksum file in the upstream
/// layout, and that artefact list pointed at it.
fn upstream() -> (Server, Vec<Artifact>) {
    let server = Server::start().unwrap();
    let base = server.url();
    let mirrors = Mirrors {
        k8s_release: format!("{base}/k8s"),
        github: format!("{base}/gh"),
        github_raw: format!("{base}/raw"),
    };
    let artifacts = node_artifacts(&spec(), &mirrors).unwrap();
    for a in &artifacts {
        let body = body_of(a);
        let hex = sha256_hex(&body);
        server.put(path(&server, &a.url), body);
        if let ChecksumSource::Published {
            url,
            format,
            file_name,
        } = &a.checksum
        {
            let text = match format {
                // dl.k8s.io: no newline; crictl: newline. Serve both variants.
                ChecksumFormat::Bare if a.name == "crictl" => format!("{hex}\n"),
                ChecksumFormat::Bare => hex,
                ChecksumFormat::Sha256Sum => format!("{hex}  {file_name}\n"),
                ChecksumFormat::ClearSigned => format!(
                    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n\
                     {other}  runc-1.3.0.tar.xz\n{other} *runc.amd64\n{hex} *{file_name}\n\
                     -----BEGIN PGP SIGNATURE-----\n\nfixture==\n-----END PGP SIGNATURE-----\n",
                    other = sha256_hex(b"other")
                ),
            };
            server.put(path(&server, url), text);
        }
    }
    (server, artifacts)
}

/// The path of `url` on `server`.
fn path<'a>(server: &Server, url: &'a str) -> &'a str {
    server.path_of(url).unwrap()
}

fn find<'a>(artifacts: &'a [Artifact], name: &str) -> &'a Artifact {
    artifacts.iter().find(|a| a.name == name).unwrap()
}

/// File names in the cache directory, sorted (empty if it does not exist).
fn cache_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn downloads_and_verifies_every_checksum_format() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(dir.path().to_owned());
    for name in ["kubeadm", "containerd", "runc", "cni-plugins", "crictl"] {
        let a = find(&artifacts, name);
        let fetched = fetcher.fetch(a).unwrap();
        let body = body_of(a);
        assert!(!fetched.from_cache, "{name}");
        assert_eq!(fetched.path, dir.path().join(&a.cache_name));
        assert_eq!(fs::read(&fetched.path).unwrap(), body, "{name}");
        assert_eq!(fetched.digest.to_string(), sha256_hex(&body));
        assert_eq!(fetched.size, u64::try_from(body.len()).unwrap());
        let side = fs::read_to_string(dir.path().join(format!("{}.sha256", a.cache_name))).unwrap();
        assert_eq!(side, format!("{}\n", sha256_hex(&body)), "{name}");
    }
    assert!(
        !cache_listing(dir.path())
            .iter()
            .any(|n| n.ends_with(".partial") || n.ends_with(".tmp")),
        "{:?}",
        cache_listing(dir.path())
    );
    assert_eq!(server.hits(path(&server, &find(&artifacts, "runc").url)), 1);
}

#[test]
fn cache_hit_makes_no_request_for_the_artifact() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(dir.path().to_owned());
    let a = find(&artifacts, "kubelet");
    let url_path = path(&server, &a.url);
    let first = fetcher.fetch(a).unwrap();
    assert_eq!(server.hits(url_path), 1);
    let second = fetcher.fetch(a).unwrap();
    assert!(second.from_cache);
    assert_eq!(second.digest, first.digest);
    assert_eq!(
        server.hits(url_path),
        1,
        "the artefact was downloaded again"
    );
}

#[test]
fn wrong_body_is_a_digest_mismatch_and_leaves_nothing() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let a = find(&artifacts, "kubeadm");
    let evil = b"not kubeadm".repeat(10_000);
    server.put(path(&server, &a.url), evil.clone());
    let err = Fetcher::new(dir.path().to_owned()).fetch(a).unwrap_err();
    let expected = sha256_hex(&body_of(a));
    let actual = sha256_hex(&evil);
    match &err {
        FetchError::DigestMismatch {
            name,
            url,
            expected: e,
            actual: got,
        } => {
            assert_eq!(name, "kubeadm");
            assert_eq!(url, &a.url);
            assert_eq!(e.to_string(), expected);
            assert_eq!(got.to_string(), actual);
        }
        other => panic!("unexpected {other:?}"),
    }
    let message = err.to_string();
    for part in ["kubeadm", &a.url, &expected, &actual] {
        assert!(message.contains(part), "{message} lacks {part}");
    }
    // Only the published digest is kept; neither the file nor a partial download.
    assert_eq!(
        cache_listing(dir.path()),
        [format!("{}.sha256", a.cache_name)]
    );
}

#[test]
fn not_found_names_the_url_and_the_likely_cause() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(dir.path().to_owned());

    let a = find(&artifacts, "containerd");
    server.remove(path(&server, &a.url));
    let err = fetcher.fetch(a).unwrap_err();
    assert!(
        matches!(err, FetchError::Http { status: 404, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&a.url), "{message}");
    assert!(message.contains("404"), "{message}");
    assert!(
        message.contains("not found: is the version right?"),
        "{message}"
    );

    // A missing checksum file is reported the same way, with its own URL.
    let a = find(&artifacts, "crictl");
    let ChecksumSource::Published { url, .. } = &a.checksum else {
        panic!("crictl has a published digest");
    };
    server.remove(path(&server, url));
    let message = fetcher.fetch(a).unwrap_err().to_string();
    assert!(
        message.contains(&format!("GET {url}: HTTP 404")),
        "{message}"
    );
    // Only the published digest of containerd was kept; no artefact, no partial file.
    let containerd = find(&artifacts, "containerd");
    assert_eq!(
        cache_listing(dir.path()),
        [format!("{}.sha256", containerd.cache_name)]
    );
}

#[test]
fn unreachable_server_is_a_transport_error() {
    // Bind then drop a listener so the port is (very likely) closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Artifact {
        name: "kubectl".to_owned(),
        version: "1.31.2".to_owned(),
        url: format!("http://127.0.0.1:{port}/kubectl"),
        checksum: ChecksumSource::Pinned(Sha256Digest([0; 32])),
        cache_name: "kubectl-test".to_owned(),
        install: Install::File {
            path: "/usr/local/bin/kubectl".to_owned(),
            mode: 0o755,
        },
        mirror_key: "K8S_RELEASE_URL",
        version_origin: None,
    };
    let err = Fetcher::new(dir.path().to_owned()).fetch(&a).unwrap_err();
    assert!(matches!(err, FetchError::Transport { .. }), "{err:?}");
    let message = err.to_string();
    assert_eq!(
        message.matches(&a.url).count(),
        1,
        "the URL once: {message}"
    );
    assert!(message.starts_with("kubectl 1.31.2: GET "), "{message}");
    for part in ["Connection refused", "K8S_RELEASE_URL", "--offline"] {
        assert!(message.contains(part), "{part} missing: {message}");
    }
}

#[test]
fn offline_with_empty_cache_lists_everything_missing() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(dir.path().to_owned()).offline(true);
    let err = fetcher.check_offline(&artifacts).unwrap_err();
    let FetchError::Offline { missing } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(missing.len(), artifacts.len(), "{missing:?}");
    for a in &artifacts {
        let label = format!("{} {}", a.name, a.version);
        assert!(
            missing.iter().any(|m| m.starts_with(&label)),
            "{label} not in {missing:?}"
        );
    }
    assert!(err.to_string().contains("--offline"), "{err}");
    // fetch_all reports the same complete list before trying anything.
    let err = fetcher.fetch_all(&artifacts).unwrap_err();
    assert!(matches!(&err, FetchError::Offline { missing } if missing.len() == artifacts.len()));
    // A single fetch also fails offline.
    assert!(matches!(
        fetcher.fetch(&artifacts[0]),
        Err(FetchError::Offline { .. })
    ));
    assert_eq!(server.total_hits(), 0);
    assert!(cache_listing(dir.path()).is_empty());
}

#[test]
fn offline_with_full_cache_makes_no_request() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let online = Fetcher::new(dir.path().to_owned());
    let first = online.fetch_all(&artifacts).unwrap();
    assert_eq!(first.len(), artifacts.len());
    let before = server.total_hits();

    let offline = Fetcher::new(dir.path().to_owned()).offline(true);
    offline.check_offline(&artifacts).unwrap();
    let second = offline.fetch_all(&artifacts).unwrap();
    assert_eq!(server.total_hits(), before, "offline mode used the network");
    for (a, b) in first.iter().zip(&second) {
        assert!(b.from_cache);
        assert_eq!(a.path, b.path);
        assert_eq!(a.digest, b.digest);
    }

    // A damaged cached file is reported offline, not used.
    let kubectl = find(&artifacts, "kubectl");
    fs::write(dir.path().join(&kubectl.cache_name), b"damaged").unwrap();
    let err = offline.check_offline(&artifacts).unwrap_err();
    let FetchError::Offline { missing } = err else {
        panic!("expected Offline");
    };
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("kubectl") && missing[0].contains("does not match"));
    assert_eq!(server.total_hits(), before);
}

#[test]
fn online_with_a_full_cache_needs_no_network() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("variables.lock");
    let fetcher = Fetcher::new(dir.path().join("cache")).lock_file(lock.clone(), false);
    fetcher.fetch_all(&artifacts).unwrap();
    drop(server);
    // No checksum file is fetched: the digests are known, the network is down.
    let again = fetcher.fetch_all(&artifacts).unwrap();
    assert!(again.iter().all(|f| f.from_cache));
    // The cache's records alone suffice too (no lock file).
    fs::remove_file(&lock).unwrap();
    let plain = Fetcher::new(dir.path().join("cache"));
    assert!(plain
        .fetch_all(&artifacts)
        .unwrap()
        .iter()
        .all(|f| f.from_cache));
}

#[test]
fn unpinned_manifest_is_recorded_on_first_download_and_then_enforced() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let calico = find(&artifacts, CNI_MANIFEST);
    assert_eq!(calico.checksum, ChecksumSource::Unpinned);
    let body = body_of(calico);

    let fetched = Fetcher::new(dir.path().to_owned()).fetch(calico).unwrap();
    assert_eq!(fs::read(&fetched.path).unwrap(), body);
    let record = dir.path().join(format!("{}.sha256", calico.cache_name));
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        format!("{}\n", sha256_hex(&body))
    );
    let again = Fetcher::new(dir.path().to_owned()).fetch(calico).unwrap();
    assert!(again.from_cache);

    // Upstream changes the file: a fresh download is refused.
    let changed = b"# calico, modified upstream\n".repeat(100);
    server.put(path(&server, &calico.url), changed.clone());
    fs::remove_file(&fetched.path).unwrap();
    let err = Fetcher::new(dir.path().to_owned())
        .fetch(calico)
        .unwrap_err();
    match &err {
        FetchError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected.to_string(), sha256_hex(&body));
            assert_eq!(actual.to_string(), sha256_hex(&changed));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!fetched.path.exists());
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        format!("{}\n", sha256_hex(&body)),
        "the record must not follow the changed file"
    );
}

#[test]
fn lock_file_is_written_then_enforced_against_a_changed_manifest() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("site.lock");
    Fetcher::new(dir.path().join("cache"))
        .lock_file(lock_path.clone(), false)
        .fetch_all(&artifacts)
        .unwrap();
    let text = fs::read_to_string(&lock_path).unwrap();
    let lock = Lock::parse(&text).unwrap();
    assert_eq!(lock.entries().len(), artifacts.len());
    let calico = find(&artifacts, CNI_MANIFEST);
    let entry = lock.named("calico.yaml").unwrap();
    assert_eq!(entry.source, DigestSource::FirstDownload);
    assert_eq!(entry.sha256.to_string(), sha256_hex(&body_of(calico)));
    assert!(!cache_listing(dir.path())
        .iter()
        .any(|n| n.ends_with(".tmp")));

    // Same build again: the file is not rewritten.
    let modified = fs::metadata(&lock_path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    Fetcher::new(dir.path().join("cache"))
        .lock_file(lock_path.clone(), false)
        .fetch_all(&artifacts)
        .unwrap();
    assert_eq!(
        fs::metadata(&lock_path).unwrap().modified().unwrap(),
        modified
    );

    // Another machine (empty cache), and the mirror serves another calico.yaml.
    let changed = b"# calico, modified\n".repeat(100);
    server.put(path(&server, &calico.url), changed.clone());
    let err = Fetcher::new(dir.path().join("cache2"))
        .lock_file(lock_path.clone(), false)
        .fetch_all(&artifacts)
        .unwrap_err();
    assert!(matches!(err, FetchError::LockMismatch(_)), "{err:?}");
    let message = err.to_string();
    for part in [
        sha256_hex(&changed),
        sha256_hex(&body_of(calico)),
        lock_path.display().to_string(),
        "calico.yaml 3.30.3".to_owned(),
        "first-download".to_owned(),
        "delete the calico.yaml 3.30.3 entry".to_owned(),
    ] {
        assert!(message.contains(&part), "{part} missing: {message}");
    }
    assert_eq!(
        fs::read_to_string(&lock_path).unwrap(),
        text,
        "lock untouched"
    );

    // A published digest that changed upstream is refused against the lock as well.
    let a = find(&artifacts, "cni-plugins");
    let ChecksumSource::Published { url, file_name, .. } = &a.checksum else {
        panic!("cni-plugins have a published digest");
    };
    let other = sha256_hex(b"respun");
    server.put(path(&server, url), format!("{other}  {file_name}\n"));
    let err = Fetcher::new(dir.path().join("cache3"))
        .lock_file(lock_path.clone(), false)
        .fetch_all(std::slice::from_ref(a))
        .unwrap_err();
    assert!(matches!(err, FetchError::LockMismatch(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&other), "{message}");
    assert!(message.contains(&sha256_hex(&body_of(a))), "{message}");
}

#[test]
fn locked_refuses_before_any_request_listing_every_gap() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("variables.lock");
    let locked = Fetcher::new(dir.path().join("cache")).lock_file(lock_path.clone(), true);
    let err = locked.fetch_all(&artifacts).unwrap_err();
    assert!(matches!(err, FetchError::NoLockFile { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("no lock file") && message.contains(&lock_path.display().to_string()),
        "{message}"
    );

    // A lock for another crictl and without the CNI manifest.
    let mut other = artifacts.clone();
    other.retain(|a| a.name != CNI_MANIFEST);
    for a in &mut other {
        if a.name == "crictl" {
            a.version = "1.31.0".into();
        }
    }
    let lock = Lock::new(
        other
            .iter()
            .map(|a| LockEntry::for_artifact(a, Sha256Digest::of(&body_of(a)))),
    );
    fs::write(&lock_path, lock.render()).unwrap();
    let err = locked.fetch_all(&artifacts).unwrap_err();
    let FetchError::Locked { problems, .. } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(
        problems,
        &[
            "crictl 1.31.1 (the lock has version 1.31.0)",
            "calico.yaml 3.30.3 (not in the lock)"
        ]
    );
    assert!(err.to_string().contains("--locked"), "{err}");
    assert_eq!(
        locked.check_locked(&artifacts).unwrap_err().to_string(),
        err.to_string()
    );
    assert_eq!(server.total_hits(), 0);
    assert!(!dir.path().join("cache").exists());
}

#[test]
fn not_found_says_which_key_chose_the_version() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let mut a = find(&artifacts, "crictl").clone();
    a.version_origin = Some(VersionOrigin {
        key: "CRICTL_VERSION",
        set: VersionSet::Default {
            rule: "its default follows K8S_VERSION (1.MINOR.0: 1.31.0)".into(),
        },
    });
    let ChecksumSource::Published { url, .. } = &a.checksum else {
        panic!("crictl has a published digest");
    };
    server.remove(path(&server, url));
    let message = Fetcher::new(dir.path().to_owned())
        .fetch(&a)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!("crictl 1.31.1: GET {url}: HTTP 404 (not found): CRICTL_VERSION was not set, its default follows K8S_VERSION")),
        "{message}"
    );
    assert!(
        message.ends_with("set CRICTL_VERSION to a released version"),
        "{message}"
    );
}

#[test]
fn corrupted_cached_file_is_detected_and_downloaded_again() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(dir.path().to_owned());
    let a = find(&artifacts, "runc");
    let fetched = fetcher.fetch(a).unwrap();
    let mut bytes = fs::read(&fetched.path).unwrap();
    bytes[100] ^= 0x01;
    fs::write(&fetched.path, &bytes).unwrap();

    let again = fetcher.fetch(a).unwrap();
    assert!(!again.from_cache);
    assert_eq!(server.hits(path(&server, &a.url)), 2);
    assert_eq!(fs::read(&again.path).unwrap(), body_of(a));
}

#[test]
fn pinned_digest_is_enforced() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let calico = find(&artifacts, CNI_MANIFEST);
    let mut pinned = calico.clone();
    pinned.checksum = ChecksumSource::Pinned(Sha256Digest::of(&body_of(calico)));
    let fetched = Fetcher::new(dir.path().to_owned()).fetch(&pinned).unwrap();
    assert_eq!(fs::read(&fetched.path).unwrap(), body_of(calico));

    let mut wrong = calico.clone();
    wrong.cache_name = "calico-wrong.yaml".to_owned();
    wrong.checksum = ChecksumSource::Pinned(Sha256Digest::of(b"something else"));
    let err = Fetcher::new(dir.path().to_owned())
        .fetch(&wrong)
        .unwrap_err();
    assert!(matches!(err, FetchError::DigestMismatch { .. }), "{err:?}");
    assert!(!dir.path().join("calico-wrong.yaml").exists());
    assert_eq!(server.hits(path(&server, &calico.url)), 2);
}

#[test]
fn truncated_checksum_file_is_refused_with_its_url() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let a = find(&artifacts, "kubeadm");
    let ChecksumSource::Published { url, .. } = &a.checksum else {
        panic!("kubeadm has a published digest");
    };
    server.put(path(&server, url), &sha256_hex(&body_of(a))[..40]);
    let err = Fetcher::new(dir.path().to_owned()).fetch(a).unwrap_err();
    assert!(
        matches!(
            &err,
            FetchError::Checksum {
                source: ChecksumError::Malformed { line: 1, .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(url.as_str()), "{err}");
    assert_eq!(server.hits(path(&server, &a.url)), 0);
    assert!(cache_listing(dir.path()).is_empty());
}

#[test]
fn changed_published_digest_is_refused() {
    let (server, artifacts) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(dir.path().to_owned());
    let a = find(&artifacts, "cni-plugins");
    let fetched = fetcher.fetch(a).unwrap();
    let ChecksumSource::Published { url, file_name, .. } = &a.checksum else {
        panic!("CNI plugins have a published digest");
    };
    // With the verified file cached, the checksum file is not fetched again; a new download
    // (the cached copy gone) is.
    fs::remove_file(&fetched.path).unwrap();
    let other = sha256_hex(b"respun release");
    server.put(path(&server, url), format!("{other}  {file_name}\n"));
    let err = fetcher.fetch(a).unwrap_err();
    assert!(
        matches!(err, FetchError::PublishedDigestChanged { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&other) && message.contains(&sha256_hex(&body_of(a))),
        "{message}"
    );
}
