//! `unique-id-format`, `unique-id-header`, the `unique-id` fetch and `%ID`: on the
//! real binary, the server sees the id in the header and the log line carries the same
//! id (a random `uuid()` one, so it cannot be guessed); against HAProxy 2.6 on the same
//! haproxy.cfg, the id is computed when a rule first asks for it, else once the
//! `http-request` rules are done (after a `set-header` they made), the header is added
//! after the client's own and before X-Forwarded-For, and the log shows the same id.

use crate::common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::client::HttpClient;
use common::haproxy::ringlb_cfg;
use common::twins::{Srv, Twins};
use common::TestBackend;

/// The log lines that arrived within a moment, with `tag[` (the program name) in them.
fn logged(log: &UdpSocket, tag: &str, want: usize) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && out.len() < want {
        let Ok(n) = log.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if !text.contains(&format!(" {tag}[")) {
            continue;
        }
        // HAProxy logs the harness's readiness probes (no request: no id) too.
        match text.split("ID=").nth(1).map(str::trim) {
            Some(id) if id != "-" => out.push(id.to_string()),
            _ => {}
        }
    }
    out
}

fn is_uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && parts[2].starts_with('4')
        && matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b'))
}

#[test]
fn the_server_and_the_log_see_the_same_uuid() {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let app = TestBackend::start("app");
    let lb = ringlb_cfg(&format!(
        r#"global
    log {} local0
defaults
    mode http
    log global
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend web
    bind 127.0.0.1:0
    log-format "ID=%ID"
    unique-id-format %[uuid()]
    unique-id-header X-Request-ID
    default_backend app
backend app
    server s1 {}
"#,
        log.local_addr().unwrap(),
        app.addr()
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = c.get("/headers");
        assert_eq!(r.status, 200);
        let body = r.body_str();
        let id = body
            .lines()
            .find_map(|l| {
                l.strip_prefix("X-Request-ID: ")
                    .or(l.strip_prefix("x-request-id: "))
            })
            .unwrap_or_else(|| panic!("no X-Request-ID in {body}"))
            .to_string();
        assert!(is_uuid_v4(&id), "{id}");
        seen.push(id);
    }
    // One id per request, not per connection.
    assert!(seen[0] != seen[1] && seen[1] != seen[2], "{seen:?}");
    let lines = logged(&log, "ringlb", 3);
    assert_eq!(lines, seen, "the log lines carry the ids the server saw");
}

#[test]
fn unique_id_matches_haproxy() {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let global = format!("    log {} local0\n", log.local_addr().unwrap());
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    log global
    log-format "ID=%ID"
    option forwardfor
    unique-id-format "%{+X}o%ci-%[req.hdr(x)]-%[var(txn.n)]"
    unique-id-header X-Req-ID
    http-request set-var(txn.n) str(first)
    http-request set-header y %[unique-id] if { query lazy }
    http-request set-header x changed
    http-request set-var(txn.n) str(second)
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start_with_global(&global, body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let tag = |who: &str| {
        if who == "haproxy" {
            "haproxy"
        } else {
            "ringlb"
        }
    };
    t.same("a rule asks for the id first, then none does", |s| {
        let mut answers = Vec::new();
        for q in ["/headers?lazy", "/headers"] {
            let mut c = HttpClient::connect(s.addr("web"));
            let r = c.request(format!(
                "GET {q} HTTP/1.1\r\nHost: h\r\nx: orig\r\nX-Req-ID: client\r\n\r\n"
            ));
            // HAProxy sends header names in lower case.
            answers.push(r.body_str().to_ascii_lowercase());
        }
        (answers, logged(&log, tag(s.who), 2))
    });
}

#[test]
fn bad_unique_id_lines_are_refused_with_their_line() {
    use common::haproxy::{haproxy_check, ringlb_check, write_cfg};
    for bad in [
        "unique-id-format %[nosuchfetch]",
        "unique-id-format",
        "unique-id-format %[uuid(7)]",
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
        assert!(said.contains(".cfg:8:"), "'{bad}': no line 8 in {said}");
    }
}
