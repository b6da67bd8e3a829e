//! haproxy.cfg proxy keywords: mode, timeouts, options, health checks (balance and bind have their own files).

use super::*;

impl Mapper<'_> {
    pub(super) fn proxy_line(&mut self, l: &Line, p: &mut Proxy) {
        let is_defaults = p.kind == SectionKind::Defaults;
        let fe = matches!(
            p.kind,
            SectionKind::Frontend | SectionKind::Listen | SectionKind::Defaults
        );
        let be = matches!(
            p.kind,
            SectionKind::Backend | SectionKind::Listen | SectionKind::Defaults
        );
        let a = l.args();
        let arg = |i: usize| a.get(i).map(String::as_str).unwrap_or("");
        let kw = l.keyword();
        self.patterns.line = l.line;
        match kw {
            "mode" => match arg(0) {
                "http" => p.settings.mode = Mode::Http,
                "tcp" => p.settings.mode = Mode::Tcp,
                other => self.err(
                    l.line,
                    format!("'mode' expects 'http' or 'tcp', got '{other}'"),
                ),
            },
            "timeout" => self.timeout(l, &mut p.settings),
            "clitcpka-idle" | "clitcpka-intvl" | "clitcpka-cnt" | "srvtcpka-idle"
            | "srvtcpka-intvl" | "srvtcpka-cnt" => self.tcpka_value(l, &mut p.settings),
            "contimeout" | "clitimeout" | "srvtimeout" => self.err(
                l.line,
                format!("'{kw}' was removed in HAProxy 2.1: use 'timeout connect|client|server'"),
            ),
            "retries" => match arg(0).parse::<u32>() {
                Ok(n) => p.settings.retries = n,
                _ => self.err(l.line, "'retries' expects an integer argument"),
            },
            "no" if a.first().map(String::as_str) == Some("log") => p.settings.log = false,
            "option" | "no" => self.option(l, p),
            "balance" if be => self.balance(l, &mut p.settings),
            "hash-type" if be => self.hash_type(l, &mut p.settings),
            "http-check" if be => self.http_check(l, &mut p.settings),
            "tcp-check" if be => self.tcp_check_line(l, &mut p.settings),
            "external-check" if be => match (arg(0), a.get(1), a.len()) {
                ("command", Some(c), 2) => p.settings.ext_command = Some(c.clone()),
                ("path", Some(c), 2) => p.settings.ext_path = Some(c.clone()),
                ("command" | "path", _, _) => self.err(l.line, format!("'external-check {}' expects one argument", arg(0))),
                (other, _, _) => self.err(l.line, format!("'external-check' only supports 'command' and 'path', got '{other}'")),
            },
            "tcp-check" => self.warn(
                l.line,
                "'tcp-check' ignored in a frontend: health checks are a backend setting (as in HAProxy)",
            ),
            "cookie" if be => self.cookie_line(l, &mut p.settings),
            "monitor-uri" if fe => match a.first() {
                Some(u) if a.len() == 1 && !u.is_empty() => {
                    p.settings.monitor_uri = Some(u.clone())
                }
                _ => self.err(l.line, "'monitor-uri' expects an URI."),
            },
            "monitor" if fe && !is_defaults => match arg(0) {
                "fail" => {
                    if !matches!(arg(1), "if" | "unless") {
                        return self.err(
                            l.line,
                            "'monitor fail' expects a condition (if|unless COND).",
                        );
                    }
                    if let Some(c) = self.condition_of(l.line, &a[1..], p, "monitor fail") {
                        p.monitor_fail.push(c);
                    }
                }
                other => self.err(
                    l.line,
                    format!("'monitor' expects 'fail', got '{other}'."),
                ),
            },
            "cookie" => self.warn(
                l.line,
                "'cookie' ignored in a frontend: persistence is a backend setting (as in HAProxy)",
            ),
            "dynamic-cookie-key" if be => match a.first() {
                Some(k) => p.settings.dyncookie_key = Some(k.clone()),
                None => self.err(l.line, "'dynamic-cookie-key' expects <key> as argument."),
            },
            "default-server" if be => {
                let mut params = p.settings.server.clone();
                self.server_params(l, a, &mut params);
                if params.id.take().is_some() {
                    self.err(l.line, "'id' cannot be used on a 'default-server' line");
                }
                p.settings.server = params;
            }
            "http-reuse" if be => match arg(0) {
                "safe" | "aggressive" | "always" => p.settings.reuse_never = false,
                "never" => {
                    // Read by `option prefer-last-server`, which HAProxy 2.6 honours
                    // only on connections kept private to the client's session.
                    p.settings.reuse_never = true;
                    self.warn(
                        l.line,
                        "'http-reuse never' ignored: ringlb pools idle server connections per shard",
                    )
                }
                other => self.err(
                    l.line,
                    format!("'http-reuse' expects never|safe|aggressive|always, got '{other}'"),
                ),
            },
            "log" => match a.first().map(String::as_str) {
                Some("global") => p.settings.log = true,
                Some(_) => {
                    p.settings.log = true;
                    self.proxy_log(l);
                }
                None => self.err(l.line, "'log' expects 'global' or a target"),
            },
            "maxconn" if fe => match arg(0).parse::<u32>() {
                Ok(n) if is_defaults => p.settings.maxconn = (n > 0).then_some(n),
                Ok(n) => p.maxconn = (n > 0).then_some(n),
                Err(_) => self.err(l.line, "'maxconn' expects an integer"),
            },
            // A backend's `maxconn`: HAProxy warns it has no frontend capability.
            "maxconn" | "fullconn" | "backlog" => {
                self.warn(l.line, format!("'{kw}' is not enforced here"))
            }
            "stats" if l.args().first().map(String::as_str) == Some("admin") => {
                self.stats_admin(l, p)
            }
            "stats" => self.stats(l, &mut p.settings),
            "disabled" => p.settings.disabled = true,
            "load-server-state-from-file" if be => match a {
                [w] if w == "global" => p.settings.state_load = Some(StateLoad::Global),
                [w] if w == "local" => p.settings.state_load = Some(StateLoad::Local),
                [w] if w == "none" => p.settings.state_load = Some(StateLoad::None),
                [w, extra, ..] if ["global", "local", "none"].contains(&w.as_str()) => self.err(
                    l.line,
                    format!("'{kw}' cannot handle unexpected argument '{extra}'"),
                ),
                _ => self.err(
                    l.line,
                    format!(
                        "'{kw}' expects 'global', 'local' or 'none'. Got '{}'",
                        arg(0)
                    ),
                ),
            },
            "server-state-file-name" if be => match a {
                [] => p.settings.state_file_name = None,
                [w] if w == "use-backend-name" => p.settings.state_file_name = None,
                [w] => p.settings.state_file_name = Some(w.clone()),
                [_, extra, ..] => self.err(
                    l.line,
                    format!("'{kw}' cannot handle unexpected argument '{extra}'"),
                ),
            },
            "enabled" => p.settings.disabled = false,
            "errorfile" | "errorfiles" | "http-error" | "errorloc" | "errorloc302"
            | "errorloc303" => self.error_line(l, p),
            "id" if is_defaults => self.err(l.line, "'id' not allowed in 'defaults' section"),
            "id" => match a.first().map(|n| n.parse::<u32>()) {
                _ if a.len() > 1 => self.err(
                    l.line,
                    format!("'id' cannot handle unexpected argument '{}'", a[1]),
                ),
                Some(Ok(n)) if n > 0 => p.id = Some((n, l.line)),
                _ => self.err(l.line, "custom id has to be > 0"),
            },
            "description" | "email-alert" => self.warn(l.line, format!("'{kw}' ignored")),
            // Removed in HAProxy 2.5; 2.6 refuses it with this advice.
            "monitor-net" => self.err(
                l.line,
                format!(
                    "'monitor-net' doesn't exist anymore. Please use 'http-request return status 200 if {{ src {} }}' instead.",
                    a.first().map_or("NET", String::as_str)
                ),
            ),
            "bind" if fe && !is_defaults => self.bind(l, p),
            "acl" if !is_defaults => self.acl(l, p),
            "default_backend" if fe => match a.first() {
                Some(b) => p.default_backend = Some((l.line, b.clone())),
                None => self.err(l.line, "'default_backend' expects a backend name"),
            },
            "use_backend" if fe && !is_defaults => self.use_backend(l, p),
            "http-request" if !is_defaults => {
                self.http_rule(l, http_rules::HttpKind::Request, l.args(), p)
            }
            "http-response" if !is_defaults => {
                self.http_rule(l, http_rules::HttpKind::Response, l.args(), p)
            }
            "http-after-response" if !is_defaults => {
                self.http_rule(l, http_rules::HttpKind::AfterResponse, l.args(), p)
            }
            "redirect" if !is_defaults => {
                let mut words = vec!["redirect".to_string()];
                words.extend(l.args().iter().cloned());
                self.http_rule(l, http_rules::HttpKind::Request, &words, p)
            }
            "tcp-request" if !is_defaults => self.tcp_rule(l, false, p),
            "tcp-response" if !is_defaults && be => self.tcp_rule(l, true, p),
            "use-server" if be && !is_defaults => self.use_server(l, p),
            "capture" if fe && !is_defaults => self.capture_line(l, p),
            "declare" if fe && !is_defaults => self.declare(l, p),
            "log-format" => match a.first() {
                Some(f) if a.len() == 1 => {
                    // The last of `log-format` and `option httplog|tcplog` wins.
                    p.settings.log_line = Some((l.line, f.clone()));
                    p.settings.log_format = Some(LogFormat::Custom);
                }
                Some(_) => self.err(l.line, "'log-format' expects one argument (quote the format)"),
                None => self.err(l.line, "'log-format' expects a format string"),
            },
            "log-format-sd" => self.warn(
                l.line,
                "'log-format-sd' ignored: ringlb writes RFC 3164 lines, which have no structured data",
            ),
            "server" if be && !is_defaults => self.server(l, p),
            "server-template" if be && !is_defaults => self.server_template(l, p),
            "stick-table" if !is_defaults => self.stick_table(l, p),
            "stick" if be && !is_defaults => self.stick(l, p),
            "reqadd" | "reqrep" | "reqdel" | "reqirep" | "reqidel" | "reqdeny" | "reqallow"
            | "reqpass" | "reqtarpit" | "reqideny" | "reqiallow" | "reqipass" | "reqitarpit"
            | "rspadd" | "rsprep" | "rspdel" | "rspirep" | "rspidel" | "rspdeny" | "rspideny"
            | "block" => self.err(
                l.line,
                format!(
                    "'{kw}' was removed in HAProxy 2.1: use 'http-request' / 'http-response' rules"
                ),
            ),
            "redispatch" => self.err(l.line, "'redispatch' was removed: use 'option redispatch'"),
            "compression" => self.compression_line(l, p),
            "unique-id-format" | "unique-id-header" if !fe => self.warn(
                l.line,
                format!("'{kw}' ignored: a backend has no frontend capability (as in HAProxy)"),
            ),
            "unique-id-format" => match a {
                [f] => p.settings.unique_id_format = Some((l.line, f.clone())),
                [] => self.err(l.line, "'unique-id-format' expects an argument"),
                _ => self.err(
                    l.line,
                    "'unique-id-format' expects only one argument (quote the format)",
                ),
            },
            "unique-id-header" => match a {
                [h] => p.settings.unique_id_header = Some(h.clone()),
                _ => self.err(l.line, "'unique-id-header' expects a header name"),
            },
            "filter"
            | "source"
            | "dispatch"
            | "persist"
            | "force-persist"
            | "ignore-persist"
            | "rate-limit" => self.err(l.line, format!("'{kw}' is not supported by ringlb yet")),
            _ if is_defaults
                && matches!(
                    kw,
                    "bind"
                        | "acl"
                        | "use_backend"
                        | "server"
                        | "server-template"
                        | "http-request"
                        | "http-response"
                        | "http-after-response"
                        | "tcp-request"
                        | "tcp-response"
                        | "redirect"
                        | "use-server"
                        | "capture"
                        | "declare"
                ) =>
            {
                self
                .err(
                    l.line,
                    format!("'{kw}' is not allowed in a 'defaults' section (ringlb keeps rules in the proxies that use them)"),
                )
            }
            _ if !fe && matches!(kw, "bind" | "use_backend" | "default_backend" | "capture" | "declare") => self
                .err(
                    l.line,
                    format!("'{kw}' is not allowed in a 'backend' section"),
                ),
            _ if !be
                && matches!(
                    kw,
                    "server"
                        | "server-template"
                        | "balance"
                        | "hash-type"
                        | "http-check"
                        | "default-server"
                        | "http-reuse"
                ) =>
            {
                self.err(
                    l.line,
                    format!("'{kw}' is not allowed in a 'frontend' section"),
                )
            }
            _ => self.err(
                l.line,
                format!("unknown keyword '{kw}' in '{}' section", p.kind.keyword()),
            ),
        }
    }

    /// `clitcpka-idle|intvl T`, `clitcpka-cnt N` and the `srvtcpka-*` ones: the values
    /// the side's keep-alive probes use, also when `option tcpka` comes later.
    fn tcpka_value(&mut self, l: &Line, s: &mut Settings) {
        let kw = l.keyword();
        let side = usize::from(kw.starts_with("srv"));
        let arg = l.args().first().map(String::as_str).unwrap_or("");
        let v = &mut s.tcpka_values[side];
        if kw.ends_with("-cnt") {
            match arg.parse::<u32>() {
                Ok(n) if n > 0 && l.args().len() == 1 => v.cnt = Some(n),
                _ => return self.err(l.line, format!("'{kw}' expects a positive integer")),
            }
        } else {
            match crate::config::parse_duration(arg) {
                // The kernel counts these in whole seconds, at least one.
                Ok(d) if l.args().len() == 1 => {
                    let d = d.max(Duration::from_secs(1));
                    if kw.ends_with("-idle") {
                        v.idle = Some(d)
                    } else {
                        v.intvl = Some(d)
                    }
                }
                _ => return self.err(l.line, format!("'{kw}' expects a time (e.g. 30s)")),
            }
        }
        let v = *v;
        if let Some(on) = s.tcpka[side].as_mut() {
            *on = v;
        }
    }

    pub(super) fn timeout(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        let (Some(kind), Some(value)) = (a.first(), a.get(1)) else {
            return self.err(l.line, "'timeout' expects a kind and a time");
        };
        let d = match parse_time(value) {
            Ok(d) => d,
            Err(e) => return self.err(l.line, format!("'timeout {kind}': {e}")),
        };
        let t = &mut s.timeouts;
        match kind.as_str() {
            "connect" => t.connect = d,
            "client" => t.client = d,
            "server" => t.server = d,
            "http-request" => t.http_request = d,
            "http-keep-alive" => t.http_keep_alive = d,
            "queue" => t.queue = d,
            "check" => s.check_timeout = Some(d),
            "tunnel" => t.tunnel = Some(d),
            "tarpit" => t.tarpit = Some(d),
            "client-fin" => t.client_fin = Some(d),
            "server-fin" => t.server_fin = Some(d),
            other => self.err(l.line, format!("unknown timeout '{other}'")),
        }
    }

    pub(super) fn option(&mut self, l: &Line, p: &mut Proxy) {
        let (negate, words) = if l.keyword() == "no" {
            if l.args().first().map(String::as_str) != Some("option") {
                return self.err(l.line, "'no' must be followed by 'option'");
            }
            (true, &l.args()[1..])
        } else {
            (false, l.args())
        };
        let Some(opt) = words.first() else {
            return self.err(l.line, "'option' expects an option name");
        };
        let rest = &words[1..];
        let s = &mut p.settings;
        match opt.as_str() {
            "redispatch" if negate => {
                s.redispatch = false;
                s.redispatch_after = 0;
            }
            "redispatch" => match rest {
                [] => {
                    s.redispatch = true;
                    s.redispatch_after = -1;
                }
                // HAProxy reads it with atol(): a number, or an error here (rather
                // than the 0 atol makes of a typo, which would silently disable it).
                [n] => match n.parse::<i32>() {
                    Ok(n) => {
                        s.redispatch = true;
                        s.redispatch_after = n;
                    }
                    Err(_) => self.err(
                        l.line,
                        format!("'option redispatch' expects an integer interval, got '{n}'"),
                    ),
                },
                _ => self.err(l.line, "'option redispatch' expects at most one interval"),
            },
            "persist" => s.persist = !negate,
            "allbackups" => s.all_backups = !negate,
            "prefer-last-server" if p.kind == SectionKind::Frontend => self.warn(
                l.line,
                "'prefer-last-server' ignored because frontend has no backend capability (as in HAProxy)",
            ),
            "prefer-last-server" => s.prefer_last_server = !negate,
            "h1-case-adjust-bogus-client" if p.kind == SectionKind::Backend => self.warn(
                l.line,
                "'h1-case-adjust-bogus-client' ignored because backend has no frontend capability (as in HAProxy)",
            ),
            "h1-case-adjust-bogus-client" => s.case_client = !negate,
            "h1-case-adjust-bogus-server" if p.kind == SectionKind::Frontend => self.warn(
                l.line,
                "'h1-case-adjust-bogus-server' ignored because frontend has no backend capability (as in HAProxy)",
            ),
            "h1-case-adjust-bogus-server" => s.case_server = !negate,
            "forwardfor" if negate => s.forward_for = None,
            "forwardfor" => {
                let mut ff = crate::config::ForwardFor::default();
                let mut i = 0;
                while i < rest.len() {
                    match (rest[i].as_str(), rest.get(i + 1)) {
                        ("except", Some(net)) => match crate::config::acl::parse_net(net) {
                            Ok(n) => ff.except = Some(n),
                            Err(e) => self.err(l.line, format!("'option forwardfor except': {e}")),
                        },
                        ("header", Some(name)) => ff.header = name.clone(),
                        ("if-none", _) => {
                            ff.if_none = true;
                            i += 1;
                            continue;
                        }
                        (other, _) => {
                            self.err(l.line, format!("'option forwardfor': unexpected '{other}'"));
                            break;
                        }
                    }
                    i += 2;
                }
                s.forward_for = Some(ff);
            }
                        "http-server-close" => s.close = if negate { Close::KeepAlive } else { Close::Server },
            "httpclose" | "forceclose" => s.close = if negate { Close::KeepAlive } else { Close::Both },
            "http-keep-alive" => s.close = Close::KeepAlive,
            "http-pretend-keepalive" => self.warn(l.line, "'option http-pretend-keepalive' ignored"),
            "httplog" => {
                s.log_line = None;
                s.log_format = match rest.first().map(String::as_str) {
                    _ if negate => None,
                    Some("clf") => Some(LogFormat::Clf),
                    None => Some(LogFormat::Http),
                    Some(other) => {
                        return self.err(l.line, format!("'option httplog' only supports 'clf', got '{other}'"))
                    }
                };
            }
            "tcplog" => {
                s.log_line = None;
                s.log_format = (!negate).then_some(LogFormat::Tcp);
            }
            "dontlognull" => s.dont_log_null = !negate,
            "dontlog-normal" => s.dont_log_normal = !negate,
            "log-separate-errors" => s.log_separate_errors = !negate,
            "log-health-checks" => s.log_health_checks = !negate,
            // HAProxy 2.6: `option httplog` plus the connection's TLS facts; like
            // `httplog`, the last of it, `httplog`, `tcplog` and `log-format` wins.
            "httpslog" => {
                s.log_line = None;
                s.log_format = (!negate).then_some(LogFormat::Https);
            }
            "tcpka" | "clitcpka" | "srvtcpka" => {
                let sides: &[usize] = match opt.as_str() {
                    "clitcpka" => &[0],
                    "srvtcpka" => &[1],
                    _ => &[0, 1],
                };
                for &i in sides {
                    s.tcpka[i] = (!negate).then_some(s.tcpka_values[i]);
                }
            }
            "http-buffer-request" => s.buffer_request = !negate,
            // HAProxy 2.6 drops a queued or connecting session whose client closed; in
            // HTTP mode it sees no close of a client whose request is whole until the
            // response (tests/haproxy_diff_abortonclose.rs), so only TCP mode differs.
            "abortonclose" if p.kind == SectionKind::Frontend => self.warn(
                l.line,
                "'option abortonclose' ignored in a frontend: it is a backend setting (as in HAProxy)",
            ),
            "abortonclose" => s.abort_on_close = !negate,
            // Splicing changes no byte exchanged: see `config::splice` for the mapping.
            "splice-auto" => s.splice.auto = Some(!negate),
            "splice-request" => s.splice.request = !negate,
            "splice-response" => s.splice.response = !negate,
            "contstats" | "socket-stats" | "http-no-delay" => {
                self.warn(l.line, format!("'option {opt}' ignored"))
            }
            // Packet-level savings (a delayed ACK on accept, the request sent with the
            // handshake's ACK): the bytes clients and servers exchange are the same.
            "tcp-smart-accept" | "tcp-smart-connect" => self.warn(
                l.line,
                format!("'option {opt}' ignored: a TCP packet-count optimisation that changes no byte exchanged"),
            ),
            "httpchk" if negate => s.httpchk = None,
            "external-check" if negate => {
                if matches!(s.check_opt, super::tcpcheck::CheckOpt::External) {
                    s.check_opt = super::tcpcheck::CheckOpt::None;
                }
            }
            "external-check" if p.kind == SectionKind::Frontend => self.warn(l.line, "'option external-check' ignored in a frontend: health checks are a backend setting (as in HAProxy)"),
            "external-check" => {
                s.httpchk = None;
                s.check_opt = super::tcpcheck::CheckOpt::External;
            }
            "tcp-check" | "mysql-check" | "pgsql-check" | "redis-check" | "smtpchk" | "ldap-check"
                if negate =>
            {
                self.err(l.line, format!("'no option {opt}' is not supported (choose another check option instead)"))
            }
            "tcp-check" | "mysql-check" | "pgsql-check" | "redis-check" | "smtpchk" | "ldap-check"
                if p.kind == SectionKind::Frontend =>
            {
                self.warn(l.line, format!("'option {opt}' ignored in a frontend: health checks are a backend setting (as in HAProxy)"))
            }
            "tcp-check" | "mysql-check" | "pgsql-check" | "redis-check" | "smtpchk" | "ldap-check" => {
                self.check_option(l, opt, rest, s)
            }
            "httpchk" => {
                s.check_opt = super::tcpcheck::CheckOpt::None;
                let (method, uri, version, host) = match rest {
                    [] => ("OPTIONS", "/", None, None),
                    [uri] => ("OPTIONS", uri.as_str(), None, None),
                    [m, uri] => (m.as_str(), uri.as_str(), None, None),
                    [m, uri, v] => (m.as_str(), uri.as_str(), Some(v.as_str()), None),
                    [m, uri, v, h, ..] => (m.as_str(), uri.as_str(), Some(v.as_str()), Some(h.as_str())),
                };
                // The old way to send a Host: a version followed by "\r\nHost: name".
                let host = host.map(str::to_string).or_else(|| {
                    version.and_then(|v| {
                        v.split("\r\n")
                            .skip(1)
                            .find_map(|h| h.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("host")))
                            .map(|(_, v)| v.trim().to_string())
                    })
                });
                s.httpchk = Some((method.to_string(), uri.to_string(), host));
            }
            "ssl-hello-chk" | "spop-check" => self.err(l.line, format!("'option {opt}' is not supported yet (use 'check' for a TCP connect check or 'option httpchk')")),
            "independent-streams" | "independant-streams" | "accept-invalid-http-request" | "accept-invalid-http-response" => {
                self.err(l.line, format!("'option {opt}' is not supported"))
            }
            other => self.err(l.line, format!("unknown option '{other}'")),
        }
    }

    pub(super) fn http_check(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        match a.first().map(String::as_str) {
            Some("send") => {
                let (mut method, mut uri, mut host) =
                    s.httpchk
                        .clone()
                        .unwrap_or(("OPTIONS".into(), "/".into(), None));
                let mut i = 1;
                while i < a.len() {
                    let v = a.get(i + 1).cloned().unwrap_or_default();
                    match a[i].as_str() {
                        "meth" => method = v,
                        "uri" => uri = v,
                        "ver" => {}
                        "hdr" => {
                            let value = a.get(i + 2).cloned().unwrap_or_default();
                            if v.eq_ignore_ascii_case("host") {
                                host = Some(value);
                            } else {
                                self.warn(l.line, format!("'http-check send hdr {v}' ignored"));
                            }
                            i += 1;
                        }
                        other => {
                            return self.err(
                                l.line,
                                format!("'http-check send': unsupported argument '{other}'"),
                            )
                        }
                    }
                    i += 2;
                }
                s.httpchk = Some((method, uri, host));
            }
            Some("expect") => {
                let mut w: Vec<&str> = a[1..].iter().map(String::as_str).collect();
                if w.first() == Some(&"!") {
                    return self.err(l.line, "'http-check expect !' is not supported yet");
                }
                match w.as_mut_slice() {
                    ["status", codes] => match status_list(codes) {
                        Some(m) => s.expect = m,
                        None => self.err(
                            l.line,
                            format!("'http-check expect status': invalid status list '{codes}'"),
                        ),
                    },
                                        ["rstatus", re] => match regex::Regex::new(re) {
                        Ok(_) => s.expect = StatusMatch::Regex(re.to_string()),
                        Err(e) => self.err(l.line, format!("'http-check expect rstatus': invalid regex: {e}")),
                    },
                    ["string", text] => s.expect = StatusMatch::Body(text.to_string()),
                    [kind, ..] => self.err(l.line, format!("'http-check expect {kind}' is not supported yet (status, rstatus, string)")),
                    [] => self.err(l.line, "'http-check expect' expects a match"),
                }
            }
            Some("disable-on-404") => s.disable_on_404 = Some(l.line),
            // Ignoring it would change what the server sees: no state header.
            Some("send-state") => self.err(
                l.line,
                "'http-check send-state' is not supported yet (no X-Haproxy-Server-State header on checks)",
            ),
            Some(other) => self.err(l.line, format!("'http-check {other}' is not supported yet")),
            None => self.err(l.line, "'http-check' expects send or expect"),
        }
    }
}
