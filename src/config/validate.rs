//! Raw TOML schema → validated model. Every error is collected, each with its path
//! (`backend.web.server[2].addr: ...`), so one `ringlb -c` run shows them all.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::raw::{RawConfig, RawDuration, RawStatusMatch};
use super::{
    parse_duration, usable_cores, Acl, AclTest, Admin, Backend, BalanceAlgo, CheckKind, Condition,
    Config, ConfigErrors, DriverChoice, Frontend, HashKey, HealthCheck, Limits, Mode, PoolSettings,
    Route, Runtime, Server, StatusMatch, Timeouts,
};
use super::{syslog_facility, LogFormat, LogSink, LogTarget};
use crate::rules::fetch::Fetch;
use crate::rules::pattern::Method;

/// Parses and validates a native TOML config.
pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().to_string();
        ConfigErrors(vec![match line {
            Some(l) => format!("line {l}: {msg}"),
            None => msg,
        }])
    })?;
    let mut v = Validator::default();
    let cfg = v.config(raw);
    if v.errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(v.errors))
    }
}

#[derive(Default)]
pub(super) struct Validator {
    errors: Vec<String>,
}

impl Validator {
    pub(super) fn err(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.errors.push(format!("{path}: {msg}"));
    }

    /// A connection limit split across shards: each needs at least one.
    fn conn_limit(&mut self, path: &str, raw: Option<i64>) -> Option<u32> {
        match raw {
            None | Some(0) => None,
            Some(n) if n < 0 || n > u32::MAX as i64 => {
                self.err(path, format!("invalid maxconn {n}"));
                None
            }
            Some(n) => Some(n as u32),
        }
    }

    pub(super) fn duration(
        &mut self,
        path: &str,
        raw: &Option<RawDuration>,
        default: Duration,
    ) -> Duration {
        match raw {
            None => default,
            Some(RawDuration::Millis(ms)) => Duration::from_millis(*ms),
            Some(RawDuration::Text(t)) => match parse_duration(t) {
                Ok(d) => d,
                Err(e) => {
                    self.err(path, e);
                    default
                }
            },
        }
    }

    pub(super) fn positive(
        &mut self,
        path: &str,
        raw: Option<i64>,
        default: usize,
        max: usize,
    ) -> usize {
        match raw {
            None => default,
            Some(n) if n >= 1 && (n as u64) <= max as u64 => n as usize,
            Some(n) => {
                self.err(path, format!("must be between 1 and {max}, got {n}"));
                default
            }
        }
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let cores = usable_cores();
        let shards = self.positive("runtime.shards", raw.runtime.shards, cores, 1024);
        let driver = match raw.runtime.driver.as_deref() {
            None | Some("auto") => DriverChoice::Auto,
            Some("io_uring") => DriverChoice::IoUring,
            Some("legacy") => DriverChoice::Legacy,
            Some(other) => {
                self.err(
                    "runtime.driver",
                    format!(
                        "unknown driver {other:?} (expected \"auto\", \"io_uring\" or \"legacy\")"
                    ),
                );
                DriverChoice::Auto
            }
        };
        let cpus = raw.runtime.cpus.as_ref().map(|list| {
            if list.is_empty() {
                self.err("runtime.cpus", "must list at least one core");
            }
            list.iter()
                .enumerate()
                .filter_map(|(i, &c)| {
                    if c < 0 {
                        self.err(format!("runtime.cpus[{i}]"), format!("invalid core {c}"));
                        None
                    } else {
                        Some(c as usize)
                    }
                })
                .collect::<Vec<_>>()
        });

        let t = &raw.timeout;
        let http_request = self.duration(
            "timeout.http_request",
            &t.http_request,
            Duration::from_secs(10),
        );
        let connect = self.duration("timeout.connect", &t.connect, Duration::from_secs(5));
        let timeouts = Timeouts {
            connect,
            client: self.duration("timeout.client", &t.client, Duration::from_secs(30)),
            server: self.duration("timeout.server", &t.server, Duration::from_secs(30)),
            http_request,
            queue: self.duration("timeout.queue", &t.queue, connect),
            http_keep_alive: self.duration(
                "timeout.http_keep_alive",
                &t.http_keep_alive,
                http_request,
            ),
            shutdown: self.duration("timeout.shutdown", &t.shutdown, Duration::from_secs(5)),
            hard_stop_after: t.hard_stop_after.as_ref().map(|_| {
                self.duration(
                    "timeout.hard_stop_after",
                    &t.hard_stop_after,
                    Duration::ZERO,
                )
            }),
            tunnel: t
                .tunnel
                .as_ref()
                .map(|_| self.duration("timeout.tunnel", &t.tunnel, Duration::ZERO)),
            tarpit: None,
        };
        for (name, d) in [
            ("connect", timeouts.connect),
            ("client", timeouts.client),
            ("server", timeouts.server),
            ("http_request", timeouts.http_request),
            ("http_keep_alive", timeouts.http_keep_alive),
            ("tunnel", timeouts.tunnel.unwrap_or(Duration::from_secs(1))),
        ] {
            if d.is_zero() {
                self.err(format!("timeout.{name}"), "must be greater than zero");
            }
        }

        let d = Limits::default();
        let limits = Limits {
            max_header_bytes: self.positive(
                "limits.max_header_bytes",
                raw.limits.max_header_bytes,
                d.max_header_bytes,
                1 << 20,
            ),
            max_headers: self.positive(
                "limits.max_headers",
                raw.limits.max_headers,
                d.max_headers,
                crate::config::MAX_HEADERS_CAP,
            ),
            max_request_line: self.positive(
                "limits.max_request_line",
                raw.limits.max_request_line,
                d.max_request_line,
                1 << 20,
            ),
            max_chunks: self.positive(
                "limits.max_chunks",
                raw.limits.max_chunks,
                d.max_chunks as usize,
                u32::MAX as usize,
            ) as u32,
        };
        if limits.max_header_bytes < 256 {
            self.err("limits.max_header_bytes", "must be at least 256");
        }
        let pool = PoolSettings {
            max_idle_per_server: match raw.pool.max_idle_per_server {
                None => super::DEFAULT_POOL_MAX_IDLE,
                Some(n) if (0..=100_000).contains(&n) => n as usize,
                Some(n) => {
                    self.err(
                        "pool.max_idle_per_server",
                        format!("must be between 0 and 100000, got {n}"),
                    );
                    super::DEFAULT_POOL_MAX_IDLE
                }
            },
            idle_timeout: self.duration(
                "pool.idle_timeout",
                &raw.pool.idle_timeout,
                Duration::from_secs(30),
            ),
        };

        let admin = Admin {
            stats_socket: raw
                .admin
                .stats_socket
                .as_ref()
                .map(std::path::PathBuf::from),
            listen: raw.admin.listen.as_ref().and_then(|l| match parse_bind(l) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.err("admin.listen", e);
                    None
                }
            }),
        };
        if raw.admin.stats_socket.as_deref() == Some("") {
            self.err("admin.stats_socket", "must be a path");
        }
        let log = raw.log.as_ref().and_then(|l| {
            let facility = match l.facility.as_deref() {
                None => 16,
                Some(f) => match syslog_facility(f) {
                    Some(n) => n,
                    None => {
                        self.err("log.facility", format!("unknown syslog facility {f:?}"));
                        16
                    }
                },
            };
            let sink = match l.target.as_str() {
                "stdout" => LogSink::Stdout,
                                "stderr" => LogSink::Stderr,
                t if t.starts_with("file:") && t.len() > 5 => LogSink::File(t[5..].into()),
                t => match t.strip_prefix("udp://").map(|a| a.parse::<SocketAddr>()) {
                    Some(Ok(a)) => LogSink::Udp(a),
                    _ => {
                        self.err("log.target", format!("expected \"stdout\", \"stderr\", \"file:PATH\" or \"udp://IP:PORT\", got {t:?}"));
                        return None;
                    }
                },
            };
            let raw = l.raw.unwrap_or(!matches!(sink, LogSink::Udp(_)));
            Some(LogTarget { sink, facility, raw })
        });
        let mut backends = self.backends(&raw);
        let mut frontends = self.frontends(&raw, &backends);
        // The native config sets timeouts once for everything.
        for b in &mut backends {
            b.timeouts = timeouts.clone();
        }
        for f in &mut frontends {
            f.timeouts = timeouts.clone();
        }
        Config {
            runtime: Runtime {
                shards,
                driver,
                cpus,
                pidfile: raw.runtime.pidfile.as_ref().map(std::path::PathBuf::from),
                maxconn: self.conn_limit("runtime.maxconn", raw.runtime.maxconn),
            },
            timeouts,
            limits,
            pool,
            admin,
            log,
            proxy_order: (0..frontends.len())
                .map(|f| super::ProxyRef {
                    frontend: Some(f),
                    backend: None,
                })
                .chain((0..backends.len()).map(|b| super::ProxyRef {
                    frontend: None,
                    backend: Some(b),
                }))
                .collect(),
            cluster: self.cluster(&raw.cluster),
            vars: Default::default(),
            tables: Vec::new(),
            frontends,
            backends,
        }
    }

    fn backends(&mut self, raw: &RawConfig) -> Vec<Backend> {
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
            let mut names: HashMap<String, usize> = HashMap::new();
            for (i, s) in b.server.iter().enumerate() {
                let spath = format!("{path}.server[{i}]");
                let sname = s.name.clone().unwrap_or_else(|| format!("s{}", i + 1));
                if let Some(prev) = names.insert(sname.clone(), i) {
                    self.err(
                        format!("{spath}.name"),
                        format!("duplicate server name {sname:?} (also server[{prev}])"),
                    );
                }
                let addr = match resolve_addr(&s.addr) {
                    Ok(a) => a,
                    Err(e) => {
                        self.err(format!("{spath}.addr"), e);
                        continue;
                    }
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
                servers.push(Server {
                    tls,
                    name: sname,
                    addr,
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
                });
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
            out.push(Backend {
                name: name.clone(),
                balance,
                servers,
                all_backups: b.all_backups.unwrap_or(false),
                retries,
                redispatch: b.redispatch.unwrap_or(true),
                maxqueue,
                error_limit,
                health,
                timeouts: super::default_timeouts(),
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
            });
        }
        out
    }

    fn balance(&mut self, path: &str, b: &super::raw::RawBackend) -> BalanceAlgo {
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
                let consistent = match b.hash_type.as_deref() {
                    None | Some("map-based") | Some("map_based") => false,
                    Some("consistent") => true,
                    Some(other) => {
                        self.err(
                            format!("{path}.hash_type"),
                            format!("unknown hash type {other:?} (expected \"map-based\" or \"consistent\")"),
                        );
                        false
                    }
                };
                BalanceAlgo::Hash { key, consistent }
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

    fn health(&mut self, path: &str, h: &super::raw::RawHealth) -> HealthCheck {
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

    fn frontends(&mut self, raw: &RawConfig, backends: &[Backend]) -> Vec<Frontend> {
        let backend_index = |name: &str| backends.iter().position(|b| b.name == name);
        let mut seen_binds: HashMap<SocketAddr, String> = HashMap::new();
        let mut out = Vec::new();
        if raw.frontend.is_empty() {
            self.err(
                "frontend",
                "no frontend defined (add a [frontend.NAME] table)",
            );
        }
        let mut rate_limits = Vec::new();
        for (name, f) in &raw.frontend {
            let path = format!("frontend.{name}");
            let mode = match f.mode.as_deref() {
                None | Some("http") => Mode::Http,
                Some("tcp") => Mode::Tcp,
                Some(other) => {
                    self.err(
                        format!("{path}.mode"),
                        format!("unknown mode {other:?} (expected \"http\" or \"tcp\")"),
                    );
                    Mode::Http
                }
            };
            let bind_list = f.bind.as_ref().map(|b| b.to_vec()).unwrap_or_default();
            if bind_list.is_empty() {
                self.err(format!("{path}.bind"), "frontend has no bind address");
            }
            let tls = f.tls.as_ref().and_then(|t| self.frontend_tls(&path, t));
            let mut binds = Vec::new();
            for (i, b) in bind_list.iter().enumerate() {
                let bpath = if matches!(f.bind, Some(super::raw::RawBinds::Many(_))) {
                    format!("{path}.bind[{i}]")
                } else {
                    format!("{path}.bind")
                };
                let (text, use_tls, accept_proxy) = match b {
                    super::raw::RawBindEntry::Addr(a) => (a, None, None),
                    super::raw::RawBindEntry::Full(r) => (&r.addr, r.tls, r.accept_proxy),
                };
                if use_tls == Some(true) && f.tls.is_none() {
                    self.err(&bpath, format!("tls = true needs a [{path}.tls] table"));
                }
                match parse_bind(text) {
                    Ok(addr) => {
                        if addr.port() != 0 {
                            if let Some(other) = seen_binds.insert(addr, path.clone()) {
                                self.err(
                                    &bpath,
                                    format!("duplicate bind {addr} (also in {other})"),
                                );
                            }
                        }
                        binds.push(super::Bind {
                            addr,
                            accept_proxy: accept_proxy.unwrap_or(f.accept_proxy),
                            tls: if use_tls.unwrap_or(true) {
                                tls.clone()
                            } else {
                                None
                            },
                        });
                    }
                    Err(e) => self.err(&bpath, e),
                }
            }
            if binds.iter().any(|b| b.accept_proxy != f.accept_proxy)
                && binds.iter().any(|b| b.accept_proxy == f.accept_proxy)
            {
                self.err(
                    format!("{path}.bind"),
                    "accept_proxy must be the same on every bind of a frontend (for now)",
                );
            }
            let default_backend = f.default_backend.as_ref().and_then(|b| {
                let idx = backend_index(b);
                if idx.is_none() {
                    self.err(
                        format!("{path}.default_backend"),
                        format!("unknown backend {b:?}"),
                    );
                }
                idx
            });
            if mode == Mode::Tcp && f.default_backend.is_none() {
                self.err(
                    format!("{path}.default_backend"),
                    "a tcp frontend needs a default_backend",
                );
            }
            if mode == Mode::Tcp && !f.route.is_empty() {
                self.err(format!("{path}.route"), "routes need mode = \"http\"");
            }
            if mode == Mode::Tcp && f.forward_for {
                self.err(
                    format!("{path}.forward_for"),
                    "X-Forwarded-For needs mode = \"http\"",
                );
            }
            let mut routes = Vec::new();
            for (i, r) in f.route.iter().enumerate() {
                let rpath = format!("{path}.route[{i}]");
                let Some(backend) = backend_index(&r.backend) else {
                    self.err(
                        format!("{rpath}.backend"),
                        format!("unknown backend {:?}", r.backend),
                    );
                    continue;
                };
                if r.host.is_none() && r.path_prefix.is_none() {
                    self.err(&rpath, "a route needs host, path_prefix or both");
                }
                if let Some(p) = &r.path_prefix {
                    if !p.starts_with('/') {
                        self.err(
                            format!("{rpath}.path_prefix"),
                            format!("must start with '/', got {p:?}"),
                        );
                    }
                }
                let mut tests = Vec::new();
                if let Some(h) = &r.host {
                    tests.push(acl_test(Fetch::HostName, Method::Str, true, h));
                }
                if let Some(p) = &r.path_prefix {
                    tests.push(acl_test(Fetch::Path, Method::Beg, false, p));
                }
                // Host and path prefix must both hold: one single-test ACL each, ANDed.
                let cond = Condition::All(
                    tests
                        .into_iter()
                        .map(|t| {
                            Condition::Acl(std::sync::Arc::new(Acl {
                                name: rpath.clone(),
                                tests: vec![t],
                            }))
                        })
                        .collect(),
                );
                routes.push(Route {
                    cond,
                    target: super::RouteTarget::Backend(backend),
                });
            }
            out.push(Frontend {
                name: name.clone(),
                binds,
                mode,
                routes,
                default_backend,
                listen_backend: None,
                forward_for: f.forward_for.then(super::ForwardFor::default),
                server_close: false,
                client_close: false,
                allow_connect: f.allow_connect,
                log: match f.log.as_deref() {
                    None | Some("none") => None,
                    Some("http") => Some(LogFormat::Http),
                    Some("tcp") => Some(LogFormat::Tcp),
                    Some(other) => {
                        self.err(
                            format!("{path}.log"),
                            format!("expected \"http\", \"tcp\" or \"none\", got {other:?}"),
                        );
                        None
                    }
                },
                dont_log_null: f.dont_log_null,
                log_line: match f.log.as_deref() {
                    Some("http") => Some(crate::rules::logformat::builtin(LogFormat::Http)),
                    Some("tcp") => Some(crate::rules::logformat::builtin(LogFormat::Tcp)),
                    _ => None,
                },
                http_response: Vec::new(),
                http_after_response: Vec::new(),
                tcp_connection: Vec::new(),
                tcp_session: Vec::new(),
                tcp_content: Vec::new(),
                inspect_delay: None,
                captures: super::Captures::default(),
                maxconn: self.conn_limit(&format!("{path}.maxconn"), f.maxconn),
                http_request: {
                    let mut rules = Vec::new();
                    rate_limits.clear();
                    for (key, value, service) in [
                        (
                            "stats_uri",
                            &f.stats_uri,
                            super::Service::Stats {
                                auth: Vec::new(),
                                realm: "ringlb".into(),
                                refresh: None,
                            },
                        ),
                        ("metrics_path", &f.metrics_path, super::Service::Prometheus),
                    ] {
                        let Some(v) = value else { continue };
                        if !v.starts_with('/') {
                            self.err(
                                format!("{path}.{key}"),
                                format!("must start with '/', got {v:?}"),
                            );
                            continue;
                        }
                        rules.push(super::HttpRule {
                            cond: crate::rules::acl::url_beg_condition(key, v),
                            action: super::HttpAction::Service(service),
                            line: 0,
                        });
                    }
                    if mode == Mode::Tcp && !f.rate_limit.is_empty() {
                        self.err(
                            format!("{path}.rate_limit"),
                            "rate limits need mode \"http\"",
                        );
                    }
                    for (i, r) in f.rate_limit.iter().enumerate() {
                        if let Some((limit, status)) =
                            self.rate_limit(&format!("{path}.rate_limit[{i}]"), r)
                        {
                            let mut reply = super::Reply {
                                status,
                                content_type: Some("text/plain".into()),
                                body: crate::rules::action::Body::Bytes(
                                    b"Too many requests\n"[..].into(),
                                ),
                                headers: Vec::new(),
                                error_page: false,
                                canned: None,
                            };
                            reply.prebuild();
                            rules.push(super::HttpRule {
                                cond: Condition::Always,
                                action: super::HttpAction::RateLimit {
                                    limiter: rate_limits.len(),
                                    status,
                                    bytes: reply.canned.map(Vec::from).unwrap_or_default(),
                                },
                                line: 0,
                            });
                            rate_limits.push(limit);
                        }
                    }
                    rules
                },
                rate_limits: std::mem::take(&mut rate_limits),
                timeouts: super::default_timeouts(),
            });
        }
        out
    }
}

/// `IP:PORT`, `[IPv6]:PORT`, `:PORT` or `*:PORT` (all IPv4 addresses).
pub(super) fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    let t = if let Some(port) = t.strip_prefix("*:").or_else(|| t.strip_prefix(':')) {
        format!("0.0.0.0:{port}")
    } else {
        t.to_string()
    };
    t.parse::<SocketAddr>().map_err(|_| {
        format!("invalid bind address {text:?} (expected IP:PORT, [IPv6]:PORT or *:PORT)")
    })
}

/// A server address: `IP:PORT` or `host:PORT`, resolved once at load.
pub(super) fn resolve_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !text.contains(':') {
        return Err(format!(
            "invalid server address {text:?} (expected HOST:PORT)"
        ));
    }
    // Fuzzing never asks DNS about random names.
    if cfg!(fuzzing) {
        return Err(format!(
            "cannot resolve server address {text:?}: no DNS while fuzzing"
        ));
    }
    match text.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("server address {text:?} resolves to nothing")),
        Err(e) => Err(format!("cannot resolve server address {text:?}: {e}")),
    }
}

/// `source`, `uri`, `path`, `header:NAME` or `url_param:NAME`.
fn parse_hash_key(text: &str) -> Result<HashKey, String> {
    let bad = || {
        format!("unknown hash key {text:?} (expected \"source\", \"uri\", \"path\", \"header:NAME\" or \"url_param:NAME\")")
    };
    match text {
        "source" => Ok(HashKey::Source),
        "uri" => Ok(HashKey::Uri),
        "path" => Ok(HashKey::Path),
        _ => match text.split_once(':') {
            Some(("header", name)) if !name.trim().is_empty() => {
                Ok(HashKey::Header(name.trim().to_ascii_lowercase()))
            }
            Some(("url_param", name)) if !name.trim().is_empty() => {
                Ok(HashKey::UrlParam(name.trim().to_string()))
            }
            _ => Err(bad()),
        },
    }
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

fn acl_test(fetch: Fetch, method: Method, ignore_case: bool, pattern: &str) -> AclTest {
    AclTest::from_fetch(
        fetch,
        crate::rules::Type::Str,
        method,
        ignore_case,
        &[pattern],
    )
    .expect("string patterns always compile")
}
