//! `maxconn` and the queue in front of it: a server never sees more concurrent
//! requests than its maxconn (split over the shards), the extra requests wait their
//! turn and all succeed; a request that waits longer than `timeout.queue` gets a 503;
//! a full queue (`maxqueue`) answers 503 at once, and so does the queue when every
//! server goes down; failed or abandoned requests give their slot back; maxconn below
//! the shard count is a config error.

use crate::common;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::traffic::*;
use common::*;

fn one_server(shards: usize, top: &str, backend: &str, b: &TestBackend, extra: &str) -> RingLb {
    RingLb::start(&app_config(
        shards,
        top,
        backend,
        &[server(b.name(), b.addr(), extra)],
    ))
}

/// `n` concurrent `GET path`, each on its own connection: the statuses.
fn concurrent(addr: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let path = path.to_string();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let path = path.clone();
            thread::spawn(move || {
                HttpClient::connect(addr)
                    .try_request(get_request(&path))
                    .map(|r| r.status)
                    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect()
}

#[test]
fn maxconn_is_never_exceeded_and_queued_requests_succeed() {
    let b = TestBackend::start("s1");
    let lb = one_server(1, "[timeout]\nqueue = \"10s\"", "", &b, "maxconn = 2");
    let statuses = concurrent(lb.addr("web"), "/sleep/200", 10);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(b.requests(), 10);
    assert_eq!(b.max_concurrent(), 2, "maxconn = 2 on one shard");
}

/// Starts `GET /sleep/MS` on its own connection and waits until the server has it.
/// The thread returns the status and when it arrived.
fn hold(lb: &RingLb, b: &TestBackend, ms: u64) -> thread::JoinHandle<(u16, Instant)> {
    let addr = lb.addr("web");
    let path = format!("/sleep/{ms}");
    let before = b.requests_to(&path);
    let p = path.clone();
    let h = thread::spawn(move || {
        let r = HttpClient::connect(addr).request(get_request(&p));
        (r.status, Instant::now())
    });
    wait_for(
        &format!("{path} on the server"),
        Duration::from_secs(5),
        || b.requests_to(&path) > before,
    );
    h
}

#[test]
fn queue_timeout_is_503() {
    let b = TestBackend::start("s1");
    let lb = one_server(1, "[timeout]\nqueue = \"300ms\"", "", &b, "maxconn = 1");
    let holder = hold(&lb, &b, 1500);
    let t = Instant::now();
    let r = HttpClient::connect(lb.addr("web")).request(get_request("/"));
    let waited = t.elapsed();
    assert_eq!(r.status, 503, "{:?}", r.body_str());
    // It gave up while the slot was still taken: the queue timeout, not the slot.
    assert_eq!(b.in_flight(), 1, "the 503 came after the slot freed");
    assert!(
        waited >= Duration::from_millis(200),
        "503 after {waited:?}: it did not wait in the queue"
    );
    assert_eq!(
        b.requests_to("/"),
        0,
        "the timed-out request reached the server"
    );
    assert_eq!(holder.join().unwrap().0, 200);
    // The slot is free again.
    assert_eq!(served_by(lb.addr("web"), "/"), "s1");
}

#[test]
fn full_queue_is_503_at_once() {
    let b = TestBackend::start("s1");
    let lb = one_server(
        1,
        "[timeout]\nqueue = \"10s\"",
        "maxqueue = 1",
        &b,
        "maxconn = 1",
    );
    let holder = hold(&lb, &b, 1500);
    // Two more: one takes the only place in the queue, the other finds it full.
    let addr = lb.addr("web");
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let r = HttpClient::connect(addr).request(get_request("/"));
                (r.status, Instant::now())
            })
        })
        .collect();
    let mut results: Vec<(u16, Instant)> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    results.sort();
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        [200, 503],
        "a queue of one, two waiting"
    );
    let (status, holder_done) = holder.join().unwrap();
    assert_eq!(status, 200);
    // The 503 came before the slow request ended (1.5 s), far ahead of timeout.queue
    // (10 s): it waited for neither.
    assert!(
        results[1].1 < holder_done,
        "the 503 came only after the slot freed"
    );
    assert_eq!(b.requests_to("/"), 1, "only the queued request was served");
}

#[test]
fn queued_request_gets_503_when_every_server_goes_down() {
    // A request waiting for the only slot must not wait for the slot nor for
    // timeout.queue once no server is up: 503 at the flip.
    let b = TestBackend::start("s1");
    let lb = one_server(
        1,
        "[timeout]\nqueue = \"10s\"",
        "[backend.app.health]\ntype = \"http\"\ninterval = \"100ms\"\ntimeout = \"1s\"\nfall = 2\nrise = 2\npath = \"/health\"",
        &b,
        "maxconn = 1",
    );
    let holder = hold(&lb, &b, 2000);
    let addr = lb.addr("web");
    let queued = thread::spawn(move || {
        let r = HttpClient::connect(addr).request(get_request("/"));
        (r.status, Instant::now())
    });
    b.set_health_status(500);
    wait_for_log(&lb, "Server app/s1 is DOWN", Duration::from_secs(3));
    let (status, at) = queued.join().unwrap();
    let (held, holder_done) = holder.join().unwrap();
    assert_eq!(status, 503, "queued request with every server down");
    assert!(
        at < holder_done,
        "the queued request was answered only after the slot freed"
    );
    // The request already on the server finishes normally.
    assert_eq!(held, 200);
    assert_eq!(b.requests_to("/"), 0);
}

#[test]
fn failed_and_abandoned_requests_give_their_slot_back() {
    // One slot in all: if any of these kept it, the last request would time out in
    // the queue (503).
    let b = TestBackend::start("s1");
    let lb = one_server(
        1,
        "[timeout]\nqueue = \"3s\"\nserver = \"500ms\"",
        "retries = 1\nerror_limit = 0",
        &b,
        "maxconn = 1",
    );
    let addr = lb.addr("web");
    let status = |raw: &[u8]| {
        HttpClient::connect(addr)
            .try_request(raw)
            .map(|r| r.status)
            .unwrap_or_else(|e| panic!("no response: {e}"))
    };
    // Closed without an answer (GET retried, POST not), garbage, too slow (504).
    assert_eq!(status(get_request("/close").as_bytes()), 502);
    assert_eq!(status(&post_request("/close", b"x")), 502);
    assert_eq!(status(get_request("/garbage").as_bytes()), 502);
    assert_eq!(status(get_request("/sleep/1000").as_bytes()), 504);
    // A client that leaves before its answer.
    let mut c = HttpClient::connect(addr);
    c.send(get_request("/sleep/200"));
    drop(c);
    // A response cut short by the server.
    let mut c = HttpClient::connect(addr);
    c.send(get_request("/bytes-close/100000"));
    drop(c);
    for i in 0..5 {
        let r = HttpClient::connect(addr).request(get_request("/"));
        assert_eq!(
            r.status,
            200,
            "request {i} after the failures: {:?}",
            r.body_str()
        );
    }
}

#[test]
fn maxconn_below_the_shard_count_is_accepted() {
    // The limit is the process's (tests/process_limits.rs): no config is refused
    // because of the shard count.
    let cfg = app_config(
        2,
        "",
        "",
        &[server("s1", "127.0.0.1:9".parse().unwrap(), "maxconn = 1")],
    );
    let out = check_config(&cfg);
    assert_eq!(out.code(), Some(0), "{out:?}");
}

/// The same from haproxy.cfg: server `maxconn 1 maxqueue 1` (ringlb keeps one queue per
/// backend, as large as its servers' largest `maxqueue`). Were `maxqueue` ignored, both
/// waiting requests would queue and be served.
#[test]
fn haproxy_cfg_server_maxqueue_turns_the_extra_request_away() {
    let b = TestBackend::start("s1");
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout queue 10s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {} maxconn 1 maxqueue 1\n",
        b.addr()
    ));
    let holder = hold(&lb, &b, 1500);
    let addr = lb.addr("web");
    let waiters: Vec<_> = (0..2)
        .map(|_| thread::spawn(move || HttpClient::connect(addr).request(get_request("/")).status))
        .collect();
    let mut statuses: Vec<u16> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 503], "a queue of one, two waiting");
    assert_eq!(holder.join().unwrap().0, 200);
}
