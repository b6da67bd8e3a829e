//! Stick counters of the rule language beyond one thread: two shards of one node see
//! each other's counts within a sync interval or two; two nodes sharing a Redis see
//! each other's `gpc0` and request rate; an entry's `conn_cur` falls back when its
//! connections close, on every shard.

use crate::common;

use std::time::Duration;

use common::haproxy::write_cfg;
use common::*;

/// ringlb on haproxy.cfg `text` with `env`.
fn start(text: &str, env: &[(&str, String)]) -> RingLb {
    let cfg = write_cfg(text);
    let path = cfg.path().to_str().unwrap().to_string();
    RingLb::launch_env(&["-f", &path], Some(cfg), env, |l| l.starts_with("ready"))
}

/// The value of header `name` the server saw last.
fn seen(b: &TestBackend, name: &str) -> String {
    b.last_request()
        .and_then(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_default()
}

fn config(ip: &str, backend: &TestBackend, shards: usize) -> String {
    format!(
        r#"
global
    nbthread {shards}

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend web
    bind {ip}:0
    stick-table type string len 32 size 1k expire 1m store http_req_cnt,http_req_rate(1m),gpc0,conn_cur
    http-request track-sc0 req.hdr(x-user)
    http-request sc-inc-gpc0(0) if {{ path /inc }}
    http-request set-header X-Counts %[sc0_http_req_cnt]/%[sc0_http_req_rate]/%[sc0_get_gpc0]/%[sc0_conn_cur]
    default_backend app

backend app
    server s1 {}
"#,
        backend.addr()
    )
}

#[test]
fn shards_of_a_node_share_their_counts() {
    let b = TestBackend::start("s1");
    let lb = start(&config("127.0.0.1", &b, 2), &[]);
    let addr = lb.addr("web");
    // Fresh connections spread over both shards (SO_REUSEPORT hashes each one).
    for _ in 0..20 {
        let r =
            HttpClient::connect(addr).request("GET /inc HTTP/1.1\r\nHost: h\r\nX-User: u1\r\n\r\n");
        assert_eq!(r.status, 200);
    }
    // Every shard ends up counting all 20 (plus the request that reads them).
    wait_for(
        "both shards agree on 21 requests",
        Duration::from_secs(5),
        || {
            (0..6).all(|_| {
                HttpClient::connect(addr)
                    .request("GET / HTTP/1.1\r\nHost: h\r\nX-User: u1\r\n\r\n");
                let v = seen(&b, "x-counts");
                let parts: Vec<i64> = v.split('/').filter_map(|p| p.parse().ok()).collect();
                parts.len() == 4 && parts[0] >= 21 && parts[2] == 20
            })
        },
    );
    // No other request of u1 is in flight: conn_cur comes back to 1 (the one asking).
    wait_for(
        "conn_cur back to 1 on every shard",
        Duration::from_secs(5),
        || {
            (0..6).all(|_| {
                HttpClient::connect(addr)
                    .request("GET / HTTP/1.1\r\nHost: h\r\nX-User: u1\r\n\r\n");
                seen(&b, "x-counts").ends_with("/1")
            })
        },
    );
}

#[test]
fn nodes_share_counters_through_redis() {
    let redis = RedisServer::start();
    let b = TestBackend::start("s1");
    let env = [("RINGLB_REDIS_URL", redis.url())];
    let a = start(&config("127.0.0.2", &b, 1), &env);
    let c = start(&config("127.0.0.3", &b, 1), &env);
    for _ in 0..5 {
        let r = HttpClient::connect(a.addr("web"))
            .request("GET /inc HTTP/1.1\r\nHost: h\r\nX-User: shared\r\n\r\n");
        assert_eq!(r.status, 200);
    }
    wait_for(
        "node B sees node A's gpc0 and requests",
        Duration::from_secs(5),
        || {
            HttpClient::connect(c.addr("web"))
                .request("GET / HTTP/1.1\r\nHost: h\r\nX-User: shared\r\n\r\n");
            let v = seen(&b, "x-counts");
            let parts: Vec<i64> = v.split('/').filter_map(|p| p.parse().ok()).collect();
            parts.len() == 4 && parts[2] == 5 && parts[0] >= 6
        },
    );
}
