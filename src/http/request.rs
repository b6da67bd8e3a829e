//! The request side of a client connection: reading and parsing a request head,
//! the rules and routing around it (`phases`), a local answer instead of a server
//! (`early_stop`), and sending the rewritten head and the body to the server.

use monoio::time::Instant;

use super::conn::{Conn, ServiceAsk, Stop, IDLE_GRACE, SERVICE_BODY_MAX};
use super::framing::{BodyProgress, Framing};
use super::head::{self, Parsed};
use super::phases::{self, Early};
use super::reply::Reply;
use super::response::keep_tail;
use super::route::{is_idempotent, request_hash};
use super::rules as hrules;
use crate::config::BalanceAlgo;
use crate::config::Service;
use crate::dispatch::ServerConn;
use crate::io::{read_into, write_range, ReadOutcome, Stream};
use crate::record::{Record, Term};
use crate::shard::Shard;
use crate::stats::Counters;

/// The parts of a request head the rest of the exchange needs (the head itself has
/// already been rewritten into `out`).
pub(super) struct RequestMeta {
    pub(super) head_len: usize,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
    /// The client sent `Expect: 100-continue` (HTTP/1.1): it may wait for the
    /// server's go-ahead before sending the body.
    pub(super) expect_continue: bool,
    pub(super) is_head: bool,
    pub(super) idempotent: bool,
    pub(super) minor: u8,
    /// The client asked for a protocol upgrade or sent a CONNECT (a tunnel may follow).
    pub(super) tunnel: head::TunnelAsk,
    pub(super) backend: Option<usize>,
    /// The balancing hash of a `hash` backend.
    pub(super) hash: Option<u32>,
    /// The stick-table key of a backend with `stick on`.
    pub(super) stick: Option<u64>,
    /// The Host, for a backend whose servers take their SNI from it (else `None`).
    pub(super) sni_host: Option<Box<str>>,
    /// The server a `use-server` rule chose.
    pub(super) use_server: Option<u32>,
    /// What the persistence cookie decided.
    pub(super) persist: super::cookie::Persist,
    /// The compression algorithm for the response (`compression`), if any.
    pub(super) comp: Option<crate::config::compression::Algo>,
}

impl<S: Stream> Conn<S> {
    /// Reads until a complete request head is buffered, then parses and routes it.
    pub(super) async fn read_head(&mut self, first: bool) -> Result<RequestMeta, Stop> {
        let t = self.timeouts();
        let (http_request, keep_alive_idle) = (t.http_request, t.http_keep_alive);
        let max = self.shard.config.limits.max_header_bytes;
        // A handle of its own: the body wait below borrows the connection.
        let shard = self.shard.clone();
        let fe = &shard.config.frontends[self.frontend];
        // `option http-buffer-request`: the body waited for (once), and whether the
        // client was told `100 Continue` meanwhile.
        let mut body_waited = false;
        let mut continued = false;
        let client = self.peer.ip();
        let mut waiting_first_byte = !first && self.cpos == self.cbuf.len();
        let woken = std::mem::take(&mut self.woken);
        let mut restart_deadline = std::mem::take(&mut self.resumed);
        let mut deadline = self.rec.head_start.unwrap_or_else(Instant::now)
            + if waiting_first_byte {
                keep_alive_idle
            } else {
                http_request
            };
        loop {
            // A head that asks for its body first (`option http-buffer-request`). The
            // wait is outside the parse's block: its header slots (32 KiB) would
            // otherwise stay in the future of every connection and HTTP/2 stream.
            let mut wait_body = None;
            if self.cpos < self.cbuf.len() {
                let data = &self.cbuf[self.cpos..];
                let mut headers = head::header_slots();
                let limits = &self.shard.config.limits;
                // X-Forwarded-For is added after the rules (`rules::request_phase`).
                match head::parse_request(data, &mut headers, limits, None, &mut self.out) {
                    Parsed::Done(r)
                        if fe.buffer_request
                            && !body_waited
                            && !super::buffer_body::whole(
                                &data[r.head_len.min(data.len())..],
                                r.framing,
                                limits.max_chunks,
                            ) =>
                    {
                        wait_body = Some((r.head_len, r.framing, r.expect_continue));
                    }
                    Parsed::Done(mut r) => {
                        // The proxy answered `100 Continue` itself (HAProxy removes
                        // the header then: the server sends none).
                        if continued {
                            super::edit::del_header(&mut self.out, "expect");
                            r.expect_continue = false;
                        }
                        // The request line, for the access log (the head is consumed soon).
                        if fe.log_line.is_some() {
                            let end = data
                                .iter()
                                .position(|&b| b == b'\r' || b == b'\n')
                                .unwrap_or(0);
                            super::capture_reqline(
                                &mut self.reqline,
                                &data[..end],
                                self.txn.h2.is_some(),
                                self.shard.config.runtime.log_uri_len,
                            );
                        }
                        // An HTTP/2 client's `te: trailers` (the only TE h2 lets
                        // through) goes on, as HAProxy 2.6 passes it: gRPC servers
                        // look for it. HTTP/1's TE stays hop-by-hop.
                        if self.txn.h2.is_some()
                            && r.headers.iter().any(|h| h.name.eq_ignore_ascii_case("te"))
                        {
                            super::edit::add_header(&mut self.out, "te", b"trailers");
                        }
                        if r.connect && !fe.allow_connect {
                            return Err(Stop::Reply(Reply::BadRequest));
                        }
                        if let Some(p) = &self.shard.fault_panic_path {
                            crate::shard::fault(p, r.path);
                            // A doomed shard dies in its control loop: wake it.
                            self.shard.wake.ring();
                        }
                        // Captures, tcp-request content and http-request rules,
                        // use_backend, the backend's rules, use-server, XFF.
                        let phase = phases::request_phase(
                            &self.shard,
                            self.frontend,
                            self.peer,
                            self.local,
                            &mut self.txn,
                            &mut self.out,
                            &r,
                        );
                        // `http-request set-src`: this request's client (hash, log).
                        let client = self.txn.src.map_or(client, |a| a.ip());
                        let routed = match phase {
                            Ok(routed) => routed,
                            Err(e) => {
                                self.rec.backend = None;
                                // The request was whole: `%TR` is measured.
                                self.rec.start = Some(Instant::now());
                                // `stats admin if COND`, on the request as rewritten.
                                let admin = match &e {
                                    Early::Service(Service::Stats { admin: Some(c), .. }) => {
                                        let site = hrules::Site {
                                            shard: &self.shard,
                                            frontend: self.frontend,
                                            backend: None,
                                            server: None,
                                            src: self.peer,
                                            dst: self.local,
                                        };
                                        hrules::with_work(|w| {
                                            let ctx = site.ctx(
                                                &self.txn,
                                                Some(&self.out),
                                                crate::rules::Dir::Req,
                                            );
                                            c.0.holds(&ctx, &mut w.s)
                                        })
                                    }
                                    _ => false,
                                };
                                return Err(early_stop(
                                    &self.shard,
                                    self.frontend,
                                    &mut self.rec,
                                    &mut self.out,
                                    e,
                                    &r,
                                    admin,
                                ));
                            }
                        };
                        let backend = routed.backend;
                        let hash =
                            backend.and_then(|b| match &self.shard.config.backends[b].balance {
                                BalanceAlgo::Hash { key, function, .. } => request_hash(
                                    key,
                                    *function,
                                    crate::rules::Head::new(&self.out),
                                    client,
                                ),
                                _ => None,
                            });
                        let stick = backend.and_then(|b| {
                            crate::tables::stick_key(
                                &self.shard.config.backends[b],
                                r.headers,
                                client,
                            )
                        });
                        // `compression`: the algorithm from Accept-Encoding (removed
                        // with `offload`), on the head as the rules left it.
                        let fe_comp = fe.compression.as_deref();
                        let be_comp = backend
                            .and_then(|b| self.shard.config.backends[b].compression.as_deref());
                        let comp = if fe_comp.is_none() && be_comp.is_none() {
                            None
                        } else {
                            super::compress::choose(fe_comp, be_comp, &mut self.out)
                                // HAProxy compresses no answer to HTTP/1.0 or HEAD.
                                .filter(|_| r.minor_version == 1 && r.method != "HEAD")
                        };
                        let sni_host = backend
                            .filter(|&b| self.shard.upstreams.backends[b].sni_from_host)
                            .and_then(|_| r.host.map(Into::into));
                        return Ok(RequestMeta {
                            sni_host,
                            head_len: r.head_len,
                            framing: r.framing,
                            keep_alive: r.keep_alive,
                            expect_continue: r.expect_continue,
                            is_head: r.method == "HEAD",
                            idempotent: is_idempotent(r.method),
                            minor: r.minor_version,
                            tunnel: if r.connect {
                                head::TunnelAsk::Connect
                            } else if r.upgrade {
                                head::TunnelAsk::Upgrade
                            } else {
                                head::TunnelAsk::No
                            },
                            backend,
                            hash,
                            stick,
                            use_server: routed.server,
                            persist: routed.persist,
                            comp,
                        });
                    }
                    Parsed::Reject(reply) => return Err(Stop::Reply(reply)),
                    Parsed::Partial if data.len() >= max => {
                        return Err(Stop::Reply(Reply::HeaderTooLarge))
                    }
                    Parsed::Partial => {}
                }
            }
            if let Some((head_len, framing, expect)) = wait_body {
                // The head is parsed again once the body is in (the rules see the
                // request as it then is).
                body_waited = true;
                continued = self.buffer_body(head_len, framing, expect).await?;
                continue;
            }
            // Make room at the end of the buffer for the rest of the head.
            if self.cpos > 0 {
                self.cbuf.copy_within(self.cpos.., 0);
                let len = self.cbuf.len() - self.cpos;
                self.cbuf.truncate(len);
                self.cpos = 0;
            }
            // `timeout http-request` runs from a keep-alive request's first bytes; the
            // clock is read only if the head did not come whole with them.
            if restart_deadline {
                restart_deadline = false;
                deadline = Self::deadline(http_request);
            }
            // Between keep-alive requests, a connection that stays quiet for
            // `IDLE_GRACE` gives its buffers back: the read for the next request is
            // bounded by the grace. On epoll that read can be dropped safely. On
            // io_uring a dropped read could lose bytes, so a plain socket's read is
            // cancelled at the grace and its result awaited (`read_cancelling`); a
            // TLS stream's read is never dropped (it would fail the stream): it waits
            // for readiness first, once nothing is buffered above its socket.
            let mut read_until = deadline;
            let mut cancel_at = None;
            let drop_safe = self.drop_safe_reads && self.client.socket().is_some();
            if let (true, false, Some(_)) = (waiting_first_byte, woken, self.client.idle_socket()) {
                let grace = self.rec.head_start.unwrap_or(deadline) + IDLE_GRACE;
                if grace < deadline {
                    if drop_safe {
                        read_until = grace;
                    } else {
                        cancel_at = Some(grace);
                    }
                }
            }
            let cancelled_read = match cancel_at {
                Some(grace) => {
                    let read = self
                        .client
                        .read_cancelling(&mut self.cbuf, &mut self.timer, grace);
                    read.await
                }
                None => None,
            };
            let outcome = match cancelled_read {
                Some(ReadOutcome::Timeout) => return Err(Stop::Idle),
                Some(outcome) => outcome,
                None => {
                    // A stream that cannot cancel its read waits out the grace for
                    // readiness first.
                    if let (Some(grace), Some(socket)) = (cancel_at, self.client.idle_socket()) {
                        if self
                            .timer
                            .bound(grace, socket.readable(false))
                            .await
                            .is_none()
                        {
                            return Err(Stop::Idle);
                        }
                    }
                    read_into(
                        &mut self.client,
                        &mut self.cbuf,
                        &mut self.timer,
                        read_until,
                    )
                    .await
                }
            };
            match outcome {
                ReadOutcome::Timeout if read_until < deadline => return Err(Stop::Idle),
                ReadOutcome::Data(_) => {
                    // The first bytes of a keep-alive request: if a reload happened
                    // meanwhile, start over on the new config.
                    if waiting_first_byte && self.shard.newer().is_some() {
                        return Err(Stop::Newer);
                    }
                    if waiting_first_byte {
                        waiting_first_byte = false;
                        restart_deadline = true;
                    }
                }
                ReadOutcome::Timeout if waiting_first_byte => return Err(Stop::Close),
                ReadOutcome::Timeout => return Err(Stop::Reply(Reply::RequestTimeout)),
                ReadOutcome::Eof | ReadOutcome::Error => return Err(Stop::Close),
            }
        }
    }

    /// Writes `out` (head + buffered body) and streams the rest of the request body,
    /// once the server said to go ahead if the client expects it to (the body stays
    /// unsent if the server answered first). `now` is a fresh clock reading; returns
    /// one taken when the request was sent.
    pub(super) async fn send_request(
        &mut self,
        up: &mut ServerConn,
        body: &mut BodyProgress,
        now: Instant,
        req: &RequestMeta,
    ) -> Result<Instant, SendError> {
        let server_deadline = now + self.server_timeout;
        self.sbuf.clear();
        let len = self.out.len();
        write_range(
            &mut up.stream,
            &mut self.out,
            0..len,
            &mut self.timer,
            server_deadline,
        )
        .await
        .map_err(|_| SendError::Server)?;
        if req.expect_continue
            && !body.is_done()
            && !self.await_continue(up, req, server_deadline).await?
        {
            return Ok(now);
        }
        // An HTTP/1 client's body to a `proto h2` server goes while the response is
        // read (`upload`): the server may answer first.
        if self.txn.h2.is_none()
            && !body.is_done()
            && matches!(up.stream, crate::tls::MaybeTls::H2(_))
        {
            let rest = BodyProgress::new(body.framing(), 0);
            self.start_upload(std::mem::replace(body, rest));
            return Ok(now);
        }
        let client_timeout = self.timeouts().client;
        let server_timeout = self.server_timeout;
        let mut streamed = false;
        while !body.is_done() {
            // What the body consumed is gone; the start of a trailer line it left
            // waits at the front of the buffer for the rest.
            let held = self.cbuf.len() - self.cpos;
            keep_tail(&mut self.cbuf, held);
            self.cpos = 0;
            if self.cbuf.len() == self.cbuf.capacity() {
                return Err(SendError::BadBody);
            }
            match read_into(
                &mut self.client,
                &mut self.cbuf,
                &mut self.timer,
                Self::deadline(client_timeout),
            )
            .await
            {
                ReadOutcome::Data(_) => {}
                _ => return Err(SendError::Client),
            }
            let fed = body.feed(&mut self.cbuf).map_err(|_| SendError::BadBody)?;
            self.rec.bytes_in += fed.used as u64;
            write_range(
                &mut up.stream,
                &mut self.cbuf,
                0..fed.forward,
                &mut self.timer,
                Self::deadline(server_timeout),
            )
            .await
            .map_err(|_| SendError::Server)?;
            self.cpos = fed.used;
            streamed = true;
        }
        Ok(if streamed { Instant::now() } else { now })
    }
}

/// How a request the rules answered or refused ends.
pub(super) fn early_stop(
    shard: &Shard,
    frontend: usize,
    rec: &mut Record,
    out: &mut Vec<u8>,
    e: Early,
    r: &head::Request<'_>,
    admin: bool,
) -> Stop {
    match e {
        Early::Close { silent } => {
            rec.term = Some(Term::PROXY_REQUEST);
            // `reject` and `silent-drop` deny the request, for HAProxy's counters; it
            // was received (`req_tot`).
            Counters::inc(&shard.stats.frontends[frontend].denied);
            rec.started = true;
            rec.bytes_in = r.head_len as u64;
            if silent {
                Stop::Reset
            } else {
                Stop::Close
            }
        }
        Early::Service(service) => {
            let authorized = match &service {
                Service::Stats { auth, .. } if !auth.is_empty() => r.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("authorization")
                        && auth.iter().any(|a| a.as_bytes() == h.value)
                }),
                _ => true,
            };
            let body_len = match r.framing {
                Framing::Length(n) if n <= SERVICE_BODY_MAX => n,
                Framing::None => 0,
                _ => return Stop::Reply(Reply::BadRequest),
            };
            rec.started = true;
            rec.bytes_in = r.head_len as u64;
            rec.intercepted = true;
            rec.applet = Some(match service {
                Service::Prometheus => crate::record::Applet::Prometheus,
                _ => crate::record::Applet::Stats,
            });
            let ask = ServiceAsk {
                method: r.method.to_string(),
                target: r.target.to_string(),
                head_len: r.head_len,
                body_len,
                admin,
            };
            Stop::Service {
                service: Box::new((service, ask)),
                authorized,
            }
        }
        Early::Tarpit(status) => {
            hrules::connection_header(out, true, r.minor_version);
            Stop::Tarpit(status)
        }
        Early::Answer(status) | Early::Local(status) | Early::Monitor(status) => {
            // A monitor answer, a `return` and a `redirect` are requests the proxy
            // intercepted, whatever their status.
            rec.intercepted = matches!(e, Early::Monitor(_) | Early::Local(_));
            // As HAProxy: the connection stays open for the next request when
            // this one has no body to skip.
            let fe = &shard.config.frontends[frontend];
            let keep = r.keep_alive
                && crate::config::error_pages::framed(out)
                && r.framing == Framing::None
                && !r.upgrade
                && !r.connect
                && !shard.draining.get()
                && !fe.client_close;
            hrules::connection_header(out, !keep, r.minor_version);
            rec.started = true;
            rec.bytes_in = r.head_len as u64;
            Stop::Answer {
                status,
                next: keep.then_some(r.head_len),
            }
        }
    }
}

pub(super) enum SendError {
    Client,
    /// The client's body broke its framing (a bad chunk): 400, nothing more forwarded.
    BadBody,
    Server,
    /// The server's answer while the client waited to send its body was malformed.
    BadResponse,
    /// Neither the body nor the server's answer came in `timeout.server`.
    Timeout,
}
