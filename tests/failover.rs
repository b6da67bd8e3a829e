//! Failures a client must not see, and the ones it must see quickly: a server that
//! stops in the middle of keep-alive traffic costs no request (retries with
//! redispatch); a dead server in tcp mode is skipped at connect; a request whose bytes
//! were sent is replayed only when it is idempotent and was buffered whole (a POST is
//! never sent twice); passive failures take a server out for a cool-down; with every
//! server down the answer is an immediate 503, not a wait.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::traffic::*;
use common::*;

/// "Quickly": far below every timeout configured in these tests (5 s).
const QUICK: Duration = Duration::from_secs(1);

#[test]
fn stopping_a_server_under_keep_alive_traffic_fails_no_request() {
    const CLIENTS: usize = 2;
    const PER_CLIENT: usize = 1000;
    let b: Vec<Arc<TestBackend>> = (1..=3)
        .map(|i| Arc::new(TestBackend::start(&format!("s{i}"))))
        .collect();
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    let lb = RingLb::start(&app_config(
        2,
        "[timeout]\nconnect = \"1s\"",
        "balance = \"round_robin\"\nretries = 3\nredispatch = true",
        &servers,
    ));
    let addr = lb.addr("web");

    // s2 stops (listener and open connections) while requests are flowing.
    let victim = b[1].clone();
    let stopper = thread::spawn(move || {
        wait_for("s2 to serve 200 requests", Duration::from_secs(30), || {
            victim.requests() >= 200
        });
        victim.stop();
        victim.requests()
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let mut client = HttpClient::connect(addr);
                let mut t = Tally::default();
                for i in 0..PER_CLIENT {
                    let r = client
                        .try_request(get_request("/"))
                        .unwrap_or_else(|e| panic!("client {c}, request {i}: {e}"));
                    assert_eq!(r.status, 200, "client {c}, request {i}: {:?}", r.body_str());
                    t.add(&backend_of(&r));
                }
                t
            })
        })
        .collect();
    let mut total = Tally::default();
    for c in clients {
        let t = c.join().expect("client thread");
        for name in ["s1", "s2", "s3"] {
            for _ in 0..t.get(name) {
                total.add(name);
            }
        }
    }
    let s2_at_stop = stopper.join().expect("stopper thread");
    assert_eq!(total.total(), CLIENTS * PER_CLIENT);
    assert!(
        total.get("s2") <= s2_at_stop,
        "s2 answered after it stopped: {total:?}"
    );
    assert!(total.get("s1") > 0 && total.get("s3") > 0, "{total:?}");
}

fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn tcp_mode_skips_dead_servers_at_connect() {
    let echo = EchoServer::start();
    let (d1, d2) = (ReservedPort::new(), ReservedPort::new());
    // error_limit = 0: the dead servers are never marked down, so every connection
    // that meets one goes through the connect retry itself.
    let lb = RingLb::start(&app_config_mode(
        "tcp",
        2,
        "[timeout]\nconnect = \"1s\"",
        "balance = \"round_robin\"\nretries = 2\nredispatch = true\nerror_limit = 0",
        &[
            server("dead1", d1.addr(), ""),
            server("dead2", d2.addr(), ""),
            server("echo", echo.addr(), ""),
        ],
    ));
    for i in 0..30 {
        let mut s = tcp_connect(lb.addr("web"));
        let msg = format!("connection {i}");
        s.write_all(msg.as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        s.read_to_string(&mut back)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(back, msg, "connection {i}");
    }
    assert_eq!(echo.accepts(), 30);
    assert!(!lb.stderr().contains("is DOWN"), "{}", lb.stderr());
}

#[test]
fn http_skips_dead_servers_at_connect() {
    let b = TestBackend::start("alive");
    let (d1, d2) = (ReservedPort::new(), ReservedPort::new());
    let lb = RingLb::start(&app_config(
        2,
        "[timeout]\nconnect = \"1s\"",
        "retries = 2\nredispatch = true\nerror_limit = 0",
        &[
            server("dead1", d1.addr(), ""),
            server("dead2", d2.addr(), ""),
            server("alive", b.addr(), ""),
        ],
    ));
    let t = tally_fresh(lb.addr("web"), "/", 60);
    assert_eq!(t.get("alive"), 60);
}

/// A fresh connection, one request: the status, or None if the connection broke.
fn status_of(addr: SocketAddr, raw: &[u8]) -> u16 {
    let r = HttpClient::connect(addr)
        .try_request(raw)
        .unwrap_or_else(|e| panic!("no response: {e}"));
    r.status
}

fn two_closers() -> (TestBackend, TestBackend, RingLb) {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    let lb = RingLb::start(&app_config(
        2,
        "",
        "retries = 3\nredispatch = true\nerror_limit = 0",
        &[server("s1", b1.addr(), ""), server("s2", b2.addr(), "")],
    ));
    (b1, b2, lb)
}

#[test]
fn post_is_never_sent_twice() {
    // `/close` reads the whole request, then closes without a byte of answer.
    let (b1, b2, lb) = two_closers();
    let addr = lb.addr("web");
    for i in 0..5 {
        assert_eq!(
            status_of(addr, &post_request("/close", b"order=1")),
            502,
            "POST {i}"
        );
        let posts = b1.requests_with_method("POST") + b2.requests_with_method("POST");
        assert_eq!(posts, i + 1, "POST {i} was sent {} times", posts - i);
    }
    // Chunked, and with Expect: 100-continue: still once.
    let chunked = post_chunked_request("/close", &pattern(3000), 1000);
    assert_eq!(status_of(addr, &chunked), 502);
    let mut expect = b"POST /close HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    assert_eq!(status_of(addr, &expect), 502);
    expect.clear();
    let posts = b1.requests_with_method("POST") + b2.requests_with_method("POST");
    assert_eq!(posts, 7, "7 POSTs sent, {posts} reached the servers");
}

#[test]
fn idempotent_request_is_replayed_only_when_buffered_whole() {
    let (b1, b2, lb) = two_closers();
    let addr = lb.addr("web");
    let count = |m: &str| b1.requests_with_method(m) + b2.requests_with_method(m);

    // GET: the first attempt and `retries` more, spread over both servers.
    assert_eq!(status_of(addr, get_request("/close").as_bytes()), 502);
    assert_eq!(count("GET"), 4, "GET with retries = 3");
    assert!(b1.requests_to("/close") > 0 && b2.requests_to("/close") > 0);

    // A small PUT (whole in the first read): replayed the same way.
    let small = b"PUT /close HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(status_of(addr, small), 502);
    assert_eq!(count("PUT"), 4, "small PUT with retries = 3");

    // A 1 MiB PUT is streamed, never held whole: once only.
    let big = pattern(1 << 20);
    let mut raw = format!(
        "PUT /close HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    raw.extend_from_slice(&big);
    assert_eq!(status_of(addr, &raw), 502);
    assert_eq!(count("PUT"), 5, "a streamed PUT was sent again");
}

#[test]
fn passive_failures_mark_a_server_down_for_a_cool_down() {
    let b = TestBackend::start("alive");
    let dead = ReservedPort::new();
    let lb = RingLb::start(&app_config(
        2,
        "[timeout]\nconnect = \"1s\"",
        "retries = 3\nredispatch = true\nerror_limit = 3",
        &[
            server("dead", dead.addr(), ""),
            server("alive", b.addr(), ""),
        ],
    ));
    let addr = lb.addr("web");
    // Every request still works (retried on `alive`) while `dead` collects failures.
    let mut sent = 0;
    while !lb.stderr().contains("Server app/dead is DOWN") {
        assert!(sent < 200, "no passive DOWN after {sent} requests");
        assert_eq!(served_by(addr, "/"), "alive");
        sent += 1;
    }
    assert!(
        lb.stderr()
            .contains("Server app/dead is DOWN, reason: Passive check: 3 consecutive errors"),
        "{}",
        lb.stderr()
    );
    // Without active checks it is tried again after the 2 s cool-down.
    wait_for_log(
        &lb,
        "Server app/dead is UP, reason: Passive check: cool-down over",
        Duration::from_secs(6),
    );
    let t = tally_fresh(addr, "/", 20);
    assert_eq!(t.get("alive"), 20);
}

#[test]
fn every_server_down_is_an_immediate_503() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    // Long connect and queue timeouts: a 503 that waited for either would be slow.
    let lb = RingLb::start(&app_config(
        2,
        "[timeout]\nconnect = \"5s\"\nqueue = \"5s\"",
        "retries = 3\n[backend.app.health]\ntype = \"http\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nfall = 2\nrise = 2\npath = \"/health\"",
        &[server("s1", b1.addr(), ""), server("s2", b2.addr(), "")],
    ));
    let addr = lb.addr("web");
    assert_eq!(status_of(addr, get_request("/").as_bytes()), 200);
    b1.set_health_status(500);
    b2.set_health_status(500);
    wait_for_log(&lb, "Server app/s1 is DOWN", Duration::from_secs(3));
    wait_for_log(&lb, "Server app/s2 is DOWN", Duration::from_secs(3));
    wait_for_log(&lb, "backend app has no server available!", QUICK);
    // Each shard applies the flips on its own next tick: wait for 30 503s in a row
    // (new connections land on either shard).
    let mut in_a_row = 0;
    wait_for("30 503s in a row", Duration::from_secs(2), || {
        match status_of(addr, get_request("/").as_bytes()) {
            503 => in_a_row += 1,
            200 => in_a_row = 0,
            other => panic!("{other} while the servers go down"),
        }
        in_a_row >= 30
    });
    let served = b1.requests_to("/") + b2.requests_to("/");
    for i in 0..20 {
        let t = Instant::now();
        let status = status_of(addr, get_request("/").as_bytes());
        let took = t.elapsed();
        assert_eq!(status, 503, "request {i} with every server down");
        assert!(took < QUICK, "request {i}: 503 took {took:?}");
    }
    assert!(
        b1.requests_to("/") + b2.requests_to("/") == served,
        "requests reached servers that were down"
    );

    // One comes back: served again.
    b2.set_health_status(200);
    wait_for_log(&lb, "Server app/s2 is UP", Duration::from_secs(3));
    // 503 until each shard's next tick: wait for ten 200s in a row, from s2.
    let mut in_a_row = 0;
    wait_for(
        "ten answers in a row from s2",
        Duration::from_secs(3),
        || {
            let r = HttpClient::connect(addr).request(get_request("/"));
            match r.status {
                200 => {
                    assert_eq!(backend_of(&r), "s2");
                    in_a_row += 1;
                }
                503 => in_a_row = 0,
                other => panic!("{other} while s2 comes back"),
            }
            in_a_row >= 10
        },
    );
}

#[test]
fn every_server_dead_is_an_immediate_503() {
    let (d1, d2) = (ReservedPort::new(), ReservedPort::new());
    // Nothing listens: connects are refused at once. Once the retries are spent the
    // answer is 503 (as HAProxy answers); after the passive error limit has marked both
    // servers down, 503 without trying. Never a wait for the 5 s timeouts.
    let lb = RingLb::start(&app_config(
        2,
        "[timeout]\nconnect = \"5s\"\nqueue = \"5s\"",
        "retries = 3\nerror_limit = 4",
        &[server("d1", d1.addr(), ""), server("d2", d2.addr(), "")],
    ));
    let addr = lb.addr("web");
    for i in 0..20 {
        let t = Instant::now();
        let status = status_of(addr, get_request("/").as_bytes());
        let took = t.elapsed();
        assert_eq!(status, 503, "request {i} with every server dead");
        assert!(took < QUICK, "request {i}: 503 took {took:?}");
    }
    wait_for_log(&lb, "backend app has no server available!", QUICK);
}

/// haproxy.cfg server `error-limit N` with `observe layer4` and `on-error mark-down`: N
/// consecutive connect failures mark the server down (the default would take 10). Its
/// active check (`inter 60s`, `fall 3`) cannot have marked it down that soon.
#[test]
fn haproxy_cfg_error_limit_observe_and_on_error_mark_a_server_down() {
    let b = TestBackend::start("alive");
    let dead = ReservedPort::new();
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    retries 3\n    option redispatch\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    balance roundrobin\n    server dead {} check inter 60s fall 3 observe layer4 error-limit 2 on-error mark-down\n    server alive {}\n",
        dead.addr(),
        b.addr()
    ));
    let addr = lb.addr("web");
    let mut sent = 0;
    while !lb.stderr().contains("Server app/dead is DOWN") {
        assert!(sent < 100, "no passive DOWN after {sent} requests");
        assert_eq!(served_by(addr, "/"), "alive");
        sent += 1;
    }
    assert!(
        lb.stderr()
            .contains("Server app/dead is DOWN, reason: Passive check: 2 consecutive errors"),
        "{}",
        lb.stderr()
    );
}
