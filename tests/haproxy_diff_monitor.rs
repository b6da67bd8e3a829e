//! Differential test of `monitor-uri` and `monitor fail`: HAProxy 2.6 and ringlb run the
//! same haproxy.cfg and must give byte-for-byte the same answer to a monitor request
//! (200 with HAProxy's body, 503 once `monitor fail if { nbsrv(app) lt 1 }` holds, the
//! body dropped for HEAD, the connection kept open), forward what is not the monitor
//! URI (`/up?x=1`), log no monitor request, and count them as intercepted.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::twins::{stat_rows, Side, Srv, Twins};

/// Raw bytes of the answers to `raw` (several pipelined requests), read until the
/// proxy has been quiet for a moment or closed.
fn raw_answers(addr: SocketAddr, raw: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(raw.as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match c.read(&mut buf) {
            Ok(0) => {
                out.extend_from_slice(b"<closed>");
                break;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    // HAProxy writes every header name in lower case (a server's too): compared
    // without case.
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

/// The request lines `tag` logged within a moment.
fn logged(log: &UdpSocket, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let Ok(n) = log.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.contains(&format!(" {tag}[")) {
            // The harness's readiness probes (connections without a request) log
            // `<BADREQ>` on HAProxy.
            if let Some(req) = text.split('"').nth(1).filter(|r| *r != "<BADREQ>") {
                out.push(req.to_string());
            }
        }
    }
    out.sort();
    out
}

fn tag(s: &Side) -> &'static str {
    if s.who == "haproxy" {
        "haproxy"
    } else {
        "ringlb"
    }
}

/// The frontend's `intercepted` count once it reached `at_least` (ringlb's counters
/// reach the runtime API through the shards' snapshots: a moment later), or what it
/// is after 5 s.
fn intercepted(s: &Side, at_least: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = stat_rows(&s.cli("show stat"))
            .into_iter()
            .find(|r| r["pxname"] == "web" && r["svname"] == "FRONTEND")
            .map(|r| r["intercepted"].clone())
            .unwrap_or_default();
        if n.parse::<u64>().is_ok_and(|v| v >= at_least) || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn monitor_uri_and_monitor_fail_match_haproxy() {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let global = format!("    log {} local0\n", log.local_addr().unwrap());
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    log global
    option httplog
    monitor-uri /up
    monitor fail if { nbsrv(app) lt 1 }
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start_with_global(&global, body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let up = "GET /up HTTP/1.1\r\nHost: h\r\n\r\nHEAD /up HTTP/1.1\r\nHost: h\r\n\r\nGET /up?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
    t.same("monitor requests while the backend has a server", |s| {
        let answers = raw_answers(s.addr("web"), up);
        let head10 = raw_answers(s.addr("web"), "HEAD /up HTTP/1.0\r\n\r\n");
        (answers, head10, logged(&log, tag(s)), intercepted(s, 3))
    });
    for s in [&t.hx, &t.lb] {
        s.cli("disable server app/s1");
    }
    t.same("a monitor request once no server is left", |s| {
        (
            raw_answers(s.addr("web"), "GET /up HTTP/1.1\r\nHost: h\r\n\r\n"),
            logged(&log, tag(s)),
            intercepted(s, 4),
        )
    });
}

#[test]
fn bad_monitor_lines_are_refused_with_their_line() {
    use common::haproxy::{haproxy_check, ringlb_check, write_cfg};
    for bad in [
        "monitor-uri",
        "monitor fail",
        "monitor pass if TRUE",
        "monitor fail if { nosuchfetch }",
    ] {
        let text = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend web\n    bind 127.0.0.1:0\n    {bad}\n    default_backend app\nbackend app\n    server s1 127.0.0.1:80\n"
        );
        let cfg = write_cfg(&text);
        assert!(
            !haproxy_check(cfg.path(), &[]).status.success(),
            "HAProxy accepted '{bad}'"
        );
        let lb = ringlb_check(cfg.path(), &[]);
        let said = format!("{}{}", lb.stdout, lb.stderr);
        assert!(!lb.status.success(), "ringlb accepted '{bad}'");
        assert!(said.contains(":8:"), "'{bad}': no line 8 in {said}");
    }
}
