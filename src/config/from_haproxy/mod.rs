//! haproxy.cfg → the validated model. The grammar layer (`haproxy`) gives sections of
//! line-numbered words; this maps the keywords of the common subset onto the same
//! `Config` the TOML reader builds. Every problem is reported at once with its line:
//! an error for what would change behaviour if ignored (HAProxy refuses unknown
//! keywords too), a warning for what is safe to ignore.

mod assemble;
mod balance;
mod bind;
mod builtin;
mod compression;
mod cookie;
mod dynamic;
mod errors;
mod global;
mod http_rules;
mod peers;
mod process;
mod proxy;
mod replies;
mod resolvers;
mod rules;
mod server;
mod ssl;
mod stick;
mod tcp_rules;
mod tcpcheck;
mod tune;
mod userlist;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::haproxy::{parse_document, parse_size, parse_time, Document, Line, SectionKind};
use super::validate::{parse_bind, resolve_addr};
use super::{
    default_timeouts, usable_cores, Acl, Admin, Backend, BalanceAlgo, CheckKind, Condition, Config,
    ConfigErrors, DriverChoice, Frontend, HashFunction, HashKey, HealthCheck, HttpAction, HttpRule,
    Limits, Mode, PoolSettings, Route, Runtime, Server, StatusMatch, TcpRule, Timeouts, UriKey,
};
use super::{syslog_facility, LogFormat, LogSink, LogTarget, Service};
use crate::rules::map::PatRefs;
use crate::rules::{Env, Names};

pub use dynamic::{dynamic_checks, dynamic_server};

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
    let mut m = Mapper::new(env, names_of(&doc));
    for w in &doc.warnings {
        m.warnings.push(w.to_string());
    }
    let mut cfg = m.map(&doc);
    crate::config::validate::mark_rule_free(&mut cfg);
    if let (true, Some(line), false) = (m.errors.is_empty(), m.zero_warning, m.warnings.is_empty())
    {
        let n = m.warnings.len();
        let mut errors = std::mem::take(&mut m.warnings);
        errors.push(format!(
            "line {line}: 'zero-warning': {n} warning(s) above, so the configuration is refused (as HAProxy refuses it)"
        ));
        return Err(ConfigErrors(errors));
    }
    if m.errors.is_empty() {
        Ok((cfg, m.warnings))
    } else {
        Err(ConfigErrors(m.errors))
    }
}

struct Mapper<'e> {
    errors: Vec<String>,
    warnings: Vec<String>,
    /// `tune.bufsize`, `tune.http.maxhdr` (global).
    limits: Limits,
    /// `ssl-default-*`, `crt-base`, `ca-base`, ... (global).
    ssl: ssl::SslGlobals,
    /// The environment (for `env()` in rules).
    env: &'e dyn Fn(&str) -> Option<String>,
    /// Backends, frontends, servers and tables by name, known before any proxy is read.
    names: Names,
    /// Variable names the rules use.
    vars: crate::rules::vars::Registry,
    /// Pattern and map files read for this load, numbered as HAProxy does.
    patterns: PatRefs,
    /// Where the expressions being parsed will run (checked as HAProxy checks them).
    phase: Option<crate::rules::parse::Phase>,
    /// Targets of `log TARGET` lines in proxies, by line (the process has one target).
    proxy_logs: Vec<(usize, LogTarget)>,
    /// `hard-stop-after` (global): the longest a soft stop waits for connections.
    hard_stop_after: Option<Duration>,
    /// `http-errors` sections by name.
    http_errors: HashMap<String, crate::config::error_pages::ErrorPages>,
    /// Global `external-check` and `insecure-fork-wanted` lines (their line numbers).
    external_check: Option<usize>,
    /// Global `zero-warning` (its line): a config that warns is refused, as HAProxy.
    zero_warning: Option<usize>,
    /// Global `log-tag` and `log-send-hostname`, applied to the process's log target.
    log_tag: Option<String>,
    log_hostname: Option<String>,
    insecure_fork: bool,
    /// `resolvers` sections, read before any proxy.
    resolvers: Vec<crate::config::dns::Resolvers>,
    /// The system resolver's answers at load, by name.
    libc_cache: HashMap<String, Vec<IpAddr>>,
    /// Global `h1-case-adjust FROM TO` pairs (FROM lower-cased).
    h1_case: Vec<crate::config::CasePair>,
    /// Global `server-state-file` and `server-state-base`.
    state_file: Option<String>,
    state_base: Option<String>,
}

/// Proxy, server and table names, from a first pass over the document (so that rules
/// may name a backend declared further down, as HAProxy allows).
fn names_of(doc: &Document) -> Names {
    let mut n = Names::default();
    for sec in &doc.sections {
        let name = sec.name.clone().unwrap_or_default();
        match sec.kind {
            SectionKind::Frontend | SectionKind::Backend | SectionKind::Listen => {}
            _ => continue,
        }
        if sec.kind != SectionKind::Backend {
            n.frontends.push(name.clone());
        }
        if sec.kind != SectionKind::Frontend {
            let servers = sec
                .lines
                .iter()
                .flat_map(|l| match l.keyword() {
                    "server" => l.args().first().cloned().into_iter().collect(),
                    "server-template" => resolvers::template_names(l.args()),
                    _ => Vec::new(),
                })
                .collect();
            n.backends.push((name.clone(), servers));
        }
        if sec.lines.iter().any(|l| l.keyword() == "stick-table") {
            n.tables.push(name);
        }
    }
    n
}

/// Settings a proxy takes from its `defaults` section (and `default-server`).
#[derive(Clone)]
struct Settings {
    mode: Mode,
    timeouts: Timeouts,
    check_timeout: Option<Duration>,
    retries: u32,
    redispatch: bool,
    /// `option redispatch N` (-1 without N, as HAProxy).
    redispatch_after: i32,
    all_backups: bool,
    prefer_last_server: bool,
    /// `option http-buffer-request`.
    buffer_request: bool,
    /// `option abortonclose`.
    abort_on_close: bool,
    /// `option splice-auto|splice-request|splice-response`.
    splice: crate::config::SpliceOpts,
    /// `option h1-case-adjust-bogus-client` / `-server`.
    case_client: bool,
    case_server: bool,
    /// `http-reuse never`.
    reuse_never: bool,
    forward_for: Option<crate::config::ForwardFor>,
    balance: BalanceAlgo,
    consistent: bool,
    /// `hash-type`'s function and modifier, when given (else HAProxy's default).
    hash_function: Option<crate::config::HashFunction>,
    httpchk: Option<(String, String, Option<String>)>,
    expect: StatusMatch,
    /// `http-check disable-on-404`, and its line.
    disable_on_404: Option<usize>,
    /// `option tcp-check` or a protocol check, and the `tcp-check` lines.
    check_opt: tcpcheck::CheckOpt,
    tcp_rules: tcpcheck::TcpRules,
    /// `external-check command` and `path`.
    ext_command: Option<String>,
    ext_path: Option<String>,
    server: ServerParams,
    /// `log global` (or a log target) seen: this proxy's traffic is logged.
    log: bool,
    log_format: Option<LogFormat>,
    /// `log-format` text and its line (parsed per proxy, where its expressions are
    /// resolved).
    log_line: Option<(usize, String)>,
    dont_log_null: bool,
    dont_log_normal: bool,
    log_separate_errors: bool,
    log_health_checks: bool,
    stats: StatsSettings,
    close: Close,
    /// `cookie NAME ...`, `dynamic-cookie-key`, `option persist`.
    cookie: Option<crate::config::cookie::Persistence>,
    dyncookie_key: Option<String>,
    persist: bool,
    /// `monitor-uri`.
    monitor_uri: Option<String>,
    /// `maxconn` in `defaults`: the limit of every frontend that follows (HAProxy
    /// applies it to frontends and listens, not to backends).
    maxconn: Option<u32>,
    /// `option clitcpka` / `srvtcpka` (`tcpka`: both), and their
    /// `clitcpka-*` / `srvtcpka-*` values: client side first, server side second.
    tcpka: [Option<crate::config::TcpKeepalive>; 2],
    tcpka_values: [crate::config::TcpKeepalive; 2],
    /// `disabled` (`enabled` undoes it): also from `defaults`, as in HAProxy.
    disabled: bool,
    /// `compression algo|type|offload` lines (`offload` never from `defaults`).
    compression: Option<compression::CompLines>,
    /// `errorfile`, `errorfiles`, `http-error`, `errorloc*`: also from `defaults`.
    errors: crate::config::error_pages::ErrorPages,
    /// `unique-id-format` (its line and text: parsed per frontend) and
    /// `unique-id-header`.
    unique_id_format: Option<(usize, String)>,
    unique_id_header: Option<String>,
    /// `load-server-state-from-file` (None: not said, HAProxy's `none`) and
    /// `server-state-file-name` (None or `use-backend-name`: the backend's name).
    state_load: Option<StateLoad>,
    state_file_name: Option<String>,
}

/// `load-server-state-from-file global|local|none`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StateLoad {
    Global,
    Local,
    None,
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
    /// `stats admin if|unless COND`.
    admin: Option<Condition>,
    /// `stats scope NAME|.`, in order, without repeats.
    scope: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Tcp,
            timeouts: default_timeouts(),
            check_timeout: None,
            retries: 3,
            redispatch: false,
            redispatch_after: -1,
            all_backups: false,
            prefer_last_server: false,
            buffer_request: false,
            abort_on_close: false,
            splice: Default::default(),
            case_client: false,
            case_server: false,
            reuse_never: false,
            forward_for: None,
            balance: DEFAULT_BALANCE,
            consistent: false,
            hash_function: None,
            httpchk: None,
            expect: StatusMatch::Default,
            disable_on_404: None,
            check_opt: Default::default(),
            tcp_rules: Default::default(),
            ext_command: None,
            ext_path: None,
            server: ServerParams::default(),
            log: false,
            log_format: None,
            log_line: None,
            dont_log_null: false,
            dont_log_normal: false,
            log_separate_errors: false,
            log_health_checks: false,
            stats: StatsSettings::default(),
            close: Close::KeepAlive,
            cookie: None,
            dyncookie_key: None,
            persist: false,
            monitor_uri: None,
            maxconn: None,
            tcpka: [None; 2],
            tcpka_values: Default::default(),
            disabled: false,
            compression: None,
            errors: Default::default(),
            unique_id_format: None,
            unique_id_header: None,
            state_load: None,
            state_file_name: None,
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
    /// `observe layer4|layer7` (`Some(true)`: layer7; `none`: None) and `on-error`.
    observe: Option<bool>,
    on_error: Option<crate::config::OnError>,
    send_proxy: Option<crate::proxy_protocol::Version>,
    check_send_proxy: bool,
    /// `proto h2`.
    h2: bool,
    /// `check-proto`.
    check_proto: Option<crate::config::CheckProto>,
    pool_purge_delay: Option<Duration>,
    /// `on-marked-down shutdown-sessions`, `on-marked-up shutdown-backup-sessions`.
    on_marked_down: bool,
    on_marked_up: bool,
    ssl: ssl::ServerSsl,
    /// `id N`: HAProxy's server id.
    id: Option<u32>,
    /// `cookie VALUE`: the persistence cookie's value for this server.
    cookie: Option<String>,
    /// `resolvers NAME`, `resolve-prefer`, `resolve-net`, `init-addr`.
    resolvers: Option<String>,
    prefer: Option<crate::config::dns::Family>,
    nets: Vec<(IpAddr, u8)>,
    init_addr: Option<Vec<crate::config::dns::InitAddr>>,
}

/// Where a `use_backend` rule sends a request.
#[derive(Clone)]
enum Target {
    Name(String),
    Dynamic(Arc<crate::rules::LogFormat>),
}

/// A proxy being built (a `listen` is both halves).
struct Proxy {
    name: String,
    line: usize,
    kind: SectionKind,
    settings: Settings,
    /// `id N` and its line.
    id: Option<(u32, usize)>,
    /// Each address with the index of its bind line in `bind_opts`.
    binds: Vec<(SocketAddr, usize)>,
    /// Per bind line: its TLS options, `accept-proxy` and `proto h2`.
    bind_opts: Vec<(ssl::BindSsl, bool, bool)>,
    /// Per bind line: its socket options.
    bind_sock: Vec<crate::config::ListenOpts>,
    acls: HashMap<String, Arc<Acl>>,
    rules: Vec<(usize, Condition, Target)>,
    default_backend: Option<(usize, String)>,
    servers: Vec<(usize, Server, ServerParams)>,
    maxqueue: Option<usize>,
    /// `server-template` lines so far (numbers each template's slots).
    templates: u32,
    /// A `bind` line was seen (even one with errors).
    has_bind_line: bool,
    http_request: Vec<HttpRule>,
    /// `redirect` lines: evaluated after the `http-request` rules, as in HAProxy.
    redirects: Vec<HttpRule>,
    http_response: Vec<HttpRule>,
    http_after_response: Vec<HttpRule>,
    tcp_connection: Vec<TcpRule>,
    tcp_session: Vec<TcpRule>,
    tcp_content: Vec<TcpRule>,
    tcp_response: Vec<TcpRule>,
    inspect_delay: Option<Duration>,
    response_inspect_delay: Option<Duration>,
    captures: super::Captures,
    use_server: Vec<(usize, Condition, String)>,
    maxconn: Option<u32>,
    stick: stick::StickLines,
    /// `monitor fail if|unless COND`.
    monitor_fail: Vec<Condition>,
}

impl Mapper<'_> {
    /// An address with its environment variables expanded, as HAProxy's `env_expand`
    /// does for every address it parses (quoted or not): `${NAME}` and `$NAME`, an unset
    /// one empty. `None` (an error on `line`) when that leaves nothing.
    pub(super) fn address(&mut self, line: usize, what: &str, addr: &str) -> Option<String> {
        if !addr.contains('$') {
            return Some(addr.to_string());
        }
        let out = expand_env(addr, self.env);
        if out.is_empty() {
            self.err(
                line,
                format!(
                    "{what}: '{addr}' resolves to an empty address (environment variable missing?)"
                ),
            );
            return None;
        }
        Some(out)
    }
}

/// `${NAME}` and `$NAME` replaced by their values (empty when unset).
fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        if b[i] == b'$' {
            let (start, brace) = if b.get(i + 1) == Some(&b'{') {
                (i + 2, true)
            } else {
                (i + 1, false)
            };
            let mut end = start;
            while end < b.len() && is_name(b[end]) {
                end += 1;
            }
            let closed = !brace || b.get(end) == Some(&b'}');
            if end > start && closed {
                out.push_str(&env(&s[start..end]).unwrap_or_default());
                i = end + usize::from(brace);
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

impl<'e> Mapper<'e> {
    fn new(env: &'e dyn Fn(&str) -> Option<String>, names: Names) -> Mapper<'e> {
        Mapper {
            errors: Vec::new(),
            warnings: Vec::new(),
            limits: Limits::default(),
            ssl: Default::default(),
            env,
            names,
            vars: Default::default(),
            patterns: PatRefs::default(),
            phase: None,
            proxy_logs: Vec::new(),
            hard_stop_after: None,
            http_errors: HashMap::new(),
            external_check: None,
            zero_warning: None,
            log_tag: None,
            log_hostname: None,
            insecure_fork: false,
            resolvers: Vec::new(),
            libc_cache: HashMap::new(),
            h1_case: Vec::new(),
            state_file: None,
            state_base: None,
        }
    }

    /// The parse environment for rules of proxy `p` (its table and backend index).
    fn rule_env(&mut self, p: &Proxy) -> Env<'_> {
        let backend = (p.kind != SectionKind::Frontend && p.kind != SectionKind::Defaults)
            .then(|| self.names.backend(&p.name))
            .flatten();
        let table = p
            .stick
            .table
            .as_ref()
            .and_then(|_| self.names.table(&p.name));
        Env {
            vars: &mut self.vars,
            names: &self.names,
            patterns: &mut self.patterns,
            env: self.env,
            table,
            backend,
            captures: (p.captures.request.len(), p.captures.response.len()),
            phase: self.phase,
        }
    }

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
            maxsslrate: None,
            tls_handshakes: crate::tls::gate::DEFAULT_TURNS,
            comp_level: crate::config::compression::DEFAULT_LEVEL,
            log_uri_len: 1023,
            splice: true,
            process: Default::default(),
            server_state_file: None,
        };
        let mut admin = Admin::default();
        let mut log: Option<LogTarget> = None;
        let mut cpu_map: Vec<(usize, usize)> = Vec::new();
        // Settings of each defaults section, by section index.
        let mut defaults: HashMap<usize, Settings> = HashMap::new();
        let mut proxies: Vec<Proxy> = Vec::new();
        self.http_errors_sections(doc);
        self.userlist_sections(doc);
        self.resolvers_sections(doc);
        self.peers_sections(doc);
        let defaults_of = doc.defaults_each();
        for (i, sec) in doc.sections.iter().enumerate() {
            match &sec.kind {
                SectionKind::Global => {
                    for l in &sec.lines {
                        self.global(l, &mut runtime, &mut admin, &mut cpu_map, &mut log);
                    }
                }
                SectionKind::Defaults => {
                    let mut s = defaults_of[i]
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
                // Read beforehand.
                SectionKind::Other(kw)
                    if kw == "http-errors"
                        || kw == "userlist"
                        || kw == "resolvers"
                        || kw == "peers" => {}
                SectionKind::Other(kw) => {
                    self.err(
                        sec.line,
                        format!("section '{kw}' is not supported by ringlb"),
                    );
                }
                kind => {
                    let settings = defaults_of[i]
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
        let log = self.one_log_target(log);
        runtime.server_state_file = self
            .state_file
            .as_deref()
            .map(|f| crate::config::state_file::path(self.state_base.as_deref(), f));
        self.assemble(runtime, admin, log, proxies)
    }
}

impl Proxy {
    fn new(name: &str, line: usize, kind: SectionKind, mut settings: Settings) -> Proxy {
        let maxconn = settings.maxconn;
        // `tcp-check` lines of this section replace the inherited ones.
        settings.tcp_rules.own = false;
        Proxy {
            name: name.to_string(),
            line,
            kind,
            settings,
            id: None,
            binds: Vec::new(),
            bind_opts: Vec::new(),
            bind_sock: Vec::new(),
            acls: HashMap::new(),
            rules: Vec::new(),
            default_backend: None,
            servers: Vec::new(),
            maxqueue: None,
            templates: 0,
            has_bind_line: false,
            http_request: Vec::new(),
            redirects: Vec::new(),
            http_response: Vec::new(),
            http_after_response: Vec::new(),
            tcp_connection: Vec::new(),
            tcp_session: Vec::new(),
            tcp_content: Vec::new(),
            tcp_response: Vec::new(),
            inspect_delay: None,
            response_inspect_delay: None,
            captures: super::Captures::default(),
            use_server: Vec::new(),
            maxconn,
            stick: stick::StickLines::default(),
            monitor_fail: Vec::new(),
        }
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
