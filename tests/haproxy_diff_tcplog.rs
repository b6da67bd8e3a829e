//! Differential test of `option tcplog` termination states: HAProxy 2.6 and ringlb run
//! the same haproxy.cfg, both log to one UDP syslog listener of the test (told apart
//! by their syslog tag), and the same TCP connections must end with the same state
//! and server in both: a refused connect (`SC`), a queue timeout (`sQ`), a server that
//! stays silent past `timeout server` (`sD`), and a normal exchange (`--`).

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::twins::{Side, Srv, Twins};

/// A syslog line's fields after the tag: (frontend, backend/server, term).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    frontend: String,
    server: String,
    term: String,
}

/// The log line of `tag` (`haproxy` or `ringlb`) for the connection from `client`
/// (other lines, such as those of the harness's readiness probes, are skipped).
fn line_of(log: &UdpSocket, tag: &str, client: std::net::SocketAddr) -> Option<Line> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    let from = client.to_string();
    while Instant::now() < deadline {
        let Ok(n) = log.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        // <PRI>Mmm dd hh:mm:ss TAG[PID]: CLIENT [DATE] FRONTEND BACKEND/SERVER
        // Tw/Tc/Tt BYTES TERM ...
        let Some((head, rest)) = text.split_once("]: ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if !head.contains(&format!(" {tag}[")) || f.len() < 7 || f[0] != from {
            continue;
        }
        return Some(Line {
            frontend: f[2].to_string(),
            server: f[3].to_string(),
            term: f[6].to_string(),
        });
    }
    None
}

fn tag(s: &Side) -> &'static str {
    if s.who == "haproxy" {
        "haproxy"
    } else {
        "ringlb"
    }
}

fn connect(s: &Side, fe: &str) -> TcpStream {
    let c = TcpStream::connect(s.addr(fe)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Reads until the proxy closes; returns what came.
fn until_closed(mut c: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    got
}

#[test]
fn tcplog_termination_states_match_haproxy() {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let body = format!(
        r#"
global
    log {} local0

frontend refused
    mode tcp
    bind "127.0.0.1:${{P1}}"
    option tcplog
    log global
    default_backend dead

frontend queued
    mode tcp
    bind "127.0.0.1:${{P2}}"
    option tcplog
    log global
    default_backend one

frontend silent
    mode tcp
    bind "127.0.0.1:${{P3}}"
    option tcplog
    log global
    default_backend slow

frontend fine
    mode tcp
    bind "127.0.0.1:${{P4}}"
    option tcplog
    log global
    default_backend ok

backend dead
    mode tcp
    retries 1
    server d1 "${{D1}}"

backend one
    mode tcp
    timeout queue 300ms
    server q1 "${{Q1}}" maxconn 1

backend slow
    mode tcp
    timeout server 300ms
    server w1 "${{W1}}"

backend ok
    mode tcp
    server k1 "${{K1}}"
"#,
        log.local_addr().unwrap()
    );
    let t = Twins::start(
        &body,
        &[
            ("refused", "P1"),
            ("queued", "P2"),
            ("silent", "P3"),
            ("fine", "P4"),
        ],
        &[
            ("D1", Srv::Dead),
            ("Q1", Srv::Up("q1")),
            ("W1", Srv::Up("w1")),
            ("K1", Srv::Up("k1")),
        ],
    );

    t.same("a connection to a backend whose server refuses", |s| {
        let c = connect(s, "refused");
        let me = c.local_addr().unwrap();
        until_closed(c);
        line_of(&log, tag(s), me)
    });
    t.same(
        "a connection queued behind maxconn 1 past timeout queue",
        |s| {
            // The first connection holds the only slot (the test server waits for a
            // request it never gets); the second waits in the queue.
            let holder = connect(s, "queued");
            std::thread::sleep(Duration::from_millis(100));
            let c = connect(s, "queued");
            let me = c.local_addr().unwrap();
            until_closed(c);
            drop(holder);
            line_of(&log, tag(s), me)
        },
    );
    t.same(
        "a connection whose server says nothing past timeout server",
        |s| {
            let c = connect(s, "silent");
            let me = c.local_addr().unwrap();
            until_closed(c);
            line_of(&log, tag(s), me)
        },
    );
    t.same("a request and its answer, then the client closes", |s| {
        let mut c = connect(s, "fine");
        let me = c.local_addr().unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let got = until_closed(c);
        assert!(got.starts_with(b"HTTP/1.1 200"), "{}", s.who);
        line_of(&log, tag(s), me)
    });
}
