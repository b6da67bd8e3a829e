//! A TCP backend counts what goes wrong on its way to a server exactly as an HTTP
//! backend does (both take their server through the same dispatch layer): connection
//! errors (once a request gives up), retries, redispatches, and requests refused for
//! want of a server, in `show stat` and in `/metrics`.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::twins::stat_rows;
use common::*;

/// Frontend `web` (http) and `tcp` (tcp), each to its own backend of the same two
/// servers: one refusing connections, one answering.
fn config(dead: std::net::SocketAddr, live: std::net::SocketAddr, sock: &str) -> String {
    format!(
        r#"
[runtime]
shards = 1

[admin]
stats_socket = "{sock}"
listen = "127.0.0.1:0"

[frontend.web]
bind = "127.0.0.1:0"
mode = "http"
default_backend = "hb"

[frontend.tcp]
bind = "127.0.0.1:0"
mode = "tcp"
default_backend = "tb"

[backend.hb]
retries = 2
redispatch = true
[backend.hb.health]
interval = "1h"
[[backend.hb.server]]
name = "dead"
addr = "{dead}"
check = false
[[backend.hb.server]]
name = "live"
addr = "{live}"
check = false

[backend.tb]
retries = 2
redispatch = true
[[backend.tb.server]]
name = "dead"
addr = "{dead}"
check = false
[[backend.tb.server]]
name = "live"
addr = "{live}"
check = false
"#
    )
}

const COLUMNS: [&str; 4] = ["econ", "wretr", "wredis", "dreq"];

/// The columns of `px`'s backend row and of its `dead` server row.
fn counters(sock: &std::path::Path, px: &str) -> Vec<(String, Vec<String>)> {
    stat_rows(&cli(sock, "show stat"))
        .into_iter()
        .filter(|r| r["pxname"] == px && (r["svname"] == "BACKEND" || r["svname"] == "dead"))
        .map(|r| {
            let cols = COLUMNS.iter().map(|c| r[*c].clone()).collect();
            (r["svname"].clone(), cols)
        })
        .collect()
}

#[test]
fn tcp_and_http_backends_count_retries_redispatches_and_connection_errors_alike() {
    let live = TestBackend::start("live");
    let refusing = ReservedPort::new();
    let dead = refusing.addr();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stats.sock");
    let lb = RingLb::start(&config(dead, live.addr(), sock.to_str().unwrap()));

    // Round robin starts every request on the dead server (the redispatch to the live
    // one moved the wheel past it): it is refused, the request is retried and
    // redispatched to the live one, and served.
    const N: usize = 6;
    for _ in 0..N {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 200);
        let mut c = TcpStream::connect(lb.addr("tcp")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 200"), "tcp mode answer: {got:?}");
    }
    let http = counters(&sock, "hb");
    let tcp = counters(&sock, "tb");
    assert_eq!(http, tcp, "show stat, http backend then tcp backend");
    let backend = &tcp.iter().find(|(sv, _)| sv == "BACKEND").unwrap().1;
    let n = N.to_string();
    // Every request was served in the end: no connection error (HAProxy counts one
    // when a request gives up), a retry and a redispatch each.
    assert_eq!(backend[..3], ["0".to_string(), n.clone(), n], "{tcp:?}");

    let metrics = http_get(lb.admin_addr(), "/metrics").body_str();
    for family in [
        "haproxy_backend_connection_errors_total",
        "haproxy_backend_retry_warnings_total",
        "haproxy_backend_redispatch_warnings_total",
    ] {
        let h = metric(&metrics, &format!("{family}{{proxy=\"hb\"}}"));
        let t = metric(&metrics, &format!("{family}{{proxy=\"tb\"}}"));
        assert_eq!(h, t, "{family}");
        let want = if family.contains("connection_errors") {
            0
        } else {
            N
        };
        assert_eq!(t, Some(want as f64), "{family}");
    }
}

#[test]
fn a_tcp_backend_without_servers_counts_refused_connections() {
    let refusing = ReservedPort::new();
    let dead = refusing.addr();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stats.sock");
    let lb = RingLb::start(&config(dead, dead, sock.to_str().unwrap()));
    for _ in 0..3 {
        let mut c = TcpStream::connect(lb.addr("tcp")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        // Closed without a byte: no server could be reached.
        assert_eq!(c.read_to_end(&mut got).map(|_| got.len()).unwrap_or(0), 0);
    }
    let tcp = counters(&sock, "tb");
    let backend = &tcp.iter().find(|(sv, _)| sv == "BACKEND").unwrap().1;
    // Each connection: 3 attempts (2 retries), all refused; one connection error when
    // it gives up, as HAProxy counts.
    assert_eq!(backend[0], "3", "econ: {tcp:?}");
    assert_eq!(backend[1], "6", "wretr: {tcp:?}");
}
