//! HTTP/2 frame kinds (RFC 9113 §6) and frame boundaries (`Scan`), as both sides of
//! the proxy follow the frames passing under the h2 crate: the client side's flood
//! guard (`h2::flood`), and a `proto h2` server connection's frames (`Tallied`: the
//! backend's `h2_*` columns of `show stat`, as HAProxy 2.6's h2 module counts them on
//! backend connections): those received by kind, and the error frames sent.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const GOAWAY: u8 = 7;

/// A frame header as it passed.
#[derive(Clone, Copy)]
pub struct Head {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

/// Frame boundaries of one direction: the header being read, then payload bytes
/// to skip. A GOAWAY's first payload bytes are kept (its code and debug data), and a
/// RST_STREAM's (its code).
#[derive(Default)]
pub struct Scan {
    head: [u8; 9],
    have: u8,
    skip: u32,
    /// The frame whose payload is passing: its type and stream.
    cur: Option<(u8, u32)>,
    goaway: [u8; 32],
    goaway_len: u8,
}

/// An event of a scan: a frame header, or the end of a GOAWAY's kept payload.
pub enum Event<'a> {
    Head(Head),
    GoAway(&'a [u8]),
    /// A RST_STREAM's stream and error code.
    Reset(u32, u32),
}

impl Scan {
    /// A scan that first passes `skip` bytes (the client's 24-byte preface).
    pub fn after(skip: u32) -> Scan {
        Scan {
            skip,
            ..Scan::default()
        }
    }

    /// Between two frames (so a frame of our own may go in).
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }

    /// Bytes still to write before the next boundary: the rest of the header (at
    /// most; its payload follows), or of the payload. 0: at a boundary.
    pub fn to_boundary(&self) -> usize {
        if self.have > 0 {
            9 - self.have as usize
        } else {
            self.skip as usize
        }
    }

    /// Walks `bytes`, calling `on` for each header and GOAWAY payload completed;
    /// stops early when `on` says so.
    pub fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(Event<'_>) -> bool) -> bool {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = (self.skip as usize).min(bytes.len());
                if let Some((GOAWAY | RST_STREAM, _)) = self.cur {
                    let at = self.goaway_len as usize;
                    let take = n.min(self.goaway.len() - at);
                    self.goaway[at..at + take].copy_from_slice(&bytes[..take]);
                    self.goaway_len += take as u8;
                }
                self.skip -= n as u32;
                bytes = &bytes[n..];
                if self.skip == 0 && !self.end_payload(&mut on) {
                    return false;
                }
                continue;
            }
            let n = (9 - self.have as usize).min(bytes.len());
            self.head[self.have as usize..self.have as usize + n].copy_from_slice(&bytes[..n]);
            self.have += n as u8;
            bytes = &bytes[n..];
            if self.have < 9 {
                break;
            }
            self.have = 0;
            let h = &self.head;
            let head = Head {
                len: u32::from(h[0]) << 16 | u32::from(h[1]) << 8 | u32::from(h[2]),
                kind: h[3],
                flags: h[4],
                stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            };
            self.skip = head.len;
            self.cur = Some((head.kind, head.stream));
            self.goaway_len = 0;
            if !on(Event::Head(head)) {
                return false;
            }
            if self.skip == 0 && !self.end_payload(&mut on) {
                return false;
            }
        }
        true
    }

    fn end_payload(&mut self, on: &mut impl FnMut(Event<'_>) -> bool) -> bool {
        match self.cur.take() {
            Some((GOAWAY, _)) => on(Event::GoAway(&self.goaway[..self.goaway_len as usize])),
            Some((RST_STREAM, stream)) => on(Event::Reset(
                stream,
                error_code(&self.goaway[..self.goaway_len as usize]),
            )),
            _ => true,
        }
    }
}

/// The error code at the start of `payload` (a RST_STREAM's; a GOAWAY's after its
/// last stream id); 0 (NO_ERROR) when cut short.
pub fn error_code(payload: &[u8]) -> u32 {
    payload
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A `proto h2` server connection's counters, in `show stat`'s order: frames
/// received (HEADERS, DATA, SETTINGS, RST_STREAM, GOAWAY), protocol errors detected
/// (connection, stream), error frames sent (RST_STREAM, GOAWAY).
#[derive(Default)]
pub struct FrameTally([Cell<u64>; 9]);

/// Error codes (RFC 9113 §7) that are no error of the peer's: a stream or connection
/// the proxy gave up itself, or a clean end.
const NO_ERROR: u32 = 0x0;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The error codes of the peer's protocol faults, which HAProxy 2.6 counts as
/// protocol errors detected: PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED and
/// FRAME_SIZE_ERROR.
fn protocol_fault(code: u32) -> bool {
    matches!(code, 0x1 | 0x3 | 0x5 | 0x6)
}

impl FrameTally {
    fn inc(&self, i: usize) {
        self.0[i].set(self.0[i].get() + 1);
    }

    fn received(&self, kind: u8, stream: u32) {
        let i = match kind {
            HEADERS => 0,
            // DATA on stream 0 is a connection error, not counted (as HAProxy).
            DATA if stream != 0 => 1,
            SETTINGS => 2,
            RST_STREAM => 3,
            GOAWAY => 4,
            _ => return,
        };
        self.inc(i);
    }

    /// An error frame the h2 crate sent. As HAProxy 2.6: a RST_STREAM counts unless
    /// it ends a stream the proxy gave up itself (CANCEL: the client left; NO_ERROR:
    /// the response came whole), a GOAWAY unless it is a clean or calming end; a
    /// protocol fault of the server's counts as a protocol error detected too.
    fn sent(&self, event: Event<'_>) {
        let (code, error, sent) = match event {
            Event::Reset(_, code) if !matches!(code, NO_ERROR | CANCEL) => (code, 6, 7),
            Event::GoAway(p) => {
                let code = p.get(4..).map_or(NO_ERROR, error_code);
                if matches!(code, NO_ERROR | REFUSED_STREAM | CANCEL | ENHANCE_YOUR_CALM) {
                    return;
                }
                (code, 5, 8)
            }
            _ => return,
        };
        self.inc(sent);
        if protocol_fault(code) {
            self.inc(error);
        }
    }

    pub fn figures(&self) -> [u64; 9] {
        std::array::from_fn(|i| self.0[i].get())
    }
}

/// The first `n` bytes of `bufs`, slice by slice: what a vectored write wrote.
pub fn written<'a>(
    bufs: &'a [io::IoSlice<'_>],
    mut n: usize,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    bufs.iter().map_while(move |b| {
        let take = n.min(b.len());
        n -= take;
        (take > 0).then(|| &b[..take])
    })
}

/// An HTTP/2 connection's transport whose frames are counted in `tally` (reads and
/// writes go through untouched; their frame headers are followed).
pub struct Tallied<T> {
    io: T,
    tally: Rc<FrameTally>,
    /// Where the frames it read so far end, and those it wrote.
    rx: Scan,
    tx: Scan,
    /// Set once its write side is shut: the bound on reading to the server's FIN.
    linger: Option<Pin<Box<monoio::time::Sleep>>>,
}

/// How long a closing connection reads what the server still sends before its FIN.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

impl<T> Tallied<T> {
    pub fn new(io: T, tally: Rc<FrameTally>) -> Self {
        Tallied {
            io,
            tally,
            rx: Scan::default(),
            // Its writes start with the client preface.
            tx: Scan::after(24),
            linger: None,
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        let tally = &self.tally;
        self.rx.feed(bytes, |e| {
            if let Event::Head(h) = e {
                tally.received(h.kind, h.stream);
            }
            true
        });
    }

    fn wrote(&mut self, bytes: &[u8]) {
        let tally = &self.tally;
        self.tx.feed(bytes, |e| {
            tally.sent(e);
            true
        });
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tallied<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            this.scan(&buf.filled()[before..]);
        }
        res
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tallied<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write(cx, src);
        if let Poll::Ready(Ok(n)) = res {
            this.wrote(&src[..n]);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            for b in written(bufs, n) {
                this.wrote(b);
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// Shuts the write side (after the h2 crate's GOAWAY), then reads to the server's
    /// FIN, for at most `LINGER`, before the connection may close. The server may
    /// answer the GOAWAY with its own; closing a socket with bytes unread resets the
    /// connection, and the server would see an error instead of a clean end.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(monoio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 256];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let n = buf.filled().len();
                    this.scan(&scratch[..n]);
                }
                // The server's FIN, or an error: nothing more to wait for.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => break,
            }
        }
        let linger = this
            .linger
            .as_mut()
            .expect("set once the write side is shut");
        linger.as_mut().poll(cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_are_counted_by_kind() {
        let frame = |kind: u8, stream: u32, len: usize| {
            let mut f = (len as u32).to_be_bytes()[1..].to_vec();
            f.extend_from_slice(&[kind, 0]);
            f.extend_from_slice(&stream.to_be_bytes());
            f.extend(std::iter::repeat_n(0xAA, len));
            f
        };
        let mut wire = frame(SETTINGS, 0, 12);
        wire.extend(frame(HEADERS, 1, 30));
        wire.extend(frame(DATA, 1, 100));
        wire.extend(frame(DATA, 0, 3));
        wire.extend(frame(6, 0, 8));
        wire.extend(frame(RST_STREAM, 1, 4));
        wire.extend(frame(GOAWAY, 0, 8));
        for step in [1, 5, 9, 17, wire.len()] {
            let tally = Rc::new(FrameTally::default());
            let mut t = Tallied::new((), tally.clone());
            for piece in wire.chunks(step) {
                t.scan(piece);
            }
            assert_eq!(tally.figures()[..5], [1, 1, 1, 1, 1], "pieces of {step}");
        }
    }

    #[test]
    fn error_frames_sent_are_counted_as_haproxy_does() {
        let rst = |code: u32| {
            let mut f = vec![0, 0, 4, RST_STREAM, 0, 0, 0, 0, 1];
            f.extend_from_slice(&code.to_be_bytes());
            f
        };
        let goaway = |code: u32| {
            let mut f = vec![0, 0, 8, GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            f.extend_from_slice(&code.to_be_bytes());
            f
        };
        // NO_ERROR and CANCEL resets and clean or calming GOAWAYs are not errors.
        // The client preface first, as the h2 crate writes it.
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        wire.extend([rst(0), rst(8), rst(1), rst(2)].concat());
        wire.extend([goaway(0), goaway(0xb), goaway(1), goaway(2)].concat());
        let tally = Rc::new(FrameTally::default());
        let mut t = Tallied::new((), tally.clone());
        let slices: Vec<_> = wire.chunks(7).map(io::IoSlice::new).collect();
        for b in written(&slices, wire.len()) {
            t.wrote(b);
        }
        // Connection, stream protocol errors; RST_STREAM, GOAWAY sent on errors.
        assert_eq!(tally.figures()[5..], [1, 1, 2, 2]);
        assert_eq!(
            written(&slices, 10).map(<[u8]>::len).collect::<Vec<_>>(),
            [7, 3]
        );
    }
}
