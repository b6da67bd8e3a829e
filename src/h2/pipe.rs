//! One HTTP/2 stream as the byte stream the HTTP/1 path serves (`io::Stream`): reads
//! give the request translated to HTTP/1.1 (its head, then its body as DATA frames
//! arrive, chunked when it has no length), then the end of the stream; writes take
//! the HTTP/1.1 response and send it as frames (`response::Responder`). So routing,
//! `http-request`/`http-response` rules, balancing, stickiness, retries, the pool and
//! the access log apply to a stream exactly as to an HTTP/1 request: it *is* one, to
//! the HTTP path.
//!
//! Flow control: a DATA frame's bytes are released to the client's window once the
//! HTTP path has read them (so they are on their way to the server), and response
//! bytes are taken only as the client's window opens, so each direction moves at the
//! pace of the slower side, as over HTTP/1.
//!
//! Reads and writes complete or stay pending without a half-done state, so the HTTP
//! path may drop either at a deadline (its timeouts) without losing bytes.

use std::io;

use h2::RecvStream;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;

use super::request::ReqBody;
use super::response::Responder;
use crate::h2map::H2In;

pub(super) struct Pipe {
    /// The request: its translated head, then its body.
    req: H2In,
    res: Responder,
}

impl Pipe {
    pub(super) fn new(head: Vec<u8>, framing: ReqBody, body: RecvStream, res: Responder) -> Self {
        let body = (framing != ReqBody::None).then_some(body);
        Pipe {
            req: H2In::new(head, body, framing == ReqBody::Chunked),
            res,
        }
    }

    async fn read_raw(&mut self, dst: *mut u8, room: usize) -> io::Result<usize> {
        self.req.read_raw(dst, room).await
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.res.abort();
    }
}

impl AsyncReadRent for Pipe {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let (dst, room) = (buf.write_ptr(), buf.bytes_total());
        let res = self.read_raw(dst, room).await;
        if let Ok(n) = res {
            // SAFETY: `read_raw` initialised the first `n` bytes.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the iovecs stay valid while `buf` is held here.
        let Some(mut raw) = (unsafe { RawBuf::new_from_iovec_mut(&mut buf) }) else {
            return (Ok(0), buf);
        };
        let res = self.read_raw(raw.write_ptr(), raw.bytes_total()).await;
        if let Ok(n) = res {
            // SAFETY: `n` bytes of the first iovec were written.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }
}

impl AsyncWriteRent for Pipe {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `buf` owns `bytes_init` initialised bytes at `read_ptr`.
        let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.res.write(src).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the iovecs stay valid while `buf` is held here.
        let res = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => {
                let src = unsafe { std::slice::from_raw_parts(raw.read_ptr(), raw.bytes_init()) };
                self.res.write(src).await
            }
            None => Ok(0),
        };
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.res.finish();
        Ok(())
    }
}

// SAFETY: a `Pipe` is never split: a stream cannot be upgraded to a tunnel (h2 has no
// `Upgrade`, and `CONNECT` is refused before the HTTP path), and the marker only
// lets the tunnel code name the type.
unsafe impl monoio::io::Split for Pipe {}

impl crate::io::Stream for Pipe {
    /// No socket: frames go through the h2 connection (no splice).
    fn socket(&self) -> Option<&monoio::net::TcpStream> {
        None
    }

    /// The request body as frames, for a `proto h2` server (see `Stream::take_h2_body`).
    fn take_h2_body(&mut self) -> Option<RecvStream> {
        self.req.take_body()
    }

    async fn gone(&mut self) {
        self.res.reset().await
    }

    async fn read_until(
        &mut self,
        buf: Vec<u8>,
        deadline: monoio::time::Instant,
    ) -> (io::Result<usize>, Vec<u8>) {
        crate::h2map::read_until(buf, deadline, |dst, room| self.read_raw(dst, room)).await
    }
}
