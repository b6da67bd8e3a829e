//! One client connection: read a request head, route it, get an upstream connection,
//! send the rewritten head and stream the body, read the response head, stream the
//! response body back, pool the upstream connection, and go round again (keep-alive,
//! pipelining: requests are answered strictly in order).

mod buffers;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;

use super::framing::BodyProgress;
use super::phases::{self};
use super::reply::Reply;
use super::request::SendError;
use super::rules as hrules;
use crate::bufpool::{PooledBuf, Recycled};
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
/// The outgoing head's buffer to begin with (it grows for a larger head).
const OUT_BUF: usize = 1024;
/// How long a keep-alive connection keeps its buffers and exchange state after a
/// response while waiting for the next request. Long enough that back-to-back
/// requests never give them back (and allocate nothing), short enough that a quiet
/// connection costs little: the buffers alone are 32 KiB.
pub(super) const IDLE_GRACE: Duration = Duration::from_millis(100);

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
    /// A stream error (503, 502, 504) answered with the proxy's custom page, in `out`.
    /// `next`: how far the request still reaches into `cbuf` when the page has a
    /// length and the connection goes on (as in HAProxy), else it closes.
    ErrorPage { status: u16, next: Option<usize> },
    /// A reload happened while the connection waited for its next request: move to
    /// the new config and read that request again.
    Newer,
    /// No request came within `IDLE_GRACE` of the last one: wait on without buffers.
    Idle,
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
    pub(super) method: String,
    pub(super) target: String,
    pub(super) head_len: usize,
    pub(super) body_len: u64,
    /// It meets `stats admin`'s condition.
    pub(super) admin: bool,
}

/// The longest body an admin page request may carry (the stats page's forms).
pub(super) const SERVICE_BODY_MAX: u64 = 16 * 1024;

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
    pub(super) out: PooledBuf,
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
    /// The server answered before the request body came (`Expect: 100-continue`): the
    /// client may still send it, so the close lingers.
    pub(super) body_unread: bool,
    /// The request body still going to a `proto h2` server while its response is read.
    pub(super) upload: Option<super::upload::Upload>,
    /// The connection was woken from its quiet wait: the next read needs no wait of
    /// its own.
    pub(super) woken: bool,
    /// A read in flight may be dropped without losing bytes (the epoll driver; see
    /// `io::reads_drop_safely`), read once per connection.
    pub(super) drop_safe_reads: bool,
    /// What rules keep for the connection and its current request (variables,
    /// captures, tracked counters), and the connection's TLS facts (`txn.tls`).
    pub(super) txn: Txn,
    /// What the current request's persistence cookie decided (for its response).
    pub(super) persist: super::cookie::Persist,
    /// (backend, server) of the previous exchange when the server kept its connection
    /// (`option prefer-last-server`).
    pub(super) last_server: Option<(usize, u32)>,
}

/// What a connection keeps while it waits for its next request, all its task holds
/// then besides the wait: the rest of `Conn` (the exchange's record, buffers, timer,
/// rules state) exists only while `run` serves requests, in a block recycled through
/// the shard's free list. `Conn` is about 1 KiB; this, 136 bytes.
pub(super) struct Idle<S> {
    pub(super) shard: Rc<Shard>,
    /// (u32s here, `usize` in `Conn`: they pack with `last_server`.)
    pub(super) frontend: u32,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) client: S,
    /// Bytes that came before the first request was read (after a PROXY header);
    /// boxed, as few connections have any (8 bytes in every task, not 24 or 16).
    #[allow(clippy::box_collection)]
    early: Option<Box<Vec<u8>>>,
    /// When the wait for the next request head began (its timeouts count from then,
    /// its date in the log is then).
    head_start: Instant,
    /// The rules' state when it carries something over to the next request (session
    /// variables, tracked counters, TLS facts); `None`: a fresh session's will do.
    txn: Option<Box<Txn>>,
    last_server: Option<(u32, u32)>,
}

/// How `run` handed a connection back to `serve`.
enum Quiet<S> {
    /// It went quiet between requests: wait for the next one.
    Idle(Idle<S>),
    /// It began with the HTTP/2 preface (boxed: rare, and large).
    Preface(Box<H2Preface<S>>),
}

/// The first line of the HTTP/2 connection preface (RFC 9113 §3.4), which httparse
/// refuses (version 2.0).
const H2_PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A connection whose first bytes were the HTTP/2 preface, handed back by `serve` for
/// the HTTP/2 path (HAProxy 2.6 serves a preface as HTTP/2 on every HTTP bind): its
/// stream, the bytes read so far (from the preface on), and where it stands.
pub struct H2Preface<S> {
    pub shard: Rc<Shard>,
    pub frontend: usize,
    pub client: S,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub early: Vec<u8>,
    pub txn: Txn,
}

/// Serves one client connection; `cbuf` may already hold bytes that followed a PROXY
/// header, `local` is the address the client connected to, `txn` what its `tcp-request
/// connection|session` rules did (and `txn.tls` what its TLS handshake settled).
///
/// A connection waiting for its next request holds no buffer, no timer and no exchange
/// state, only its `Idle`: it waits for readability only (monoio's `readiness`: a
/// PollAdd on io_uring, readiness on epoll), its deadline among the shard's waiting
/// connections (`idle`), then runs requests in `run`, a future in a block recycled
/// through the shard's free list, which builds the `Conn` and takes its buffers from
/// the free lists too. `run` ends when the connection has been quiet for `IDLE_GRACE`
/// between requests, giving everything back: steady keep-alive traffic never leaves
/// `run` (no allocation per request), and an idle connection costs its task (336
/// bytes in a release build: its `Idle`, the wait, its guard) and little else: about
/// 0.5 KiB of RSS each (`benches/idle_memory.py`).
///
/// A plain TCP connection whose first bytes are the HTTP/2 preface ends here with
/// `Some(H2Preface)`, for the caller to serve as HTTP/2 (`h2::serve_preface`).
pub fn serve<S: Stream>(
    shard: Rc<Shard>,
    frontend: usize,
    client: S,
    peer: SocketAddr,
    local: SocketAddr,
    cbuf: Vec<u8>,
    txn: Txn,
) -> impl std::future::Future<Output = Option<H2Preface<S>>> {
    // A new connection counts as in flight until its first request arrives: a stop
    // (or an upgrade's soft stop) must not drop a client whose request is on its way.
    let arriving = shard.begin_request();
    let mut idle = Idle {
        shard,
        frontend: frontend as u32,
        peer,
        local,
        client,
        early: (!cbuf.is_empty()).then(|| Box::new(cbuf)),
        head_start: Instant::now(),
        txn: txn.carries_over().then(|| Box::new(txn)),
        last_server: None,
    };
    // An `async` block that uses what it captured in place: an `async fn` (or a `let`
    // in the block) would keep a second copy of `idle` in the task.
    let mut arriving = Some(arriving);
    let mut first = true;
    async move {
        loop {
            let woken = idle.early.is_none();
            if woken {
                idle.wait_readable(first).await;
            }
            match Recycled::with(|| run(idle, woken, &mut first, &mut arriving)).await {
                Some(Quiet::Idle(quiet)) => idle = quiet,
                Some(Quiet::Preface(h2)) => return Some(*h2),
                None => return None,
            }
        }
    }
}

/// Serves requests until the connection ends (`None`) or goes quiet between two of
/// them (`Some`: its buffers are back in the free list). `woken`: it waited for
/// readability before.
async fn run<S: Stream>(
    idle: Idle<S>,
    woken: bool,
    first: &mut bool,
    arriving: &mut Option<crate::shard::InflightGuard>,
) -> Option<Quiet<S>> {
    let mut conn = Conn::resume(idle, woken, *first);
    conn.take_buffers();
    // The record of the first request was begun before the wait for its bytes.
    let mut begun = true;
    loop {
        if !std::mem::take(&mut begun) {
            conn.new_record();
        }
        let mut result = conn.exchange(*first).await;
        // A client gone before its request was whole: the connection's first, or
        // one of which some bytes came. HAProxy logs and counts it as a bad request
        // (`CR`, 400, `<BADREQ>`); a keep-alive connection closed between requests
        // is no request.
        if matches!(result, Err(Stop::Close))
            && !conn.rec.started
            && (*first || conn.cpos < conn.cbuf.len())
        {
            conn.left_before_request();
        }
        if matches!(result, Err(Stop::Idle)) {
            conn.release_buffers();
            return Some(Quiet::Idle(conn.into_idle()));
        }
        while matches!(result, Err(Stop::Newer)) {
            if !conn.adopt_newer() {
                let _ = conn.client.shutdown().await;
                return None;
            }
            conn.resumed = true;
            result = conn.exchange(*first).await;
        }
        if *first
            && matches!(result, Err(Stop::Reply(Reply::BadRequest)))
            && conn.client.serves_h2_preface()
            && conn.cbuf[conn.cpos..].starts_with(H2_PREFACE_LINE)
        {
            return Some(Quiet::Preface(Box::new(conn.into_preface())));
        }
        if conn.rec.term.is_none() {
            conn.rec.term = Some(match &result {
                Ok(_) | Err(Stop::Tunnel(..)) => Term::NORMAL,
                Err(Stop::Answer { .. }) if conn.rec.intercepted => Term::LOCAL_REQUEST,
                Err(Stop::Service { .. }) => Term::LOCAL_REQUEST,
                Err(Stop::Close) | Err(Stop::Newer) | Err(Stop::Idle) => Term::CLIENT_ABORT,
                Err(Stop::Reset) | Err(Stop::Answer { .. }) => Term::PROXY_REQUEST,
                Err(Stop::Tarpit(_)) => Term::PROXY_TARPIT,
                Err(Stop::Reply(r)) => r.term(),
                Err(Stop::ErrorPage { .. }) => Term::SERVER_CONNECT,
            });
        }
        if let Err(Stop::Answer { status, .. } | Stop::Tarpit(status)) = &result {
            conn.rec.status = *status;
            conn.rec.bytes_out += conn.out.len() as u64;
            // A deny or a tarpit (an error status) is a denied request for HAProxy; a
            // redirect or a return, one the proxy intercepted.
            let fe = &conn.shard.stats.frontends[conn.frontend];
            Counters::inc(
                if (*status >= 400 && !conn.rec.intercepted)
                    || matches!(result, Err(Stop::Tarpit(_)))
                {
                    &fe.denied
                } else {
                    &fe.intercepted
                },
            );
        }
        if let Err(Stop::ErrorPage { status, .. }) = &result {
            conn.rec.status = *status;
            conn.rec.bytes_out += conn.out.len() as u64;
        }
        if let Err(Stop::Service { .. }) = &result {
            Counters::inc(&conn.shard.stats.frontends[conn.frontend].intercepted);
        }
        let mut custom = false;
        if let Err(Stop::Reply(r)) = &result {
            conn.rec.status = r.status();
            custom = conn.custom_error(*r);
            conn.rec.bytes_out += if custom {
                conn.out.len()
            } else {
                r.bytes().len()
            } as u64;
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
        // An admin page is accounted once it answered (its status).
        if !matches!(result, Err(Stop::Service { .. })) {
            conn.account();
        }
        drop(arriving.take());
        match result {
            Ok(true) => {
                *first = false;
                conn.txn.first = false;
            }
            Ok(false) => {
                // Closing sends the FIN; an explicit shutdown first would only add a
                // syscall. With pipelined bytes left over, the lingering close keeps
                // the kernel from answering them with a reset.
                if conn.cpos < conn.cbuf.len() || conn.body_unread {
                    linger_close(conn.client, conn.cbuf.into_inner(), conn.timer).await;
                }
                return None;
            }
            Err(Stop::Close) | Err(Stop::Newer) | Err(Stop::Idle) => return None,
            Err(Stop::Reset) => {
                crate::tcp_rules::drop_connection(conn.client, true);
                return None;
            }
            Err(Stop::Tunnel(up, head_len)) => {
                // Boxed: a tunnel's state would otherwise grow every connection's future.
                Box::pin(super::tunnel::run(conn, *up, head_len)).await;
                return None;
            }
            Err(Stop::Reply(r)) => {
                // `http-after-response` rules also see local error replies.
                if conn.after_rules(r, custom) {
                    let out = std::mem::take(&mut *conn.out);
                    conn.answer_and_close(out).await;
                    return None;
                }
                let deadline = Instant::now() + conn.timeouts().client;
                let written = if custom {
                    let len = conn.out.len();
                    write_range(
                        &mut conn.client,
                        &mut conn.out,
                        0..len,
                        &mut conn.timer,
                        deadline,
                    )
                    .await
                } else {
                    write_static(&mut conn.client, r.bytes(), &mut conn.timer, deadline).await
                };
                if written.is_ok() {
                    linger_close(conn.client, conn.cbuf.into_inner(), conn.timer).await;
                }
                return None;
            }
            Err(Stop::Answer { next, .. } | Stop::ErrorPage { next, .. }) => {
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
                    return None;
                }
                match next {
                    // The connection goes on with the next request.
                    Some(head_len) => {
                        conn.cpos += head_len;
                        *first = false;
                        conn.txn.first = false;
                        continue;
                    }
                    None => {
                        linger_close(conn.client, conn.cbuf.into_inner(), conn.timer).await;
                        return None;
                    }
                }
            }
            Err(Stop::Tarpit(_)) => {
                let hold = conn.timeouts().tarpit.unwrap_or(conn.timeouts().connect);
                // Boxed: a rare path's timer stays out of every connection's task.
                Box::pin(monoio::time::sleep(hold)).await;
                let out = std::mem::take(&mut *conn.out);
                conn.answer_and_close(out).await;
                return None;
            }
            Err(Stop::Service {
                service,
                authorized,
            }) => {
                let shard = conn.shard.clone();
                let (svc, req) = *service;
                // The client went away or was too slow: the connection ends.
                let body = conn.service_body(&req).await?;
                let req = ServiceRequest {
                    method: req.method,
                    target: req.target,
                    body,
                    admin: req.admin,
                };
                let response = service_response(&shard, &svc, req, authorized).await;
                conn.rec.status = response
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                conn.rec.bytes_out += response.len() as u64;
                conn.account();
                conn.answer_and_close(response.into_bytes()).await;
                return None;
            }
        }
    }
}

impl<S: Stream> Conn<S> {
    /// The connection as `run` serves it, from what it kept while quiet: the record
    /// of the request awaited since `idle.head_start` is begun. `woken`: it waited
    /// for readability (the next read needs no wait of its own).
    fn resume(idle: Idle<S>, woken: bool, first: bool) -> Self {
        let frontend = idle.frontend as usize;
        let txn = match idle.txn {
            Some(txn) => *txn,
            None => {
                let mut txn = Txn::default();
                txn.begin_session(idle.shard.config.txn_scope(frontend));
                txn.first = first;
                txn
            }
        };
        // The head's date, for the log: the wall clock when its wait began.
        let date = idle.shard.config.frontends[frontend]
            .log_line
            .as_ref()
            .and_then(|_| std::time::SystemTime::now().checked_sub(idle.head_start.elapsed()));
        let rec = Record {
            head_start: Some(idle.head_start),
            date,
            ..Record::default()
        };
        Conn {
            shard: idle.shard,
            frontend,
            peer: idle.peer,
            local: idle.local,
            client: idle.client,
            cbuf: match idle.early {
                Some(early) => PooledBuf::adopt(*early),
                None => PooledBuf::none(),
            },
            cpos: 0,
            sbuf: PooledBuf::none(),
            out: PooledBuf::none(),
            rec,
            server_timeout: Duration::from_secs(30),
            reqline: Vec::new(),
            timer: Timer::none(),
            resumed: false,
            body_unread: false,
            upload: None,
            woken,
            drop_safe_reads: crate::io::reads_drop_safely(),
            txn,
            persist: Default::default(),
            last_server: idle.last_server.map(|(b, s)| (b as usize, s)),
        }
    }

    /// What the connection keeps while quiet (its buffers went back already); the
    /// record begun for the next request goes with it.
    fn into_idle(self) -> Idle<S> {
        Idle {
            head_start: self.rec.head_start.unwrap_or_else(Instant::now),
            txn: self.txn.carries_over().then(|| Box::new(self.txn)),
            shard: self.shard,
            frontend: self.frontend as u32,
            peer: self.peer,
            local: self.local,
            client: self.client,
            early: None,
            last_server: self.last_server.map(|(b, s)| (b as u32, s)),
        }
    }

    /// Begins the record of the next request: its head is awaited from now.
    fn new_record(&mut self) {
        self.rec = Record::default();
        self.persist = Default::default();
        if self.shard.config.frontends[self.frontend]
            .log_line
            .is_some()
        {
            self.rec.date = Some(std::time::SystemTime::now());
        }
        self.rec.head_start = Some(Instant::now());
    }

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

    /// Writes the proxy's custom page for a stream error (503 no server, 502, 504:
    /// `errorfile`, `http-error`) into `out`; `false` when it has none (the built-in
    /// page goes). Parser errors (400, 408) keep HAProxy's built-in page, as its HTTP/1
    /// layer sends them.
    fn custom_error(&mut self, r: Reply) -> bool {
        if !matches!(
            r,
            Reply::ServiceUnavailable | Reply::BadGateway | Reply::GatewayTimeout
        ) {
            return false;
        }
        let site = hrules::Site {
            shard: &self.shard,
            frontend: self.frontend,
            backend: self.rec.backend,
            server: self.rec.server,
            src: self.peer,
            dst: self.local,
        };
        let Some(page) = site.error_page(r.status()) else {
            return false;
        };
        let mut out = std::mem::take(&mut *self.out);
        out.clear();
        hrules::with_work(|w| {
            let ctx = site.ctx(&self.txn, None, crate::rules::Dir::Res);
            page.write(&ctx, &mut w.s, &mut out);
        });
        *self.out = out;
        true
    }

    /// Puts a local error reply (the built-in one, or the custom page already in
    /// `out`) through the `http-after-response` rules, into `out`; `false` when there
    /// are none.
    fn after_rules(&mut self, r: Reply, custom: bool) -> bool {
        let cfg = &self.shard.config;
        let fe = &cfg.frontends[self.frontend];
        let be = self.rec.backend.map(|b| &cfg.backends[b]);
        if fe.http_after_response.is_empty() && be.is_none_or(|b| b.http_after_response.is_empty())
        {
            return false;
        }
        if !custom {
            self.out.clear();
            self.out.extend_from_slice(r.bytes());
        }
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

    /// Records a client that left before its request was whole (see `run`).
    fn left_before_request(&mut self) {
        self.rec.started = true;
        self.rec.status = 400;
        self.rec.term = Some(Term::CLIENT_REQUEST);
        self.rec.bytes_in = self.cbuf.len().saturating_sub(self.cpos) as u64;
        self.reqline.clear();
        Counters::inc(&self.shard.stats.frontends[self.frontend].ereq);
    }

    /// The request's client: the socket's peer, or what `http-request set-src` said.
    fn client_addr(&self) -> SocketAddr {
        self.txn.src.unwrap_or(self.peer)
    }

    /// Accounts the finished request: the counters its rules track, the shard's
    /// counters and histograms, the log line.
    fn account(&mut self) {
        if let Some(shared) = self.client.shared_vars() {
            self.txn.leave_shared_vars(&mut shared.borrow_mut());
        }
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
            (self.client_addr(), self.local),
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
        self.upload = None;
        let mut req = self.read_head(first).await?;
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
            let next = (keep_alive && req.framing == super::framing::Framing::None)
                .then_some(req.head_len);
            return Err(self.stream_error(Reply::ServiceUnavailable, next, req.minor));
        };
        self.rec.backend = Some(backend);
        self.server_timeout = shard.config.backends[backend].timeouts.server;
        // The backend's `option http-buffer-request` (a frontend's waited before its
        // rules): the body is in before a server is chosen.
        if shard.config.backends[backend].buffer_request
            && !shard.config.frontends[self.frontend].buffer_request
            && self
                .buffer_body(req.head_len, req.framing, req.expect_continue)
                .await?
        {
            super::edit::del_header(&mut self.out, "expect");
            req.expect_continue = false;
        }

        // The head and whatever body bytes are already buffered leave in one write.
        if let Some(map) = &shard.config.backends[backend].h1_case {
            super::edit::case_adjust(&mut self.out, map);
        }
        self.cpos += req.head_len;
        let mut body = BodyProgress::new(req.framing, shard.config.limits.max_chunks);
        let fed = body
            .feed(&mut self.cbuf[self.cpos..])
            .map_err(|_| Stop::Reply(Reply::BadRequest))?;
        self.out
            .extend_from_slice(&self.cbuf[self.cpos..self.cpos + fed.forward]);
        self.cpos += fed.used;
        self.rec.bytes_in += fed.used as u64;
        // A request wholly in `out` can be sent again; a streamed body cannot.
        let replayable = body.is_done();
        let may_resend = replayable && req.idempotent;
        let mut adopted = false;
        // Every take checks the pooled connection (no late bytes, not closed); one the
        // server closes just after the check fails before any response byte, and a
        // request that may be resent goes again on a new connection (`Verdict::Fresh`).
        let pool = PoolUse::Pooled;

        let mut dispatch = Dispatch::new(
            &shard,
            backend,
            req.hash,
            req.stick,
            (self.client_addr(), self.local),
            start,
        );
        dispatch.host_sni(req.sni_host.as_deref());
        dispatch.client_sni(self.tls().and_then(|t| t.sni.as_deref()));
        dispatch.use_server(req.use_server.or_else(|| self.preferred(backend)));
        self.persist = req.persist;
        self.rec.cookie = self.persist.log_chars();
        if req.persist.server.is_some() {
            dispatch.pin();
        }
        let (response, mut up) = loop {
            let mut up = match dispatch.next(pool, &mut self.timer).await {
                Ok(up) => up,
                Err(g) => {
                    let r = self.give_up(g);
                    let next = (keep_alive && body.is_done()).then_some(0);
                    return Err(self.stream_error(r, next, req.minor));
                }
            };
            self.rec.server = Some(up.server);
            // A client's HTTP/2 stream to a `proto h2` server: the body goes as its
            // frames come, while the response is read (calls streaming both ways).
            if let crate::tls::MaybeTls::H2(h2) = &mut up.stream {
                if let Some(scheme) = &self.txn.h2 {
                    h2.client_scheme(scheme.clone());
                }
                if !adopted && !body.is_done() && self.cpos == self.cbuf.len() {
                    if let Some(frames) = self.client.take_h2_body() {
                        h2.adopt_body(frames);
                        body = BodyProgress::new(super::framing::Framing::None, 0);
                        adopted = true;
                    }
                }
            }
            let times = dispatch.times;
            self.rec.queued = Some(times.queued);
            self.rec.connected = Some(times.connected);
            self.rec.retries = times.retries;
            let ready = times.ready;
            let failure = match self.send_request(&mut up, &mut body, ready, &req).await {
                Err(SendError::Client) => return Err(Stop::Close),
                Err(SendError::BadBody) => return Err(Stop::Reply(Reply::BadRequest)),
                Err(SendError::Server) => Failure::NothingReceived,
                Err(SendError::BadResponse) => Failure::Invalid,
                Err(SendError::Timeout) => Failure::Timeout,
                // A body still going up may end before the response does.
                Ok(sent) => match self
                    .read_response_head(
                        &mut up,
                        &req,
                        keep_alive && (body.is_done() || self.upload.is_some()),
                        sent,
                    )
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
                    // The client broke the body it was sending meanwhile.
                    Err(HeadError::ClientGone) if self.upload.as_ref().is_some_and(|u| u.bad) => {
                        return Err(Stop::Reply(Reply::BadRequest))
                    }
                    // The client left while the server's interim answers went to it,
                    // or while its body went.
                    Err(HeadError::ClientGone) => return Err(Stop::Close),
                },
            };
            // A body handed over as frames is gone: the request cannot go again.
            if let Err(g) = dispatch.failed(up, failure, may_resend && !adopted) {
                let r = self.give_up(g);
                let next = (keep_alive && body.is_done()).then_some(0);
                return Err(self.stream_error(r, next, req.minor));
            }
        };
        if response.upgrade {
            return Err(Stop::Tunnel(Box::new(up), response.head_len));
        }
        let (client_keep_alive, reusable) =
            self.forward_response(&mut up, response, req.comp).await?;
        // The rest of a body going to a `proto h2` server (it kept its stream open).
        if let (Some(_), crate::tls::MaybeTls::H2(h2)) = (&self.upload, &mut up.stream) {
            if self.finish_upload(h2).await {
                body = BodyProgress::new(super::framing::Framing::None, 0);
            }
        }
        // A server that answered before the body may still be waiting for it.
        let reusable = reusable && body.is_done();
        self.body_unread = !body.is_done();
        // A connection that announced this client's address must not carry another's;
        // `option http-server-close` closes it after each response.
        let server_close = shard.config.frontends[self.frontend].server_close;
        let server = up.server;
        dispatch.finish(up, reusable, server_close);
        self.last_server = (reusable && !server_close).then_some((backend, server));
        // A body left unsent (the server refused it) is not read as the next request.
        Ok(keep_alive && client_keep_alive && body.is_done())
    }

    /// `option prefer-last-server`: the server of this connection's previous exchange,
    /// when it is in `backend` and the backend does not hash (HAProxy's rule); the
    /// dispatch takes it while it is usable and has room, else balances.
    fn preferred(&self, backend: usize) -> Option<u32> {
        let b = &self.shard.config.backends[backend];
        let hashing = matches!(b.balance, crate::config::BalanceAlgo::Hash { .. });
        match self.last_server {
            Some((be, s)) if be == backend && b.prefer_last_server && !hashing => Some(s),
            _ => None,
        }
    }

    /// No server will answer: the reply for the client, the state for the log.
    fn give_up(&mut self, g: GiveUp) -> Reply {
        self.rec.term = Some(g.term);
        self.rec.server = self.rec.server.or(g.server);
        self.rec.retries = g.retries;
        match g.status {
            502 => Reply::BadGateway,
            504 => Reply::GatewayTimeout,
            _ => Reply::ServiceUnavailable,
        }
    }

    /// How a stream error ends: the built-in page (then a close), or the proxy's
    /// custom page, after which HAProxy goes on with the next request when the page
    /// has a length and the request was read whole (`next`).
    fn stream_error(&mut self, r: Reply, next: Option<usize>, minor: u8) -> Stop {
        if !self.custom_error(r) {
            return Stop::Reply(r);
        }
        self.rec.term.get_or_insert(r.term());
        let next = next.filter(|_| {
            !self.shard.draining.get()
                && crate::config::error_pages::framed(&self.out)
                && !self.shard.config.frontends[self.frontend].client_close
        });
        self.after_rules(r, true);
        hrules::connection_header(&mut self.out, next.is_none(), minor);
        Stop::ErrorPage {
            status: r.status(),
            next,
        }
    }

    /// The connection as the HTTP/2 path takes it over (see `H2Preface`).
    fn into_preface(self) -> H2Preface<S> {
        H2Preface {
            early: self.cbuf[self.cpos..].to_vec(),
            shard: self.shard,
            frontend: self.frontend,
            client: self.client,
            peer: self.peer,
            local: self.local,
            txn: self.txn,
        }
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
                self.last_server = None;
                true
            }
            None => false,
        }
    }
}
