//! Bytes on the wire, shared by the test client and the test backend: a buffered
//! stream, HTTP/1.1 heads and body framing, and the deterministic byte pattern that
//! large-body tests send and check.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

const READ_CHUNK: usize = 64 * 1024;

/// A `TcpStream` plus the bytes read from it but not consumed yet.
pub struct Wire {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Where every byte read is copied as well, for tests that check exact bytes.
    tap: Option<Arc<Mutex<Vec<u8>>>>,
}

impl Wire {
    pub fn new(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            tap: None,
        }
    }

    /// A `Wire` that also appends every byte it reads to `tap`.
    pub fn tapped(stream: TcpStream, tap: Arc<Mutex<Vec<u8>>>) -> Wire {
        Wire {
            tap: Some(tap),
            ..Wire::new(stream)
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads once more from the socket; `Ok(0)` is EOF.
    pub fn fill(&mut self) -> io::Result<usize> {
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let res = loop {
            match self.stream.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        self.buf.truncate(old + *res.as_ref().unwrap_or(&0));
        if let Some(tap) = &self.tap {
            tap.lock().unwrap().extend_from_slice(&self.buf[old..]);
        }
        res
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
    }

    /// Reads a complete head (through the empty line). `Ok(None)` when the peer closed
    /// cleanly before sending anything.
    pub fn read_head(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut searched: usize = 0;
        loop {
            if let Some(pos) = find(&self.buf[searched.saturating_sub(3)..], b"\r\n\r\n") {
                let end = searched.saturating_sub(3) + pos + 4;
                let head = self.buf[..end].to_vec();
                self.consume(end);
                return Ok(Some(head));
            }
            searched = self.buf.len();
            if self.buf.len() > max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
            }
            if self.fill()? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(unexpected_eof("EOF inside a head"));
            }
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    pub fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let line = self.buf[..pos].to_vec();
                self.consume(pos + 2);
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill()? == 0 {
                return Err(unexpected_eof("EOF inside a line"));
            }
        }
    }

    /// Passes exactly `n` bytes to `sink`.
    pub fn read_exact_into(&mut self, mut n: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let take = (self.buf.len() as u64).min(n) as usize;
        if take > 0 {
            sink(&self.buf[..take]);
            self.consume(take);
            n -= take as u64;
        }
        if n == 0 {
            return Ok(());
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        while n > 0 {
            let want = (chunk.len() as u64).min(n) as usize;
            match self.stream.read(&mut chunk[..want]) {
                Ok(0) => return Err(unexpected_eof("EOF inside a body")),
                Ok(got) => {
                    sink(&chunk[..got]);
                    n -= got as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Passes everything up to EOF to `sink`.
    pub fn read_to_eof_into(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        if !self.buf.is_empty() {
            sink(&self.buf);
            self.buf.clear();
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(got) => sink(&chunk[..got]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one message body framed as `framing`, passing the payload to `sink`.
    /// Returns the trailers of a chunked body.
    pub fn read_body(
        &mut self,
        framing: Framing,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Vec<(String, String)>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.read_exact_into(n, sink).map(|_| Vec::new()),
            Framing::Close => self.read_to_eof_into(sink).map(|_| Vec::new()),
            Framing::Chunked => {
                loop {
                    let line = self.read_line()?;
                    let text = String::from_utf8_lossy(&line);
                    let size_text = text.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size_text, 16).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad chunk size line {text:?}"),
                        )
                    })?;
                    if size == 0 {
                        break;
                    }
                    self.read_exact_into(size, sink)?;
                    if !self.read_line()?.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "chunk not followed by CRLF",
                        ));
                    }
                }
                let mut trailers = Vec::new();
                loop {
                    let line = self.read_line()?;
                    if line.is_empty() {
                        return Ok(trailers);
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    let (k, v) = text.split_once(':').unwrap_or((&text, ""));
                    trailers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
}

pub type Headers = Vec<(String, String)>;

/// All values of header `name` (case-insensitive), in order.
pub fn header_values<'a>(headers: &'a Headers, name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    header_values(headers, name).into_iter().next()
}

/// Whether any comma-separated token of header `name` equals `token` (case-insensitive).
pub fn has_token(headers: &Headers, name: &str, token: &str) -> bool {
    header_values(headers, name)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Framing of a request body (RFC 9112 §6.3 for requests).
pub fn request_framing(headers: &Headers) -> io::Result<Framing> {
    if has_token(headers, "transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match header(headers, "content-length") {
        Some(v) => v
            .trim()
            .parse()
            .map(Framing::Length)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length")),
        None => Ok(Framing::Empty),
    }
}

/// Framing of a response body to a request with method `method`.
pub fn response_framing(method: &str, status: u16, headers: &Headers) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::Empty);
    }
    if has_token(headers, "transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match header(headers, "content-length") {
        Some(v) => v
            .trim()
            .parse()
            .map(Framing::Length)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length")),
        None => Ok(Framing::Close),
    }
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Headers,
}

pub fn parse_request_head(head: &[u8]) -> io::Result<RequestHead> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => Ok(RequestHead {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            version: req.version.unwrap_or(1),
            headers: owned_headers(req.headers),
        }),
        Ok(httparse::Status::Partial) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "partial request head",
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad request head: {e}"),
        )),
    }
}

/// A parsed response head: (version, status, reason, headers).
pub fn parse_response_head(head: &[u8]) -> io::Result<(u8, u16, String, Headers)> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut slots);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => Ok((
            resp.version.unwrap_or(1),
            resp.code.unwrap_or(0),
            resp.reason.unwrap_or("").to_string(),
            owned_headers(resp.headers),
        )),
        Ok(httparse::Status::Partial) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "partial response head",
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad response head {:?}: {e}", String::from_utf8_lossy(head)),
        )),
    }
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Headers {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn unexpected_eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_string())
}

// ---------------------------------------------------------------------------------
// The deterministic pattern: byte i = (i * 31 + 7) % 251. Its period is 251, so any
// window of it is a slice of one precomputed table.

const PERIOD: usize = 251;
const TABLE_LEN: usize = PERIOD * 512;
/// The longest slice `pattern_slice` hands out.
pub const PATTERN_SLICE_MAX: usize = TABLE_LEN - PERIOD;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..TABLE_LEN)
            .map(|i| ((i * 31 + 7) % PERIOD) as u8)
            .collect()
    })
}

pub fn pattern_byte(i: u64) -> u8 {
    (((i % PERIOD as u64) * 31 + 7) % PERIOD as u64) as u8
}

/// Bytes `offset .. offset + len` of the pattern; `len <= PATTERN_SLICE_MAX`.
pub fn pattern_slice(offset: u64, len: usize) -> &'static [u8] {
    assert!(len <= PATTERN_SLICE_MAX);
    let start = (offset % PERIOD as u64) as usize;
    &table()[start..start + len]
}

/// The first `n` bytes of the pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = (n - out.len()).min(64 * 1024);
        out.extend_from_slice(pattern_slice(out.len() as u64, len));
    }
    out
}

/// Writes pattern bytes `0..n` in pieces whose sizes cycle through `pieces`; a chunked
/// writer passes its own `write_piece` to frame each piece.
pub fn write_pattern_pieces(
    n: u64,
    pieces: &[usize],
    mut write_piece: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut off = 0u64;
    let mut k = 0;
    while off < n {
        let len = (pieces[k % pieces.len()] as u64).min(n - off) as usize;
        write_piece(pattern_slice(off, len))?;
        off += len as u64;
        k += 1;
    }
    Ok(())
}

/// Writes pattern bytes `0..n` to `w` in 64 KiB slices.
pub fn write_pattern(w: &mut impl Write, n: u64) -> io::Result<()> {
    write_pattern_pieces(n, &[64 * 1024], |p| w.write_all(p))
}

/// `None` when `data` equals the pattern from `offset`, else the first bad index.
pub fn pattern_mismatch(data: &[u8], offset: u64) -> Option<usize> {
    let mut done = 0;
    while done < data.len() {
        let len = (data.len() - done).min(64 * 1024);
        let want = pattern_slice(offset + done as u64, len);
        if data[done..done + len] != *want {
            let i = data[done..done + len]
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Some(done + i);
        }
        done += len;
    }
    None
}

/// Hex sha256 of pattern bytes `0..n`.
pub fn pattern_sha256(n: u64) -> String {
    let mut h = Sha256::new();
    write_pattern_pieces(n, &[64 * 1024], |p| {
        h.update(p);
        Ok(())
    })
    .expect("hashing cannot fail");
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Frames `data` as one chunk of a chunked body.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// Frames `data` as a complete chunked body split into pieces of `piece` bytes.
pub fn chunked_body(data: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(piece.max(1)) {
        out.extend_from_slice(&chunk(c));
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
