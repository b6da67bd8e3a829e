//! Prometheus text for `/metrics` and `http-request use-service prometheus-exporter`:
//! every family HAProxy 2.6's exporter writes, with its name, type and labels, read
//! from the same rows as `show stat` and the same values as `show info`; then
//! ringlb's own (latency histograms, shard and control-plane figures). The
//! exporter's `?scope=` and `?no-maint` parameters choose what is written.

use std::fmt::Write as _;

use super::fields::{Obj, V};
use super::rows::{Row, Stats};
use super::Core;

/// What a scrape asked for (`?scope=global&scope=server&no-maint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub global: bool,
    pub frontend: bool,
    pub backend: bool,
    pub server: bool,
    pub sticktable: bool,
    /// Leave out servers in maintenance.
    pub no_maint: bool,
}

impl Scope {
    pub const ALL: Scope = Scope {
        global: true,
        frontend: true,
        backend: true,
        server: true,
        sticktable: true,
        no_maint: false,
    };

    /// The exporter's query string (after `?`), as HAProxy 2.6 reads it: each
    /// `scope=` adds a scope (`*` all, an empty one none), the first one replacing
    /// the default of all. `Err`: a malformed query or an unknown scope (HAProxy
    /// answers 400).
    pub fn parse(query: &str) -> Result<Scope, BadQuery> {
        let mut s = Scope {
            global: false,
            frontend: false,
            backend: false,
            server: false,
            sticktable: false,
            no_maint: false,
        };
        let mut scoped = false;
        let query = query.split('#').next().unwrap_or("");
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = match param.split_once('=') {
                Some((_, v)) if v.contains('=') => return Err(BadQuery),
                Some((k, v)) => (k, Some(v)),
                None => (param, None),
            };
            match key {
                "scope" => {
                    scoped = true;
                    match value.ok_or(BadQuery)? {
                        "" => {
                            s = Scope {
                                no_maint: s.no_maint,
                                ..Scope::none()
                            }
                        }
                        "*" => {
                            s = Scope {
                                no_maint: s.no_maint,
                                ..Scope::ALL
                            }
                        }
                        "global" => s.global = true,
                        "frontend" => s.frontend = true,
                        "backend" => s.backend = true,
                        "server" => s.server = true,
                        "sticktable" => s.sticktable = true,
                        // ringlb has no per-listener figures: nothing to add.
                        "listener" => {}
                        _ => return Err(BadQuery),
                    }
                }
                "no-maint" => s.no_maint = true,
                _ => {}
            }
        }
        if !scoped {
            s = Scope {
                no_maint: s.no_maint,
                ..Scope::ALL
            };
        }
        Ok(s)
    }

    fn none() -> Scope {
        Scope {
            global: false,
            frontend: false,
            backend: false,
            server: false,
            sticktable: false,
            no_maint: false,
        }
    }
}

/// A query string the exporter refuses (HAProxy answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadQuery;

/// A metric family from a `show stat` field: the field, the family's name after
/// `haproxy_{frontend,backend,server}_`, its type, the kinds of rows that have it,
/// and a unit conversion.
struct StatMetric {
    field: &'static str,
    name: &'static str,
    counter: bool,
    objs: &'static str,
    unit: Unit,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Plain,
    /// Milliseconds written as seconds.
    Ms,
}

macro_rules! stat_metrics {
    ($(($field:literal, $name:literal, $kind:ident, $objs:literal $(, $unit:ident)?)),* $(,)?) => {
        /// HAProxy 2.6's exporter families from stat fields, in its order.
        const STAT_METRICS: &[StatMetric] = &[
            $(StatMetric {
                field: $field,
                name: $name,
                counter: stat_metrics!(@kind $kind),
                objs: $objs,
                unit: stat_metrics!(@unit $($unit)?),
            }),*
        ];
    };
    (@kind counter) => { true };
    (@kind gauge) => { false };
    (@unit) => { Unit::Plain };
    (@unit ms) => { Unit::Ms };
}

stat_metrics! {
    ("qcur", "current_queue", gauge, "BS"),
    ("qmax", "max_queue", gauge, "BS"),
    ("scur", "current_sessions", gauge, "FBS"),
    ("smax", "max_sessions", gauge, "FBS"),
    ("slim", "limit_sessions", gauge, "FBS"),
    ("stot", "sessions_total", counter, "FBS"),
    ("bin", "bytes_in_total", counter, "FBS"),
    ("bout", "bytes_out_total", counter, "FBS"),
    ("dreq", "requests_denied_total", counter, "FB"),
    ("dresp", "responses_denied_total", counter, "FBS"),
    ("ereq", "request_errors_total", counter, "F"),
    ("econ", "connection_errors_total", counter, "BS"),
    ("eresp", "response_errors_total", counter, "BS"),
    ("wretr", "retry_warnings_total", counter, "BS"),
    ("wredis", "redispatch_warnings_total", counter, "BS"),
    ("status", "status", gauge, "FBS"),
    ("weight", "weight", gauge, "BS"),
    ("act", "active_servers", gauge, "B"),
    ("bck", "backup_servers", gauge, "B"),
    ("chkfail", "check_failures_total", counter, "S"),
    ("chkdown", "check_up_down_total", counter, "BS"),
    ("lastchg", "check_last_change_seconds", gauge, "BS"),
    ("downtime", "downtime_seconds_total", counter, "BS"),
    ("qlimit", "queue_limit", gauge, "S"),
    ("throttle", "current_throttle", gauge, "S"),
    ("lbtot", "loadbalanced_total", counter, "BS"),
    ("rate_lim", "limit_session_rate", gauge, "F"),
    ("rate_max", "max_session_rate", gauge, "FBS"),
    ("check_status", "check_status", gauge, "S"),
    ("check_code", "check_code", gauge, "S"),
    ("check_duration", "check_duration_seconds", gauge, "S", ms),
    ("hrsp_1xx", "http_responses_total", counter, "FBS"),
    ("req_rate_max", "http_requests_rate_max", gauge, "F"),
    ("req_tot", "http_requests_total", counter, "FB"),
    ("cli_abrt", "client_aborts_total", counter, "BS"),
    ("srv_abrt", "server_aborts_total", counter, "BS"),
    ("comp_in", "http_comp_bytes_in_total", counter, "FB"),
    ("comp_out", "http_comp_bytes_out_total", counter, "FB"),
    ("comp_byp", "http_comp_bytes_bypassed_total", counter, "FB"),
    ("comp_rsp", "http_comp_responses_total", counter, "FB"),
    ("lastsess", "last_session_seconds", gauge, "BS"),
    ("qtime", "queue_time_average_seconds", gauge, "BS", ms),
    ("ctime", "connect_time_average_seconds", gauge, "BS", ms),
    ("rtime", "response_time_average_seconds", gauge, "BS", ms),
    ("ttime", "total_time_average_seconds", gauge, "BS", ms),
    ("conn_rate_max", "connections_rate_max", gauge, "F"),
    ("conn_tot", "connections_total", counter, "F"),
    ("intercepted", "intercepted_requests_total", counter, "F"),
    ("dcon", "denied_connections_total", counter, "F"),
    ("dses", "denied_sessions_total", counter, "F"),
    ("wrew", "failed_header_rewriting_total", counter, "FBS"),
    ("connect", "connection_attempts_total", counter, "BS"),
    ("reuse", "connection_reuses_total", counter, "BS"),
    ("cache_lookups", "http_cache_lookups_total", counter, "FB"),
    ("cache_hits", "http_cache_hits_total", counter, "FB"),
    ("srv_icur", "idle_connections_current", gauge, "S"),
    ("src_ilim", "idle_connections_limit", gauge, "S"),
    ("qtime_max", "max_queue_time_seconds", gauge, "BS", ms),
    ("ctime_max", "max_connect_time_seconds", gauge, "BS", ms),
    ("rtime_max", "max_response_time_seconds", gauge, "BS", ms),
    ("ttime_max", "max_total_time_seconds", gauge, "BS", ms),
    ("eint", "internal_errors_total", counter, "FBS"),
    ("idle_conn_cur", "unsafe_idle_connections_current", gauge, "S"),
    ("safe_conn_cur", "safe_idle_connections_current", gauge, "S"),
    ("used_conn_cur", "used_connections_current", gauge, "S"),
    ("need_conn_est", "need_connections_current", gauge, "S"),
    ("uweight", "uweight", gauge, "BS"),
    ("agg_server_status", "agg_server_status", gauge, "B"),
    ("agg_server_check_status", "agg_server_check_status", gauge, "B"),
    ("agg_check_status", "agg_check_status", gauge, "B"),
}

/// `show info` fields the exporter writes, with their family names and types.
const INFO_METRICS: &[(&str, &str, bool)] = &[
    ("Nbthread", "nbthread", false),
    ("Nbproc", "nbproc", false),
    ("Process_num", "relative_process_id", false),
    ("Uptime_sec", "uptime_seconds", false),
    ("PoolFailed", "pool_failures_total", true),
    ("Ulimit-n", "max_fds", false),
    ("Maxsock", "max_sockets", false),
    ("Maxconn", "max_connections", false),
    ("Hard_maxconn", "hard_max_connections", false),
    ("CurrConns", "current_connections", false),
    ("CumConns", "connections_total", true),
    ("CumReq", "requests_total", true),
    ("MaxSslConns", "max_ssl_connections", false),
    ("CurrSslConns", "current_ssl_connections", false),
    ("CumSslConns", "ssl_connections_total", true),
    ("Maxpipes", "max_pipes", false),
    ("PipesUsed", "pipes_used_total", true),
    ("PipesFree", "pipes_free_total", true),
    ("ConnRate", "current_connection_rate", false),
    ("ConnRateLimit", "limit_connection_rate", false),
    ("MaxConnRate", "max_connection_rate", false),
    ("SessRate", "current_session_rate", false),
    ("SessRateLimit", "limit_session_rate", false),
    ("MaxSessRate", "max_session_rate", false),
    ("SslRate", "current_ssl_rate", false),
    ("SslRateLimit", "limit_ssl_rate", false),
    ("MaxSslRate", "max_ssl_rate", false),
    ("SslFrontendKeyRate", "current_frontend_ssl_key_rate", false),
    ("SslFrontendMaxKeyRate", "max_frontend_ssl_key_rate", false),
    ("SslFrontendSessionReuse_pct", "frontend_ssl_reuse", false),
    ("SslBackendKeyRate", "current_backend_ssl_key_rate", false),
    ("SslBackendMaxKeyRate", "max_backend_ssl_key_rate", false),
    ("SslCacheLookups", "ssl_cache_lookups_total", true),
    ("SslCacheMisses", "ssl_cache_misses_total", true),
    ("CompressBpsIn", "http_comp_bytes_in_total", true),
    ("CompressBpsOut", "http_comp_bytes_out_total", true),
    ("CompressBpsRateLim", "limit_http_comp", false),
    ("ZlibMemUsage", "current_zlib_memory", false),
    ("MaxZlibMemUsage", "max_zlib_memory", false),
    ("Tasks", "current_tasks", false),
    ("Run_queue", "current_run_queue", false),
    ("Idle_pct", "idle_time_percent", false),
    ("Stopping", "stopping", false),
    ("Jobs", "jobs", false),
    ("Unstoppable Jobs", "unstoppable_jobs", false),
    ("Listeners", "listeners", false),
    ("ActivePeers", "active_peers", false),
    ("ConnectedPeers", "connected_peers", false),
    ("DroppedLogs", "dropped_logs_total", true),
    ("BusyPolling", "busy_polling_enabled", false),
    ("FailedResolutions", "failed_resolutions", true),
    ("TotalBytesOut", "bytes_out_total", true),
    ("TotalSplicdedBytesOut", "spliced_bytes_out_total", true),
    ("BytesOutRate", "bytes_out_rate", false),
    ("CumRecvLogs", "recv_logs_total", true),
    ("Build info", "build_info", false),
    ("Memmax_bytes", "max_memory_bytes", false),
    ("PoolAlloc_bytes", "pool_allocated_bytes", false),
    ("PoolUsed_bytes", "pool_used_bytes", false),
    ("Start_time_sec", "start_time_seconds", false),
];

/// What each `show info` field the exporter writes means (HELP lines).
fn info_help(name: &str) -> &'static str {
    match name {
        "Nbthread" => "Number of shards (threads).",
        "Nbproc" => "Number of processes (always 1).",
        "Process_num" => "Relative process number (always 1).",
        "Uptime_sec" => "How long ago the process was started, in seconds.",
        "Start_time_sec" => "When the process was started (seconds since the epoch).",
        "Ulimit-n" => "Most file descriptors the process may open.",
        "Maxsock" => "Most sockets the process may open.",
        "Maxconn" | "Hard_maxconn" => "Most client connections at once (global maxconn).",
        "CurrConns" => "Client connections open now.",
        "CumConns" => "Client connections accepted since the start.",
        "CumReq" => "HTTP requests received since the start.",
        "Maxpipes" => "Most splice pipes open at once.",
        "PipesUsed" => "Splice pipes in use now.",
        "PipesFree" => "Idle splice pipes kept for reuse.",
        "ConnRate" | "SessRate" => "Connections accepted over the last second.",
        "MaxConnRate" | "MaxSessRate" => "Most connections accepted in one second.",
        "Tasks" => "Connections, requests in flight and listeners (tasks).",
        "Idle_pct" => "Share of the shards' time spent idle, in percent.",
        "Stopping" => "1 once a stop or soft stop began.",
        "Jobs" => "Connections and listeners alive.",
        "Listeners" => "Listening sockets.",
        "TotalBytesOut" => "Bytes sent to clients since the start.",
        "TotalSplicdedBytesOut" => "Bytes moved by splice since the start.",
        "BytesOutRate" => "Bytes sent to clients over the last second.",
        "Build info" => "Build information (the version label).",
        "PoolAlloc_bytes" => "Bytes of connection buffers allocated (in use and idle).",
        "PoolUsed_bytes" => "Bytes of connection buffers in use.",
        "ZlibMemUsage" | "MaxZlibMemUsage" => "Memory used by compression (none: NaN).",
        _ => "HAProxy figure for a feature ringlb does not have yet, or does not need.",
    }
}

/// The states of `haproxy_server_status` and `agg_server_status`.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];
/// The states of `check_status` and `agg_check_status` (HAProxy's order).
const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
    "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];
const CODES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// A server's state among `SERVER_STATES`, from its `status` column.
fn server_state(status: &str) -> &'static str {
    match status {
        "MAINT" => "MAINT",
        "DRAIN" => "DRAIN",
        "NOLB" => "NOLB",
        s if s.starts_with("DOWN") => "DOWN",
        _ => "UP",
    }
}

/// Prometheus text being written.
pub(super) struct Out {
    pub(super) text: String,
}

impl Out {
    pub(super) fn head(&mut self, name: &str, help: &str, counter: bool) {
        let kind = if counter { "counter" } else { "gauge" };
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    pub(super) fn sample(&mut self, name: &str, labels: &str, v: f64) {
        let v = if v.is_nan() {
            "NaN".to_string()
        } else {
            v.to_string()
        };
        if labels.is_empty() {
            let _ = writeln!(self.text, "{name} {v}");
        } else {
            let _ = writeln!(self.text, "{name}{{{labels}}} {v}");
        }
    }
}

pub(super) fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole text for `scope`.
pub fn render(core: &Core, scope: Scope) -> String {
    let st = super::rows::gather(core);
    let mut out = Out {
        text: String::with_capacity(64 * 1024),
    };
    if scope.global {
        process(core, &st, &mut out);
    }
    for (obj, on, prefix) in [
        (Obj::Frontend, scope.frontend, "frontend"),
        (Obj::Backend, scope.backend, "backend"),
        (Obj::Server, scope.server, "server"),
    ] {
        if on {
            proxies(&st, obj, prefix, scope.no_maint, &mut out);
        }
    }
    if scope.sticktable {
        super::metrics_own::sticktables(&st, &mut out);
    }
    if scope.global {
        super::metrics_own::ringlb(core, &st, &mut out);
    }
    out.text
}

fn process(core: &Core, st: &Stats, out: &mut Out) {
    let values = super::info::values(core, st);
    for (field, name, counter) in INFO_METRICS {
        let metric = format!("haproxy_process_{name}");
        let v = values
            .iter()
            .find(|(f, _)| f.name == *field)
            .and_then(|(_, v)| v.clone());
        out.head(&metric, info_help(field), *counter);
        match (field, v) {
            (&"Build info", _) => out.sample(
                &metric,
                &format!("version=\"{}\"", esc(super::info::VERSION)),
                1.0,
            ),
            // No compression: HAProxy writes NaN for memory it has no figure of.
            (&"ZlibMemUsage" | &"MaxZlibMemUsage", _) => out.sample(&metric, "", f64::NAN),
            (_, Some(V::N(n))) => out.sample(&metric, "", n as f64),
            _ => out.sample(&metric, "", 0.0),
        }
    }
}

/// Whether `row` is written for a kind of object under `no_maint`.
fn keep(row: &Row, obj: Obj, no_maint: bool) -> bool {
    row.obj == obj && !(no_maint && obj == Obj::Server && row.text("status") == "MAINT")
}

fn labels(row: &Row) -> String {
    let px = format!("proxy=\"{}\"", esc(&row.text("pxname")));
    match row.obj {
        Obj::Server => format!("{px},server=\"{}\"", esc(&row.text("svname"))),
        _ => px,
    }
}

fn proxies(st: &Stats, obj: Obj, prefix: &str, no_maint: bool, out: &mut Out) {
    let letter = match obj {
        Obj::Frontend => 'F',
        Obj::Backend => 'B',
        Obj::Server => 'S',
    };
    for m in STAT_METRICS.iter().filter(|m| m.objs.contains(letter)) {
        let rows: Vec<&Row> = st
            .rows
            .iter()
            .filter(|r| keep(r, obj, no_maint))
            // HTTP-only families skip TCP proxies, as HAProxy's exporter does.
            .filter(|r| !http_only(m.field) || r.text("mode") == "http")
            .collect();
        if rows.is_empty() {
            continue;
        }
        let name = format!("haproxy_{prefix}_{}", m.name);
        let desc = super::fields::STAT
            .iter()
            .find(|f| f.name == m.field)
            .map_or("", |f| f.desc);
        out.head(&name, desc, m.counter);
        for r in rows {
            let l = labels(r);
            match m.field {
                "status" => {
                    let status = r.text("status");
                    let states: &[&str] = match obj {
                        Obj::Server => &SERVER_STATES,
                        _ => &["DOWN", "UP"],
                    };
                    let now = match obj {
                        Obj::Server => server_state(&status),
                        _ if status == "OPEN" || status == "UP" => "UP",
                        _ => "DOWN",
                    };
                    for s in states {
                        out.sample(
                            &name,
                            &format!("{l},state=\"{s}\""),
                            f64::from(u8::from(*s == now)),
                        );
                    }
                }
                "check_status" => {
                    let Some(now) = r.get("check_status").map(V::text) else {
                        continue;
                    };
                    for s in CHECK_STATES {
                        out.sample(
                            &name,
                            &format!("{l},state=\"{s}\""),
                            f64::from(u8::from(s == now)),
                        );
                    }
                }
                "hrsp_1xx" => {
                    for c in CODES {
                        let v = r.num(&format!("hrsp_{c}"));
                        out.sample(&name, &format!("{l},code=\"{c}\""), v as f64);
                    }
                }
                "agg_server_status" | "agg_server_check_status" => {
                    let servers = servers_of(st, r);
                    for s in SERVER_STATES {
                        let n = servers
                            .iter()
                            .filter(|x| server_state(&x.text("status")) == s)
                            .count();
                        out.sample(&name, &format!("{l},state=\"{s}\""), n as f64);
                    }
                }
                "agg_check_status" => {
                    let servers = servers_of(st, r);
                    for s in CHECK_STATES {
                        let n = servers
                            .iter()
                            .filter(|x| x.get("check_status").map(V::text).as_deref() == Some(s))
                            .count();
                        out.sample(&name, &format!("{l},state=\"{s}\""), n as f64);
                    }
                }
                field => {
                    let v = match r.get(field) {
                        Some(V::N(n)) if m.unit == Unit::Ms => *n as f64 / 1000.0,
                        Some(V::N(n)) => *n as f64,
                        _ if field == "check_code" && r.get("check_status").is_some() => 0.0,
                        _ => f64::NAN,
                    };
                    out.sample(&name, &l, v);
                }
            }
        }
    }
}

/// HTTP figures a TCP proxy does not have.
fn http_only(field: &str) -> bool {
    matches!(
        field,
        "hrsp_1xx"
            | "req_tot"
            | "req_rate_max"
            | "comp_in"
            | "comp_out"
            | "comp_byp"
            | "comp_rsp"
            | "intercepted"
            | "cache_lookups"
            | "cache_hits"
    )
}

/// The server rows of the backend of row `b`.
fn servers_of<'a>(st: &'a Stats, b: &Row) -> Vec<&'a Row> {
    st.rows
        .iter()
        .filter(|r| r.obj == Obj::Server && r.backend == b.backend)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn scopes_read_as_haproxy_reads_them() {
        assert_eq!(Scope::parse(""), Ok(Scope::ALL));
        let s = Scope::parse("scope=server&scope=backend&no-maint").unwrap();
        assert!(s.server && s.backend && !s.global && !s.frontend && s.no_maint);
        let s = Scope::parse("scope=").unwrap();
        assert!(!s.global && !s.server);
        assert!(Scope::parse("scope=*").unwrap().global);
        assert!(Scope::parse("scope=nope").is_err());
        assert!(Scope::parse("scope").is_err());
        assert!(Scope::parse("no-maint").unwrap().no_maint);
    }
}
