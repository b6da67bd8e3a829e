//! What a shard's statistics allocate only when first used: a backend's latency
//! histograms, its servers' counters and request-time histograms. Most backends and
//! servers of a large config never see traffic on most shards, so they cost a few
//! bytes there; histograms are shared by the config generations that have their
//! backend or server, so a reload copies none.

use std::cell::RefCell;

use hdrhistogram::Histogram;

use super::{Counters, Totals};

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
pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

impl Latency {
    pub(super) fn new() -> Self {
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

/// The counters and request times of one backend's servers on one shard, each
/// allocated at the first use (most servers of a large config never see traffic on
/// most shards): 424 bytes of counters per server once used, a histogram slot per
/// server once one served, 40 bytes per backend before.
pub struct ServerCounters {
    servers: u32,
    pub(super) counters: std::cell::OnceCell<Box<[Counters]>>,
    /// Each server's request times, shared like `LatencySlot` with the other
    /// generations that have the server.
    pub(super) latency: std::cell::OnceCell<Box<[ServerLatency]>>,
}

impl ServerCounters {
    pub(super) fn new(servers: usize) -> Self {
        ServerCounters {
            servers: servers as u32,
            counters: std::cell::OnceCell::new(),
            latency: std::cell::OnceCell::new(),
        }
    }

    /// Every server's request-time slot (made now if this is the first use).
    pub(super) fn latencies(&self) -> &[ServerLatency] {
        self.latency.get_or_init(|| {
            (0..self.servers)
                .map(|_| ServerLatency::default())
                .collect()
        })
    }

    pub(super) fn latency_snapshot(&self) -> Vec<Option<Histogram<u64>>> {
        match self.latency.get() {
            Some(l) => l.iter().map(|h| h.borrow().as_deref().cloned()).collect(),
            None => vec![None; self.servers as usize],
        }
    }

    /// Every server's counters (allocated now if this is the first use).
    pub(super) fn all(&self) -> &[Counters] {
        self.counters
            .get_or_init(|| (0..self.servers).map(|_| Counters::default()).collect())
    }

    /// Server `s`'s counters, if they were ever used.
    pub fn get(&self, s: usize) -> Option<&Counters> {
        self.counters.get().and_then(|c| c.get(s))
    }

    pub(super) fn snapshot(&self, now_ms: u64) -> Vec<Totals> {
        match self.counters.get() {
            Some(c) => c.iter().map(|c| c.snapshot(now_ms)).collect(),
            None => vec![Totals::default(); self.servers as usize],
        }
    }
}

/// One server's request times on one shard, made at its first request, shared by
/// every config generation that has the server (as `LatencySlot`).
pub type ServerLatency = std::rc::Rc<RefCell<Option<Box<Histogram<u64>>>>>;
