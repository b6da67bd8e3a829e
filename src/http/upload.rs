//! An HTTP/1 client's request body going to a `proto h2` server while its response
//! comes back. A server may answer before the body ended: a 413 before reading a
//! large upload, or a response it streams while it reads (a call streaming both ways
//! over chunked HTTP/1). As HAProxy 2.6 does, the response is forwarded as it comes
//! and the body keeps going meanwhile; once the server ends or resets its stream the
//! rest of the body is not sent and the client connection closes after the response.
//!
//! The body is sent from the HTTP path's own reads of the server (`read_server`): each
//! waits for whichever comes first, the server's next bytes, room in its window for
//! the body bytes read, or the client's next bytes (a readiness wait: no client read
//! is ever dropped, so nothing is lost on io_uring). The body bytes go from the
//! client's buffer as they are, no copy of their own.

use monoio::time::Instant;

use super::conn::Conn;
use super::framing::BodyProgress;
use super::response::keep_tail;
use crate::h2map::upstream::Duplex;
use crate::h2map::H2Upstream;
use crate::io::{read_into, ReadOutcome, Stream};

/// A request body on its way to a `proto h2` server.
pub(super) struct Upload {
    body: BodyProgress,
    /// `cbuf[sent..end]`: body bytes read from the client, not yet sent (`cpos`: the
    /// first byte the body did not use).
    sent: usize,
    end: usize,
    /// When the body last moved: its waits on either side run from then.
    moved: Instant,
    /// The server took no more of it (its stream ended, was reset, or stayed shut
    /// past `timeout server`).
    refused: bool,
    /// The client broke the body's framing: a 400 if no response went yet.
    pub(super) bad: bool,
}

impl Upload {
    /// Body bytes remain to be read or sent, and the server takes them.
    fn going(&self) -> bool {
        let whole = self.body.is_done() && self.sent == self.end;
        !(self.refused || self.bad || whole)
    }
}

/// What `Conn::drive` stopped on.
pub(super) enum Drove {
    /// The server's next bytes (or its timeout).
    Read(ReadOutcome),
    /// The client left, went quiet past `timeout client`, or broke the body.
    Client,
    /// Nothing more of the body will go (`Upload::going`).
    Over,
}

impl<S: Stream> Conn<S> {
    /// The body (not done: the head went, with what was buffered of it) goes on while
    /// the response is read.
    pub(super) fn start_upload(&mut self, body: BodyProgress) {
        self.upload = Some(Upload {
            body,
            sent: 0,
            end: 0,
            moved: Instant::now(),
            refused: false,
            bad: false,
        });
    }

    /// `deadline` for the server's answer, or `timeout server` after the body's last
    /// bytes went if later (the server's time runs once it has the body).
    pub(super) fn after_upload(&self, deadline: Instant) -> Instant {
        self.upload
            .as_ref()
            .map_or(deadline, |u| deadline.max(u.moved + self.server_timeout))
    }

    /// After the response: the rest of the body goes (the server kept its stream
    /// open for it); `true` once it went whole, `false` if the server or the client
    /// stopped it (the client connection then closes).
    pub(super) async fn finish_upload(&mut self, h2: &mut H2Upstream) -> bool {
        let whole = matches!(self.drive(h2, Instant::now(), false).await, Drove::Over)
            && self
                .upload
                .as_ref()
                .is_some_and(|u| u.body.is_done() && !u.refused);
        self.upload = None;
        whole
    }

    /// Moves the body until the server's next bytes come (only when `read`; by
    /// `deadline`, or `timeout server` after the body last moved if later), the
    /// client fails it, or nothing more of it will go.
    pub(super) async fn drive(
        &mut self,
        h2: &mut H2Upstream,
        deadline: Instant,
        read: bool,
    ) -> Drove {
        let server_timeout = self.server_timeout;
        let client_timeout = self.timeouts().client;
        loop {
            let Some(u) = self.upload.as_mut().filter(|u| u.going()) else {
                return Drove::Over;
            };
            if u.sent < u.end {
                let src = &self.cbuf[u.sent..u.end];
                let until = deadline.max(u.moved + server_timeout);
                let step = h2.read_or_send(&mut self.sbuf, src, read);
                match self.timer.bound(until, step).await {
                    Some(Duplex::Read(r)) => return Drove::Read(ReadOutcome::of(r)),
                    Some(Duplex::Sent(Ok(n))) => {
                        u.sent += n;
                        u.moved = Instant::now();
                    }
                    // The server reset its stream or ended it: the rest stays unsent.
                    Some(Duplex::Sent(Err(_))) => u.refused = true,
                    None if read => return Drove::Read(ReadOutcome::Timeout),
                    None => u.refused = true,
                }
                continue;
            }
            // All that was read went: the client's next bytes, unless the server's
            // come first (a readiness wait, dropped safely).
            let held = self.cbuf.len() - self.cpos;
            keep_tail(&mut self.cbuf, held);
            self.cpos = 0;
            if self.cbuf.len() == self.cbuf.capacity() {
                u.bad = true;
                return Drove::Client;
            }
            let client_until = u.moved + client_timeout;
            if let Some(socket) = self.client.idle_socket() {
                let sbuf = &mut self.sbuf;
                let wait = async {
                    monoio::select! {
                        _ = socket.readable(false) => None,
                        r = h2.read_or_send(sbuf, &[], read) => Some(r),
                    }
                };
                match self.timer.bound(client_until, wait).await {
                    None => return Drove::Client,
                    Some(Some(Duplex::Read(r))) => return Drove::Read(ReadOutcome::of(r)),
                    Some(Some(Duplex::Sent(_))) | Some(None) => {}
                }
            }
            // Readable, or bytes already buffered above the socket (TLS).
            match read_into(
                &mut self.client,
                &mut self.cbuf,
                &mut self.timer,
                client_until,
            )
            .await
            {
                ReadOutcome::Data(_) => {}
                _ => return Drove::Client,
            }
            let Ok(fed) = u.body.feed(&mut self.cbuf) else {
                u.bad = true;
                return Drove::Client;
            };
            self.rec.bytes_in += fed.used as u64;
            (u.sent, u.end) = (0, fed.forward);
            self.cpos = fed.used;
            u.moved = Instant::now();
        }
    }
}
