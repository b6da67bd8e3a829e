//! The response side of an exchange: read and parse the server's head (interim 1xx
//! answers passed on to the client: `100 Continue` when it asked for one, `103 Early
//! Hints` and the rest to HTTP/1.1 clients), then send it and stream the body back to
//! the client. Also the wait of an `Expect: 100-continue` request, whose body comes
//! once the server said to go ahead (or the client tired of waiting).

use super::conn::{Conn, Stop};
use super::framing::{BodyProgress, Framing};
use super::head::{self, Parsed};
use super::reply::Reply;
use super::request::{RequestMeta, SendError};
use super::upload::Drove;
use crate::bufpool::PooledBuf;
use crate::config::compression::Algo;
use crate::dispatch::ServerConn;
use crate::io::{read_into, write_range, ReadOutcome, Stream};
use crate::record::Term;
use crate::stats::Counters;

/// A body's read buffer once it proves large: a TLS batch (`tls::stream`).
const BULK_BUF: usize = crate::tls::stream::BATCH_SIZE;
/// From this many bytes left (or an unknown length), a body is read in `BULK_BUF`s.
const BULK_MIN: u64 = 64 * 1024;
use monoio::time::Instant;

/// What the server's bytes at the start of `sbuf` were.
enum Head {
    Final(ResponseMeta),
    /// An interim response, removed from `sbuf`; `pass`: its head for the client is in
    /// `out`, to be passed on.
    Interim {
        status: u16,
        pass: bool,
    },
    Partial,
}

/// Who wrote the response head a server connection gives: `h2map` for an HTTP/2
/// server's stream.
fn origin(up: &ServerConn) -> head::Origin {
    match up.stream {
        crate::tls::MaybeTls::H2(_) => head::Origin::Http2,
        _ => head::Origin::Http1,
    }
}

impl<S: Stream> Conn<S> {
    /// Reads and parses the response head (interim 1xx responses passed on or
    /// skipped); the head for the client is left in `out`, the body bytes that came
    /// with it in `sbuf`. `sbuf` may already hold the start of the answer.
    pub(super) async fn read_response_head(
        &mut self,
        up: &mut ServerConn,
        req: &RequestMeta,
        keep_alive: bool,
        sent: Instant,
    ) -> Result<ResponseMeta, HeadError> {
        let deadline = sent + self.server_timeout;
        let mut received_any = !self.sbuf.is_empty();
        loop {
            if !self.sbuf.is_empty() {
                match self.next_head(req, keep_alive, origin(up))? {
                    Head::Final(r) => return Ok(r),
                    Head::Interim { pass, .. } => {
                        if pass {
                            self.pass_interim().await?;
                        }
                        continue;
                    }
                    Head::Partial => {}
                }
            }
            let Some(read) = self.read_server(up, deadline).await else {
                return Err(HeadError::ClientGone);
            };
            match read {
                ReadOutcome::Data(n) => received_any |= n > 0,
                ReadOutcome::Timeout => return Err(HeadError::Timeout),
                ReadOutcome::Eof | ReadOutcome::Error
                    if !received_any && !up.stream.malformed() =>
                {
                    return Err(HeadError::NothingReceived)
                }
                ReadOutcome::Eof | ReadOutcome::Error => return Err(HeadError::Invalid),
            }
        }
    }

    /// Reads the server's next bytes into `sbuf`; `None` as soon as an HTTP/2 client
    /// gave the request up meanwhile (`Stream::gone`: its stream reset).
    pub(super) async fn read_server(
        &mut self,
        up: &mut ServerConn,
        mut deadline: Instant,
    ) -> Option<ReadOutcome> {
        if let (Some(_), crate::tls::MaybeTls::H2(h2)) = (&self.upload, &mut up.stream) {
            match self.drive(h2, deadline, true).await {
                Drove::Read(r) => return Some(r),
                Drove::Client => return None,
                Drove::Over => deadline = self.after_upload(deadline),
            }
        }
        let read = read_into(&mut up.stream, &mut self.sbuf, &mut self.timer, deadline);
        if self.txn.h2.is_none() {
            return Some(read.await);
        }
        let gone = self.client.gone();
        monoio::select! {
            r = read => Some(r),
            _ = gone => None,
        }
    }

    /// Parses what `sbuf` holds of the next response head. An interim response leaves
    /// `sbuf`, and is to go to an HTTP/1.1 client (a `100 Continue` only if it sent
    /// `Expect: 100-continue`, as RFC 9110 §15.2 has it).
    #[inline(always)]
    fn next_head(
        &mut self,
        req: &RequestMeta,
        keep_alive: bool,
        origin: head::Origin,
    ) -> Result<Head, HeadError> {
        let mut client_keep_alive = keep_alive;
        match head::parse_response(
            &self.sbuf,
            origin,
            self.shard.config.limits.max_headers,
            req.is_head,
            req.tunnel,
            req.minor,
            &mut client_keep_alive,
            &mut self.out,
        ) {
            Parsed::Done(r) if (100..200).contains(&r.status) && !r.upgrade => {
                self.sbuf.drain(..r.head_len);
                Ok(Head::Interim {
                    status: r.status,
                    pass: req.minor == 1 && (r.status != 100 || req.expect_continue),
                })
            }
            Parsed::Done(r) => Ok(Head::Final(ResponseMeta {
                status: r.status,
                head_len: r.head_len,
                framing: r.framing,
                reusable: r.reusable,
                client_keep_alive,
                upgrade: r.upgrade,
                names: r.names,
                minor: r.minor,
            })),
            Parsed::Reject(_) => Err(HeadError::Invalid),
            Parsed::Partial if self.sbuf.len() == self.sbuf.capacity() => Err(HeadError::Invalid),
            Parsed::Partial => Ok(Head::Partial),
        }
    }

    /// Writes the interim head in `out` to the client.
    async fn pass_interim(&mut self) -> Result<(), HeadError> {
        let len = self.out.len();
        let deadline = Self::deadline(self.timeouts().client);
        write_range(
            &mut self.client,
            &mut self.out,
            0..len,
            &mut self.timer,
            deadline,
        )
        .await
        .map_err(|_| HeadError::ClientGone)?;
        self.rec.bytes_out += len as u64;
        Ok(())
    }

    /// The request head went out with `Expect: 100-continue` and its client waits to
    /// send the body: wait for whichever comes first, the server's answer or the body
    /// (a client stops waiting after a while). A `100 Continue` is passed on and the
    /// body follows (`Ok(true)`); a final answer ends the wait with the body unsent
    /// (`Ok(false)`, its head left in `sbuf`). Readiness waits only: nothing is read
    /// that could be lost when the other side wins.
    pub(super) async fn await_continue(
        &mut self,
        up: &mut ServerConn,
        req: &RequestMeta,
        deadline: Instant,
    ) -> Result<bool, SendError> {
        enum First {
            Client,
            Server,
        }
        // A stream that buffers what it read (TLS, either side) cannot be waited on
        // this way: the body goes at once, and the server's `100` reaches the client
        // after it.
        loop {
            let (Some(client), crate::tls::MaybeTls::Plain(server)) =
                (self.client.socket(), &up.stream)
            else {
                return Ok(true);
            };
            let ready = self
                .timer
                .bound(deadline, async {
                    monoio::select! {
                        _ = client.readable(false) => First::Client,
                        _ = server.readable(false) => First::Server,
                    }
                })
                .await;
            match ready {
                None => return Err(SendError::Timeout),
                Some(First::Client) => return Ok(true),
                Some(First::Server) => {}
            }
            match read_into(&mut up.stream, &mut self.sbuf, &mut self.timer, deadline).await {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Timeout => return Err(SendError::Timeout),
                ReadOutcome::Eof | ReadOutcome::Error => return Err(SendError::Server),
            }
            loop {
                match self.next_head(req, false, origin(up)) {
                    Ok(Head::Interim { status, pass }) => {
                        if pass && self.pass_interim().await.is_err() {
                            return Err(SendError::Client);
                        }
                        if status == 100 {
                            return Ok(true);
                        }
                    }
                    Ok(Head::Final(_)) => return Ok(false),
                    Ok(Head::Partial) => break,
                    Err(_) => return Err(SendError::BadResponse),
                }
            }
        }
    }

    /// Sends the response head and streams the body, compressed with `comp` (chosen
    /// for the request: `RequestMeta::comp`) if the response allows it. Returns
    /// (client may stay open, upstream may be pooled).
    pub(super) async fn forward_response(
        &mut self,
        up: &mut ServerConn,
        res: ResponseMeta,
        comp: Option<Algo>,
    ) -> Result<(bool, bool), Stop> {
        let client_timeout = self.timeouts().client;
        let server_timeout = self.server_timeout;
        // Decided on the server's head, before the response rules (as HAProxy does).
        let comp = comp.filter(|_| self.compresses(&res));
        // `http-response` and `http-after-response` rules, response captures.
        self.txn.names[1] = res.names;
        if self.response_rules(up.server)? {
            // A rule answered instead: the server's body is never read, so its
            // connection is not reused.
            let len = self.out.len();
            self.rec.bytes_out += len as u64;
            let deadline = Instant::now() + client_timeout;
            write_range(
                &mut self.client,
                &mut self.out,
                0..len,
                &mut self.timer,
                deadline,
            )
            .await
            .map_err(|_| Stop::Close)?;
            return Ok((false, false));
        }
        if let Some(ck) = self
            .rec
            .backend
            .and_then(|b| self.shard.config.backends[b].cookie.as_ref())
        {
            super::cookie::response(ck, &mut self.persist, up.server, res.status, &mut self.out);
            self.rec.cookie = self.persist.log_chars();
        }
        if let Some(algo) = comp {
            super::compress::rewrite_head(&mut self.out, algo, res.framing);
        }
        if let Some(map) = &self.shard.config.frontends[self.frontend].h1_case {
            super::edit::case_adjust(&mut self.out, map);
        }
        if let Some(algo) = comp {
            // Boxed: the common, uncompressed exchange does not carry its state.
            return Box::pin(self.forward_compressed(up, res, algo)).await;
        }
        let mut body = BodyProgress::new(res.framing, self.shard.config.limits.max_chunks);
        let rest = &mut self.sbuf[res.head_len..];
        let Ok(fed) = body.feed(rest) else {
            // Nothing went to the client yet: it gets a 502 rather than a bare close.
            self.bad_response(up.server);
            return Err(Stop::Reply(Reply::BadGateway));
        };
        // Bytes past the end of the response mean the server is out of step: never reuse.
        let mut reusable = res.reusable && (!body.is_done() || fed.used == rest.len());
        self.out.extend_from_slice(&rest[..fed.forward]);
        // What the body left unused while not done (a trailer line cut by the read)
        // waits for the next read.
        let mut held = if body.is_done() {
            0
        } else {
            rest.len() - fed.used
        };
        let len = self.out.len();
        self.rec.bytes_out += len as u64;
        write_range(
            &mut self.client,
            &mut self.out,
            0..len,
            &mut self.timer,
            self.rec.first_byte.unwrap_or_else(Instant::now) + client_timeout,
        )
        .await
        .map_err(|_| Stop::Close)?;
        // Unless `no option splice-auto` or `nosplice` say otherwise (`config::splice`).
        let may_splice = self.rec.backend.is_some_and(|b| {
            self.shard.config.splice(self.frontend, b).response != crate::config::SpliceMode::Off
        });
        while !body.is_done() {
            // A large Content-Length body goes from socket to socket through a pipe
            // (plain sockets only: a TLS stream needs the bytes).
            let rest = body
                .remaining_length()
                .filter(|&n| may_splice && n >= crate::splice::SPLICE_MIN);
            if let (Some(rest), Some(to), Some(from)) =
                (rest, self.client.socket(), up.stream.socket())
            {
                let pipes = self.shard.pipes.clone();
                let (rt, wt) = (server_timeout, client_timeout);
                match pipes.forward(from, to, rest, rt, wt, &mut self.timer).await {
                    Ok(()) => {
                        body.skip(rest);
                        self.rec.bytes_out += rest;
                        let st = &self.shard.stats;
                        crate::stats::Counters::add(&st.frontends[self.frontend].spliced_out, rest);
                        if let Some(b) = self.rec.backend {
                            crate::stats::Counters::add(&st.backend(b).spliced_out, rest);
                        }
                        break;
                    }
                    Err(crate::splice::SpliceError::NoPipe) => {}
                    Err(_) => return Err(Stop::Close),
                }
            }
            keep_tail(&mut self.sbuf, held);
            // A body too large to splice (TLS, chunked) is read in larger buffers:
            // fewer reads, and a TLS client gets several records per write.
            if self.sbuf.capacity() < BULK_BUF
                && body.remaining_length().is_none_or(|n| n >= BULK_MIN)
            {
                let mut bulk = PooledBuf::take(BULK_BUF);
                bulk.extend_from_slice(&self.sbuf);
                self.sbuf = bulk;
            }
            if self.sbuf.len() == self.sbuf.capacity() {
                return Err(Stop::Close);
            }
            let read = self.read_server(up, Self::deadline(server_timeout));
            match read.await.ok_or(Stop::Close)? {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Eof => {
                    body.on_eof().map_err(|_| Stop::Close)?;
                    reusable = false;
                    break;
                }
                ReadOutcome::Timeout | ReadOutcome::Error => return Err(Stop::Close),
            }
            let fed = body.feed(&mut self.sbuf).map_err(|_| Stop::Close)?;
            self.rec.bytes_out += fed.forward as u64;
            reusable &= !body.is_done() || fed.used == self.sbuf.len();
            held = self.sbuf.len() - fed.used;
            write_range(
                &mut self.client,
                &mut self.sbuf,
                0..fed.forward,
                &mut self.timer,
                Self::deadline(client_timeout),
            )
            .await
            .map_err(|_| Stop::Close)?;
        }
        Ok((res.client_keep_alive, reusable))
    }

    /// Whether the response whose head is in `out` may be compressed.
    fn compresses(&self, res: &ResponseMeta) -> bool {
        let cfg = &self.shard.config;
        let fe = cfg.frontends[self.frontend].compression.as_deref();
        let be = self
            .rec
            .backend
            .and_then(|b| cfg.backends[b].compression.as_deref());
        let r = super::compress::Response {
            status: res.status,
            framing: res.framing,
            // The request's side was checked when its algorithm was chosen.
            http11: res.minor == 1,
        };
        super::compress::response_allows(fe, be, &r, &self.out)
    }

    /// Counts a response that broke its framing against its server, as a bad head is.
    pub(super) fn bad_response(&self, server: u32) {
        if let Some(b) = self.rec.backend {
            Counters::inc(&self.shard.stats.backend(b).eresp);
            Counters::inc(&self.shard.stats.server(b, server as usize).eresp);
            self.shard.upstreams.report_failure(b, server);
        }
    }
}

/// Keeps the last `n` bytes of `buf`, moved to its start.
pub(super) fn keep_tail(buf: &mut Vec<u8>, n: usize) {
    let len = buf.len();
    if n > 0 {
        buf.copy_within(len - n.., 0);
    }
    buf.truncate(n);
}

impl<S: Stream> Conn<S> {
    /// Runs the response rules on the head in `out`; `Ok(true)` when a rule replaced
    /// the response with a local answer (then in `out`).
    fn response_rules(&mut self, server: u32) -> Result<bool, Stop> {
        let cfg = &self.shard.config;
        let fe = &cfg.frontends[self.frontend];
        let be = self.rec.backend.map(|b| &cfg.backends[b]);
        let none = fe.http_response.is_empty()
            && fe.http_after_response.is_empty()
            && fe.captures.response.is_empty()
            && be.is_none_or(|b| b.http_response.is_empty() && b.http_after_response.is_empty());
        if none {
            return Ok(false);
        }
        match super::phases::response_phase(
            &self.shard,
            self.frontend,
            self.rec.backend,
            Some(server),
            self.peer,
            self.local,
            &mut self.txn,
            &mut self.out,
        ) {
            Ok(()) => {
                if let Some(st) = self.txn.status {
                    self.rec.status = st;
                }
                Ok(false)
            }
            Err(super::phases::Early::Answer(st)) => {
                // A deny (an error status) is a denied response for HAProxy.
                if st >= 400 {
                    self.count_denied_response(server);
                }
                self.rec.status = st;
                self.rec.term = Some(Term::PROXY_HEADER);
                super::rules::connection_header(&mut self.out, true, 1);
                Ok(true)
            }
            Err(_) => {
                self.count_denied_response(server);
                self.rec.term = Some(Term::PROXY_HEADER);
                Err(Stop::Close)
            }
        }
    }

    /// `dresp` of the frontend, the backend and the server.
    fn count_denied_response(&self, server: u32) {
        let st = &self.shard.stats;
        crate::stats::Counters::inc(&st.frontends[self.frontend].dresp);
        if let Some(b) = self.rec.backend {
            crate::stats::Counters::inc(&st.backend(b).dresp);
            if let Some(sv) = st.server_checked(b, server as usize) {
                crate::stats::Counters::inc(&sv.dresp);
            }
        }
    }
}

pub(super) enum HeadError {
    /// EOF or reset before a single response byte: a stale pooled connection.
    NothingReceived,
    Invalid,
    Timeout,
    /// The client went away while an interim response was passed on.
    ClientGone,
}

pub(super) struct ResponseMeta {
    pub(super) status: u16,
    pub(super) head_len: usize,
    pub(super) framing: Framing,
    pub(super) reusable: bool,
    pub(super) client_keep_alive: bool,
    /// A 101 to an upgrade request: a tunnel follows.
    pub(super) upgrade: bool,
    /// The response head's header-name summary (for the rules).
    pub(super) names: u64,
    /// The server's HTTP minor version.
    pub(super) minor: u8,
}
