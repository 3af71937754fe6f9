//! A small HTTP/1.1 server on 127.0.0.1 that plays the internet in tests: dl.k8s.io, GitHub
//! releases, a user's `HTTP_IMAGE_URL` web server.
//!
//! A [`Server`] serves a directory tree ([`Server::serve_dir`]), in-memory files
//! ([`Server::put`]), or both (in-memory files win), on an ephemeral loopback port. It
//! answers `GET` and `HEAD` with `Content-Length`, single byte ranges (`Range: bytes=N-`,
//! `bytes=N-M`, `bytes=-N` → `206` with `Content-Range`; a start past the end → `416` with
//! `Content-Range: bytes */LEN`; `Accept-Ranges: bytes` on every answer with content), and
//! refuses paths that could leave the directory (`..`, also as `%2e%2e`; `//abs`) with `400`.
//!
//! Tests change what "upstream" does at run time: replace or remove a file, or [`inject`] a
//! [`Fault`] for the next requests of a path (drop the connection after K body bytes, answer
//! 404/500/503, pause between chunks, ignore `Range` like a server without range support).
//! Every request is [logged](Server::log) (method, path, `Range`, status, body bytes) and
//! counted per path ([`Server::hits`]).
//!
//! **One request per connection.** Every answer says `Connection: close` and the server
//! closes the connection after it. HTTP/1.1 allows this (RFC 9112 §9.6) and ureq 2, the
//! client of the builder and the node agent, opens a new connection for the next request.
//! It keeps the server simple and every case unambiguous: a dropped connection is one
//! request's fault, the request log is the connection log, and a test client can read to
//! end of stream.
//!
//! Each connection is served on its own thread, so concurrent requests work. Dropping the
//! [`Server`] stops it: it stops accepting, shuts down open connections (also those a client
//! keeps open without sending, and paused ones) and joins every thread it started.
//!
//! [`inject`]: Server::inject

mod range;
mod request;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::mem::discriminant;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use range::RangeAnswer;

/// Body bytes written at a time; [`Fault::Delay`] pauses before each chunk.
pub const CHUNK: usize = 16 * 1024;

/// How long a connection may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may leave the server waiting while it writes.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server waits for the client to close after the answer, before it closes
/// itself (closing with unread input would reset the connection and could lose the answer).
const LINGER: Duration = Duration::from_secs(2);

/// Something going wrong upstream, for the next requests of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Send the head (with the full `Content-Length`) and the first K bytes of the body of a
    /// `200`/`206` answer, then close the connection: a download cut off mid-way. K counts
    /// from the start of this answer's body (byte N of the file for `bytes=N-`). A body of
    /// at most K bytes is sent whole.
    DropAfter(u64),
    /// Answer with this status (e.g. 404, 500, 503) and a short text body instead of the
    /// content, whether the file exists or not.
    Status(u16),
    /// Pause this long before each [`CHUNK`] of the body.
    Delay(Duration),
    /// Serve `200` with the whole body whatever the `Range` header says, and no
    /// `Accept-Ranges`: a server without range support.
    IgnoreRange,
}

/// For how many requests an injected [`Fault`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The next N `GET` or `HEAD` requests of the path (`Next(0)` disarms it).
    Next(usize),
    /// Every request until [`Server::clear_faults`].
    Always,
}

/// One request as the server saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The percent-decoded path without the query (`/a b` for `/a%20b?x=1`); the target as
    /// sent if it does not decode.
    pub path: String,
    /// The `Range` header, as sent.
    pub range: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Body bytes sent: what the answer meant to send (0 for `HEAD`, K for
    /// [`Fault::DropAfter`]), lowered to what was written if the client went away first.
    pub body_bytes: u64,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What the server threads share with the [`Server`] handle.
#[derive(Debug)]
struct Shared {
    /// The served directory (canonical), if any.
    root: Option<PathBuf>,
    state: Mutex<State>,
    /// Set when the [`Server`] is dropped.
    stop: AtomicBool,
    connections: Mutex<Connections>,
}

/// What tests set and read.
#[derive(Debug, Default)]
struct State {
    /// Path → in-memory answer, consulted before the directory.
    overrides: HashMap<String, Override>,
    /// Path → armed faults, at most one of each kind.
    faults: HashMap<String, Vec<Armed>>,
    log: Vec<Request>,
}

#[derive(Debug, Clone)]
enum Override {
    Body(Arc<[u8]>),
    Gone,
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    /// Requests left; `None` for [`Times::Always`].
    left: Option<usize>,
}

/// The open connections and the threads serving them.
#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    open: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the server down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `/` + `path` unless it starts with one.
fn key(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

impl Server {
    /// A server with no directory: only what [`put`](Self::put) adds is served.
    pub fn start() -> io::Result<Server> {
        Server::bind(None)
    }

    /// A server for the files under `root` (read at each request, so changes show).
    pub fn serve_dir(root: impl AsRef<Path>) -> io::Result<Server> {
        let root = root.as_ref();
        let canonical = root
            .canonicalize()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", root.display())))?;
        if !canonical.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Server::bind(Some(canonical))
    }

    fn bind(root: Option<PathBuf>) -> io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            root,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Connections::default()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("test-http-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Server {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// Where it listens (127.0.0.1, ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` on this server (`/` added if missing).
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{}", self.url(), key(path))
    }

    /// The path part of `url` if it is a URL on this server.
    pub fn path_of<'a>(&self, url: &'a str) -> Option<&'a str> {
        let path = url.strip_prefix(&self.url())?;
        (path.is_empty() || path.starts_with('/')).then_some(path)
    }

    /// Serves `body` at `path` from now on, in place of the directory's file if any.
    /// `path` is matched against the decoded request path; a missing leading `/` is added.
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        let body: Arc<[u8]> = body.into().into();
        lock(&self.shared.state)
            .overrides
            .insert(key(path), Override::Body(body));
    }

    /// Answers 404 for `path` from now on, whether or not the directory has it.
    pub fn remove(&self, path: &str) {
        lock(&self.shared.state)
            .overrides
            .insert(key(path), Override::Gone);
    }

    /// Forgets [`put`](Self::put) and [`remove`](Self::remove) for `path`: the directory
    /// answers again.
    pub fn revert(&self, path: &str) {
        lock(&self.shared.state).overrides.remove(&key(path));
    }

    /// Arms `fault` for `path` for `times` requests, replacing an armed fault of the same
    /// kind. Faults of different kinds combine (e.g. [`Fault::IgnoreRange`] with
    /// [`Fault::DropAfter`]: a cut-off download from a server without ranges); a
    /// [`Fault::Status`] answers instead of the content, so the others do not show in its
    /// answer. Each armed fault counts down on every `GET` or `HEAD` of its path that gets
    /// past the path check, whichever fault decided the answer.
    pub fn inject(&self, path: &str, fault: Fault, times: Times) {
        let mut state = lock(&self.shared.state);
        let armed = state.faults.entry(key(path)).or_default();
        armed.retain(|a| discriminant(&a.fault) != discriminant(&fault));
        let left = match times {
            Times::Next(0) => return,
            Times::Next(n) => Some(n),
            Times::Always => None,
        };
        armed.push(Armed { fault, left });
    }

    /// Disarms every fault of `path`.
    pub fn clear_faults(&self, path: &str) {
        lock(&self.shared.state).faults.remove(&key(path));
    }

    /// Every request so far, in the order answered. A request is logged before the first
    /// byte of its answer is sent, so a client holding an answer always finds it here.
    pub fn log(&self) -> Vec<Request> {
        lock(&self.shared.state).log.clone()
    }

    /// Requests of `path` so far (all methods and statuses).
    pub fn hits(&self, path: &str) -> usize {
        let path = key(path);
        lock(&self.shared.state)
            .log
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Requests so far.
    pub fn total_hits(&self) -> usize {
        lock(&self.shared.state).log.len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees `stop` and returns.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // No connection is registered after the accept thread ended.
        let threads = {
            let mut connections = lock(&self.shared.connections);
            for stream in connections.open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut connections.threads)
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            // E.g. out of file descriptors: try again shortly.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(registered) = stream.try_clone() else {
            continue;
        };
        let mut connections = lock(&shared.connections);
        connections.threads.retain(|t| !t.is_finished());
        let id = connections.next_id;
        connections.next_id += 1;
        connections.open.insert(id, registered);
        let thread_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("test-http-conn".into())
            .spawn(move || {
                // Errors only mean the client went away or the server is stopping.
                let _ = serve(stream, &thread_shared);
                lock(&thread_shared.connections).open.remove(&id);
            });
        match spawned {
            Ok(thread) => connections.threads.push(thread),
            Err(_) => {
                connections.open.remove(&id);
            }
        }
    }
}

/// Where an answer's body comes from.
enum Source {
    Memory(Arc<[u8]>),
    File(File),
}

impl Source {
    fn text(text: &str) -> Source {
        Source::Memory(text.as_bytes().into())
    }

    /// A reader positioned at `start`.
    fn reader(self, start: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Source::Memory(bytes) => {
                let mut cursor = Cursor::new(bytes);
                cursor.set_position(start);
                Box::new(cursor)
            }
            Source::File(mut file) => {
                file.seek(SeekFrom::Start(start))?;
                Box::new(file)
            }
        })
    }
}

/// What a path names.
enum Content {
    Found { source: Source, len: u64 },
    NotFound,
}

/// The faults that apply to one request.
#[derive(Debug, Default)]
struct Active {
    status: Option<u16>,
    drop_after: Option<u64>,
    delay: Option<Duration>,
    ignore_range: bool,
}

/// One answer, decided before anything is written.
struct Answer {
    status: u16,
    headers: Vec<String>,
    source: Source,
    /// Where in `source` the body starts.
    start: u64,
    /// `Content-Length`.
    len: u64,
    /// Body bytes to write (less than `len` for `HEAD` and [`Fault::DropAfter`]).
    send: u64,
    delay: Option<Duration>,
}

impl Answer {
    fn text(status: u16, text: &str) -> Answer {
        let len = u64::try_from(text.len()).unwrap_or(u64::MAX);
        Answer {
            status,
            headers: vec!["Content-Type: text/plain".into()],
            source: Source::text(text),
            start: 0,
            len,
            send: len,
            delay: None,
        }
    }
}

impl Shared {
    /// The override, or else the directory's file, for a checked path.
    fn content(&self, path: &str, rel: &Path) -> Content {
        let found = lock(&self.state).overrides.get(path).cloned();
        match found {
            Some(Override::Body(bytes)) => {
                let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                Content::Found {
                    source: Source::Memory(bytes),
                    len,
                }
            }
            Some(Override::Gone) => Content::NotFound,
            None => self.file(rel),
        }
    }

    fn file(&self, rel: &Path) -> Content {
        let Some(root) = &self.root else {
            return Content::NotFound;
        };
        // Canonical, so a symlink cannot lead out of the directory either.
        let Ok(full) = root.join(rel).canonicalize() else {
            return Content::NotFound;
        };
        if !full.starts_with(root) {
            return Content::NotFound;
        }
        match File::open(&full).and_then(|f| f.metadata().map(|m| (f, m))) {
            Ok((file, meta)) if meta.is_file() => Content::Found {
                source: Source::File(file),
                len: meta.len(),
            },
            _ => Content::NotFound,
        }
    }

    /// Counts down the faults armed for `path` and returns those that apply now.
    fn take_faults(&self, path: &str) -> Active {
        let mut state = lock(&self.state);
        let mut active = Active::default();
        let Some(armed) = state.faults.get_mut(path) else {
            return active;
        };
        for a in armed.iter_mut() {
            match &a.fault {
                Fault::Status(code) => active.status = Some(*code),
                Fault::DropAfter(k) => active.drop_after = Some(*k),
                Fault::Delay(d) => active.delay = Some(*d),
                Fault::IgnoreRange => active.ignore_range = true,
            }
            if let Some(left) = &mut a.left {
                *left -= 1;
            }
        }
        armed.retain(|a| a.left != Some(0));
        if armed.is_empty() {
            state.faults.remove(path);
        }
        active
    }

    /// Decides the answer to `head` and logs it; returns the answer and its log index.
    fn answer(&self, head: &request::Head) -> (Answer, usize) {
        let raw_path = head.target.split('?').next().unwrap_or("");
        let decoded = request::decoded_path(&head.target);
        let path = decoded.clone().unwrap_or_else(|| raw_path.to_owned());
        let is_head = head.method == "HEAD";
        let mut answer = self.decide(head, decoded.as_deref());
        if is_head {
            answer.send = 0;
        }
        let mut state = lock(&self.state);
        state.log.push(Request {
            method: head.method.clone(),
            path,
            range: head.range.clone(),
            status: answer.status,
            body_bytes: answer.send,
        });
        (answer, state.log.len() - 1)
    }

    fn decide(&self, head: &request::Head, path: Option<&str>) -> Answer {
        let Some(path) = path else {
            return Answer::text(400, "bad request target\n");
        };
        if head.method != "GET" && head.method != "HEAD" {
            let mut answer = Answer::text(405, "only GET and HEAD\n");
            answer.headers.push("Allow: GET, HEAD".into());
            return answer;
        }
        let Some(rel) = request::relative(path) else {
            return Answer::text(400, "refused: the path leaves the served directory\n");
        };
        let active = self.take_faults(path);
        if let Some(code) = active.status {
            return Answer::text(code, &format!("injected status {code}\n"));
        }
        let Content::Found { source, len } = self.content(path, rel) else {
            return Answer::text(404, "not found\n");
        };
        let range = if head.method == "GET" && !active.ignore_range {
            range::decide(head.range.as_deref(), len)
        } else {
            RangeAnswer::Full
        };
        let mut headers = vec!["Content-Type: application/octet-stream".to_owned()];
        if !active.ignore_range {
            headers.push("Accept-Ranges: bytes".into());
        }
        let (status, start, body_len) = match range {
            RangeAnswer::Full => (200, 0, len),
            RangeAnswer::Partial { start, end } => {
                headers.push(format!("Content-Range: bytes {start}-{end}/{len}"));
                (206, start, end - start + 1)
            }
            RangeAnswer::Unsatisfiable => {
                let mut answer = Answer::text(416, "range not satisfiable\n");
                answer.headers.push(format!("Content-Range: bytes */{len}"));
                answer.headers.push("Accept-Ranges: bytes".into());
                return answer;
            }
        };
        Answer {
            status,
            headers,
            source,
            start,
            len: body_len,
            send: active.drop_after.map_or(body_len, |k| k.min(body_len)),
            delay: active.delay,
        }
    }

    /// Sleeps `delay`, waking early when the server stops.
    fn pause(&self, delay: Duration) -> io::Result<()> {
        let until = Instant::now() + delay;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Err(io::Error::other("server stopping"));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep((until - now).min(Duration::from_millis(10)));
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}

/// Answers one request on `stream`, then closes it.
fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let Some(head) = request::read_head(&mut stream)? else {
        return Ok(());
    };
    let (answer, index) = shared.answer(&head);
    let mut text = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        reason(answer.status),
        answer.len
    );
    for header in &answer.headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let (len, send) = (answer.len, answer.send);
    let mut sent = 0u64;
    let result = stream
        .write_all(text.as_bytes())
        .and_then(|()| send_body(&mut stream, shared, answer, &mut sent));
    if let Err(e) = result {
        lock(&shared.state).log[index].body_bytes = sent;
        return Err(e);
    }
    if send < len && head.method != "HEAD" {
        // Fault::DropAfter: cut the connection mid-body.
        return stream.shutdown(Shutdown::Both);
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Write)?;
    linger(&mut stream)
}

/// Writes the first `answer.send` bytes of the body, counting them in `sent`.
fn send_body(
    stream: &mut TcpStream,
    shared: &Shared,
    answer: Answer,
    sent: &mut u64,
) -> io::Result<()> {
    if answer.send == 0 {
        return Ok(());
    }
    let mut reader = answer.source.reader(answer.start)?;
    let mut buf = vec![0u8; CHUNK];
    while *sent < answer.send {
        if let Some(delay) = answer.delay {
            shared.pause(delay)?;
        }
        let want = usize::try_from(answer.send - *sent).map_or(CHUNK, |left| left.min(CHUNK));
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            // The file shrank under us: the client sees a short body.
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        stream.write_all(&buf[..n])?;
        *sent += u64::try_from(n).unwrap_or(u64::MAX);
    }
    Ok(())
}

/// Reads (and discards) until the client closes, for at most [`LINGER`].
fn linger(stream: &mut TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(LINGER))?;
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    while total < 1 << 20 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    Ok(())
}
