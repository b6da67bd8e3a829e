//! Raw TOML schema → validated model. Every error is collected, each with its path
//! (`backend.web.server[2].addr: ...`), so one `ringlb -c` run shows them all.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::raw::{RawConfig, RawDuration};
use super::{
    parse_duration, usable_cores, Backend, BalanceAlgo, Config, ConfigErrors, DriverChoice,
    Frontend, Limits, Mode, PoolSettings, Route, Runtime, Server, Timeouts,
};

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
struct Validator {
    errors: Vec<String>,
}

impl Validator {
    fn err(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.errors.push(format!("{path}: {msg}"));
    }

    fn duration(&mut self, path: &str, raw: &Option<RawDuration>, default: Duration) -> Duration {
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

    fn positive(&mut self, path: &str, raw: Option<i64>, default: usize, max: usize) -> usize {
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
        let timeouts = Timeouts {
            connect: self.duration("timeout.connect", &t.connect, Duration::from_secs(5)),
            client: self.duration("timeout.client", &t.client, Duration::from_secs(30)),
            server: self.duration("timeout.server", &t.server, Duration::from_secs(30)),
            http_request,
            http_keep_alive: self.duration(
                "timeout.http_keep_alive",
                &t.http_keep_alive,
                http_request,
            ),
            shutdown: self.duration("timeout.shutdown", &t.shutdown, Duration::from_secs(5)),
        };
        for (name, d) in [
            ("connect", timeouts.connect),
            ("client", timeouts.client),
            ("server", timeouts.server),
            ("http_request", timeouts.http_request),
            ("http_keep_alive", timeouts.http_keep_alive),
        ] {
            if d.is_zero() {
                self.err(format!("timeout.{name}"), "must be greater than zero");
            }
        }

        let limits = Limits {
            max_header_bytes: self.positive(
                "limits.max_header_bytes",
                raw.limits.max_header_bytes,
                16 * 1024,
                1 << 20,
            ),
        };
        if limits.max_header_bytes < 256 {
            self.err("limits.max_header_bytes", "must be at least 256");
        }
        let pool = PoolSettings {
            max_idle_per_server: match raw.pool.max_idle_per_server {
                None => 64,
                Some(n) if (0..=100_000).contains(&n) => n as usize,
                Some(n) => {
                    self.err(
                        "pool.max_idle_per_server",
                        format!("must be between 0 and 100000, got {n}"),
                    );
                    64
                }
            },
            idle_timeout: self.duration(
                "pool.idle_timeout",
                &raw.pool.idle_timeout,
                Duration::from_secs(30),
            ),
        };

        let backends = self.backends(&raw);
        let frontends = self.frontends(&raw, &backends);
        Config {
            runtime: Runtime {
                shards,
                driver,
                cpus,
            },
            timeouts,
            limits,
            pool,
            frontends,
            backends,
        }
    }

    fn backends(&mut self, raw: &RawConfig) -> Vec<Backend> {
        let mut out = Vec::new();
        for (name, b) in &raw.backend {
            let path = format!("backend.{name}");
            let balance = match b.balance.as_deref() {
                None | Some("round_robin") | Some("roundrobin") => BalanceAlgo::RoundRobin,
                Some(other) => {
                    self.err(
                        format!("{path}.balance"),
                        format!("unknown algorithm {other:?} (expected \"round_robin\")"),
                    );
                    BalanceAlgo::RoundRobin
                }
            };
            if b.server.is_empty() {
                self.err(
                    &path,
                    "backend has no server (add at least one [[backend.NAME.server]])",
                );
            }
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
                servers.push(Server {
                    name: sname,
                    addr,
                    weight,
                });
            }
            out.push(Backend {
                name: name.clone(),
                balance,
                servers,
            });
        }
        out
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
            let mut binds = Vec::new();
            for (i, b) in bind_list.iter().enumerate() {
                let bpath = if matches!(f.bind, Some(super::raw::OneOrMany::Many(_))) {
                    format!("{path}.bind[{i}]")
                } else {
                    format!("{path}.bind")
                };
                match parse_bind(b) {
                    Ok(addr) => {
                        if addr.port() != 0 {
                            if let Some(other) = seen_binds.insert(addr, path.clone()) {
                                self.err(
                                    &bpath,
                                    format!("duplicate bind {addr} (also in {other})"),
                                );
                            }
                        }
                        binds.push(addr);
                    }
                    Err(e) => self.err(&bpath, e),
                }
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
                routes.push(Route {
                    host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
                    path_prefix: r.path_prefix.clone(),
                    backend,
                });
            }
            out.push(Frontend {
                name: name.clone(),
                binds,
                mode,
                routes,
                default_backend,
                forward_for: f.forward_for,
            });
        }
        out
    }
}

/// `IP:PORT`, `[IPv6]:PORT`, `:PORT` or `*:PORT` (all IPv4 addresses).
fn parse_bind(text: &str) -> Result<SocketAddr, String> {
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
fn resolve_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !text.contains(':') {
        return Err(format!(
            "invalid server address {text:?} (expected HOST:PORT)"
        ));
    }
    match text.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("server address {text:?} resolves to nothing")),
        Err(e) => Err(format!("cannot resolve server address {text:?}: {e}")),
    }
}
