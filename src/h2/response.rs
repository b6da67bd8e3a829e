//! The response side of a stream: the HTTP/1.1 response the HTTP path writes (the
//! server's, rewritten by the response rules, or a local reply) is parsed back and sent
//! as HEADERS and DATA frames: connection-specific fields are dropped (RFC 9113
//! §8.2.2), a chunked body is decoded (its trailer fields become a trailing HEADERS
//! frame), and DATA goes out only as the client's flow-control window allows, so a
//! slow client holds the server back through the HTTP path's own writes.

use std::io;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::SendStream;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

/// The longest response head accepted back (ringlb wrote it: a local bound only).
const HEAD_MAX: usize = 256 * 1024;

/// What part of the response the next bytes belong to.
enum Phase {
    Head,
    /// This many body bytes are still to come.
    Length(u64),
    Chunked(Chunks),
    /// The body ends when the HTTP path closes the stream.
    UntilClose,
    Done,
}

/// A chunked body being decoded.
#[derive(Default)]
struct Chunks {
    /// Data bytes left in the current chunk.
    left: u64,
    /// The size line (or, after the last chunk, trailer line) being read.
    line: Vec<u8>,
    state: ChunkState,
    trailers: Option<HeaderMap>,
}

#[derive(Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailer,
    End,
}

/// The longest chunk-size or trailer line taken.
const LINE_MAX: usize = 16 * 1024;

fn bad_chunk() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "chunked body")
}

impl Chunks {
    /// Consumes framing bytes (size lines, the CRLF after data, trailer lines) from the
    /// front of `src`, up to the next data byte or the end; how many it took.
    fn framing(&mut self, src: &[u8]) -> io::Result<usize> {
        let mut used = 0;
        while used < src.len() {
            if matches!(self.state, ChunkState::Data | ChunkState::End) {
                break;
            }
            let rest = &src[used..];
            let (take, line_done) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (rest.len(), false),
            };
            self.line.extend_from_slice(&rest[..take]);
            used += take;
            if self.line.len() > LINE_MAX {
                return Err(bad_chunk());
            }
            if !line_done {
                break;
            }
            let line = std::mem::take(&mut self.line);
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            match self.state {
                ChunkState::Size => {
                    let digits = text.split(|&b| b == b';').next().unwrap_or(b"");
                    let digits = std::str::from_utf8(digits).map_err(|_| bad_chunk())?;
                    let size = u64::from_str_radix(digits.trim(), 16).map_err(|_| bad_chunk())?;
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                    } else {
                        self.left = size;
                        self.state = ChunkState::Data;
                    }
                }
                ChunkState::DataEnd if text.is_empty() => self.state = ChunkState::Size,
                ChunkState::DataEnd => return Err(bad_chunk()),
                ChunkState::Trailer if text.is_empty() => self.state = ChunkState::End,
                ChunkState::Trailer => self.trailer(text),
                ChunkState::Data | ChunkState::End => {}
            }
            self.line = line;
            self.line.clear();
        }
        Ok(used)
    }

    /// One trailer field; a field h2 cannot carry is dropped.
    fn trailer(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let name = HeaderName::from_bytes(&line[..colon]);
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (name, value) {
            self.trailers
                .get_or_insert_with(HeaderMap::new)
                .append(n, v);
        }
    }
}

/// What the next bytes of a write are.
enum Step {
    /// So many bytes were consumed (head, chunk framing) without a DATA frame.
    Framing(usize),
    /// The next so many bytes are body data.
    Data(usize),
}

pub(super) struct Responder {
    respond: Option<SendResponse<Bytes>>,
    send: Option<SendStream<Bytes>>,
    phase: Phase,
    head: Vec<u8>,
    /// The request was a HEAD: the response has no body, whatever it says.
    head_request: bool,
}

fn broken(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what)
}

impl Responder {
    pub(super) fn new(respond: SendResponse<Bytes>, head_request: bool) -> Self {
        Responder {
            respond: Some(respond),
            send: None,
            phase: Phase::Head,
            head: Vec::new(),
            head_request,
        }
    }

    /// The response has been sent whole.
    pub(super) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Answers with a status and no body (a request refused before the HTTP path).
    pub(super) fn status_only(&mut self, status: u16) {
        if let (Some(mut r), Ok(s)) = (self.respond.take(), StatusCode::from_u16(status)) {
            let mut res = Response::new(());
            *res.status_mut() = s;
            let _ = r.send_response(res, true);
        }
        self.phase = Phase::Done;
    }

    /// Refuses the stream unprocessed (REFUSED_STREAM: the client may retry it
    /// elsewhere).
    pub(super) fn refuse(&mut self) {
        if let Some(mut r) = self.respond.take() {
            r.send_reset(h2::Reason::REFUSED_STREAM);
        }
        self.phase = Phase::Done;
    }

    /// Consumes what it can of `src` (at least one byte, waiting for flow-control
    /// window when body data is next).
    pub(super) async fn write(&mut self, src: &[u8]) -> io::Result<usize> {
        let mut used = 0;
        while used < src.len() {
            match self.step(&src[used..])? {
                Step::Framing(n) => used += n,
                Step::Data(_) if used > 0 => return Ok(used),
                Step::Data(n) => {
                    let sent = self.send_data(&src[used..used + n]).await?;
                    self.data_sent(sent as u64)?;
                    return Ok(sent);
                }
            }
        }
        Ok(used)
    }

    /// The HTTP path is done writing: a body that runs until the close ends here.
    pub(super) fn finish(&mut self) {
        if let Phase::UntilClose = self.phase {
            if let Some(s) = &mut self.send {
                let _ = s.send_data(Bytes::new(), true);
            }
            self.phase = Phase::Done;
        }
    }

    /// The stream is dropped: a response cut short is reset, so the client cannot
    /// take it for whole.
    pub(super) fn abort(&mut self) {
        self.finish();
        if self.is_done() {
            return;
        }
        if let Some(r) = &mut self.respond {
            r.send_reset(h2::Reason::INTERNAL_ERROR);
        } else if let Some(s) = &mut self.send {
            s.send_reset(h2::Reason::INTERNAL_ERROR);
        }
        self.phase = Phase::Done;
    }

    fn step(&mut self, src: &[u8]) -> io::Result<Step> {
        match &mut self.phase {
            Phase::Head => self.head_bytes(src),
            Phase::Length(left) => Ok(Step::Data((*left).min(src.len() as u64) as usize)),
            Phase::UntilClose => Ok(Step::Data(src.len())),
            Phase::Chunked(c) => {
                if c.state == ChunkState::Data {
                    return Ok(Step::Data(c.left.min(src.len() as u64) as usize));
                }
                let n = c.framing(src)?;
                if c.state == ChunkState::End {
                    let trailers = c.trailers.take();
                    self.phase = Phase::Done;
                    let send = self.send.as_mut().ok_or_else(|| broken("no stream"))?;
                    match trailers {
                        Some(t) => send.send_trailers(t),
                        None => send.send_data(Bytes::new(), true),
                    }
                    .map_err(|_| broken("stream reset"))?;
                }
                Ok(Step::Framing(n))
            }
            Phase::Done => Err(broken("bytes after the end of the response")),
        }
    }

    fn head_bytes(&mut self, src: &[u8]) -> io::Result<Step> {
        let before = self.head.len();
        self.head.extend_from_slice(src);
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut res = httparse::Response::new(&mut slots);
        let len = match res.parse(&self.head) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if self.head.len() <= HEAD_MAX => {
                return Ok(Step::Framing(src.len()))
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "response head")),
        };
        let code = res.code.unwrap_or(502);
        // An interim response (100 Continue): nothing to send, the final one follows.
        if (100..200).contains(&code) {
            self.head.clear();
            return Ok(Step::Framing(len - before));
        }
        let mut out = Response::new(());
        *out.status_mut() = StatusCode::from_u16(code).map_err(|_| broken("status"))?;
        let mut framing = None;
        let mut chunked = false;
        for h in res.headers.iter() {
            let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
                continue;
            };
            match name.as_str() {
                "connection" | "keep-alive" | "proxy-connection" | "upgrade" => continue,
                "transfer-encoding" => {
                    chunked = true;
                    continue;
                }
                "content-length" => {
                    framing = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok());
                }
                _ => {}
            }
            if let Ok(value) = HeaderValue::from_bytes(h.value) {
                out.headers_mut().append(name, value);
            }
        }
        let bodiless = self.head_request || code == 204 || code == 304;
        self.phase = if bodiless || framing == Some(0) && !chunked {
            Phase::Done
        } else if chunked {
            out.headers_mut().remove(http::header::CONTENT_LENGTH);
            Phase::Chunked(Chunks::default())
        } else if let Some(n) = framing {
            Phase::Length(n)
        } else {
            Phase::UntilClose
        };
        let end = matches!(self.phase, Phase::Done);
        let mut respond = self.respond.take().ok_or_else(|| broken("response sent"))?;
        let send = respond
            .send_response(out, end)
            .map_err(|_| broken("stream reset"))?;
        self.send = Some(send);
        self.head = Vec::new();
        Ok(Step::Framing(len - before))
    }

    /// Sends up to `data.len()` bytes as the window allows; how many went.
    async fn send_data(&mut self, data: &[u8]) -> io::Result<usize> {
        let send = self.send.as_mut().ok_or_else(|| broken("no stream"))?;
        send.reserve_capacity(data.len());
        let room = loop {
            match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => break n.min(data.len()),
                Some(Err(_)) | None => return Err(broken("stream reset")),
            }
        };
        let last = matches!(self.phase, Phase::Length(left) if left == room as u64);
        send.send_data(Bytes::copy_from_slice(&data[..room]), last)
            .map_err(|_| broken("stream reset"))?;
        Ok(room)
    }

    fn data_sent(&mut self, n: u64) -> io::Result<()> {
        match &mut self.phase {
            Phase::Length(left) => {
                *left -= n;
                if *left == 0 {
                    self.phase = Phase::Done;
                }
            }
            Phase::Chunked(c) => {
                c.left -= n;
                if c.left == 0 {
                    c.state = ChunkState::DataEnd;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
