//! The admin HTTP listener: Prometheus `/metrics` with HAProxy's exporter names and
//! ringlb's latency histograms, `/stats` JSON, `/ready`, and errors for anything else.

use crate::common;

use std::time::Duration;

use common::*;

fn start(a: &TestBackend, b_addr: std::net::SocketAddr) -> (RingLb, std::net::SocketAddr) {
    let toml = format!(
        "[runtime]\nshards = 2\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n\n[backend.app]\nretries = 1\n[[backend.app.server]]\nname = \"s1\"\naddr = \"{}\"\n[[backend.app.server]]\nname = \"s2\"\naddr = \"{b_addr}\"\n",
        a.addr()
    );
    let lb = RingLb::start(&toml);
    let admin = lb.admin_addr();
    (lb, admin)
}

fn sample(metrics: &str, series: &str) -> f64 {
    metric(metrics, series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[test]
fn metrics_use_haproxy_names_and_merge_shards() {
    let a = TestBackend::start("a");
    let dead = ReservedPort::new();
    let (lb, admin) = start(&a, dead.addr());
    for _ in 0..10 {
        assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    }
    let m = http_get(admin, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let m = m.body_str();
    assert_eq!(
        sample(&m, "haproxy_frontend_http_requests_total{proxy=\"web\"}"),
        10.0
    );
    assert_eq!(
        sample(
            &m,
            "haproxy_frontend_http_responses_total{proxy=\"web\",code=\"2xx\"}"
        ),
        10.0
    );
    assert_eq!(
        sample(
            &m,
            "haproxy_backend_http_responses_total{proxy=\"app\",code=\"2xx\"}"
        ),
        10.0
    );
    assert_eq!(
        sample(
            &m,
            "haproxy_server_sessions_total{proxy=\"app\",server=\"s1\"}"
        ),
        10.0
    );
    // The dead server refused: counted as retries/redispatches; not as connection
    // errors, which (as HAProxy's) count the requests that gave up.
    assert_eq!(
        sample(&m, "haproxy_backend_connection_errors_total{proxy=\"app\"}"),
        0.0,
        "{m}"
    );
    assert!(
        sample(&m, "haproxy_backend_retry_warnings_total{proxy=\"app\"}") >= 1.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            "haproxy_backend_redispatch_warnings_total{proxy=\"app\"}"
        ) >= 1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "haproxy_server_status{proxy=\"app\",server=\"s1\",state=\"UP\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&m, "ringlb_backend_response_seconds_count{proxy=\"app\"}"),
        10.0
    );
    assert_eq!(
        sample(
            &m,
            "ringlb_backend_first_byte_seconds_bucket{proxy=\"app\",le=\"+Inf\"}"
        ),
        10.0
    );
    // Every family is declared once.
    let types: Vec<&str> = m.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut unique = types.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(types.len(), unique.len());
}

#[test]
fn stats_json_ready_and_unknown_paths() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let (lb, admin) = start(&a, b.addr());
    assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    let s = http_get(admin, "/stats");
    assert_eq!(s.status, 200);
    let v: serde_json::Value = serde_json::from_str(&s.body_str()).expect("valid JSON");
    assert_eq!(v["shards"], 2);
    assert_eq!(v["shards_answered"], 2);
    assert_eq!(v["frontends"][0]["name"], "web");
    assert_eq!(v["frontends"][0]["counters"]["req_tot"], 1);
    assert_eq!(v["backends"][0]["servers"].as_array().unwrap().len(), 2);
    assert_eq!(http_get(admin, "/ready").status, 200);
    assert_eq!(http_get(admin, "/nope").status, 404);
    let csv = http_get(admin, "/stats;csv");
    assert!(csv.body_str().starts_with("# pxname,svname,"));
}

#[test]
fn a_scrape_never_blocks_traffic() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let (lb, admin) = start(&a, b.addr());
    let web = lb.addr("web");
    let scraper = std::thread::spawn(move || {
        for _ in 0..20 {
            assert_eq!(http_get(admin, "/metrics").status, 200);
        }
    });
    let mut c = HttpClient::connect(web);
    c.set_timeout(Duration::from_secs(5));
    for _ in 0..200 {
        assert_eq!(c.get("/").status, 200);
    }
    scraper.join().unwrap();
}

#[test]
fn metrics_count_connections_per_shard() {
    let a = TestBackend::start("a");
    let dead = ReservedPort::new();
    let (lb, admin) = start(&a, dead.addr());
    for _ in 0..40 {
        assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    }
    let m = http_get(admin, "/metrics").body_str();
    let s0 = sample(&m, "ringlb_shard_connections_total{shard=\"0\"}");
    let s1 = sample(&m, "ringlb_shard_connections_total{shard=\"1\"}");
    // Every connection was accepted by one shard or the other.
    assert_eq!(s0 + s1, 40.0, "{m}");
}
