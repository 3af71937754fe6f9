//! A tiny HTTP/1.1 server on 127.0.0.1 for the fetcher's tests: serves a map of path → bytes
//! (404 for anything else), one request per connection, and counts requests per path. Tests
//! change a path's bytes to simulate a wrong or changed upstream file.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server serves and has seen.
#[derive(Debug, Default)]
struct State {
    /// Path → body.
    files: HashMap<String, Vec<u8>>,
    /// Path → number of requests (including 404s).
    hits: HashMap<String, usize>,
}

/// The running server; stopped on drop.
#[derive(Debug)]
pub(crate) struct TestServer {
    /// Where it listens.
    addr: SocketAddr,
    /// Shared with the server thread.
    state: Arc<Mutex<State>>,
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// The server thread.
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on an ephemeral 127.0.0.1 port.
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        // Errors only mean the client went away.
                        let _ = serve(stream, &state);
                    }
                }
            })
        };
        Self {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `body` at `path` (replacing what was there).
    pub(crate) fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), body.into());
    }

    /// Stops serving `path` (404 from now on).
    pub(crate) fn remove(&self, path: &str) {
        self.state.lock().unwrap().files.remove(path);
    }

    /// Requests seen for `path`.
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests seen in total.
    pub(crate) fn total_hits(&self) -> usize {
        self.state.lock().unwrap().hits.values().sum()
    }

    /// The path part of a URL on this server.
    pub(crate) fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(&self.base()).unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream`.
fn serve(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("").to_owned();
    let body = {
        let mut state = state.lock().unwrap();
        *state.hits.entry(path.clone()).or_default() += 1;
        state.files.get(&path).cloned()
    };
    let (status, body) = match body {
        Some(body) if method == "GET" => ("200 OK", body),
        Some(_) => ("405 Method Not Allowed", b"method not allowed\n".to_vec()),
        None => ("404 Not Found", b"not found\n".to_vec()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)?;
    stream.flush()
}
