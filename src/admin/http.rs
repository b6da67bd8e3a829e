//! The admin HTTP listener: `/metrics` (Prometheus text, `metrics`), `/stats` (JSON),
//! `/stats;csv`, `/ready` (fails during a stop).
//! One short-lived connection per request, on the admin thread, never on a shard.

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
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        match route {
            "/metrics" => match super::metrics::Scope::parse(query) {
                Ok(scope) => (
                    "200 OK",
                    "text/plain; version=0.0.4",
                    super::metrics::render(core, scope),
                ),
                Err(_) => (
                    "400 Bad Request",
                    "text/plain",
                    "Bad request: invalid query string.\n".into(),
                ),
            },
            "/stats" => ("200 OK", "application/json", stats_json(core)),
            "/stats;csv" | "/stats.csv" => ("200 OK", "text/csv", csv::show_stat(core, &[])),
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
                        "addr": h.map_or(s.addr, |h| h.addr).to_string(),
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
