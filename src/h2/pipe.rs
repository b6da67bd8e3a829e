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

use bytes::Buf;
use h2::RecvStream;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;

use super::request::ReqBody;
use super::response::Responder;

pub(super) struct Pipe {
    /// Request bytes ready to be read: the head, then each chunk or DATA frame.
    stage: Vec<u8>,
    stage_pos: usize,
    /// DATA bytes already in `stage` but not yet released to the client's window.
    unreleased: usize,
    /// The request body still to come (`None`: all of it was staged).
    body: Option<RecvStream>,
    chunked: bool,
    res: Responder,
}

impl Pipe {
    pub(super) fn new(head: Vec<u8>, framing: ReqBody, body: RecvStream, res: Responder) -> Self {
        Pipe {
            stage: head,
            stage_pos: 0,
            unreleased: 0,
            body: (framing != ReqBody::None).then_some(body),
            chunked: framing == ReqBody::Chunked,
            res,
        }
    }

    /// Copies staged request bytes to `dst` (at most `room`), fetching the next DATA
    /// frame first when none are staged. 0: the request is over.
    async fn read_raw(&mut self, dst: *mut u8, room: usize) -> io::Result<usize> {
        if self.stage_pos == self.stage.len() {
            self.release();
            self.stage.clear();
            self.stage_pos = 0;
            self.next_frame().await?;
        }
        let n = (self.stage.len() - self.stage_pos).min(room);
        // SAFETY: the caller's buffer has `room` writable bytes at `dst`.
        unsafe { std::ptr::copy_nonoverlapping(self.stage[self.stage_pos..].as_ptr(), dst, n) };
        self.stage_pos += n;
        if self.stage_pos == self.stage.len() {
            // The HTTP path has the frame's bytes: the client may send more.
            self.release();
        }
        Ok(n)
    }

    /// Gives the client's window back for DATA bytes the HTTP path has read.
    fn release(&mut self) {
        if self.unreleased > 0 {
            if let Some(b) = &mut self.body {
                let _ = b.flow_control().release_capacity(self.unreleased);
            }
            self.unreleased = 0;
        }
    }

    /// Stages the next DATA frame (chunk-framed when chunked), or the end of the body.
    async fn next_frame(&mut self) -> io::Result<()> {
        let Some(body) = &mut self.body else {
            return Ok(());
        };
        loop {
            match body.data().await {
                Some(Ok(data)) if data.is_empty() => continue,
                Some(Ok(data)) => {
                    self.unreleased = data.len();
                    if self.chunked {
                        self.stage
                            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    }
                    self.stage.extend_from_slice(data.chunk());
                    if self.chunked {
                        self.stage.extend_from_slice(b"\r\n");
                    }
                    return Ok(());
                }
                Some(Err(e)) => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, e));
                }
                None => break,
            }
        }
        if self.chunked {
            self.stage.extend_from_slice(b"0\r\n");
            if let Ok(Some(trailers)) = body.trailers().await {
                for (name, value) in &trailers {
                    self.stage.extend_from_slice(name.as_str().as_bytes());
                    self.stage.extend_from_slice(b": ");
                    self.stage.extend_from_slice(value.as_bytes());
                    self.stage.extend_from_slice(b"\r\n");
                }
            }
            self.stage.extend_from_slice(b"\r\n");
        }
        self.body = None;
        Ok(())
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

    async fn read_until(
        &mut self,
        mut buf: Vec<u8>,
        deadline: monoio::time::Instant,
    ) -> (io::Result<usize>, Vec<u8>) {
        let (len, cap) = (buf.len(), buf.capacity());
        // SAFETY: `len..cap` is the vector's spare capacity.
        let dst = unsafe { buf.as_mut_ptr().add(len) };
        let read = self.read_raw(dst, cap - len);
        match monoio::time::timeout_at(deadline, read).await {
            Ok(Ok(n)) => {
                // SAFETY: `read_raw` initialised `n` bytes after `len`.
                unsafe { buf.set_len(len + n) };
                (Ok(n), buf)
            }
            Ok(Err(e)) => (Err(e), buf),
            Err(_) => (Err(io::ErrorKind::TimedOut.into()), buf),
        }
    }
}
