//! A shard's figures as owned values, and their merge over shards (what the admin
//! thread reads; the shards keep counting in their own cells).

use super::*;

/// Owned figures of one shard, or of all shards merged.
pub struct Snapshot {
    /// When it was taken (ms after the process's epoch; the latest of the shards').
    pub now_ms: u64,
    pub process: ProcessTotals,
    pub frontends: Vec<Totals>,
    pub backends: Vec<Totals>,
    pub servers: Vec<Vec<Totals>>,
    /// `None`: the backend served no request (on any shard merged in).
    pub latency: Vec<Option<Latency>>,
    /// Per server: request times (µs), if it served any.
    pub server_latency: Vec<Vec<Option<Histogram<u64>>>>,
}

impl Snapshot {
    pub fn merge(&mut self, o: &Snapshot) {
        self.now_ms = self.now_ms.max(o.now_ms);
        self.process.add(&o.process);
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
        for (a, b) in self.server_latency.iter_mut().zip(&o.server_latency) {
            for (x, y) in a.iter_mut().zip(b) {
                match (x.as_mut(), y) {
                    (Some(x), Some(y)) => {
                        let _ = x.add(y);
                    }
                    (None, Some(y)) => *x = Some(y.clone()),
                    _ => {}
                }
            }
        }
    }
}
