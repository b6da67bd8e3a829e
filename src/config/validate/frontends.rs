//! The TOML config's frontends: binds, routes and their conditions, limits.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{parse_bind, Validator};
use crate::config::raw::RawConfig;
use crate::config::{Acl, AclTest, Backend, Condition, Config, Frontend, LogFormat, Mode, Route};
use crate::rules::fetch::Fetch;
use crate::rules::pattern::Method;

impl Validator {
    pub(super) fn frontends(&mut self, raw: &RawConfig, backends: &[Backend]) -> Vec<Frontend> {
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
            let http = mode == Mode::Http;
            let tls = f
                .tls
                .as_ref()
                .and_then(|t| self.frontend_tls(&path, t, http));
            let mut binds = Vec::new();
            for (i, b) in bind_list.iter().enumerate() {
                let bpath = if matches!(f.bind, Some(crate::config::raw::RawBinds::Many(_))) {
                    format!("{path}.bind[{i}]")
                } else {
                    format!("{path}.bind")
                };
                let (text, use_tls, accept_proxy, proto) = match b {
                    crate::config::raw::RawBindEntry::Addr(a) => (a, None, None, None),
                    crate::config::raw::RawBindEntry::Full(r) => {
                        (&r.addr, r.tls, r.accept_proxy, r.proto.as_deref())
                    }
                };
                let h2 = match proto {
                    None | Some("http/1.1") => false,
                    Some("h2") if mode != Mode::Http => {
                        self.err(&bpath, "proto = \"h2\" needs mode = \"http\"");
                        false
                    }
                    Some("h2") => true,
                    Some(other) => {
                        self.err(
                            &bpath,
                            format!("proto {other:?}: expected \"h2\" or \"http/1.1\""),
                        );
                        false
                    }
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
                        binds.push(crate::config::Bind {
                            addr,
                            sock: Default::default(),
                            accept_proxy: accept_proxy.unwrap_or(f.accept_proxy),
                            h2,
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
            // TCP mode moves bytes: it cannot speak HTTP/2 to a server (haproxy.cfg
            // refuses `proto h2` in a `mode tcp` backend).
            if let Some(b) = default_backend.filter(|_| mode == Mode::Tcp) {
                if let Some(s) = backends[b].servers.iter().find(|s| s.h2) {
                    self.err(
                        format!("{path}.default_backend"),
                        format!(
                            "server {:?} of backend {:?} has proto = \"h2\", which needs mode = \"http\"",
                            s.name, backends[b].name
                        ),
                    );
                }
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
                    target: crate::config::RouteTarget::Backend(backend),
                });
            }
            out.push(Frontend {
                name: name.clone(),
                binds,
                mode,
                routes,
                route_index: None,
                default_backend,
                listen_backend: None,
                forward_for: f.forward_for.then(crate::config::ForwardFor::default),
                server_close: false,
                client_close: false,
                allow_connect: f.allow_connect,
                log: match f.log.as_deref() {
                    None | Some("none") => None,
                    Some("http") => Some(LogFormat::Http),
                    Some("https") => Some(LogFormat::Https),
                    Some("tcp") => Some(LogFormat::Tcp),
                    Some(other) => {
                        self.err(
                            format!("{path}.log"),
                            format!(
                                "expected \"http\", \"https\", \"tcp\" or \"none\", got {other:?}"
                            ),
                        );
                        None
                    }
                },
                dont_log_null: f.dont_log_null,
                dont_log_normal: false,
                log_errors_as_err: false,
                log_line: match f.log.as_deref() {
                    Some("http") => Some(LogFormat::Http.builtin()),
                    Some("https") => Some(LogFormat::Https.builtin()),
                    Some("tcp") => Some(LogFormat::Tcp.builtin()),
                    _ => None,
                },
                http_response: Vec::new(),
                http_after_response: Vec::new(),
                tcp_connection: Vec::new(),
                tcp_session: Vec::new(),
                tcp_content: Vec::new(),
                inspect_delay: None,
                captures: crate::config::Captures::default(),
                tcpka: None,
                h1_case: None,
                disabled: false,
                buffer_request: f.buffer_request && mode == crate::config::Mode::Http,
                splice: crate::config::SpliceOpts {
                    auto: f.splice_auto,
                    request: f.splice_request.unwrap_or(false),
                    response: f.splice_response.unwrap_or(false),
                },
                maxconn: self.conn_limit(&format!("{path}.maxconn"), f.maxconn),
                rule_free: false,
                http_request: {
                    let mut rules = Vec::new();
                    rate_limits.clear();
                    for (key, value, service) in [
                        (
                            "stats_uri",
                            &f.stats_uri,
                            crate::config::Service::Stats {
                                auth: Vec::new(),
                                realm: "ringlb".into(),
                                refresh: None,
                                admin: None,
                                scope: Vec::new(),
                            },
                        ),
                        (
                            "metrics_path",
                            &f.metrics_path,
                            crate::config::Service::Prometheus,
                        ),
                    ] {
                        let Some(v) = value else { continue };
                        if !v.starts_with('/') {
                            self.err(
                                format!("{path}.{key}"),
                                format!("must start with '/', got {v:?}"),
                            );
                            continue;
                        }
                        rules.push(crate::config::HttpRule {
                            cond: crate::rules::acl::url_beg_condition(key, v),
                            action: crate::config::HttpAction::Service(service),
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
                            let mut reply = crate::config::Reply {
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
                            rules.push(crate::config::HttpRule {
                                cond: Condition::Always,
                                action: crate::config::HttpAction::RateLimit {
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
                monitor: None,
                error_pages: Default::default(),
                unique_id_format: None,
                unique_id_header: None,
                timeouts: crate::config::default_timeouts(),
                compression: if mode == Mode::Http {
                    self.compression(&path, f.compression.as_ref())
                } else {
                    if f.compression.is_some() {
                        self.err(
                            format!("{path}.compression"),
                            "compression needs mode = \"http\"",
                        );
                    }
                    None
                },
            });
        }
        out
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

/// Sets each frontend's `rule_free` from what the assembled config holds. Both
/// syntaxes call it last: a frontend built any other way keeps `false` (the rule
/// machinery runs, finding nothing to do).
pub(in crate::config) fn mark_rule_free(cfg: &mut Config) {
    let backend_free = |b: Option<usize>| {
        b.and_then(|b| cfg.backends.get(b)).is_none_or(|b| {
            b.http_request.is_empty()
                && b.http_response.is_empty()
                && b.http_after_response.is_empty()
                && b.tcp_content.is_empty()
                && b.tcp_response.is_empty()
                && b.use_server.is_empty()
                // Cookie persistence reads and writes heads on the request path.
                && b.cookie.is_none()
        })
    };
    let free: Vec<bool> = cfg
        .frontends
        .iter()
        .map(|f| {
            f.routes.is_empty()
                && f.monitor.is_none()
                && f.unique_id_format.is_none()
                && f.http_request.is_empty()
                && f.http_response.is_empty()
                && f.http_after_response.is_empty()
                && f.tcp_connection.is_empty()
                && f.tcp_session.is_empty()
                && f.tcp_content.is_empty()
                && f.captures.request.is_empty()
                && f.captures.response.is_empty()
                && f.log_line.as_ref().is_none_or(|l| !l.reads_samples())
                && backend_free(f.default_backend)
                && backend_free(f.listen_backend)
        })
        .collect();
    for (f, free) in cfg.frontends.iter_mut().zip(free) {
        f.rule_free = free;
    }
}
