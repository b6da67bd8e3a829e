//! Keep-alive on both sides: many requests on one client connection ride a handful of
//! upstream connections; `Connection: close`, HTTP/1.0 and the client idle timeout end
//! a client connection.

use crate::common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn sequential_requests_reuse_upstream_connections() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    for i in 0..200 {
        let id = format!("req-{i}");
        let r = c.request(id_request(&id));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.body_str(), id, "request {i}");
    }
    assert_eq!(b.requests(), 200);
    assert!(
        b.accepts() <= 4,
        "200 sequential requests used {} upstream connections (want <= 4)",
        b.accepts()
    );
}

#[test]
fn client_connection_close_is_honoured() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "backend=a");
    assert!(
        c.closed_by_peer(Duration::from_secs(5)),
        "balancer kept the connection open after Connection: close"
    );
}

#[test]
fn http10_without_keep_alive_is_closed() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request("GET / HTTP/1.0\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        c.closed_by_peer(Duration::from_secs(5)),
        "balancer kept an HTTP/1.0 connection without keep-alive open"
    );
}

#[test]
fn idle_client_connection_is_closed() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(
        &[b.addr()],
        "[timeout]\nclient = \"300ms\"\nhttp_request = \"300ms\"\n",
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.get("/").status, 200);
    let t = Instant::now();
    assert!(
        c.closed_by_peer(Duration::from_secs(5)),
        "idle keep-alive connection still open after 5 s with a 300 ms timeout"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "closed too early: {:?}",
        t.elapsed()
    );
}

#[test]
fn keep_alive_survives_many_connections_in_parallel() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let addr = lb.addr("web");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = HttpClient::connect(addr);
                for i in 0..50 {
                    let id = format!("t{t}-r{i}");
                    let r = c.request(id_request(&id));
                    assert_eq!(r.body_str(), id);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(b.requests(), 400);
}

#[test]
fn a_connection_quiet_between_requests_serves_the_next_one() {
    // Quiet for longer than the 100 ms after which a keep-alive connection gives its
    // buffers back: the next request, whole, pipelined or in pieces, is served on the
    // same connection.
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let quiet = || std::thread::sleep(Duration::from_millis(300));
    for i in 0..3 {
        let id = format!("after-quiet-{i}");
        assert_eq!(c.request(id_request(&id)).body_str(), id);
        quiet();
    }
    let r = c.pipeline(&[id_request("p1"), id_request("p2")]);
    assert_eq!(
        (r[0].body_str(), r[1].body_str()),
        ("p1".into(), "p2".into())
    );
    quiet();
    c.send("GET /id HTTP/1.1\r\nHost: t\r\n");
    quiet();
    c.send("x-id: split\r\n\r\n");
    assert_eq!(c.read_response().body_str(), "split");
    assert_eq!(b.accepts(), 1);
}

/// The read that waits for a keep-alive connection's next request is cancelled when the
/// 100 ms grace ends (on io_uring: `io::read_into_cancelling`), and a request arriving
/// as it is cancelled must be read all the same. Requests sent from 90 to 110 ms after
/// the previous response, on 8 connections at once, are each answered whole.
#[test]
fn requests_arriving_as_the_idle_grace_ends_are_served() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    let addr = lb.addr("web");
    let clients: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = HttpClient::connect(addr);
                for i in 0..21u64 {
                    let id = format!("c{t}-r{i}");
                    assert_eq!(c.request(id_request(&id)).body_str(), id, "{id}");
                    // 90 to 110 ms in 1 ms steps, shifted per connection.
                    std::thread::sleep(Duration::from_millis(90 + (i + t * 3) % 21));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("every request answered whole");
    }
    assert_eq!(b.requests(), 8 * 21);
}

#[test]
fn a_silent_new_connection_gets_408_at_http_request() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(
        &[b.addr()],
        "[timeout]\nhttp_request = \"300ms\"\n",
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    let t = Instant::now();
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "answered too early: {:?}",
        t.elapsed()
    );
    assert!(c.closed_by_peer(Duration::from_secs(5)));
    assert_eq!(b.requests(), 0);
}

/// Reads from `s` until the peer closes; false if it is still open after `within`.
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// haproxy.cfg's `timeout http-keep-alive` (an idle keep-alive connection), `timeout
/// client` (a request body that stops arriving) and `timeout tunnel` (an idle `mode tcp`
/// connection, whose `timeout client` and `timeout server` are long) each close their
/// connection after 300 ms. Were one ignored, its connection would stay open for the
/// 30 s of the fallback (`timeout http-request`, ringlb's default, `timeout client`).
#[test]
fn haproxy_cfg_timeouts_close_idle_and_silent_connections() {
    let b = TestBackend::start("a");
    let echo = EchoServer::start();
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 300ms\n    timeout server 30s\n    timeout http-request 30s\n    timeout http-keep-alive 300ms\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nfrontend raw\n    mode tcp\n    bind 127.0.0.1:0\n    timeout client 30s\n    default_backend echo\nbackend app\n    server s1 {}\nbackend echo\n    mode tcp\n    timeout tunnel 300ms\n    server e1 {}\n",
        b.addr(),
        echo.addr()
    ));
    let bound = Duration::from_secs(10);

    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.get("/").status, 200);
    assert!(c.closed_by_peer(bound), "timeout http-keep-alive 300ms");

    let mut s = std::net::TcpStream::connect(lb.addr("web")).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .unwrap();
    assert!(closed_within(&mut s, bound), "timeout client 300ms");

    let mut t = std::net::TcpStream::connect(lb.addr("raw")).unwrap();
    std::io::Write::write_all(&mut t, b"ping").unwrap();
    let mut pong = [0u8; 4];
    t.set_read_timeout(Some(bound)).unwrap();
    std::io::Read::read_exact(&mut t, &mut pong).unwrap();
    assert_eq!(&pong, b"ping");
    assert!(closed_within(&mut t, bound), "timeout tunnel 300ms");
}
