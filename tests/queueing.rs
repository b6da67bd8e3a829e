//! `maxconn` and the queue in front of it: a server never sees more concurrent
//! requests than its maxconn (split over the shards), the extra requests wait their
//! turn and all succeed; a request that waits longer than `timeout.queue` gets a 503;
//! a full queue (`maxqueue`) answers 503 at once; maxconn below the shard count is a
//! config error.

mod common;

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

#[test]
fn maxconn_is_split_over_the_shards() {
    // maxconn 2 over 2 shards: one slot each, two at most in all.
    let b = TestBackend::start("s1");
    let lb = one_server(2, "[timeout]\nqueue = \"10s\"", "", &b, "maxconn = 2");
    let statuses = concurrent(lb.addr("web"), "/sleep/200", 10);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(b.requests(), 10);
    assert!(
        (1..=2).contains(&b.max_concurrent()),
        "max concurrent {} with maxconn = 2",
        b.max_concurrent()
    );
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
    let holder = hold(&lb, &b, 2500);
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
    let holder = hold(&lb, &b, 2500);
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
    // The 503 came before the slow request ended (2.5 s), far ahead of timeout.queue
    // (10 s): it waited for neither.
    assert!(
        results[1].1 < holder_done,
        "the 503 came only after the slot freed"
    );
    assert_eq!(b.requests_to("/"), 1, "only the queued request was served");
}

#[test]
fn maxconn_below_the_shard_count_is_a_config_error() {
    let cfg = |maxconn: u32| {
        app_config(
            2,
            "",
            "",
            &[server(
                "s1",
                "127.0.0.1:9".parse().unwrap(),
                &format!("maxconn = {maxconn}"),
            )],
        )
    };
    let out = check_config(&cfg(1));
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("backend.app.server[0].maxconn")
            && out.stderr.contains("maxconn 1 is below the shard count 2"),
        "{}",
        out.stderr
    );
    let out = check_config(&cfg(2));
    assert_eq!(out.code(), Some(0), "{out:?}");
}
