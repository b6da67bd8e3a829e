//! The stats page on a frontend (`stats uri`, with `;csv`, `stats auth`, `stats
//! refresh`) and HAProxy's `http-request use-service prometheus-exporter`.

use crate::common;

use common::*;

fn start_cfg(b: &TestBackend) -> RingLb {
    let cfg = format!(
        "global\n    nbthread 2\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n    default_backend app\n\nbackend app\n    server s1 {}\n\nlisten stats\n    bind 127.0.0.1:0\n    stats enable\n    stats uri /haproxy?stats\n    stats refresh 10s\n    stats auth admin:s3cret\n    stats realm Ops\n    server none 127.0.0.1:1 disabled\n",
        b.addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let path = file.path().to_str().unwrap().to_string();
    RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"))
}

#[test]
fn stats_page_with_auth_and_csv() {
    let b = TestBackend::start("b");
    let lb = start_cfg(&b);
    for _ in 0..3 {
        assert_eq!(http_get(lb.addr("www"), "/").status, 200);
    }
    let stats = lb.addr("stats");
    let r = http_get(stats, "/haproxy?stats");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"Ops\""));
    let mut c = HttpClient::connect(stats);
    // admin:s3cret
    let r = c.request(
        "GET /haproxy?stats HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html"));
    let page = r.body_str();
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"10\">"),
        "{page}"
    );
    assert!(
        page.contains("id=\"px-app\"") && page.contains(">s1<"),
        "{page}"
    );
    let mut c = HttpClient::connect(stats);
    let r = c.request("GET /haproxy?stats;csv HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n\r\n");
    assert_eq!(r.status, 200);
    let csv = r.body_str();
    assert!(csv.starts_with("# pxname,svname,"), "{csv}");
    let row = csv
        .lines()
        .find(|l| l.starts_with("www,FRONTEND,"))
        .expect("frontend row");
    assert_eq!(
        row.split(',').nth(7),
        Some("3"),
        "stot merged from both shards: {row}"
    );
    assert_eq!(b.requests(), 3, "stats requests never reach a server");
}

#[test]
fn prometheus_exporter_on_a_frontend_path() {
    let b = TestBackend::start("b");
    let lb = start_cfg(&b);
    assert_eq!(http_get(lb.addr("www"), "/x").status, 200);
    let r = http_get(lb.addr("www"), "/metrics");
    assert_eq!(r.status, 200);
    let m = r.body_str();
    assert!(
        m.contains("haproxy_frontend_http_requests_total{proxy=\"www\"}"),
        "{m}"
    );
    assert!(
        m.contains("haproxy_server_status{proxy=\"app\",server=\"s1\",state=\"UP\"} 1"),
        "{m}"
    );
    assert_eq!(b.requests(), 1);
}

#[test]
fn toml_stats_uri_and_metrics_path() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\nstats_uri = \"/_stats\"\nmetrics_path = \"/_metrics\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
        b.addr()
    ));
    let addr = lb.addr("web");
    assert!(http_get(addr, "/_stats")
        .body_str()
        .contains("Statistics Report for pid"));
    assert!(http_get(addr, "/_metrics")
        .body_str()
        .contains("# TYPE haproxy_frontend_http_requests_total counter"));
    assert_eq!(b.requests(), 0);
}
