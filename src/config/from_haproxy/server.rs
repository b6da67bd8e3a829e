//! haproxy.cfg `server` and `default-server` lines.

use super::*;

impl Mapper<'_> {
    pub(super) fn server(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let (Some(name), Some(addr)) = (a.first(), a.get(1)) else {
            return self.err(l.line, "'server' expects a name and an address");
        };
        self.add_server(l, p, name, addr, &a[2..], None);
    }

    /// One server (or one slot of template `template`) named `name` at `addr`.
    pub(super) fn add_server(
        &mut self,
        l: &Line,
        p: &mut Proxy,
        name: &String,
        addr: &str,
        options: &[String],
        template: Option<u32>,
    ) {
        if p.servers.iter().any(|(_, s, _)| &s.name == name) {
            return self.err(
                l.line,
                format!("duplicate server name '{name}' in '{}'", p.name),
            );
        }
        let what = format!("'server {}/{name}'", p.name);
        let Some(addr) = self.address(l.line, &what, addr) else {
            return;
        };
        let addr = &addr;
        let mut params = p.settings.server.clone();
        self.server_params(l, options, &mut params);
        if params.h2 && p.settings.mode == Mode::Tcp {
            return self.err(
                l.line,
                format!(
                    "MUX protocol 'h2' is not usable for server '{}/{name}': it needs 'mode http'",
                    p.name
                ),
            );
        }
        if addr.contains('@') || addr.starts_with('/') {
            return self.err(l.line, format!("server '{name}': address '{addr}' is not supported (IP:PORT or host:PORT only)"));
        }
        // Without a port, or with `+N` / `-N`, the port is the client's destination
        // port (plus N), as in HAProxy.
        let mut port_offset = None;
        // No host (`*`, `*:PORT`, `:PORT`, an empty `${HOST}`) is 0.0.0.0 for HAProxy:
        // the server is the address the client connected to. No port after a `:` (an
        // empty `${PORT}`) is no port.
        let star;
        let one_colon = addr.matches(':').count() <= 1;
        let no_host = addr
            .strip_prefix('*')
            .or_else(|| (addr.starts_with(':') && one_colon).then_some(addr.as_str()));
        let addr = match no_host {
            Some(rest) if rest.is_empty() || rest.starts_with(':') => {
                star = format!("0.0.0.0{}", rest.strip_suffix(':').unwrap_or(rest));
                &star
            }
            _ if addr.is_empty() => {
                star = "0.0.0.0".to_string();
                &star
            }
            _ => match addr.strip_suffix(':') {
                Some(host) if one_colon && !host.is_empty() => {
                    star = host.to_string();
                    &star
                }
                _ => addr,
            },
        };
        let with_port = match (addr.rsplit_once(':'), addr.starts_with('[')) {
            (Some((_, port)), _)
                if port.parse::<u16>().is_ok()
                    && (addr.starts_with('[') || addr.matches(':').count() <= 1) =>
            {
                addr.clone()
            }
            (Some((host, off)), _)
                if (off.starts_with('+') || off.starts_with('-'))
                    && (addr.starts_with('[') || addr.matches(':').count() <= 1) =>
            {
                match off[1..].parse::<u16>() {
                    Ok(n) => {
                        let n = i32::from(n);
                        port_offset = Some(if off.starts_with('-') { -n } else { n });
                        format!("{host}:0")
                    }
                    Err(_) => {
                        return self.err(
                            l.line,
                            format!("server '{name}': invalid port offset '{off}' in '{addr}'"),
                        )
                    }
                }
            }
            (None, false) => {
                port_offset = Some(0);
                format!("{addr}:0")
            }
            _ => {
                return self.err(
                    l.line,
                    format!("server '{name}': '{addr}' needs an explicit port (ADDR:PORT)"),
                )
            }
        };
        // An SRV name's answers give the port.
        if addr.starts_with('_') && params.resolvers.is_some() {
            port_offset = None;
        }
        // HAProxy wants a port to check an address (a server at 0.0.0.0 is checked at
        // 0.0.0.0:0, which fails: it stays DOWN, L4CON).
        let no_host = with_port.starts_with("0.0.0.0:") || with_port.starts_with("[::]:");
        if port_offset.is_some() && params.check && params.port.is_none() && !no_host {
            return self.err(
                l.line,
                format!(
                    "backend '{}': server '{name}' has neither service port nor check port.",
                    p.name
                ),
            );
        }
        let Some((addr, dns, no_addr, last_addr)) =
            self.server_addr(l, p, name, &with_port, &params, template)
        else {
            return;
        };
        if let Some(q) = params.maxqueue {
            p.maxqueue = Some(p.maxqueue.map_or(q, |m| m.max(q)));
        }
        let server = Server {
            name: name.clone(),
            // Numbered at assembly, with the backend's other servers.
            id: 0,
            addr,
            weight: params.weight.unwrap_or(1),
            backup: params.backup,
            maxconn: params.maxconn,
            slowstart: params.slowstart.unwrap_or(Duration::ZERO),
            check: params.check,
            disabled: params.disabled,
            send_proxy: params.send_proxy,
            check_send_proxy: params.check_send_proxy,
            pool_purge_delay: params.pool_purge_delay,
            tls: self.load_server_ssl(l.line, name, &params.ssl),
            h2: params.h2,
            check_proto: params.check_proto,
            port_offset,
            check_port: params.port,
            check_addr: params.addr,
            shutdown_on_down: params.on_marked_down,
            shutdown_backups_on_up: params.on_marked_up,
            // HAProxy's defaults: 10 errors, then one failed check.
            passive: params.observe.map(|layer7| crate::config::Passive {
                layer7,
                limit: params.error_limit.unwrap_or(10),
                on_error: params.on_error.unwrap_or(crate::config::OnError::FailCheck),
            }),
            dns,
            no_addr,
            last_addr,
            dynamic: false,
            saved: None,
        };
        p.servers.push((l.line, server, params));
    }

    pub(super) fn server_params(&mut self, l: &Line, w: &[String], s: &mut ServerParams) {
        let mut i = 0;
        let num = |m: &mut Self, v: Option<&String>, what: &str, max: u64| -> Option<u64> {
            match v.and_then(|v| v.parse::<u64>().ok()) {
                Some(n) if n <= max => Some(n),
                _ => {
                    m.err(l.line, format!("'{what}' expects a number up to {max}"));
                    None
                }
            }
        };
        let time = |m: &mut Self, v: Option<&String>, what: &str| -> Option<Duration> {
            match v.map(|v| parse_time(v)) {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    m.err(l.line, format!("'{what}': {e}"));
                    None
                }
                None => {
                    m.err(l.line, format!("'{what}' expects a time"));
                    None
                }
            }
        };
        while i < w.len() {
            if let Some(n) = self.server_ssl_option(l, &w[i..], &mut s.ssl) {
                i += n;
                continue;
            }
            if let Some(n) = self.server_dns_option(l, &w[i..], s) {
                i += n;
                continue;
            }
            let v = w.get(i + 1);
            let mut takes_value = true;
            match w[i].as_str() {
                "check" => {
                    s.check = true;
                    takes_value = false;
                }
                "no-check" => {
                    s.check = false;
                    takes_value = false;
                }
                "backup" => {
                    s.backup = true;
                    takes_value = false;
                }
                "no-backup" => {
                    s.backup = false;
                    takes_value = false;
                }
                "disabled" => {
                    s.disabled = true;
                    takes_value = false;
                }
                "enabled" => {
                    s.disabled = false;
                    takes_value = false;
                }
                "inter" | "fastinter" | "downinter" => {
                    let d = time(self, v, &w[i]);
                    if d == Some(Duration::ZERO) {
                        self.err(l.line, format!("invalid value 0 for argument '{}'", w[i]));
                    }
                    match w[i].as_str() {
                        "inter" => s.inter = d,
                        "fastinter" => s.fastinter = d,
                        _ => s.downinter = d,
                    }
                }
                "slowstart" => s.slowstart = time(self, v, "slowstart"),
                "pool-purge-delay" => s.pool_purge_delay = time(self, v, "pool-purge-delay"),
                "rise" | "fall" => {
                    let n = num(self, v, &w[i], 1000);
                    if n == Some(0) {
                        self.err(l.line, format!("'{}' has to be > 0", w[i]));
                    }
                    let n = n.map(|n| n.max(1) as u32);
                    if w[i] == "rise" {
                        s.rise = n;
                    } else {
                        s.fall = n;
                    }
                }
                "weight" => s.weight = num(self, v, "weight", 256).map(|n| n as u32),
                "maxconn" => {
                    s.maxconn = num(self, v, "maxconn", u32::MAX as u64)
                        .and_then(|n| (n > 0).then_some(n as u32))
                }
                "maxqueue" => {
                    s.maxqueue = num(self, v, "maxqueue", u32::MAX as u64)
                        .and_then(|n| (n > 0).then_some(n as usize))
                }
                "error-limit" => {
                    s.error_limit = num(self, v, "error-limit", 1_000_000).map(|n| n as u32)
                }
                "port" => s.port = num(self, v, "port", 65535).map(|n| n as u16),
                "addr" => match v.map(|v| v.parse::<IpAddr>()) {
                    Some(Ok(ip)) => s.addr = Some(ip),
                    _ => self.err(l.line, "'addr' expects an IP address"),
                },
                "observe" => match v.map(String::as_str) {
                    Some("none") => s.observe = None,
                    Some("layer4") => s.observe = Some(false),
                    Some("layer7") => {
                        self.warn(
                            l.line,
                            "'observe layer7' counts failed connections and broken responses; \
                             5xx answers are not counted yet",
                        );
                        s.observe = Some(true)
                    }
                    _ => self.err(
                        l.line,
                        "'observe' expects one of 'none', 'layer4', 'layer7'",
                    ),
                },
                "on-error" => match v.map(String::as_str) {
                    Some("fastinter") => s.on_error = Some(crate::config::OnError::FastInter),
                    Some("fail-check") => s.on_error = Some(crate::config::OnError::FailCheck),
                    Some("sudden-death") => {
                        s.on_error = Some(crate::config::OnError::SuddenDeath)
                    }
                    Some("mark-down") => s.on_error = Some(crate::config::OnError::MarkDown),
                    _ => self.err(
                        l.line,
                        "'on-error' expects one of 'fastinter', 'fail-check', 'sudden-death' or 'mark-down'",
                    ),
                },
                "on-marked-down" => match v.map(String::as_str) {
                    Some("shutdown-sessions") => s.on_marked_down = true,
                    Some(other) => self.err(
                        l.line,
                        format!("'on-marked-down' expects 'shutdown-sessions' but got '{other}'"),
                    ),
                    None => self.err(
                        l.line,
                        "'on-marked-down' expects an action ('shutdown-sessions')",
                    ),
                },
                "on-marked-up" => match v.map(String::as_str) {
                    Some("shutdown-backup-sessions") => s.on_marked_up = true,
                    Some(other) => self.err(
                        l.line,
                        format!(
                            "'on-marked-up' expects 'shutdown-backup-sessions' but got '{other}'"
                        ),
                    ),
                    None => self.err(
                        l.line,
                        "'on-marked-up' expects an action ('shutdown-backup-sessions')",
                    ),
                },
                "id" => match v.map(|v| v.parse::<u32>()) {
                    Some(Ok(n)) if n > 0 => s.id = Some(n),
                    _ => self.err(l.line, "'id' expects a strictly positive integer"),
                },
                "cookie" => match v {
                    Some(c) => s.cookie = Some(c.clone()),
                    None => self.err(l.line, "'cookie' expects <value> as argument."),
                },
                "agent-port" | "agent-inter" | "pool-max-conn" => {
                    self.warn(l.line, format!("server option '{}' ignored", w[i]));
                }
                // HAProxy 2.6 counts reuses on HTTP/2 and FastCGI connections only
                // (mux_h2, mux_fcgi).
                "max-reuse" => self.warn(
                    l.line,
                    "server option 'max-reuse' ignored: HAProxy 2.6 applies it to HTTP/2 and FastCGI server connections only (HAProxy ignores it on HTTP/1 ones too); a 'proto h2' connection of ringlb serves streams until the server ends it",
                ),
                // HAProxy 2.6's multiplexers for HTTP servers ("fcgi" needs a
                // `fcgi-app`, which ringlb does not have).
                "proto" => match v.map(String::as_str) {
                    Some("h2") => s.h2 = true,
                    Some("h1") => s.h2 = false,
                    Some(other) => self.err(
                        l.line,
                        format!("'proto' : unknown MUX protocol '{other}' (ringlb speaks 'h1' and 'h2' to servers)"),
                    ),
                    None => self.err(l.line, "'proto' expects a protocol name ('h1' or 'h2')"),
                },
                "check-proto" => match v.map(|v| crate::config::CheckProto::parse(v)) {
                    Some(Ok(p)) => s.check_proto = Some(p),
                    Some(Err(e)) => self.err(l.line, format!("'check-proto' : {e}")),
                    None => self.err(l.line, "'check-proto' : missing value."),
                },
                "send-proxy" => {
                    s.send_proxy = Some(crate::proxy_protocol::Version::V1);
                    takes_value = false;
                }
                "send-proxy-v2" => {
                    s.send_proxy = Some(crate::proxy_protocol::Version::V2);
                    takes_value = false;
                }
                "no-send-proxy" | "no-send-proxy-v2" => {
                    s.send_proxy = None;
                    takes_value = false;
                }
                "check-send-proxy" => {
                    s.check_send_proxy = true;
                    takes_value = false;
                }
                "agent-check" | "track" | "redir" => {
                    self.err(
                        l.line,
                        format!("server option '{}' is not supported yet", w[i]),
                    );
                    takes_value = w[i] != "agent-check";
                }
                other => {
                    self.err(l.line, format!("unknown server option '{other}'"));
                    return;
                }
            }
            i += if takes_value { 2 } else { 1 };
        }
    }
}
