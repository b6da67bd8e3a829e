//! `RawServer`: a loopback TCP server that hands every accepted connection to a
//! test's own function (one std thread each), for servers that misbehave on purpose
//! (bad framing, resets, stalls, WebSocket) where `TestBackend` is too well-behaved.
//! `read_head` reads one request head off such a connection. `Recorder`: a server that
//! keeps every byte it received, for tests of exactly what reaches a server.

use std::io::Write;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub struct RawServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepts: Arc<AtomicUsize>,
    /// Connection threads still running.
    live: Arc<AtomicUsize>,
}

impl RawServer {
    /// Serves each connection with `handler`, from `127.0.0.1:0`.
    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw server");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepts = Arc::new(AtomicUsize::new(0));
        let live = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (st, ac, lv) = (stop.clone(), accepts.clone(), live.clone());
        thread::Builder::new()
            .name("raw-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(s) = conn else { continue };
                    ac.fetch_add(1, Ordering::SeqCst);
                    let _ = s.set_nodelay(true);
                    let h = handler.clone();
                    let lv2 = lv.clone();
                    lv.fetch_add(1, Ordering::SeqCst);
                    let spawned = thread::Builder::new()
                        .name("raw-conn".into())
                        .stack_size(256 * 1024)
                        .spawn(move || {
                            h(s);
                            lv2.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        lv.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
            .expect("spawn raw server");
        RawServer {
            addr,
            stop,
            accepts,
            live,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    /// Connections whose handler has not returned yet.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Reads one request head (through the empty line) byte by byte, so that nothing
/// after it is consumed. `None` at EOF or on an error.
pub fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            Ok(_) => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        if head.len() > 1 << 20 {
            return None;
        }
    }
    Some(head)
}

/// Reads until EOF or an error; the bytes read.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut b = [0u8; 16384];
    loop {
        match s.read(&mut b) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return all,
        }
    }
}

/// One request as a `Recorder` read it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: super::wire::Headers,
    /// The body's payload (chunk framing removed).
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// A server that keeps every byte received on each connection and answers every
/// request (delimited by its Content-Length or chunked framing) with a `200` whose
/// body is `METHOD TARGET`; `Expect: 100-continue` on a request with a body gets a
/// `100 Continue` first.
/// What each connection of a `Recorder` received, in accept order.
type Taps = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

pub struct Recorder {
    server: RawServer,
    conns: Taps,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        use super::wire::{has_token, parse_request_head, request_framing, Framing, Wire};
        let conns: Taps = Arc::default();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let (c, r) = (conns.clone(), requests.clone());
        let server = RawServer::start(move |s| {
            let tap = Arc::new(Mutex::new(Vec::new()));
            c.lock().unwrap().push(tap.clone());
            let mut w = Wire::tapped(s, tap);
            loop {
                let Ok(Some(head)) = w.read_head(1 << 20) else {
                    return;
                };
                let Ok(req) = parse_request_head(&head) else {
                    return;
                };
                let Ok(framing) = request_framing(&req.headers) else {
                    return;
                };
                if framing != Framing::Empty && has_token(&req.headers, "expect", "100-continue") {
                    let _ = w.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                let mut body = Vec::new();
                let Ok(trailers) = w.read_body(framing, &mut |b| body.extend_from_slice(b)) else {
                    return;
                };
                let answer = format!("{} {}", req.method, req.target);
                r.lock().unwrap().push(Recorded {
                    method: req.method,
                    target: req.target,
                    headers: req.headers,
                    body,
                    trailers,
                });
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                if w.stream.write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
        });
        Recorder {
            server,
            conns,
            requests,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The bytes received so far on each connection, in the order they were accepted.
    pub fn received(&self) -> Vec<Vec<u8>> {
        let conns = self.conns.lock().unwrap();
        conns.iter().map(|t| t.lock().unwrap().clone()).collect()
    }

    /// The requests read so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.server.accepts()
    }
}
