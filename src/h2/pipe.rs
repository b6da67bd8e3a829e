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
use std::rc::Rc;

use h2::RecvStream;

use super::request::ReqBody;
use super::response::Responder;
use super::Session;
use crate::h2map::H2In;

pub(super) struct Pipe {
    /// The request: its translated head, then its body.
    req: H2In,
    res: Responder,
    /// The connection's shared variables live in its session.
    session: Rc<Session>,
}

impl Pipe {
    pub(super) fn new(
        head: Vec<u8>,
        framing: ReqBody,
        body: RecvStream,
        res: Responder,
        session: Rc<Session>,
    ) -> Self {
        let body = (framing != ReqBody::None).then_some(body);
        Pipe {
            req: H2In::new(head, body, framing == ReqBody::Chunked),
            res,
            session,
        }
    }

    async fn read_raw(&mut self, dst: *mut u8, room: usize) -> io::Result<usize> {
        self.req.read_raw(dst, room).await
    }

    async fn write_raw(&mut self, src: &[u8]) -> io::Result<usize> {
        self.res.write(src).await
    }

    /// The HTTP path is done writing (see `rent_io`).
    fn finish(&mut self) {
        self.res.finish();
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.res.abort();
    }
}

crate::h2map::rent_io!(Pipe);

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

    fn shared_vars(&self) -> Option<&std::cell::RefCell<crate::rules::SharedVars>> {
        Some(&self.session.vars)
    }

    async fn read_until(
        &mut self,
        buf: Vec<u8>,
        deadline: monoio::time::Instant,
    ) -> (io::Result<usize>, Vec<u8>) {
        crate::h2map::read_until(buf, deadline, |dst, room| self.read_raw(dst, room)).await
    }
}
