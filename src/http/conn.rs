//! One client connection: read a request head, route it, get an upstream connection,
//! send the rewritten head and stream the body, read the response head, stream the
//! response body back, pool the upstream connection, and go round again (keep-alive,
//! pipelining: requests are answered strictly in order).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;
use monoio::time::Instant;

use super::framing::{BodyProgress, Framing};
use super::head::{self, Parsed, MAX_HEADERS};
use super::io::{linger_close, read_into, write_range, write_static, ReadOutcome};
use super::reply::{Reply, CONTINUE};
use super::route::{eval, is_idempotent, request_hash, route, View};
use crate::accesslog::{ms, HttpEntry};
use crate::config::BalanceAlgo;
use crate::config::{RequestAction, Service};
use crate::shard::{Shard, Slot};
use crate::stats::Counters;
use crate::upstream::Tried;

/// Response buffer size; the request buffer is `limits.max_header_bytes`.
const SERVER_BUF: usize = 16 * 1024;

/// How one exchange ended, when it did not end in a reusable state.
enum Stop {
    /// Close quietly (client gone, idle timeout, or the response was cut short).
    Close,
    /// Answer with a canned reply, then close.
    Reply(Reply),
    /// Answer with the response of the frontend's `http-request` rule N, then close.
    Rule(usize),
    /// A reload happened while the connection waited for its next request: move to
    /// the new config and read that request again.
    Newer,
    /// Answer from the admin side (rule N's service); `csv` for `;csv` stats.
    Service {
        rule: usize,
        csv: bool,
        authorized: bool,
    },
}

/// The parts of a request head the rest of the exchange needs (the head itself has
/// already been rewritten into `out`).
struct RequestMeta {
    head_len: usize,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    is_head: bool,
    idempotent: bool,
    minor: u8,
    backend: Option<usize>,
    /// The balancing hash of a `hash` backend.
    hash: Option<u64>,
}

struct Conn {
    shard: Rc<Shard>,
    frontend: usize,
    peer: SocketAddr,
    /// The address the client connected to (for a PROXY header to servers).
    local: SocketAddr,
    client: TcpStream,
    /// Client bytes: `[cpos..len]` not yet consumed (pipelined requests wait here).
    cbuf: Vec<u8>,
    cpos: usize,
    /// Server bytes of the current response.
    sbuf: Vec<u8>,
    /// The rewritten head (and the first body bytes) going out.
    out: Vec<u8>,
    /// What the current request did, for the statistics.
    rec: Record,
    /// `timeout.server` of the current request's backend.
    server_timeout: Duration,
    /// The current request line, kept for the access log.
    reqline: Vec<u8>,
}

/// The figures of one request, accounted once it ended (however it ended).
#[derive(Default)]
struct Record {
    /// A request head was parsed.
    started: bool,
    backend: Option<usize>,
    server: Option<u32>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    start: Option<Instant>,
    first_byte: Option<Instant>,
    /// When the request head began to be read, and its wall-clock date for the log.
    head_start: Option<Instant>,
    date: Option<std::time::SystemTime>,
    /// Queue and connect durations of the attempt that answered.
    queued: Option<Duration>,
    connected: Option<Duration>,
    retries: u32,
    /// HAProxy's termination state (`----`, `CD--`, `SC--`, ...).
    term: &'static str,
}

/// Serves one client connection; `cbuf` may already hold bytes that followed a PROXY
/// header, and `local` is the address the client connected to.
pub async fn serve(
    shard: Rc<Shard>,
    frontend: usize,
    client: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    cbuf: Vec<u8>,
) {
    let cap = shard.config.limits.max_header_bytes;
    let cbuf = if cbuf.capacity() >= cap {
        cbuf
    } else {
        Vec::with_capacity(cap)
    };
    let mut conn = Conn {
        shard,
        frontend,
        peer,
        local,
        client,
        cbuf,
        cpos: 0,
        sbuf: Vec::with_capacity(SERVER_BUF.max(cap)),
        out: Vec::with_capacity(1024),
        rec: Record::default(),
        server_timeout: Duration::from_secs(30),
        reqline: Vec::with_capacity(256),
    };
    let mut first = true;
    // A new connection counts as in flight until its first request arrives: a stop
    // (or an upgrade's soft stop) must not drop a client whose request is on its way.
    let mut arriving = Some(conn.shard.begin_request());
    loop {
        conn.rec = Record::default();
        if conn.shard.config.frontends[conn.frontend].log.is_some() {
            conn.rec.date = Some(std::time::SystemTime::now());
        }
        conn.rec.head_start = Some(Instant::now());
        let mut result = conn.exchange(first).await;
        while matches!(result, Err(Stop::Newer)) {
            if !conn.adopt_newer() {
                let _ = conn.client.shutdown().await;
                return;
            }
            result = conn.exchange(first).await;
        }
        if conn.rec.term.is_empty() {
            conn.rec.term = match &result {
                Ok(_) => "----",
                Err(Stop::Close) | Err(Stop::Newer) => "CD--",
                Err(Stop::Rule(_)) => "PR--",
                Err(Stop::Service { .. }) => "PR--",
                Err(Stop::Reply(r)) => match r {
                    Reply::BadRequest => "CR--",
                    Reply::RequestTimeout => "cR--",
                    Reply::HeaderTooLarge => "PR--",
                    Reply::ServiceUnavailable => "SC--",
                    Reply::GatewayTimeout => "sH--",
                    Reply::BadGateway => "SH--",
                },
            };
        }
        if let Err(Stop::Rule(i)) = &result {
            if let RequestAction::Respond { status, bytes } =
                &conn.shard.config.frontends[conn.frontend].request_rules[*i].action
            {
                conn.rec.status = *status;
                conn.rec.bytes_out += bytes.len() as u64;
            }
        }
        if let Err(Stop::Reply(r)) = &result {
            conn.rec.status = r.status();
            conn.rec.bytes_out += r.bytes().len() as u64;
            if matches!(
                r,
                Reply::BadRequest | Reply::RequestTimeout | Reply::HeaderTooLarge
            ) {
                conn.rec.started = true;
                Counters::inc(&conn.shard.stats.frontends[conn.frontend].ereq);
            }
        }
        conn.account();
        drop(arriving.take());
        match result {
            Ok(true) => first = false,
            Ok(false) => {
                let _ = conn.client.shutdown().await;
                return;
            }
            Err(Stop::Close) | Err(Stop::Newer) => return,
            Err(Stop::Reply(r)) => {
                let deadline = Instant::now() + conn.timeouts().client;
                if write_static(&mut conn.client, r.bytes(), deadline)
                    .await
                    .is_ok()
                {
                    linger_close(conn.client, conn.cbuf).await;
                }
                return;
            }
            Err(Stop::Service {
                rule,
                csv,
                authorized,
            }) => {
                let shard = conn.shard.clone();
                let RequestAction::Service(svc) =
                    &shard.config.frontends[conn.frontend].request_rules[rule].action
                else {
                    return;
                };
                let response = if !authorized {
                    let realm = match svc {
                        Service::Stats { realm, .. } => realm.as_str(),
                        _ => "",
                    };
                    let body = "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n";
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/html\r\nWWW-Authenticate: Basic realm=\"{realm}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    match ask_admin(&shard, svc.clone(), csv).await {
                        Some(a) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                            a.content_type,
                            a.body.len(),
                            a.body
                        ),
                        None => String::from_utf8_lossy(Reply::ServiceUnavailable.bytes()).into_owned(),
                    }
                };
                let deadline = Instant::now() + conn.timeouts().client;
                let mut out = response.into_bytes();
                let len = out.len();
                if write_range(&mut conn.client, &mut out, 0..len, deadline)
                    .await
                    .is_ok()
                {
                    linger_close(conn.client, conn.cbuf).await;
                }
                return;
            }
            Err(Stop::Rule(i)) => {
                let deadline = Instant::now() + conn.timeouts().client;
                let shard = conn.shard.clone();
                if let RequestAction::Respond { bytes, .. } =
                    &shard.config.frontends[conn.frontend].request_rules[i].action
                {
                    let mut out = std::mem::take(&mut conn.out);
                    out.clear();
                    out.extend_from_slice(bytes);
                    let len = out.len();
                    if write_range(&mut conn.client, &mut out, 0..len, deadline)
                        .await
                        .is_ok()
                    {
                        linger_close(conn.client, conn.cbuf).await;
                    }
                }
                return;
            }
        }
    }
}

impl Conn {
    /// Adds the finished request to this shard's counters and histograms.
    fn account(&self) {
        let r = &self.rec;
        if !r.started {
            return;
        }
        let st = &self.shard.stats;
        let fe = &st.frontends[self.frontend];
        Counters::inc(&fe.req_tot);
        Counters::add(&fe.bin, r.bytes_in);
        Counters::add(&fe.bout, r.bytes_out);
        if r.status != 0 {
            fe.response(r.status);
        }
        let Some(b) = r.backend else { return };
        let be = &st.backends[b];
        Counters::add(&be.bin, r.bytes_in);
        Counters::add(&be.bout, r.bytes_out);
        if r.status != 0 {
            be.response(r.status);
        }
        if let Some(s) = r.server {
            let sv = &st.servers[b][s as usize];
            Counters::add(&sv.bin, r.bytes_in);
            Counters::add(&sv.bout, r.bytes_out);
            if r.status != 0 {
                sv.response(r.status);
            }
        }
        self.log_http(b);
        if let (Some(start), Some(first)) = (r.start, r.first_byte) {
            let now = Instant::now();
            st.record_latency(
                b,
                first.saturating_duration_since(start).as_micros() as u64,
                now.saturating_duration_since(start).as_micros() as u64,
            );
        }
    }

    /// Client-side timeouts: the frontend's.
    /// Appends the `option httplog` line of the finished request.
    fn log_http(&self, backend: usize) {
        let (Some(log), Some(crate::config::LogFormat::Http)) = (
            &self.shard.log,
            self.shard.config.frontends[self.frontend].log,
        ) else {
            return;
        };
        let r = &self.rec;
        let cfg = &self.shard.config;
        let st = &self.shard.stats;
        let b = &cfg.backends[backend];
        let now = Instant::now();
        let since = |t: Option<Instant>| t.map_or(-1, |t| ms(now.saturating_duration_since(t)));
        let tr = match (r.head_start, r.start) {
            (Some(h), Some(s)) => ms(s.saturating_duration_since(h)),
            _ => -1,
        };
        let tr_server = match (r.start, r.first_byte) {
            (Some(s), Some(f)) => {
                ms(f.saturating_duration_since(s))
                    - r.queued.map_or(0, ms)
                    - r.connected.map_or(0, ms)
            }
            _ => -1,
        };
        let server = r
            .server
            .map(|s| b.servers[s as usize].name.as_str())
            .unwrap_or("<NOSRV>");
        let fe_cur = st.frontends[self.frontend].scur.get();
        log.http(&HttpEntry {
            client: self.peer,
            accepted: r.date.unwrap_or_else(std::time::SystemTime::now),
            frontend: &cfg.frontends[self.frontend].name,
            backend: &b.name,
            server,
            timers: [
                tr,
                r.queued.map_or(-1, ms),
                r.connected.map_or(-1, ms),
                tr_server,
                since(r.head_start),
            ],
            status: r.status,
            bytes: r.bytes_out,
            termination: r.term,
            conns: [
                st.frontends.iter().map(|f| f.scur.get()).sum(),
                fe_cur,
                st.backends[backend].scur.get(),
                r.server
                    .map_or(0, |s| st.servers[backend][s as usize].scur.get()),
                u64::from(r.retries),
            ],
            queues: [0, self.shard.upstreams.backends[backend].queued() as u64],
            request_line: &self.reqline,
        });
    }

    fn timeouts(&self) -> &crate::config::Timeouts {
        &self.shard.config.frontends[self.frontend].timeouts
    }

    fn deadline(d: Duration) -> Instant {
        Instant::now() + d
    }

    /// One request and its response. `Ok(true)` = keep the client connection open.
    async fn exchange(&mut self, first: bool) -> Result<bool, Stop> {
        let req = self.read_head(first).await?;
        self.rec.started = true;
        self.rec.start = Some(Instant::now());
        self.rec.bytes_in = req.head_len as u64;
        let shard = self.shard.clone();
        let _inflight = shard.begin_request();
        // `option httpclose`: one request per client connection.
        let keep_alive = req.keep_alive
            && !shard.draining.get()
            && !shard.config.frontends[self.frontend].client_close;
        let Some(backend) = req.backend else {
            return Err(Stop::Reply(Reply::ServiceUnavailable));
        };
        self.rec.backend = Some(backend);
        self.server_timeout = shard.config.backends[backend].timeouts.server;
        let stats_be = &shard.stats.backends[backend];
        let conf = &shard.config.backends[backend];
        let be = &shard.upstreams.backends[backend];

        // The head and whatever body bytes are already buffered leave in one write.
        self.cpos += req.head_len;
        let mut body = BodyProgress::new(req.framing);
        let used = body
            .feed(&self.cbuf[self.cpos..])
            .map_err(|_| Stop::Reply(Reply::BadRequest))?;
        self.out
            .extend_from_slice(&self.cbuf[self.cpos..self.cpos + used]);
        self.cpos += used;
        self.rec.bytes_in += used as u64;
        // A request wholly in `out` can be sent again; a streamed body cannot.
        let replayable = body.is_done();

        let mut tried = Tried::default();
        let mut failures = 0u32;
        let mut continue_sent = false;
        let mut stale_retry = false;
        let (response, mut up, _slot) = loop {
            let deadline = std::time::Instant::now() + conf.timeouts.queue;
            let asked = Instant::now();
            let server = match be.acquire(req.hash, &tried, deadline).await {
                Ok(s) => s,
                Err(e) => {
                    Counters::inc(&stats_be.dreq);
                    self.rec.term = match e {
                        crate::upstream::AcquireError::QueueTimeout
                        | crate::upstream::AcquireError::QueueFull => "sQ--",
                        crate::upstream::AcquireError::NoServer => "SC--",
                    };
                    return Err(Stop::Reply(Reply::ServiceUnavailable));
                }
            };
            let slot = Slot::new(&shard, backend, server);
            self.rec.server = Some(server);
            self.rec.queued = Some(asked.elapsed());
            self.rec.retries = failures;
            let connecting = Instant::now();
            if failures > 0 {
                let sv = &shard.stats.servers[backend][server as usize];
                Counters::inc(&stats_be.wretr);
                Counters::inc(&sv.wretr);
                if !tried.is_empty() {
                    Counters::inc(&stats_be.wredis);
                    Counters::inc(&sv.wredis);
                }
            }
            // A request that can be resent skips the liveness peek: if the pooled
            // connection turns out closed, it goes again on a fresh one.
            let pooled = if stale_retry {
                None
            } else {
                shard
                    .upstreams
                    .pooled(backend, server, !(replayable && req.idempotent))
            };
            let connected = match pooled {
                Some(stream) => Ok((stream, true)),
                None => {
                    // Without redispatch, retries stay on this server.
                    let stay = if conf.redispatch {
                        0
                    } else {
                        conf.retries.saturating_sub(failures)
                    };
                    let (res, failed) =
                        shard.upstreams.connect_staying(backend, server, stay).await;
                    failures += failed;
                    res.map(|s| (s, false))
                }
            };
            let mut up = match connected {
                Ok((stream, reused)) => {
                    let mut up = Upstream {
                        server,
                        stream,
                        reused,
                    };
                    if let (false, Some(v)) = (reused, conf.servers[server as usize].send_proxy) {
                        // The server learns who the client is before anything else.
                        let mut hdr = Vec::with_capacity(64);
                        crate::proxy_protocol::write(v, self.peer, self.local, &mut hdr);
                        let deadline = Self::deadline(self.server_timeout);
                        let len = hdr.len();
                        if write_range(&mut up.stream, &mut hdr, 0..len, deadline)
                            .await
                            .is_err()
                        {
                            shard.upstreams.report_failure(backend, server);
                            return Err(Stop::Reply(Reply::ServiceUnavailable));
                        }
                    }
                    up
                }
                Err(_) => {
                    // Nothing was sent: always safe to try again, elsewhere if allowed.
                    Counters::inc(&stats_be.econ);
                    Counters::inc(&shard.stats.servers[backend][server as usize].econ);
                    shard.upstreams.report_failure(backend, server);
                    failures += 1;
                    // As HAProxy: no server could be reached is a 503 (not a 502,
                    // which says a server answered badly).
                    if failures > conf.retries {
                        return Err(Stop::Reply(Reply::ServiceUnavailable));
                    }
                    if conf.redispatch {
                        tried.add(server);
                    }
                    continue;
                }
            };
            self.rec.connected = Some(connecting.elapsed());
            if req.expect_continue && !continue_sent {
                let deadline = Self::deadline(self.timeouts().client);
                write_static(&mut self.client, CONTINUE, deadline)
                    .await
                    .map_err(|_| Stop::Close)?;
                continue_sent = true;
            }
            let failed = match self.send_request(&mut up, &mut body).await {
                Err(SendError::Client) => return Err(Stop::Close),
                Err(SendError::Server) => HeadError::NothingReceived,
                Ok(()) => match self.read_response_head(&mut up, &req, keep_alive).await {
                    Ok(r) => {
                        shard.upstreams.report_success(backend, server);
                        self.rec.first_byte = Some(Instant::now());
                        self.rec.status = r.status;
                        break (r, up, slot);
                    }
                    Err(e) => e,
                },
            };
            // Bytes were sent. Only a request that is idempotent and still whole in
            // memory may go out again; a non-idempotent one is never sent twice.
            let may_resend = replayable && req.idempotent;
            match failed {
                HeadError::NothingReceived if up.reused && !stale_retry && may_resend => {
                    // The server closed the pooled connection: same server, new connection.
                    stale_retry = true;
                }
                HeadError::NothingReceived => {
                    Counters::inc(&stats_be.eresp);
                    Counters::inc(&shard.stats.servers[backend][server as usize].eresp);
                    shard.upstreams.report_failure(backend, server);
                    failures += 1;
                    if !may_resend || failures > conf.retries {
                        return Err(Stop::Reply(Reply::BadGateway));
                    }
                    if conf.redispatch {
                        tried.add(server);
                    }
                }
                HeadError::Invalid => {
                    Counters::inc(&stats_be.eresp);
                    Counters::inc(&shard.stats.servers[backend][server as usize].eresp);
                    shard.upstreams.report_failure(backend, server);
                    return Err(Stop::Reply(Reply::BadGateway));
                }
                HeadError::Timeout => {
                    Counters::inc(&stats_be.eresp);
                    Counters::inc(&shard.stats.servers[backend][server as usize].eresp);
                    shard.upstreams.report_failure(backend, server);
                    return Err(Stop::Reply(Reply::GatewayTimeout));
                }
            }
        };
        let (client_keep_alive, reusable) = self.forward_response(&mut up, response).await?;
        // A connection that announced this client's address must not carry another's;
        // `option http-server-close` closes it after each response.
        let fe_conf = &shard.config.frontends[self.frontend];
        if reusable
            && conf.servers[up.server as usize].send_proxy.is_none()
            && !conf.server_close
            && !fe_conf.server_close
        {
            shard.upstreams.release_conn(backend, up.server, up.stream);
        }
        Ok(keep_alive && client_keep_alive)
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
        let xff = fe
            .forward_for
            .as_ref()
            .filter(|f| f.applies_to(client))
            .map(|f| (client, f));
        let mut waiting_first_byte = !first && self.cpos == self.cbuf.len();
        let mut deadline = Self::deadline(if waiting_first_byte {
            keep_alive_idle
        } else {
            http_request
        });
        loop {
            if self.cpos < self.cbuf.len() {
                let data = &self.cbuf[self.cpos..];
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                match head::parse_request(data, &mut headers, xff, &mut self.out) {
                    Parsed::Done(r) => {
                        // The request line, for the access log (the head is consumed soon).
                        let line_end = data
                            .iter()
                            .position(|&b| b == b'\r' || b == b'\n')
                            .unwrap_or(0);
                        self.reqline.clear();
                        self.reqline.extend_from_slice(&data[..line_end]);
                        if self.shard.fault_panic_path.as_deref() == Some(r.path) {
                            panic!("fault injection: request for {}", r.path);
                        }
                        let view = View {
                            req: &r,
                            src: self.peer.ip(),
                        };
                        for (i, rule) in fe.request_rules.iter().enumerate() {
                            if !eval(&rule.cond, &view) {
                                continue;
                            }
                            match &rule.action {
                                RequestAction::Respond { .. } => return Err(Stop::Rule(i)),
                                RequestAction::Service(svc) => {
                                    let authorized = match svc {
                                        Service::Stats { auth, .. } if !auth.is_empty() => {
                                            r.headers.iter().any(|h| {
                                                h.name.eq_ignore_ascii_case("authorization")
                                                    && auth.iter().any(|a| a.as_bytes() == h.value)
                                            })
                                        }
                                        _ => true,
                                    };
                                    return Err(Stop::Service {
                                        rule: i,
                                        csv: r.target.contains(";csv"),
                                        authorized,
                                    });
                                }
                                RequestAction::DelHeader(name) => del_header(&mut self.out, name),
                                RequestAction::SetHeader(name, value) => {
                                    del_header(&mut self.out, name);
                                    add_header(&mut self.out, name, value);
                                }
                                RequestAction::AddHeader(name, value) => {
                                    add_header(&mut self.out, name, value)
                                }
                            }
                        }
                        let backend = route(fe, &view);
                        if let (Some(b), None) = (backend, &fe.forward_for) {
                            if let Some(ff) = &self.shard.config.backends[b].forward_for {
                                let present = ff.if_none
                                    && r.headers
                                        .iter()
                                        .any(|h| h.name.eq_ignore_ascii_case(&ff.header));
                                if ff.applies_to(client) && !present {
                                    use std::io::Write as _;
                                    let len = self.out.len();
                                    self.out.truncate(len.saturating_sub(2));
                                    let _ = write!(self.out, "{}: {client}\r\n\r\n", ff.header);
                                }
                            }
                        }
                        let hash =
                            backend.and_then(|b| match &self.shard.config.backends[b].balance {
                                BalanceAlgo::Hash { key, .. } => {
                                    request_hash(key, &r, self.peer.ip())
                                }
                                _ => None,
                            });
                        return Ok(RequestMeta {
                            head_len: r.head_len,
                            framing: r.framing,
                            keep_alive: r.keep_alive,
                            expect_continue: r.expect_continue,
                            is_head: r.method == "HEAD",
                            idempotent: is_idempotent(r.method),
                            minor: r.minor_version,
                            backend,
                            hash,
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
                self.cbuf.truncate(self.cbuf.len() - self.cpos);
                self.cpos = 0;
            }
            match read_into(&mut self.client, &mut self.cbuf, deadline).await {
                ReadOutcome::Data(_) => {
                    // The first bytes of a keep-alive request: if a reload happened
                    // meanwhile, start over on the new config.
                    if waiting_first_byte && self.shard.newer().is_some() {
                        return Err(Stop::Newer);
                    }
                    if waiting_first_byte {
                        waiting_first_byte = false;
                        deadline = Self::deadline(http_request);
                    }
                }
                ReadOutcome::Timeout if waiting_first_byte => return Err(Stop::Close),
                ReadOutcome::Timeout => return Err(Stop::Reply(Reply::RequestTimeout)),
                ReadOutcome::Eof | ReadOutcome::Error => return Err(Stop::Close),
            }
        }
    }

    /// Writes `out` (head + buffered body) and streams the rest of the request body.
    async fn send_request(
        &mut self,
        up: &mut Upstream,
        body: &mut BodyProgress,
    ) -> Result<(), SendError> {
        let server_deadline = Self::deadline(self.server_timeout);
        let len = self.out.len();
        write_range(&mut up.stream, &mut self.out, 0..len, server_deadline)
            .await
            .map_err(|_| SendError::Server)?;
        let client_timeout = self.timeouts().client;
        let server_timeout = self.server_timeout;
        while !body.is_done() {
            // Everything buffered was consumed by the body so far: reuse from the start.
            self.cbuf.clear();
            self.cpos = 0;
            match read_into(
                &mut self.client,
                &mut self.cbuf,
                Self::deadline(client_timeout),
            )
            .await
            {
                ReadOutcome::Data(_) => {}
                _ => return Err(SendError::Client),
            }
            let used = body.feed(&self.cbuf).map_err(|_| SendError::Client)?;
            self.rec.bytes_in += used as u64;
            write_range(
                &mut up.stream,
                &mut self.cbuf,
                0..used,
                Self::deadline(server_timeout),
            )
            .await
            .map_err(|_| SendError::Server)?;
            self.cpos = used;
        }
        Ok(())
    }

    /// Reads and parses the response head (skipping interim 1xx responses); the head
    /// for the client is left in `out`, the body bytes that came with it in `sbuf`.
    async fn read_response_head(
        &mut self,
        up: &mut Upstream,
        req: &RequestMeta,
        keep_alive: bool,
    ) -> Result<ResponseMeta, HeadError> {
        self.sbuf.clear();
        let deadline = Self::deadline(self.server_timeout);
        let mut received_any = false;
        loop {
            if !self.sbuf.is_empty() {
                let mut client_keep_alive = keep_alive;
                match head::parse_response(
                    &self.sbuf,
                    req.is_head,
                    req.minor,
                    &mut client_keep_alive,
                    &mut self.out,
                ) {
                    Parsed::Done(r) if r.status == 101 => return Err(HeadError::Invalid),
                    Parsed::Done(r) if (100..200).contains(&r.status) => {
                        self.sbuf.drain(..r.head_len);
                        continue;
                    }
                    Parsed::Done(r) => {
                        return Ok(ResponseMeta {
                            status: r.status,
                            head_len: r.head_len,
                            framing: r.framing,
                            reusable: r.reusable,
                            client_keep_alive,
                        })
                    }
                    Parsed::Reject(_) => return Err(HeadError::Invalid),
                    Parsed::Partial if self.sbuf.len() == self.sbuf.capacity() => {
                        return Err(HeadError::Invalid)
                    }
                    Parsed::Partial => {}
                }
            }
            match read_into(&mut up.stream, &mut self.sbuf, deadline).await {
                ReadOutcome::Data(n) => received_any |= n > 0,
                ReadOutcome::Timeout => return Err(HeadError::Timeout),
                ReadOutcome::Eof | ReadOutcome::Error if !received_any => {
                    return Err(HeadError::NothingReceived)
                }
                ReadOutcome::Eof | ReadOutcome::Error => return Err(HeadError::Invalid),
            }
        }
    }

    /// Sends the response head and streams the body. Returns (client may stay open,
    /// upstream may be pooled).
    async fn forward_response(
        &mut self,
        up: &mut Upstream,
        res: ResponseMeta,
    ) -> Result<(bool, bool), Stop> {
        let client_timeout = self.timeouts().client;
        let server_timeout = self.server_timeout;
        let mut body = BodyProgress::new(res.framing);
        let rest = &self.sbuf[res.head_len..];
        let used = body.feed(rest).map_err(|_| Stop::Close)?;
        // Bytes past the end of the response mean the server is out of step: never reuse.
        let mut reusable = res.reusable && used == rest.len();
        self.out.extend_from_slice(&rest[..used]);
        let len = self.out.len();
        self.rec.bytes_out += len as u64;
        write_range(
            &mut self.client,
            &mut self.out,
            0..len,
            Self::deadline(client_timeout),
        )
        .await
        .map_err(|_| Stop::Close)?;
        while !body.is_done() {
            self.sbuf.clear();
            match read_into(
                &mut up.stream,
                &mut self.sbuf,
                Self::deadline(server_timeout),
            )
            .await
            {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Eof => {
                    body.on_eof().map_err(|_| Stop::Close)?;
                    reusable = false;
                    break;
                }
                ReadOutcome::Timeout | ReadOutcome::Error => return Err(Stop::Close),
            }
            let used = body.feed(&self.sbuf).map_err(|_| Stop::Close)?;
            self.rec.bytes_out += used as u64;
            reusable &= used == self.sbuf.len();
            write_range(
                &mut self.client,
                &mut self.sbuf,
                0..used,
                Self::deadline(client_timeout),
            )
            .await
            .map_err(|_| Stop::Close)?;
        }
        Ok((res.client_keep_alive, reusable))
    }
}

enum SendError {
    Client,
    Server,
}

enum HeadError {
    /// EOF or reset before a single response byte: a stale pooled connection.
    NothingReceived,
    Invalid,
    Timeout,
}

struct ResponseMeta {
    status: u16,
    head_len: usize,
    framing: Framing,
    reusable: bool,
    client_keep_alive: bool,
}

/// A connection to one server of the current backend.
struct Upstream {
    server: u32,
    stream: TcpStream,
    /// Came from the pool: the server may have closed it meanwhile.
    reused: bool,
}

/// Removes every `name:` line from a rewritten head (in place, no allocation).
fn del_header(head: &mut Vec<u8>, name: &str) {
    let mut read = 0;
    let mut write = 0;
    let mut first = true;
    while read < head.len() {
        let end = head[read..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head.len(), |p| read + p + 2);
        let line = &head[read..end];
        let drop = !first
            && line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes());
        if !drop {
            head.copy_within(read..end, write);
            write += end - read;
        }
        first = false;
        read = end;
    }
    head.truncate(write);
}

/// Adds `name: value` at the end of a rewritten head (before its empty line).
fn add_header(head: &mut Vec<u8>, name: &str, value: &str) {
    head.truncate(head.len().saturating_sub(2));
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value.as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
}

/// Asks the admin side for a page and waits for it without blocking the shard: the
/// admin side itself asks every shard (this one too) for figures meanwhile.
async fn ask_admin(
    shard: &Shard,
    service: Service,
    csv: bool,
) -> Option<crate::control::ServiceAnswer> {
    let (reply, answer) = crossbeam_channel::bounded(1);
    shard
        .services
        .send(crate::control::ServiceQuery {
            service,
            csv,
            reply,
        })
        .ok()?;
    for _ in 0..600 {
        match answer.try_recv() {
            Ok(a) => return Some(a),
            Err(crossbeam_channel::TryRecvError::Empty) => {
                monoio::time::sleep(Duration::from_millis(5)).await
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_edits() {
        let mut h = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\n\r\n".to_vec();
        del_header(&mut h, "x-a");
        assert_eq!(h, b"GET / HTTP/1.1\r\nHost: a\r\nX-B: 3\r\n\r\n");
        add_header(&mut h, "X-C", "4");
        assert_eq!(h, b"GET / HTTP/1.1\r\nHost: a\r\nX-B: 3\r\nX-C: 4\r\n\r\n");
        del_header(&mut h, "X-B-longer");
        del_header(&mut h, "host");
        assert_eq!(h, b"GET / HTTP/1.1\r\nX-B: 3\r\nX-C: 4\r\n\r\n");
    }
}
