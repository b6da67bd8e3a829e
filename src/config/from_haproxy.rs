//! haproxy.cfg → the validated model. The grammar layer (`haproxy`) gives sections of
//! line-numbered words; this maps the keywords of the common subset onto the same
//! `Config` the TOML reader builds. Every problem is reported at once with its line:
//! an error for what would change behaviour if ignored (HAProxy refuses unknown
//! keywords too), a warning for what is safe to ignore.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::haproxy::{parse_document, parse_time, Document, Line, SectionKind};
use super::validate::{parse_bind, resolve_addr};
use super::{
    default_timeouts, usable_cores, Acl, AclTest, Admin, Backend, BalanceAlgo, CheckKind,
    Condition, Config, ConfigErrors, DriverChoice, Fetch, Frontend, HashKey, HealthCheck, Limits,
    MatchMethod, Mode, PoolSettings, Route, Runtime, Server, StatusMatch, Timeouts,
};
use super::{syslog_facility, LogFormat, LogSink, LogTarget, RequestAction, RequestRule, Service};

/// HAProxy's default `balance` is `roundrobin` through 3.2 (3.3 switched to `random`);
/// ringlb emulates 2.6, so `roundrobin`.
pub const DEFAULT_BALANCE: BalanceAlgo = BalanceAlgo::RoundRobin;

/// Parses haproxy.cfg text: the config, and the warnings about what was ignored.
pub fn from_haproxy_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<String>), ConfigErrors> {
    let doc = parse_document(text, env)
        .map_err(|errs| ConfigErrors(errs.iter().map(|e| e.to_string()).collect()))?;
    let mut m = Mapper::default();
    for w in &doc.warnings {
        m.warnings.push(w.to_string());
    }
    let cfg = m.map(&doc);
    if m.errors.is_empty() {
        Ok((cfg, m.warnings))
    } else {
        Err(ConfigErrors(m.errors))
    }
}

#[derive(Default)]
struct Mapper {
    errors: Vec<String>,
    warnings: Vec<String>,
}

/// Settings a proxy takes from its `defaults` section (and `default-server`).
#[derive(Clone)]
struct Settings {
    mode: Mode,
    timeouts: Timeouts,
    check_timeout: Option<Duration>,
    retries: u32,
    redispatch: bool,
    all_backups: bool,
    forward_for: Option<super::ForwardFor>,
    balance: BalanceAlgo,
    consistent: bool,
    httpchk: Option<(String, String, Option<String>)>,
    expect: StatusMatch,
    server: ServerParams,
    /// `log global` (or a log target) seen: this proxy's traffic is logged.
    log: bool,
    log_format: Option<LogFormat>,
    dont_log_null: bool,
    stats: StatsSettings,
    close: Close,
}

/// `option http-keep-alive` (default), `http-server-close`, `httpclose`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Close {
    #[default]
    KeepAlive,
    /// Close the server connection after each response.
    Server,
    /// Close both sides after each response.
    Both,
}

/// `stats enable|uri|refresh|auth|realm|hide-version`.
#[derive(Clone, Default)]
struct StatsSettings {
    enabled: bool,
    uri: Option<String>,
    refresh: Option<u64>,
    auth: Vec<String>,
    realm: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Tcp,
            timeouts: default_timeouts(),
            check_timeout: None,
            retries: 3,
            redispatch: false,
            all_backups: false,
            forward_for: None,
            balance: DEFAULT_BALANCE,
            consistent: false,
            httpchk: None,
            expect: StatusMatch::Default,
            server: ServerParams::default(),
            log: false,
            log_format: None,
            dont_log_null: false,
            stats: StatsSettings::default(),
            close: Close::KeepAlive,
        }
    }
}

/// `server` / `default-server` parameters.
#[derive(Clone, Default)]
struct ServerParams {
    check: bool,
    inter: Option<Duration>,
    fastinter: Option<Duration>,
    downinter: Option<Duration>,
    rise: Option<u32>,
    fall: Option<u32>,
    weight: Option<u32>,
    backup: bool,
    maxconn: Option<u32>,
    maxqueue: Option<usize>,
    slowstart: Option<Duration>,
    port: Option<u16>,
    addr: Option<IpAddr>,
    disabled: bool,
    error_limit: Option<u32>,
    send_proxy: Option<crate::proxy_protocol::Version>,
    check_send_proxy: bool,
}

/// A proxy being built (a `listen` is both halves).
struct Proxy {
    name: String,
    line: usize,
    kind: SectionKind,
    settings: Settings,
    binds: Vec<SocketAddr>,
    acls: HashMap<String, Arc<Acl>>,
    rules: Vec<(usize, Condition, String)>,
    default_backend: Option<(usize, String)>,
    servers: Vec<(usize, Server, ServerParams)>,
    maxqueue: Option<usize>,
    /// A `bind` line was seen (even one with errors).
    has_bind_line: bool,
    bind_lines: usize,
    accept_proxy_binds: usize,
    request_rules: Vec<RequestRule>,
    maxconn: Option<u32>,
}

impl Mapper {
    fn err(&mut self, line: usize, msg: impl std::fmt::Display) {
        self.errors.push(format!("line {line}: {msg}"));
    }

    fn warn(&mut self, line: usize, msg: impl std::fmt::Display) {
        self.warnings.push(format!("line {line}: {msg}"));
    }

    fn map(&mut self, doc: &Document) -> Config {
        let mut runtime = Runtime {
            shards: usable_cores(),
            driver: DriverChoice::Auto,
            cpus: None,
            pidfile: None,
            maxconn: None,
        };
        let mut admin = Admin::default();
        let mut log: Option<LogTarget> = None;
        let mut cpu_map: Vec<(usize, usize)> = Vec::new();
        // Settings of each defaults section, by section index.
        let mut defaults: HashMap<usize, Settings> = HashMap::new();
        let mut proxies: Vec<Proxy> = Vec::new();
        for (i, sec) in doc.sections.iter().enumerate() {
            match &sec.kind {
                SectionKind::Global => {
                    for l in &sec.lines {
                        self.global(l, &mut runtime, &mut admin, &mut cpu_map, &mut log);
                    }
                }
                SectionKind::Defaults => {
                    let mut s = doc
                        .defaults_of(i)
                        .and_then(|d| defaults.get(&d).cloned())
                        .unwrap_or_default();
                    let mut scratch =
                        Proxy::new("defaults", sec.line, SectionKind::Defaults, s.clone());
                    for l in &sec.lines {
                        self.proxy_line(l, &mut scratch);
                    }
                    s = scratch.settings;
                    defaults.insert(i, s);
                }
                SectionKind::Other(kw) => {
                    self.err(
                        sec.line,
                        format!("section '{kw}' is not supported by ringlb"),
                    );
                }
                kind => {
                    let settings = doc
                        .defaults_of(i)
                        .and_then(|d| defaults.get(&d).cloned())
                        .unwrap_or_default();
                    let name = sec.name.clone().unwrap_or_default();
                    let mut p = Proxy::new(&name, sec.line, kind.clone(), settings);
                    for l in &sec.lines {
                        self.proxy_line(l, &mut p);
                    }
                    proxies.push(p);
                }
            }
        }
        if !cpu_map.is_empty() {
            cpu_map.sort();
            let mut cpus = vec![None; runtime.shards];
            for (thread, cpu) in cpu_map {
                if thread < cpus.len() {
                    cpus[thread] = Some(cpu);
                }
            }
            let first = cpus.iter().flatten().next().copied().unwrap_or(0);
            runtime.cpus = Some(cpus.into_iter().map(|c| c.unwrap_or(first)).collect());
        }
        self.assemble(runtime, admin, log, proxies)
    }

    /// `log TARGET [len N] [format F] FACILITY [LEVEL [MINLEVEL]]`.
    fn global_log(&mut self, l: &Line, log: &mut Option<LogTarget>) {
        let a = l.args();
        let Some(target) = a.first() else {
            return self.err(l.line, "'log' expects a target");
        };
        let sink = match target.as_str() {
            "stdout" => LogSink::Stdout,
            "stderr" => LogSink::Stderr,
            t => {
                let t = t
                    .strip_prefix("udp@")
                    .or_else(|| t.strip_prefix("udp4@"))
                    .unwrap_or(t);
                let with_port = if t.contains(':') {
                    t.to_string()
                } else {
                    format!("{t}:514")
                };
                match with_port.parse::<SocketAddr>() {
                    Ok(addr) => LogSink::Udp(addr),
                    Err(_) => {
                        return self.err(
                            l.line,
                            format!("log target '{target}' is not supported (stdout, stderr or an IP[:PORT] for UDP syslog)"),
                        )
                    }
                }
            }
        };
        let mut raw = !matches!(sink, LogSink::Udp(_));
        let mut facility = None;
        let mut i = 1;
        while i < a.len() {
            match a[i].as_str() {
                "len" | "sample" => i += 1,
                "format" => {
                    raw = a.get(i + 1).map(String::as_str) == Some("raw");
                    i += 1;
                }
                f if facility.is_none() => match syslog_facility(f) {
                    Some(n) => facility = Some(n),
                    None => return self.err(l.line, format!("unknown log facility '{f}'")),
                },
                _ => {}
            }
            i += 1;
        }
        let Some(facility) = facility else {
            return self.err(l.line, "'log' expects a facility (local0, daemon, ...)");
        };
        if log.is_some() {
            self.warn(
                l.line,
                "several global log targets: ringlb uses the first one",
            );
            return;
        }
        *log = Some(LogTarget {
            sink,
            facility,
            raw,
        });
    }

    fn global(
        &mut self,
        l: &Line,
        runtime: &mut Runtime,
        admin: &mut Admin,
        cpu_map: &mut Vec<(usize, usize)>,
        log: &mut Option<LogTarget>,
    ) {
        let a = l.args();
        match l.keyword() {
            "nbthread" => match a.first().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if (1..=1024).contains(&n) => runtime.shards = n,
                _ => self.err(l.line, "'nbthread' expects a number between 1 and 1024"),
            },
            "cpu-map" => self.cpu_map(l, cpu_map),
            "stats" => match a.first().map(String::as_str) {
                Some("socket") => match a.get(1) {
                    Some(path) if !path.contains('@') && !path.contains(':') => {
                        admin.stats_socket = Some(path.into());
                        let mut rest = a[2..].iter();
                        while let Some(opt) = rest.next() {
                            match opt.as_str() {
                                "mode" | "level" | "user" | "group" | "uid" | "gid" => {
                                    rest.next();
                                }
                                "expose-fd" => {
                                    rest.next();
                                }
                                other => self
                                    .warn(l.line, format!("stats socket option '{other}' ignored")),
                            }
                        }
                    }
                    Some(addr) => self.err(
                        l.line,
                        format!("stats socket '{addr}': only unix socket paths are supported"),
                    ),
                    None => self.err(l.line, "'stats socket' expects a path"),
                },
                Some("timeout") | Some("maxconn") | Some("bind-process") => {
                    self.warn(l.line, format!("'stats {}' ignored", a[0]))
                }
                _ => self.err(l.line, "unknown 'stats' keyword in 'global' section"),
            },
            "pidfile" => match a.first() {
                Some(p) => runtime.pidfile = Some(p.into()),
                None => self.err(l.line, "'pidfile' expects a file name"),
            },
            "maxconn" => match a.first().and_then(|n| n.parse::<u32>().ok()) {
                Some(0) => runtime.maxconn = None,
                Some(n) => runtime.maxconn = Some(n),
                None => self.err(l.line, "'maxconn' expects an integer"),
            },
            "log" => self.global_log(l, log),
            "log-send-hostname" | "log-tag" => {
                self.warn(l.line, format!("'{}' ignored", l.keyword()))
            }
            "daemon" => self.warn(
                l.line,
                "'daemon' ignored: ringlb runs in the foreground (use systemd)",
            ),
            "user"
            | "group"
            | "uid"
            | "gid"
            | "chroot"
            | "node"
            | "description"
            | "master-worker"
            | "hard-stop-after"
            | "ca-base"
            | "crt-base"
            | "spread-checks"
            | "localpeer"
            | "h1-case-adjust"
            | "set-dumpable"
            | "strict-limits"
            | "ulimit-n"
            | "quiet"
            | "zero-warning"
            | "expose-experimental-directives"
            | "insecure-fork-wanted"
            | "server-state-file"
            | "server-state-base" => self.warn(l.line, format!("'{}' ignored", l.keyword())),
            k if k.starts_with("tune.") || k.starts_with("ssl-") || k.starts_with("nbthread-") => {
                self.warn(l.line, format!("'{k}' ignored"))
            }
            "nbproc" => self.err(
                l.line,
                "'nbproc' was removed in HAProxy 2.5: use 'nbthread'",
            ),
            k => self.err(l.line, format!("unknown keyword '{k}' in 'global' section")),
        }
    }

    /// `cpu-map [auto:]1[/THREADS] CPUS` (process 1 only, as HAProxy 2.5+ does).
    fn cpu_map(&mut self, l: &Line, out: &mut Vec<(usize, usize)>) {
        let a = l.args();
        let (Some(set), Some(cpus)) = (a.first(), a.get(1)) else {
            return self.err(l.line, "'cpu-map' expects <process[/thread]> <cpu-set>");
        };
        let (auto, set) = match set.strip_prefix("auto:") {
            Some(s) => (true, s),
            None => (false, set.as_str()),
        };
        let threads = match set.split_once('/') {
            Some((p, t)) if p == "1" || p == "all" || p == "odd" => t,
            Some(_) => return self.err(l.line, "'cpu-map': only process 1 exists"),
            None if auto => "1",
            None => set,
        };
        let (Some(threads), Some(cpus)) = (range_list(threads), range_list(cpus)) else {
            return self.err(l.line, format!("'cpu-map': invalid set in '{set} {cpus}'"));
        };
        if auto || threads.len() == cpus.len() {
            for (t, c) in threads.iter().zip(cpus.iter()) {
                out.push((t.saturating_sub(1), *c));
            }
        } else if cpus.len() == 1 {
            for t in threads {
                out.push((t.saturating_sub(1), cpus[0]));
            }
        } else {
            self.err(
                l.line,
                "'cpu-map': a thread set needs one cpu each, or use 'auto:'",
            );
        }
    }

    fn proxy_line(&mut self, l: &Line, p: &mut Proxy) {
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
            "hash-type" if be => match arg(0) {
                "map-based" => p.settings.consistent = false,
                "consistent" => p.settings.consistent = true,
                other => self.err(
                    l.line,
                    format!("'hash-type' expects 'map-based' or 'consistent', got '{other}'"),
                ),
            },
            "http-check" if be => self.http_check(l, &mut p.settings),
            "default-server" if be => {
                let mut params = p.settings.server.clone();
                self.server_params(l, a, &mut params);
                p.settings.server = params;
            }
            "http-reuse" if be => match arg(0) {
                "safe" | "aggressive" | "always" => {}
                "never" => self.warn(
                    l.line,
                    "'http-reuse never' ignored: ringlb pools idle server connections per shard",
                ),
                other => self.err(
                    l.line,
                    format!("'http-reuse' expects never|safe|aggressive|always, got '{other}'"),
                ),
            },
            "log" => match a.first().map(String::as_str) {
                Some("global") => p.settings.log = true,
                Some(_) => {
                    p.settings.log = true;
                    self.warn(l.line, "per-proxy log targets are not supported: this proxy logs to the global target");
                }
                None => self.err(l.line, "'log' expects 'global' or a target"),
            },
            "maxconn" if fe && !is_defaults => match arg(0).parse::<u32>() {
                Ok(n) => p.maxconn = (n > 0).then_some(n),
                Err(_) => self.err(l.line, "'maxconn' expects an integer"),
            },
            "maxconn" | "fullconn" | "backlog" => {
                self.warn(l.line, format!("'{kw}' is not enforced here"))
            }
            "stats" => self.stats(l, &mut p.settings),
            "description" | "id" | "disabled" | "enabled" | "errorfile" | "email-alert"
            | "monitor-net" => self.warn(l.line, format!("'{kw}' ignored")),
            "bind" if fe && !is_defaults => self.bind(l, p),
            "acl" if fe && !is_defaults => self.acl(l, p),
            "default_backend" if fe => match a.first() {
                Some(b) => p.default_backend = Some((l.line, b.clone())),
                None => self.err(l.line, "'default_backend' expects a backend name"),
            },
            "use_backend" if fe && !is_defaults => self.use_backend(l, p),
            "http-request" if fe && !is_defaults => self.http_request(l, l.args(), p),
            "redirect" if fe && !is_defaults => {
                let mut words = vec!["redirect".to_string()];
                words.extend(l.args().iter().cloned());
                self.http_request(l, &words, p)
            }
            "server" if be && !is_defaults => self.server(l, p),
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
            "http-response"
            | "http-after-response"
            | "tcp-request"
            | "tcp-response"
            | "compression"
            | "cookie"
            | "stick-table"
            | "stick"
            | "capture"
            | "unique-id-format"
            | "unique-id-header"
            | "filter"
            | "http-error"
            | "errorloc"
            | "errorloc302"
            | "errorloc303"
            | "monitor-uri"
            | "monitor"
            | "source"
            | "dispatch"
            | "server-template"
            | "persist"
            | "force-persist"
            | "ignore-persist"
            | "use-server"
            | "rate-limit" => self.err(l.line, format!("'{kw}' is not supported by ringlb yet")),
            _ if is_defaults && matches!(kw, "bind" | "acl" | "use_backend" | "server") => self
                .err(
                    l.line,
                    format!("'{kw}' is not allowed in a 'defaults' section"),
                ),
            _ if !fe && matches!(kw, "bind" | "acl" | "use_backend" | "default_backend") => self
                .err(
                    l.line,
                    format!("'{kw}' is not allowed in a 'backend' section"),
                ),
            _ if !be
                && matches!(
                    kw,
                    "server"
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

    fn timeout(&mut self, l: &Line, s: &mut Settings) {
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
            "tunnel" | "client-fin" | "server-fin" | "tarpit" => self.warn(
                l.line,
                format!("'timeout {kind}' ignored: not supported yet"),
            ),
            other => self.err(l.line, format!("unknown timeout '{other}'")),
        }
    }

    fn option(&mut self, l: &Line, p: &mut Proxy) {
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
            "redispatch" => s.redispatch = !negate,
            "allbackups" => s.all_backups = !negate,
            "forwardfor" if negate => s.forward_for = None,
            "forwardfor" => {
                let mut ff = super::ForwardFor::default();
                let mut i = 0;
                while i < rest.len() {
                    match (rest[i].as_str(), rest.get(i + 1)) {
                        ("except", Some(net)) => match super::acl::parse_net(net) {
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
            "httplog" => s.log_format = (!negate).then_some(LogFormat::Http),
            "tcplog" => s.log_format = (!negate).then_some(LogFormat::Tcp),
            "dontlognull" => s.dont_log_null = !negate,
            "log-health-checks" | "log-separate-errors" | "httpslog" | "dontlog-normal" => {
                self.warn(l.line, format!("'option {opt}' ignored"))
            }
            "tcpka" | "clitcpka" | "srvtcpka" | "splice-auto" | "splice-request" | "splice-response" | "abortonclose"
            | "http-buffer-request" | "contstats" | "socket-stats" | "prefer-last-server" | "http-no-delay" => {
                self.warn(l.line, format!("'option {opt}' ignored"))
            }
            "httpchk" if negate => s.httpchk = None,
            "httpchk" => {
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
            "tcp-check" | "ssl-hello-chk" | "mysql-check" | "pgsql-check" | "redis-check" | "smtpchk" | "ldap-check"
            | "spop-check" => self.err(l.line, format!("'option {opt}' is not supported yet (use 'check' for a TCP connect check or 'option httpchk')")),
            "independent-streams" | "independant-streams" | "accept-invalid-http-request" | "accept-invalid-http-response" => {
                self.err(l.line, format!("'option {opt}' is not supported"))
            }
            other => self.err(l.line, format!("unknown option '{other}'")),
        }
    }

    fn balance(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        let Some(algo) = a.first() else {
            return self.err(l.line, "'balance' expects an algorithm");
        };
        s.balance = match algo.as_str() {
            "roundrobin" => BalanceAlgo::RoundRobin,
            "static-rr" => BalanceAlgo::StaticRr,
            "leastconn" => BalanceAlgo::LeastConn,
            "first" => BalanceAlgo::First,
            "source" => BalanceAlgo::Hash {
                key: HashKey::Source,
                consistent: false,
            },
            "uri" => {
                let whole = a[1..].iter().any(|w| w == "whole");
                let key = if whole { HashKey::Uri } else { HashKey::Path };
                BalanceAlgo::Hash {
                    key,
                    consistent: false,
                }
            }
            "url_param" => match a.get(1) {
                Some(name) => BalanceAlgo::Hash {
                    key: HashKey::UrlParam(name.clone()),
                    consistent: false,
                },
                None => return self.err(l.line, "'balance url_param' expects a parameter name"),
            },
            a0 if a0.starts_with("hdr(") && a0.ends_with(')') && a0.len() > 5 => {
                BalanceAlgo::Hash {
                    key: HashKey::Header(a0[4..a0.len() - 1].to_ascii_lowercase()),
                    consistent: false,
                }
            }
            a0 if a0 == "random" || a0.starts_with("random(") => {
                let draws = match a0.strip_prefix("random(").and_then(|r| r.strip_suffix(')')) {
                    Some(n) => match n.parse::<u32>() {
                        Ok(d) if (1..=16).contains(&d) => d,
                        _ => {
                            return self.err(
                                l.line,
                                format!("'balance {a0}': draws must be between 1 and 16"),
                            )
                        }
                    },
                    None => 2,
                };
                BalanceAlgo::Random { draws }
            }
            other => return self.err(l.line, format!("unknown balance algorithm '{other}'")),
        };
    }

    fn http_check(&mut self, l: &Line, s: &mut Settings) {
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
            Some("disable-on-404") | Some("send-state") => {
                self.warn(l.line, format!("'http-check {}' ignored", a[0]))
            }
            Some(other) => self.err(l.line, format!("'http-check {other}' is not supported yet")),
            None => self.err(l.line, "'http-check' expects send or expect"),
        }
    }

    fn bind(&mut self, l: &Line, p: &mut Proxy) {
        p.has_bind_line = true;
        p.bind_lines += 1;
        let a = l.args();
        let Some(addrs) = a.first() else {
            return self.err(l.line, "'bind' expects an address");
        };
        let mut rest = a[1..].iter();
        while let Some(opt) = rest.next() {
            match opt.as_str() {
                "ssl" | "crt" | "crt-list" | "ca-file" | "verify" | "alpn" | "npn" | "ciphers"
                | "ciphersuites" | "ssl-min-ver" | "ssl-max-ver" | "strict-sni" => {
                    return self.err(
                        l.line,
                        "TLS termination is not yet supported by ringlb ('ssl'/'crt' on a bind)",
                    );
                }
                "accept-proxy" => p.accept_proxy_binds += 1,
                "maxconn" => match rest.next().and_then(|n| n.parse::<u32>().ok()) {
                    // Per bind in HAProxy; ringlb applies the smallest to the frontend.
                    Some(n) if n > 0 => p.maxconn = Some(p.maxconn.map_or(n, |m| m.min(n))),
                    _ => return self.err(l.line, "bind 'maxconn' expects a positive integer"),
                },
                "name" | "id" | "process" | "thread" | "backlog" | "nice" | "mode" | "user"
                | "group" | "uid" | "gid" | "interface" | "mss" | "tcp-ut" => {
                    if !matches!(opt.as_str(), "name" | "id") {
                        self.warn(l.line, format!("bind option '{opt}' ignored"));
                    }
                    rest.next();
                }
                "transparent" | "v4v6" | "v6only" | "defer-accept" | "tfo" | "reuseport"
                | "no-reuseport" => self.warn(l.line, format!("bind option '{opt}' ignored")),
                other => return self.err(l.line, format!("unknown bind option '{other}'")),
            }
        }
        for part in addrs.split(',') {
            if part.contains('@') || part.starts_with('/') {
                self.err(
                    l.line,
                    format!("bind '{part}': only IPv4/IPv6 addresses are supported"),
                );
                continue;
            }
            let (host, ports) = match part.rsplit_once(':') {
                Some(x) => x,
                None => {
                    self.err(l.line, format!("bind '{part}': missing port"));
                    continue;
                }
            };
            let host = match host {
                "" | "*" | "0.0.0.0" => "0.0.0.0".to_string(),
                "::" | "[::]" => "[::]".to_string(),
                h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                h => h.to_string(),
            };
            let Some(ports) = range_list(ports).filter(|p| p.len() <= 1024) else {
                self.err(l.line, format!("bind '{part}': invalid port"));
                continue;
            };
            for port in ports {
                match parse_bind(&format!("{host}:{port}")) {
                    Ok(a) => p.binds.push(a),
                    Err(e) => self.err(l.line, e),
                }
            }
        }
    }

    fn acl(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let Some(name) = a.first() else {
            return self.err(l.line, "'acl' expects a name and a criterion");
        };
        if name
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "_-.:".contains(c)))
        {
            return self.err(l.line, format!("invalid ACL name '{name}'"));
        }
        if let Some(test) = self.acl_test(l.line, &a[1..]) {
            let entry = p.acls.entry(name.clone()).or_insert_with(|| {
                Arc::new(Acl {
                    name: name.clone(),
                    tests: Vec::new(),
                })
            });
            // Several lines with one name are ORed.
            Arc::make_mut(entry).tests.push(test);
        }
    }

    /// `CRITERION [FLAGS] PATTERN...` → one test.
    fn acl_test(&mut self, line: usize, w: &[String]) -> Option<AclTest> {
        let Some(criterion) = w.first() else {
            self.err(line, "missing ACL criterion");
            return None;
        };
        let (base, arg) = match criterion.split_once('(') {
            Some((b, rest)) => match rest.strip_suffix(')') {
                Some(arg) => (b, Some(arg)),
                None => {
                    self.err(line, format!("invalid criterion '{criterion}'"));
                    return None;
                }
            },
            None => (criterion.as_str(), None),
        };
        let base = base.strip_prefix("req.").unwrap_or(base);
        let header = |arg: Option<&str>| arg.map(|h| h.to_ascii_lowercase());
        let (fetch, mut method) = match base {
            "path" => (Fetch::Path, MatchMethod::Str),
            "path_beg" => (Fetch::Path, MatchMethod::Beg),
            "path_end" => (Fetch::Path, MatchMethod::End),
            "path_sub" => (Fetch::Path, MatchMethod::Sub),
            "path_reg" => (Fetch::Path, MatchMethod::Reg),
            "path_dom" => (Fetch::Path, MatchMethod::Dom),
            "url" => (Fetch::Url, MatchMethod::Str),
            "url_beg" => (Fetch::Url, MatchMethod::Beg),
            "url_end" => (Fetch::Url, MatchMethod::End),
            "url_sub" => (Fetch::Url, MatchMethod::Sub),
            "url_reg" => (Fetch::Url, MatchMethod::Reg),
            "method" => (Fetch::Method, MatchMethod::Str),
            "src" => (Fetch::Src, MatchMethod::Ip),
            "hdr" | "hdr_beg" | "hdr_end" | "hdr_sub" | "hdr_reg" | "hdr_dom" => {
                let Some(h) = header(arg) else {
                    self.err(line, format!("'{base}' needs a header name: {base}(name)"));
                    return None;
                };
                let m = match base {
                    "hdr" => MatchMethod::Str,
                    "hdr_beg" => MatchMethod::Beg,
                    "hdr_end" => MatchMethod::End,
                    "hdr_sub" => MatchMethod::Sub,
                    "hdr_reg" => MatchMethod::Reg,
                    _ => MatchMethod::Dom,
                };
                (Fetch::Header(h), m)
            }
            other => {
                self.err(
                    line,
                    format!("ACL criterion '{other}' is not supported yet"),
                );
                return None;
            }
        };
        let mut ignore_case = false;
        let mut i = 1;
        while i < w.len() && w[i].starts_with('-') {
            match w[i].as_str() {
                "-i" => ignore_case = true,
                "-m" => {
                    i += 1;
                    method = match w.get(i).map(String::as_str) {
                        Some("str") => MatchMethod::Str,
                        Some("beg") => MatchMethod::Beg,
                        Some("end") => MatchMethod::End,
                        Some("sub") => MatchMethod::Sub,
                        Some("reg") => MatchMethod::Reg,
                        Some("dom") => MatchMethod::Dom,
                        Some("ip") => MatchMethod::Ip,
                        Some("found") => MatchMethod::Found,
                        other => {
                            self.err(
                                line,
                                format!("'-m {}': unsupported match method", other.unwrap_or("")),
                            );
                            return None;
                        }
                    };
                }
                "--" => {
                    i += 1;
                    break;
                }
                "-f" => {
                    self.err(line, "ACL pattern files ('-f') are not supported yet");
                    return None;
                }
                "-n" | "-u" => {}
                // As HAProxy: a pattern starting with '-' must come after '--'.
                other => {
                    self.err(
                        line,
                        format!("'{other}' is not a valid ACL option. Please use '--' before any pattern beginning with a '-'"),
                    );
                    return None;
                }
            }
            i += 1;
        }
        let patterns: Vec<&str> = w[i..].iter().map(String::as_str).collect();
        if patterns.is_empty() && method != MatchMethod::Found {
            self.err(line, format!("ACL '{criterion}' has no pattern"));
            return None;
        }
        match AclTest::new(fetch, method, ignore_case, &patterns) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(line, e);
                None
            }
        }
    }

    fn use_backend(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let Some(name) = a.first() else {
            return self.err(l.line, "'use_backend' expects a backend name");
        };
        if name.contains("%[") {
            return self.err(
                l.line,
                "dynamic backend names ('%[...]') are not supported yet",
            );
        }
        let cond = match a.get(1).map(String::as_str) {
            None => Condition::Always,
            Some(kw @ ("if" | "unless")) => match self.condition(l.line, &a[2..], p) {
                Some(c) if kw == "unless" => Condition::Not(Box::new(c)),
                Some(c) => c,
                None => return,
            },
            Some(other) => {
                return self.err(
                    l.line,
                    format!("'use_backend': expected 'if' or 'unless', got '{other}'"),
                )
            }
        };
        p.rules.push((l.line, cond, name.clone()));
    }

    fn stats(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        let arg = a.get(1).cloned();
        match a.first().map(String::as_str) {
            Some("enable") => s.stats.enabled = true,
            Some("disable") => s.stats.enabled = false,
            Some("uri") => match arg {
                Some(u) if u.starts_with('/') => {
                    s.stats.enabled = true;
                    s.stats.uri = Some(u);
                }
                _ => self.err(l.line, "'stats uri' expects a URI prefix starting with '/'"),
            },
            Some("refresh") => match arg.map(|t| parse_time(&t)) {
                Some(Ok(d)) => {
                    s.stats.enabled = true;
                    s.stats.refresh = Some(d.as_secs().max(1));
                }
                _ => self.err(l.line, "'stats refresh' expects a time"),
            },
            Some("auth") => match arg {
                Some(up) if up.contains(':') => {
                    use base64::Engine;
                    s.stats.enabled = true;
                    s.stats.auth.push(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(up)
                    ));
                }
                _ => self.err(l.line, "'stats auth' expects <user>:<password>"),
            },
            Some("realm") => match arg {
                Some(r) => s.stats.realm = Some(r),
                None => self.err(l.line, "'stats realm' expects a realm"),
            },
            Some("hide-version") | Some("show-legends") | Some("show-node") | Some("show-desc") => {
            }
            Some("admin") | Some("http-request") | Some("scope") | Some("bind-process")
            | Some("maxconn") | Some("timeout") => {
                self.warn(l.line, format!("'stats {}' ignored", a[0]))
            }
            Some(other) => self.err(l.line, format!("unknown 'stats' keyword '{other}'")),
            None => self.err(l.line, "'stats' expects a keyword"),
        }
    }

    /// `http-request ACTION ARGS [if|unless COND]` (and `redirect ...`, which is the
    /// same as `http-request redirect ...`).
    fn http_request(&mut self, l: &Line, w: &[String], p: &mut Proxy) {
        let Some(action) = w.first() else {
            return self.err(l.line, "'http-request' expects an action");
        };
        // Split off the condition.
        let cut = w
            .iter()
            .position(|x| x == "if" || x == "unless")
            .unwrap_or(w.len());
        let args: Vec<&str> = w[1..cut].iter().map(String::as_str).collect();
        let cond = if cut < w.len() {
            match self.condition(l.line, &w[cut + 1..], p) {
                Some(c) if w[cut] == "unless" => Condition::Not(Box::new(c)),
                Some(c) => c,
                None => return,
            }
        } else {
            Condition::Always
        };
        if args.iter().any(|a| a.contains("%[") || a.contains("%{")) {
            return self.err(
                l.line,
                "log-format expressions (%[...]) in http-request values are not supported yet",
            );
        }
        let act = match (action.as_str(), args.as_slice()) {
            ("set-header", [name, value]) => {
                RequestAction::SetHeader(name.to_string(), value.to_string())
            }
            ("add-header", [name, value]) => {
                RequestAction::AddHeader(name.to_string(), value.to_string())
            }
            ("del-header", [name]) => RequestAction::DelHeader(name.to_string()),
            ("del-header", [name, "-m", "str"]) => RequestAction::DelHeader(name.to_string()),
            ("deny" | "tarpit", rest) => {
                let status = match rest {
                    [] => 403,
                    ["deny_status", n] => match n.parse::<u16>() {
                        Ok(s) if (200..600).contains(&s) => s,
                        _ => return self.err(l.line, format!("invalid deny_status '{n}'")),
                    },
                    _ => {
                        return self.err(
                            l.line,
                            format!(
                                "'http-request deny {}' is not supported yet",
                                rest.join(" ")
                            ),
                        )
                    }
                };
                let body = format!("<html><body><h1>{status} Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n");
                RequestAction::respond(status, "text/html", &body, "")
            }
            ("return", rest) => {
                let (mut status, mut ctype, mut body) =
                    (200u16, "text/plain".to_string(), String::new());
                let mut i = 0;
                while i < rest.len() {
                    let v = rest.get(i + 1).copied().unwrap_or("");
                    match rest[i] {
                        "status" => match v.parse::<u16>() {
                            Ok(s) if (200..600).contains(&s) => status = s,
                            _ => return self.err(l.line, format!("invalid return status '{v}'")),
                        },
                        "content-type" => ctype = v.to_string(),
                        "string" => body = v.to_string(),
                        "lf-string" | "file" | "lf-file" | "errorfile" | "errorfiles" | "hdr" => {
                            return self.err(
                                l.line,
                                format!(
                                    "'http-request return ... {}' is not supported yet",
                                    rest[i]
                                ),
                            )
                        }
                        other => {
                            return self.err(
                                l.line,
                                format!("'http-request return': unknown argument '{other}'"),
                            )
                        }
                    }
                    i += 2;
                }
                RequestAction::respond(status, &ctype, &body, "")
            }
            ("redirect", rest) => {
                let (Some(kind), Some(target)) = (rest.first(), rest.get(1)) else {
                    return self.err(
                        l.line,
                        "'redirect' expects location|prefix|scheme and a target",
                    );
                };
                let mut code = 302u16;
                let mut i = 2;
                while i < rest.len() {
                    match rest[i] {
                        "code" => match rest.get(i + 1).and_then(|c| c.parse::<u16>().ok()) {
                            Some(c @ (301 | 302 | 303 | 307 | 308)) => code = c,
                            _ => {
                                return self.err(
                                    l.line,
                                    "'redirect code' expects 301, 302, 303, 307 or 308",
                                )
                            }
                        },
                        "drop-query" | "append-slash" | "set-cookie" | "clear-cookie" => {
                            return self.err(
                                l.line,
                                format!("'redirect ... {}' is not supported yet", rest[i]),
                            )
                        }
                        other => {
                            return self
                                .err(l.line, format!("'redirect': unknown option '{other}'"))
                        }
                    }
                    i += 2;
                }
                match *kind {
                    "location" => RequestAction::respond(code, "text/plain", "", &format!("Location: {target}\r\n")),
                    "prefix" | "scheme" => {
                        return self.err(l.line, format!("'redirect {kind}' needs the request URI, which is not supported yet (use 'redirect location')"))
                    }
                    other => return self.err(l.line, format!("'redirect {other}': expected location, prefix or scheme")),
                }
            }
            ("use-service", ["prometheus-exporter"]) => RequestAction::Service(Service::Prometheus),
            (a, _) if matches!(a, "set-header" | "add-header" | "del-header") => {
                return self.err(
                    l.line,
                    format!("'http-request {a}' expects a name and a value"),
                )
            }
            (a, _) => return self.err(l.line, format!("'http-request {a}' is not supported yet")),
        };
        p.request_rules.push(RequestRule { cond, action: act });
    }

    /// `acl1 !acl2 || { criterion pattern } acl3`: AND binds tighter than `||`.
    fn condition(&mut self, line: usize, w: &[String], p: &Proxy) -> Option<Condition> {
        if w.is_empty() {
            self.err(line, "missing condition after 'if'/'unless'");
            return None;
        }
        let mut any = Vec::new();
        let mut all = Vec::new();
        let mut i = 0;
        while i < w.len() {
            let word = w[i].as_str();
            if word == "||" || word == "or" {
                // HAProxy ignores an '||' with nothing on one side.
                if !all.is_empty() {
                    any.push(Condition::All(std::mem::take(&mut all)));
                }
                i += 1;
                continue;
            }
            let (negate, word) = match word.strip_prefix('!') {
                Some("") => {
                    i += 1;
                    match w.get(i) {
                        Some(next) => (true, next.as_str()),
                        None => {
                            self.err(line, "'!' without an ACL");
                            return None;
                        }
                    }
                }
                Some(rest) => (true, rest),
                None => (false, word),
            };
            let term = if word == "{" {
                let Some(end) = w[i + 1..].iter().position(|x| x == "}") else {
                    self.err(line, "anonymous ACL '{' without its '}'");
                    return None;
                };
                let test = self.acl_test(line, &w[i + 1..i + 1 + end])?;
                i += end + 1;
                Condition::Acl(Arc::new(Acl {
                    name: "anonymous".into(),
                    tests: vec![test],
                }))
            } else if let Some(acl) = p.acls.get(word) {
                Condition::Acl(acl.clone())
            } else if let Some(c) = predefined_acl(word) {
                c
            } else {
                self.err(line, format!("no such ACL : '{word}'"));
                return None;
            };
            all.push(if negate {
                Condition::Not(Box::new(term))
            } else {
                term
            });
            i += 1;
        }
        if !all.is_empty() {
            any.push(Condition::All(all));
        }
        if any.is_empty() {
            self.err(line, "missing condition after 'if'/'unless'");
            return None;
        }
        Some(if any.len() == 1 {
            any.pop().unwrap_or(Condition::Always)
        } else {
            Condition::Any(any)
        })
    }

    fn server(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let (Some(name), Some(addr)) = (a.first(), a.get(1)) else {
            return self.err(l.line, "'server' expects a name and an address");
        };
        if p.servers.iter().any(|(_, s, _)| &s.name == name) {
            return self.err(
                l.line,
                format!("duplicate server name '{name}' in '{}'", p.name),
            );
        }
        let mut params = p.settings.server.clone();
        self.server_params(l, &a[2..], &mut params);
        if addr.contains('@') || addr.starts_with('/') {
            return self.err(l.line, format!("server '{name}': address '{addr}' is not supported (IP:PORT or host:PORT only)"));
        }
        let with_port = match (addr.rsplit_once(':'), addr.starts_with('[')) {
            (Some((_, port)), _)
                if port.parse::<u16>().is_ok()
                    && (addr.starts_with('[') || addr.matches(':').count() <= 1) =>
            {
                addr.clone()
            }
            _ => {
                return self.err(
                    l.line,
                    format!("server '{name}': '{addr}' needs an explicit port (ADDR:PORT)"),
                )
            }
        };
        let addr = match resolve_addr(&with_port) {
            Ok(a) => a,
            Err(e) => return self.err(l.line, format!("server '{name}': {e}")),
        };
        if let Some(q) = params.maxqueue {
            p.maxqueue = Some(p.maxqueue.map_or(q, |m| m.max(q)));
        }
        let server = Server {
            name: name.clone(),
            addr,
            weight: params.weight.unwrap_or(1),
            backup: params.backup,
            maxconn: params.maxconn,
            slowstart: params.slowstart.unwrap_or(Duration::ZERO),
            check: params.check,
            disabled: params.disabled,
            send_proxy: params.send_proxy,
            check_send_proxy: params.check_send_proxy,
        };
        p.servers.push((l.line, server, params));
    }

    fn server_params(&mut self, l: &Line, w: &[String], s: &mut ServerParams) {
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
                    Some("layer4") | Some("layer7") => {}
                    _ => self.err(l.line, "'observe' expects 'layer4' or 'layer7'"),
                },
                "on-error" => match v.map(String::as_str) {
                    Some("mark-down") | Some("fail-check") => {}
                    Some(other) => {
                        self.warn(l.line, format!("'on-error {other}' treated as 'mark-down'"))
                    }
                    None => self.err(l.line, "'on-error' expects a mode"),
                },
                "id" | "cookie" | "resolvers" | "init-addr" | "resolve-prefer" | "agent-port"
                | "agent-inter" | "check-sni" | "pool-max-conn" | "pool-purge-delay"
                | "max-reuse" => {
                    self.warn(l.line, format!("server option '{}' ignored", w[i]));
                }
                "ssl" | "verify" | "ca-file" | "crt" | "sni" | "check-ssl" | "alpn" => {
                    self.err(l.line, "TLS to servers is not yet supported by ringlb");
                    return;
                }
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
                "send-proxy-v2-ssl" | "send-proxy-v2-ssl-cn" => {
                    self.err(
                        l.line,
                        format!("'{}' needs TLS, which is not supported yet", w[i]),
                    );
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

    fn assemble(
        &mut self,
        runtime: Runtime,
        admin: Admin,
        log: Option<LogTarget>,
        proxies: Vec<Proxy>,
    ) -> Config {
        let shards = runtime.shards;
        let backend_names: Vec<&Proxy> = proxies
            .iter()
            .filter(|p| p.kind != SectionKind::Frontend)
            .collect();
        let index_of = |name: &str| backend_names.iter().position(|b| b.name == name);
        // A frontend and a backend may share a name; two of a side may not.
        for (k, p) in proxies.iter().enumerate() {
            let sides = |q: &Proxy| {
                (
                    q.kind != SectionKind::Backend,
                    q.kind != SectionKind::Frontend,
                )
            };
            if let Some(prev) = proxies[..k].iter().find(|q| {
                q.name == p.name && {
                    let (a, b) = (sides(q), sides(p));
                    (a.0 && b.0) || (a.1 && b.1)
                }
            }) {
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
                    kind: match &s.httpchk {
                        Some((method, path, host)) => CheckKind::Http {
                            method: method.clone(),
                            path: path.clone(),
                            host: host.clone(),
                            expect: s.expect.clone(),
                        },
                        None => CheckKind::Tcp,
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
            for (line, server, _) in &p.servers {
                if let Some(m) = server.maxconn {
                    if (m as usize) < shards {
                        self.err(
                            *line,
                            format!("server '{}': maxconn {m} is below nbthread {shards}: the limit is split across threads and each needs a slot", server.name),
                        );
                    }
                }
            }
            let balance = match (&s.balance, s.consistent) {
                (BalanceAlgo::Hash { key, .. }, c) => BalanceAlgo::Hash {
                    key: key.clone(),
                    consistent: c,
                },
                (b, _) => b.clone(),
            };
            backends.push(Backend {
                name: p.name.clone(),
                balance,
                servers: p.servers.iter().map(|x| x.1.clone()).collect(),
                all_backups: s.all_backups,
                retries: s.retries,
                redispatch: s.redispatch,
                maxqueue: p.maxqueue,
                error_limit: checked.first().and_then(|c| c.error_limit).unwrap_or(10),
                health,
                timeouts: s.timeouts.clone(),
                forward_for: s.forward_for.clone(),
                server_close: s.close != Close::KeepAlive,
            });
        }
        let mut frontends = Vec::new();
        let mut bound: HashMap<SocketAddr, usize> = HashMap::new();
        for p in proxies.iter().filter(|p| p.kind != SectionKind::Backend) {
            if p.accept_proxy_binds > 0 && p.accept_proxy_binds < p.bind_lines {
                self.err(
                    p.line,
                    format!("proxy '{}': 'accept-proxy' must be on every bind line of a frontend in ringlb", p.name),
                );
            }
            if p.maxconn.is_some_and(|m| (m as usize) < shards) {
                self.err(p.line, format!("proxy '{}': maxconn is below nbthread {shards}: each thread needs at least one connection", p.name));
            }
            if p.binds.is_empty() && !p.has_bind_line {
                self.err(p.line, format!("proxy '{}' has no 'bind' line", p.name));
            }
            for b in &p.binds {
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
            for (line, cond, name) in &p.rules {
                match index_of(name) {
                    Some(backend) => routes.push(Route {
                        cond: cond.clone(),
                        backend,
                    }),
                    None => self.err(
                        *line,
                        format!("unable to find required use_backend: '{name}'"),
                    ),
                }
            }
            let mode = p.settings.mode;
            if mode == Mode::Tcp
                && !routes.is_empty()
                && p.rules.iter().any(|r| !matches!(r.1, Condition::Always))
            {
                // Conditions look at HTTP requests; in tcp mode only src would work.
                self.err(
                    p.line,
                    format!(
                        "proxy '{}': use_backend conditions need 'mode http'",
                        p.name
                    ),
                );
            }
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
            if mode == Mode::Tcp && !p.request_rules.is_empty() {
                self.err(
                    p.line,
                    format!("proxy '{}': 'http-request' rules need 'mode http'", p.name),
                );
            }
            if mode == Mode::Tcp && default_backend.is_none() {
                default_backend = routes.first().map(|r| r.backend);
            }
            frontends.push(Frontend {
                name: p.name.clone(),
                binds: p.binds.clone(),
                mode,
                routes: if mode == Mode::Tcp {
                    Vec::new()
                } else {
                    routes
                },
                default_backend,
                forward_for: p
                    .settings
                    .forward_for
                    .clone()
                    .filter(|_| mode == Mode::Http),
                accept_proxy: p.accept_proxy_binds > 0,
                server_close: p.settings.close != Close::KeepAlive,
                client_close: p.settings.close == Close::Both,
                maxconn: p.maxconn,
                log: p.settings.log.then(|| {
                    p.settings.log_format.unwrap_or(if mode == Mode::Http {
                        LogFormat::Http
                    } else {
                        LogFormat::Tcp
                    })
                }),
                dont_log_null: p.settings.dont_log_null,
                request_rules: {
                    let mut rules = p.request_rules.clone();
                    let st = &p.settings.stats;
                    if st.enabled && mode == Mode::Http {
                        // HAProxy's default stats URI.
                        let uri = st.uri.clone().unwrap_or_else(|| "/haproxy?stats".into());
                        if let Ok(t) = AclTest::new(Fetch::Url, MatchMethod::Beg, false, &[&uri]) {
                            rules.push(RequestRule {
                                cond: Condition::Acl(Arc::new(Acl {
                                    name: "stats".into(),
                                    tests: vec![t],
                                })),
                                action: RequestAction::Service(Service::Stats {
                                    auth: st.auth.clone(),
                                    realm: st
                                        .realm
                                        .clone()
                                        .unwrap_or_else(|| "HAProxy Statistics".into()),
                                    refresh: st.refresh,
                                }),
                            });
                        }
                    }
                    rules
                },
                timeouts: p.settings.timeouts.clone(),
            });
        }
        if frontends.is_empty() {
            self.err(1, "no frontend or listen section: nothing to listen on");
        }
        if runtime.maxconn.is_some_and(|m| (m as usize) < shards) {
            self.err(1, format!("global maxconn is below nbthread {shards}: each thread needs at least one connection"));
        }
        let timeouts = proxies
            .first()
            .map(|p| p.settings.timeouts.clone())
            .unwrap_or_else(default_timeouts);
        Config {
            runtime,
            timeouts,
            limits: Limits {
                max_header_bytes: 16 * 1024,
            },
            pool: PoolSettings {
                max_idle_per_server: 64,
                idle_timeout: Duration::from_secs(30),
            },
            admin,
            log,
            proxy_order: {
                let (mut f, mut b) = (0, 0);
                proxies
                    .iter()
                    .map(|p| {
                        let fe = (p.kind != SectionKind::Backend).then(|| {
                            f += 1;
                            f - 1
                        });
                        let be = (p.kind != SectionKind::Frontend).then(|| {
                            b += 1;
                            b - 1
                        });
                        super::ProxyRef {
                            frontend: fe,
                            backend: be,
                        }
                    })
                    .collect()
            },
            frontends,
            backends,
        }
    }
}

impl Proxy {
    fn new(name: &str, line: usize, kind: SectionKind, settings: Settings) -> Proxy {
        Proxy {
            name: name.to_string(),
            line,
            kind,
            settings,
            binds: Vec::new(),
            acls: HashMap::new(),
            rules: Vec::new(),
            default_backend: None,
            servers: Vec::new(),
            maxqueue: None,
            has_bind_line: false,
            bind_lines: 0,
            accept_proxy_binds: 0,
            request_rules: Vec::new(),
            maxconn: None,
        }
    }
}

/// HAProxy's predefined ACLs that make sense here.
fn predefined_acl(name: &str) -> Option<Condition> {
    let method = |m: &str| {
        AclTest::new(Fetch::Method, MatchMethod::Str, false, &[m])
            .ok()
            .map(|t| {
                Condition::Acl(Arc::new(Acl {
                    name: name.to_string(),
                    tests: vec![t],
                }))
            })
    };
    match name {
        "TRUE" => Some(Condition::Always),
        "FALSE" => Some(Condition::Not(Box::new(Condition::Always))),
        "METH_GET" => method("GET"),
        "METH_POST" => method("POST"),
        "METH_PUT" => method("PUT"),
        "METH_DELETE" => method("DELETE"),
        "METH_HEAD" => method("HEAD"),
        "METH_OPTIONS" => method("OPTIONS"),
        "METH_CONNECT" => method("CONNECT"),
        "METH_TRACE" => method("TRACE"),
        "LOCALHOST" => AclTest::new(Fetch::Src, MatchMethod::Ip, false, &["127.0.0.1/8", "::1"])
            .ok()
            .map(|t| {
                Condition::Acl(Arc::new(Acl {
                    name: name.to_string(),
                    tests: vec![t],
                }))
            }),
        _ => None,
    }
}

/// `1-4,7` → [1, 2, 3, 4, 7].
fn range_list(text: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 65535 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// `200`, `200-399`, `200,201,300-310` → a status match.
fn status_list(text: &str) -> Option<StatusMatch> {
    if let Some((a, b)) = text.split_once('-').filter(|_| !text.contains(',')) {
        let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
        return ((100..=599).contains(&a) && a <= b && b <= 599)
            .then_some(StatusMatch::Range(a, b));
    }
    let codes = range_list(text)?;
    (!codes.is_empty() && codes.iter().all(|c| (100..=599).contains(c)))
        .then(|| StatusMatch::List(codes.into_iter().map(|c| c as u16).collect()))
}
