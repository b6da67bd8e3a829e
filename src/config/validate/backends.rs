//! The TOML config's backends: servers, balance algorithms and health checks.

use std::collections::HashMap;
use std::time::Duration;

use super::Validator;
use crate::config::dns::Resolvers;
use crate::config::raw::{RawConfig, RawStatusMatch};
use crate::config::{
    Backend, BalanceAlgo, CheckKind, HashFunction, HashKey, HealthCheck, Server, StatusMatch,
    UriKey,
};

impl Validator {
    pub(super) fn backends(&mut self, raw: &RawConfig, resolvers: &[Resolvers]) -> Vec<Backend> {
        let mut out = Vec::new();
        for (name, b) in &raw.backend {
            let path = format!("backend.{name}");
            let balance = self.balance(&path, b);
            if b.server.is_empty() {
                self.err(
                    &path,
                    "backend has no server (add at least one [[backend.NAME.server]])",
                );
            }
            let health = b
                .health
                .as_ref()
                .map(|h| self.health(&format!("{path}.health"), h));
            let mut servers = Vec::new();
            let mut ids = Vec::new();
            let mut names: HashMap<String, usize> = HashMap::new();
            let mut libc = HashMap::new();
            let mut templates = 0;
            for (i, s) in b.server.iter().enumerate() {
                let spath = format!("{path}.server[{i}]");
                let entry = s.name.clone().unwrap_or_else(|| format!("s{}", i + 1));
                let group = templates;
                if s.slots.is_some() {
                    templates += 1;
                }
                for (slot, (sname, template)) in self
                    .server_names(&spath, &entry, s, group)
                    .into_iter()
                    .enumerate()
                {
                    if let Some(prev) = names.insert(sname.clone(), i) {
                        self.err(
                            format!("{spath}.name"),
                            format!("duplicate server name {sname:?} (also server[{prev}])"),
                        );
                    }
                    let Some(start) =
                        self.server_start(&spath, s, resolvers, template, slot, &mut libc)
                    else {
                        continue;
                    };
                    let weight = match s.weight {
                        None => 1,
                        Some(w) if (0..=256).contains(&w) => w as u32,
                        Some(w) => {
                            self.err(
                                format!("{spath}.weight"),
                                format!("must be between 0 and 256, got {w}"),
                            );
                            1
                        }
                    };
                    let maxconn = match s.maxconn {
                        None | Some(0) => None,
                        Some(m) if m < 0 || m > u32::MAX as i64 => {
                            self.err(format!("{spath}.maxconn"), format!("invalid maxconn {m}"));
                            None
                        }
                        Some(m) => Some(m as u32),
                    };
                    let tls = s.tls.as_ref().and_then(|t| self.server_tls(&spath, t));
                    ids.push(match s.id {
                        None => None,
                        Some(n) if n > 0 && n <= i64::from(u32::MAX) => Some(n as u32),
                        Some(n) => {
                            self.err(
                                format!("{spath}.id"),
                                format!("must be a positive integer, got {n}"),
                            );
                            None
                        }
                    });
                    let h2 = match s.proto.as_deref() {
                        None | Some("h1") => false,
                        Some("h2") => true,
                        Some(other) => {
                            self.err(
                                format!("{spath}.proto"),
                                format!("expected \"h1\" or \"h2\", got {other:?}"),
                            );
                            false
                        }
                    };
                    let check_proto =
                        s.check_proto.as_deref().and_then(
                            |p| match crate::config::CheckProto::parse(p) {
                                Ok(p) => Some(p),
                                Err(e) => {
                                    self.err(format!("{spath}.check_proto"), e);
                                    None
                                }
                            },
                        );
                    if let (Some(p), Some(h)) = (check_proto, &health) {
                        if s.check.unwrap_or(true) && !p.fits(&h.kind) {
                            self.err(format!("{spath}.check_proto"), p.carries());
                        }
                    }
                    servers.push(Server {
                        tls,
                        h2,
                        check_proto,
                        id: 0,
                        name: sname,
                        addr: start.addr,
                        weight,
                        backup: s.backup.unwrap_or(false),
                        maxconn,
                        slowstart: self.duration(
                            &format!("{spath}.slowstart"),
                            &s.slowstart,
                            Duration::ZERO,
                        ),
                        check: s.check.unwrap_or(true),
                        disabled: s.disabled.unwrap_or(false),
                        send_proxy: match s.send_proxy.as_deref() {
                            None => None,
                            Some("v1") => Some(crate::proxy_protocol::Version::V1),
                            Some("v2") => Some(crate::proxy_protocol::Version::V2),
                            Some(other) => {
                                self.err(
                                    format!("{spath}.send_proxy"),
                                    format!("expected \"v1\" or \"v2\", got {other:?}"),
                                );
                                None
                            }
                        },
                        check_send_proxy: s.check_send_proxy.unwrap_or(false),
                        pool_purge_delay: None,
                        check_port: None,
                        check_addr: None,
                        shutdown_on_down: false,
                        shutdown_backups_on_up: false,
                        dns: start.dns,
                        no_addr: start.no_addr,
                        last_addr: start.last,
                        saved: None,
                        dynamic: false,
                        port_offset: None,
                        // Set below from the backend's `error_limit`.
                        passive: None,
                    });
                }
            }
            match crate::config::number_servers(&ids) {
                Ok(numbers) => {
                    for (s, id) in servers.iter_mut().zip(numbers) {
                        s.id = id;
                    }
                }
                Err((a, b)) => self.err(
                    format!("{path}.server[{b}].id"),
                    format!("duplicate server id (also server[{a}])"),
                ),
            }
            let retries = match b.retries {
                None => 3,
                Some(r) if (0..=100).contains(&r) => r as u32,
                Some(r) => {
                    self.err(
                        format!("{path}.retries"),
                        format!("must be between 0 and 100, got {r}"),
                    );
                    3
                }
            };
            let maxqueue = match b.maxqueue {
                None | Some(0) => None,
                Some(q) if q > 0 => Some(q as usize),
                Some(q) => {
                    self.err(format!("{path}.maxqueue"), format!("invalid maxqueue {q}"));
                    None
                }
            };
            let error_limit = match b.error_limit {
                None => 10,
                Some(e) if (0..=1_000_000).contains(&e) => e as u32,
                Some(e) => {
                    self.err(
                        format!("{path}.error_limit"),
                        format!("invalid error_limit {e}"),
                    );
                    10
                }
            };
            // TOML's passive health: `error_limit` consecutive failures (0: off) mark
            // a server down at once.
            let mut servers = servers;
            if error_limit > 0 {
                for s in &mut servers {
                    s.passive = Some(crate::config::Passive {
                        layer7: false,
                        limit: error_limit,
                        on_error: crate::config::OnError::MarkDown,
                    });
                }
            }
            out.push(Backend {
                // The process's log target, when there is one, hears of every server.
                logs: true,
                log_health_checks: false,
                error_pages: Default::default(),
                tcpka: None,
                h1_case: None,
                disabled: false,
                name: name.clone(),
                balance,
                servers,
                // `load_server_state = true`: the runtime's `server_state_file`.
                state_from: if b.load_server_state.unwrap_or(false) {
                    crate::config::state_file::StateFrom::Global
                } else {
                    crate::config::state_file::StateFrom::None
                },
                all_backups: b.all_backups.unwrap_or(false),
                prefer_last_server: false,
                buffer_request: b.buffer_request.unwrap_or(false),
                abort_on_close: b.abort_on_close.unwrap_or(false),
                splice: crate::config::SpliceOpts {
                    auto: b.splice_auto,
                    request: b.splice_request.unwrap_or(false),
                    response: b.splice_response.unwrap_or(false),
                },
                retries,
                redispatch: b.redispatch.unwrap_or(true),
                redispatch_after: 1,
                maxqueue,
                health,
                timeouts: crate::config::default_timeouts(),
                forward_for: None,
                server_close: false,
                stick: b
                    .stick
                    .as_ref()
                    .and_then(|st| self.stick(&format!("{path}.stick"), st)),
                http_request: Vec::new(),
                http_response: Vec::new(),
                http_after_response: Vec::new(),
                tcp_content: Vec::new(),
                tcp_response: Vec::new(),
                response_inspect_delay: None,
                use_server: Vec::new(),
                cookie: None,
                compression: self.compression(&path, b.compression.as_ref()),
            });
        }
        out
    }

    pub(super) fn balance(
        &mut self,
        path: &str,
        b: &crate::config::raw::RawBackend,
    ) -> BalanceAlgo {
        let algo = b.balance.as_deref().unwrap_or("round_robin");
        let uses = |key: &str| match key {
            "hash_key" | "hash_type" => algo == "hash",
            "random_draws" => algo == "random",
            _ => false,
        };
        for (key, set) in [
            ("hash_key", b.hash_key.is_some()),
            ("hash_type", b.hash_type.is_some()),
            ("random_draws", b.random_draws.is_some()),
        ] {
            if set && !uses(key) {
                self.err(
                    format!("{path}.{key}"),
                    format!("has no effect with balance = {algo:?}"),
                );
            }
        }
        match algo {
            "round_robin" | "roundrobin" => BalanceAlgo::RoundRobin,
            "static_rr" | "static-rr" => BalanceAlgo::StaticRr,
            "least_conn" | "leastconn" => BalanceAlgo::LeastConn,
            "first" => BalanceAlgo::First,
            "random" => {
                let draws = match b.random_draws {
                    None => 2,
                    Some(d) if (1..=16).contains(&d) => d as u32,
                    Some(d) => {
                        self.err(
                            format!("{path}.random_draws"),
                            format!("must be between 1 and 16, got {d}"),
                        );
                        2
                    }
                };
                BalanceAlgo::Random { draws }
            }
            "hash" => {
                let key = match b.hash_key.as_deref() {
                    None => {
                        self.err(
                            format!("{path}.hash_key"),
                            "balance = \"hash\" needs hash_key (\"source\", \"uri\", \"path\", \"header:NAME\" or \"url_param:NAME\")",
                        );
                        HashKey::Source
                    }
                    Some(k) => match parse_hash_key(k) {
                        Ok(k) => k,
                        Err(e) => {
                            self.err(format!("{path}.hash_key"), e);
                            HashKey::Source
                        }
                    },
                };
                let (consistent, function) = match parse_hash_type(b.hash_type.as_deref()) {
                    Ok(t) => t,
                    Err(e) => {
                        self.err(format!("{path}.hash_type"), e);
                        (false, HashFunction::default())
                    }
                };
                BalanceAlgo::Hash {
                    key,
                    consistent,
                    function,
                }
            }
            other => {
                self.err(
                    format!("{path}.balance"),
                    format!(
                        "unknown algorithm {other:?} (expected \"round_robin\", \"static_rr\", \"least_conn\", \"random\", \"first\" or \"hash\")"
                    ),
                );
                BalanceAlgo::RoundRobin
            }
        }
    }

    pub(super) fn health(&mut self, path: &str, h: &crate::config::raw::RawHealth) -> HealthCheck {
        let interval = self.duration(
            &format!("{path}.interval"),
            &h.interval,
            Duration::from_secs(2),
        );
        if interval.is_zero() {
            self.err(format!("{path}.interval"), "must be greater than zero");
        }
        let kind = match h.kind.as_deref() {
            None | Some("tcp") => {
                for (key, set) in [
                    ("method", h.method.is_some()),
                    ("path", h.path.is_some()),
                    ("host", h.host.is_some()),
                    ("expect_status", h.expect_status.is_some()),
                    ("disable_on_404", h.disable_on_404.is_some()),
                ] {
                    if set {
                        self.err(format!("{path}.{key}"), "only applies to type = \"http\"");
                    }
                }
                CheckKind::Tcp
            }
            Some("http") => {
                let method = h.method.clone().unwrap_or_else(|| "GET".into());
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                    self.err(
                        format!("{path}.method"),
                        format!("invalid method {method:?}"),
                    );
                }
                let p = h.path.clone().unwrap_or_else(|| "/".into());
                if !p.starts_with('/') || p.bytes().any(|b| b <= b' ') {
                    self.err(format!("{path}.path"), format!("invalid path {p:?}"));
                }
                let expect = match &h.expect_status {
                    None => StatusMatch::Default,
                    Some(m) => match parse_status_match(m) {
                        Ok(m) => m,
                        Err(e) => {
                            self.err(format!("{path}.expect_status"), e);
                            StatusMatch::Default
                        }
                    },
                };
                CheckKind::Http {
                    method,
                    path: p,
                    host: h.host.clone(),
                    expect,
                    disable_on_404: h.disable_on_404.unwrap_or(false),
                }
            }
            Some(other) => {
                self.err(
                    format!("{path}.type"),
                    format!("unknown check type {other:?} (expected \"tcp\" or \"http\")"),
                );
                CheckKind::Tcp
            }
        };
        let count = |v: &mut Self, key: &str, raw: Option<i64>, default: u32| match raw {
            None => default,
            Some(n) if (1..=1000).contains(&n) => n as u32,
            Some(n) => {
                v.err(
                    format!("{path}.{key}"),
                    format!("must be between 1 and 1000, got {n}"),
                );
                default
            }
        };
        let rise = count(self, "rise", h.rise, 2);
        let fall = count(self, "fall", h.fall, 3);
        let port = h.port.and_then(|p| {
            if (1..=65535).contains(&p) {
                Some(p as u16)
            } else {
                self.err(format!("{path}.port"), format!("invalid port {p}"));
                None
            }
        });
        let addr = h.addr.as_ref().and_then(|a| match a.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(format!("{path}.addr"), format!("invalid IP address {a:?}"));
                None
            }
        });
        HealthCheck {
            kind,
            interval,
            fast_interval: self.duration(
                &format!("{path}.fast_interval"),
                &h.fast_interval,
                interval,
            ),
            down_interval: self.duration(
                &format!("{path}.down_interval"),
                &h.down_interval,
                interval,
            ),
            timeout: self.duration(&format!("{path}.timeout"), &h.timeout, interval),
            rise,
            fall,
            port,
            addr,
        }
    }
}

/// `source`, `uri`, `path`, `header:NAME` or `url_param:NAME`.
fn parse_hash_key(text: &str) -> Result<HashKey, String> {
    let bad = || {
        format!("unknown hash key {text:?} (expected \"source\", \"uri\", \"path\", \"header:NAME\" or \"url_param:NAME\")")
    };
    match text {
        "source" => Ok(HashKey::Source),
        "uri" => Ok(HashKey::Uri(UriKey {
            whole: true,
            ..UriKey::default()
        })),
        "path" => Ok(HashKey::Uri(UriKey::default())),
        _ => match text.split_once(':') {
            Some(("header", name)) if !name.trim().is_empty() => Ok(HashKey::Header {
                name: name.trim().to_ascii_lowercase(),
                domain_only: false,
            }),
            Some(("url_param", name)) if !name.trim().is_empty() => {
                Ok(HashKey::UrlParam(name.trim().to_string()))
            }
            _ => Err(bad()),
        },
    }
}

/// `"map-based"` or `"consistent"`, optionally followed by a function (`sdbm`, `djb2`,
/// `wt6`, `crc32`) and `avalanche`, as haproxy.cfg's `hash-type` (unset: map-based).
fn parse_hash_type(text: Option<&str>) -> Result<(bool, HashFunction), String> {
    let words: Vec<&str> = text.unwrap_or("map-based").split_whitespace().collect();
    let consistent = match words.first().copied() {
        Some("map-based" | "map_based") => false,
        Some("consistent") => true,
        _ => {
            return Err(format!(
                "unknown hash type {:?} (expected \"map-based\" or \"consistent\", then optionally sdbm|djb2|wt6|crc32 and avalanche)",
                text.unwrap_or("")
            ))
        }
    };
    let function = match words.get(1) {
        None => HashFunction::default_for(consistent),
        Some(f) => HashFunction {
            algo: crate::hash::HashAlgo::parse(f).ok_or_else(|| {
                format!("unknown hash function {f:?} (expected sdbm, djb2, wt6 or crc32)")
            })?,
            avalanche: match words.get(2).copied() {
                None => false,
                Some("avalanche") => true,
                Some(m) => return Err(format!("unknown hash modifier {m:?} (expected avalanche)")),
            },
        },
    };
    if let Some(extra) = words.get(3) {
        return Err(format!("unexpected {extra:?}"));
    }
    Ok((consistent, function))
}

/// `[200, 204]` or `"200-399"` (or a single code as text).
fn parse_status_match(m: &RawStatusMatch) -> Result<StatusMatch, String> {
    let code = |n: i64| -> Result<u16, String> {
        if (100..=599).contains(&n) {
            Ok(n as u16)
        } else {
            Err(format!("invalid status code {n}"))
        }
    };
    match m {
        RawStatusMatch::List(l) if l.is_empty() => Err("needs at least one status code".into()),
        RawStatusMatch::List(l) => l
            .iter()
            .map(|&n| code(n))
            .collect::<Result<_, _>>()
            .map(StatusMatch::List),
        RawStatusMatch::Text(t) => {
            let num = |s: &str| {
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("invalid status range {t:?} (expected \"200-399\")"))
            };
            match t.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(num(lo)?)?, code(num(hi)?)?);
                    if lo > hi {
                        return Err(format!("empty status range {t:?}"));
                    }
                    Ok(StatusMatch::Range(lo, hi))
                }
                None => Ok(StatusMatch::List(vec![code(num(t)?)?])),
            }
        }
    }
}
