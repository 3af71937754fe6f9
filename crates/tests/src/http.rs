//! A small HTTP/1.1 file server on 127.0.0.1 standing in for the internet release locations
//! (dl.k8s.io, GitHub releases, raw.githubusercontent.com) in tests and the demo. It serves
//! the files under one directory, GET and HEAD only, and counts requests.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct FileServer {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl FileServer {
    /// Serves `root` on an ephemeral 127.0.0.1 port.
    pub fn start(root: &Path) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (root, stop2, count) = (root.to_path_buf(), stop.clone(), requests.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let root = root.clone();
                        std::thread::spawn(move || {
                            let _ = serve(stream, &root);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self {
            port,
            stop,
            requests,
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let path = url_path.split('?').next()?.trim_start_matches('/');
    let rel = Path::new(path);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(rel);
    full.is_file().then_some(full)
}

fn serve(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let found = resolve(root, path).and_then(|p| std::fs::read(p).ok());
    match (method, found) {
        ("GET" | "HEAD", Some(body)) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            if method == "GET" {
                stream.write_all(&body)?;
            }
        }
        ("GET" | "HEAD", None) => {
            stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
        }
        _ => {
            stream.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        }
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn get(url: &str) -> (String, Vec<u8>) {
        let rest = url.strip_prefix("http://").expect("http");
        let (host, path) = rest.split_once('/').expect("path");
        let mut s = TcpStream::connect(host).expect("connect");
        write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("send");
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("read");
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers")
            + 4;
        let head = String::from_utf8_lossy(&out[..split]).into_owned();
        (head, out[split..].to_vec())
    }

    #[test]
    fn serves_files_404s_and_refuses_escapes() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("a")).expect("mkdir");
        std::fs::write(dir.join("a/b.txt"), b"hello").expect("write");
        std::fs::write(dir.join("../secret-k8r-http-test"), b"no").expect("write");
        let server = FileServer::start(&dir).expect("start");
        let (head, body) = get(&format!("{}/a/b.txt", server.url()));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"hello");
        let (head, _) = get(&format!("{}/a/missing", server.url()));
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let (head, _) = get(&format!("{}/../secret-k8r-http-test", server.url()));
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert_eq!(server.requests(), 3);
    }

    fn tempfile_dir() -> PathBuf {
        crate::scratch("http-server/root")
    }
}
