//! haproxy.cfg stick tables: `stick-table`, `stick on` (sticky sessions) and the rate
//! limit pattern `http-request track-scN KEY [table T]` + `http-request deny
//! [deny_status S] if { sc_http_req_rate(N) gt LIMIT }`.

use super::*;
use crate::config::{RateLimit, StickKey, StickTable};

/// A `stick-table` line.
#[derive(Clone)]
pub(super) struct HaTable {
    pub line: usize,
    /// `type ip` or `ipv6` (what `stick on src` and the request-rate limit need).
    pub ip: bool,
    pub key: crate::rules::stick::KeyType,
    pub len: usize,
    pub size: usize,
    pub expire: Option<Duration>,
    /// `store http_req_rate(PERIOD)`.
    pub rate_period: Option<Duration>,
    /// Every stored data type, rates with their period.
    pub store: Vec<(crate::rules::stick::DataType, Duration)>,
}

/// `track-scN KEY [table T]`.
#[derive(Clone)]
pub(super) struct Track {
    pub line: usize,
    pub key: StickKey,
    pub table: Option<String>,
}

/// What a proxy said about stick tables, resolved once every proxy is read.
#[derive(Default)]
pub(super) struct StickLines {
    pub table: Option<HaTable>,
    /// `stick on KEY [table T]`.
    pub on: Option<Track>,
    pub tracks: [Option<Track>; 3],
    /// `acl NAME sc_http_req_rate(N) gt LIMIT`: (counter, limit).
    pub rate_acls: HashMap<String, (usize, u32)>,
    /// Rate-limit deny rules, by limiter index: (line, counter, limit).
    pub rate_rules: Vec<(usize, usize, u32)>,
}

/// `src`, `req.hdr(NAME)`, `hdr(NAME)`, `req.cook(NAME)`, `cook(NAME)`.
fn fetch_key(w: &str) -> Option<StickKey> {
    let arg = |p: &str| {
        w.strip_prefix(p)
            .and_then(|r| r.strip_suffix(')'))
            .filter(|n| !n.is_empty() && !n.contains(','))
    };
    if w == "src" {
        Some(StickKey::Src)
    } else if let Some(n) = arg("req.hdr(").or_else(|| arg("hdr(")) {
        Some(StickKey::Header(n.to_ascii_lowercase()))
    } else {
        arg("req.cook(")
            .or_else(|| arg("cook("))
            .map(|n| StickKey::Cookie(n.to_string()))
    }
}

/// Whether a `track-sc` key is one the request-rate limit path handles.
pub(super) fn is_legacy_key(w: &str) -> bool {
    fetch_key(w).is_some()
}

/// `sc_http_req_rate(N)` or `scN_http_req_rate` → N.
fn rate_counter(w: &str) -> Option<usize> {
    let n = w
        .strip_prefix("sc_http_req_rate(")
        .and_then(|r| r.strip_suffix(')'))
        .or_else(|| {
            w.strip_prefix("sc")
                .and_then(|r| r.strip_suffix("_http_req_rate"))
        })?;
    n.parse::<usize>().ok().filter(|&n| n < 3)
}

impl Mapper<'_> {
    pub(super) fn stick_table(&mut self, l: &Line, p: &mut Proxy) {
        use crate::rules::stick::{DataType, KeyType};
        let a = l.args();
        let mut t = HaTable {
            line: l.line,
            ip: true,
            key: KeyType::Ip,
            len: 32,
            size: 0,
            expire: None,
            rate_period: None,
            store: Vec::new(),
        };
        let mut i = 0;
        let mut typed = false;
        let mut kind = "ip";
        while i < a.len() {
            let v = a.get(i + 1).map(String::as_str).unwrap_or("");
            match a[i].as_str() {
                "type" => {
                    typed = true;
                    kind = match v {
                        "ip" | "ipv6" | "integer" | "string" | "binary" => v,
                        other => {
                            return self.err(
                                l.line,
                                format!("stick-table type '{other}' is not supported (ip, ipv6, integer, string, binary)"),
                            )
                        }
                    };
                    t.ip = matches!(v, "ip" | "ipv6");
                }
                "len" => match v.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => t.len = n,
                    _ => return self.err(l.line, format!("stick-table: invalid len '{v}'")),
                },
                "size" => match parse_size(v) {
                    Ok(n) if n > 0 => t.size = n as usize,
                    _ => return self.err(l.line, format!("stick-table: invalid size '{v}'")),
                },
                "expire" => match parse_time(v) {
                    Ok(d) => t.expire = Some(d),
                    Err(e) => return self.err(l.line, format!("stick-table expire: {e}")),
                },
                "store" => {
                    for item in v.split(',') {
                        let (name, period) = match item.split_once('(') {
                            Some((n, r)) => match r.strip_suffix(')') {
                                Some(p) => (n, Some(p)),
                                None => {
                                    return self.err(
                                        l.line,
                                        format!("stick-table: invalid 'store {item}'"),
                                    )
                                }
                            },
                            None => (item, None),
                        };
                        let Some(d) = DataType::parse(name) else {
                            return self.err(
                                l.line,
                                format!("stick-table: 'store {name}' is not supported (conn_cur, conn_cnt, conn_rate, sess_cnt, sess_rate, http_req_cnt, http_req_rate, http_err_cnt, http_err_rate, http_fail_cnt, http_fail_rate, bytes_in_cnt, bytes_in_rate, bytes_out_cnt, bytes_out_rate, gpc0, gpc0_rate, gpc1, gpc1_rate, gpt0, server_id)"),
                            );
                        };
                        let period = match (d.is_rate(), period) {
                            (true, Some(p)) => match parse_time(p) {
                                Ok(d) if !d.is_zero() => d,
                                _ => {
                                    return self.err(
                                        l.line,
                                        format!("stick-table: invalid period in '{item}'"),
                                    )
                                }
                            },
                            (true, None) => {
                                return self.err(
                                    l.line,
                                    format!(
                                        "stick-table: '{name}' needs a period: {name}(<period>)"
                                    ),
                                )
                            }
                            (false, Some(_)) => {
                                return self
                                    .err(l.line, format!("stick-table: '{name}' takes no period"))
                            }
                            (false, None) => Duration::ZERO,
                        };
                        if d == DataType::HttpReqRate {
                            t.rate_period = Some(period);
                        }
                        if !t.store.iter().any(|(x, _)| *x == d) {
                            t.store.push((d, period));
                        }
                    }
                    if t.store.len() > crate::rules::stick::MAX_STORED {
                        return self.err(
                            l.line,
                            format!(
                                "stick-table: ringlb stores at most {} data types per table",
                                crate::rules::stick::MAX_STORED
                            ),
                        );
                    }
                }
                "peers" | "srvkey" | "nopurge" => {
                    self.warn(l.line, format!("stick-table '{}' ignored", a[i]));
                    if a[i] == "nopurge" {
                        i += 1;
                        continue;
                    }
                }
                other => {
                    return self.err(l.line, format!("stick-table: unknown argument '{other}'"))
                }
            }
            i += 2;
        }
        if !typed || t.size == 0 {
            return self.err(l.line, "stick-table expects 'type' and 'size'");
        }
        t.key = match kind {
            "ip" => KeyType::Ip,
            "ipv6" => KeyType::Ipv6,
            "integer" => KeyType::Integer,
            "binary" => KeyType::Binary(t.len),
            _ => KeyType::String(t.len),
        };
        if p.stick.table.is_some() {
            return self.err(l.line, "only one 'stick-table' per proxy");
        }
        p.stick.table = Some(t);
    }

    /// `stick on KEY [table T]` (backends); `stick match|store-request` are not supported.
    pub(super) fn stick(&mut self, l: &Line, p: &mut Proxy) {
        let a: Vec<&str> = l.args().iter().map(String::as_str).collect();
        match a.as_slice() {
            ["on", key, rest @ ..] => {
                let Some(key) = fetch_key(key) else {
                    return self.err(
                        l.line,
                        format!("'stick on {key}': ringlb sticks on src, req.hdr(NAME) or req.cook(NAME)"),
                    );
                };
                let table = match rest {
                    [] => None,
                    ["table", t] => Some(t.to_string()),
                    _ => {
                        return self.err(
                            l.line,
                            format!(
                                "'stick on': unsupported '{}' (conditions are not supported)",
                                rest.join(" ")
                            ),
                        )
                    }
                };
                if p.stick.on.is_some() {
                    return self.err(l.line, "only one 'stick on' per backend in ringlb");
                }
                p.stick.on = Some(Track {
                    line: l.line,
                    key,
                    table,
                });
            }
            [other, ..] => self.err(
                l.line,
                format!("'stick {other}' is not supported (use 'stick on')"),
            ),
            [] => self.err(l.line, "'stick' expects 'on'"),
        }
    }

    /// `http-request track-scN KEY [table T]`.
    pub(super) fn track(&mut self, line: usize, sc: usize, args: &[&str], p: &mut Proxy) {
        let (key, table) = match args {
            [k] => (k, None),
            [k, "table", t] => (k, Some(t.to_string())),
            _ => return self.err(line, "'track-sc' expects KEY [table NAME] (no condition)"),
        };
        let Some(key) = fetch_key(key) else {
            return self.err(
                line,
                format!("'track-sc{sc} {key}': ringlb tracks src, req.hdr(NAME) or req.cook(NAME)"),
            );
        };
        p.stick.tracks[sc] = Some(Track { line, key, table });
    }

    /// `acl NAME sc_http_req_rate(N) gt LIMIT`: `Some(true)` when it was one.
    pub(super) fn rate_acl(
        &mut self,
        line: usize,
        name: &str,
        w: &[String],
        p: &mut Proxy,
    ) -> bool {
        let Some(sc) = w.first().and_then(|c| rate_counter(c)) else {
            return false;
        };
        let _ = line;
        // Other forms are ordinary ACLs only.
        if let Some(limit) = rate_compare(&w[1..]) {
            p.stick.rate_acls.insert(name.to_string(), (sc, limit));
        }
        true
    }

    /// A deny rule over a request rate: `{ sc_http_req_rate(N) gt LIMIT }` or a rate
    /// ACL. `None`: the condition is not about a rate.
    pub(super) fn rate_deny(
        &mut self,
        line: usize,
        cond: &[String],
        p: &mut Proxy,
    ) -> Option<Option<(usize, u32)>> {
        let words: Vec<&str> = cond
            .iter()
            .map(String::as_str)
            .filter(|w| *w != "{" && *w != "}")
            .collect();
        let mentions = words
            .iter()
            .any(|w| rate_counter(w).is_some() || p.stick.rate_acls.contains_key(*w));
        if !mentions {
            return None;
        }
        let found = match words.as_slice() {
            [acl] => p.stick.rate_acls.get(*acl).copied(),
            [c, rest @ ..] => rate_counter(c).zip(rate_compare_str(rest)),
            _ => None,
        };
        let _ = line;
        // Another shape of condition is an ordinary rule.
        found.map(Some)
    }

    /// Resolves stick tables, `stick on` and rate limits once every proxy is known.
    pub(super) fn backend_stick(
        &mut self,
        p: &Proxy,
        tables: &HashMap<String, HaTable>,
    ) -> Option<StickTable> {
        let on = p.stick.on.as_ref()?;
        if p.settings.mode == Mode::Tcp {
            self.err(on.line, "'stick on' needs 'mode http' in ringlb");
            return None;
        }
        let t = self.table_for(on, p, tables)?;
        if t.ip != (on.key == StickKey::Src) {
            self.err(
                on.line,
                "'stick on': a 'type ip' table takes src, a 'type string' table a header or cookie",
            );
            return None;
        }
        Some(StickTable {
            key: on.key.clone(),
            len: t.len,
            size: t.size,
            expire: t.expire.unwrap_or(Duration::from_secs(86400)),
        })
    }

    pub(super) fn frontend_rates(
        &mut self,
        p: &Proxy,
        tables: &HashMap<String, HaTable>,
    ) -> Vec<RateLimit> {
        let mut out = Vec::new();
        for &(line, sc, limit) in &p.stick.rate_rules {
            let Some(track) = p.stick.tracks[sc].as_ref() else {
                self.err(
                    line,
                    format!(
                        "sc_http_req_rate({sc}) without an earlier 'http-request track-sc{sc}'"
                    ),
                );
                continue;
            };
            let Some(t) = self.table_for(track, p, tables) else {
                continue;
            };
            let Some(period) = t.rate_period else {
                self.err(
                    t.line,
                    "the table of a request-rate limit needs 'store http_req_rate(PERIOD)'",
                );
                continue;
            };
            if t.ip != (track.key == StickKey::Src) {
                self.err(track.line, "'track-sc': a 'type ip' table takes src, a 'type string' table a header or cookie");
                continue;
            }
            out.push(RateLimit {
                key: track.key.clone(),
                len: t.len,
                limit,
                period,
                size: t.size,
            });
        }
        out
    }

    fn table_for<'t>(
        &mut self,
        t: &Track,
        p: &'t Proxy,
        tables: &'t HashMap<String, HaTable>,
    ) -> Option<&'t HaTable> {
        let found = match &t.table {
            None => p.stick.table.as_ref(),
            Some(name) => tables.get(name),
        };
        if found.is_none() {
            let which = t.table.as_deref().unwrap_or(&p.name);
            self.err(t.line, format!("no stick-table in proxy '{which}'"));
        }
        found
    }
}

fn rate_compare(w: &[String]) -> Option<u32> {
    let v: Vec<&str> = w.iter().map(String::as_str).collect();
    rate_compare_str(&v)
}

/// `gt N` → N; `ge N` → N - 1.
fn rate_compare_str(w: &[&str]) -> Option<u32> {
    match w {
        ["gt", n] => n.parse().ok(),
        ["ge", n] => n.parse::<u32>().ok().map(|n| n.saturating_sub(1)),
        _ => None,
    }
}
