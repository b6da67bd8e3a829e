//! The harness checked without the balancer: the test client talks straight to the
//! test backend and the echo server, so a failure elsewhere points at `ringlb`, not
//! at the tools.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use common::wire::{header_values, pattern_byte, pattern_slice};
use common::*;

#[test]
fn pattern_is_the_documented_formula() {
    for i in [0u64, 1, 250, 251, 252, 1000, 65_535, 1 << 26] {
        assert_eq!(pattern_byte(i), ((i * 31 + 7) % 251) as u8, "byte {i}");
        assert_eq!(pattern_slice(i, 1)[0], pattern_byte(i), "slice at {i}");
    }
    let p = pattern(300_000);
    assert_eq!(pattern_mismatch(&p, 0), None);
    assert_eq!(pattern_mismatch(&p[1000..], 1000), None);
    assert!(pattern_mismatch(&p[1..], 0).is_some());
}

#[test]
fn backend_endpoints() {
    let b = TestBackend::start("x");
    let mut c = HttpClient::connect(b.addr());
    assert_eq!(c.get("/").body_str(), "backend=x");
    let r = c.request(id_request("abc"));
    assert_eq!(
        (r.body_str().as_str(), r.header("x-id")),
        ("abc", Some("abc"))
    );
    assert_eq!(c.post("/echo", b"hi").body_str(), "hi");
    let r = c.request(post_chunked_request("/echo-chunked", &pattern(10_000), 333));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(pattern_mismatch(&r.body, 0), None);
    assert_eq!(r.body.len(), 10_000);
    assert_eq!(
        c.post("/sha256", b"abc").body_str(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        c.post("/sha256", &pattern(123_457)).body_str(),
        pattern_sha256(123_457)
    );
    let r = c.get("/bytes/100000");
    assert_eq!(
        (r.body.len(), pattern_mismatch(&r.body, 0)),
        (100_000, None)
    );
    let r = c.get("/bytes-chunked/100000");
    assert_eq!(
        (r.body.len(), pattern_mismatch(&r.body, 0)),
        (100_000, None)
    );
    for s in [204, 304] {
        let r = c.get(&format!("/status/{s}"));
        assert_eq!((r.status, r.body.len()), (s, 0));
    }
    assert_eq!(c.get("/status/404").status, 404);
    let r = c.request("HEAD /bytes/55 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.header("content-length"), r.body.len()), (Some("55"), 0));
    assert_eq!(c.get("/sleep/10").body_str(), "slept 10");
    let r = c.request("GET /headers HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n");
    assert!(r.body_str().contains("X-A: 1"));
    assert_eq!(header_values(&b.last_headers(), "x-a"), vec!["1"]);
    // All of that on one connection.
    assert_eq!(b.accepts(), 1);
    assert_eq!(b.requests(), 14);

    let r = c.get("/bytes-close/5000");
    assert_eq!((r.body.len(), pattern_mismatch(&r.body, 0)), (5000, None));
    assert!(HttpClient::connect(b.addr())
        .try_request(get_request("/close"))
        .is_err());
    assert!(HttpClient::connect(b.addr())
        .try_request(get_request("/garbage"))
        .is_err());
}

#[test]
fn backend_expect_continue_and_pipelining() {
    let b = TestBackend::start("x");
    let mut c = HttpClient::connect(b.addr());
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(c.read_head().unwrap().1, 100);
    c.send("ok");
    assert_eq!(c.read_response().body_str(), "ok");
    let reqs: Vec<Vec<u8>> = (0..5).map(|i| id_request(&i.to_string())).collect();
    let r = c.pipeline(&reqs);
    assert_eq!(
        r.iter().map(|r| r.body_str()).collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4"]
    );
}

#[test]
fn backend_idle_close_and_concurrency() {
    let b = TestBackend::start_with_idle_close("x", Duration::from_millis(50));
    let mut c = HttpClient::connect(b.addr());
    assert_eq!(c.get("/").status, 200);
    wait_for("idle close", Duration::from_secs(5), || {
        b.idle_closes() == 1
    });
    assert!(c.closed_by_peer(Duration::from_secs(1)));

    let addr = b.addr();
    let t: Vec<_> = (0..5)
        .map(|_| std::thread::spawn(move || http_get(addr, "/sleep/300")))
        .collect();
    for t in t {
        assert_eq!(t.join().unwrap().status, 200);
    }
    assert!(
        b.max_concurrent() >= 2,
        "max concurrent {}",
        b.max_concurrent()
    );
}

#[test]
fn echo_server_half_close() {
    let e = EchoServer::start();
    let mut s = TcpStream::connect(e.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"hello").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out, "hello");
    assert_eq!(e.accepts(), 1);
}

/// A reserved port refuses connections, cannot be bound by anyone who did not ask for
/// it with SO_REUSEADDR, and can be listened on by a program that does (as HAProxy and
/// redis-server bind): refused again once that listener is gone.
#[test]
fn reserved_port_refuses_and_can_be_handed_to_a_listener() {
    let r = ReservedPort::new();
    let a = r.addr();
    assert!(a.ip().is_loopback() && a.port() != 0, "{a}");
    let refused = || {
        TcpStream::connect_timeout(&a, Duration::from_secs(1))
            .expect_err("nothing listens on a reserved port")
            .kind()
            == std::io::ErrorKind::ConnectionRefused
    };
    assert!(refused());

    // Without SO_REUSEADDR the port is taken.
    let plain = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let err = plain
        .bind(&a.into())
        .expect_err("the reservation holds the port");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

    // With it (std's TcpListener::bind sets it, like HAProxy and redis-server), a
    // listener gets the port and accepts.
    let l = TcpListener::bind(a).expect("a SO_REUSEADDR listener on the reserved port");
    let mut c = TcpStream::connect_timeout(&a, Duration::from_secs(1)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    c.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
    drop((c, s, l));
    assert!(refused(), "refused again once the listener is gone");
}
