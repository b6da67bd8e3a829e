//! The admin HTTP listener: `/metrics` (Prometheus text, HAProxy exporter names plus
//! ringlb's latency histograms), `/stats` (JSON), `/ready` (fails during a stop).
//! One short-lived connection per request, on the admin thread, never on a shard.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{csv, Core};
use crate::control::AdminState;
use crate::stats::{Latency, Totals};

pub fn serve(core: Arc<Core>, listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let core = core.clone();
        let _ = std::thread::Builder::new()
            .name("ringlb-admin-conn".into())
            .spawn(move || handle(&core, conn));
    }
}

fn handle(core: &Core, mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let path = match req.parse(&buf) {
        Ok(httparse::Status::Complete(_)) => req.path.unwrap_or("/"),
        _ => {
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
    };
    let method = req.method.unwrap_or("GET");
    let (status, ctype, body) = if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET and HEAD\n".to_string(),
        )
    } else {
        match path.split('?').next().unwrap_or("/") {
            "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics(core)),
            "/stats" => ("200 OK", "application/json", stats_json(core)),
            "/stats;csv" | "/stats.csv" => ("200 OK", "text/csv", csv::show_stat(core)),
            "/ready" if core.stopping.load(Ordering::Relaxed) => {
                ("503 Service Unavailable", "text/plain", "stopping\n".into())
            }
            "/ready" => ("200 OK", "text/plain", "ready\n".into()),
            _ => (
                "404 Not Found",
                "text/plain",
                "try /metrics, /stats or /ready\n".into(),
            ),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = conn.write_all(body.as_bytes());
    }
}

/// Prometheus families, each written once with its HELP and TYPE.
struct Families {
    out: String,
}

impl Families {
    fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (String, f64)>,
    ) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(self.out, "{name}{{{labels}}} {v}");
        }
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const CODES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

pub fn metrics(core: &Core) -> String {
    let g = core.gather();
    let cfg = &core.cfg();
    let health = core.health().lock().map(|h| h.clone()).unwrap_or_default();
    let op = core.operator.lock().map(|o| o.clone()).unwrap_or_default();
    let mut f = Families { out: String::new() };

    f.family(
        "haproxy_process_nbthread",
        "gauge",
        "Number of shards (threads).",
        [(String::new(), cfg.runtime.shards as f64)],
    );
    f.family(
        "ringlb_upgrade_handover_failures_total",
        "counter",
        "Listener hand-overs from an older process (-sf) that failed and were bound anew.",
        [(
            String::new(),
            crate::stats::process::read(&crate::stats::process::HANDOVER_FAILURES) as f64,
        )],
    );
    f.family(
        "ringlb_shard_restarts_total",
        "counter",
        "Shard runtimes that died of a panic and were restarted on their core.",
        [(
            String::new(),
            crate::stats::process::read(&crate::stats::process::SHARD_RESTARTS) as f64,
        )],
    );
    use crate::stats::process as p;
    f.family(
        "ringlb_control_wakeups_total",
        "counter",
        "Times a shard's control loop woke up (messages, its own timers), all shards.",
        [(String::new(), p::read(&p::CONTROL_WAKEUPS) as f64)],
    );
    f.family(
        "ringlb_control_messages_total",
        "counter",
        "Control messages (health flips, operator changes, shared tables) shards applied.",
        [(String::new(), p::read(&p::CONTROL_MESSAGES) as f64)],
    );
    let quantiles = p::control_latency().lock().map_or_else(
        |_| Vec::new(),
        |h| {
            [0.5, 0.99, 0.999, 1.0]
                .iter()
                .map(|&q| {
                    let v = if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(q)
                    };
                    (format!("quantile=\"{q}\""), v as f64 / 1e6)
                })
                .collect()
        },
    );
    f.family(
        "ringlb_control_apply_seconds",
        "gauge",
        "From a control message's sending to its application on a shard (quantiles).",
        quantiles,
    );
    let mut per_shard = g.per_shard.clone();
    per_shard.sort_unstable();
    f.family(
        "ringlb_shard_connections_total",
        "counter",
        "Connections accepted by each shard (all frontends): how evenly SO_REUSEPORT spreads them.",
        per_shard
            .iter()
            .map(|(s, n)| (format!("shard=\"{s}\""), *n as f64)),
    );
    f.family(
        "haproxy_process_uptime_seconds",
        "gauge",
        "How long ago this process was started.",
        [(String::new(), core.started.elapsed().as_secs_f64())],
    );

    let fe = |t: fn(&Totals) -> u64| {
        cfg.frontends
            .iter()
            .zip(&g.stats.frontends)
            .map(move |(f, x)| (format!("proxy=\"{}\"", esc(&f.name)), t(x) as f64))
            .collect::<Vec<_>>()
    };
    f.family(
        "haproxy_frontend_current_sessions",
        "gauge",
        "Number of current sessions on the frontend.",
        fe(|t| t.scur),
    );
    f.family(
        "haproxy_frontend_max_sessions",
        "gauge",
        "Highest value of current sessions encountered.",
        fe(|t| t.smax),
    );
    f.family(
        "haproxy_frontend_sessions_total",
        "counter",
        "Total number of sessions.",
        fe(|t| t.stot),
    );
    f.family(
        "haproxy_frontend_bytes_in_total",
        "counter",
        "Total number of request bytes.",
        fe(|t| t.bin),
    );
    f.family(
        "haproxy_frontend_bytes_out_total",
        "counter",
        "Total number of response bytes.",
        fe(|t| t.bout),
    );
    f.family(
        "haproxy_frontend_request_errors_total",
        "counter",
        "Total number of invalid requests.",
        fe(|t| t.ereq),
    );
    f.family(
        "haproxy_frontend_http_requests_total",
        "counter",
        "Total number of HTTP requests received.",
        fe(|t| t.req_tot),
    );
    f.family(
        "ringlb_frontend_handler_panics_total",
        "counter",
        "Connections closed because their handler panicked.",
        fe(|t| t.panics),
    );
    let mut codes = Vec::new();
    for (fr, t) in cfg.frontends.iter().zip(&g.stats.frontends) {
        for (i, c) in CODES.iter().enumerate() {
            codes.push((
                format!("proxy=\"{}\",code=\"{c}\"", esc(&fr.name)),
                t.hrsp[i] as f64,
            ));
        }
    }
    f.family(
        "haproxy_frontend_http_responses_total",
        "counter",
        "Total number of HTTP responses.",
        codes,
    );

    let be = |t: fn(&Totals) -> u64| {
        cfg.backends
            .iter()
            .zip(&g.stats.backends)
            .map(move |(b, x)| (format!("proxy=\"{}\"", esc(&b.name)), t(x) as f64))
            .collect::<Vec<_>>()
    };
    // Usable servers per backend, from the health and operator views.
    let mut active = Vec::new();
    let mut backup = Vec::new();
    let mut status = Vec::new();
    for (bi, b) in cfg.backends.iter().enumerate() {
        let (mut a, mut k) = (0, 0);
        for (si, s) in b.servers.iter().enumerate() {
            let up = health.get(bi).and_then(|v| v.get(si)).is_none_or(|h| h.up);
            let o = op.get(bi).and_then(|v| v.get(si));
            let ready = o.is_none_or(|o| o.admin == AdminState::Ready && o.weight > 0);
            if up && ready {
                if s.backup {
                    k += 1;
                } else {
                    a += 1;
                }
            }
        }
        let label = format!("proxy=\"{}\"", esc(&b.name));
        active.push((label.clone(), a as f64));
        backup.push((label.clone(), k as f64));
        for st in ["DOWN", "UP"] {
            let v = if (a + k > 0) == (st == "UP") {
                1.0
            } else {
                0.0
            };
            status.push((format!("{label},state=\"{st}\""), v));
        }
    }
    f.family(
        "haproxy_backend_status",
        "gauge",
        "Current status of the service.",
        status,
    );
    f.family(
        "haproxy_backend_active_servers",
        "gauge",
        "Current number of active servers.",
        active,
    );
    f.family(
        "haproxy_backend_backup_servers",
        "gauge",
        "Current number of backup servers.",
        backup,
    );
    f.family(
        "haproxy_backend_current_queue",
        "gauge",
        "Number of current queued connections.",
        cfg.backends
            .iter()
            .zip(&g.queued)
            .map(|(b, q)| (format!("proxy=\"{}\"", esc(&b.name)), q.0 as f64)),
    );
    f.family(
        "haproxy_backend_max_queue",
        "gauge",
        "Highest value of queued connections encountered.",
        cfg.backends
            .iter()
            .zip(&g.queued)
            .map(|(b, q)| (format!("proxy=\"{}\"", esc(&b.name)), q.1 as f64)),
    );
    f.family(
        "haproxy_backend_current_sessions",
        "gauge",
        "Number of current sessions on the backend.",
        be(|t| t.scur),
    );
    f.family(
        "haproxy_backend_max_sessions",
        "gauge",
        "Highest value of current sessions encountered.",
        be(|t| t.smax),
    );
    f.family(
        "haproxy_backend_sessions_total",
        "counter",
        "Total number of sessions.",
        be(|t| t.stot),
    );
    f.family(
        "haproxy_backend_bytes_in_total",
        "counter",
        "Total number of request bytes.",
        be(|t| t.bin),
    );
    f.family(
        "haproxy_backend_bytes_out_total",
        "counter",
        "Total number of response bytes.",
        be(|t| t.bout),
    );
    f.family(
        "haproxy_backend_connection_errors_total",
        "counter",
        "Total number of connection errors.",
        be(|t| t.econ),
    );
    f.family(
        "haproxy_backend_response_errors_total",
        "counter",
        "Total number of response errors.",
        be(|t| t.eresp),
    );
    f.family(
        "haproxy_backend_retry_warnings_total",
        "counter",
        "Total number of retry warnings.",
        be(|t| t.wretr),
    );
    f.family(
        "haproxy_backend_redispatch_warnings_total",
        "counter",
        "Total number of redispatch warnings.",
        be(|t| t.wredis),
    );
    f.family(
        "haproxy_backend_requests_denied_total",
        "counter",
        "Total number of denied requests.",
        be(|t| t.dreq),
    );
    let mut codes = Vec::new();
    for (b, t) in cfg.backends.iter().zip(&g.stats.backends) {
        for (i, c) in CODES.iter().enumerate() {
            codes.push((
                format!("proxy=\"{}\",code=\"{c}\"", esc(&b.name)),
                t.hrsp[i] as f64,
            ));
        }
    }
    f.family(
        "haproxy_backend_http_responses_total",
        "counter",
        "Total number of HTTP responses.",
        codes,
    );

    // Servers.
    let mut rows: Vec<(String, &Totals, usize, usize)> = Vec::new();
    for (bi, b) in cfg.backends.iter().enumerate() {
        for (si, s) in b.servers.iter().enumerate() {
            rows.push((
                format!("proxy=\"{}\",server=\"{}\"", esc(&b.name), esc(&s.name)),
                &g.stats.servers[bi][si],
                bi,
                si,
            ));
        }
    }
    let sv = |t: fn(&Totals) -> u64| {
        rows.iter()
            .map(move |(l, x, _, _)| (l.clone(), t(x) as f64))
            .collect::<Vec<_>>()
    };
    let mut status = Vec::new();
    let mut weight = Vec::new();
    let mut chkfail = Vec::new();
    let mut chkdown = Vec::new();
    let mut downtime = Vec::new();
    let mut last_change = Vec::new();
    for (label, _, bi, si) in &rows {
        let h = health.get(*bi).and_then(|v| v.get(*si));
        let o = op.get(*bi).and_then(|v| v.get(*si)).copied();
        let admin = o.map_or(AdminState::Ready, |o| o.admin);
        let w = o.map_or(cfg.backends[*bi].servers[*si].weight, |o| o.weight);
        let st = csv::server_status(admin, w, h);
        let state = match st.as_str() {
            "MAINT" | "DRAIN" | "NOLB" => st.as_str(),
            s if s.starts_with("DOWN") => "DOWN",
            _ => "UP",
        };
        for s in ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"] {
            status.push((
                format!("{label},state=\"{s}\""),
                if s == state { 1.0 } else { 0.0 },
            ));
        }
        weight.push((label.clone(), w as f64));
        if let Some(h) = h {
            chkfail.push((label.clone(), h.chkfail as f64));
            chkdown.push((label.clone(), h.chkdown as f64));
            let d = h.downtime + h.down_since.map_or(Duration::ZERO, |d| d.elapsed());
            downtime.push((label.clone(), d.as_secs() as f64));
            last_change.push((label.clone(), h.last_change.elapsed().as_secs() as f64));
        }
    }
    f.family(
        "haproxy_server_status",
        "gauge",
        "Current status of the service, per state label value.",
        status,
    );
    f.family(
        "haproxy_server_weight",
        "gauge",
        "Server's effective weight.",
        weight,
    );
    f.family(
        "haproxy_server_current_sessions",
        "gauge",
        "Number of current sessions on the server.",
        sv(|t| t.scur),
    );
    f.family(
        "haproxy_server_max_sessions",
        "gauge",
        "Highest value of current sessions encountered.",
        sv(|t| t.smax),
    );
    f.family(
        "haproxy_server_sessions_total",
        "counter",
        "Total number of sessions.",
        sv(|t| t.stot),
    );
    f.family(
        "haproxy_server_bytes_in_total",
        "counter",
        "Total number of request bytes.",
        sv(|t| t.bin),
    );
    f.family(
        "haproxy_server_bytes_out_total",
        "counter",
        "Total number of response bytes.",
        sv(|t| t.bout),
    );
    f.family(
        "haproxy_server_connection_errors_total",
        "counter",
        "Total number of connection errors.",
        sv(|t| t.econ),
    );
    f.family(
        "haproxy_server_response_errors_total",
        "counter",
        "Total number of response errors.",
        sv(|t| t.eresp),
    );
    f.family(
        "haproxy_server_retry_warnings_total",
        "counter",
        "Total number of retry warnings.",
        sv(|t| t.wretr),
    );
    f.family(
        "haproxy_server_redispatch_warnings_total",
        "counter",
        "Total number of redispatch warnings.",
        sv(|t| t.wredis),
    );
    f.family(
        "haproxy_server_loadbalanced_total",
        "counter",
        "Total number of times a server was selected.",
        sv(|t| t.lbtot),
    );
    f.family(
        "haproxy_server_check_failures_total",
        "counter",
        "Total number of failed individual health checks.",
        chkfail,
    );
    f.family(
        "haproxy_server_check_up_down_total",
        "counter",
        "Total number of failed checks causing UP to DOWN server transitions.",
        chkdown,
    );
    f.family(
        "haproxy_server_downtime_seconds_total",
        "counter",
        "Total time the server was down.",
        downtime,
    );
    f.family(
        "haproxy_server_check_last_change_seconds",
        "gauge",
        "How long ago the last server state change happened.",
        last_change,
    );
    let mut codes = Vec::new();
    for (label, t, _, _) in &rows {
        for (i, c) in CODES.iter().enumerate() {
            codes.push((format!("{label},code=\"{c}\""), t.hrsp[i] as f64));
        }
    }
    f.family(
        "haproxy_server_http_responses_total",
        "counter",
        "Total number of HTTP responses.",
        codes,
    );

    // ringlb's own latency histograms, merged from every shard's hdrhistogram.
    for (name, pick, help) in [
        (
            "ringlb_backend_first_byte_seconds",
            (|l: &Latency| &l.first_byte) as fn(&Latency) -> &hdrhistogram::Histogram<u64>,
            "Time from sending the request to the first response byte.",
        ),
        (
            "ringlb_backend_response_seconds",
            |l: &Latency| &l.total,
            "Time from the request head to the end of the response.",
        ),
    ] {
        let _ = writeln!(f.out, "# HELP {name} {help}");
        let _ = writeln!(f.out, "# TYPE {name} histogram");
        for (b, l) in cfg.backends.iter().zip(&g.stats.latency) {
            // A backend that served nothing has no histogram: every bucket is 0.
            let h = l.as_ref().map(pick);
            let label = format!("proxy=\"{}\"", esc(&b.name));
            for le in [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ] {
                let us = (le * 1e6) as u64;
                let n = h.map_or(0, |h| h.count_between(0, us));
                let _ = writeln!(f.out, "{name}_bucket{{{label},le=\"{le}\"}} {n}");
            }
            let len = h.map_or(0, |h| h.len());
            let _ = writeln!(f.out, "{name}_bucket{{{label},le=\"+Inf\"}} {len}");
            let sum: f64 = h.map_or(0.0, |h| h.mean() * len as f64 / 1e6);
            let _ = writeln!(f.out, "{name}_sum{{{label}}} {sum}");
            let _ = writeln!(f.out, "{name}_count{{{label}}} {len}");
        }
    }
    f.out
}

fn totals_json(t: &Totals) -> serde_json::Value {
    serde_json::json!({
        "scur": t.scur, "smax": t.smax, "stot": t.stot, "bin": t.bin, "bout": t.bout,
        "req_tot": t.req_tot, "ereq": t.ereq, "econ": t.econ, "eresp": t.eresp,
        "wretr": t.wretr, "wredis": t.wredis, "lbtot": t.lbtot, "dreq": t.dreq,
        "hrsp_1xx": t.hrsp[0], "hrsp_2xx": t.hrsp[1], "hrsp_3xx": t.hrsp[2],
        "hrsp_4xx": t.hrsp[3], "hrsp_5xx": t.hrsp[4], "hrsp_other": t.hrsp[5],
    })
}

fn stats_json(core: &Core) -> String {
    let g = core.gather();
    let cfg = &core.cfg();
    let health = core.health().lock().map(|h| h.clone()).unwrap_or_default();
    let op = core.operator.lock().map(|o| o.clone()).unwrap_or_default();
    let frontends: Vec<_> = cfg
        .frontends
        .iter()
        .zip(&g.stats.frontends)
        .map(|(f, t)| serde_json::json!({ "name": f.name, "counters": totals_json(t) }))
        .collect();
    let backends: Vec<_> = cfg
        .backends
        .iter()
        .enumerate()
        .map(|(bi, b)| {
            let servers: Vec<_> = b
                .servers
                .iter()
                .enumerate()
                .map(|(si, s)| {
                    let h = health.get(bi).and_then(|v| v.get(si));
                    let o = op.get(bi).and_then(|v| v.get(si)).copied();
                    let admin = o.map_or(AdminState::Ready, |o| o.admin);
                    let w = o.map_or(s.weight, |o| o.weight);
                    serde_json::json!({
                        "name": s.name,
                        "addr": s.addr.to_string(),
                        "status": csv::server_status(admin, w, h),
                        "weight": w,
                        "backup": s.backup,
                        "check_status": h.map(|h| h.status).unwrap_or(""),
                        "counters": totals_json(&g.stats.servers[bi][si]),
                    })
                })
                .collect();
            let l = g.stats.latency[bi].as_ref();
            // No histogram yet (no request): 0, as an empty histogram answers.
            let q = |h: fn(&Latency) -> &hdrhistogram::Histogram<u64>, p: f64| {
                l.map_or(0.0, |l| h(l).value_at_quantile(p) as f64 / 1e6)
            };
            let fb: fn(&Latency) -> &hdrhistogram::Histogram<u64> = |l| &l.first_byte;
            let tot: fn(&Latency) -> &hdrhistogram::Histogram<u64> = |l| &l.total;
            serde_json::json!({
                "name": b.name,
                "queue": { "current": g.queued[bi].0, "max": g.queued[bi].1 },
                "counters": totals_json(&g.stats.backends[bi]),
                "latency_seconds": {
                    "first_byte": { "p50": q(fb, 0.5), "p99": q(fb, 0.99) },
                    "total": { "p50": q(tot, 0.5), "p99": q(tot, 0.99) },
                },
                "servers": servers,
            })
        })
        .collect();
    let v = serde_json::json!({
        "shards": cfg.runtime.shards,
        "shards_answered": g.shards_answered,
        "uptime_seconds": core.started.elapsed().as_secs(),
        "frontends": frontends,
        "backends": backends,
    });
    format!("{v:#}\n")
}
