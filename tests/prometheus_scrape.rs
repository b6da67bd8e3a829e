//! A real Prometheus (Debian's `prometheus`) scrapes ringlb's exporter
//! (`http-request use-service prometheus-exporter`) every second while traffic
//! flows, and the queries a HAProxy Grafana dashboard's panels make return data
//! (issue 22). The query list is written from the panels of the widely used "HAProxy
//! 2 Full" dashboard (grafana.com 12693) as its description lists them: frontend and
//! backend request and response rates by code, sessions, bytes, backend and server
//! status, active and backup servers, queues, average times, errors and warnings,
//! health checks, process figures; plus ringlb's own latency histogram.

use crate::common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// Prometheus in the foreground on a reserved port, killed by its PID in `Drop`.
struct Prometheus {
    child: Child,
    addr: std::net::SocketAddr,
    _port: ReservedPort,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = ReservedPort::new();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: ringlb\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={}", port.addr()))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prometheus (apt-get install prometheus)");
        Prometheus {
            child,
            addr: port.addr(),
            _port: port,
            _dir: dir,
        }
    }

    /// An instant query: the result vector (status must be success).
    fn query(&self, q: &str) -> Option<Vec<serde_json::Value>> {
        let mut enc = String::new();
        for b in q.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        let mut c = HttpClient::try_connect(self.addr).ok()?;
        let r = c
            .try_request(format!(
                "GET /api/v1/query?query={enc} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
            ))
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body_str()).ok()?;
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"].as_array().cloned()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID, not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            eprintln!("---- prometheus ----\n{err}");
        }
    }
}

/// The dashboard's queries (panel: query).
const QUERIES: &[&str] = &[
    // Frontends.
    "sum by (proxy) (rate(haproxy_frontend_http_requests_total[1m]))",
    "sum by (proxy, code) (rate(haproxy_frontend_http_responses_total[1m]))",
    "haproxy_frontend_current_sessions",
    "rate(haproxy_frontend_sessions_total[1m])",
    "haproxy_frontend_max_sessions / haproxy_frontend_limit_sessions",
    "rate(haproxy_frontend_bytes_in_total[1m]) * 8",
    "rate(haproxy_frontend_bytes_out_total[1m]) * 8",
    "rate(haproxy_frontend_request_errors_total[1m])",
    "rate(haproxy_frontend_requests_denied_total[1m])",
    "haproxy_frontend_status{state=\"UP\"}",
    // Backends.
    "rate(haproxy_backend_http_requests_total[1m])",
    "sum by (proxy, code) (rate(haproxy_backend_http_responses_total[1m]))",
    "haproxy_backend_status{state=\"UP\"} == 1",
    "haproxy_backend_active_servers",
    "haproxy_backend_backup_servers",
    "haproxy_backend_current_queue",
    "haproxy_backend_current_sessions",
    "haproxy_backend_response_time_average_seconds",
    "haproxy_backend_queue_time_average_seconds",
    "haproxy_backend_connect_time_average_seconds",
    "haproxy_backend_total_time_average_seconds",
    "haproxy_backend_max_total_time_seconds",
    "rate(haproxy_backend_connection_errors_total[1m])",
    "rate(haproxy_backend_response_errors_total[1m])",
    "rate(haproxy_backend_retry_warnings_total[1m])",
    "rate(haproxy_backend_redispatch_warnings_total[1m])",
    "rate(haproxy_backend_bytes_out_total[1m]) * 8",
    "haproxy_backend_weight",
    // Servers.
    "haproxy_server_status{state=\"UP\"} == 1",
    "sum by (proxy, server, code) (rate(haproxy_server_http_responses_total[1m]))",
    "rate(haproxy_server_sessions_total[1m])",
    "haproxy_server_current_sessions",
    "haproxy_server_current_queue",
    "haproxy_server_response_time_average_seconds",
    "haproxy_server_total_time_average_seconds",
    "haproxy_server_check_status{state=\"L7OK\"} == 1",
    "haproxy_server_check_duration_seconds",
    "increase(haproxy_server_check_failures_total[1m])",
    "haproxy_server_check_last_change_seconds",
    "haproxy_server_weight",
    "rate(haproxy_server_connection_errors_total[1m])",
    "haproxy_server_idle_connections_current",
    // Process.
    "haproxy_process_uptime_seconds",
    "haproxy_process_current_connections",
    "haproxy_process_current_session_rate",
    "haproxy_process_max_connections",
    "haproxy_process_nbthread",
    "haproxy_process_idle_time_percent",
    "haproxy_process_build_info",
    // ringlb's own: p99 from the histograms.
    "histogram_quantile(0.99, sum by (le, proxy) (rate(ringlb_backend_response_seconds_bucket[1m])))",
];

#[test]
fn prometheus_scrapes_and_dashboard_queries_return_data() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    let cfg = format!(
        "global\n    nbthread 2\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\n\
         frontend web\n    bind 127.0.0.1:0\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n    default_backend app\n\n\
         backend app\n    option httpchk GET /\n    default-server inter 500ms\n    server s1 {} check\n    server s2 {} check\n    server bk {} check backup\n",
        b1.addr(),
        b2.addr(),
        b1.addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let lb = RingLb::launch(&["-f", &path], Some(file), |l| l.starts_with("ready"));
    let web = lb.addr("web");
    // Traffic all along: 200s and 404s.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = if n.is_multiple_of(4) {
                    "/status/404"
                } else {
                    "/"
                };
                let _ = HttpClient::try_connect(web).map(|mut c| c.try_request(get_request(path)));
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    let prom = Prometheus::start(web);
    // Prometheus up and scraping.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prom.query("up{job=\"ringlb\"} == 1");
        if up.is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus never scraped ringlb");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Rates need two scrapes in the window: every query returns data within a while.
    let mut empty: Vec<&str> = QUERIES.to_vec();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !empty.is_empty() && Instant::now() < deadline {
        empty.retain(|q| prom.query(q).is_none_or(|r| r.is_empty()));
        if !empty.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap();
    assert!(sent > 0);
    assert!(empty.is_empty(), "queries with no data: {empty:#?}");
    // The most used query sees the traffic.
    let r = prom
        .query("rate(haproxy_backend_http_requests_total{proxy=\"app\"}[1m])")
        .unwrap();
    let v: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    // Over a 1 min window holding a few seconds of samples, Prometheus extrapolates
    // little and divides by the whole minute: the figure is small, but not zero.
    assert!(v > 0.0, "request rate {v}/s");
    let codes = prom
        .query(
            "sum by (code) (increase(haproxy_backend_http_responses_total{proxy=\"app\"}[1m])) > 0",
        )
        .unwrap();
    let codes: Vec<&str> = codes
        .iter()
        .filter_map(|s| s["metric"]["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"2xx") && codes.contains(&"4xx"),
        "{codes:?}"
    );
}
