//! Stick-table records across shards and nodes. The cluster thread decides: the first
//! record of a key wins (a shard that picked another server meanwhile is corrected),
//! unless the shard replaced it because the stuck server could not serve. With Redis,
//! a record is `SET PREFIX:stick:BACKEND:KEY SERVER NX PX TTL` then `GET` (whoever set
//! it first wins across nodes), and the winner is published as
//! `stick NODE BACKEND KEY SERVER TTL_MS` for every node's shards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::StickDown;
use crate::config::Config;
use crate::control::StickUp;

/// How a record goes to Redis.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Write {
    /// Only its expiry is refreshed (PEXPIRE): whatever server is stored stands.
    Touch,
    /// A new record: stored unless another node stored one first (SET NX).
    New,
    /// A replacement (the recorded server could not serve): stored (SET).
    Replace,
}

struct Rec {
    server: Arc<str>,
    expires: Instant,
    ttl: Duration,
    /// To write to Redis.
    dirty: Option<Write>,
}

#[derive(Default)]
pub struct StickSync {
    recs: HashMap<(Arc<str>, u64), Rec>,
    pub need_resync: bool,
    dirty: usize,
    swept: Option<Instant>,
}

impl StickSync {
    pub fn pending(&self) -> bool {
        self.dirty > 0
    }

    /// `clear table`: forgets backend's record of `key`, or all of them.
    pub fn clear(&mut self, backend: &str, key: Option<u64>) {
        let mut dropped_dirty = 0;
        self.recs.retain(|(b, k), r| {
            let gone = **b == *backend && key.is_none_or(|x| x == *k);
            if gone && r.dirty.is_some() {
                dropped_dirty += 1;
            }
            !gone
        });
        self.dirty = self.dirty.saturating_sub(dropped_dirty);
    }

    pub fn drop_pending(&mut self) {
        for r in self.recs.values_mut() {
            r.dirty = None;
        }
        self.dirty = 0;
    }

    /// After a reconnect: every live record goes to Redis again (NX: others' win).
    pub fn mark_all_pending(&mut self) {
        let now = Instant::now();
        self.recs.retain(|_, r| r.expires > now);
        for r in self.recs.values_mut() {
            r.dirty = Some(r.dirty.map_or(Write::New, |w| w.max(Write::New)));
        }
        self.dirty = self.recs.len();
    }

    /// Records from one shard: what every shard should now hold.
    pub fn ingest(&mut self, cfg: &Config, ups: &[StickUp]) -> Vec<StickDown> {
        let now = Instant::now();
        self.sweep(now);
        let mut down = Vec::new();
        for u in ups {
            let Some(b) = cfg.backends.get(u.backend as usize) else {
                continue;
            };
            let (Some(t), Some(s)) = (&b.stick, b.servers.get(u.server as usize)) else {
                continue;
            };
            let backend: Arc<str> = Arc::from(b.name.as_str());
            let rec = self.recs.get_mut(&(backend.clone(), u.key));
            let server: Arc<str> = match rec {
                // Someone else's record stands, unless this is a replacement.
                Some(r) if r.expires > now && *r.server != *s.name && !u.replace => {
                    r.server.clone()
                }
                Some(r) => {
                    let same = *r.server == *s.name && r.expires > now;
                    if !same {
                        r.server = Arc::from(s.name.as_str());
                    }
                    r.expires = now + t.expire;
                    r.ttl = t.expire;
                    if r.dirty.is_none() {
                        self.dirty += 1;
                    }
                    // A refresh never clobbers another node's record; a record not yet
                    // confirmed by Redis stays a new one.
                    let write = if u.replace {
                        Write::Replace
                    } else if same {
                        Write::Touch
                    } else {
                        Write::New
                    };
                    r.dirty = Some(r.dirty.map_or(write, |w| w.max(write)));
                    r.server.clone()
                }
                None => {
                    let server: Arc<str> = Arc::from(s.name.as_str());
                    self.recs.insert(
                        (backend.clone(), u.key),
                        Rec {
                            server: server.clone(),
                            expires: now + t.expire,
                            ttl: t.expire,
                            dirty: Some(Write::New),
                        },
                    );
                    self.dirty += 1;
                    server
                }
            };
            down.push(StickDown {
                backend,
                key: u.key,
                server,
                ttl: t.expire,
            });
        }
        down
    }

    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.swept = Some(now);
        self.recs
            .retain(|_, r| r.expires > now || r.dirty.is_some());
    }

    /// Writes the new records; returns those where another node was first.
    pub fn flush(
        &mut self,
        conn: &mut redis::Connection,
        prefix: &str,
        node: &str,
    ) -> redis::RedisResult<Vec<StickDown>> {
        if self.dirty == 0 {
            return Ok(Vec::new());
        }
        let now = Instant::now();
        let mut order = Vec::new();
        let mut pipe = redis::pipe();
        for ((backend, key), r) in &self.recs {
            let Some(write) = r.dirty else { continue };
            let left = r.expires.saturating_duration_since(now);
            if left.is_zero() {
                continue;
            }
            let rkey = format!("{prefix}:stick:{backend}:{key:016x}");
            let ms = left.as_millis().max(1) as u64;
            match write {
                Write::Touch => {
                    pipe.cmd("PEXPIRE").arg(&rkey).arg(ms).ignore();
                }
                Write::New => {
                    pipe.cmd("SET")
                        .arg(&rkey)
                        .arg(&*r.server)
                        .arg("PX")
                        .arg(ms)
                        .arg("NX")
                        .ignore();
                }
                Write::Replace => {
                    pipe.cmd("SET")
                        .arg(&rkey)
                        .arg(&*r.server)
                        .arg("PX")
                        .arg(ms)
                        .ignore();
                }
            }
            pipe.cmd("GET").arg(&rkey);
            pipe.cmd("PTTL").arg(&rkey);
            order.push((backend.clone(), *key));
        }
        let answers: Vec<(Option<String>, i64)> = if order.is_empty() {
            Vec::new()
        } else {
            let flat: Vec<redis::Value> = pipe.query(conn)?;
            flat.chunks(2)
                .map(|c| {
                    let s = redis::from_redis_value::<Option<String>>(c[0].clone())
                        .ok()
                        .flatten();
                    let t = redis::from_redis_value::<i64>(c[1].clone()).unwrap_or(-1);
                    (s, t)
                })
                .collect()
        };
        let mut adopted = Vec::new();
        let mut publish = redis::pipe();
        for ((backend, key), (winner, pttl)) in order.into_iter().zip(answers) {
            let Some(r) = self.recs.get_mut(&(backend.clone(), key)) else {
                continue;
            };
            let Some(winner) = winner else { continue };
            let ttl = if pttl > 0 {
                Duration::from_millis(pttl as u64)
            } else {
                r.ttl
            };
            if *r.server != *winner {
                r.server = Arc::from(winner.as_str());
                r.expires = now + ttl;
                adopted.push(StickDown {
                    backend: backend.clone(),
                    key,
                    server: r.server.clone(),
                    ttl,
                });
            }
            publish
                .publish(
                    format!("{prefix}:events"),
                    format!(
                        "stick {node} {backend} {key:016x} {winner} {}",
                        ttl.as_millis()
                    ),
                )
                .ignore();
        }
        publish.query::<()>(conn)?;
        for r in self.recs.values_mut() {
            r.dirty = None;
        }
        self.dirty = 0;
        Ok(adopted)
    }

    /// `BACKEND KEY SERVER TTL_MS` from another node.
    pub fn remote<'a>(&mut self, mut w: impl Iterator<Item = &'a str>) -> Option<StickDown> {
        let backend: Arc<str> = Arc::from(w.next()?);
        let key = u64::from_str_radix(w.next()?, 16).ok()?;
        let server: Arc<str> = Arc::from(w.next()?);
        let ttl = Duration::from_millis(w.next()?.parse().ok()?);
        let now = Instant::now();
        let rec = self.recs.entry((backend.clone(), key)).or_insert(Rec {
            server: server.clone(),
            expires: now + ttl,
            ttl,
            dirty: None,
        });
        rec.server = server.clone();
        rec.expires = now + ttl;
        Some(StickDown {
            backend,
            key,
            server,
            ttl,
        })
    }
}
