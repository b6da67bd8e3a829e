//! The only values that cross threads: messages to and from shards.

use crate::stats::Snapshot;
use crate::upstream::AdminState;

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
    /// The operator set a server's maxconn (`None` = unlimited).
    SetMaxconn {
        backend: usize,
        server: usize,
        maxconn: Option<u32>,
    },
    /// Stick-table records every shard should hold (cluster thread).
    Sticks(std::sync::Arc<Vec<crate::cluster::StickDown>>),
    /// Everybody else's request counts of keys this shard tracks (cluster thread).
    Rates(Vec<crate::cluster::RateDown>),
    /// Everybody else's shares of stick-table counters.
    Tables(Vec<crate::cluster::counters::TableDown>),
    /// Send a copy of this shard's statistics.
    Snapshot(crossbeam_channel::Sender<ShardReport>),
    /// A new configuration: (address, frontend index, a new socket for a new address;
    /// `None` = keep this shard's listener on that address). Others close.
    Reload {
        config: std::sync::Arc<crate::config::Config>,
        listeners: Vec<(std::net::SocketAddr, usize, Option<std::net::TcpListener>)>,
    },
}

/// The messages that bring a restarted shard up to date with the servers' health and
/// operator states, for the config it runs (none if the process moved on to another).
pub type Resync = std::sync::Arc<dyn Fn(&crate::config::Config) -> Vec<ToShard> + Send + Sync>;

/// One shard's figures, for the admin thread to merge.
pub struct ShardReport {
    pub shard: usize,
    pub stats: Snapshot,
    /// Requests waiting per backend, now and at most.
    pub queued: Vec<(u64, u64)>,
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
    /// `;csv` in the stats URI: `show stat` instead of HTML.
    pub csv: bool,
    pub reply: crossbeam_channel::Sender<ServiceAnswer>,
}

pub struct ServiceAnswer {
    pub content_type: &'static str,
    pub body: String,
}
