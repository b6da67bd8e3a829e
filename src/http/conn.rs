//! One client connection: read a request head, route it, get an upstream connection,
//! send the rewritten head and stream the body, read the response head, stream the
//! response body back, pool the upstream connection, and go round again (keep-alive,
//! pipelining: requests are answered strictly in order).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;

use super::bufpool::PooledBuf;
use super::framing::{BodyProgress, Framing};
use super::head::{self, Parsed};
use super::phases::{self, Early};
use super::reply::{Reply, CONTINUE};
use super::route::{is_idempotent, request_hash};
use super::rules as hrules;
use crate::config::BalanceAlgo;
use crate::config::Service;
use crate::dispatch::{Dispatch, Failure, GiveUp, PoolUse, ServerConn};
use crate::io::{linger_close, read_into, write_range, write_static, ReadOutcome, Stream, Timer};
use crate::record::{Record, Term};
use crate::rules::Txn;
use crate::shard::Shard;
use crate::stats::Counters;

use super::local::{service_response, ServiceRequest};
use super::response::HeadError;

/// Response buffer size; the request buffer is `limits.max_header_bytes`.
const SERVER_BUF: usize = 16 * 1024;

/// How one exchange ended, when it did not end in a reusable state.
pub(super) enum Stop {
    /// Close quietly (client gone, idle timeout, or the response was cut short).
    Close,
    /// Close with a reset (`silent-drop`).
    Reset,
    /// Answer with a canned reply, then close.
    Reply(Reply),
    /// A rule answered (deny, return, redirect, rate limit): the answer is in `out`.
    /// `next`: the request's head length when the connection may go on with the next
    /// request (no body to skip), else it closes.
    Answer { status: u16, next: Option<usize> },
    /// `tarpit`: hold the client for `timeout tarpit`, then send the answer in `out`.
    Tarpit(u16),
    /// A reload happened while the connection waited for its next request: move to
    /// the new config and read that request again.
    Newer,
    /// Answer from the admin side (boxed: a rare case must not grow every
    /// exchange's result).
    Service {
        service: Box<(Service, ServiceAsk)>,
        authorized: bool,
    },
    /// The server answered 101 to an upgrade: the connection becomes a tunnel (the
    /// server's head ended at this offset of `sbuf`). Boxed: a server stream may be
    /// TLS, which would make every `Result<_, Stop>` large (one box per upgrade).
    Tunnel(Box<ServerConn>, usize),
}

/// A request for an admin page: its method and target, and where its body is (a
/// POST from the stats page: the head's length and the body's).
pub(super) struct ServiceAsk {
    method: String,
    target: String,
    head_len: usize,
    body_len: u64,
    /// It meets `stats admin`'s condition.
    admin: bool,
}

/// The longest body an admin page request may carry (the stats page's forms).
const SERVICE_BODY_MAX: u64 = 16 * 1024;

/// The parts of a request head the rest of the exchange needs (the head itself has
/// already been rewritten into `out`).
pub(super) struct RequestMeta {
    pub(super) head_len: usize,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
    pub(super) is_head: bool,
    pub(super) idempotent: bool,
    pub(super) minor: u8,
    /// The client asked for a protocol upgrade or sent a CONNECT (a tunnel may follow).
    pub(super) tunnel: head::TunnelAsk,
    pub(super) backend: Option<usize>,
    /// The balancing hash of a `hash` backend.
    pub(super) hash: Option<u64>,
    /// The stick-table key of a backend with `stick on`.
    pub(super) stick: Option<u64>,
    /// The Host, for a backend whose servers take their SNI from it (else `None`).
    pub(super) sni_host: Option<Box<str>>,
    /// The server a `use-server` rule chose.
    pub(super) use_server: Option<u32>,
}

pub(super) struct Conn<S> {
    pub(super) shard: Rc<Shard>,
    pub(super) frontend: usize,
    pub(super) peer: SocketAddr,
    /// The address the client connected to (for a PROXY header to servers).
    pub(super) local: SocketAddr,
    pub(super) client: S,
    /// Client bytes: `[cpos..len]` not yet consumed (pipelined requests wait here).
    pub(super) cbuf: PooledBuf,
    pub(super) cpos: usize,
    /// Server bytes of the current response.
    pub(super) sbuf: PooledBuf,
    /// The rewritten head (and the first body bytes) going out.
    pub(super) out: Vec<u8>,
    /// What the current request did, for the statistics.
    pub(super) rec: Record,
    /// `timeout.server` of the current request's backend.
    pub(super) server_timeout: Duration,
    /// The current request line, kept for the access log.
    pub(super) reqline: Vec<u8>,
    /// Bounds every read and write of the connection, client or server side.
    pub(super) timer: Timer,
    /// The head being read began under an older config (a reload came in between):
    /// its `timeout http-request` starts afresh rather than from before the idle wait.
    pub(super) resumed: bool,
    /// What rules keep for the connection and its current request (variables,
    /// captures, tracked counters), and the connection's TLS facts (`txn.tls`).
    pub(super) txn: Txn,
}

/// Serves one client connection; `cbuf` may already hold bytes that followed a PROXY
/// header, `local` is the address the client connected to, `txn` what its `tcp-request
/// connection|session` rules did (and `txn.tls` what its TLS handshake settled).
pub async fn serve<S: Stream>(
    shard: Rc<Shard>,
    frontend: usize,
    client: S,
    peer: SocketAddr,
    local: SocketAddr,
    cbuf: Vec<u8>,
    txn: Txn,
) {
    let cap = shard.config.limits.max_header_bytes;
    let cbuf = if cbuf.capacity() >= cap {
        PooledBuf::adopt(cbuf)
    } else {
        PooledBuf::take(cap)
    };
    let mut conn = Conn {
        shard,
        frontend,
        peer,
        local,
        client,
        cbuf,
        cpos: 0,
        sbuf: PooledBuf::take(SERVER_BUF.max(cap)),
        out: Vec::with_capacity(1024),
        rec: Record::default(),
        server_timeout: Duration::from_secs(30),
        reqline: Vec::with_capacity(256),
        timer: Timer::new(Instant::now()),
        resumed: false,
        txn,
    };
    let mut first = true;
    // A new connection counts as in flight until its first request arrives: a stop
    // (or an upgrade's soft stop) must not drop a client whose request is on its way.
    let mut arriving = Some(conn.shard.begin_request());
    loop {
        conn.rec = Record::default();
        if conn.shard.config.frontends[conn.frontend]
            .log_line
            .is_some()
        {
            conn.rec.date = Some(std::time::SystemTime::now());
        }
        conn.rec.head_start = Some(Instant::now());
        let mut result = conn.exchange(first).await;
        while matches!(result, Err(Stop::Newer)) {
            if !conn.adopt_newer() {
                let _ = conn.client.shutdown().await;
                return;
            }
            conn.resumed = true;
            result = conn.exchange(first).await;
        }
        if conn.rec.term.is_none() {
            conn.rec.term = Some(match &result {
                Ok(_) | Err(Stop::Tunnel(..)) => Term::NORMAL,
                Err(Stop::Close) | Err(Stop::Newer) => Term::CLIENT_ABORT,
                Err(Stop::Reset) | Err(Stop::Answer { .. }) | Err(Stop::Service { .. }) => {
                    Term::PROXY_REQUEST
                }
                Err(Stop::Tarpit(_)) => Term::PROXY_TARPIT,
                Err(Stop::Reply(r)) => r.term(),
            });
        }
        if let Err(Stop::Answer { status, .. } | Stop::Tarpit(status)) = &result {
            conn.rec.status = *status;
            conn.rec.bytes_out += conn.out.len() as u64;
            // A deny or a tarpit (an error status) is a denied request for HAProxy; a
            // redirect or a return, one the proxy intercepted.
            let fe = &conn.shard.stats.frontends[conn.frontend];
            Counters::inc(
                if *status >= 400 || matches!(result, Err(Stop::Tarpit(_))) {
                    &fe.denied
                } else {
                    &fe.intercepted
                },
            );
        }
        if let Err(Stop::Service { .. }) = &result {
            Counters::inc(&conn.shard.stats.frontends[conn.frontend].intercepted);
        }
        if let Err(Stop::Reply(r)) = &result {
            conn.rec.status = r.status();
            conn.rec.bytes_out += r.bytes().len() as u64;
            if matches!(
                r,
                Reply::BadRequest
                    | Reply::RequestTimeout
                    | Reply::HeaderTooLarge
                    | Reply::UriTooLong
            ) {
                conn.rec.started = true;
                Counters::inc(&conn.shard.stats.frontends[conn.frontend].ereq);
                let bytes = &conn.cbuf[conn.cpos.min(conn.cbuf.len())..];
                conn.shard.stats.capture(conn.frontend, conn.peer, bytes);
            }
        }
        conn.account();
        drop(arriving.take());
        match result {
            Ok(true) => {
                first = false;
                conn.txn.first = false;
            }
            Ok(false) => {
                // Closing sends the FIN; an explicit shutdown first would only add a
                // syscall. With pipelined bytes left over, the lingering close keeps
                // the kernel from answering them with a reset.
                if conn.cpos < conn.cbuf.len() {
                    linger_close(conn.client, conn.cbuf.into_inner(), conn.timer).await;
                }
                return;
            }
            Err(Stop::Close) | Err(Stop::Newer) => return,
            Err(Stop::Reset) => {
                crate::tcp_rules::drop_connection(conn.client, true);
                return;
            }
            Err(Stop::Tunnel(up, head_len)) => {
                // Boxed: a tunnel's state would otherwise grow every connection's future.
                Box::pin(super::tunnel::run(conn, *up, head_len)).await;
                return;
            }
            Err(Stop::Reply(r)) => {
                // `http-after-response` rules also see local error replies.
                if conn.after_rules(r) {
                    let out = std::mem::take(&mut conn.out);
                    conn.answer_and_close(out).await;
                    return;
                }
                let deadline = Instant::now() + conn.timeouts().client;
                if write_static(&mut conn.client, r.bytes(), &mut conn.timer, deadline)
                    .await
                    .is_ok()
                {
                    linger_close(conn.client, conn.cbuf.into_inner(), conn.timer).await;
                }
                return;
            }
            Err(Stop::Answer { next, .. }) => {
                let deadline = Instant::now() + conn.timeouts().client;
                let len = conn.out.len();
                let written = write_range(
                    &mut conn.client,
                    &mut conn.out,
                    0..len,
                    &mut conn.timer,
                    deadline,
                )
                .await;
                if written.is_err() {
                    return;
                }
                match next {
                    // The connection goes on with the next request.
                    Some(head_len) => {
                        conn.cpos += head_len;
                        first = false;
                        conn.txn.first = false;
                        continue;
                    }
                    None => {
                        linger_close(conn.client, conn.cbuf.into_inner(), conn.timer).await;
                        return;
                    }
                }
            }
            Err(Stop::Tarpit(_)) => {
                let hold = conn.timeouts().tarpit.unwrap_or(conn.timeouts().connect);
                // Boxed: a rare path's timer stays out of every connection's task.
                Box::pin(monoio::time::sleep(hold)).await;
                let out = std::mem::take(&mut conn.out);
                conn.answer_and_close(out).await;
                return;
            }
            Err(Stop::Service {
                service,
                authorized,
            }) => {
                let shard = conn.shard.clone();
                let (svc, req) = *service;
                let Some(body) = conn.service_body(&req).await else {
                    return;
                };
                let req = ServiceRequest {
                    method: req.method,
                    target: req.target,
                    body,
                    admin: req.admin,
                };
                let response = service_response(&shard, &svc, req, authorized).await;
                conn.answer_and_close(response.into_bytes()).await;
                return;
            }
        }
    }
}

impl<S: Stream> Conn<S> {
    /// The body of an admin page request (a stats page form), read within
    /// `timeout client`; `None`: the client went away or was too slow.
    async fn service_body(&mut self, req: &ServiceAsk) -> Option<Vec<u8>> {
        let start = self.cpos + req.head_len;
        let want = req.body_len as usize;
        let deadline = Self::deadline(self.timeouts().client);
        while self.cbuf.len().saturating_sub(start) < want {
            if self.cbuf.len() == self.cbuf.capacity() {
                return None;
            }
            match read_into(&mut self.client, &mut self.cbuf, &mut self.timer, deadline).await {
                ReadOutcome::Data(_) => {}
                _ => return None,
            }
        }
        Some(self.cbuf[start.min(self.cbuf.len())..][..want].to_vec())
    }

    /// Puts a canned error reply through the `http-after-response` rules, into
    /// `out`; `false` when there are none.
    fn after_rules(&mut self, r: Reply) -> bool {
        let cfg = &self.shard.config;
        let fe = &cfg.frontends[self.frontend];
        let be = self.rec.backend.map(|b| &cfg.backends[b]);
        if fe.http_after_response.is_empty() && be.is_none_or(|b| b.http_after_response.is_empty())
        {
            return false;
        }
        self.out.clear();
        self.out.extend_from_slice(r.bytes());
        let site = hrules::Site {
            shard: &self.shard,
            frontend: self.frontend,
            backend: self.rec.backend,
            server: self.rec.server,
            src: self.peer,
            dst: self.local,
        };
        phases::after_local(&site, &mut self.txn, &mut self.out, r.status());
        true
    }

    /// Accounts the finished request: the counters its rules track, the shard's
    /// counters and histograms, the log line.
    fn account(&mut self) {
        if self
            .txn
            .track
            .iter()
            .chain(&self.txn.sess_track)
            .any(Option::is_some)
        {
            let (status, bytes_in, bytes_out) =
                (self.rec.status, self.rec.bytes_in, self.rec.bytes_out);
            phases::request_done(&self.shard, &mut self.txn, status, bytes_in, bytes_out);
        }
        self.rec.account(
            &self.shard,
            self.frontend,
            (self.peer, self.local),
            &self.reqline,
            &self.txn,
        );
    }

    /// Writes a local answer, then closes with the lingering close: the connection
    /// ends here.
    async fn answer_and_close(mut self, mut out: Vec<u8>) {
        let deadline = Instant::now() + self.timeouts().client;
        let len = out.len();
        let written = write_range(
            &mut self.client,
            &mut out,
            0..len,
            &mut self.timer,
            deadline,
        );
        if written.await.is_ok() {
            linger_close(self.client, self.cbuf.into_inner(), self.timer).await;
        }
    }

    /// What the connection's TLS handshake settled (SNI, protocol, cipher, ALPN, client
    /// certificate), for the `ssl_fc*` / `ssl_c_*` fetches; `None` on plain TCP.
    pub(super) fn tls(&self) -> Option<&crate::rules::TlsFacts> {
        self.txn.tls.as_deref()
    }

    pub(super) fn timeouts(&self) -> &crate::config::Timeouts {
        &self.shard.config.frontends[self.frontend].timeouts
    }

    pub(super) fn deadline(d: Duration) -> Instant {
        Instant::now() + d
    }

    /// One request and its response. `Ok(true)` = keep the client connection open.
    async fn exchange(&mut self, first: bool) -> Result<bool, Stop> {
        let req = self.read_head(first).await?;
        self.rec.started = true;
        // Clock reads are rationed: this one also serves the first queue deadline.
        let start = Instant::now();
        self.rec.start = Some(start);
        self.rec.bytes_in = req.head_len as u64;
        let shard = self.shard.clone();
        let _inflight = shard.begin_request();
        let _active = crate::stats::Busy::new(&shard.stats.frontends[self.frontend].active);
        // `option httpclose`: one request per client connection.
        let keep_alive = req.keep_alive
            && !shard.draining.get()
            && !shard.config.frontends[self.frontend].client_close;
        let Some(backend) = req.backend else {
            return Err(Stop::Reply(Reply::ServiceUnavailable));
        };
        self.rec.backend = Some(backend);
        self.server_timeout = shard.config.backends[backend].timeouts.server;

        // The head and whatever body bytes are already buffered leave in one write.
        self.cpos += req.head_len;
        let mut body = BodyProgress::new(req.framing, shard.config.limits.max_chunks);
        let used = body
            .feed(&self.cbuf[self.cpos..])
            .map_err(|_| Stop::Reply(Reply::BadRequest))?;
        self.out
            .extend_from_slice(&self.cbuf[self.cpos..self.cpos + used]);
        self.cpos += used;
        self.rec.bytes_in += used as u64;
        // A request wholly in `out` can be sent again; a streamed body cannot.
        let replayable = body.is_done();
        let may_resend = replayable && req.idempotent;
        // Every take checks the pooled connection (no late bytes, not closed); one the
        // server closes just after the check fails before any response byte, and a
        // request that may be resent goes again on a new connection (`Verdict::Fresh`).
        let pool = PoolUse::Pooled;

        let mut dispatch = Dispatch::new(
            &shard,
            backend,
            req.hash,
            req.stick,
            (self.peer, self.local),
            start,
        );
        dispatch.host_sni(req.sni_host.as_deref());
        dispatch.client_sni(self.tls().and_then(|t| t.sni.as_deref()));
        dispatch.use_server(req.use_server);
        let mut continue_sent = false;
        let (response, mut up) = loop {
            let mut up = match dispatch.next(pool, &mut self.timer).await {
                Ok(up) => up,
                Err(g) => return Err(self.give_up(g)),
            };
            self.rec.server = Some(up.server);
            let times = dispatch.times;
            self.rec.queued = Some(times.queued);
            self.rec.connected = Some(times.connected);
            self.rec.retries = times.retries;
            if req.expect_continue && !continue_sent {
                let deadline = Self::deadline(self.timeouts().client);
                write_static(&mut self.client, CONTINUE, &mut self.timer, deadline)
                    .await
                    .map_err(|_| Stop::Close)?;
                continue_sent = true;
            }
            let ready = times.ready;
            let failure = match self.send_request(&mut up, &mut body, ready).await {
                Err(SendError::Client) => return Err(Stop::Close),
                Err(SendError::BadBody) => return Err(Stop::Reply(Reply::BadRequest)),
                Err(SendError::Server) => Failure::NothingReceived,
                Ok(sent) => match self
                    .read_response_head(&mut up, &req, keep_alive, sent)
                    .await
                {
                    Ok(r) => {
                        dispatch.succeeded(&up);
                        self.rec.first_byte = Some(Instant::now());
                        self.rec.status = r.status;
                        break (r, up);
                    }
                    Err(HeadError::NothingReceived) => Failure::NothingReceived,
                    Err(HeadError::Invalid) => Failure::Invalid,
                    Err(HeadError::Timeout) => Failure::Timeout,
                },
            };
            if let Err(g) = dispatch.failed(up, failure, may_resend) {
                return Err(self.give_up(g));
            }
        };
        if response.upgrade {
            return Err(Stop::Tunnel(Box::new(up), response.head_len));
        }
        let (client_keep_alive, reusable) = self.forward_response(&mut up, response).await?;
        // A connection that announced this client's address must not carry another's;
        // `option http-server-close` closes it after each response.
        let server_close = shard.config.frontends[self.frontend].server_close;
        dispatch.finish(up, reusable, server_close);
        Ok(keep_alive && client_keep_alive)
    }

    /// No server will answer: the reply for the client, the state for the log.
    fn give_up(&mut self, g: GiveUp) -> Stop {
        self.rec.term = Some(g.term);
        self.rec.server = self.rec.server.or(g.server);
        self.rec.retries = g.retries;
        Stop::Reply(match g.status {
            502 => Reply::BadGateway,
            504 => Reply::GatewayTimeout,
            _ => Reply::ServiceUnavailable,
        })
    }

    /// After a reload, a keep-alive connection's next request uses the new config (the
    /// same frontend by name). `false`: its frontend is gone, the connection closes.
    fn adopt_newer(&mut self) -> bool {
        let Some(newer) = self.shard.newer() else {
            return true;
        };
        let name = &self.shard.config.frontends[self.frontend].name;
        match newer.config.frontends.iter().position(|f| &f.name == name) {
            Some(fi) => {
                self.frontend = fi;
                self.shard = newer;
                true
            }
            None => false,
        }
    }

    /// Reads until a complete request head is buffered, then parses and routes it.
    async fn read_head(&mut self, first: bool) -> Result<RequestMeta, Stop> {
        let t = self.timeouts();
        let (http_request, keep_alive_idle) = (t.http_request, t.http_keep_alive);
        let max = self.shard.config.limits.max_header_bytes;
        let fe = &self.shard.config.frontends[self.frontend];
        let client = self.peer.ip();
        let mut waiting_first_byte = !first && self.cpos == self.cbuf.len();
        let mut restart_deadline = std::mem::take(&mut self.resumed);
        let mut deadline = self.rec.head_start.unwrap_or_else(Instant::now)
            + if waiting_first_byte {
                keep_alive_idle
            } else {
                http_request
            };
        loop {
            if self.cpos < self.cbuf.len() {
                let data = &self.cbuf[self.cpos..];
                let mut headers = head::header_slots();
                let limits = &self.shard.config.limits;
                // X-Forwarded-For is added after the rules (`rules::request_phase`).
                match head::parse_request(data, &mut headers, limits, None, &mut self.out) {
                    Parsed::Done(r) => {
                        // The request line, for the access log (the head is consumed soon).
                        if fe.log_line.is_some() {
                            let end = data
                                .iter()
                                .position(|&b| b == b'\r' || b == b'\n')
                                .unwrap_or(0);
                            self.reqline.clear();
                            self.reqline.extend_from_slice(&data[..end]);
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
                        let routed = match phases::request_phase(
                            &self.shard,
                            self.frontend,
                            self.peer,
                            self.local,
                            &mut self.txn,
                            &mut self.out,
                            &r,
                        ) {
                            Ok(routed) => routed,
                            Err(e) => {
                                self.rec.backend = None;
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
                                BalanceAlgo::Hash { key, .. } => request_hash(
                                    key,
                                    crate::rules::Head::new(&self.out),
                                    self.peer.ip(),
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
                        });
                    }
                    Parsed::Reject(reply) => return Err(Stop::Reply(reply)),
                    Parsed::Partial if data.len() >= max => {
                        return Err(Stop::Reply(Reply::HeaderTooLarge))
                    }
                    Parsed::Partial => {}
                }
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
            match read_into(&mut self.client, &mut self.cbuf, &mut self.timer, deadline).await {
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

    /// Writes `out` (head + buffered body) and streams the rest of the request body.
    /// `now` is a fresh clock reading; returns one taken when the request was sent.
    async fn send_request(
        &mut self,
        up: &mut ServerConn,
        body: &mut BodyProgress,
        now: Instant,
    ) -> Result<Instant, SendError> {
        let server_deadline = now + self.server_timeout;
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
        let client_timeout = self.timeouts().client;
        let server_timeout = self.server_timeout;
        let mut streamed = false;
        while !body.is_done() {
            // Everything buffered was consumed by the body so far: reuse from the start.
            self.cbuf.clear();
            self.cpos = 0;
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
            let used = body.feed(&self.cbuf).map_err(|_| SendError::BadBody)?;
            self.rec.bytes_in += used as u64;
            write_range(
                &mut up.stream,
                &mut self.cbuf,
                0..used,
                &mut self.timer,
                Self::deadline(server_timeout),
            )
            .await
            .map_err(|_| SendError::Server)?;
            self.cpos = used;
            streamed = true;
        }
        Ok(if streamed { Instant::now() } else { now })
    }
}

/// How a request the rules answered or refused ends.
fn early_stop(
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
        Early::Answer(status) => {
            // As HAProxy: the connection stays open for the next request when
            // this one has no body to skip.
            let fe = &shard.config.frontends[frontend];
            let keep = r.keep_alive
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
}
