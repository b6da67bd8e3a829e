//! Raw TOML schema → validated model. Every error is collected, each with its path
//! (`backend.web.server[2].addr: ...`), so one `ringlb -c` run shows them all. The
//! process-wide sections are here; backends and frontends are in the submodules.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::raw::{RawConfig, RawDuration};
use super::{
    parse_duration, usable_cores, Admin, Config, ConfigErrors, DriverChoice, Limits, PoolSettings,
    Runtime, Timeouts,
};
use super::{syslog_facility, LogSink, LogTarget};

mod backends;
mod discovery;
mod frontends;
pub(super) use frontends::mark_rule_free;

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
    let mut cfg = v.config(raw);
    mark_rule_free(&mut cfg);
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

    /// A proxy's `compression` table.
    pub(super) fn compression(
        &mut self,
        path: &str,
        raw: Option<&super::compression::RawCompression>,
    ) -> Option<std::sync::Arc<super::compression::Compression>> {
        match raw?.validate() {
            Ok(c) => Some(std::sync::Arc::new(c)),
            Err((field, msg)) => {
                self.err(format!("{path}.compression.{field}"), msg);
                None
            }
        }
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

    /// `raw` within `range`, else an error naming both (and the default kept).
    pub(super) fn in_range(
        &mut self,
        path: &str,
        raw: Option<i64>,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> u32 {
        match raw {
            None => default,
            Some(n) if (0..=i64::from(u32::MAX)).contains(&n) && range.contains(&(n as u32)) => {
                n as u32
            }
            Some(n) => {
                self.err(
                    path,
                    format!(
                        "must be between {} and {}, got {n}",
                        range.start(),
                        range.end()
                    ),
                );
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
            client_fin: None,
            server_fin: None,
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
            h2_max_concurrent_streams: self.positive(
                "limits.h2_max_concurrent_streams",
                raw.limits.h2_max_concurrent_streams,
                d.h2_max_concurrent_streams as usize,
                u32::MAX as usize,
            ) as u32,
            h2_header_table_size: self.in_range(
                "limits.h2_header_table_size",
                raw.limits.h2_header_table_size,
                d.h2_header_table_size,
                4096..=65_536,
            ),
            h2_initial_window_size: self.in_range(
                "limits.h2_initial_window_size",
                raw.limits.h2_initial_window_size,
                d.h2_initial_window_size,
                0..=i32::MAX as u32,
            ),
            h2_max_frame_size: self.in_range(
                "limits.h2_max_frame_size",
                raw.limits.h2_max_frame_size,
                d.h2_max_frame_size,
                16_384..=16_777_215,
            ),
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
            stats_tcp: Vec::new(),
            stats_unix_more: Vec::new(),
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
                t if t.starts_with("unix:") && t.len() > 5 => LogSink::Unix(t[5..].into()),
                t => match t.strip_prefix("udp://").map(|a| a.parse::<SocketAddr>()) {
                    Some(Ok(a)) => LogSink::Udp(a),
                    _ => {
                        self.err("log.target", format!("expected \"stdout\", \"stderr\", \"file:PATH\", \"unix:PATH\" or \"udp://IP:PORT\", got {t:?}"));
                        return None;
                    }
                },
            };
            let raw = l
                .raw
                .unwrap_or(!matches!(sink, LogSink::Udp(_) | LogSink::Unix(_)));
            Some(LogTarget {
                sink,
                facility,
                raw,
                level: 7,
                min_level: 0,
                tag: "ringlb".into(),
                hostname: None,
                // A TOML target cuts nothing (haproxy.cfg's `len` is 1024 by default).
                max_len: usize::MAX,
            })
        });
        let resolvers = self.resolvers(&raw.resolvers);
        let mut backends = self.backends(&raw, &resolvers);
        let mut frontends = self.frontends(&raw, &backends);
        // The native config sets timeouts once for everything.
        for b in &mut backends {
            b.timeouts = timeouts.clone();
        }
        for f in &mut frontends {
            f.timeouts = timeouts.clone();
        }
        super::index_routes(&mut frontends, &backends);
        // HAProxy's CLI proxy takes id 1 when there is a stats socket.
        let cli = admin.stats_socket.is_some() || !admin.stats_tcp.is_empty();
        Config {
            patterns: Default::default(),
            runtime: Runtime {
                shards,
                driver,
                cpus,
                pidfile: raw.runtime.pidfile.as_ref().map(std::path::PathBuf::from),
                server_state_file: raw
                    .runtime
                    .server_state_file
                    .as_ref()
                    .map(std::path::PathBuf::from),
                maxconn: self.conn_limit("runtime.maxconn", raw.runtime.maxconn),
                maxsslrate: self.conn_limit("runtime.maxsslrate", raw.runtime.maxsslrate),
                tls_handshakes: match raw.runtime.tls_handshakes_per_shard {
                    None => crate::tls::gate::DEFAULT_TURNS,
                    Some(n) if (1..=100_000).contains(&n) => n as usize,
                    Some(n) => {
                        self.err(
                            "runtime.tls_handshakes_per_shard",
                            format!("expected 1 to 100000, got {n}"),
                        );
                        crate::tls::gate::DEFAULT_TURNS
                    }
                },
                log_uri_len: usize::MAX,
                splice: raw.runtime.splice.unwrap_or(true),
                comp_level: match raw.runtime.comp_maxlevel {
                    None => super::compression::DEFAULT_LEVEL,
                    Some(n) if (1..=9).contains(&n) => n as u32,
                    Some(n) => {
                        self.err("runtime.comp_maxlevel", format!("expected 1 to 9, got {n}"));
                        super::compression::DEFAULT_LEVEL
                    }
                },
                process: Default::default(),
            },
            timeouts,
            limits,
            pool,
            admin,
            log,
            proxy_order: {
                let ids = super::number_proxies(cli, &vec![None; frontends.len() + backends.len()])
                    .unwrap_or_default();
                (0..frontends.len())
                    .map(|f| (Some(f), None))
                    .chain((0..backends.len()).map(|b| (None, Some(b))))
                    .zip(ids)
                    .map(|((frontend, backend), id)| super::ProxyRef {
                        frontend,
                        backend,
                        id,
                    })
                    .collect()
            },
            cluster: self.cluster(&raw.cluster),
            vars: Default::default(),
            tables: Vec::new(),
            resolvers,
            frontends,
            backends,
        }
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
