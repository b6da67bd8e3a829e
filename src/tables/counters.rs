//! Stick-table counters on a shard (`track-scN`, `sc_*`, `src_*`, `table_*`): per
//! table, per key, the stored data types (`conn_cur`, `http_req_rate(10s)`, `gpc0`,
//! ...). A shard counts what its own connections do and, once per control tick, sends
//! the increments to the cluster thread; the answers (everybody else's share, from the
//! node's other shards and, with Redis, other nodes) come back as `others`. Reads
//! are answered from here, without a lock or a message.
//!
//! A rate is HAProxy's sliding estimate over two fixed windows aligned on the wall
//! clock: the current one plus the previous one weighted by what is left of it, as
//! for the request-rate limits (`local`). A counter (`*_cnt`, `gpc0`, `conn_cur`)
//! is a single running sum.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::{unix_ms, KeyMap};
use crate::config::Config;
use crate::control::{TableDown, TableUp};
use crate::rules::stick::{DataType, ScOp, TableSpec, MAX_STORED};
use crate::rules::Tracked;

/// One stored value.
#[derive(Debug, Default, Clone, Copy)]
struct Val {
    /// The window `[0]` counts (rates; 0 for counters).
    window: u64,
    own: [i64; 2],
    others: [i64; 2],
    unsent: [i64; 2],
}

impl Val {
    fn roll(&mut self, w: u64) {
        if w == self.window {
            return;
        }
        let keep = w == self.window + 1;
        self.own = [0, if keep { self.own[0] } else { 0 }];
        self.others = [0, if keep { self.others[0] } else { 0 }];
        self.unsent = [0, if keep { self.unsent[0] } else { 0 }];
        self.window = w;
    }

    fn add(&mut self, v: i64, period_ms: u64, now_ms: u64) {
        if let Some(w) = now_ms.checked_div(period_ms) {
            self.roll(w);
        }
        self.own[0] = self.own[0].saturating_add(v);
        self.unsent[0] = self.unsent[0].saturating_add(v);
    }

    fn get(&mut self, period_ms: u64, now_ms: u64) -> i64 {
        if period_ms == 0 {
            return (self.own[0] + self.others[0]).max(0);
        }
        let w = now_ms / period_ms;
        self.roll(w);
        let curr = self.own[0] + self.others[0];
        let prev = self.own[1] + self.others[1];
        let left = (period_ms - (now_ms - w * period_ms)) as i64;
        (curr + prev * left / period_ms as i64).max(0)
    }
}

struct Entry {
    vals: [Val; MAX_STORED],
    last: Instant,
    dirty: bool,
    /// Connections and requests of this shard tracking the entry now (`sc_trackers`).
    trackers: i64,
    /// The key as `show table` prints it, kept by the shard that created the entry
    /// (entries learnt from other shards and nodes have only the hash).
    name: Option<Box<[u8]>>,
}

struct Table {
    map: KeyMap<Entry>,
    size: usize,
    expire: Duration,
    /// Stored data types, with their period in milliseconds (0: a counter).
    kinds: Vec<(DataType, u64)>,
}

impl Table {
    fn slot(&self, d: DataType) -> Option<(usize, u64)> {
        self.kinds
            .iter()
            .position(|(k, _)| *k == d)
            .map(|i| (i, self.kinds[i].1))
    }

    /// The entry for `key`, created if there is room.
    fn entry(&mut self, key: u64, now: Instant) -> Option<&mut Entry> {
        if !self.map.contains_key(&key) && self.map.len() >= self.size {
            let expire = self.expire;
            self.map
                .retain(|_, e| e.dirty || e.trackers > 0 || now.duration_since(e.last) < expire);
            if self.map.len() >= self.size {
                return None;
            }
        }
        let e = self.map.entry(key).or_insert_with(|| Entry {
            vals: [Val::default(); MAX_STORED],
            last: now,
            dirty: false,
            trackers: 0,
            name: None,
        });
        e.last = now;
        Some(e)
    }
}

/// A shard's stick-table counters, for one config generation.
pub struct Tables {
    tables: Vec<RefCell<Table>>,
    /// (table, key) of entries with unsent increments.
    dirty: RefCell<Vec<(u32, u64)>>,
}

/// Which counters an event moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection or request started tracking the entry.
    Start { session: bool },
    /// It stopped (connection or request end).
    Stop,
    /// An HTTP request on a connection that tracks the entry.
    Request,
    /// A response status (4xx: an error, 5xx but 501/505: a failure).
    Status(u16),
    /// Bytes from the client / to the client.
    Bytes { from_client: u64, to_client: u64 },
}

impl Tables {
    pub fn new(cfg: &Config) -> Tables {
        Tables {
            tables: cfg.tables.iter().map(|t| RefCell::new(table(t))).collect(),
            dirty: RefCell::new(Vec::with_capacity(64)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bump(
        &self,
        t: &mut Table,
        table: u32,
        key: u64,
        d: DataType,
        v: i64,
        now: Instant,
        now_ms: u64,
    ) {
        let Some((i, period)) = t.slot(d) else { return };
        let Some(e) = t.entry(key, now) else { return };
        e.vals[i].add(v, period, now_ms);
        if !e.dirty {
            e.dirty = true;
            self.dirty.borrow_mut().push((table, key));
        }
    }

    /// Moves the counters of entry `e` for `ev`.
    pub fn event(&self, e: Tracked, ev: Event) {
        self.event_naming(e, ev, || None);
    }

    /// `Event::Start` for a `track-scN`: an entry created now is named with `name()`
    /// (the key's text, for `show table`), in the same lookup.
    pub fn start(&self, e: Tracked, session: bool, name: impl FnOnce() -> Option<Box<[u8]>>) {
        self.event_naming(e, Event::Start { session }, name);
    }

    fn event_naming(&self, e: Tracked, ev: Event, name: impl FnOnce() -> Option<Box<[u8]>>) {
        use DataType::*;
        let Some(t) = self.tables.get(e.table as usize) else {
            return;
        };
        let mut t = t.borrow_mut();
        let (now, now_ms) = (Instant::now(), unix_ms());
        match ev {
            Event::Start { .. } => {
                if let Some(en) = t.entry(e.key, now) {
                    en.trackers += 1;
                    if en.name.is_none() {
                        en.name = name();
                    }
                }
            }
            Event::Stop => {
                if let Some(en) = t.map.get_mut(&e.key) {
                    en.trackers = (en.trackers - 1).max(0);
                }
            }
            _ => {}
        }
        let mut b = |d: DataType, v: i64| self.bump(&mut t, e.table, e.key, d, v, now, now_ms);
        match ev {
            Event::Start { session } => {
                b(ConnCur, 1);
                b(ConnCnt, 1);
                b(ConnRate, 1);
                if session {
                    b(SessCnt, 1);
                    b(SessRate, 1);
                }
            }
            Event::Stop => b(ConnCur, -1),
            Event::Request => {
                b(HttpReqCnt, 1);
                b(HttpReqRate, 1);
            }
            Event::Status(s) => {
                if (400..500).contains(&s) {
                    b(HttpErrCnt, 1);
                    b(HttpErrRate, 1);
                } else if (500..600).contains(&s) && s != 501 && s != 505 {
                    b(HttpFailCnt, 1);
                    b(HttpFailRate, 1);
                }
            }
            Event::Bytes {
                from_client,
                to_client,
            } => {
                b(BytesInCnt, from_client as i64);
                b(BytesInRate, from_client as i64);
                b(BytesOutCnt, to_client as i64);
                b(BytesOutRate, to_client as i64);
            }
        }
    }

    /// A stick-counter fetch or converter: read, increment or clear.
    pub fn op(&self, e: Tracked, op: ScOp) -> Option<i64> {
        let mut t = self.tables.get(e.table as usize)?.borrow_mut();
        let (now, now_ms) = (Instant::now(), unix_ms());
        match op {
            ScOp::Get(d) | ScOp::Kbytes(d) => {
                let (i, period) = t.slot(d)?;
                let v = match t.map.get_mut(&e.key) {
                    Some(en) => en.vals[i].get(period, now_ms),
                    None => 0,
                };
                Some(if matches!(op, ScOp::Kbytes(_)) {
                    v >> 10
                } else {
                    v
                })
            }
            ScOp::Inc(d) => {
                t.slot(d)?;
                let rate = if d == DataType::Gpc0 {
                    DataType::Gpc0Rate
                } else {
                    DataType::Gpc1Rate
                };
                self.bump(&mut t, e.table, e.key, d, 1, now, now_ms);
                self.bump(&mut t, e.table, e.key, rate, 1, now, now_ms);
                let (i, period) = t.slot(d)?;
                Some(
                    t.map
                        .get_mut(&e.key)
                        .map_or(0, |en| en.vals[i].get(period, now_ms)),
                )
            }
            ScOp::Clr(d) => {
                let (i, period) = t.slot(d)?;
                let en = t.map.get_mut(&e.key)?;
                let v = en.vals[i].get(period, now_ms);
                // Cleared here; other shards and nodes clear when their own counts
                // expire (a shared reset is not propagated).
                let unsent = en.vals[i].unsent;
                en.vals[i] = Val {
                    unsent,
                    ..Val::default()
                };
                Some(v)
            }
            // This shard's trackers (HAProxy's reference count of the entry).
            ScOp::Trackers => Some(t.map.get(&e.key).map_or(0, |en| en.trackers)),
            ScOp::Tracked => None,
        }
    }

    /// `sc-set-gpt0`: the tag is set on this shard's copy.
    pub fn set_gpt0(&self, e: Tracked, v: i64) {
        let Some(t) = self.tables.get(e.table as usize) else {
            return;
        };
        let mut t = t.borrow_mut();
        let Some((i, _)) = t.slot(DataType::Gpt0) else {
            return;
        };
        if let Some(en) = t.entry(e.key, Instant::now()) {
            en.vals[i].own = [v, 0];
            en.vals[i].others = [0, 0];
        }
    }

    /// Every entry of every table, for `show table` (admin path, not the request
    /// path): the values in the table's `store` order.
    pub fn dump(&self) -> Vec<crate::control::CounterDump> {
        let (now, now_ms) = (Instant::now(), unix_ms());
        let mut out = Vec::with_capacity(self.tables.len());
        for (ti, t) in self.tables.iter().enumerate() {
            let mut t = t.borrow_mut();
            let expire = t.expire;
            let kinds = t.kinds.clone();
            let entries = t
                .map
                .iter_mut()
                .filter(|(_, e)| e.trackers > 0 || now.duration_since(e.last) < expire)
                .map(|(k, e)| crate::control::CounterEntry {
                    key: *k,
                    name: e.name.clone(),
                    exp_ms: expire
                        .saturating_sub(now.duration_since(e.last))
                        .as_millis() as u64,
                    used: e.trackers,
                    values: kinds
                        .iter()
                        .enumerate()
                        .map(|(i, (_, period))| e.vals[i].get(*period, now_ms))
                        .collect(),
                })
                .collect();
            out.push(crate::control::CounterDump {
                table: ti as u32,
                entries,
            });
        }
        out
    }

    /// `clear table`: forgets one key (`Some`) or every entry of table `table` on
    /// this shard (entries still tracked by a connection stay, as in HAProxy).
    pub fn clear(&self, table: u32, key: Option<u64>) {
        let Some(t) = self.tables.get(table as usize) else {
            return;
        };
        let mut t = t.borrow_mut();
        match key {
            Some(k) => {
                if t.map.get(&k).is_some_and(|e| e.trackers == 0) {
                    t.map.remove(&k);
                }
            }
            None => t.map.retain(|_, e| e.trackers > 0),
        }
    }

    pub fn has(&self, table: u32, key: u64) -> bool {
        self.tables
            .get(table as usize)
            .is_some_and(|t| t.borrow().map.contains_key(&key))
    }

    /// Increments wait to be sent.
    pub fn pending(&self) -> bool {
        !self.dirty.borrow().is_empty()
    }

    /// Some table holds an entry (the sweep has something to expire).
    pub fn has_entries(&self) -> bool {
        self.tables.iter().any(|t| !t.borrow().map.is_empty())
    }

    /// The increments made since the last call (once per control tick).
    pub fn drain(&self) -> Vec<TableUp> {
        let mut dirty = self.dirty.borrow_mut();
        if dirty.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(dirty.len() * 2);
        for (ti, key) in dirty.drain(..) {
            let Some(t) = self.tables.get(ti as usize) else {
                continue;
            };
            let mut t = t.borrow_mut();
            let expire_ms = t.expire.as_millis() as u64;
            let mut periods = [0u64; MAX_STORED];
            let n = t.kinds.len();
            for (p, (_, period)) in periods.iter_mut().zip(&t.kinds) {
                *p = *period;
            }
            let Some(e) = t.map.get_mut(&key) else {
                continue;
            };
            for (i, period) in periods.iter().enumerate().take(n) {
                let v = &mut e.vals[i];
                for (back, n) in v.unsent.iter_mut().enumerate() {
                    if *n != 0 && v.window >= back as u64 {
                        out.push(TableUp {
                            table: ti,
                            data: i as u32,
                            key,
                            window: v.window - back as u64,
                            period_ms: *period,
                            expire_ms,
                            delta: *n,
                        });
                    }
                    *n = 0;
                }
            }
            e.dirty = false;
        }
        out
    }

    /// Everybody else's shares of entries this shard holds.
    pub fn apply(&self, cfg: &Config, downs: &[TableDown]) {
        let now_ms = unix_ms();
        for d in downs {
            let Some(ti) = cfg.tables.iter().position(|t| *t.name == *d.table) else {
                continue;
            };
            let Some(t) = self.tables.get(ti) else {
                continue;
            };
            let mut t = t.borrow_mut();
            let Some(&(_, period)) = t.kinds.get(d.data as usize) else {
                continue;
            };
            let Some(e) = t.entry(d.key, Instant::now()) else {
                continue;
            };
            let v = &mut e.vals[d.data as usize];
            if let Some(w) = now_ms.checked_div(period) {
                if d.window + 1 < w {
                    continue;
                }
                if d.window > v.window {
                    v.roll(d.window);
                }
            }
            if d.window == v.window {
                v.others[0] = d.others;
            } else if d.window + 1 == v.window {
                v.others[1] = d.others;
            }
        }
    }

    /// Forgets entries idle for longer than their table's `expire`.
    pub fn sweep(&self) {
        let now = Instant::now();
        for t in &self.tables {
            let mut t = t.borrow_mut();
            let expire = t.expire;
            t.map
                .retain(|_, e| e.dirty || e.trackers > 0 || now.duration_since(e.last) < expire);
        }
    }
}

fn table(spec: &TableSpec) -> Table {
    let mut map = KeyMap::default();
    map.reserve(spec.size.min(1024));
    Table {
        map,
        size: spec.size,
        expire: spec.expire,
        kinds: spec
            .store
            .iter()
            .map(|(d, p)| (*d, p.as_millis() as u64))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_counters_and_gauges() {
        let cfg = crate::config::from_haproxy_str(
            "frontend f\n bind :0\n mode http\n stick-table type ip size 10 expire 1m store conn_cur,conn_cnt,http_req_rate(10s),gpc0,gpc0_rate(1m),http_err_cnt\n default_backend b\nbackend b\n",
            &|_| None,
        )
        .unwrap()
        .0;
        let t = Tables::new(&cfg);
        let e = Tracked { table: 0, key: 7 };
        t.event(e, Event::Start { session: false });
        t.event(e, Event::Request);
        t.event(e, Event::Request);
        t.event(e, Event::Status(404));
        t.event(e, Event::Status(200));
        assert_eq!(t.op(e, ScOp::Get(DataType::ConnCur)), Some(1));
        assert_eq!(t.op(e, ScOp::Get(DataType::ConnCnt)), Some(1));
        assert_eq!(t.op(e, ScOp::Get(DataType::HttpReqRate)), Some(2));
        assert_eq!(t.op(e, ScOp::Get(DataType::HttpErrCnt)), Some(1));
        assert_eq!(t.op(e, ScOp::Inc(DataType::Gpc0)), Some(1));
        assert_eq!(t.op(e, ScOp::Inc(DataType::Gpc0)), Some(2));
        assert_eq!(t.op(e, ScOp::Get(DataType::Gpc0Rate)), Some(2));
        assert_eq!(t.op(e, ScOp::Clr(DataType::Gpc0)), Some(2));
        assert_eq!(t.op(e, ScOp::Get(DataType::Gpc0)), Some(0));
        t.event(e, Event::Stop);
        assert_eq!(t.op(e, ScOp::Get(DataType::ConnCur)), Some(0));
        // Not stored: no value.
        assert_eq!(t.op(e, ScOp::Get(DataType::BytesInRate)), None);
        // An unknown key reads 0.
        assert_eq!(
            t.op(Tracked { table: 0, key: 9 }, ScOp::Get(DataType::ConnCnt)),
            Some(0)
        );
        let ups = t.drain();
        assert!(ups.iter().any(|u| u.delta == 2 && u.period_ms == 10_000));
        assert!(t.drain().is_empty());
        // Another shard's share adds in.
        let w = unix_ms() / 10_000;
        t.apply(
            &cfg,
            &[TableDown {
                table: "f".into(),
                data: 2,
                key: 7,
                window: w,
                others: 5,
            }],
        );
        assert_eq!(t.op(e, ScOp::Get(DataType::HttpReqRate)), Some(7));
    }
}
