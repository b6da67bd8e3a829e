//! A shard's stick tables: its copies of the shared state: its stick-table cache (client key → server)
//! and its request-rate counters. Answered from here on the request path without a
//! lock or a message; what a request teaches is queued and leaves once per control
//! tick (`flush`) for the cluster thread, which answers with what other shards and
//! other nodes know (`apply_sticks`, `apply_rates`).

pub mod counters;
mod dump;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::config::{Config, StickKey};
use crate::control::{CountUp, RateDown, StickDown, StickUp, Up};
pub use crate::rules::stick::ip_key;

/// Keys are already hashes: no need to hash them again.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Which rule kind started tracking an entry (it decides which counters move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackFrom {
    /// `tcp-request connection|session`: a connection.
    Connection,
    /// `tcp-request content`: a stream (a connection in `mode tcp`, a request in
    /// `mode http`).
    Content,
    /// `http-request`: a request.
    Http,
}

/// The 64-bit hash of a request's key (`None`: the request has no such key), cut to
/// `len` bytes for string keys. Nothing is copied.
pub fn key_hash(
    key: &StickKey,
    len: usize,
    headers: &[httparse::Header<'_>],
    src: IpAddr,
) -> Option<u64> {
    use xxhash_rust::xxh3::xxh3_64;
    let value: &[u8] = match key {
        StickKey::Src => return Some(ip_key(src)),
        // As HAProxy's `req.hdr(NAME)`: the last value of the last occurrence.
        StickKey::Header(name) => {
            let h = headers
                .iter()
                .rev()
                .find(|h| h.name.eq_ignore_ascii_case(name))?;
            let v = h.value.rsplit(|&b| b == b',').next().unwrap_or(h.value);
            v.trim_ascii()
        }
        StickKey::Cookie(name) => headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .flat_map(|h| h.value.split(|&b| b == b';'))
            .find_map(|kv| {
                let kv = kv.trim_ascii();
                let eq = kv.iter().position(|&b| b == b'=')?;
                (&kv[..eq] == name.as_bytes()).then(|| &kv[eq + 1..])
            })?,
    };
    if value.is_empty() {
        return None;
    }
    Some(xxh3_64(&value[..value.len().min(len)]))
}

struct StickEntry {
    server: u32,
    expires: Instant,
    /// When this shard last told the cluster thread (refreshes go at most every
    /// half expiry).
    told: Instant,
}

/// One backend's stick table on one shard.
struct StickCache {
    map: KeyMap<StickEntry>,
    size: usize,
    expire: Duration,
}

#[derive(Default)]
struct RateEntry {
    /// The window `curr` counts (`unix ms / period`).
    window: u64,
    /// This shard's requests in the current and the previous window.
    own: [u32; 2],
    /// Everybody else's (other shards, other nodes), as last heard.
    others: [u32; 2],
    /// Own requests not yet sent to the cluster thread, per window.
    unsent: [u32; 2],
    dirty: bool,
}

impl RateEntry {
    fn roll(&mut self, w: u64) {
        if w == self.window {
            return;
        }
        let keep = w == self.window + 1;
        self.own = [0, if keep { self.own[0] } else { 0 }];
        self.others = [0, if keep { self.others[0] } else { 0 }];
        // Unsent counts of the window before last are dropped (older than a period).
        self.unsent = [0, if keep { self.unsent[0] } else { 0 }];
        self.window = w;
    }
}

/// One rate limit's counters on one shard.
struct RateTable {
    map: KeyMap<RateEntry>,
    size: usize,
    period_ms: u64,
    limit: u32,
}

/// A shard's view of the shared state, for one config generation.
pub struct ShardCluster {
    /// Per backend (`None`: no stick table).
    sticks: Vec<Option<RefCell<StickCache>>>,
    /// Per frontend, per rate limit.
    rates: Vec<Vec<RefCell<RateTable>>>,
    out_sticks: RefCell<Vec<StickUp>>,
    /// Stick-table counters of the rule language (`track-scN`, `sc_*`).
    tables: self::counters::Tables,
    /// (frontend, limiter, key) of rate entries with unsent counts.
    dirty: RefCell<Vec<(u32, u32, u64)>>,
    /// Rung when something waits to be sent: the control loop flushes soon after.
    bell: std::rc::Rc<crate::io::LocalBell>,
}

/// Capacity reserved up front, so that steady traffic does not grow the maps.
const RESERVE: usize = 4096;

impl ShardCluster {
    pub fn new(cfg: &Config, bell: std::rc::Rc<crate::io::LocalBell>) -> ShardCluster {
        ShardCluster {
            bell,
            sticks: cfg
                .backends
                .iter()
                .map(|b| {
                    b.stick.as_ref().map(|t| {
                        let mut map = KeyMap::default();
                        map.reserve(t.size.min(RESERVE));
                        RefCell::new(StickCache {
                            map,
                            size: t.size,
                            expire: t.expire,
                        })
                    })
                })
                .collect(),
            rates: cfg
                .frontends
                .iter()
                .map(|f| {
                    f.rate_limits
                        .iter()
                        .map(|r| {
                            let mut map = KeyMap::default();
                            map.reserve(r.size.min(RESERVE));
                            RefCell::new(RateTable {
                                map,
                                size: r.size,
                                period_ms: r.period.as_millis().max(1) as u64,
                                limit: r.limit,
                            })
                        })
                        .collect()
                })
                .collect(),
            out_sticks: RefCell::new(Vec::with_capacity(64)),
            tables: self::counters::Tables::new(cfg),
            dirty: RefCell::new(Vec::with_capacity(64)),
        }
    }

    /// The server a key sticks to, if known and not expired.
    pub fn stuck(&self, backend: usize, key: u64, now: Instant) -> Option<u32> {
        let cache = self.sticks.get(backend)?.as_ref()?.borrow();
        cache
            .map
            .get(&key)
            .filter(|e| e.expires > now)
            .map(|e| e.server)
    }

    /// A request with `key` was served by `server`; `recorded` is the server the table
    /// held when the request was routed. Remember it (and tell the cluster thread when
    /// it is new, replaced, or due for a refresh). A record that arrived while the
    /// request was in flight stands: the next request follows it.
    pub fn learn(
        &self,
        backend: usize,
        key: u64,
        server: u32,
        recorded: Option<u32>,
        now: Instant,
    ) {
        let Some(Some(cache)) = self.sticks.get(backend) else {
            return;
        };
        let mut cache = cache.borrow_mut();
        let expire = cache.expire;
        let (tell, replace) = match cache.map.get_mut(&key) {
            Some(e) if e.server == server && e.expires > now => {
                e.expires = now + expire;
                let due = now.duration_since(e.told) >= expire / 2;
                if due {
                    e.told = now;
                }
                (due, false)
            }
            // Replaced only when this request deviated from the record it was routed
            // by; a record that appeared or changed meanwhile stands.
            Some(e) if e.expires > now && recorded != Some(e.server) => return,
            Some(e) => {
                let replace = e.expires > now;
                *e = StickEntry {
                    server,
                    expires: now + expire,
                    told: now,
                };
                (true, replace)
            }
            None => {
                if cache.map.len() >= cache.size {
                    cache.map.retain(|_, e| e.expires > now);
                }
                if cache.map.len() >= cache.size {
                    return;
                }
                cache.map.insert(
                    key,
                    StickEntry {
                        server,
                        expires: now + expire,
                        told: now,
                    },
                );
                (true, false)
            }
        };
        if tell {
            self.bell.ring();
            self.out_sticks.borrow_mut().push(StickUp {
                backend: backend as u32,
                key,
                server,
                replace,
            });
        }
    }

    /// Counts a request against rate limit `limiter` of `frontend`; `true` when the
    /// key is over the limit (HAProxy's `sc_http_req_rate(N) gt LIMIT`, this request
    /// included). Denied requests count too, as in HAProxy.
    pub fn over_limit(&self, frontend: usize, limiter: usize, key: u64, now_ms: u64) -> bool {
        let Some(t) = self.rates.get(frontend).and_then(|f| f.get(limiter)) else {
            return false;
        };
        let mut t = t.borrow_mut();
        let (period, limit) = (t.period_ms, t.limit);
        let w = now_ms / period;
        if !t.map.contains_key(&key) && t.map.len() >= t.size {
            // Full: forget keys quiet for more than a period; still full, not tracked.
            t.map.retain(|_, e| e.window + 1 >= w || e.dirty);
            if t.map.len() >= t.size {
                return false;
            }
        }
        let e = t.map.entry(key).or_default();
        e.roll(w);
        e.own[0] = e.own[0].saturating_add(1);
        e.unsent[0] += 1;
        if !e.dirty {
            e.dirty = true;
            self.bell.ring();
            self.dirty
                .borrow_mut()
                .push((frontend as u32, limiter as u32, key));
        }
        let curr = u64::from(e.own[0]) + u64::from(e.others[0]);
        let prev = u64::from(e.own[1]) + u64::from(e.others[1]);
        let left = period - (now_ms - w * period);
        // HAProxy's freq_ctr: the previous period weighted by what is left of it.
        let rate = curr + (prev * left) / period;
        rate > u64::from(limit)
    }

    /// Counts the request against rate limit `limiter` of frontend `fi` (`fe`); `true`:
    /// over the limit. A request without the key (no such header) is not counted.
    pub fn rate_exceeded(
        &self,
        fe: &crate::config::Frontend,
        fi: usize,
        limiter: usize,
        headers: &[httparse::Header<'_>],
        src: IpAddr,
    ) -> bool {
        let Some(r) = fe.rate_limits.get(limiter) else {
            return false;
        };
        match key_hash(&r.key, r.len, headers, src) {
            Some(k) => self.over_limit(fi, limiter, k, unix_ms()),
            None => false,
        }
    }

    /// Something waits to be sent to the cluster thread.
    pub fn pending(&self) -> bool {
        !self.out_sticks.borrow().is_empty()
            || !self.dirty.borrow().is_empty()
            || self.tables.pending()
    }

    /// The tables hold entries (a periodic sweep has something to expire).
    pub fn has_entries(&self) -> bool {
        self.sticks
            .iter()
            .flatten()
            .any(|c| !c.borrow().map.is_empty())
            || self
                .rates
                .iter()
                .flatten()
                .any(|t| !t.borrow().map.is_empty())
            || self.tables.has_entries()
    }

    /// A stick-counter operation on an entry (read, increment, clear): `None` when the
    /// table does not store what it asks for.
    pub fn sc_op(&self, e: crate::rules::Tracked, op: crate::rules::stick::ScOp) -> Option<i64> {
        // An increment or a clear waits for the next flush.
        self.bell.ring();
        self.tables.op(e, op)
    }

    /// `track-scN` on key sample `v` in table `table`: the entry's connection and
    /// request counters move, and an entry created now keeps the key's text for `show
    /// table` (made only then: no allocation per request). `None`: the sample is no
    /// key of that table.
    pub fn sc_track(
        &self,
        cfg: &Config,
        table: u32,
        v: &crate::rules::Smp<'_>,
        cur: &[u8],
        from: TrackFrom,
    ) -> Option<crate::rules::Tracked> {
        let kt = cfg.tables.get(table as usize)?.key;
        let e = crate::rules::Tracked {
            table,
            key: crate::rules::table_key(kt, v, cur)?,
        };
        let session = from == TrackFrom::Connection;
        self.tables
            .start(e, session, || crate::rules::table_key_text(kt, v, cur));
        // `http-request track-sc` counts its request at once (HAProxy's action does).
        if from == TrackFrom::Http {
            self.tables.event(e, self::counters::Event::Request);
        }
        self.bell.ring();
        Some(e)
    }

    /// Moves the counters of a tracked entry (requests, statuses, bytes, ends).
    pub fn sc_event(&self, e: crate::rules::Tracked, ev: self::counters::Event) {
        self.tables.event(e, ev);
    }

    /// `sc-set-gpt0`.
    pub fn sc_set_gpt0(&self, e: crate::rules::Tracked, v: i64) {
        self.tables.set_gpt0(e, v);
        self.bell.ring();
    }

    /// The rule language's tables, for `show table`.
    pub fn dump_counters(&self) -> Vec<crate::control::CounterDump> {
        self.tables.dump()
    }

    /// `clear table` on a rule-language table.
    pub fn clear_counters(&self, table: u32, key: Option<u64>) {
        self.tables.clear(table, key);
    }

    /// Whether a table holds an entry for `key`.
    pub fn sc_has(&self, table: u32, key: u64) -> bool {
        self.tables.has(table, key)
    }

    /// Everybody else's shares of this shard's stick-table counters.
    pub fn apply_tables(&self, cfg: &Config, downs: &[crate::control::TableDown]) {
        self.tables.apply(cfg, downs);
    }

    /// On the control tick: what this shard learnt goes to the cluster thread.
    pub fn flush(&self, shard: usize, config: &Arc<Config>, tx: &Sender<Up>) {
        let mut sticks = self.out_sticks.borrow_mut();
        let mut dirty = self.dirty.borrow_mut();
        let tables = self.tables.drain();
        if sticks.is_empty() && dirty.is_empty() && tables.is_empty() {
            return;
        }
        let mut counts = Vec::with_capacity(dirty.len() * 2);
        for (fe, lim, key) in dirty.drain(..) {
            let Some(t) = self
                .rates
                .get(fe as usize)
                .and_then(|f| f.get(lim as usize))
            else {
                continue;
            };
            let mut t = t.borrow_mut();
            let period = t.period_ms;
            if let Some(e) = t.map.get_mut(&key) {
                for (i, n) in e.unsent.iter_mut().enumerate() {
                    if *n > 0 && e.window >= i as u64 {
                        counts.push(CountUp {
                            frontend: fe,
                            limiter: lim,
                            key,
                            window: e.window - i as u64,
                            period_ms: period,
                            count: *n,
                        });
                    }
                    *n = 0;
                }
                e.dirty = false;
            }
        }
        let _ = tx.send(Up::Batch {
            shard,
            config: config.clone(),
            // Copied out (on the tick), so the shard's buffer keeps its capacity.
            sticks: sticks.drain(..).collect(),
            counts,
            tables,
        });
    }

    /// Drops expired stick entries and rate entries older than a period.
    pub fn sweep(&self) {
        self.tables.sweep();
        let now = Instant::now();
        for c in self.sticks.iter().flatten() {
            c.borrow_mut().map.retain(|_, e| e.expires > now);
        }
        let now_ms = unix_ms();
        for t in self.rates.iter().flatten() {
            let mut t = t.borrow_mut();
            let w = now_ms / t.period_ms;
            t.map.retain(|_, e| e.window + 1 >= w || e.dirty);
        }
    }

    /// Records decided by the cluster thread (this node's shards or other nodes).
    /// `add server` / `del server` made `new` from `old` (same backends): stick
    /// records follow their server to its place in `new`; those of a removed server go.
    pub fn renumber_servers(&self, old: &Config, new: &Config) {
        for (b, (ob, nb)) in old.backends.iter().zip(&new.backends).enumerate() {
            let place: Vec<Option<u32>> = ob
                .servers
                .iter()
                .map(|s| {
                    nb.servers
                        .iter()
                        .position(|n| n.name == s.name)
                        .map(|i| i as u32)
                })
                .collect();
            if place.iter().enumerate().all(|(i, p)| *p == Some(i as u32)) {
                continue;
            }
            let moved = |s: u32| place.get(s as usize).copied().flatten();
            if let Some(Some(cache)) = self.sticks.get(b) {
                cache.borrow_mut().map.retain(|_, e| match moved(e.server) {
                    Some(n) => {
                        e.server = n;
                        true
                    }
                    None => false,
                });
            }
            self.out_sticks.borrow_mut().retain_mut(|u| {
                if u.backend as usize != b {
                    return true;
                }
                match moved(u.server) {
                    Some(n) => {
                        u.server = n;
                        true
                    }
                    None => false,
                }
            });
        }
    }

    pub fn apply_sticks(&self, cfg: &Config, recs: &[StickDown]) {
        let now = Instant::now();
        for r in recs {
            let Some(b) = cfg.backend_index(&r.backend) else {
                continue;
            };
            let Some(Some(cache)) = self.sticks.get(b) else {
                continue;
            };
            let Some(server) = cfg.backends[b]
                .servers
                .iter()
                .position(|s| *s.name == *r.server)
            else {
                continue;
            };
            let mut cache = cache.borrow_mut();
            if cache.map.len() >= cache.size && !cache.map.contains_key(&r.key) {
                continue;
            }
            cache.map.insert(
                r.key,
                StickEntry {
                    server: server as u32,
                    expires: now + r.ttl,
                    told: now,
                },
            );
        }
    }

    /// Other shards' and nodes' counts of keys this node tracks.
    pub fn apply_rates(&self, cfg: &Config, counts: &[RateDown]) {
        for c in counts {
            let Some(fe) = cfg.frontends.iter().position(|f| *f.name == *c.frontend) else {
                continue;
            };
            let Some(t) = self.rates.get(fe).and_then(|f| f.get(c.limiter as usize)) else {
                continue;
            };
            let mut t = t.borrow_mut();
            if !t.map.contains_key(&c.key) && t.map.len() >= t.size {
                continue;
            }
            let e = t.map.entry(c.key).or_default();
            if c.window > e.window {
                e.roll(c.window);
            }
            if c.window == e.window {
                e.others[0] = c.others;
            } else if c.window + 1 == e.window {
                e.others[1] = c.others;
            }
        }
    }
}

/// The stick key of a request for backend `b`, when it has `stick on`.
pub fn stick_key(
    b: &crate::config::Backend,
    headers: &[httparse::Header<'_>],
    src: IpAddr,
) -> Option<u64> {
    let t = b.stick.as_ref()?;
    key_hash(&t.key, t.len, headers, src)
}

/// Wall-clock milliseconds: windows are aligned on it so that every node counts the
/// same windows (nodes' clocks must agree, NTP).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
