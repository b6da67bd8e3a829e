//! An HTTP/1.1 message written as bytes, sent as HTTP/2 frames: the head is parsed by
//! the side that owns the stream (`HeadSink`: a response to a client, a request to a
//! server), then the body goes out as DATA frames, a chunked body decoded (its trailer
//! fields become a trailing HEADERS frame), and only as the peer's flow-control window
//! allows, so a slow peer holds the writer back through its own writes.

use std::io;

use bytes::Bytes;
use h2::SendStream;
use http::{HeaderMap, HeaderName, HeaderValue};

/// What part of the message the next bytes belong to.
pub enum Phase {
    Head,
    /// This many body bytes are still to come.
    Length(u64),
    Chunked(Chunks),
    /// The body ends when the writer closes the stream.
    UntilClose,
    Done,
}

impl Phase {
    /// The body's phase from the head's framing: `length` (Content-Length), chunked,
    /// or none at all (`bodiless`).
    pub fn body(bodiless: bool, chunked: bool, length: Option<u64>) -> Phase {
        if bodiless || length == Some(0) && !chunked {
            Phase::Done
        } else if chunked {
            Phase::Chunked(Chunks::default())
        } else if let Some(n) = length {
            Phase::Length(n)
        } else {
            Phase::UntilClose
        }
    }
}

/// A chunked body being decoded.
#[derive(Default)]
pub struct Chunks {
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

pub fn broken(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what)
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

/// Copies an HTTP/1.1 head's fields to `dst`, without what HTTP/2 has no place for
/// (connection-specific fields, RFC 9113 §8.2.2, and Transfer-Encoding); `skip` sees
/// each field first and keeps it out when it says so. Returns the body's framing:
/// (chunked, Content-Length).
///
/// `head` is the buffer the fields were parsed from: the values share one copy of the
/// part of it they lie in (a `HeaderValue` holds a `Bytes`), one allocation per head
/// where a value copied on its own was one per field.
pub fn copy_fields<'h>(
    head: &'h [u8],
    src: &[httparse::Header<'h>],
    dst: &mut HeaderMap,
    mut skip: impl FnMut(&HeaderName, &'h [u8]) -> bool,
) -> (bool, Option<u64>) {
    let (mut chunked, mut length) = (false, None);
    // Where a value lies in `head` (`None`: not in it).
    let base = head.as_ptr() as usize;
    let place = |v: &[u8]| {
        let at = (v.as_ptr() as usize).checked_sub(base)?;
        (at + v.len() <= head.len()).then_some(at..at + v.len())
    };
    let span = src
        .iter()
        .map(|h| place(h.value))
        .try_fold(None::<std::ops::Range<usize>>, |acc, r| {
            let r = r?;
            Some(Some(match acc {
                Some(a) => a.start.min(r.start)..a.end.max(r.end),
                None => r,
            }))
        })
        .flatten();
    let shared = span.map(|r| (r.start, Bytes::copy_from_slice(&head[r])));
    for h in src {
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
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            }
            _ => {}
        }
        if skip(&name, h.value) {
            continue;
        }
        let value = match (&shared, place(h.value)) {
            (Some((start, all)), Some(r)) => {
                HeaderValue::from_maybe_shared(all.slice(r.start - start..r.end - start))
            }
            _ => HeaderValue::from_bytes(h.value),
        };
        if let Ok(value) = value {
            dst.append(name, value);
        }
    }
    (chunked, length)
}

/// What a side makes of the message head once it is whole.
pub enum Head {
    /// Not whole yet: the bytes were kept.
    Partial,
    /// An interim response (nothing to send): this many of the kept bytes were it.
    Interim(usize),
    /// Sent as HEADERS: this many of the kept bytes were the head; the body follows
    /// on `send` (`None` when the HEADERS frame ended the stream) in `phase`.
    Sent {
        len: usize,
        send: Option<SendStream<Bytes>>,
        phase: Phase,
    },
}

/// The side-specific part: parsing the head and sending it.
pub trait HeadSink {
    /// `head` holds every head byte so far.
    fn head(&mut self, head: &[u8]) -> io::Result<Head>;
}

/// What the next bytes of a write are.
enum Step {
    /// So many bytes were consumed (head, chunk framing) without a DATA frame.
    Framing(usize),
    /// The next so many bytes are body data.
    Data(usize),
}

/// One HTTP/1.1 message going out as frames.
pub struct H1Out {
    send: Option<SendStream<Bytes>>,
    phase: Phase,
    head: Vec<u8>,
}

impl Default for H1Out {
    fn default() -> Self {
        H1Out {
            send: None,
            phase: Phase::Head,
            head: Vec::new(),
        }
    }
}

impl H1Out {
    /// The message has been sent whole.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The head went out: the body (if any) is sent elsewhere.
    pub fn is_headed(&self) -> bool {
        !matches!(self.phase, Phase::Head)
    }

    /// Ends the message here, unsent.
    pub fn done(&mut self) {
        self.phase = Phase::Done;
    }

    /// The stream the body goes on, once the head went.
    pub fn send_mut(&mut self) -> Option<&mut SendStream<Bytes>> {
        self.send.as_mut()
    }

    /// Consumes what it can of `src` (at least one byte, waiting for flow-control
    /// window when body data is next).
    pub async fn write(&mut self, src: &[u8], sink: &mut impl HeadSink) -> io::Result<usize> {
        let mut used = 0;
        while used < src.len() {
            match self.step(&src[used..], sink)? {
                Step::Framing(n) => used += n,
                Step::Data(_) if used > 0 => return Ok(used),
                Step::Data(n) => {
                    let sent = self.send_data(&src[used..used + n]).await?;
                    self.data_sent(sent as u64);
                    return Ok(sent);
                }
            }
        }
        Ok(used)
    }

    /// The writer is done: a body that runs until the close ends here.
    pub fn finish(&mut self) {
        if let Phase::UntilClose = self.phase {
            if let Some(s) = &mut self.send {
                let _ = s.send_data(Bytes::new(), true);
            }
            self.phase = Phase::Done;
        }
    }

    /// The message is cut short: its stream is reset with `reason` (so the peer
    /// cannot take it for whole); `false` if there was no body stream to reset.
    pub fn abort(&mut self, reason: h2::Reason) -> bool {
        self.finish();
        if self.is_done() {
            return true;
        }
        self.phase = Phase::Done;
        match &mut self.send {
            Some(s) => {
                s.send_reset(reason);
                true
            }
            None => false,
        }
    }

    /// Resets the stream with `reason`, whatever was sent of the message (the
    /// exchange is abandoned: the peer stops working on it).
    pub fn reset(&mut self, reason: h2::Reason) {
        self.phase = Phase::Done;
        if let Some(s) = &mut self.send {
            s.send_reset(reason);
        }
    }

    fn step(&mut self, src: &[u8], sink: &mut impl HeadSink) -> io::Result<Step> {
        match &mut self.phase {
            Phase::Head => self.head_bytes(src, sink),
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
            Phase::Done => Err(broken("bytes after the end of the message")),
        }
    }

    fn head_bytes(&mut self, src: &[u8], sink: &mut impl HeadSink) -> io::Result<Step> {
        let before = self.head.len();
        self.head.extend_from_slice(src);
        match sink.head(&self.head)? {
            Head::Partial => Ok(Step::Framing(src.len())),
            Head::Interim(len) => {
                self.head.clear();
                Ok(Step::Framing(len - before))
            }
            Head::Sent { len, send, phase } => {
                self.send = send;
                self.phase = phase;
                self.head = Vec::new();
                Ok(Step::Framing(len - before))
            }
        }
    }

    /// Sends up to `data.len()` bytes as the window allows; how many went.
    async fn send_data(&mut self, data: &[u8]) -> io::Result<usize> {
        let send = self.send.as_mut().ok_or_else(|| broken("no stream"))?;
        let room = reserve(send, data.len()).await?;
        let last = matches!(self.phase, Phase::Length(left) if left == room as u64);
        send.send_data(Bytes::copy_from_slice(&data[..room]), last)
            .map_err(|_| broken("stream reset"))?;
        Ok(room)
    }

    fn data_sent(&mut self, n: u64) {
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
    }
}

/// Waits until the peer's window takes some of `want` bytes on `send`; how many.
pub async fn reserve(send: &mut SendStream<Bytes>, want: usize) -> io::Result<usize> {
    send.reserve_capacity(want);
    loop {
        match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(0)) => continue,
            Some(Ok(n)) => return Ok(n.min(want)),
            Some(Err(_)) | None => return Err(broken("stream reset")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_values_and_share_one_copy() {
        let head = b"HTTP/1.1 200 OK\r\nServer: s\r\nConnection: keep-alive\r\nX-A: one\r\nTransfer-Encoding: chunked\r\nX-B:  two  \r\nContent-Length: 12\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut res = httparse::Response::new(&mut slots);
        assert!(res.parse(head).unwrap().is_complete());
        // How far apart the first and the last value kept lie in the head.
        let at = |i: usize| res.headers[i].value.as_ptr() as usize;
        let apart = at(5) - at(0);
        let mut map = HeaderMap::new();
        let (chunked, length) = copy_fields(head, res.headers, &mut map, |n, _| n == "x-a");
        assert!(chunked);
        assert_eq!(length, Some(12));
        let got: Vec<(String, String)> = map
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("server".to_string(), "s".to_string()),
                ("x-b".to_string(), "two".to_string()),
                ("content-length".to_string(), "12".to_string()),
            ]
        );
        // One copy: the values lie as far apart in it as in the head, and not in the
        // head itself.
        let ptr = |n: &str| map[n].as_bytes().as_ptr() as usize;
        assert_eq!(ptr("content-length") - ptr("server"), apart);
        assert_ne!(ptr("server"), at(0));
    }

    #[test]
    fn fields_parsed_elsewhere_are_copied_one_by_one() {
        let parsed = b"GET / HTTP/1.1\r\nX-A: one\r\n\r\n".to_vec();
        let mut slots = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut slots);
        assert!(req.parse(&parsed).unwrap().is_complete());
        let mut map = HeaderMap::new();
        // A buffer the values do not lie in: each is copied on its own.
        copy_fields(b"unrelated", req.headers, &mut map, |_, _| false);
        assert_eq!(map["x-a"], "one");
    }
}
