//! HTTP/2 frame kinds (RFC 9113 §6) and frame boundaries (`Scan`), as both sides of
//! the proxy follow the frames passing under the h2 crate: the client side's flood
//! guard (`h2::flood`), and the frames a `proto h2` server sends, counted by kind as
//! they pass (`Tallied`: the backend's `h2_*_rcvd` columns of `show stat`, as
//! HAProxy's h2 module counts them on backend connections).

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

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

/// Frames received, by kind: HEADERS, DATA, SETTINGS, RST_STREAM, GOAWAY.
#[derive(Default)]
pub struct FrameTally([Cell<u64>; 5]);

impl FrameTally {
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
        self.0[i].set(self.0[i].get() + 1);
    }

    pub fn figures(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].get())
    }
}

/// An HTTP/2 connection's transport whose received frames are counted in `tally`
/// (reads go through untouched; their frame headers are followed).
pub struct Tallied<T> {
    io: T,
    tally: Rc<FrameTally>,
    /// Where the frames it read so far end.
    scan: Scan,
}

impl<T> Tallied<T> {
    pub fn new(io: T, tally: Rc<FrameTally>) -> Self {
        Tallied {
            io,
            tally,
            scan: Scan::default(),
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        let tally = &self.tally;
        self.scan.feed(bytes, |e| {
            if let Event::Head(h) = e {
                tally.received(h.kind, h.stream);
            }
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

super::write_through!(Tallied);

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
            assert_eq!(tally.figures(), [1, 1, 1, 1, 1], "pieces of {step}");
        }
    }
}
