//! From mapped proxies to the validated model: backends, frontends, routes, order.

use super::*;

impl Mapper<'_> {
    pub(super) fn assemble(
        &mut self,
        runtime: Runtime,
        admin: Admin,
        log: Option<LogTarget>,
        proxies: Vec<Proxy>,
    ) -> Config {
        let proxy_ids = self.proxy_ids(&proxies, &admin);
        let tables: HashMap<String, stick::HaTable> = proxies
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.stick.table.clone()?)))
            .collect();
        let backend_names: Vec<&Proxy> = proxies
            .iter()
            .filter(|p| p.kind != SectionKind::Frontend)
            .collect();
        // Names looked up in maps: a config of thousands of backends and routes checks
        // and resolves each name once, not against every proxy before it.
        let mut backend_index: HashMap<&str, usize> = HashMap::with_capacity(backend_names.len());
        for (i, b) in backend_names.iter().enumerate() {
            backend_index.entry(b.name.as_str()).or_insert(i);
        }
        let index_of = |name: &str| backend_index.get(name).copied();
        // A frontend and a backend may share a name; two of a side may not. By name:
        // the first frontend-side and backend-side proxy (nothing allocated per name).
        let mut seen: HashMap<&str, [Option<usize>; 2]> = HashMap::with_capacity(proxies.len());
        for (k, p) in proxies.iter().enumerate() {
            let sides = [
                p.kind != SectionKind::Backend,
                p.kind != SectionKind::Frontend,
            ];
            let first = seen.entry(p.name.as_str()).or_default();
            let clash = (0..2).filter_map(|s| first[s].filter(|_| sides[s])).min();
            for s in 0..2 {
                if sides[s] && first[s].is_none() {
                    first[s] = Some(k);
                }
            }
            if let Some(prev) = clash.map(|i| &proxies[i]) {
                self.err(
                    p.line,
                    format!(
                        "proxy '{}' has the same name as the one at line {}",
                        p.name, prev.line
                    ),
                );
            }
        }
        let mut backends = Vec::new();
        for p in &backend_names {
            if p.servers.is_empty() {
                self.warn(
                    p.line,
                    format!("backend '{}' has no server: its requests get 503", p.name),
                );
            }
            let s = &p.settings;
            let checked: Vec<&ServerParams> = p
                .servers
                .iter()
                .filter(|x| x.2.check)
                .map(|x| &x.2)
                .collect();
            let tcp_check = self.tcp_check_of(s, p.line);
            if matches!(s.check_opt, tcpcheck::CheckOpt::External) && !checked.is_empty() {
                if self.external_check.is_none() {
                    self.err(p.line, format!("Proxy '{}' : 'option external-check' unable to find required 'global.external-check'.", p.name));
                } else if s.ext_command.is_none() {
                    self.err(p.line, format!("Proxy '{}' : 'option external-check' unable to find required 'external-check command'.", p.name));
                } else if !self.insecure_fork {
                    self.warn(p.line, format!("Proxy '{}' : 'insecure-fork-wanted' not enabled in the global section: HAProxy's checks would fail; ringlb runs them", p.name));
                }
            }
            // `tcp-check connect ssl` speaks TLS with the server's settings.
            let wants_ssl = tcp_check.as_ref().is_some_and(|t| {
                t.rules.iter().any(
                    |r| matches!(&r.action, crate::config::tcpcheck::Action::Connect(c) if c.ssl),
                )
            });
            for (line, sv, params) in &p.servers {
                if wants_ssl && params.check && sv.tls.is_none() {
                    self.err(*line, format!("server '{}': 'tcp-check connect ssl' needs the server's TLS settings ('ssl' or 'check-ssl' with 'verify' / 'ca-file'): not supported without them yet", sv.name));
                }
            }
            // Without an HTTP check no 404 can come: nothing to ignore but the line.
            let http_check = s.httpchk.is_some()
                && tcp_check.is_none()
                && !matches!(s.check_opt, tcpcheck::CheckOpt::External);
            if let (Some(line), false) = (s.disable_on_404, http_check) {
                self.warn(line, format!("proxy '{}': 'http-check disable-on-404' ignored: the checks are not HTTP ('option httpchk')", p.name));
            }
            let health = (!checked.is_empty()).then(|| {
                let first = checked[0];
                for other in &checked[1..] {
                    if other.inter != first.inter || other.rise != first.rise || other.fall != first.fall {
                        self.warn(
                            p.line,
                            format!("backend '{}': servers check with different inter/rise/fall; ringlb uses the first server's for all", p.name),
                        );
                        break;
                    }
                }
                let interval = first.inter.unwrap_or(Duration::from_secs(2));
                HealthCheck {
                    kind: match (&tcp_check, &s.httpchk) {
                        _ if matches!(s.check_opt, tcpcheck::CheckOpt::External) => {
                            CheckKind::External(Arc::new(crate::config::ExternalCheck {
                                command: s.ext_command.clone().unwrap_or_default(),
                                path: s.ext_path.clone().unwrap_or_default(),
                                // HAProxy's numbering, as `show stat` gives it.
                                proxy_id: proxies
                                    .iter()
                                    .position(|q| std::ptr::eq(q, *p))
                                    .and_then(|i| proxy_ids.get(i))
                                    .map_or(0, |&id| id as usize),
                                bind: p.binds.first().map(|b| b.0),
                                proto: if s.mode == Mode::Http { "h1" } else { "tcp" },
                            }))
                        }
                        (Some(t), _) => CheckKind::TcpCheck(t.clone()),
                        (None, Some((method, path, host))) => CheckKind::Http {
                            method: method.clone(),
                            path: path.clone(),
                            host: host.clone(),
                            expect: s.expect.clone(),
                            disable_on_404: s.disable_on_404.is_some(),
                        },
                        (None, None) => CheckKind::Tcp,
                    },
                    interval,
                    fast_interval: first.fastinter.unwrap_or(interval),
                    down_interval: first.downinter.unwrap_or(interval),
                    timeout: s.check_timeout.unwrap_or(interval),
                    rise: first.rise.unwrap_or(2),
                    fall: first.fall.unwrap_or(3),
                    port: first.port,
                    addr: first.addr,
                }
            });
            // `check-proto` must suit the checks it carries (HAProxy 2.6 checks it on
            // the servers that check only).
            for (line, sv, params) in &p.servers {
                let (Some(h), Some(proto), true) = (&health, params.check_proto, params.check)
                else {
                    continue;
                };
                if !proto.fits(&h.kind) {
                    self.err(*line, format!("backend '{}': server '{}' uses an incompatible MUX protocol for the selected check type ({})", p.name, sv.name, proto.carries()));
                }
            }
            let balance = match (&s.balance, s.consistent) {
                (BalanceAlgo::Hash { key, .. }, c) => BalanceAlgo::Hash {
                    key: key.clone(),
                    consistent: c,
                    function: s.hash_function.unwrap_or(HashFunction::default_for(c)),
                },
                (b, _) => b.clone(),
            };
            let explicit: Vec<Option<u32>> = p.servers.iter().map(|x| x.2.id).collect();
            let ids = match crate::config::number_servers(&explicit) {
                Ok(ids) => ids,
                Err((a, b)) => {
                    self.err(
                        p.servers[b].0,
                        format!(
                            "server '{}' has the same id as server '{}' (line {})",
                            p.servers[b].1.name, p.servers[a].1.name, p.servers[a].0
                        ),
                    );
                    explicit.iter().map(|x| x.unwrap_or(0)).collect()
                }
            };
            backends.push(Backend {
                name: p.name.clone(),
                logs: s.log,
                log_health_checks: s.log_health_checks,
                tcpka: s.tcpka[1],
                h1_case: self.h1_case_map(s.case_server),
                disabled: s.disabled,
                state_from: match s.state_load {
                    Some(StateLoad::Global) => crate::config::state_file::StateFrom::Global,
                    Some(StateLoad::Local) => crate::config::state_file::StateFrom::Local(
                        crate::config::state_file::path(
                            self.state_base.as_deref(),
                            s.state_file_name.as_deref().unwrap_or(&p.name),
                        ),
                    ),
                    Some(StateLoad::None) | None => crate::config::state_file::StateFrom::None,
                },
                balance,
                servers: p
                    .servers
                    .iter()
                    .zip(&ids)
                    .map(|(x, &id)| Server { id, ..x.1.clone() })
                    .collect(),
                all_backups: s.all_backups,
                // HAProxy 2.6 prefers the last server only through a connection
                // the client's session still holds: with `http-reuse never` alone
                // (others return it to the server's shared idle list).
                prefer_last_server: s.prefer_last_server && s.reuse_never,
                buffer_request: s.buffer_request && s.mode == Mode::Http,
                abort_on_close: s.abort_on_close,
                splice: s.splice,
                retries: s.retries,
                redispatch: s.redispatch,
                redispatch_after: s.redispatch_after,
                maxqueue: p.maxqueue,
                health,
                timeouts: s.timeouts.clone(),
                forward_for: s.forward_for.clone(),
                server_close: s.close != Close::KeepAlive,
                stick: self.backend_stick(p, &tables),
                http_request: {
                    let mut r = p.http_request.clone();
                    r.extend(p.redirects.iter().cloned());
                    // `stats enable` in a backend: the page is served to the requests
                    // routed there (a listen's own frontend serves it already).
                    if p.kind == SectionKind::Backend && s.mode == Mode::Http {
                        r.extend(stats_rule(p));
                    }
                    r
                },
                http_response: p.http_response.clone(),
                http_after_response: p.http_after_response.clone(),
                tcp_content: p.tcp_content.clone(),
                tcp_response: p.tcp_response.clone(),
                response_inspect_delay: p.response_inspect_delay,
                use_server: p
                    .use_server
                    .iter()
                    .filter_map(|(line, cond, name)| {
                        match p.servers.iter().position(|(_, sv, _)| sv.name == *name) {
                            Some(i) => Some(crate::config::UseServer {
                                cond: cond.clone(),
                                server: i as u32,
                            }),
                            None => {
                                self.errors.push(format!(
                                    "line {line}: 'use-server' : unable to find server '{name}' in backend '{}'",
                                    p.name
                                ));
                                None
                            }
                        }
                    })
                    .collect(),
                cookie: self.cookie_values(p),
                compression: s
                    .compression
                    .as_ref()
                    .filter(|_| s.mode == Mode::Http)
                    .map(|c| c.model()),
                error_pages: s.errors.clone(),
            });
        }
        let mut frontends = Vec::new();
        let mut bound: HashMap<SocketAddr, usize> = HashMap::new();
        for p in proxies.iter().filter(|p| p.kind != SectionKind::Backend) {
            if p.binds.is_empty() && !p.has_bind_line && p.kind == SectionKind::Frontend {
                // HAProxy's warning: the frontend exists and listens nowhere.
                self.warn(
                    p.line,
                    format!(
                        "frontend '{}' has no 'bind' directive. Please declare it as a backend if this was intended.",
                        p.name
                    ),
                );
            } else if p.binds.is_empty() && !p.has_bind_line {
                self.err(p.line, format!("proxy '{}' has no 'bind' line", p.name));
            }
            for (b, _) in &p.binds {
                if b.port() != 0 {
                    if let Some(prev) = bound.insert(*b, p.line) {
                        self.err(
                            p.line,
                            format!("bind {b} is already used by the proxy at line {prev}"),
                        );
                    }
                }
            }
            let mut default_backend = match &p.default_backend {
                Some((line, name)) => {
                    let i = index_of(name);
                    if i.is_none() {
                        self.err(
                            *line,
                            format!("unable to find required default_backend: '{name}'"),
                        );
                    }
                    i
                }
                None => None,
            };
            // A listen section is its own backend unless it names another one (HAProxy
            // then never uses its own servers).
            if p.kind == SectionKind::Listen && p.default_backend.is_none() {
                default_backend = index_of(&p.name);
            } else if p.kind == SectionKind::Listen && !p.servers.is_empty() {
                self.warn(
                    p.line,
                    format!(
                        "proxy '{}': its servers are never used, as it has a default_backend",
                        p.name
                    ),
                );
            }
            let mut routes = Vec::new();
            for (line, cond, target) in &p.rules {
                match target {
                    Target::Dynamic(f) => routes.push(Route {
                        cond: cond.clone(),
                        target: crate::config::RouteTarget::Dynamic(f.clone()),
                    }),
                    Target::Name(name) => match index_of(name) {
                        Some(backend) => routes.push(Route {
                            cond: cond.clone(),
                            target: crate::config::RouteTarget::Backend(backend),
                        }),
                        None => self.err(
                            *line,
                            format!("unable to find required use_backend: '{name}'"),
                        ),
                    },
                }
            }
            let mode = p.settings.mode;

            if mode == Mode::Tcp
                && default_backend.is_none()
                && routes.is_empty()
                && p.rules.is_empty()
                && p.default_backend.is_none()
            {
                self.err(
                    p.line,
                    format!("proxy '{}' (mode tcp) has no backend", p.name),
                );
            }
            if mode == Mode::Tcp {
                for (rules, what) in [
                    (&p.http_request, "http-request"),
                    (&p.http_response, "http-response"),
                    (&p.http_after_response, "http-after-response"),
                ] {
                    if let Some(r) = rules.first() {
                        // HAProxy ignores them with a warning; ringlb says why they do
                        // nothing rather than run a config that looks like it filters.
                        self.err(
                            r.line,
                            format!(
                                "'{what}' rules need 'mode http' (proxy '{}' is in mode tcp)",
                                p.name
                            ),
                        );
                    }
                }
            }
            let tls: Vec<_> = p
                .bind_opts
                .iter()
                .map(|(b, ..)| self.load_bind_ssl(b))
                .collect();
            for (b, _, h2) in &p.bind_opts {
                if *h2 && mode != Mode::Http {
                    self.err(b.line, "bind 'proto h2' needs 'mode http'");
                }
            }
            let binds = p
                .binds
                .iter()
                .map(|&(addr, i)| crate::config::Bind {
                    addr,
                    sock: p.bind_sock[i],
                    accept_proxy: p.bind_opts[i].1,
                    h2: p.bind_opts[i].2,
                    tls: tls[i].clone(),
                })
                .collect();
            frontends.push(Frontend {
                name: p.name.clone(),
                binds,
                mode,
                routes,
                route_index: None,
                default_backend,
                listen_backend: (p.kind == SectionKind::Listen)
                    .then(|| index_of(&p.name))
                    .flatten(),
                forward_for: p
                    .settings
                    .forward_for
                    .clone()
                    .filter(|_| mode == Mode::Http),
                server_close: p.settings.close != Close::KeepAlive,
                client_close: p.settings.close == Close::Both,
                // HAProxy forwards CONNECT in http mode.
                allow_connect: true,
                maxconn: p.maxconn,
                tcpka: p.settings.tcpka[0],
                h1_case: self.h1_case_map(p.settings.case_client),
                disabled: p.settings.disabled,
                buffer_request: p.settings.buffer_request && mode == Mode::Http,
                splice: p.settings.splice,
                rate_limits: self.frontend_rates(p, &tables),
                log: p.settings.log.then(|| {
                    p.settings.log_format.unwrap_or(if mode == Mode::Http {
                        LogFormat::Http
                    } else {
                        LogFormat::Tcp
                    })
                }),
                log_line: self.log_line(p, mode),
                dont_log_null: p.settings.dont_log_null,
                dont_log_normal: p.settings.dont_log_normal,
                log_errors_as_err: p.settings.log_separate_errors,
                http_request: {
                    let mut rules = p.http_request.clone();
                    rules.extend(p.redirects.iter().cloned());
                    if mode == Mode::Http {
                        rules.extend(stats_rule(p));
                    }
                    rules
                },
                http_response: p.http_response.clone(),
                http_after_response: p.http_after_response.clone(),
                tcp_connection: p.tcp_connection.clone(),
                tcp_session: p.tcp_session.clone(),
                tcp_content: p.tcp_content.clone(),
                inspect_delay: p.inspect_delay,
                captures: p.captures.clone(),
                rule_free: false,
                timeouts: p.settings.timeouts.clone(),
                monitor: p
                    .settings
                    .monitor_uri
                    .clone()
                    .filter(|_| mode == Mode::Http)
                    .map(|uri| crate::config::Monitor {
                        uri,
                        fail: p.monitor_fail.clone(),
                    }),
                compression: p
                    .settings
                    .compression
                    .as_ref()
                    .filter(|_| mode == Mode::Http)
                    .map(|c| c.model()),
                error_pages: p.settings.errors.clone(),
                unique_id_format: self.unique_id_format(p),
                unique_id_header: p
                    .settings
                    .unique_id_header
                    .as_deref()
                    .filter(|_| p.settings.unique_id_format.is_some())
                    .map(Into::into),
            });
        }
        if frontends.is_empty() {
            self.err(1, "no frontend or listen section: nothing to listen on");
        } else if frontends.iter().all(|f| f.binds.is_empty()) {
            // HAProxy: "has no error but will not start (no listener)".
            self.err(1, "no frontend has a 'bind' line: nothing to listen on");
        }
        crate::config::index_routes(&mut frontends, &backends);
        let mut timeouts = proxies
            .first()
            .map(|p| p.settings.timeouts.clone())
            .unwrap_or_else(default_timeouts);
        timeouts.hard_stop_after = self.hard_stop_after;
        Config {
            patterns: std::mem::take(&mut self.patterns),
            runtime,
            timeouts,
            limits: self.limits.clone(),
            pool: PoolSettings {
                max_idle_per_server: crate::config::DEFAULT_POOL_MAX_IDLE,
                // HAProxy's default `pool-purge-delay`.
                idle_timeout: Duration::from_secs(5),
            },
            admin,
            log,
            cluster: crate::config::ClusterSettings::default(),
            proxy_order: {
                let (mut f, mut b) = (0, 0);
                proxies
                    .iter()
                    .zip(proxy_ids)
                    .map(|(p, id)| {
                        let fe = (p.kind != SectionKind::Backend).then(|| {
                            f += 1;
                            f - 1
                        });
                        let be = (p.kind != SectionKind::Frontend).then(|| {
                            b += 1;
                            b - 1
                        });
                        crate::config::ProxyRef {
                            frontend: fe,
                            backend: be,
                            id,
                        }
                    })
                    .collect()
            },
            frontends,
            backends,
            vars: std::mem::take(&mut self.vars),
            tables: self.table_specs(&proxies),
            resolvers: std::mem::take(&mut self.resolvers),
        }
    }

    /// The global `h1-case-adjust` map, for a proxy whose option asks for it.
    fn h1_case_map(&self, on: bool) -> Option<crate::config::CaseAdjust> {
        (on && !self.h1_case.is_empty()).then(|| self.h1_case.clone().into())
    }

    /// HAProxy's id of each proxy (`id N`, else its numbering); a duplicate is an error
    /// on the second one's line, as HAProxy's.
    fn proxy_ids(&mut self, proxies: &[Proxy], admin: &Admin) -> Vec<u32> {
        let cli = admin.stats_socket.is_some() || !admin.stats_tcp.is_empty();
        let explicit: Vec<Option<u32>> = proxies.iter().map(|p| p.id.map(|(n, _)| n)).collect();
        let kind = |p: &Proxy| match p.kind {
            SectionKind::Frontend => "frontend",
            SectionKind::Backend => "backend",
            _ => "listen",
        };
        match crate::config::number_proxies(cli, &explicit) {
            Ok(ids) => ids,
            Err((first, second)) => {
                let p = &proxies[second];
                let line = p.id.map_or(p.line, |(_, l)| l);
                let other = match first.map(|i| &proxies[i]) {
                    Some(q) => format!(
                        "{} {} (declared at line {})",
                        kind(q),
                        q.name,
                        q.id.map_or(q.line, |(_, l)| l)
                    ),
                    None => "the stats socket's CLI proxy (id 1)".to_string(),
                };
                self.err(
                    line,
                    format!("{} {} reuses same custom id as {other}", kind(p), p.name),
                );
                (1..=proxies.len() as u32).collect()
            }
        }
    }

    /// The access log line of a frontend: its `log-format`, or the format its
    /// `option httplog|tcplog` names (HAProxy's strings).
    /// `unique-id-format`, parsed where the frontend's expressions resolve (as a
    /// plain log-format: an empty field adds nothing, as in HAProxy).
    fn unique_id_format(&mut self, p: &Proxy) -> Option<Arc<crate::rules::LogFormat>> {
        let (line, text) = p.settings.unique_id_format.clone()?;
        let r = {
            let mut env = self.rule_env(p);
            crate::rules::LogFormat::parse(&text, crate::rules::logformat::Mode::Plain, &mut env)
        };
        match r {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                self.err(line, format!("'unique-id-format' : {e}"));
                None
            }
        }
    }

    fn log_line(&mut self, p: &Proxy, mode: Mode) -> Option<Arc<crate::rules::LogFormat>> {
        use crate::rules::logformat::{Mode as LfMode, CLF_LOG, HTTPS_LOG, HTTP_LOG, TCP_LOG};
        if !p.settings.log {
            return None;
        }
        let kind = p.settings.log_format.unwrap_or(if mode == Mode::Http {
            LogFormat::Http
        } else {
            LogFormat::Tcp
        });
        let (line, text) = match (kind, &p.settings.log_line) {
            (LogFormat::Custom, Some((line, t))) => (*line, t.as_str()),
            (LogFormat::Clf, _) => (p.line, CLF_LOG),
            (LogFormat::Tcp, _) => (p.line, TCP_LOG),
            (LogFormat::Http | LogFormat::Https, _) if mode == Mode::Tcp => (p.line, TCP_LOG),
            (LogFormat::Https, _) => (p.line, HTTPS_LOG),
            _ => (p.line, HTTP_LOG),
        };
        self.phase = Some(crate::rules::parse::Phase::Log);
        let r = {
            let mut env = self.rule_env(p);
            crate::rules::LogFormat::parse(text, LfMode::Log, &mut env)
        };
        self.phase = None;
        match r {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                self.err(line, format!("'log-format' : {e}"));
                None
            }
        }
    }

    /// Every `stick-table`, in proxy order (the order of `Names::tables`).
    fn table_specs(&self, proxies: &[Proxy]) -> Vec<crate::config::TableSpec> {
        use crate::rules::stick::TableSpec;
        proxies
            .iter()
            .filter_map(|p| {
                let t = p.stick.table.as_ref()?;
                Some(TableSpec {
                    name: p.name.clone(),
                    key: t.key,
                    size: t.size,
                    expire: t.expire.unwrap_or(Duration::from_secs(86400)),
                    store: t.store.clone(),
                })
            })
            .collect()
    }
}

/// The stats page of a proxy with `stats enable` (or `uri`, `auth`...): a `use-service`
/// rule after its `http-request` rules, on HAProxy's default URI unless one is given.
fn stats_rule(p: &Proxy) -> Option<HttpRule> {
    let st = &p.settings.stats;
    if !st.enabled {
        return None;
    }
    let uri = st.uri.clone().unwrap_or_else(|| "/haproxy?stats".into());
    Some(HttpRule {
        cond: crate::rules::acl::url_beg_condition("stats", &uri),
        action: HttpAction::Service(Service::Stats {
            auth: st.auth.clone(),
            realm: st
                .realm
                .clone()
                .unwrap_or_else(|| "HAProxy Statistics".into()),
            refresh: st.refresh,
            admin: st
                .admin
                .clone()
                .map(|c| crate::config::AdminCond(Arc::new(c))),
            // `.` is the proxy the page belongs to.
            scope: st
                .scope
                .iter()
                .map(|n| if n == "." { p.name.clone() } else { n.clone() })
                .collect(),
        }),
        line: p.line,
    })
}
