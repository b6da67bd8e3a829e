//! `TestBackend`: a real HTTP/1.1 server on `127.0.0.1:0`, one std thread per
//! connection, keep-alive, Content-Length and chunked request bodies. Its endpoints
//! (by path) let each test choose what the balancer faces; its counters let tests see
//! what the balancer did upstream.
//!
//! | path | answer |
//! | --- | --- |
//! | `/` (and any unknown path) | `backend=NAME` |
//! | `/id` | the request's `x-id` header, as body and as `x-id` header |
//! | `/echo`, `/echo-chunked` | the request body, with Content-Length / chunked |
//! | `/sha256` | hex sha256 of the request body (streamed, never buffered) |
//! | `/bytes/N`, `/bytes-chunked/N`, `/bytes-close/N` | N pattern bytes (`wire::pattern`): length, chunked, close-delimited |
//! | `/status/NNN` | status NNN (204 and 304 without a body) |
//! | `/hints` | a `103 Early Hints` (`link: </a.css>; rel=preload`), then `backend=NAME` |
//! | `/sleep/MS` | `slept MS` after MS milliseconds |
//! | `/headers` | the request headers, one `name: value` line each |
//! | `/garbage` | bytes that are not HTTP, then a close |
//! | `/close` | a close, no answer |
//! | `/close-after` | `backend=NAME` with `connection: close`, then a close |
//! | `/health` | `health NNN` with the status set by `set_health_status` (200 at first) |
//!
//! Every response carries `x-backend: NAME`, and `NAME: VALUE` for each request header
//! `x-respond-NAME: VALUE` (a `set-cookie`, a `cache-control`...); HEAD gets the head only; a request with
//! `Expect: 100-continue` and a body gets `100 Continue` first.
//!
//! `stop` closes the listener and every open connection (connects are then refused)
//! and waits for the server threads to end; requests are also counted per method and
//! per path, and `/health` answers are logged, for the balancing and health tests.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::wire::{
    self, has_token, header, parse_request_head, request_framing, write_pattern_pieces, Headers,
    RequestHead, Wire,
};

/// How long a backend connection may sit with nothing to read before the backend
/// gives up on it (when no idle close was asked for).
const BACKEND_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Sizes of the pieces of a chunked response: odd ones on purpose.
const CHUNK_PIECES: &[usize] = &[65536, 1, 7777, 32768, 3];

#[derive(Default)]
struct Stats {
    accepts: AtomicUsize,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    /// Requests not yet answered (counted out before the response is written: the
    /// proxy may send the next request the moment it has the response, before this
    /// thread would count the last one out); its maximum is `max_in_flight`.
    unanswered: AtomicUsize,
    max_in_flight: AtomicUsize,
    idle_closes: AtomicUsize,
    last: Mutex<Option<RequestHead>>,
    /// Requests per method.
    methods: Mutex<HashMap<String, usize>>,
    /// Requests per path (without the query).
    paths: Mutex<HashMap<String, usize>>,
    /// The status of every `/health` answer, in order.
    health_log: Mutex<Vec<u16>>,
}

struct Shared {
    name: String,
    idle_close: Option<Duration>,
    stats: Stats,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
    /// What `/health` answers.
    health_status: AtomicU16,
    /// Set once the acceptor has returned and dropped the listener.
    acceptor_done: AtomicBool,
    /// Connection threads that may still run.
    conn_threads: Mutex<Vec<JoinHandle<()>>>,
}

pub struct TestBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TestBackend {
    /// A backend named `name` (it answers `/` with `backend=NAME`).
    pub fn start(name: &str) -> TestBackend {
        Self::spawn(name, None)
    }

    /// A backend that closes a keep-alive connection after `idle` without a request.
    pub fn start_with_idle_close(name: &str, idle: Duration) -> TestBackend {
        Self::spawn(name, Some(idle))
    }

    /// A backend bound to `at` (another loopback address, a port already chosen).
    pub fn try_start_at(name: &str, at: SocketAddr) -> std::io::Result<TestBackend> {
        Ok(Self::spawn_on(name, None, TcpListener::bind(at)?))
    }

    /// Backends named `names` on the loopback addresses `ips`, all on one port (DNS
    /// A records carry no port: the servers they name share the config's).
    pub fn start_on_one_port(names: &[&str], ips: &[&str]) -> Vec<TestBackend> {
        for _ in 0..50 {
            let first =
                TestBackend::try_start_at(names[0], SocketAddr::new(ips[0].parse().unwrap(), 0))
                    .expect("bind the first backend");
            let port = first.addr().port();
            let mut out = vec![first];
            for (n, ip) in names.iter().zip(ips).skip(1) {
                match TestBackend::try_start_at(n, SocketAddr::new(ip.parse().unwrap(), port)) {
                    Ok(b) => out.push(b),
                    Err(_) => break,
                }
            }
            if out.len() == names.len() {
                return out;
            }
        }
        panic!("no port free on every one of {ips:?}");
    }

    fn spawn(name: &str, idle_close: Option<Duration>) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test backend");
        Self::spawn_on(name, idle_close, listener)
    }

    fn spawn_on(name: &str, idle_close: Option<Duration>, listener: TcpListener) -> TestBackend {
        let addr = listener.local_addr().expect("backend local addr");
        let shared = Arc::new(Shared {
            name: name.to_string(),
            idle_close,
            stats: Stats::default(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            health_status: AtomicU16::new(200),
            acceptor_done: AtomicBool::new(false),
            conn_threads: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let acceptor = thread::Builder::new()
            .name(format!("backend-{name}"))
            .spawn(move || {
                // `accept_loop` owns the listener: it is closed when the loop returns.
                accept_loop(listener, sh.clone());
                sh.acceptor_done.store(true, Ordering::SeqCst);
            })
            .expect("spawn backend acceptor");
        TestBackend {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.shared.stats.accepts.load(Ordering::SeqCst)
    }

    /// Request heads received so far.
    pub fn requests(&self) -> usize {
        self.shared.stats.requests.load(Ordering::SeqCst)
    }

    /// Requests being handled right now.
    pub fn in_flight(&self) -> usize {
        self.shared.stats.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever handled at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.shared.stats.max_in_flight.load(Ordering::SeqCst)
    }

    /// Connections open now (accepted, and neither side has closed them).
    pub fn open_connections(&self) -> usize {
        let threads = self.shared.conn_threads.lock().unwrap();
        threads.iter().filter(|t| !t.is_finished()).count()
    }

    /// Keep-alive connections this backend closed for being idle.
    pub fn idle_closes(&self) -> usize {
        self.shared.stats.idle_closes.load(Ordering::SeqCst)
    }

    /// The head of the last request received.
    pub fn last_request(&self) -> Option<RequestHead> {
        self.shared.stats.last.lock().unwrap().clone()
    }

    /// The headers of the last request received.
    pub fn last_headers(&self) -> Headers {
        self.last_request().map(|r| r.headers).unwrap_or_default()
    }

    /// Makes `/health` answer `status` from now on.
    pub fn set_health_status(&self, status: u16) {
        self.shared.health_status.store(status, Ordering::SeqCst);
    }

    /// The status of every `/health` answer so far, in order.
    pub fn health_answers(&self) -> Vec<u16> {
        self.shared.stats.health_log.lock().unwrap().clone()
    }

    /// Requests to `/health` so far.
    pub fn health_checks(&self) -> usize {
        self.requests_to("/health")
    }

    /// Requests with `method` (exact, e.g. `"POST"`) so far.
    pub fn requests_with_method(&self, method: &str) -> usize {
        let m = self.shared.stats.methods.lock().unwrap();
        m.get(method).copied().unwrap_or(0)
    }

    /// Requests to `path` (the target without its query) so far.
    pub fn requests_to(&self, path: &str) -> usize {
        let p = self.shared.stats.paths.lock().unwrap();
        p.get(path).copied().unwrap_or(0)
    }

    /// Closes the listener (connects are refused from now on) and every open
    /// connection, then waits for the server threads to end. A request being handled
    /// loses its connection. Panics if a thread is still running after 10 s.
    pub fn stop(&self) {
        const STOP_DEADLINE: Duration = Duration::from_secs(10);
        let deadline = Instant::now() + STOP_DEADLINE;
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor until it has seen the flag and dropped the listener.
        while !self.shared.acceptor_done.load(Ordering::SeqCst) {
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
            assert!(
                Instant::now() < deadline,
                "backend {}: acceptor still running {STOP_DEADLINE:?} after stop",
                self.shared.name
            );
            thread::sleep(Duration::from_millis(2));
        }
        // No connection is accepted any more: close those that were.
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.conn_threads.lock().unwrap().drain(..).collect();
        for t in threads {
            while !t.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "backend {}: a connection thread still running {STOP_DEADLINE:?} after stop",
                    self.shared.name
                );
                thread::sleep(Duration::from_millis(2));
            }
            let _ = t.join();
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        shared.stats.accepts.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            shared.conns.lock().unwrap().push(clone);
        }
        let sh = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("backend-{}-conn", shared.name))
            .spawn(move || serve(stream, sh));
        if let Ok(t) = spawned {
            let mut threads = shared.conn_threads.lock().unwrap();
            threads.retain(|t| !t.is_finished());
            threads.push(t);
        }
    }
}

fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_write_timeout(Some(BACKEND_READ_TIMEOUT));
    let mut w = Wire::new(stream);
    loop {
        // Wait for the first byte of the next request: that wait is the idle time.
        if w.buffered().is_empty() {
            let _ = w
                .stream
                .set_read_timeout(Some(shared.idle_close.unwrap_or(BACKEND_READ_TIMEOUT)));
            match w.fill() {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if is_timeout(&e) && shared.idle_close.is_some() => {
                    shared.stats.idle_closes.fetch_add(1, Ordering::SeqCst);
                    let _ = w.stream.shutdown(Shutdown::Both);
                    return;
                }
                Err(_) => return,
            }
        }
        let _ = w.stream.set_read_timeout(Some(BACKEND_READ_TIMEOUT));
        let head = match w.read_head(1 << 20) {
            Ok(Some(h)) => h,
            _ => return,
        };
        let req = match parse_request_head(&head) {
            Ok(r) => r,
            Err(_) => {
                let _ = w.stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                return;
            }
        };
        let st = &shared.stats;
        st.requests.fetch_add(1, Ordering::SeqCst);
        st.in_flight.fetch_add(1, Ordering::SeqCst);
        let now = st.unanswered.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
        *st.last.lock().unwrap() = Some(req.clone());
        *st.methods
            .lock()
            .unwrap()
            .entry(req.method.clone())
            .or_default() += 1;
        let path = req.target.split('?').next().unwrap_or("").to_string();
        *st.paths.lock().unwrap().entry(path).or_default() += 1;
        let mut unanswered = true;
        let keep = handle(&mut w, &req, &shared, &mut unanswered);
        if unanswered {
            st.unanswered.fetch_sub(1, Ordering::SeqCst);
        }
        st.in_flight.fetch_sub(1, Ordering::SeqCst);
        match keep {
            Ok(true) => {}
            _ => {
                let _ = w.stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What to send back.
enum Body {
    /// No body and no framing header (204, 304).
    None,
    Fixed(Vec<u8>),
    Chunked(Vec<u8>),
    Pattern(u64),
    PatternChunked(u64),
    /// No length: the body ends when the connection closes.
    PatternClose(u64),
}

/// Handles one request; `Ok(true)` to keep the connection.
/// Serves one request; `unanswered` is cleared once the request is counted out of
/// `Stats::unanswered` (just before its response is written).
fn handle(
    w: &mut Wire,
    req: &RequestHead,
    shared: &Shared,
    unanswered: &mut bool,
) -> io::Result<bool> {
    let path = req.target.split('?').next().unwrap_or("").to_string();
    let framing = request_framing(&req.headers)?;
    if framing != wire::Framing::Empty && has_token(&req.headers, "expect", "100-continue") {
        w.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }

    // Endpoints that consume the body themselves.
    let mut sha = Sha256::new();
    let mut body = Vec::new();
    match path.as_str() {
        "/sha256" => {
            w.read_body(framing, &mut |b| sha.update(b))?;
        }
        "/echo" | "/echo-chunked" => {
            w.read_body(framing, &mut |b| body.extend_from_slice(b))?;
        }
        _ => {
            w.read_body(framing, &mut |_| {})?;
        }
    }

    let mut keep = req.version >= 1 && !has_token(&req.headers, "connection", "close");
    if req.version == 0 && has_token(&req.headers, "connection", "keep-alive") {
        keep = true;
    }
    let mut status = 200;
    let mut extra: Vec<(String, String)> = Vec::new();
    // `x-respond-NAME: VALUE` in the request: `NAME: VALUE` in the response.
    for (k, v) in &req.headers {
        if let Some(name) = k.to_ascii_lowercase().strip_prefix("x-respond-") {
            extra.push((name.to_string(), v.clone()));
        }
    }
    let seg = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
    };

    let out = if path == "/sha256" {
        Body::Fixed(wire::hex(&sha.finalize()).into_bytes())
    } else if path == "/echo" {
        Body::Fixed(body)
    } else if path == "/echo-chunked" {
        Body::Chunked(body)
    } else if path == "/id" {
        let id = header(&req.headers, "x-id").unwrap_or("").to_string();
        extra.push(("x-id".into(), id.clone()));
        Body::Fixed(id.into_bytes())
    } else if path == "/headers" {
        let mut text = String::new();
        for (k, v) in &req.headers {
            text.push_str(&format!("{k}: {v}\n"));
        }
        Body::Fixed(text.into_bytes())
    } else if path == "/garbage" {
        w.stream
            .write_all(b"this is not http at all\r\n\r\nreally not\r\n")?;
        return Ok(false);
    } else if path == "/close" {
        return Ok(false);
    } else if path == "/hints" {
        w.stream
            .write_all(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n")?;
        Body::Fixed(format!("backend={}", shared.name).into_bytes())
    } else if path == "/health" {
        status = shared.health_status.load(Ordering::SeqCst);
        shared.stats.health_log.lock().unwrap().push(status);
        if status == 204 || status == 304 {
            Body::None
        } else {
            Body::Fixed(format!("health {status}").into_bytes())
        }
    } else if path == "/close-after" {
        // A complete response, then `connection: close` and a real close.
        keep = false;
        Body::Fixed(format!("backend={}", shared.name).into_bytes())
    } else if let Some(n) = seg("/bytes/") {
        Body::Pattern(n)
    } else if let Some(n) = seg("/bytes-chunked/") {
        Body::PatternChunked(n)
    } else if let Some(n) = seg("/bytes-close/") {
        keep = false;
        Body::PatternClose(n)
    } else if let Some(ms) = seg("/sleep/") {
        thread::sleep(Duration::from_millis(ms));
        Body::Fixed(format!("slept {ms}").into_bytes())
    } else if let Some(code) = seg("/status/") {
        status = code as u16;
        if status == 204 || status == 304 {
            extra.push(("etag".into(), "\"v1\"".into()));
            Body::None
        } else {
            Body::Fixed(format!("status {status}").into_bytes())
        }
    } else {
        Body::Fixed(format!("backend={}", shared.name).into_bytes())
    };

    let is_head = req.method.eq_ignore_ascii_case("HEAD");
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nx-backend: {}\r\n",
        reason(status),
        shared.name
    );
    match &out {
        Body::None => {}
        Body::Fixed(b) => head.push_str(&format!("content-length: {}\r\n", b.len())),
        Body::Pattern(n) => head.push_str(&format!("content-length: {n}\r\n")),
        Body::Chunked(_) | Body::PatternChunked(_) => {
            head.push_str("transfer-encoding: chunked\r\n")
        }
        Body::PatternClose(_) => {}
    }
    for (k, v) in &extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !keep {
        head.push_str("connection: close\r\n");
    } else if req.version == 0 {
        head.push_str("connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    shared.stats.unanswered.fetch_sub(1, Ordering::SeqCst);
    *unanswered = false;
    let s = &mut w.stream;
    if is_head {
        s.write_all(head.as_bytes())?;
        return Ok(keep);
    }
    match out {
        Body::None => s.write_all(head.as_bytes())?,
        Body::Fixed(b) => {
            let mut all = head.into_bytes();
            all.extend_from_slice(&b);
            s.write_all(&all)?;
        }
        Body::Chunked(b) => {
            s.write_all(head.as_bytes())?;
            let mut framed = Vec::new();
            for piece in b.chunks(1000) {
                framed.extend_from_slice(&wire::chunk(piece));
            }
            framed.extend_from_slice(b"0\r\n\r\n");
            s.write_all(&framed)?;
        }
        Body::Pattern(n) | Body::PatternClose(n) => {
            s.write_all(head.as_bytes())?;
            wire::write_pattern(s, n)?;
        }
        Body::PatternChunked(n) => {
            s.write_all(head.as_bytes())?;
            write_pattern_pieces(n, CHUNK_PIECES, |p| {
                s.write_all(format!("{:x}\r\n", p.len()).as_bytes())?;
                s.write_all(p)?;
                s.write_all(b"\r\n")
            })?;
            s.write_all(b"0\r\n\r\n")?;
        }
    }
    s.flush()?;
    Ok(keep)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}
