//! Stick-table counters across shards and nodes (the rule language's tables; the
//! request-rate limits have `rate`). Shards send their increments per table, data
//! type, key and window; this thread sums them and, with Redis, adds them once per
//! sync interval to `PREFIX:sc:TABLE:DATA:KEY:WINDOW` (INCRBY; a rate's key expires
//! after two periods, a counter's after the table's `expire` without a change), whose
//! answer is the cluster's total. Each shard then hears the total minus its own share.
//!
//! Limits: a gauge (`conn_cur`) of a node that died stays in Redis until its key
//! expires; `sc_clr_gpc0` clears the shard it runs on, not the shared total.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::control::{TableDown, TableUp};
use crate::tables::unix_ms;

struct Agg {
    period_ms: u64,
    expire_ms: u64,
    total: i64,
    per_shard: Vec<i64>,
    unsent: i64,
    touched: bool,
    /// Last change (counters are forgotten `expire` after it).
    last_ms: u64,
}

type Key = (Arc<str>, u32, u64, u64);

pub struct TableSync {
    shards: usize,
    aggs: HashMap<Key, Agg>,
}

impl TableSync {
    pub fn new(shards: usize) -> TableSync {
        TableSync {
            shards,
            aggs: HashMap::new(),
        }
    }

    pub fn ingest(&mut self, shard: usize, cfg: &Config, ups: &[TableUp]) {
        let now = unix_ms();
        for u in ups {
            let Some(t) = cfg.tables.get(u.table as usize) else {
                continue;
            };
            let name: Arc<str> = Arc::from(t.name.as_str());
            let n = self.shards;
            let expire_ms = u.expire_ms;
            // Every data type of an entry this node uses is kept up to date, also the
            // ones only other nodes change (a `gpc0` another node increments).
            for (data, (_, period)) in t.store.iter().enumerate() {
                let period_ms = period.as_millis() as u64;
                let window = now.checked_div(period_ms).unwrap_or(0);
                self.aggs
                    .entry((name.clone(), data as u32, u.key, window))
                    .or_insert_with(|| Agg {
                        period_ms,
                        expire_ms,
                        total: 0,
                        per_shard: vec![0; n],
                        unsent: 0,
                        touched: false,
                        last_ms: now,
                    });
            }
            let key = (name, u.data, u.key, u.window);
            let a = self.aggs.entry(key).or_insert_with(|| Agg {
                period_ms: u.period_ms,
                expire_ms,
                total: 0,
                per_shard: vec![0; n],
                unsent: 0,
                touched: false,
                last_ms: now,
            });
            a.total = a.total.saturating_add(u.delta);
            if let Some(s) = a.per_shard.get_mut(shard) {
                *s = s.saturating_add(u.delta);
            }
            a.unsent = a.unsent.saturating_add(u.delta);
            a.touched = true;
            a.last_ms = now;
        }
    }

    /// Adds the unsent increments in Redis and takes its totals (also of entries
    /// only other nodes change: an increment of 0 reads the total).
    pub fn flush(&mut self, conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        let mut order = Vec::new();
        for (k, a) in &self.aggs {
            let rkey = format!("{prefix}:sc:{}:{}:{:016x}:{}", k.0, k.1, k.2, k.3);
            pipe.cmd("INCRBY").arg(&rkey).arg(a.unsent);
            let ttl = if a.period_ms > 0 {
                2 * a.period_ms + 1000
            } else {
                a.expire_ms.max(1000)
            };
            pipe.cmd("PEXPIRE").arg(&rkey).arg(ttl).ignore();
            order.push(k.clone());
        }
        if order.is_empty() {
            return Ok(());
        }
        let totals: Vec<i64> = pipe.query(conn)?;
        for (k, total) in order.into_iter().zip(totals) {
            if let Some(a) = self.aggs.get_mut(&k) {
                a.unsent = 0;
                if a.total != total {
                    a.total = total;
                    a.touched = true;
                }
            }
        }
        Ok(())
    }

    /// What each shard should hear; forgets windows older than a period and counters
    /// idle for longer than their table's expiry.
    pub fn answers(&mut self) -> Vec<Vec<TableDown>> {
        let now = unix_ms();
        self.aggs.retain(|k, a| {
            if a.unsent != 0 {
                return true;
            }
            match now.checked_div(a.period_ms) {
                Some(w) => k.3 + 1 >= w,
                None => now.saturating_sub(a.last_ms) < a.expire_ms.max(1000),
            }
        });
        if !self.aggs.values().any(|a| a.touched) {
            return Vec::new();
        }
        let mut out: Vec<Vec<TableDown>> = (0..self.shards).map(|_| Vec::new()).collect();
        for (k, a) in &mut self.aggs {
            if !std::mem::take(&mut a.touched) {
                continue;
            }
            for (s, list) in out.iter_mut().enumerate() {
                let own = a.per_shard.get(s).copied().unwrap_or(0);
                list.push(TableDown {
                    table: k.0.clone(),
                    data: k.1,
                    key: k.2,
                    window: k.3,
                    others: a.total.saturating_sub(own),
                });
            }
        }
        out
    }
}
