//! The runtime API's table commands over today's tables: `show table [NAME
//! [data.X OP V]* [key K]]`, `clear table NAME [key K]`, `set table NAME key K
//! data.server_id N`. A backend's stick table is named after the backend (HAProxy's
//! `stick-table` in that backend); a frontend's request-rate table after the frontend
//! (`NAME#2` for its second limit). Tables keep 64-bit hashes of their keys, not
//! the keys: an entry shows `key=#HASH`, and `key K` hashes K as a request's key is
//! hashed.
//!
//! Data types: `server_id` (stick tables), `http_req_rate` (rate tables).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::Core;
use crate::config::{Config, StickKey};
use crate::control::{StickDown, ToShard};

/// A table of the config: a backend's stick table or a frontend's rate limit.
struct Table {
    name: String,
    owner: usize,
    limiter: Option<usize>,
    key: StickKey,
    len: usize,
    size: usize,
    /// The rate's period in ms (rate tables).
    period_ms: u64,
}

impl Table {
    fn kind(&self) -> &'static str {
        match self.key {
            StickKey::Src => "ip",
            _ => "string",
        }
    }

    /// The data type this table stores, as `data.NAME` filters name it.
    fn data(&self) -> &'static str {
        match self.limiter {
            None => "server_id",
            Some(_) => "http_req_rate",
        }
    }
}

fn tables(cfg: &Config) -> Vec<Table> {
    let mut out = Vec::new();
    for (bi, b) in cfg.backends.iter().enumerate() {
        if let Some(t) = &b.stick {
            out.push(Table {
                name: b.name.clone(),
                owner: bi,
                limiter: None,
                key: t.key.clone(),
                len: t.len,
                size: t.size,
                period_ms: 0,
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
                key: r.key.clone(),
                len: r.len,
                size: r.size,
                period_ms: r.period.as_millis() as u64,
            });
        }
    }
    out
}

/// The hash a request with key text `k` gets in `t` (an IP for `src` tables).
fn key_of(t: &Table, k: &str) -> Option<u64> {
    use xxhash_rust::xxh3::xxh3_64;
    match t.key {
        StickKey::Src => {
            let ip: std::net::IpAddr = k.parse().ok()?;
            crate::tables::key_hash(&StickKey::Src, t.len, &[], ip)
        }
        _ => Some(xxh3_64(&k.as_bytes()[..k.len().min(t.len)])),
    }
}

/// Every entry of table `t`, merged over the shards: (hash, expires in ms, data).
fn entries(core: &Core, t: &Table) -> BTreeMap<u64, (u64, u64)> {
    let mut out = BTreeMap::new();
    for shard in core.inspect() {
        for d in shard.tables {
            if d.owner != t.owner || d.limiter != t.limiter {
                continue;
            }
            for (k, exp, v) in d.entries {
                // Every shard holds a copy: keep the latest expiry, the largest rate.
                let e = out.entry(k).or_insert((exp, v));
                e.0 = e.0.max(exp);
                e.1 = e.1.max(v);
            }
        }
    }
    out
}

/// A `data.X OP V` filter.
struct Filter {
    op: &'static str,
    value: u64,
}

impl Filter {
    fn keeps(&self, v: u64) -> bool {
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
        t.name,
        t.kind(),
        t.size,
        used
    )
}

/// `show table [NAME [data.X OP V]* [key K]]`.
pub fn show_table(core: &Core, w: &[&str]) -> String {
    let list = tables(&core.cfg());
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
            key = key_of(t, k);
            if key.is_none() {
                return "Invalid key\n".into();
            }
            i += 2;
            continue;
        }
        let n = filters.len() + 1;
        let Some(data) = w[i].strip_prefix("data.") else {
            return format!("Filter entry #{n}: Unknown data type\n");
        };
        if data != t.data() {
            return format!("Filter entry #{n}: Unknown data type\n");
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
        filters.push(Filter { op, value });
        i += 3;
    }
    let all = entries(core, t);
    if key.is_some_and(|k| !all.contains_key(&k)) {
        return String::new();
    }
    let mut out = header(t, all.len());
    for (k, (exp, v)) in &all {
        if key.is_some_and(|x| x != *k) || !filters.iter().all(|f| f.keeps(*v)) {
            continue;
        }
        let _ = write!(out, "0x{k:x}: key=#{k:016x} use=0 exp={exp} ");
        match t.limiter {
            None => {
                let _ = writeln!(out, "server_id={v}");
            }
            Some(_) => {
                let _ = writeln!(out, "http_req_rate({})={v}", t.period_ms);
            }
        }
    }
    out
}

/// `clear table NAME [key K]`: on every shard before the answer.
pub fn clear_table(core: &Core, w: &[&str]) -> String {
    let list = tables(&core.cfg());
    let Some(name) = w.first() else {
        return "Require a table name\n".into();
    };
    let t = match find(&list, name) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let key = match w.get(1..) {
        Some(["key", k, ..]) => match key_of(t, k) {
            Some(h) => Some(h),
            None => return "Invalid key\n".into(),
        },
        Some(["key"]) => return "Key value expected\n".into(),
        _ => None,
    };
    let (owner, limiter) = (t.owner, t.limiter);
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
    let Some(hash) = key_of(t, k) else {
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
