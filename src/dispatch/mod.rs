//! The server side that every client-side protocol shares (HTTP/1 requests, TCP
//! connections, and HTTP/2 streams next): for one request, a server slot (sticky
//! server, balancer, or the backend's queue), an idle pooled connection or a new one
//! (with its PROXY header, then TLS to an `ssl` server), the retry decision after a
//! failure (`verdict`, a pure
//! function), and every counter and passive-health report that goes with them.
//!
//! Owns: the attempt's state (servers tried, failures), the slot guard. May not touch:
//! the client connection or any protocol's framing; callers send and receive.

mod slot;
mod verdict;
pub use slot::Slot;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;

pub use verdict::{verdict, Failure, Situation, Verdict};

use crate::io::{write_range, Timer};
use crate::record::{Retries, Term};
use crate::shard::Shard;
use crate::stats::Counters;
use crate::tls::{ServerStream, SniSource};
use crate::upstream::{AcquireError, Taken, Tried};

/// Whether an attempt may take an idle pooled connection (each is checked before it
/// is handed out: one that turned readable while idle never serves a request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolUse {
    /// Always a new connection (TCP mode).
    Never,
    Pooled,
}

/// No server will answer: the status for the client, the termination state, and for
/// the log the last server tried (HAProxy names it) and the retries made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveUp {
    pub status: u16,
    pub term: Term,
    pub server: Option<u32>,
    pub retries: Retries,
}

/// A connection to a server, holding the request's slot on it. Kept small: it moves
/// through every request's future (the attempt's timings stay in `Dispatch`).
pub struct ServerConn {
    pub server: u32,
    /// Came from the pool: the server may have closed it meanwhile.
    pub reused: bool,
    pub stream: ServerStream,
    /// Its SNI tag (see `upstream::pool`), to pool it with its peers.
    pub tag: u64,
    pub slot: Slot,
}

/// The timings of the attempt `Dispatch::next` returned last, for the log.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// Waiting for the slot, and connecting (0 for a pooled connection).
    pub queued: Duration,
    pub connected: Duration,
    /// When the connection was ready for the request.
    pub ready: Instant,
    /// Failed attempts before this one.
    pub retries: Retries,
}

/// One request's way to a server of `backend`, across its attempts.
pub struct Dispatch {
    shard: Rc<Shard>,
    backend: usize,
    /// The balancing hash of a `hash` backend, and the stick-table key.
    hash: Option<u32>,
    stick: Option<u64>,
    /// The client and the address it connected to, for a PROXY header.
    client: (SocketAddr, SocketAddr),
    tried: Tried,
    failures: u32,
    redispatched: bool,
    /// The server of the last attempt, for the log of a request no server answered.
    last: Option<u32>,
    stale_retried: bool,
    /// The first attempt's queue clock starts when the request was read.
    first_ask: Option<Instant>,
    /// The slot the next attempt keeps (a retry on the same server).
    kept: Option<Slot>,
    /// The next attempt must open a new connection (the pooled one was stale).
    fresh: bool,
    /// The server a `use-server` rule chose, tried first on the first attempt.
    forced: Option<u32>,
    /// `forced` came from a persistence cookie: its server takes the request in
    /// whatever state the cookie found it (drained, or down under `option persist`).
    pinned: bool,
    /// The stick record read for the current attempt, and when it was asked.
    recorded: Option<u32>,
    asked: Instant,
    /// The server being connected and since when, while a connect is under way (for
    /// a client that leaves meanwhile: `abandoned`).
    connecting: Option<(u32, Instant)>,
    /// The last connect attempt ran out of `timeout connect` (logged `sC`).
    connect_timed_out: bool,
    /// The names a server's SNI may come from (`sni req.hdr(host)`, `sni
    /// ssl_fc_sni`): kept only for a backend that has such a server.
    sni_host: Option<Box<str>>,
    sni_client: Option<Box<str>>,
    /// The timings of the attempt `next` returned last.
    pub times: Times,
}

impl Dispatch {
    /// `start`: when the request was read (the queue time counts from it).
    pub fn new(
        shard: &Rc<Shard>,
        backend: usize,
        hash: Option<u32>,
        stick: Option<u64>,
        client: (SocketAddr, SocketAddr),
        start: Instant,
    ) -> Dispatch {
        Dispatch {
            shard: shard.clone(),
            backend,
            hash,
            stick,
            client,
            tried: Tried::default(),
            failures: 0,
            redispatched: false,
            last: None,
            stale_retried: false,
            first_ask: Some(start),
            kept: None,
            fresh: false,
            forced: None,
            pinned: false,
            recorded: None,
            asked: start,
            connecting: None,
            connect_timed_out: false,
            sni_host: None,
            sni_client: None,
            times: Times {
                queued: Duration::ZERO,
                connected: Duration::ZERO,
                ready: start,
                retries: Retries::default(),
            },
        }
    }

    /// The request's Host (without port), for servers whose SNI is `req.hdr(host)`.
    pub fn host_sni(&mut self, host: Option<&str>) {
        if self.shard.upstreams.backends[self.backend].sni_from_host {
            self.sni_host = host.map(Into::into);
        }
    }

    /// The client's SNI, for servers whose SNI is `ssl_fc_sni`.
    pub fn client_sni(&mut self, sni: Option<&str>) {
        if self.shard.upstreams.backends[self.backend].sni_from_client {
            self.sni_client = sni.map(Into::into);
        }
    }

    /// The dynamic SNI for `server`, if it takes one.
    fn sni_for(&self, server: u32) -> Option<&str> {
        let s = &self.shard.upstreams.backends[self.backend].servers[server as usize];
        match s
            .tls
            .as_ref()
            .and_then(|t| t.settings.settings.sni.as_ref())
        {
            Some(SniSource::HostHeader) => self.sni_host.as_deref(),
            Some(SniSource::ClientSni) => self.sni_client.as_deref(),
            _ => None,
        }
    }

    /// The server a `use-server` rule chose: the first attempt goes there while it
    /// can take the request (a retry balances as usual).
    pub fn use_server(&mut self, server: Option<u32>) {
        self.forced = server;
    }

    /// The `use-server` server came from a persistence cookie (see `pinned`).
    pub fn pin(&mut self) {
        self.pinned = true;
    }

    /// The next attempt: a slot and a connection, after as many connect failures as
    /// the backend's retries allow. The steady path (a free slot, an idle pooled
    /// connection) is synchronous; waiting in the queue, connecting and retrying are
    /// boxed, so that their state does not weigh on every request's future.
    #[inline]
    pub async fn next(&mut self, pool: PoolUse, timer: &mut Timer) -> Result<ServerConn, GiveUp> {
        match self.at_once(pool)? {
            Some(conn) => Ok(conn),
            None => Box::pin(self.attempts(pool, timer)).await,
        }
    }

    /// The steady path: a slot taken at once and an idle pooled connection to its
    /// server. `Ok(None)`: the request must wait or connect (a slot taken meanwhile
    /// is kept for `attempts`).
    fn at_once(&mut self, pool: PoolUse) -> Result<Option<ServerConn>, GiveUp> {
        if self.kept.is_some() || self.fresh || pool == PoolUse::Never {
            return Ok(None);
        }
        let asked = self.first_ask.take().unwrap_or_else(Instant::now);
        self.asked = asked;
        let Some(taken) = self.slot_now(asked)? else {
            self.first_ask = Some(asked);
            return Ok(None);
        };
        let server = taken.server;
        let slot = Slot::new(&self.shard, self.backend, taken, asked);
        let tag = self.tag(server);
        let pooled = self
            .shard
            .upstreams
            .pooled(self.backend, server, asked.into_std(), tag);
        let Some(stream) = pooled else {
            // `attempts` connects on this slot: it is this attempt, not a retry.
            self.kept = Some(slot);
            self.first_ask = Some(asked);
            return Ok(None);
        };
        self.count_retry(server);
        self.count_connection(server, true);
        self.times = Times {
            queued: Duration::ZERO,
            connected: Duration::ZERO,
            ready: asked,
            retries: self.retries(),
        };
        Ok(Some(ServerConn {
            server,
            reused: true,
            stream,
            tag,
            slot,
        }))
    }

    /// The SNI tag of `server`'s connections for this request (0 unless its SNI comes
    /// from the request, the server takes the client's port, or DNS moved it).
    #[inline]
    fn tag(&self, server: u32) -> u64 {
        let s = &self.shard.upstreams.backends[self.backend].servers[server as usize];
        // A server without a port: its connections are told apart by the port they
        // went to (the client's destination port), so that none serves another port.
        let mut mapped = match s.port_offset {
            Some(_) => (u64::from(self.client.1.port()) << 48) | (1 << 47),
            None => 0,
        };
        // A server at 0.0.0.0 is the client's destination: told apart by that address.
        if s.addr.get().ip().is_unspecified() {
            mapped ^= any_addr_tag(self.client.1.ip());
        }
        // A connection opened before the server moved (DNS, `set server addr`) and
        // pooled after it goes to the old address: it never matches again.
        let mapped = mapped ^ (u64::from(s.addr_gen.get() & 0x7fff) << 32);
        if self.sni_host.is_none() && self.sni_client.is_none() {
            return mapped;
        }
        mapped
            ^ self
                .shard
                .upstreams
                .sni_tag(self.backend, server, self.sni_for(server))
    }

    /// Where a `next` dropped before it ended stood (its client left: `option
    /// abortonclose`): connecting a server (`CC`, that server, the time queued), or
    /// waiting for a slot (`CQ`, no server, the time waited so far), as HAProxy logs
    /// them; the client abort is counted on the backend (and the server).
    pub fn abandoned(&self) -> (Term, Option<u32>, Duration) {
        let st = &self.shard.stats;
        Counters::inc(&st.backend(self.backend).cli_abrt);
        match self.connecting {
            Some((server, at)) => {
                Counters::inc(&st.server(self.backend, server as usize).cli_abrt);
                (
                    Term::CLIENT_CONNECT,
                    Some(server),
                    at.saturating_duration_since(self.asked),
                )
            }
            None => (Term::CLIENT_QUEUE, None, self.asked.elapsed()),
        }
    }

    /// Attempts until one connects or the retries are used up.
    async fn attempts(&mut self, pool: PoolUse, timer: &mut Timer) -> Result<ServerConn, GiveUp> {
        loop {
            // One clock read serves the queue deadline and the log's queue time.
            let asked = self.first_ask.take().unwrap_or_else(Instant::now);
            self.asked = asked;
            let slot = match self.kept.take() {
                Some(slot) => {
                    // Another attempt on the same server is another session there
                    // for HAProxy (the backend's stays one).
                    if self.failures > 0 {
                        let st = &self.shard.stats;
                        Counters::inc(&st.server(self.backend, slot.server() as usize).stot);
                    }
                    slot
                }
                None => {
                    let taken = match self.slot_now(asked)? {
                        Some(t) => t,
                        None => self.slot_wait(asked).await?,
                    };
                    Slot::new(&self.shard, self.backend, taken, asked)
                }
            };
            let (server, backend) = (slot.server(), self.backend);
            let connecting = Instant::now();
            self.count_retry(server);
            let tag = self.tag(server);
            let pooled = match pool {
                _ if std::mem::take(&mut self.fresh) => None,
                PoolUse::Never => None,
                PoolUse::Pooled => {
                    self.shard
                        .upstreams
                        .pooled(backend, server, connecting.into_std(), tag)
                }
            };
            self.count_connection(server, pooled.is_some());
            let connected = match pooled {
                Some(stream) => Ok((stream, true)),
                None => {
                    self.connecting = Some((server, connecting));
                    let r = self.connect(server, timer).await;
                    self.connecting = None;
                    r.map(|s| (s, false))
                }
            };
            match connected {
                Ok((stream, reused)) => {
                    // A pooled connection took no time to get (HAProxy's Tc is 0 too).
                    let ready = if reused { connecting } else { Instant::now() };
                    self.times = Times {
                        queued: connecting.saturating_duration_since(asked),
                        connected: ready.saturating_duration_since(connecting),
                        ready,
                        retries: self.retries(),
                    };
                    return Ok(ServerConn {
                        server,
                        reused,
                        stream,
                        tag,
                        slot,
                    });
                }
                Err(()) => {
                    // HAProxy counts a connection error once the request gives up
                    // (each attempt before is a retry warning).
                    if let Err(give_up) = self.decide(slot, Failure::Connect, false, true) {
                        let st = &self.shard.stats;
                        Counters::inc(&st.backend(backend).econ);
                        Counters::inc(&st.server(backend, server as usize).econ);
                        return Err(give_up);
                    }
                    if self.kept.is_some() {
                        // Again the same server, which just refused: HAProxy waits
                        // min(timeout connect, 1s) first, so that a restarting server
                        // is not hammered.
                        let conf = &self.shard.config.backends[backend];
                        let pause = conf.timeouts.connect.min(Duration::from_secs(1));
                        // Boxed: a monoio timer (640 bytes, 128-byte aligned) inline
                        // would size every request's dispatch state for this rare wait.
                        Box::pin(monoio::time::sleep(pause)).await;
                    }
                }
            }
        }
    }

    /// An attempt after a failure is a retry (and a redispatch once another server
    /// was tried).
    fn count_retry(&self, server: u32) {
        if self.failures == 0 {
            return;
        }
        let (st, b) = (&self.shard.stats, self.backend);
        let sv = st.server(b, server as usize);
        Counters::inc(&st.backend(b).wretr);
        Counters::inc(&sv.wretr);
        if !self.tried.is_empty() {
            Counters::inc(&st.backend(b).wredis);
            Counters::inc(&sv.wredis);
        }
    }

    /// An attempt on `server`: a pooled connection reused, or a new one tried
    /// (HAProxy's `reuse` and `connect`, failed connects included).
    #[inline]
    fn count_connection(&self, server: u32, reused: bool) {
        let (st, b) = (&self.shard.stats, self.backend);
        let sv = st.server(b, server as usize);
        for c in [st.backend(b), sv] {
            Counters::inc(if reused { &c.reuse } else { &c.connect });
        }
    }

    /// A slot at once, if there is one: the `use-server` or sticky server while it
    /// can take the request, else the balancer's choice when a server is free and nobody waits.
    fn slot_now(&mut self, asked: Instant) -> Result<Option<Taken>, GiveUp> {
        let shard = &self.shard;
        let be = &shard.upstreams.backends[self.backend];
        if let Some(t) = self.forced.filter(|_| self.failures == 0).and_then(|s| {
            if self.pinned {
                be.take_pinned(s)
            } else {
                be.take(s)
            }
        }) {
            return Ok(Some(t));
        }
        if let Some(k) = self.stick {
            self.recorded = shard.cluster.stuck(self.backend, k, asked.into_std());
            if let Some(t) = self
                .recorded
                .filter(|_| self.failures == 0)
                .and_then(|s| be.take(s))
            {
                return Ok(Some(t));
            }
        }
        be.try_acquire(self.hash, &self.tried)
            .map_err(|e| self.refused(e))
    }

    /// A slot from the backend's queue, within `timeout queue`.
    async fn slot_wait(&mut self, asked: Instant) -> Result<Taken, GiveUp> {
        let be = &self.shard.upstreams.backends[self.backend];
        let deadline = asked.into_std() + self.shard.config.backends[self.backend].timeouts.queue;
        be.acquire(self.hash, &self.tried, deadline)
            .await
            .map_err(|e| self.refused(e))
    }

    /// No slot: counted as a request the backend refused, answered with a 503.
    fn refused(&self, e: AcquireError) -> GiveUp {
        Counters::inc(&self.shard.stats.backend(self.backend).dreq);
        GiveUp {
            status: 503,
            term: match e {
                AcquireError::QueueTimeout | AcquireError::QueueFull => Term::SERVER_QUEUE,
                AcquireError::NoServer => Term::SERVER_CONNECT,
            },
            server: self.last,
            retries: self.retries(),
        }
    }

    /// A new connection to `server`, with the PROXY header the server wants, then TLS
    /// if it has `ssl` (a failed handshake, a bad certificate included, is a failed
    /// connect: retried, then 503).
    async fn connect(&mut self, server: u32, timer: &mut Timer) -> Result<ServerStream, ()> {
        let shard = &self.shard.clone();
        // A `proto h2` server: one request opens its connection at a time; those that
        // waited take a stream on it if it has room.
        let h2 = shard.upstreams.backends[self.backend].servers[server as usize]
            .h2
            .as_ref();
        let _turn = match h2 {
            Some(h2) => {
                let turn = h2.turn().await;
                if let Some(stream) = h2.stream() {
                    return Ok(stream);
                }
                turn
            }
            None => None,
        };
        let connected = shard
            .upstreams
            .connect(self.backend, server, self.client.1)
            .await;
        // HAProxy's `sC` rather than `SC` when the last attempt timed out.
        self.connect_timed_out =
            matches!(&connected, Err(e) if e.kind() == std::io::ErrorKind::TimedOut);
        let mut stream = connected.map_err(drop)?;
        let conf = &shard.config.backends[self.backend];
        if let Some(v) = conf.servers[server as usize].send_proxy {
            // The server learns who the client is before anything else.
            let mut hdr = Vec::with_capacity(64);
            crate::proxy_protocol::write(v, self.client.0, self.client.1, &mut hdr);
            let deadline = Instant::now() + conf.timeouts.server;
            let len = hdr.len();
            write_range(&mut stream, &mut hdr, 0..len, timer, deadline)
                .await
                .map_err(drop)?;
        }
        if shard.upstreams.backends[self.backend].servers[server as usize].plain() {
            return Ok(crate::tls::MaybeTls::Plain(stream));
        }
        // Boxed: a TLS or HTTP/2 opening (4 KiB, 128-byte aligned for its timer) inline
        // would size the dispatch state of every request, plain or not.
        Box::pin(
            shard
                .upstreams
                .secure(self.backend, server, stream, self.sni_for(server)),
        )
        .await
        .map_err(drop)
    }

    /// The attempt on `conn` failed after it was connected. `Ok`: call `next` again;
    /// `Err`: no more attempts.
    pub fn failed(
        &mut self,
        conn: ServerConn,
        failure: Failure,
        may_resend: bool,
    ) -> Result<(), GiveUp> {
        let reused = conn.reused;
        if failure != Failure::Connect {
            let situation = self.situation(failure, reused, may_resend, conn.server);
            if counts_against_server(&situation) {
                let st = &self.shard.stats;
                Counters::inc(&st.backend(self.backend).eresp);
                Counters::inc(&st.server(self.backend, conn.server as usize).eresp);
            }
        }
        self.decide(conn.slot, failure, reused, may_resend)
    }

    /// The failed attempt at `server`, as the verdict sees it.
    fn situation(
        &self,
        failure: Failure,
        reused: bool,
        may_resend: bool,
        server: u32,
    ) -> Situation {
        let conf = &self.shard.config.backends[self.backend];
        let be = &self.shard.upstreams.backends[self.backend];
        Situation {
            failure,
            reused,
            stale_retried: self.stale_retried,
            may_resend,
            failures: self.failures + 1,
            retries: conf.retries,
            redispatch: conf.redispatch,
            redispatch_after: conf.redispatch_after,
            server_down: be
                .servers
                .get(server as usize)
                .is_some_and(|sv| !sv.up.get()),
            // HAProxy's test is "not a hash-input algorithm" (`random` is one).
            any_server: self.forced.is_none()
                && !matches!(
                    conf.balance,
                    crate::config::BalanceAlgo::Hash { .. }
                        | crate::config::BalanceAlgo::Random { .. }
                )
                && be.usable_counts().0 > 1,
        }
    }

    /// Applies the verdict on a failed attempt that held `slot`.
    fn decide(
        &mut self,
        slot: Slot,
        failure: Failure,
        reused: bool,
        may_resend: bool,
    ) -> Result<(), GiveUp> {
        let server = slot.server();
        let situation = self.situation(failure, reused, may_resend, server);
        let v = verdict(&situation);
        self.last = Some(server);
        if v != Verdict::Fresh {
            self.failures += 1;
            self.shard.upstreams.report_failure(self.backend, server);
        }
        match v {
            Verdict::Fresh => {
                self.stale_retried = true;
                self.fresh = true;
                self.kept = Some(slot);
            }
            Verdict::RetrySame => self.kept = Some(slot),
            Verdict::Redispatch => {
                self.tried.add(server);
                self.redispatched = true;
            }
            Verdict::GiveUp { status, term } => {
                let term = if failure == Failure::Connect && self.connect_timed_out {
                    Term::SERVER_TIMEOUT_CONNECT
                } else {
                    term
                };
                // The last attempt failed too: it is not a retry of its own.
                let retries = Retries {
                    count: self.failures.saturating_sub(1),
                    redispatched: self.redispatched,
                };
                return Err(GiveUp {
                    status,
                    term,
                    server: Some(server),
                    retries,
                });
            }
        }
        Ok(())
    }

    /// The server answered: its failure streak ends, and a sticky client sticks to it.
    pub fn succeeded(&self, conn: &ServerConn) {
        let shard = &self.shard;
        shard.upstreams.report_success(self.backend, conn.server);
        if let Some(k) = self.stick {
            shard.cluster.learn(
                self.backend,
                k,
                conn.server,
                self.recorded,
                self.asked.into_std(),
            );
        }
    }

    /// The exchange on `conn` ended; a connection that may carry another request goes
    /// back to the pool, unless it announced this client (PROXY header) or the proxy
    /// closes server connections after each response.
    #[inline]
    pub fn finish(&self, conn: ServerConn, reusable: bool, server_close: bool) {
        let shard = &self.shard;
        let conf = &shard.config.backends[self.backend];
        if reusable
            && !server_close
            && !conf.server_close
            && conf.servers[conn.server as usize].send_proxy.is_none()
        {
            shard
                .upstreams
                .release_conn(self.backend, conn.server, conn.stream, conn.tag);
        }
    }

    pub fn backend(&self) -> usize {
        self.backend
    }

    fn retries(&self) -> Retries {
        Retries {
            count: self.failures,
            redispatched: self.redispatched,
        }
    }
}

use verdict::counts_against_server;

/// The pool tag part of a server at 0.0.0.0 reached at `ip` (the client's destination).
fn any_addr_tag(ip: std::net::IpAddr) -> u64 {
    let h = match ip {
        std::net::IpAddr::V4(v4) => xxhash_rust::xxh3::xxh3_64(&v4.octets()),
        std::net::IpAddr::V6(v6) => xxhash_rust::xxh3::xxh3_64(&v6.octets()),
    };
    h | 1
}
