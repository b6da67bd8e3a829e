//! Per-shard statistics: plain `Cell` counters and `hdrhistogram` latency histograms,
//! touched only by their shard. The admin thread asks every shard for a snapshot (an
//! owned copy sent over a channel) and merges them; nothing on the request path is
//! shared between threads.

use std::cell::{Cell, RefCell};

use hdrhistogram::Histogram;

use crate::config::Config;

pub use crate::freq::{Rate, RateTotals, TimeTotals, Timing, TIME_SAMPLES};
use lazy::histogram;
pub use lazy::{Latency, LatencySlot, ServerCounters, ServerLatency};

mod lazy;
mod snapshot;
pub use snapshot::Snapshot;

/// Process-wide counters: events of the process itself, not of a proxy or a server.
/// Rare events only (an atomic add each), read by the metrics.
pub mod process {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Shard runtimes that died of a panic and were started again (all shards).
    pub static SHARD_RESTARTS: AtomicU64 = AtomicU64::new(0);
    /// `-sf` hand-overs that failed in this process's start.
    pub static HANDOVER_FAILURES: AtomicU64 = AtomicU64::new(0);

    /// Times a shard's control loop woke up (messages, timers), all shards.
    pub static CONTROL_WAKEUPS: AtomicU64 = AtomicU64::new(0);
    /// Control messages shards applied (health flips, operator changes, ...).
    pub static CONTROL_MESSAGES: AtomicU64 = AtomicU64::new(0);

    /// From a control message's sending to its application on a shard, in
    /// microseconds (all shards; recorded off the request path).
    pub fn control_latency() -> &'static std::sync::Mutex<hdrhistogram::Histogram<u64>> {
        static H: std::sync::OnceLock<std::sync::Mutex<hdrhistogram::Histogram<u64>>> =
            std::sync::OnceLock::new();
        H.get_or_init(|| {
            std::sync::Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2)
                    .expect("valid histogram bounds"),
            )
        })
    }

    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// The instant the process's rate counters and last-session dates count from
    /// (fixed at first use, which `Core::new` makes early).
    pub fn epoch() -> std::time::Instant {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(std::time::Instant::now)
    }
}

macro_rules! counters {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {
        /// Live counters of one proxy or server on one shard.
        #[derive(Default)]
        pub struct Counters {
            $(#[$doc] pub $name: Cell<u64>,)*
            /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
            pub hrsp: [Cell<u64>; 6],
            /// Sessions per second (frontend: connections; backend, server: requests
            /// or connections given a server).
            pub rate: Rate,
            /// HTTP requests per second (frontends).
            pub req_rate: Rate,
            /// Queue, connect, response and total times (backends, servers).
            pub timing: Timing,
            /// When a session last went to this backend or server (`Timing::stamp`).
            pub last_sess: Cell<u64>,
        }

        /// A snapshot of `Counters`, summable across shards.
        #[derive(Debug, Default, Clone, PartialEq, Eq)]
        pub struct Totals {
            $(#[$doc] pub $name: u64,)*
            pub hrsp: [u64; 6],
            pub rate: RateTotals,
            pub req_rate: RateTotals,
            pub timing: TimeTotals,
            /// Milliseconds after the process's epoch, plus one (0: never).
            pub last_sess: u64,
        }

        impl Counters {
            /// Takes over every counter of the previous generation's `old` (a
            /// reload). Gauges (current sessions, queue) start again from zero: the
            /// old generation's sessions are not ours.
            pub fn adopt(&self, old: &Counters) {
                $(self.$name.set(old.$name.get());)*
                for i in 0..6 {
                    self.hrsp[i].set(old.hrsp[i].get());
                }
                self.rate.copy_from(&old.rate);
                self.req_rate.copy_from(&old.req_rate);
                self.timing.copy_from(&old.timing);
                self.last_sess.set(old.last_sess.get());
                self.scur.set(0);
                self.qcur.set(0);
                self.active.set(0);
                // Gauges: the old generation's connections take theirs down on the
                // old cells (a copy here would never come down).
                self.tls_cur.set(0);
            }

            /// The figures now (`now_ms`: the shard's clock, for the rates).
            pub fn snapshot(&self, now_ms: u64) -> Totals {
                let hrsp: [u64; 6] = std::array::from_fn(|i| self.hrsp[i].get());
                // HAProxy averages over the requests answered (HTTP) or the
                // connections given a server (TCP), at most the last 1,024.
                let answered: u64 = hrsp.iter().sum();
                let samples = if answered > 0 { answered } else { self.lbtot.get() };
                Totals {
                    $($name: self.$name.get(),)*
                    hrsp,
                    rate: self.rate.snapshot(now_ms),
                    req_rate: self.req_rate.snapshot(now_ms),
                    timing: self.timing.snapshot(samples),
                    last_sess: self.last_sess.get(),
                }
            }
        }

        impl Counters {
            /// `clear counters`: the maxima start again from the current values;
            /// with `all`, every counter starts again from zero (gauges stay).
            pub fn clear(&self, all: bool) {
                if all {
                    let (scur, qcur, active) = (self.scur.get(), self.qcur.get(), self.active.get());
                    $(self.$name.set(0);)*
                    for h in &self.hrsp {
                        h.set(0);
                    }
                    self.rate.copy_from(&Rate::default());
                    self.req_rate.copy_from(&Rate::default());
                    self.timing.copy_from(&Timing::default());
                    self.last_sess.set(0);
                    self.scur.set(scur);
                    self.qcur.set(qcur);
                    self.active.set(active);
                }
                self.smax.set(self.scur.get());
                self.qmax.set(self.qcur.get());
                self.rate.clear_max();
                self.req_rate.clear_max();
                self.timing.clear_max();
            }
        }

        impl Totals {
            /// Adds another shard's figures; maxima of gauges are summed too, which
            /// bounds the true maximum from above (shards peak at different times).
            /// Time maxima and the last session take the larger of the two.
            pub fn add(&mut self, o: &Totals) {
                $(self.$name += o.$name;)*
                for i in 0..6 {
                    self.hrsp[i] += o.hrsp[i];
                }
                self.rate.add(&o.rate);
                self.req_rate.add(&o.req_rate);
                self.timing.add(&o.timing);
                self.last_sess = self.last_sess.max(o.last_sess);
            }
        }
    };
}

counters! {
    /// Current sessions (frontend: connections; backend/server: active requests).
    scur,
    /// Highest `scur` seen.
    smax,
    /// Total sessions.
    stot,
    /// Bytes received from clients.
    bin,
    /// Bytes sent to clients.
    bout,
    /// HTTP requests.
    req_tot,
    /// Request errors (400, 408, 431).
    ereq,
    /// Connection errors to servers.
    econ,
    /// Response errors (invalid response, reset, timeout).
    eresp,
    /// Retries.
    wretr,
    /// Redispatches to another server.
    wredis,
    /// Times a server was chosen.
    lbtot,
    /// Requests waiting in the queue now.
    qcur,
    /// Highest `qcur` seen.
    qmax,
    /// Requests refused by a local 503 (no server, queue full or timed out).
    dreq,
    /// Connection handlers that panicked (the connection was closed).
    panics,
    /// TLS handshakes completed on a frontend.
    tls_done,
    /// ... of which resumed a session.
    tls_resumed,
    /// TLS handshakes that failed or timed out.
    tls_failed,
    /// TLS connections open now (a gauge).
    tls_cur,
    /// HTTP requests in progress (frontends; HAProxy's `h1_open_streams`).
    active,
    /// Response body bytes spliced to the client (HAProxy's `h1_spliced_bytes_out`).
    spliced_out,
    /// Transfers aborted by the client (HAProxy's `cli_abrt`).
    cli_abrt,
    /// Transfers aborted by the server (`srv_abrt`).
    srv_abrt,
    /// New connections to servers (`connect`).
    connect,
    /// Requests sent on an idle pooled server connection (`reuse`).
    reuse,
    /// Requests the proxy answered itself: deny, return, redirect, stats, metrics.
    intercepted,
    /// Requests refused by an `http-request deny` (frontends: HAProxy's `dreq`).
    denied,
    /// Responses refused by an `http-response deny` (`dresp`).
    dresp,
    /// Connections refused by `tcp-request connection reject` (`dcon`).
    dcon,
    /// Sessions refused by `tcp-request session reject` (`dses`).
    dses,
    /// HTTP/2 connections ended with GOAWAY(ENHANCE_YOUR_CALM) for a PING flood.
    h2_calm_ping,
    /// ... for a SETTINGS flood.
    h2_calm_settings,
    /// ... for empty DATA frames that do not end their stream.
    h2_calm_empty_data,
    /// ... for a CONTINUATION flood or a header block never finished.
    h2_calm_continuation,
    /// ... for streams reset by the client before their answer (Rapid Reset).
    h2_calm_rapid_reset,
    /// ... for streams ringlb reset because of the client's frames (MadeYouReset).
    h2_calm_local_resets,
    /// HTTP/2 frames received from clients (HAProxy's h2 module): HEADERS,
    h2_headers_rcvd,
    /// ... DATA,
    h2_data_rcvd,
    /// ... SETTINGS,
    h2_settings_rcvd,
    /// ... RST_STREAM,
    h2_rst_stream_rcvd,
    /// ... GOAWAY.
    h2_goaway_rcvd,
    /// HTTP/2 connections ended for a protocol error (GOAWAY PROTOCOL_ERROR sent).
    h2_conn_proto_err,
    /// RST_STREAM frames sent to clients on an error (any code but NO_ERROR).
    h2_rst_stream_resp,
    /// GOAWAY frames sent to clients on an error.
    h2_goaway_resp,
    /// HTTP/2 client connections open now (a gauge).
    h2_open_conns,
    /// HTTP/2 client connections since the start.
    h2_total_conns,
    /// HTTP/2 streams open now (a gauge; HAProxy's `h2_backend_open_streams`).
    h2_open_streams,
    /// HTTP/2 streams since the start (`h2_backend_total_streams`).
    h2_total_streams,
}

impl Counters {
    pub fn inc(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }

    pub fn add(c: &Cell<u64>, n: u64) {
        c.set(c.get() + n);
    }

    /// Raises a gauge and its maximum.
    pub fn up(&self, cur: &Cell<u64>, max: &Cell<u64>) {
        cur.set(cur.get() + 1);
        if cur.get() > max.get() {
            max.set(cur.get());
        }
    }

    pub fn down(cur: &Cell<u64>) {
        cur.set(cur.get().saturating_sub(1));
    }

    pub fn response(&self, status: u16) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        Self::inc(&self.hrsp[class]);
    }
}

/// Events of the process on one shard (HAProxy's global counters).
#[derive(Default)]
pub struct ProcessCounters {
    /// Connections accepted per second, all frontends.
    pub conn_rate: Rate,
    /// Bytes sent to clients per second, counted in 32-byte units as HAProxy does.
    pub out_rate: Rate,
}

/// `ProcessCounters` at a snapshot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProcessTotals {
    pub conn_rate: RateTotals,
    /// Bytes per second (already multiplied back from 32-byte units).
    pub out_rate: RateTotals,
}

impl ProcessTotals {
    pub fn add(&mut self, o: &ProcessTotals) {
        self.conn_rate.add(&o.conn_rate);
        self.out_rate.add(&o.out_rate);
    }
}

/// A request a frontend refused as invalid, as it arrived (`show errors`).
#[derive(Debug, Clone)]
pub struct Capture {
    pub frontend: usize,
    pub peer: std::net::SocketAddr,
    pub when: std::time::SystemTime,
    /// The shard's error number (HAProxy's `event #N`).
    pub event: u64,
    pub bytes: Vec<u8>,
}

/// A gauge raised while this guard lives (a request in progress).
pub struct Busy<'a>(&'a Cell<u64>);

impl<'a> Busy<'a> {
    #[inline]
    pub fn new(gauge: &'a Cell<u64>) -> Busy<'a> {
        gauge.set(gauge.get() + 1);
        Busy(gauge)
    }
}

impl Drop for Busy<'_> {
    #[inline]
    fn drop(&mut self) {
        Counters::down(self.0);
    }
}

/// One shard's statistics.
pub struct ShardStats {
    pub frontends: Vec<Counters>,
    /// Per backend, made at its first use on this shard (`backend`): with thousands of
    /// backends, most see no request on a given shard.
    backend_counters: Vec<std::cell::OnceCell<Box<Counters>>>,
    /// Per backend: its servers' counters and request times, made at first use.
    servers: Vec<ServerCounters>,
    pub latency: Vec<LatencySlot>,
    /// The last invalid request of each frontend (`show errors`), and how many
    /// there were.
    captures: RefCell<Vec<Capture>>,
    errors_seen: Cell<u64>,
    /// The process's events on this shard.
    pub process: ProcessCounters,
    /// The process's epoch (`process::epoch`), which rates and dates count from.
    epoch: std::time::Instant,
}

impl ShardStats {
    /// The counters of server `s` of backend `b` (the backend's first use of a server
    /// counter on this shard allocates them all).
    pub fn server(&self, b: usize, s: usize) -> &Counters {
        &self.servers[b].all()[s]
    }

    /// The counters of server `s` of backend `b`, if it has one (allocated as by
    /// `server`).
    pub fn server_checked(&self, b: usize, s: usize) -> Option<&Counters> {
        self.servers.get(b)?.all().get(s)
    }

    /// Server `s` of backend `b`'s current connections (0 before its first use; nothing
    /// allocated).
    pub fn server_scur(&self, b: usize, s: usize) -> u64 {
        self.servers[b].get(s).map_or(0, |c| c.scur.get())
    }

    /// Bytes in and out, added to the frontend and, when known, the backend and server.
    pub fn traffic(
        &self,
        frontend: usize,
        backend: Option<usize>,
        server: Option<u32>,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let add = |c: &Counters| {
            Counters::add(&c.bin, bytes_in);
            Counters::add(&c.bout, bytes_out);
        };
        add(&self.frontends[frontend]);
        if let Some(b) = backend {
            add(self.backend(b));
            if let Some(sv) = server.and_then(|s| self.servers[b].all().get(s as usize)) {
                add(sv);
            }
        }
    }

    /// Milliseconds from the process's epoch to `t` (the clock of rates and dates).
    #[inline]
    pub fn ms(&self, t: std::time::Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// A session went to backend `b` (and server `s`) at `now_ms`: its rate, its
    /// date.
    #[inline]
    pub fn session(&self, b: usize, s: u32, now_ms: u64) {
        let be = self.backend(b);
        be.rate.add(now_ms, 1);
        be.last_sess.set(now_ms + 1);
        if let Some(sv) = self.server_checked(b, s as usize) {
            sv.rate.add(now_ms, 1);
            sv.last_sess.set(now_ms + 1);
        }
    }

    pub fn new(cfg: &Config) -> Self {
        ShardStats {
            process: ProcessCounters::default(),
            captures: RefCell::new(Vec::new()),
            errors_seen: Cell::new(0),
            epoch: process::epoch(),
            frontends: cfg.frontends.iter().map(|_| Counters::default()).collect(),
            backend_counters: cfg.backends.iter().map(|_| Default::default()).collect(),
            servers: cfg
                .backends
                .iter()
                .map(|b| ServerCounters::new(b.servers.len()))
                .collect(),
            latency: cfg
                .backends
                .iter()
                .map(|_| LatencySlot::default())
                .collect(),
        }
    }

    /// Backend `b`'s counters (made now if this is their first use on this shard).
    #[inline]
    pub fn backend(&self, b: usize) -> &Counters {
        self.backend_counters[b].get_or_init(Box::default)
    }

    /// Backend `b`'s counters, if it was ever used on this shard (readers make none).
    pub fn backend_used(&self, b: usize) -> Option<&Counters> {
        self.backend_counters.get(b)?.get().map(|c| &**c)
    }

    /// Carries the counters of proxies and servers that exist in both configs over
    /// from the previous generation (a reload); backends and servers that stay share
    /// their histograms with it.
    pub fn adopt(&mut self, old: &ShardStats, old_cfg: &Config, cfg: &Config) {
        let copy = |to: &Counters, from: &Counters| to.adopt(from);
        self.errors_seen.set(old.errors_seen.get());
        *self.captures.borrow_mut() = old
            .captures
            .borrow()
            .iter()
            .filter_map(|c| {
                let name = &old_cfg.frontends.get(c.frontend)?.name;
                let fi = cfg.frontends.iter().position(|f| &f.name == name)?;
                Some(Capture {
                    frontend: fi,
                    ..c.clone()
                })
            })
            .collect();
        self.process.conn_rate.copy_from(&old.process.conn_rate);
        self.process.out_rate.copy_from(&old.process.out_rate);
        for (i, f) in cfg.frontends.iter().enumerate() {
            if let Some(o) = old_cfg.frontends.iter().position(|x| x.name == f.name) {
                copy(&self.frontends[i], &old.frontends[o]);
            }
        }
        let old_backends = crate::config::by_name(&old_cfg.backends, |b| &b.name);
        for (i, b) in cfg.backends.iter().enumerate() {
            let Some(&o) = old_backends.get(b.name.as_str()) else {
                continue;
            };
            if let Some(from) = old.backend_used(o) {
                copy(self.backend(i), from);
            }
            self.latency[i].clone_from(&old.latency[o]);
            let from = &old.servers[o];
            if from.counters.get().is_none() && from.latency.get().is_none() {
                continue;
            }
            // Each server's place in the old generation, if it had it.
            let before: Vec<Option<usize>> = b
                .servers
                .iter()
                .map(|s| {
                    let old_servers = &old_cfg.backends[o].servers;
                    old_servers.iter().position(|x| x.name == s.name)
                })
                .collect();
            for (j, os) in before.iter().enumerate() {
                if let Some(c) = os.and_then(|os| from.get(os)) {
                    copy(self.server(i, j), c);
                }
            }
            // Made now if need be, so that requests still finishing on the old
            // generation record into the slots the new one reads.
            let old_latency = from.latencies();
            let shared = before.iter().map(|os| match os {
                Some(os) => old_latency[*os].clone(),
                None => ServerLatency::default(),
            });
            let _ = self.servers[i].latency.set(shared.collect());
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = self.ms(std::time::Instant::now());
        let snap = |c: &Counters| c.snapshot(now);
        let p = &self.process;
        let mut out_rate = p.out_rate.snapshot(now);
        out_rate.cur *= 32;
        out_rate.max *= 32;
        Snapshot {
            now_ms: now,
            process: ProcessTotals {
                conn_rate: p.conn_rate.snapshot(now),
                out_rate,
            },
            frontends: self.frontends.iter().map(snap).collect(),
            backends: {
                // A backend never used here reads as fresh counters.
                let fresh = snap(&Counters::default());
                self.backend_counters
                    .iter()
                    .map(|c| c.get().map_or_else(|| fresh.clone(), |c| snap(c)))
                    .collect()
            },
            servers: self.servers.iter().map(|s| s.snapshot(now)).collect(),
            latency: self
                .latency
                .iter()
                .map(|l| l.borrow().as_deref().cloned())
                .collect(),
            server_latency: self
                .servers
                .iter()
                .map(ServerCounters::latency_snapshot)
                .collect(),
        }
    }

    /// Keeps a copy of an invalid request (at most 16 KiB) as the frontend's last
    /// error, for `show errors`; off the steady path (an error).
    pub fn capture(&self, frontend: usize, peer: std::net::SocketAddr, bytes: &[u8]) {
        let n = self.errors_seen.get();
        self.errors_seen.set(n + 1);
        let c = Capture {
            frontend,
            peer,
            when: std::time::SystemTime::now(),
            event: n,
            bytes: bytes[..bytes.len().min(16 * 1024)].to_vec(),
        };
        let mut list = self.captures.borrow_mut();
        match list.iter_mut().find(|x| x.frontend == frontend) {
            Some(old) => *old = c,
            None => list.push(c),
        }
    }

    /// The captured requests and the count of invalid requests seen.
    pub fn captures(&self) -> (Vec<Capture>, u64) {
        (self.captures.borrow().clone(), self.errors_seen.get())
    }

    /// `clear counters [all]` on this shard.
    pub fn clear(&self, all: bool) {
        for c in self
            .frontends
            .iter()
            .chain(
                self.backend_counters
                    .iter()
                    .filter_map(|c| c.get().map(|c| &**c)),
            )
            .chain(self.servers.iter().flat_map(|s| s.counters.get()).flatten())
        {
            c.clear(all);
        }
        self.process.conn_rate.clear_max();
        self.process.out_rate.clear_max();
        if all {
            for l in &self.latency {
                if let Some(l) = l.borrow_mut().as_mut() {
                    l.first_byte.reset();
                    l.total.reset();
                }
            }
            let servers = self.servers.iter().flat_map(|s| s.latency.get()).flatten();
            for h in servers {
                if let Some(h) = h.borrow_mut().as_mut() {
                    h.reset();
                }
            }
        }
    }

    /// Records a finished request's time (µs) for its server (the backend's first
    /// such request on this shard makes its servers' slots, the server's first its
    /// histogram).
    #[inline]
    pub fn record_server_latency(&self, backend: usize, server: u32, total_us: u64) {
        let Some(cell) = self.servers[backend].latencies().get(server as usize) else {
            return;
        };
        let mut h = cell.borrow_mut();
        let h = h.get_or_insert_with(|| Box::new(histogram()));
        let _ = h.record(total_us.max(1));
    }

    /// Records a finished request's latencies for its backend (the backend's first
    /// request on this shard allocates its histograms).
    pub fn record_latency(&self, backend: usize, first_byte_us: u64, total_us: u64) {
        let mut slot = self.latency[backend].borrow_mut();
        let l = slot.get_or_insert_with(|| Box::new(Latency::new()));
        let _ = l.first_byte.record(first_byte_us.max(1));
        let _ = l.total.record(total_us.max(1));
    }
}
