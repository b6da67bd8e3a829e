//! The control plane: the only values that cross threads (messages to and from
//! shards, to the cluster and health threads), the operator's state, and the config in
//! force (`core`). The admin, cluster, health, reload and upgrade code use this layer;
//! it uses none of them, and nothing of the data path but the counters' snapshot type.

mod certs;
mod core;
mod link;
mod maps;
mod servers;
pub mod statelog;
mod view;

pub use self::core::{Core, Gathered, Operator, ServerState, APPLY_WAIT};
pub use certs::Certs;
pub use link::{link, Inbox, ShardLink, ShardLinks};
pub use maps::{Changed, PatState};
pub use view::{BackendFlips, CheckView, DnsCounters, HealthView, NsCounters};

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::stats::Snapshot;

/// The operator's say on a server (HAProxy's READY / DRAIN / MAINT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    /// No new requests; in-flight ones finish.
    Drain,
    /// Out of service.
    Maint,
}

impl AdminState {
    /// The runtime API's word for it (`set server B/S state WORD`).
    pub fn word(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

    pub fn from_word(w: &str) -> Option<AdminState> {
        match w {
            "ready" => Some(AdminState::Ready),
            "drain" => Some(AdminState::Drain),
            "maint" => Some(AdminState::Maint),
            _ => None,
        }
    }
}

/// From the admin thread to the resolver thread: a runtime API change, answered once
/// in force.
pub enum DnsCmd {
    /// `set server B/S fqdn NAME`: the server follows NAME from now; the answer is the
    /// name it followed, or why it cannot.
    SetFqdn {
        backend: usize,
        server: usize,
        fqdn: String,
        done: crossbeam_channel::Sender<Result<String, String>>,
    },
}

/// Makes a new config from the one in force, or says (in the operator's words) why not.
pub type MakeConfig = Box<dyn FnOnce(&Config) -> Result<Config, String> + Send>;

/// From the admin thread to the main thread: `add server` / `del server`. `change`
/// makes the new config from the one in force (or says why not); `done` answers once
/// every shard and the health thread run on it.
pub struct ServersChange {
    pub change: MakeConfig,
    pub done: crossbeam_channel::Sender<Result<(), String>>,
}

/// From the admin thread to the health thread, answered once in force.
pub enum HealthCmd {
    /// `enable|disable health B/S`: the server's checks run again, or stop with its
    /// state as it is (`show stat` shows no check result meanwhile).
    Checks {
        backend: usize,
        server: usize,
        on: bool,
        done: crossbeam_channel::Sender<()>,
    },
    /// `set server B/S health up|stopping|down`.
    Force {
        backend: usize,
        server: usize,
        health: Forced,
        done: crossbeam_channel::Sender<()>,
    },
}

/// The health `set server B/S health` forces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    Up,
    Stopping,
    Down,
}

/// From the main, health or admin thread to one shard.
#[derive(Debug)]
pub enum ToShard {
    /// Close listeners now, let in-flight requests finish within `grace` (`None`:
    /// as long as they take), then exit. A second one can only shorten the grace.
    Shutdown { grace: Option<std::time::Duration> },
    /// The health thread's verdict on a server changed.
    ServerUp {
        backend: usize,
        server: usize,
        up: bool,
    },
    /// A running server entered (or left) NOLB: a 404 to a check under
    /// `disable-on-404` (a 2xx/3xx takes it out).
    ServerNolb {
        backend: usize,
        server: usize,
        nolb: bool,
    },
    /// The operator set a server's state (runtime API).
    SetAdmin {
        backend: usize,
        server: usize,
        state: AdminState,
    },
    /// The operator set a server's weight (runtime API).
    SetWeight {
        backend: usize,
        server: usize,
        weight: u32,
    },
    /// DNS gave a server a new address (`None`: none, so it is in maintenance until
    /// one comes), and for an SRV answer its weight.
    SetAddr {
        backend: usize,
        server: usize,
        addr: Option<std::net::SocketAddr>,
        weight: Option<u32>,
    },
    /// The operator set a server's maxconn (`None` = unlimited).
    SetMaxconn {
        backend: usize,
        server: usize,
        maxconn: Option<u32>,
    },
    /// Stick-table records every shard should hold (cluster thread).
    Sticks(std::sync::Arc<Vec<StickDown>>),
    /// Everybody else's request counts of keys this shard tracks (cluster thread).
    Rates(Vec<RateDown>),
    /// Everybody else's shares of stick-table counters.
    Tables(Vec<TableDown>),
    /// Send a copy of this shard's statistics.
    Snapshot(crossbeam_channel::Sender<ShardReport>),
    /// `clear counters [all]`: maxima (or every counter) start again.
    ClearCounters { all: bool },
    /// `show sess`, `show errors`: the shard's client connections and the requests
    /// it refused as invalid.
    Inspect(crossbeam_channel::Sender<Inspected>),
    /// `clear table`: a key (or every entry) of the stick table of backend `owner`
    /// (`limiter` None) or of frontend `owner`'s rate limit `limiter`.
    ClearTable {
        owner: usize,
        limiter: Option<usize>,
        key: Option<u64>,
    },
    /// `clear table` on a rule-language table (`Config::tables`): a key or every
    /// entry no connection tracks.
    ClearStickCounters { table: u32, key: Option<u64> },
    /// About the process-wide limits: a slot handed to a waiter here, room again.
    Limits(crate::limits::Event),
    /// New certificates for some TLS binds (`commit ssl cert`): new handshakes use
    /// them, open connections keep theirs.
    Certs(Arc<CertUpdate>),
    /// The session-ticket keys every node shares (a `tls-ticket-keys` text), from the
    /// cluster thread: binds that use the process's keys take them.
    TicketKeys(Arc<str>),
    /// A map or ACL file (or an ACL line's patterns) changed at run time.
    Patterns(Arc<PatUpdate>),
    /// Answer with the shard's number once every message before this one is applied
    /// (the runtime API answers only when a change is in force on every shard).
    Ack(crossbeam_channel::Sender<usize>),
    /// A new configuration: (address, the bind it serves, a new socket for a new
    /// address; `None` = keep this shard's listener on that address). Others close.
    Reload {
        config: std::sync::Arc<crate::config::Config>,
        /// Made from the config in force by `add server` / `del server`: the shard's
        /// tables (stick records, rates, counters) carry over, servers found by name.
        servers_only: bool,
        /// Its limits, with the counters of what stayed.
        shared: std::sync::Arc<crate::limits::Shared>,
        listeners: Vec<(
            std::net::SocketAddr,
            crate::config::BindRef,
            Option<std::net::TcpListener>,
        )>,
    },
}

/// The entries of pattern reference `pat_ref` of `config` after a runtime change.
#[derive(Debug)]
pub struct PatUpdate {
    /// The config the reference belongs to: a shard on another one ignores it.
    pub config: Arc<Config>,
    pub pat_ref: u32,
    pub entries: Arc<Vec<crate::rules::map::Entry>>,
    /// The change only added `entries[n..]` (a shard patches its copy instead of
    /// building it again).
    pub added: Option<usize>,
}

/// New certificates for some binds of one config.
#[derive(Debug)]
pub struct CertUpdate {
    /// The config the bind indices belong to: a shard on another one ignores it (a
    /// reload reads the files again).
    pub config: Arc<Config>,
    pub binds: Vec<(crate::config::BindRef, Arc<crate::tls::BindTls>)>,
}

/// The messages that bring a restarted shard up to date with the servers' health and
/// operator states, for the config it runs (none if the process moved on to another).
pub type Resync = std::sync::Arc<dyn Fn(&crate::config::Config) -> Vec<ToShard> + Send + Sync>;

/// A client connection a shard serves (`show sess`).
#[derive(Debug, Clone)]
pub struct Session {
    pub fd: i32,
    pub frontend: usize,
    pub peer: std::net::SocketAddr,
    pub age: Duration,
}

/// One table's entries as `show table` lists them.
#[derive(Debug, Clone)]
pub struct TableDump {
    /// The backend (stick tables) or frontend (request rates) it belongs to, and the
    /// limiter's number among the frontend's.
    pub owner: usize,
    pub limiter: Option<usize>,
    /// (key hash, ms until it expires, data: stick `server_id` (1-based) or the
    /// request rate over the period).
    pub entries: Vec<(u64, u64, u64)>,
}

/// One stick table of the rule language (`stick-table`, `track-scN`) as a shard holds
/// it, for `show table`.
#[derive(Debug, Clone)]
pub struct CounterDump {
    /// Its index in `Config::tables`.
    pub table: u32,
    pub entries: Vec<CounterEntry>,
}

#[derive(Debug, Clone)]
pub struct CounterEntry {
    pub key: u64,
    /// The key's text, where this shard created the entry.
    pub name: Option<Box<[u8]>>,
    pub exp_ms: u64,
    /// Connections tracking it on this shard now.
    pub used: i64,
    /// The stored values, in the table's `store` order.
    pub values: Vec<i64>,
}

/// What a shard answers to `Inspect`.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub shard: usize,
    pub sessions: Vec<Session>,
    pub captures: Vec<crate::stats::Capture>,
    /// Invalid requests this shard saw (captured or not).
    pub events: u64,
    /// The shard's stick tables and request-rate tables.
    pub tables: Vec<TableDump>,
    /// The rule language's stick tables.
    pub counters: Vec<CounterDump>,
}

/// One shard's figures, for the admin thread to merge.
pub struct ShardReport {
    pub shard: usize,
    pub stats: Snapshot,
    /// Requests waiting per backend, now and at most.
    pub queued: Vec<(u64, u64)>,
    /// What the shard holds besides its counters.
    pub held: Held,
}

/// What a shard holds at a snapshot (summed over shards by `Core::gather`).
#[derive(Debug, Default, Clone)]
pub struct Held {
    /// Idle pooled connections per backend and server (a `proto h2` server's: its
    /// connections without a stream).
    pub idle: Vec<Vec<u64>>,
    /// A `proto h2` server's connections open, per backend and server.
    pub h2_open: Vec<Vec<u64>>,
    /// Frames `proto h2` servers sent, and the errors their connections detected and
    /// sent, per backend (`h2map::frames::FrameTally`).
    pub h2_frames: Vec<[u64; 9]>,
    /// Requests (and L4 connections) in flight per backend and server on generations
    /// a reload replaced, which `show stat` does not count (`Shard::fold_older`;
    /// empty: none).
    pub older: Vec<Vec<u64>>,
    /// Requests (and L4 connections) in flight.
    pub inflight: u64,
    /// Splice pipes in use, idle, and the most the shard may open.
    pub pipes: (u64, u64, u64),
    /// Bytes moved through pipes so far.
    pub spliced: u64,
    /// Connection buffers: bytes in use, bytes idle in the free list.
    pub buffers: (u64, u64),
}

impl Held {
    /// Idle pooled connections to server `s` of backend `b`.
    pub fn idle_of(&self, b: usize, s: usize) -> u64 {
        of(&self.idle, b, s)
    }

    /// Requests in flight on server `s` of backend `b` in replaced generations.
    pub fn older_of(&self, b: usize, s: usize) -> u64 {
        of(&self.older, b, s)
    }

    pub fn add(&mut self, o: &Held) {
        add_grid(&mut self.idle, &o.idle);
        add_grid(&mut self.h2_open, &o.h2_open);
        add_grid(&mut self.older, &o.older);
        for (a, b) in self.h2_frames.iter_mut().zip(&o.h2_frames) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.inflight += o.inflight;
        self.pipes.0 += o.pipes.0;
        self.pipes.1 += o.pipes.1;
        self.pipes.2 += o.pipes.2;
        self.spliced += o.spliced;
        self.buffers.0 += o.buffers.0;
        self.buffers.1 += o.buffers.1;
    }
}

/// A per backend and server figure (0 where the grid has none).
fn of(grid: &[Vec<u64>], b: usize, s: usize) -> u64 {
    grid.get(b).and_then(|v| v.get(s)).copied().unwrap_or(0)
}

/// Adds per backend and server figures (an empty grid: nothing yet).
fn add_grid(to: &mut Vec<Vec<u64>>, from: &[Vec<u64>]) {
    if to.is_empty() {
        to.extend_from_slice(from);
        return;
    }
    for (a, b) in to.iter_mut().zip(from) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
}

impl std::fmt::Debug for ShardReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShardReport {{ shard: {} }}", self.shard)
    }
}

/// From a shard to the main thread.
#[derive(Debug)]
pub enum FromShard {
    Started {
        shard: usize,
        driver: &'static str,
        core: Option<usize>,
    },
    Failed {
        shard: usize,
        error: String,
    },
    /// The shard switched to a new config (a reload).
    Reloaded {
        shard: usize,
    },
    Stopped {
        shard: usize,
        /// Requests still in flight when the grace period ran out.
        abandoned: usize,
    },
}

/// From a shard to the health thread: a server failed for this shard (`streak` =
/// consecutive failures on this shard), or answered again after failing (`streak` 0).
#[derive(Debug, Clone, Copy)]
pub struct HealthReport {
    pub shard: usize,
    pub backend: usize,
    pub server: usize,
    pub streak: u32,
}

/// From a shard to the admin side: a request asked for a page only the admin side can
/// build (it merges every shard's figures). The shard polls `reply` without blocking.
pub struct ServiceQuery {
    pub service: crate::config::Service,
    /// The request's method and target (`/stats;csv`, `/metrics?scope=server`).
    pub method: String,
    pub target: String,
    /// A POST's body (the stats page's admin actions).
    pub body: Vec<u8>,
    /// The request meets `stats admin`'s condition: it may change servers' states.
    pub admin: bool,
    pub reply: crossbeam_channel::Sender<ServiceAnswer>,
}

pub struct ServiceAnswer {
    /// 200, 303 (after an admin action, to `location`), 400.
    pub status: u16,
    pub content_type: &'static str,
    pub location: Option<String>,
    pub body: String,
}

impl ServiceAnswer {
    pub fn ok(content_type: &'static str, body: String) -> ServiceAnswer {
        ServiceAnswer {
            status: 200,
            content_type,
            location: None,
            body,
        }
    }
}

/// A stick record a shard learnt (indices into the config of its batch).
#[derive(Debug, Clone, Copy)]
pub struct StickUp {
    pub backend: u32,
    pub key: u64,
    pub server: u32,
    /// The key was stuck to another server that could not take the request.
    pub replace: bool,
}

/// Requests a shard counted for one key in one window.
#[derive(Debug, Clone, Copy)]
pub struct CountUp {
    pub frontend: u32,
    pub limiter: u32,
    pub key: u64,
    pub window: u64,
    pub period_ms: u64,
    pub count: u32,
}

/// To the cluster thread.
pub enum Up {
    /// What one shard learnt during a control tick.
    Batch {
        shard: usize,
        config: Arc<Config>,
        sticks: Vec<StickUp>,
        counts: Vec<CountUp>,
        tables: Vec<TableUp>,
    },
    /// The operator changed a server on this node (runtime API).
    Operator {
        backend: String,
        server: String,
        state: AdminState,
        weight: u32,
    },
    /// A server was added (`line`: its address and keywords) or deleted (`line`
    /// empty) on this node (runtime API); `server` is `BACKEND/SERVER`.
    Servers {
        server: String,
        line: String,
    },
    /// `set server B/S addr WORDS` (`fqdn`: `set server B/S fqdn NAME`) made on this
    /// node (runtime API); `server` is `BACKEND/SERVER`, `value` what follows the verb.
    Address {
        server: String,
        fqdn: bool,
        value: String,
    },
    /// A map or pattern file's entries changed on this node (runtime API).
    Patterns {
        file: String,
        entries: Arc<Vec<crate::rules::map::Entry>>,
    },
    /// `clear table` on stick table `owner` (one key, or all): the cluster thread
    /// forgets its records, then sends `ToShard::ClearTable` to every shard, after the
    /// stick records it broadcast before, and answers on `done`.
    ClearSticks {
        owner: usize,
        backend: String,
        key: Option<u64>,
        done: crossbeam_channel::Sender<()>,
    },
    Stop,
}

/// A stick record every shard should hold.
#[derive(Debug, Clone)]
pub struct StickDown {
    pub backend: Arc<str>,
    pub key: u64,
    pub server: Arc<str>,
    pub ttl: Duration,
}

/// Everybody else's count of a key in a window, for one shard.
#[derive(Debug, Clone)]
pub struct RateDown {
    pub frontend: Arc<str>,
    pub limiter: u32,
    pub key: u64,
    pub window: u64,
    pub others: u32,
}

/// An increment a shard made, for the cluster thread.
#[derive(Debug, Clone, Copy)]
pub struct TableUp {
    pub table: u32,
    pub data: u32,
    pub key: u64,
    pub window: u64,
    /// 0 for a counter.
    pub period_ms: u64,
    /// How long the table keeps an idle entry (a counter's lifetime in Redis).
    pub expire_ms: u64,
    pub delta: i64,
}

/// Everybody else's value of a stored data type, for one shard.
#[derive(Debug, Clone)]
pub struct TableDown {
    pub table: Arc<str>,
    pub data: u32,
    pub key: u64,
    pub window: u64,
    pub others: i64,
}
