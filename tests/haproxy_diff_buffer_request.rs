//! Differential test of `option http-buffer-request` against HAProxy 2.6: with the
//! option (in a frontend, or in the backend only), the server connection is opened
//! only once the request body is in; without it, as soon as the head is; a client
//! that expects `100-continue` gets it from the proxy and the server sees no
//! `Expect`; a body that does not come within `timeout http-request` gets a 408.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::twins::{Side, Srv, Twins};

/// What a client and the server saw of one request.
#[derive(Debug, PartialEq)]
struct Seen {
    /// The server had the request head before the client sent the body (ringlb may
    /// use a pooled connection where HAProxy opens one: heads, not connections, are
    /// counted).
    head_before_body: bool,
    /// The status lines the client got (interim ones first).
    statuses: Vec<String>,
    /// The final answer's body.
    body: String,
    /// The server got an `Expect` header.
    server_saw_expect: bool,
}

/// How long the client waits, after the head, for the server to see it before it
/// sends the body: without the option the head goes on at once (the wait ends then),
/// with it it may not.
const WINDOW: Duration = Duration::from_millis(500);

fn exchange(s: &Side, frontend: &str, server: &str, head: &str, body: &[u8]) -> Seen {
    let b = s.backend(server);
    let before = b.requests();
    let mut c = TcpStream::connect(s.addr(frontend)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    let until = Instant::now() + WINDOW;
    while b.requests() == before && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let head_before_body = b.requests() > before;
    let mut got = Vec::new();
    if head.to_ascii_lowercase().contains("expect: 100-continue") {
        // The client waits for the go-ahead (a proxy that gives none: the server's).
        let mut buf = [0u8; 1024];
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if let Ok(n) = c.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    c.write_all(body).unwrap();
    let _ = c.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got).to_string();
    let statuses = text
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .map(|l| l[..12].to_string())
        .collect();
    let body = text
        .rsplit_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let server_saw_expect = b
        .last_headers()
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("expect"));
    Seen {
        head_before_body,
        statuses,
        body,
        server_saw_expect,
    }
}

fn post(extra: &str, len: usize) -> String {
    format!(
        "POST /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n{extra}Content-Length: {len}\r\n\r\n"
    )
}

#[test]
fn the_server_is_connected_once_the_body_is_in_as_with_haproxy() {
    let body = r#"
frontend buffered
    bind "127.0.0.1:${BUF}"
    option http-buffer-request
    default_backend app

frontend streamed
    bind "127.0.0.1:${STREAM}"
    default_backend app

frontend to_buffering_backend
    bind "127.0.0.1:${BEBUF}"
    default_backend app_buf

backend app
    server s1 "${S1}"

backend app_buf
    option http-buffer-request
    server s2 "${S2}"
"#;
    let t = Twins::start(
        body,
        &[
            ("buffered", "BUF"),
            ("streamed", "STREAM"),
            ("to_buffering_backend", "BEBUF"),
        ],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    let chunked_head =
        "POST /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases: Vec<(&str, &str, &str, String, Vec<u8>)> = vec![
        (
            "option in the frontend",
            "buffered",
            "s1",
            post("", 5),
            b"hello".to_vec(),
        ),
        (
            "no option",
            "streamed",
            "s1",
            post("", 5),
            b"hello".to_vec(),
        ),
        (
            "option in the backend",
            "to_buffering_backend",
            "s2",
            post("", 5),
            b"hello".to_vec(),
        ),
        (
            "chunked body, option in the frontend",
            "buffered",
            "s1",
            chunked_head.to_string(),
            b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Expect: 100-continue, option in the frontend",
            "buffered",
            "s1",
            post("Expect: 100-continue\r\n", 5),
            b"hello".to_vec(),
        ),
        (
            "Expect: 100-continue, option in the backend",
            "to_buffering_backend",
            "s2",
            post("Expect: 100-continue\r\n", 5),
            b"hello".to_vec(),
        ),
    ];
    t.same_all(&cases, |s, (_, fe, server, head, body)| {
        exchange(s, fe, server, head, body)
    });
    // With the option, the body is always in before the server sees the head; without
    // it the server always has the head first (the comparison above is not vacuous).
    let seen = exchange(&t.lb, "buffered", "s1", &post("", 5), b"hello");
    assert!(!seen.head_before_body && seen.body == "hello", "{seen:?}");
    let seen = exchange(&t.lb, "streamed", "s1", &post("", 5), b"hello");
    assert!(seen.head_before_body && seen.body == "hello", "{seen:?}");
}

#[test]
fn a_body_that_does_not_come_gets_a_408_as_with_haproxy() {
    let body = r#"
frontend buffered
    timeout http-request 1s
    bind "127.0.0.1:${BUF}"
    option http-buffer-request
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("buffered", "BUF")], &[("S1", Srv::Up("s1"))]);
    let (hx, lb) = t.both(|s| {
        let b = s.backend("s1");
        let before = b.requests();
        let mut c = TcpStream::connect(s.addr("buffered")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Half the body, then nothing.
        c.write_all(post("", 10).as_bytes()).unwrap();
        c.write_all(b"hello").unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got).to_string();
        (
            text.get(..12).unwrap_or("").to_string(),
            b.requests() - before,
        )
    });
    assert_eq!(
        hx, lb,
        "HAProxy vs ringlb: (status, requests the server saw)"
    );
    assert_eq!(lb.0, "HTTP/1.1 408", "{lb:?}");
}
