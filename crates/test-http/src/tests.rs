//! The server through a raw `TcpStream` client (what is on the wire), and through ureq 2.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// An answer as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> usize {
        self.header("content-length").unwrap().parse().unwrap()
    }
}

/// Sends `request` as is and reads the answer to the end of the stream.
fn raw(server: &Server, request: &str) -> Reply {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(out[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: out[split + 4..].to_vec(),
    }
}

fn request(server: &Server, method: &str, target: &str, range: Option<&str>) -> Reply {
    let range = range.map_or(String::new(), |r| format!("Range: {r}\r\n"));
    raw(
        server,
        &format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\n{range}\r\n",
            server.addr()
        ),
    )
}

fn get(server: &Server, target: &str) -> Reply {
    request(server, "GET", target, None)
}

fn get_range(server: &Server, target: &str, range: &str) -> Reply {
    request(server, "GET", target, Some(range))
}

/// 40 000 bytes, every byte distinct from its neighbours (so a wrong offset shows).
fn big() -> Vec<u8> {
    (0..40_000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect()
}

/// A directory `root/` with `a.txt`, `sub/big.bin` and a `secret` beside (outside) it.
fn tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), b"hello\n").unwrap();
    std::fs::write(root.join("sub/big.bin"), big()).unwrap();
    std::fs::write(dir.path().join("secret"), b"do not serve").unwrap();
    (dir, root)
}

fn log_entry(method: &str, path: &str, range: Option<&str>, status: u16, body: u64) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        range: range.map(Into::into),
        status,
        body_bytes: body,
    }
}

#[test]
fn serves_a_directory_tree_with_length_and_accept_ranges() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    let reply = get(&server, "/a.txt");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"hello\n");
    assert_eq!(reply.content_length(), 6);
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(reply.header("content-range"), None);

    let reply = get(&server, "/sub/big.bin?cache=no");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, big());
    assert_eq!(reply.content_length(), 40_000);

    for missing in ["/missing", "/sub", "/", "/sub/big.bin/x"] {
        let reply = get(&server, missing);
        assert_eq!(reply.status, 404, "{missing}");
        assert_eq!(reply.body.len(), reply.content_length(), "{missing}");
    }
    // Files are read at each request: a change in the directory shows at once.
    std::fs::write(root.join("a.txt"), b"changed").unwrap();
    assert_eq!(get(&server, "/a.txt").body, b"changed");
    // Percent-encoded names are decoded.
    std::fs::write(root.join("with space"), b"s").unwrap();
    assert_eq!(get(&server, "/with%20space").body, b"s");
}

#[test]
fn head_sends_the_get_headers_without_a_body() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    let reply = request(&server, "HEAD", "/sub/big.bin", None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_length(), 40_000);
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    assert!(reply.body.is_empty(), "{} body bytes", reply.body.len());
    // Range is defined for GET only (RFC 9110 §14.2): HEAD ignores it.
    let reply = request(&server, "HEAD", "/sub/big.bin", Some("bytes=10-19"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_length(), 40_000);
    assert!(reply.body.is_empty());
    let reply = request(&server, "HEAD", "/missing", None);
    assert_eq!(reply.status, 404);
    assert!(reply.body.is_empty());
    assert_eq!(
        server.log(),
        [
            log_entry("HEAD", "/sub/big.bin", None, 200, 0),
            log_entry("HEAD", "/sub/big.bin", Some("bytes=10-19"), 200, 0),
            log_entry("HEAD", "/missing", None, 404, 0),
        ]
    );
}

#[test]
fn byte_ranges_get_206_with_content_range() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    let all = big();
    for (range, start, end) in [
        ("bytes=0-", 0, 39_999),
        ("bytes=30000-", 30_000, 39_999),
        ("bytes=100-199", 100, 199),
        ("bytes=39999-39999", 39_999, 39_999),
        ("bytes=39000-99999", 39_000, 39_999),
        ("bytes=-500", 39_500, 39_999),
    ] {
        let reply = get_range(&server, "/sub/big.bin", range);
        assert_eq!(reply.status, 206, "{range}");
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {start}-{end}/40000").as_str()),
            "{range}"
        );
        assert_eq!(reply.content_length(), end - start + 1, "{range}");
        assert_eq!(reply.body, all[start..=end], "{range}");
        assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    }
    // In-memory files have ranges too.
    server.put("/mem", "0123456789");
    let reply = get_range(&server, "/mem", "bytes=3-5");
    assert_eq!((reply.status, reply.body.as_slice()), (206, &b"345"[..]));
    // A multi-range or invalid header may be ignored (RFC 9110 §14.2): the whole body.
    for range in ["bytes=0-1,5-6", "bytes=5-2", "lines=1-2"] {
        let reply = get_range(&server, "/mem", range);
        assert_eq!(reply.status, 200, "{range}");
        assert_eq!(reply.body, b"0123456789", "{range}");
    }
}

#[test]
fn a_range_past_the_end_gets_416_with_the_length() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    for range in ["bytes=40000-", "bytes=50000-60000", "bytes=-0"] {
        let reply = get_range(&server, "/sub/big.bin", range);
        assert_eq!(reply.status, 416, "{range}");
        assert_eq!(reply.header("content-range"), Some("bytes */40000"));
        assert_eq!(reply.body.len(), reply.content_length());
        assert!(!reply.body.starts_with(&big()[..10]));
    }
    server.put("/empty", "");
    let reply = get_range(&server, "/empty", "bytes=0-");
    assert_eq!(reply.status, 416);
    assert_eq!(reply.header("content-range"), Some("bytes */0"));
    // Without a Range header an empty file is a plain 200.
    let reply = get(&server, "/empty");
    assert_eq!((reply.status, reply.content_length()), (200, 0));
}

#[test]
fn paths_that_leave_the_directory_are_refused() {
    let (dir, root) = tree();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
    let server = Server::serve_dir(&root).unwrap();
    let absolute = dir.path().join("secret");
    let targets = [
        "/../secret".to_owned(),
        "/sub/../../secret".to_owned(),
        "/%2e%2e/secret".to_owned(),
        "/%2E%2E%2Fsecret".to_owned(),
        "/..%2fsecret".to_owned(),
        "/sub/%2e%2e/%2e%2e/secret".to_owned(),
        format!("/{}", absolute.display()),
        "/a.txt%00".to_owned(),
        "/..\\secret".to_owned(),
    ];
    for target in &targets {
        let reply = get(&server, target);
        assert_eq!(reply.status, 400, "{target}");
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("do not serve"),
            "{target}"
        );
    }
    // Not origin-form, or a bad escape: also 400.
    for target in ["secret", "http://127.0.0.1/a.txt", "/bad%zz"] {
        assert_eq!(get(&server, target).status, 400, "{target}");
    }
    // A symlink out of the directory is not followed.
    assert_eq!(get(&server, "/link").status, 404);
    // Refused even if an override names the path; inside paths still work.
    server.put("/../secret", "override");
    assert_eq!(get(&server, "/../secret").status, 400);
    assert_eq!(get(&server, "/sub/./../a.txt").status, 400);
    assert_eq!(get(&server, "/./a.txt").body, b"hello\n");
    // The log has the decoded path.
    assert_eq!(server.log()[2].path, "/../secret");
}

#[test]
fn overrides_replace_remove_and_revert_directory_files() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    server.put("/a.txt", "upstream changed\n");
    assert_eq!(get(&server, "/a.txt").body, b"upstream changed\n");
    server.put("a.txt", "again\n");
    assert_eq!(get(&server, "/a.txt").body, b"again\n");
    server.put("/new/file", vec![1u8, 2, 3]);
    assert_eq!(get(&server, "/new/file").body, [1, 2, 3]);
    server.remove("/a.txt");
    assert_eq!(get(&server, "/a.txt").status, 404);
    server.revert("/a.txt");
    assert_eq!(get(&server, "/a.txt").body, b"hello\n");
    server.remove("/new/file");
    assert_eq!(get(&server, "/new/file").status, 404);

    // Without a directory only overrides exist.
    let memory = Server::start().unwrap();
    assert_eq!(get(&memory, "/a.txt").status, 404);
    memory.put("/a.txt", "m");
    assert_eq!(get(&memory, "/a.txt").body, b"m");
    memory.revert("/a.txt");
    assert_eq!(get(&memory, "/a.txt").status, 404);
}

#[test]
fn drop_after_k_cuts_the_next_t_bodies() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    let all = big();
    server.inject("/sub/big.bin", Fault::DropAfter(1000), Times::Next(2));
    for _ in 0..2 {
        let reply = get(&server, "/sub/big.bin");
        assert_eq!(reply.status, 200);
        // The head promises the whole body; the connection ends after K bytes.
        assert_eq!(reply.content_length(), 40_000);
        assert_eq!(reply.body, all[..1000]);
    }
    assert_eq!(get(&server, "/sub/big.bin").body, all);

    // On a range answer K counts from the range's start.
    server.inject("/sub/big.bin", Fault::DropAfter(10), Times::Next(1));
    let reply = get_range(&server, "/sub/big.bin", "bytes=20000-");
    assert_eq!(reply.status, 206);
    assert_eq!(reply.content_length(), 20_000);
    assert_eq!(reply.body, all[20_000..20_010]);
    // Resuming where it stopped gets the rest.
    let reply = get_range(&server, "/sub/big.bin", "bytes=20010-");
    assert_eq!(reply.body, all[20_010..]);
    // DropAfter(0): the head and no body.
    server.inject("/sub/big.bin", Fault::DropAfter(0), Times::Next(1));
    assert!(get(&server, "/sub/big.bin").body.is_empty());
    // K beyond the body: the whole body.
    server.inject("/a.txt", Fault::DropAfter(100), Times::Next(1));
    assert_eq!(get(&server, "/a.txt").body, b"hello\n");

    let bytes: Vec<u64> = server.log().iter().map(|r| r.body_bytes).collect();
    assert_eq!(bytes, [1000, 1000, 40_000, 10, 19_990, 0, 6]);
}

#[test]
fn status_injection_answers_instead_of_the_content() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    server.inject("/a.txt", Fault::Status(503), Times::Next(2));
    assert_eq!(get(&server, "/a.txt").status, 503);
    let reply = request(&server, "HEAD", "/a.txt", None);
    assert_eq!(reply.status, 503);
    assert!(reply.body.is_empty());
    assert_eq!(get(&server, "/a.txt").status, 200);

    // A missing file can fail with 500 too; other paths are not affected.
    server.inject("/nothing", Fault::Status(500), Times::Always);
    for _ in 0..3 {
        let reply = get(&server, "/nothing");
        assert_eq!(reply.status, 500);
        assert!(String::from_utf8_lossy(&reply.body).contains("500"));
    }
    assert_eq!(get(&server, "/sub/big.bin").status, 200);
    server.clear_faults("/nothing");
    assert_eq!(get(&server, "/nothing").status, 404);

    // An existing file answers 404 while the fault holds; re-arming replaces the count.
    server.inject("/a.txt", Fault::Status(404), Times::Next(5));
    server.inject("/a.txt", Fault::Status(404), Times::Next(1));
    assert_eq!(get(&server, "/a.txt").status, 404);
    assert_eq!(get(&server, "/a.txt").status, 200);
    // Next(0) disarms.
    server.inject("/a.txt", Fault::Status(503), Times::Always);
    server.inject("/a.txt", Fault::Status(503), Times::Next(0));
    assert_eq!(get(&server, "/a.txt").status, 200);
}

#[test]
fn ignore_range_serves_the_whole_body_like_a_server_without_ranges() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    let all = big();
    server.inject("/sub/big.bin", Fault::IgnoreRange, Times::Always);
    let reply = get_range(&server, "/sub/big.bin", "bytes=100-");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, all);
    assert_eq!(reply.header("accept-ranges"), None);
    assert_eq!(reply.header("content-range"), None);
    // Combined with a drop: a cut download from a server that cannot resume.
    server.inject("/sub/big.bin", Fault::DropAfter(5000), Times::Next(1));
    let reply = get_range(&server, "/sub/big.bin", "bytes=100-");
    assert_eq!((reply.status, reply.content_length()), (200, 40_000));
    assert_eq!(reply.body, all[..5000]);
    server.clear_faults("/sub/big.bin");
    assert_eq!(get_range(&server, "/sub/big.bin", "bytes=100-").status, 206);
}

#[test]
fn delay_pauses_between_chunks_and_still_sends_everything() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    server.inject(
        "/sub/big.bin",
        Fault::Delay(Duration::from_millis(20)),
        Times::Next(1),
    );
    let started = Instant::now();
    let reply = get(&server, "/sub/big.bin");
    // 40 000 bytes are 3 chunks, so about 60 ms; printed, not asserted.
    println!("delayed answer took {:?}", started.elapsed());
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, big());
}

#[test]
fn the_log_records_every_request_and_hits_count_per_path() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    get(&server, "/a.txt");
    get_range(&server, "/sub/big.bin", "bytes=5-9");
    get(&server, "/with%20space?x=1");
    let post = raw(&server, "POST /a.txt HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    get(&server, "/a.txt");
    assert_eq!(
        server.log(),
        [
            log_entry("GET", "/a.txt", None, 200, 6),
            log_entry("GET", "/sub/big.bin", Some("bytes=5-9"), 206, 5),
            log_entry("GET", "/with space", None, 404, 10),
            log_entry("POST", "/a.txt", None, 405, 18),
            log_entry("GET", "/a.txt", None, 200, 6),
        ]
    );
    assert_eq!(server.hits("/a.txt"), 3);
    assert_eq!(server.hits("a.txt"), 3);
    assert_eq!(server.hits("/sub/big.bin"), 1);
    assert_eq!(server.hits("/with space"), 1);
    assert_eq!(server.hits("/never"), 0);
    assert_eq!(server.total_hits(), 5);
    // A connection closed before a complete request is not a request.
    drop(TcpStream::connect(server.addr()).unwrap());
    let mut half = TcpStream::connect(server.addr()).unwrap();
    half.write_all(b"GET /a.txt HTTP/1.1\r\n").unwrap();
    drop(half);
    get(&server, "/a.txt");
    assert_eq!(server.total_hits(), 6);
}

#[test]
fn urls_and_paths() {
    let server = Server::start().unwrap();
    let url = server.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with('/'));
    assert_eq!(server.url_of("k8s/x"), format!("{url}/k8s/x"));
    assert_eq!(server.url_of("/k8s/x"), format!("{url}/k8s/x"));
    assert_eq!(server.path_of(&format!("{url}/k8s/x")), Some("/k8s/x"));
    assert_eq!(server.path_of("http://example.com/k8s/x"), None);
    assert_eq!(server.path_of(&format!("{url}0/x")), None);
    assert!(Server::serve_dir("/nonexistent/k8r-test-http").is_err());
    let file = tempfile::NamedTempFile::new().unwrap();
    assert!(Server::serve_dir(file.path()).is_err());
}

#[test]
fn concurrent_requests_are_served_in_parallel() {
    let (_dir, root) = tree();
    let server = Arc::new(Server::serve_dir(&root).unwrap());
    // A slow answer stays in flight while the others are served.
    server.inject(
        "/a.txt",
        Fault::Delay(Duration::from_millis(200)),
        Times::Always,
    );
    let slow = {
        let server = Arc::clone(&server);
        std::thread::spawn(move || get(&server, "/a.txt").body)
    };
    let all = big();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let server = Arc::clone(&server);
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| {
                        let start = t * 4000 + i * 100;
                        let range = format!("bytes={start}-{}", start + 99);
                        (start, get_range(&server, "/sub/big.bin", &range).body)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for (start, body) in thread.join().unwrap() {
            assert_eq!(body, all[start..start + 100], "{start}");
        }
    }
    assert_eq!(slow.join().unwrap(), b"hello\n");
    assert_eq!(server.hits("/sub/big.bin"), 40);
    assert_eq!(server.total_hits(), 41);
}

#[test]
fn dropping_the_server_ends_every_connection_and_thread() {
    let (_dir, root) = tree();
    let server = Server::serve_dir(&root).unwrap();
    let addr = server.addr();
    let shared = Arc::clone(&server.shared);
    // A client that connects and sends nothing.
    let mut idle = TcpStream::connect(addr).unwrap();
    // A download paused for an hour before its first chunk.
    server.inject(
        "/sub/big.bin",
        Fault::Delay(Duration::from_secs(3600)),
        Times::Always,
    );
    let slow = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /sub/big.bin HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    });
    while server.total_hits() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    drop(server);
    println!("drop took {:?}", started.elapsed());
    // Every server thread has ended: none holds the shared state any more.
    assert_eq!(Arc::strong_count(&shared), 1);
    assert!(lock(&shared.connections).open.is_empty());
    let out = slow.join().unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        out.len() < 40_000,
        "the paused body was sent: {} bytes",
        out.len()
    );
    let mut buf = [0u8; 16];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}

#[test]
fn ureq_sees_ranges_statuses_and_cut_downloads() {
    let server = Server::start().unwrap();
    server.put("/file", big());
    let agent = ureq::agent();
    let url = server.url_of("/file");
    let reply = agent.get(&url).set("Range", "bytes=39990-").call().unwrap();
    assert_eq!(reply.status(), 206);
    assert_eq!(
        reply.header("Content-Range"),
        Some("bytes 39990-39999/40000")
    );
    let mut body = Vec::new();
    reply.into_reader().read_to_end(&mut body).unwrap();
    assert_eq!(body, big()[39_990..]);

    server.inject("/file", Fault::Status(503), Times::Next(1));
    match agent.get(&url).call() {
        Err(ureq::Error::Status(503, _)) => {}
        other => panic!("expected 503, got {other:?}"),
    }

    server.inject("/file", Fault::DropAfter(20_000), Times::Next(1));
    let reply = agent.get(&url).call().unwrap();
    let mut body = Vec::new();
    let err = reply.into_reader().read_to_end(&mut body).unwrap_err();
    assert_eq!(body, big()[..20_000], "{err}");

    // The same agent goes on with a new connection for each request.
    let mut body = Vec::new();
    agent
        .get(&url)
        .call()
        .unwrap()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap();
    assert_eq!(body, big());
    assert_eq!(server.hits("/file"), 4);
}
