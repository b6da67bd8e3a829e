//! What `show table` and `clear table` read and change of a shard's `stick on` and
//! request-rate tables (the admin path, on the control tick; never the request path).

use std::time::Instant;

use super::{unix_ms, KeyMap, ShardCluster};
use crate::control::TableDump;

impl ShardCluster {
    /// Every table's entries (for `show table`; on the control tick, not the request
    /// path).
    pub fn dump(&self) -> Vec<TableDump> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (b, c) in self.sticks.iter().enumerate() {
            let Some(c) = c else { continue };
            let c = c.borrow();
            out.push(TableDump {
                owner: b,
                limiter: None,
                entries: c
                    .map
                    .iter()
                    .filter(|(_, e)| e.expires > now)
                    .map(|(k, e)| {
                        let left = e.expires.saturating_duration_since(now).as_millis() as u64;
                        (*k, left, u64::from(e.server) + 1)
                    })
                    .collect(),
            });
        }
        let now_ms = unix_ms();
        for (f, limits) in self.rates.iter().enumerate() {
            for (i, t) in limits.iter().enumerate() {
                let t = t.borrow();
                let w = now_ms / t.period_ms;
                let entries = t
                    .map
                    .iter()
                    .filter(|(_, e)| e.window + 1 >= w)
                    .map(|(k, e)| {
                        let (cur, prev) = if e.window == w {
                            (e.own[0] + e.others[0], e.own[1] + e.others[1])
                        } else {
                            (0, e.own[0] + e.others[0])
                        };
                        let into = now_ms % t.period_ms;
                        let rate =
                            u64::from(cur) + u64::from(prev) * (t.period_ms - into) / t.period_ms;
                        let left = t.period_ms * 2 - into;
                        (*k, left, rate)
                    })
                    .collect();
                out.push(TableDump {
                    owner: f,
                    limiter: Some(i),
                    entries,
                });
            }
        }
        out
    }

    /// `clear table`: forgets one key (`Some`) or every entry of a table on this
    /// shard.
    pub fn clear(&self, owner: usize, limiter: Option<usize>, key: Option<u64>) {
        match limiter {
            None => {
                if let Some(Some(c)) = self.sticks.get(owner) {
                    forget(&mut c.borrow_mut().map, key);
                }
                // Learnt here and not told yet: told after the clear, it would come
                // back to every shard.
                self.out_sticks
                    .borrow_mut()
                    .retain(|u| u.backend as usize != owner || key.is_some_and(|k| k != u.key));
            }
            Some(i) => {
                if let Some(t) = self.rates.get(owner).and_then(|f| f.get(i)) {
                    forget(&mut t.borrow_mut().map, key);
                }
            }
        }
    }
}

fn forget<V>(map: &mut KeyMap<V>, key: Option<u64>) {
    match key {
        Some(k) => {
            map.remove(&k);
        }
        None => map.clear(),
    }
}
