//! HTTP/1.1 clients of a server that answers before the request ended (the `/early`
//! and `/refuse` paths of tests/common/grpc.rs): what they saw, for a test to assert
//! on and for a differential test to compare between ringlb and HAProxy.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A client's connection whose reads can be bounded: a socket, or TLS over one.
pub trait Timed: Read + Write {
    fn bound(&mut self, within: Duration);
}

impl Timed for TcpStream {
    fn bound(&mut self, within: Duration) {
        self.set_read_timeout(Some(within)).unwrap();
    }
}

impl Timed for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn bound(&mut self, within: Duration) {
        self.sock.set_read_timeout(Some(within)).unwrap();
    }
}

/// Reads into `got` until it holds `needle` (true) or `within` passed, the peer closed
/// or failed (false).
pub fn read_until(s: &mut impl Timed, got: &mut Vec<u8>, needle: &[u8], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut b = [0u8; 16384];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.bound(left);
        match s.read(&mut b) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    true
}

/// What a client streaming a chunked body to `/early` saw.
#[derive(Debug, PartialEq)]
pub struct Streamed {
    /// The status code (HAProxy 2.6 sends an HTTP/2 response's without a reason).
    pub status: u16,
    /// `early` came while the body was still being sent (before its second chunk).
    pub early_first: bool,
    /// Its second chunk came back before the body ended.
    pub echoed: bool,
    /// The response ended once the body did.
    pub ended: bool,
    /// A next request on the same connection was answered.
    pub kept: bool,
}

/// Sends `/early` a chunked body a chunk at a time, each once the answer to the one
/// before came back, then a GET on the same connection.
pub fn streamed_upload(addr: SocketAddr) -> Streamed {
    streamed_upload_on(TcpStream::connect(addr).unwrap())
}

/// `streamed_upload` on a connection of the caller's (TLS).
pub fn streamed_upload_on(mut s: impl Timed) -> Streamed {
    let wait = Duration::from_secs(10);
    s.write_all(
        b"POST /early HTTP/1.1\r\nHost: early.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let early_first = read_until(&mut s, &mut got, b"early\n", wait);
    let status = status_of(&got);
    let _ = s.write_all(b"6\r\nsecond\r\n");
    let echoed = early_first && read_until(&mut s, &mut got, b"second", wait);
    let _ = s.write_all(b"0\r\n\r\n");
    let ended = read_until(&mut s, &mut got, b"end\n", wait)
        && read_until(&mut s, &mut got, b"\r\n0\r\n\r\n", wait);
    let _ = s.write_all(b"GET /next HTTP/1.1\r\nHost: early.test\r\n\r\n");
    let mut next = Vec::new();
    let kept = read_until(&mut s, &mut next, b"GET /next 0\n", wait);
    Streamed {
        status,
        early_first,
        echoed,
        ended,
        kept,
    }
}

/// What a client uploading a large body to a server that refuses it saw.
#[derive(Debug, PartialEq)]
pub struct Refused {
    /// The response's status code and body.
    pub status: u16,
    pub body: String,
    /// It came before the body was all sent.
    pub before_end: bool,
    /// The proxy closed the connection after it.
    pub closed: bool,
}

/// POSTs `len` bytes to `path`, from a thread of their own, and reads the answer
/// meanwhile (within 10 s: the proxies' timeouts are longer).
pub fn refused_upload(addr: SocketAddr, path: &str, len: usize) -> Refused {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: big.test\r\nContent-Length: {len}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut w = s.try_clone().unwrap();
    let all_sent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = all_sent.clone();
    let sender = std::thread::spawn(move || {
        let piece = vec![b'x'; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(piece.len());
            if w.write_all(&piece[..n]).is_err() {
                return false;
            }
            left -= n;
        }
        sent.store(true, std::sync::atomic::Ordering::SeqCst);
        true
    });
    let mut got = Vec::new();
    let whole = read_until(&mut s, &mut got, b"too large\n", Duration::from_secs(10));
    let before_end = whole && !all_sent.load(std::sync::atomic::Ordering::SeqCst);
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = status_of(&got);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    let closed = closed_within(&mut s, Duration::from_secs(3));
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    Refused {
        status,
        body,
        before_end,
        closed,
    }
}

/// The peer closed (EOF or a reset) within `within`; more bytes are no close.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 4096];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The status code of the response in `got` (0 if none).
fn status_of(got: &[u8]) -> u16 {
    got.get(9..12)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
