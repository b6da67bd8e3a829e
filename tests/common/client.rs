//! A minimal HTTP/1.1 client over `std::net::TcpStream`: raw requests in, parsed
//! responses out, honouring Content-Length, chunked, close-delimited and the no-body
//! rules of HEAD, 1xx, 204 and 304. Every read and write has a timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::wire::{self, parse_response_head, response_framing, Framing, Headers, Wire};

/// Default read/write timeout of a client connection.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Response {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
    /// Statuses of interim (1xx) responses received before this one.
    pub interim: Vec<u16>,
    /// How the body was delimited.
    pub framing: Framing,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    pub fn header_values(&self, name: &str) -> Vec<&str> {
        wire::header_values(&self.headers, name)
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct HttpClient {
    wire: Wire,
    peer: SocketAddr,
}

impl HttpClient {
    /// Connects or panics.
    pub fn connect(addr: SocketAddr) -> HttpClient {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> io::Result<HttpClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(HttpClient {
            wire: Wire::new(stream),
            peer: addr,
        })
    }

    /// Connects from `local` (any port), e.g. another loopback address such as
    /// 127.0.0.7, so the balancer sees a different client IP.
    pub fn connect_from(addr: SocketAddr, local: std::net::IpAddr) -> HttpClient {
        use socket2::{Domain, Protocol, Socket, Type};
        let setup = || -> io::Result<HttpClient> {
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            sock.bind(&SocketAddr::new(local, 0).into())?;
            sock.connect_timeout(&addr.into(), Duration::from_secs(5))?;
            Self::from_stream(sock.into(), addr)
        };
        setup().unwrap_or_else(|e| panic!("connect to {addr} from {local}: {e}"))
    }

    /// A client over a connected `stream` to `peer`, with the default timeouts.
    pub fn from_stream(stream: TcpStream, peer: SocketAddr) -> io::Result<HttpClient> {
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(HttpClient {
            wire: Wire::new(stream),
            peer,
        })
    }

    pub fn set_timeout(&mut self, d: Duration) {
        self.wire.stream.set_read_timeout(Some(d)).unwrap();
        self.wire.stream.set_write_timeout(Some(d)).unwrap();
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.wire.stream
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.wire.stream.local_addr().unwrap()
    }

    /// Writes raw bytes or panics.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let peer = self.peer;
        self.wire
            .stream
            .write_all(bytes.as_ref())
            .unwrap_or_else(|e| panic!("write to {peer}: {e}"));
    }

    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.wire.stream.write_all(bytes.as_ref())
    }

    /// Reads the next final response to a request with `method`, skipping 1xx.
    pub fn try_read_response(&mut self, method: &str) -> io::Result<Response> {
        let mut interim = Vec::new();
        loop {
            let head = match self.wire.read_head(1 << 20)? {
                Some(h) => h,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before a response",
                    ))
                }
            };
            let (version, status, reason, headers) = parse_response_head(&head)?;
            if (100..200).contains(&status) && status != 101 {
                interim.push(status);
                continue;
            }
            let framing = response_framing(method, status, &headers)?;
            let mut body = Vec::new();
            let trailers = self
                .wire
                .read_body(framing, &mut |b| body.extend_from_slice(b))?;
            return Ok(Response {
                version,
                status,
                reason,
                headers,
                body,
                trailers,
                interim,
                framing,
            });
        }
    }

    /// Reads the next final response to a request with `method`, or panics.
    pub fn read_response_to(&mut self, method: &str) -> Response {
        let peer = self.peer;
        self.try_read_response(method)
            .unwrap_or_else(|e| panic!("reading a response from {peer}: {e}"))
    }

    /// Reads the next final response to a non-HEAD request, or panics.
    pub fn read_response(&mut self) -> Response {
        self.read_response_to("GET")
    }

    /// Reads the head of the next response (interim or final) only.
    pub fn read_head(&mut self) -> io::Result<(u8, u16, String, Headers)> {
        match self.wire.read_head(1 << 20)? {
            Some(h) => parse_response_head(&h),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a head",
            )),
        }
    }

    /// Sends a raw request and reads its response (HEAD is told from the request line).
    pub fn request(&mut self, raw: impl AsRef<[u8]>) -> Response {
        let raw = raw.as_ref();
        let method = method_of(raw);
        self.send(raw);
        self.read_response_to(&method)
    }

    pub fn try_request(&mut self, raw: impl AsRef<[u8]>) -> io::Result<Response> {
        let raw = raw.as_ref();
        let method = method_of(raw);
        self.try_send(raw)?;
        self.try_read_response(&method)
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request(get_request(path))
    }

    pub fn get_host(&mut self, host: &str, path: &str) -> Response {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
    }

    pub fn post(&mut self, path: &str, body: &[u8]) -> Response {
        self.request(post_request(path, body))
    }

    /// Writes every request at once, then reads one response per request, in order.
    pub fn pipeline(&mut self, requests: &[Vec<u8>]) -> Vec<Response> {
        let all: Vec<u8> = requests.concat();
        self.send(&all);
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let method = method_of(r);
                let peer = self.peer;
                self.try_read_response(&method)
                    .unwrap_or_else(|e| panic!("pipelined response {i} from {peer}: {e}"))
            })
            .collect()
    }

    /// Waits up to `within` for the peer to close the connection: true on EOF or
    /// reset, false on timeout. Panics if the peer sends data instead.
    pub fn closed_by_peer(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        if !self.wire.buffered().is_empty() {
            panic!(
                "unexpected bytes before close: {:?}",
                String::from_utf8_lossy(self.wire.buffered())
            );
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.wire.stream.set_read_timeout(Some(left)).unwrap();
            let mut b = [0u8; 4096];
            match self.wire.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(n) => panic!(
                    "expected a close, got {:?}",
                    String::from_utf8_lossy(&b[..n])
                ),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    pub fn shutdown_write(&mut self) {
        let _ = self.wire.stream.shutdown(Shutdown::Write);
    }
}

fn method_of(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == b' ').unwrap_or(0);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// `GET path` with `Host: test.local`.
pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n")
}

/// `GET path` with `Host: test.local` and `x-id: id`.
pub fn id_request(id: &str) -> Vec<u8> {
    format!("GET /id HTTP/1.1\r\nHost: test.local\r\nx-id: {id}\r\n\r\n").into_bytes()
}

/// `POST path` with a Content-Length body.
pub fn post_request(path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: test.local\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// `POST path` with `body` sent chunked in pieces of `piece` bytes.
pub fn post_chunked_request(path: &str, body: &[u8], piece: usize) -> Vec<u8> {
    let mut out =
        format!("POST {path} HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    out.extend_from_slice(&wire::chunked_body(body, piece));
    out
}

/// One GET on a fresh connection.
pub fn http_get(addr: SocketAddr, path: &str) -> Response {
    HttpClient::connect(addr).get(path)
}

/// One `GET /` with one more header line (`Name: value`) on a fresh connection.
pub fn get_with(addr: SocketAddr, header: &str) -> Response {
    HttpClient::connect(addr).request(format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{header}\r\nConnection: close\r\n\r\n"
    ))
}

/// One GET with `Host: host` on a fresh connection.
pub fn http_get_host(addr: SocketAddr, host: &str, path: &str) -> Response {
    HttpClient::connect(addr).get_host(host, path)
}

/// Every byte a proxy sends in answer to `raw`, then `<closed>` if it closed the
/// connection, or `<open>` if it kept quiet for `quiet` with the connection open (the
/// differential tests compare both the bytes and what became of the connection).
pub fn raw_answers(addr: SocketAddr, raw: &str, quiet: Duration) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(raw.as_bytes()).unwrap();
    c.set_read_timeout(Some(quiet)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match c.read(&mut buf) {
            Ok(0) => {
                out.extend_from_slice(b"<closed>");
                break;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {
                out.extend_from_slice(b"<open>");
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
