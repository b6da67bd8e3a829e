//! HTTP/2 frame kinds (RFC 9113 §6), as both sides of the proxy read frame headers
//! under the h2 crate, and the frames a `proto h2` server sends, counted by kind as
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
    /// The frame header being read, and how much of it came.
    head: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: usize,
}

impl<T> Tallied<T> {
    pub fn new(io: T, tally: Rc<FrameTally>) -> Self {
        Tallied {
            io,
            tally,
            head: [0; 9],
            have: 0,
            skip: 0,
        }
    }

    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                let h = self.head;
                self.have = 0;
                self.skip = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                self.tally.received(h[3], stream);
            }
        }
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
