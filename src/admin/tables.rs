//! The runtime API's table commands over today's tables: `show table [NAME
//! [data.X OP V]* [key K]]`, `clear table NAME [key K]`, `set table NAME key K
//! data.server_id N`. A backend's stick table is named after the backend (HAProxy's
//! `stick-table` in that backend); a frontend's request-rate table after the frontend
//! (`NAME#2` for its second limit). These keep 64-bit hashes of their keys, not the
//! keys: an entry shows `key=#HASH`, and `key K` hashes K as a request's key is hashed.
//! The rule language's tables (`stick-table` with `track-scN`) show their keys as
//! HAProxy does (`key=10.0.0.1`), and every stored data type in HAProxy's order; an
//! entry only learnt from another node shows its hash.
//!
//! Data types: `server_id` (stick tables), `http_req_rate` (rate tables), what a
//! rule-language table stores.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::Core;
use crate::config::{Config, StickKey};
use crate::control::{StickDown, ToShard, Up, APPLY_WAIT};
use crate::rules::stick::{DataType, KeyType};

/// A table of the config: a backend's stick table, a frontend's rate limit, or a
/// rule-language table (`counters`: its index in `Config::tables`).
struct Table {
    name: String,
    owner: usize,
    limiter: Option<usize>,
    counters: Option<u32>,
    key: StickKey,
    kind: &'static str,
    len: usize,
    size: usize,
    /// The rate's period in ms (rate tables).
    period_ms: u64,
    /// What a rule-language table stores, in HAProxy's order: (position in the
    /// table's `store`, type, period in ms).
    store: Vec<(usize, DataType, u64)>,
}

impl Table {
    /// Whether this table stores data type `name` (`data.NAME` filters).
    fn stores(&self, name: &str) -> bool {
        match self.counters {
            Some(_) => self.store.iter().any(|(_, d, _)| d.name() == name),
            None => {
                name == if self.limiter.is_none() {
                    "server_id"
                } else {
                    "http_req_rate"
                }
            }
        }
    }
}

/// One entry as `show table` prints it.
struct Row {
    /// The key's text (`None`: only its hash is known).
    name: Option<Box<[u8]>>,
    exp: u64,
    used: i64,
    /// (`data.X` name, printed label, value).
    data: Vec<(&'static str, String, i64)>,
}

fn tables(cfg: &Config) -> Vec<Table> {
    let mut out = Vec::new();
    for (bi, b) in cfg.backends.iter().enumerate() {
        if let Some(t) = &b.stick {
            out.push(Table {
                name: b.name.clone(),
                owner: bi,
                limiter: None,
                counters: None,
                kind: kind_of(&t.key),
                key: t.key.clone(),
                len: t.len,
                size: t.size,
                period_ms: 0,
                store: Vec::new(),
            });
        }
    }
    for (fi, f) in cfg.frontends.iter().enumerate() {
        for (i, r) in f.rate_limits.iter().enumerate() {
            out.push(Table {
                name: if i == 0 {
                    f.name.clone()
                } else {
                    format!("{}#{}", f.name, i + 1)
                },
                owner: fi,
                limiter: Some(i),
                counters: None,
                kind: kind_of(&r.key),
                key: r.key.clone(),
                len: r.len,
                size: r.size,
                period_ms: r.period.as_millis() as u64,
                store: Vec::new(),
            });
        }
    }
    for (ti, t) in cfg.tables.iter().enumerate() {
        // A backend's `stick on` table has the same name: it is listed once.
        if out.iter().any(|o| o.name == t.name) {
            continue;
        }
        let mut store: Vec<(usize, DataType, u64)> = t
            .store
            .iter()
            .enumerate()
            .map(|(i, (d, p))| (i, *d, p.as_millis() as u64))
            .collect();
        store.sort_by_key(|(_, d, _)| d.haproxy_rank());
        let (kind, len) = match t.key {
            KeyType::Ip => ("ip", 4),
            KeyType::Ipv6 => ("ipv6", 16),
            KeyType::Integer => ("integer", 4),
            KeyType::String(n) => ("string", n),
            KeyType::Binary(n) => ("binary", n),
        };
        out.push(Table {
            name: t.name.clone(),
            owner: 0,
            limiter: None,
            counters: Some(ti as u32),
            key: StickKey::Src,
            kind,
            len,
            size: t.size,
            period_ms: 0,
            store,
        });
    }
    out
}

fn kind_of(k: &StickKey) -> &'static str {
    match k {
        StickKey::Src => "ip",
        _ => "string",
    }
}

/// The hash a request with key text `k` gets in `t` (an IP for `src` tables).
fn key_of(cfg: &Config, t: &Table, k: &str) -> Option<u64> {
    use crate::rules::{sample::Data, Smp};
    use xxhash_rust::xxh3::xxh3_64;
    if let Some(ti) = t.counters {
        let kt = cfg.tables.get(ti as usize)?.key;
        let smp = match kt {
            KeyType::Ip | KeyType::Ipv6 => Smp::Ip(k.parse().ok()?),
            KeyType::Integer => Smp::Int(k.parse().ok()?),
            KeyType::String(_) | KeyType::Binary(_) => Smp::Str(Data::Ref(k.as_bytes())),
        };
        return crate::rules::table_key(kt, &smp, &[]);
    }
    match t.key {
        StickKey::Src => {
            let ip: std::net::IpAddr = k.parse().ok()?;
            crate::tables::key_hash(&StickKey::Src, t.len, &[], ip)
        }
        _ => Some(xxh3_64(&k.as_bytes()[..k.len().min(t.len)])),
    }
}

/// Every entry of table `t`, merged over the shards. Every shard holds a copy: keep
/// the latest expiry, the largest value, the trackers summed, the key's text from
/// the shard that has it.
fn entries(core: &Core, t: &Table) -> BTreeMap<u64, Row> {
    let mut out: BTreeMap<u64, Row> = BTreeMap::new();
    for shard in core.inspect() {
        if let Some(ti) = t.counters {
            for d in shard.counters.into_iter().filter(|d| d.table == ti) {
                for e in d.entries {
                    let data = t
                        .store
                        .iter()
                        .map(|(i, dt, period)| {
                            let label = if dt.is_rate() {
                                format!("{}({period})", dt.name())
                            } else {
                                dt.name().to_string()
                            };
                            (dt.name(), label, e.values.get(*i).copied().unwrap_or(0))
                        })
                        .collect();
                    let row = out.entry(e.key).or_insert(Row {
                        name: None,
                        exp: 0,
                        used: 0,
                        data,
                    });
                    row.exp = row.exp.max(e.exp_ms);
                    row.used += e.used;
                    if row.name.is_none() {
                        row.name = e.name;
                    }
                    for (r, (i, _, _)) in row.data.iter_mut().zip(&t.store) {
                        r.2 = r.2.max(e.values.get(*i).copied().unwrap_or(0));
                    }
                }
            }
            continue;
        }
        for d in shard.tables {
            if d.owner != t.owner || d.limiter != t.limiter {
                continue;
            }
            for (k, exp, v) in d.entries {
                let (name, label) = match t.limiter {
                    None => ("server_id", "server_id".to_string()),
                    Some(_) => ("http_req_rate", format!("http_req_rate({})", t.period_ms)),
                };
                let row = out.entry(k).or_insert(Row {
                    name: None,
                    exp,
                    used: 0,
                    data: vec![(name, label, v as i64)],
                });
                row.exp = row.exp.max(exp);
                row.data[0].2 = row.data[0].2.max(v as i64);
            }
        }
    }
    out
}

/// A `data.X OP V` filter.
struct Filter {
    data: String,
    op: &'static str,
    value: i64,
}

impl Filter {
    fn keeps(&self, row: &Row) -> bool {
        let v = row
            .data
            .iter()
            .find(|(n, _, _)| *n == self.data)
            .map_or(0, |d| d.2);
        match self.op {
            "eq" => v == self.value,
            "ne" => v != self.value,
            "le" => v <= self.value,
            "ge" => v >= self.value,
            "lt" => v < self.value,
            _ => v > self.value,
        }
    }
}

fn find<'a>(list: &'a [Table], name: &str) -> Result<&'a Table, String> {
    list.iter()
        .find(|t| t.name == name)
        .ok_or_else(|| "No such table\n".to_string())
}

fn header(t: &Table, used: usize) -> String {
    format!(
        "# table: {}, type: {}, size:{}, used:{}\n",
        t.name, t.kind, t.size, used
    )
}

/// `show table [NAME [data.X OP V]* [key K]]`.
pub fn show_table(core: &Core, w: &[&str]) -> String {
    let cfg = core.cfg();
    let list = tables(&cfg);
    let Some(name) = w.first() else {
        let mut out = String::new();
        for t in &list {
            out.push_str(&header(t, entries(core, t).len()));
        }
        return out;
    };
    let t = match find(&list, name) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let mut filters = Vec::new();
    let mut key = None;
    let mut i = 1;
    while i < w.len() {
        if w[i] == "key" {
            let Some(k) = w.get(i + 1) else {
                return "Key value expected\n".into();
            };
            key = key_of(&cfg, t, k);
            if key.is_none() {
                // HAProxy answers nothing for a key its table's type cannot hold.
                return if t.counters.is_some() {
                    String::new()
                } else {
                    "Invalid key\n".into()
                };
            }
            i += 2;
            continue;
        }
        let n = filters.len() + 1;
        let Some(data) = w[i].strip_prefix("data.") else {
            return format!("Filter entry #{n}: Unknown data type\n");
        };
        if crate::rules::stick::DataType::parse(data).is_none() {
            return format!("Filter entry #{n}: Unknown data type\n");
        }
        if !t.stores(data) {
            return format!("Filter entry #{n}: Data type not stored in this table\n");
        }
        let op = match w.get(i + 1).copied() {
            Some("eq") => "eq",
            Some("ne") => "ne",
            Some("le") => "le",
            Some("ge") => "ge",
            Some("lt") => "lt",
            Some("gt") => "gt",
            _ => {
                return format!("Filter entry #{n}: Require and operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"\n")
            }
        };
        let Some(value) = w.get(i + 2).and_then(|v| v.parse().ok()) else {
            return format!(
                "Filter entry #{n}: Require a valid integer value to compare against\n"
            );
        };
        filters.push(Filter {
            data: data.to_string(),
            op,
            value,
        });
        i += 3;
    }
    let all = entries(core, t);
    if key.is_some_and(|k| !all.contains_key(&k)) {
        return String::new();
    }
    let mut out = header(t, all.len());
    // HAProxy lists entries in key order (addresses and integers by value, strings
    // bytewise); keys known only by their hash come last.
    let mut rows: Vec<(&u64, &Row)> = all.iter().collect();
    rows.sort_by_cached_key(|(k, row)| order_key(t, row, **k));
    for (k, row) in rows {
        if key.is_some_and(|x| x != *k) || !filters.iter().all(|f| f.keeps(row)) {
            continue;
        }
        let _ = write!(out, "0x{k:x}: key=");
        match &row.name {
            Some(n) => out.push_str(&String::from_utf8_lossy(n)),
            None => {
                let _ = write!(out, "#{k:016x}");
            }
        }
        let _ = write!(out, " use={} exp={}", row.used, row.exp);
        for (_, label, v) in &row.data {
            let _ = write!(out, " {label}={v}");
        }
        out.push('\n');
    }
    out
}

fn order_key(t: &Table, row: &Row, hash: u64) -> (bool, Vec<u8>, u64) {
    let Some(name) = &row.name else {
        return (true, Vec::new(), hash);
    };
    let text = String::from_utf8_lossy(name);
    let bytes = match t.kind {
        "ip" | "ipv6" => match text.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => a.octets().to_vec(),
            Ok(std::net::IpAddr::V6(a)) => a.octets().to_vec(),
            Err(_) => name.to_vec(),
        },
        "integer" => text.parse::<i64>().map_or_else(
            |_| name.to_vec(),
            |i| (i as u64 ^ (1 << 63)).to_be_bytes().to_vec(),
        ),
        _ => name.to_vec(),
    };
    (false, bytes, hash)
}

/// `clear table NAME [key K]`: on every shard before the answer.
pub fn clear_table(core: &Core, w: &[&str]) -> String {
    let cfg = core.cfg();
    let list = tables(&cfg);
    let Some(name) = w.first() else {
        return "Require a table name\n".into();
    };
    let t = match find(&list, name) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let key = match w.get(1..) {
        Some(["key", k, ..]) => match key_of(&cfg, t, k) {
            Some(h) => Some(h),
            None if t.counters.is_some() => return String::new(),
            None => return "Invalid key\n".into(),
        },
        Some(["key"]) => return "Key value expected\n".into(),
        _ => None,
    };
    if let Some(table) = t.counters {
        return core
            .apply_everywhere(|| ToShard::ClearStickCounters { table, key })
            .err()
            .unwrap_or_default();
    }
    let (owner, limiter) = (t.owner, t.limiter);
    if limiter.is_none() {
        if let Some(tx) = core.cluster.get() {
            // Through the cluster thread, which shares what shards learn: a record
            // learnt before the command and not yet passed on would otherwise come back
            // to every shard after the clear.
            let (done, cleared) = crossbeam_channel::bounded(1);
            let sent = tx.send(Up::ClearSticks {
                owner,
                backend: cfg.backends[owner].name.clone(),
                key,
                done,
            });
            if sent.is_ok() && cleared.recv_timeout(APPLY_WAIT).is_ok() {
                return core.confirm().err().unwrap_or_default();
            }
        }
    }
    core.apply_everywhere(|| ToShard::ClearTable {
        owner,
        limiter,
        key,
    })
    .err()
    .unwrap_or_default()
}

/// `set table NAME key K data.server_id N`: sticks key K to server N (by id) on
/// every shard of this node.
pub fn set_table(core: &Core, w: &[&str]) -> String {
    let cfg = core.cfg();
    let list = tables(&cfg);
    let Some(name) = w.first() else {
        return "Require a table name\n".into();
    };
    let t = match find(&list, name) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let k = match w.get(1..) {
        Some(["key", k, ..]) => *k,
        Some(["key"]) => return "Key value expected\n".into(),
        _ => return String::new(),
    };
    if t.counters.is_some() {
        // Counters are summed over shards and nodes: an absolute value has no owner.
        return "set table: only server_id (stick tables) can be set here\n".into();
    }
    let Some(hash) = key_of(&cfg, t, k) else {
        return "Invalid key\n".into();
    };
    let mut server = None;
    let mut i = 3;
    while i < w.len() {
        let Some(data) = w[i].strip_prefix("data.") else {
            return "Unknown data type\n".into();
        };
        if data != "server_id" || t.limiter.is_some() {
            return "Unknown data type\n".into();
        }
        let Some(v) = w.get(i + 1).and_then(|v| v.parse::<usize>().ok()) else {
            return "Require a valid integer value to store\n".into();
        };
        server = Some(v);
        i += 2;
    }
    let Some(id) = server else {
        return String::new();
    };
    let b = &cfg.backends[t.owner];
    let Some(s) = id.checked_sub(1).and_then(|i| b.servers.get(i)) else {
        return "No such server\n".into();
    };
    let ttl = b.stick.as_ref().map(|t| t.expire).unwrap_or_default();
    let rec = Arc::new(vec![StickDown {
        backend: Arc::from(b.name.as_str()),
        key: hash,
        server: Arc::from(s.name.as_str()),
        ttl,
    }]);
    core.apply_everywhere(|| ToShard::Sticks(rec.clone()))
        .err()
        .unwrap_or_default()
}
