//! What one request (HTTP) or connection (TCP) did, as its log line and the counters
//! see it: its figures (`Record`), how they are accounted, its `option httplog` or
//! `option tcplog` line, and HAProxy's termination state, shared by both formats so
//! both modes say the same thing of the same event.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::time::Instant;

use crate::accesslog::ms;
use crate::rules::logformat::Facts;
use crate::rules::Txn;
use crate::shard::Shard;
use crate::stats::Counters;

/// Failed attempts before the one that answered (or the last), and whether one of them
/// went to another server (HAProxy's `%rc` shows it as `+N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retries {
    pub count: u32,
    pub redispatched: bool,
}

impl std::fmt::Display for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.redispatched {
            write!(f, "+{}", self.count)
        } else {
            write!(f, "{}", self.count)
        }
    }
}

/// HAProxy's termination state (`%tsc`): who or what ended the session, and in which
/// phase; the last two characters are the persistence cookie's (`--` without one). `option tcplog`
/// shows the first two (`%ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term([u8; 4]);

impl Term {
    /// Ended normally.
    pub const NORMAL: Term = Term(*b"----");
    /// The client closed or reset before the end.
    pub const CLIENT_ABORT: Term = Term(*b"CD--");
    /// The client closed while its connection waited in a server queue
    /// (`option abortonclose`, TCP mode).
    pub const CLIENT_QUEUE: Term = Term(*b"CQ--");
    /// The client closed while a server was being connected (`option abortonclose`,
    /// TCP mode).
    pub const CLIENT_CONNECT: Term = Term(*b"CC--");
    /// The client sent an invalid request (400).
    pub const CLIENT_REQUEST: Term = Term(*b"CR--");
    /// The request head did not arrive within `timeout http-request` (408).
    pub const CLIENT_TIMEOUT_REQUEST: Term = Term(*b"cR--");
    /// Nothing from the client within `timeout client` while data flowed.
    pub const CLIENT_TIMEOUT_DATA: Term = Term(*b"cD--");
    /// Answered by the proxy itself (a rule's deny, return or redirect, a stats page,
    /// a too large head).
    pub const PROXY_REQUEST: Term = Term(*b"PR--");
    /// Answered by the proxy as an intercepted request: `return`, `redirect`, a stats
    /// page.
    pub const LOCAL_REQUEST: Term = Term(*b"LR--");
    /// An `http-response` rule stopped the response.
    pub const PROXY_HEADER: Term = Term(*b"PH--");
    /// Held by `tarpit`, then answered by the proxy.
    pub const PROXY_TARPIT: Term = Term(*b"PT--");
    /// No server could be reached (or none was usable): 503.
    pub const SERVER_CONNECT: Term = Term(*b"SC--");
    /// The last connect attempt ran out of `timeout connect`: 503.
    pub const SERVER_TIMEOUT_CONNECT: Term = Term(*b"sC--");
    /// No server slot freed within `timeout queue`, or the queue was full: 503.
    pub const SERVER_QUEUE: Term = Term(*b"sQ--");
    /// The server closed or answered invalidly before a complete response head: 502.
    pub const SERVER_HEADERS: Term = Term(*b"SH--");
    /// No response head within `timeout server`: 504.
    pub const SERVER_TIMEOUT_HEADERS: Term = Term(*b"sH--");
    /// Nothing from the server within `timeout server` while data flowed.
    pub const SERVER_TIMEOUT_DATA: Term = Term(*b"sD--");
    /// The server closed or reset in the middle of the data.
    pub const SERVER_DATA: Term = Term(*b"SD--");
    /// Killed because its server went down (`on-marked-down shutdown-sessions`).
    pub const KILLED_DOWN: Term = Term(*b"DD--");
    /// Killed on a backup server because a primary came up
    /// (`on-marked-up shutdown-backup-sessions`).
    pub const KILLED_UP: Term = Term(*b"UD--");

    /// The four characters of `%tsc`.
    /// Ended on an error HAProxy calls one for its logs: any cause but none and a
    /// local one (`L`, an answer of the proxy's own).
    pub fn is_error(&self) -> bool {
        !matches!(self.0[0], b'-' | b'L')
    }

    pub fn as_str(&self) -> &str {
        // Built only from the ASCII constants above.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The client closed, reset or went silent once its request was in (HAProxy
    /// counts `cli_abrt`); a bad or late request head is a request error instead.
    pub fn client_aborted(&self) -> bool {
        matches!(self.0[0], b'C' | b'c') && self.0[1] != b'R'
    }

    /// The server closed, reset or went silent in the middle of the data (`srv_abrt`).
    pub fn server_aborted(&self) -> bool {
        matches!(self.0[0], b'S' | b's') && self.0[1] == b'D'
    }

    /// The same state with the persistence cookie's characters (zeros keep `--`).
    pub fn with_cookie(self, ck: [u8; 2]) -> Term {
        let mut t = self.0;
        if ck[0] != 0 {
            t[2] = ck[0];
            t[3] = ck[1];
        }
        Term(t)
    }

    /// The two characters of `%ts` (`option tcplog`).
    pub fn short(&self) -> &str {
        &self.as_str()[..2]
    }
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The figures of one request, accounted once it ended (however it ended).
#[derive(Default)]
pub struct Record {
    /// A request head was parsed.
    pub started: bool,
    pub backend: Option<usize>,
    pub server: Option<u32>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub start: Option<Instant>,
    pub first_byte: Option<Instant>,
    /// When the request head began to be read, and its wall-clock date for the log.
    pub head_start: Option<Instant>,
    pub date: Option<std::time::SystemTime>,
    /// Queue and connect durations of the attempt that answered.
    pub queued: Option<Duration>,
    pub connected: Option<Duration>,
    pub retries: Retries,
    /// HAProxy's termination state, once known.
    pub term: Option<Term>,
    /// Its persistence-cookie characters (3rd and 4th; zeros: `--`).
    pub cookie: [u8; 2],
    /// Answered by the proxy as an intercepted request whatever its status (a
    /// `monitor-uri` request, a `return`, a `redirect`).
    pub intercepted: bool,
    /// Answered by an admin page, named in the log's server field as HAProxy names
    /// its applets.
    pub applet: Option<Applet>,
}

/// The admin pages a request may get, as the log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applet {
    Stats,
    Prometheus,
}

impl Applet {
    pub fn name(self) -> &'static str {
        match self {
            Applet::Stats => "<STATS>",
            Applet::Prometheus => "<PROMEX>",
        }
    }
}

impl Record {
    /// Adds the finished request to this shard's counters and histograms.
    /// `client`: the client and the address it connected to; `txn`: what the rules
    /// kept (log level, status override, captures for the log line).
    pub fn account(
        &self,
        shard: &Shard,
        frontend: usize,
        client: (SocketAddr, SocketAddr),
        request_line: &[u8],
        txn: &Txn,
    ) {
        let r = self;
        if !r.started {
            return;
        }
        // One clock reading serves the rates, the times and the log line.
        let now = Instant::now();
        let now_ms = shard.stats.ms(now.into_std());
        let st = &shard.stats;
        let fe = &st.frontends[frontend];
        Counters::inc(&fe.req_tot);
        fe.req_rate.add(now_ms, 1);
        st.process.out_rate.add(now_ms, (r.bytes_out + 16) / 32);
        st.traffic(frontend, r.backend, r.server, r.bytes_in, r.bytes_out);
        if r.status != 0 {
            fe.response(r.status);
        }
        // A request answered before a backend was chosen is logged too.
        self.log_http(shard, frontend, client, request_line, txn);
        let Some(b) = r.backend else { return };
        let be = st.backend(b);
        let sv = r.server.and_then(|s| st.server_checked(b, s as usize));
        if r.status != 0 {
            be.response(r.status);
            // A server's responses are those it sent (a 503 after its connects
            // failed is the proxy's, as for HAProxy).
            if let (Some(sv), Some(_)) = (sv, r.first_byte) {
                sv.response(r.status);
            }
        }
        let term = r.term.unwrap_or(Term::NORMAL);
        let abort: Option<fn(&Counters) -> &Cell<u64>> = if term.client_aborted() {
            Some(|c| &c.cli_abrt)
        } else if term.server_aborted() {
            Some(|c| &c.srv_abrt)
        } else {
            None
        };
        if let Some(which) = abort {
            Counters::inc(which(be));
            if let Some(sv) = sv {
                Counters::inc(which(sv));
            }
        }
        let timers = self.timers(now);
        // HAProxy's averages count the requests a server answered: queue, connect,
        // response and total times.
        if let (Some(sv), Some(_)) = (sv, r.first_byte) {
            let t = [timers[1], timers[2], timers[3], timers[4]].map(|v| v.max(0) as u64);
            let answered = |c: &Counters| c.hrsp.iter().map(|h| h.get()).sum::<u64>();
            sv.timing.record(answered(sv), t);
            be.timing.record(answered(be), t);
        }
        if let (Some(start), Some(first)) = (r.start, r.first_byte) {
            let total = now.saturating_duration_since(start).as_micros() as u64;
            st.record_latency(
                b,
                first.saturating_duration_since(start).as_micros() as u64,
                total,
            );
            if let Some(s) = r.server {
                st.record_server_latency(b, s, total);
            }
        }
    }

    /// HAProxy's timers of the request at `now`, in ms (-1: did not happen): Tr
    /// (request head), Tw (queue), Tc (connect), Tr (server response), Tt (total).
    fn timers(&self, now: Instant) -> [i64; 5] {
        let r = self;
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
        let total = r
            .head_start
            .map_or(-1, |t| ms(now.saturating_duration_since(t)));
        [
            tr,
            r.queued.map_or(-1, ms),
            r.connected.map_or(-1, ms),
            tr_server,
            total,
        ]
    }

    /// Appends the log line of the finished request (the frontend's log format).
    fn log_http(
        &self,
        shard: &Shard,
        frontend: usize,
        (peer, local): (SocketAddr, SocketAddr),
        request_line: &[u8],
        txn: &Txn,
    ) {
        let Some(log) = &shard.log else { return };
        let cfg = &shard.config;
        let fe = &cfg.frontends[frontend];
        let Some(line) = &fe.log_line else { return };
        let r = self;
        // `option dontlognull`: a connection that exchanged nothing.
        if fe.dont_log_null && r.bytes_in == 0 && r.bytes_out == 0 {
            return;
        }
        let error = r.term.unwrap_or(Term::NORMAL).is_error()
            || r.retries.redispatched
            || (r.term.is_none_or(|t| !t.is_error()) && r.retries.count > 0)
            || txn.status.unwrap_or(r.status) >= 500;
        let Some(level) = log_level(fe, cfg, txn, error) else {
            return;
        };
        let st = &shard.stats;
        let backend = r.backend;
        let b = backend.map(|b| &cfg.backends[b]);
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
        let server = match (b, r.server, r.applet) {
            (Some(b), Some(s), _) => b.servers[s as usize].name.as_str(),
            (_, _, Some(a)) => a.name(),
            _ => "<NOSRV>",
        };
        let ta = since(r.head_start);
        let term = r.term.unwrap_or(Term::NORMAL).with_cookie(r.cookie);
        let facts = Facts {
            accepted: r.date,
            request: r.date,
            // A request answered before a backend was chosen logs the frontend.
            backend: b.map_or(fe.name.as_str(), |b| b.name.as_str()),
            server,
            server_addr: backend.zip(r.server).map(|(b, s)| live_addr(shard, b, s)),
            th: 0,
            ti: 0,
            tr_head: tr,
            tw: r.queued.map_or(-1, ms),
            tc: r.connected.map_or(-1, ms),
            tr_server,
            ta,
            tt: ta,
            status: txn.status.unwrap_or(r.status),
            bytes_out: r.bytes_out,
            bytes_in: r.bytes_in,
            term: term.as_str(),
            conns: [
                st.frontends.iter().map(|f| f.scur.get()).sum(),
                st.frontends[frontend].scur.get(),
                backend.map_or(0, |b| st.backend(b).scur.get()),
                backend
                    .zip(r.server)
                    .map_or(0, |(b, s)| st.server(b, s as usize).scur.get()),
            ],
            retries: r.retries.count,
            redispatched: r.retries.redispatched,
            queues: [
                0,
                backend.map_or(0, |b| shard.upstreams.backends[b].queue_figures().0),
            ],
            request_line: (!request_line.is_empty()).then_some(request_line),
            counter: 0,
        };
        let mut ctx = crate::rules::Ctx::new(peer, local, txn);
        ctx.dir = crate::rules::Dir::Res;
        ctx.world = Some(shard);
        ctx.frontend = frontend;
        ctx.backend = backend;
        ctx.server = r.server;
        log.line(line, &ctx, &facts, level);
    }
}

/// The address the server has on this shard now: DNS or `set server addr` may have
/// moved it since the config was read, and `%si`/`%sp` name where the bytes went.
fn live_addr(shard: &Shard, backend: usize, server: u32) -> SocketAddr {
    shard.upstreams.backends[backend].servers[server as usize]
        .addr
        .get()
}

/// The severity of a finished request's or connection's line, or `None` when it is
/// not logged, as HAProxy's `strm_log`: `option dontlog-normal` keeps errors only,
/// `set-log-level` decides (`silent`: nothing), else `err` for an error under
/// `option log-separate-errors`, else `info`; a line less severe than the target
/// takes is not even formatted.
fn log_level(
    fe: &crate::config::Frontend,
    cfg: &crate::config::Config,
    txn: &Txn,
    error: bool,
) -> Option<u8> {
    if !error && fe.dont_log_normal {
        return None;
    }
    let level = match txn.log_level {
        Some(8) => return None,
        Some(l) => l,
        None if error && fe.log_errors_as_err => crate::config::LOG_LEVEL_ERR,
        None => crate::config::LOG_LEVEL_INFO,
    };
    (level <= cfg.log.as_ref()?.level).then_some(level)
}

/// What a finished connection's log line says.
pub struct TcpLine {
    pub server: Option<u32>,
    /// %Tw/%Tc/%Tt in milliseconds.
    pub timers: [i64; 3],
    pub bytes: u64,
    pub retries: Retries,
    pub term: Term,
}

impl TcpLine {
    /// Appends the log line of a finished connection (the frontend's log format).
    pub fn log(
        &self,
        shard: &Shard,
        frontend: usize,
        backend: usize,
        (peer, local): (SocketAddr, SocketAddr),
        date: std::time::SystemTime,
        txn: &Txn,
    ) {
        let line = self;
        let Some(log) = &shard.log else { return };
        let fe = &shard.config.frontends[frontend];
        let Some(format) = &fe.log_line else { return };
        let b = &shard.config.backends[backend];
        let st = &shard.stats;
        if fe.dont_log_null && line.bytes == 0 {
            return;
        }
        let error = line.term.is_error()
            || line.retries.redispatched
            || (!line.term.is_error() && line.retries.count > 0);
        let Some(level) = log_level(fe, &shard.config, txn, error) else {
            return;
        };
        let server = line.server;
        let [tw, tc, tt] = line.timers;
        let facts = Facts {
            accepted: Some(date),
            request: Some(date),
            backend: &b.name,
            server: server
                .map(|s| b.servers[s as usize].name.as_str())
                .unwrap_or("<NOSRV>"),
            server_addr: server.map(|s| live_addr(shard, backend, s)),
            tr_head: -1,
            tw,
            tc,
            tr_server: -1,
            ta: tt,
            tt,
            bytes_out: line.bytes,
            term: line.term.as_str(),
            conns: [
                st.frontends.iter().map(|f| f.scur.get()).sum(),
                st.frontends[frontend].scur.get(),
                st.backend(backend).scur.get(),
                server.map_or(0, |s| st.server(backend, s as usize).scur.get()),
            ],
            retries: line.retries.count,
            redispatched: line.retries.redispatched,
            queues: [0, shard.upstreams.backends[backend].queue_figures().0],
            ..Default::default()
        };
        let mut ctx = crate::rules::Ctx::new(peer, local, txn);
        ctx.world = Some(shard);
        ctx.frontend = frontend;
        ctx.backend = Some(backend);
        ctx.server = server;
        log.line(format, &ctx, &facts, level);
    }
}

#[cfg(test)]
mod tests {
    use super::Term;

    #[test]
    fn both_log_formats_read_the_same_state() {
        assert_eq!(Term::SERVER_QUEUE.as_str(), "sQ--");
        assert_eq!(Term::SERVER_QUEUE.short(), "sQ");
        assert_eq!(Term::NORMAL.short(), "--");
        assert_eq!(Term::SERVER_CONNECT.to_string(), "SC--");
    }
}
