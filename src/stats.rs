//! Per-shard statistics: plain `Cell` counters and `hdrhistogram` latency histograms,
//! touched only by their shard. The admin thread asks every shard for a snapshot (an
//! owned copy sent over a channel) and merges them; nothing on the request path is
//! shared between threads.

use std::cell::{Cell, RefCell};

use hdrhistogram::Histogram;

use crate::config::Config;

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
}

macro_rules! counters {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {
        /// Live counters of one proxy or server on one shard.
        #[derive(Default)]
        pub struct Counters {
            $(#[$doc] pub $name: Cell<u64>,)*
            /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
            pub hrsp: [Cell<u64>; 6],
        }

        /// A snapshot of `Counters`, summable across shards.
        #[derive(Debug, Default, Clone, PartialEq, Eq)]
        pub struct Totals {
            $(#[$doc] pub $name: u64,)*
            pub hrsp: [u64; 6],
        }

        impl Counters {
            /// Sets every counter from a snapshot. Gauges (current sessions, queue)
            /// start again from zero: the old generation's sessions are not ours.
            pub fn set_from(&self, t: &Totals) {
                $(self.$name.set(t.$name);)*
                for i in 0..6 {
                    self.hrsp[i].set(t.hrsp[i]);
                }
                self.scur.set(0);
                self.qcur.set(0);
            }

            pub fn snapshot(&self) -> Totals {
                Totals {
                    $($name: self.$name.get(),)*
                    hrsp: std::array::from_fn(|i| self.hrsp[i].get()),
                }
            }
        }

        impl Totals {
            /// Adds another shard's figures; maxima of gauges are summed too, which
            /// bounds the true maximum from above (shards peak at different times).
            pub fn add(&mut self, o: &Totals) {
                $(self.$name += o.$name;)*
                for i in 0..6 {
                    self.hrsp[i] += o.hrsp[i];
                }
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

/// Latency of one backend's requests on one shard, in microseconds.
#[derive(Clone)]
pub struct Latency {
    /// Request sent → first response byte.
    pub first_byte: Histogram<u64>,
    /// Request head received → response complete.
    pub total: Histogram<u64>,
}

/// Up to an hour, 2 significant digits (1%): fixed size (26 KiB), so recording never
/// allocates.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

impl Latency {
    fn new() -> Self {
        Latency {
            first_byte: histogram(),
            total: histogram(),
        }
    }

    pub fn merge(&mut self, o: &Latency) {
        let _ = self.first_byte.add(&o.first_byte);
        let _ = self.total.add(&o.total);
    }
}

/// One backend's histograms on one shard: allocated at the backend's first request on
/// this shard (two histograms are 53 KiB, and most backends of a large config never
/// see traffic on most shards), shared by every config generation that has the
/// backend, so that a reload copies nothing and requests still finishing on an old
/// generation are counted. Recording after the first request allocates nothing.
pub type LatencySlot = std::rc::Rc<RefCell<Option<Box<Latency>>>>;

/// The counters of one backend's servers on one shard, allocated at the first use
/// (most servers of a large config never see traffic on most shards): 176 bytes per
/// server once warm, 24 bytes per backend before.
pub struct ServerCounters {
    servers: u32,
    counters: std::cell::OnceCell<Box<[Counters]>>,
}

impl ServerCounters {
    fn new(servers: usize) -> Self {
        ServerCounters {
            servers: servers as u32,
            counters: std::cell::OnceCell::new(),
        }
    }

    /// Every server's counters (allocated now if this is the first use).
    fn all(&self) -> &[Counters] {
        self.counters
            .get_or_init(|| (0..self.servers).map(|_| Counters::default()).collect())
    }

    /// Server `s`'s counters, if they were ever used.
    pub fn get(&self, s: usize) -> Option<&Counters> {
        self.counters.get().and_then(|c| c.get(s))
    }

    fn snapshot(&self) -> Vec<Totals> {
        match self.counters.get() {
            Some(c) => c.iter().map(Counters::snapshot).collect(),
            None => vec![Totals::default(); self.servers as usize],
        }
    }
}

/// One shard's statistics.
pub struct ShardStats {
    pub frontends: Vec<Counters>,
    pub backends: Vec<Counters>,
    servers: Vec<ServerCounters>,
    pub latency: Vec<LatencySlot>,
}

impl ShardStats {
    /// The counters of server `s` of backend `b` (the backend's first use of a server
    /// counter on this shard allocates them all).
    pub fn server(&self, b: usize, s: usize) -> &Counters {
        &self.servers[b].all()[s]
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
            add(&self.backends[b]);
            if let Some(sv) = server.and_then(|s| self.servers[b].all().get(s as usize)) {
                add(sv);
            }
        }
    }

    pub fn new(cfg: &Config) -> Self {
        ShardStats {
            frontends: cfg.frontends.iter().map(|_| Counters::default()).collect(),
            backends: cfg.backends.iter().map(|_| Counters::default()).collect(),
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

    /// Carries the counters of proxies and servers that exist in both configs over
    /// from the previous generation (a reload); backends that stay share their
    /// histograms with it.
    pub fn adopt(&mut self, old: &ShardStats, old_cfg: &Config, cfg: &Config) {
        let copy = |to: &Counters, from: &Counters| to.set_from(&from.snapshot());
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
            copy(&self.backends[i], &old.backends[o]);
            self.latency[i].clone_from(&old.latency[o]);
            if old.servers[o].counters.get().is_none() {
                continue;
            }
            for (j, s) in b.servers.iter().enumerate() {
                let before = old_cfg.backends[o]
                    .servers
                    .iter()
                    .position(|x| x.name == s.name);
                if let Some(from) = before.and_then(|os| old.servers[o].get(os)) {
                    copy(self.server(i, j), from);
                }
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            frontends: self.frontends.iter().map(Counters::snapshot).collect(),
            backends: self.backends.iter().map(Counters::snapshot).collect(),
            servers: self.servers.iter().map(ServerCounters::snapshot).collect(),
            latency: self
                .latency
                .iter()
                .map(|l| l.borrow().as_deref().cloned())
                .collect(),
        }
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

/// Owned figures of one shard, or of all shards merged.
pub struct Snapshot {
    pub frontends: Vec<Totals>,
    pub backends: Vec<Totals>,
    pub servers: Vec<Vec<Totals>>,
    /// `None`: the backend served no request (on any shard merged in).
    pub latency: Vec<Option<Latency>>,
}

impl Snapshot {
    pub fn merge(&mut self, o: &Snapshot) {
        for (a, b) in self.frontends.iter_mut().zip(&o.frontends) {
            a.add(b);
        }
        for (a, b) in self.backends.iter_mut().zip(&o.backends) {
            a.add(b);
        }
        for (a, b) in self.servers.iter_mut().zip(&o.servers) {
            for (x, y) in a.iter_mut().zip(b) {
                x.add(y);
            }
        }
        for (a, b) in self.latency.iter_mut().zip(&o.latency) {
            match (a.as_mut(), b) {
                (Some(a), Some(b)) => a.merge(b),
                (None, Some(b)) => *a = Some(b.clone()),
                (_, None) => {}
            }
        }
    }
}
