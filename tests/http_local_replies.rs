//! Replies the balancer makes itself: 400 malformed request, 408 slow head, 431 head
//! too large, 502 bad upstream response, 503 no server reachable or nothing to route
//! to, 504 upstream too slow.

use crate::common;

use std::io;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn malformed_requests_get_400() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let bad = [
        "THIS IS NOT HTTP\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nHost t\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    ];
    for raw in bad {
        let mut c = HttpClient::connect(lb.addr("web"));
        let r = c
            .try_request(raw)
            .unwrap_or_else(|e| panic!("no reply to {raw:?}: {e}"));
        assert_eq!(r.status, 400, "reply to {raw:?}");
    }
    assert_eq!(b.requests(), 0, "a malformed request reached the backend");
}

#[test]
fn incomplete_head_gets_408() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(
        &[b.addr()],
        "[timeout]\nhttp_request = \"300ms\"\n",
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.set_timeout(Duration::from_secs(5));
    let t = Instant::now();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n");
    let (_, status, _, _) = c.read_head().expect("a 408 reply");
    assert_eq!(status, 408);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "408 after only {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "408 after {took:?} with a 300 ms timeout"
    );
    assert_eq!(b.requests(), 0);
}

#[test]
fn trickled_head_gets_408() {
    // One byte every 50 ms: never idle, but the head is not complete in time.
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(
        &[b.addr()],
        "[timeout]\nhttp_request = \"300ms\"\n",
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    c.set_timeout(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        assert!(Instant::now() < deadline, "no 408 within 5 s of trickling");
        let _ = c.try_send(b"a");
        match c.read_head() {
            Ok((_, status, _, _)) => break status,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("connection failed before a 408: {e}"),
        }
    };
    assert_eq!(status, 408);
    assert_eq!(b.requests(), 0);
}

#[test]
fn oversized_head_gets_431() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(
        &[b.addr()],
        "[limits]\nmax_header_bytes = 1024\n",
    ));
    // A head well under the limit passes.
    let small = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(300)
    );
    assert_eq!(
        HttpClient::connect(lb.addr("web")).request(small).status,
        200
    );
    // One over it does not.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    let r = HttpClient::connect(lb.addr("web"))
        .try_request(big)
        .expect("a reply to an oversized head");
    assert_eq!(r.status, 431);
    assert_eq!(b.requests(), 1);
}

#[test]
fn dead_servers_get_503_as_with_haproxy() {
    let (d1, d2) = (ReservedPort::new(), ReservedPort::new());
    let lb = RingLb::start(&http_config(
        &[d1.addr(), d2.addr()],
        "[timeout]\nconnect = \"1s\"\n",
    ));
    for _ in 0..4 {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 503, "{r:?}");
    }
}

#[test]
fn dead_server_is_skipped_when_another_works() {
    let b = TestBackend::start("alive");
    let dead = ReservedPort::new();
    let lb = RingLb::start(&http_config(&[dead.addr(), b.addr()], ""));
    for i in 0..6 {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.body_str(), "backend=alive");
    }
}

#[test]
fn invalid_upstream_response_gets_502() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let r = http_get(lb.addr("web"), "/garbage");
    assert_eq!(r.status, 502, "{r:?}");
}

#[test]
fn upstream_closing_without_a_response_gets_502() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let r = http_get(lb.addr("web"), "/close");
    assert_eq!(r.status, 502, "{r:?}");
    // The balancer is fine afterwards.
    assert_eq!(http_get(lb.addr("web"), "/").status, 200);
}

#[test]
fn unmatched_request_without_default_backend_gets_503() {
    let b = TestBackend::start("only");
    let cfg = format!(
        r#"
[runtime]
shards = 2

[frontend.web]
bind = "127.0.0.1:0"

[[frontend.web.route]]
host = "only.example.com"
backend = "only"

[backend.only]
{}
"#,
        servers_toml("only", &[b.addr()])
    );
    let lb = RingLb::start(&cfg);
    let r = http_get_host(lb.addr("web"), "only.example.com", "/");
    assert_eq!(r.status, 200);
    let r = http_get_host(lb.addr("web"), "other.example.com", "/");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(b.requests(), 1);
}

#[test]
fn slow_upstream_gets_504() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], "[timeout]\nserver = \"300ms\"\n"));
    let t = Instant::now();
    let r = http_get(lb.addr("web"), "/sleep/3000");
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        took < Duration::from_millis(2500),
        "504 after {took:?} with a 300 ms timeout"
    );
    // A fast request right after is fine.
    let r = http_get(lb.addr("web"), "/");
    assert_eq!(r.status, 200);
}

/// haproxy.cfg `timeout connect`: a server whose accept queue is full drops the SYNs, so
/// a connect to it hangs; with `timeout connect 300ms` and no retry the client gets
/// HAProxy's 503 well within 4 s (ringlb's default, 5 s, would not answer in time).
#[test]
fn haproxy_cfg_timeout_connect_bounds_a_connect_that_hangs() {
    use socket2::{Domain, Socket, Type};
    let full = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    full.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    full.listen(0).unwrap();
    let addr = full.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue (nothing accepts) until a connect hangs.
    let mut held = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    assert!(held.len() < 16, "the accept queue never filled");
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    retries 0\n    timeout connect 300ms\n    timeout client 30s\n    timeout server 30s\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {addr}\n"
    ));
    let mut c = HttpClient::connect(lb.addr("www"));
    c.set_timeout(Duration::from_secs(4));
    let started = Instant::now();
    let r = c
        .try_request("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("an answer once timeout connect (300ms) expired");
    assert_eq!(r.status, 503, "after {:?}", started.elapsed());
}
