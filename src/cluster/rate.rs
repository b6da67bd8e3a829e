//! Request counts across shards and nodes. Shards send what they counted per key and
//! window; this thread sums them and, with Redis, adds them once per sync interval to
//! `PREFIX:rate:FRONTEND:LIMITER:KEY:WINDOW` (INCRBY, expiring after two periods),
//! whose answer is the cluster's total. Each shard then hears the total minus its own
//! share: everybody else's count.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::control::{CountUp, RateDown};
use crate::tables::unix_ms;

struct Agg {
    period_ms: u64,
    /// The cluster's total as last known (local sums in between).
    total: u64,
    /// Each shard's share of it.
    per_shard: Vec<u64>,
    /// Counted here, not yet added in Redis.
    unsent: u64,
    /// Changed since the shards last heard.
    touched: bool,
}

type Key = (Arc<str>, u32, u64, u64);

pub struct RateSync {
    shards: usize,
    aggs: HashMap<Key, Agg>,
}

impl RateSync {
    pub fn new(shards: usize) -> RateSync {
        RateSync {
            shards,
            aggs: HashMap::new(),
        }
    }

    pub fn ingest(&mut self, shard: usize, cfg: &Config, counts: &[CountUp]) {
        for c in counts {
            let Some(f) = cfg.frontends.get(c.frontend as usize) else {
                continue;
            };
            let key = (Arc::from(f.name.as_str()), c.limiter, c.key, c.window);
            let n = self.shards;
            let a = self.aggs.entry(key).or_insert_with(|| Agg {
                period_ms: c.period_ms,
                total: 0,
                per_shard: vec![0; n],
                unsent: 0,
                touched: false,
            });
            let count = u64::from(c.count);
            a.total += count;
            if let Some(s) = a.per_shard.get_mut(shard) {
                *s += count;
            }
            a.unsent += count;
            a.touched = true;
        }
    }

    /// Adds the unsent counts in Redis and takes its totals.
    pub fn flush(&mut self, conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        let mut order = Vec::new();
        for (k, a) in &self.aggs {
            if a.unsent == 0 {
                continue;
            }
            let rkey = format!("{prefix}:rate:{}:{}:{:016x}:{}", k.0, k.1, k.2, k.3);
            pipe.cmd("INCRBY").arg(&rkey).arg(a.unsent);
            pipe.cmd("PEXPIRE")
                .arg(&rkey)
                .arg(2 * a.period_ms + 1000)
                .ignore();
            order.push(k.clone());
        }
        if order.is_empty() {
            return Ok(());
        }
        let totals: Vec<u64> = pipe.query(conn)?;
        for (k, total) in order.into_iter().zip(totals) {
            if let Some(a) = self.aggs.get_mut(&k) {
                a.unsent = 0;
                // Redis may have lost counts (a restart): never below what we know.
                let local: u64 = a.per_shard.iter().sum();
                a.total = total.max(local);
                a.touched = true;
            }
        }
        Ok(())
    }

    /// What each shard should hear (and forgets windows older than a period).
    pub fn answers(&mut self) -> Vec<Vec<RateDown>> {
        let now = unix_ms();
        self.aggs.retain(|k, a| {
            k.3 + 1 >= now / a.period_ms || a.unsent > 0 && k.3 + 2 >= now / a.period_ms
        });
        if !self.aggs.values().any(|a| a.touched) {
            return Vec::new();
        }
        let mut out: Vec<Vec<RateDown>> = (0..self.shards).map(|_| Vec::new()).collect();
        for (k, a) in &mut self.aggs {
            if !std::mem::take(&mut a.touched) {
                continue;
            }
            for (s, list) in out.iter_mut().enumerate() {
                let own = a.per_shard.get(s).copied().unwrap_or(0);
                list.push(RateDown {
                    frontend: k.0.clone(),
                    limiter: k.1,
                    key: k.2,
                    window: k.3,
                    others: a.total.saturating_sub(own).min(u64::from(u32::MAX)) as u32,
                });
            }
        }
        out
    }
}
