//! How requests are spread over the servers of a backend, per algorithm: round robin
//! and static round robin (equal and 3:1 weights), least connections (the idle server
//! wins), random with two draws (every server gets its share), first (fills server 1,
//! moves on when it is at maxconn). Exact checks use one shard; the two-shard check
//! uses new connections and the ±15 % tolerance.

use crate::common;

use std::thread;
use std::time::Duration;

use common::traffic::*;
use common::*;

const N: usize = 600;
const TOLERANCE: f64 = 0.15;

fn three() -> [TestBackend; 3] {
    [
        TestBackend::start("s1"),
        TestBackend::start("s2"),
        TestBackend::start("s3"),
    ]
}

fn equal_weights(algo: &str) {
    let b = three();
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    let lb = RingLb::start(&app_config(
        1,
        "",
        &format!("balance = \"{algo}\""),
        &servers,
    ));
    let t = tally_keepalive(lb.addr("web"), "/", N);
    for s in &b {
        t.assert_share(s.name(), 1.0 / 3.0, TOLERANCE);
    }
}

fn weighted_3_to_1(algo: &str) {
    let heavy = TestBackend::start("heavy");
    let light = TestBackend::start("light");
    let lb = RingLb::start(&app_config(
        1,
        "",
        &format!("balance = \"{algo}\""),
        &[
            server("heavy", heavy.addr(), "weight = 3"),
            server("light", light.addr(), "weight = 1"),
        ],
    ));
    let t = tally_keepalive(lb.addr("web"), "/", N);
    t.assert_share("heavy", 0.75, TOLERANCE);
    t.assert_share("light", 0.25, TOLERANCE);
}

#[test]
fn round_robin_equal_weights() {
    equal_weights("round_robin");
}

#[test]
fn round_robin_weighted_3_to_1() {
    weighted_3_to_1("round_robin");
}

#[test]
fn static_rr_equal_weights() {
    equal_weights("static_rr");
}

#[test]
fn static_rr_weighted_3_to_1() {
    weighted_3_to_1("static_rr");
}

#[test]
fn round_robin_over_two_shards_with_new_connections() {
    let b = three();
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    let lb = RingLb::start(&app_config(2, "", "balance = \"round_robin\"", &servers));
    let t = tally_fresh(lb.addr("web"), "/", N);
    for s in &b {
        t.assert_share(s.name(), 1.0 / 3.0, TOLERANCE);
    }
}

#[test]
fn weight_zero_gets_no_traffic() {
    let b = three();
    let lb = RingLb::start(&app_config(
        2,
        "",
        "balance = \"round_robin\"",
        &[
            server("s1", b[0].addr(), ""),
            server("s2", b[1].addr(), "weight = 0"),
            server("s3", b[2].addr(), ""),
        ],
    ));
    let t = tally_fresh(lb.addr("web"), "/", 100);
    assert_eq!(t.get("s2"), 0, "a weight-0 server got traffic: {t:?}");
    assert_eq!(b[1].requests(), 0);
    t.assert_share("s1", 0.5, TOLERANCE);
}

#[test]
fn random_two_draws_spreads_over_every_server() {
    // 1,500 requests: the ±15 % band is then over 4 standard deviations wide.
    let b = three();
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    let lb = RingLb::start(&app_config(
        1,
        "",
        "balance = \"random\"\nrandom_draws = 2",
        &servers,
    ));
    let t = tally_keepalive(lb.addr("web"), "/", 1500);
    for s in &b {
        t.assert_share(s.name(), 1.0 / 3.0, TOLERANCE);
    }
}

/// Sends `GET /sleep/MS` on its own connection from a thread and waits until one of
/// `backends` is handling it (each slow request needs its own MS, so that it can be
/// told by its path). Returns the server handling it and the thread, which returns
/// the server that answered.
fn slow_request(
    lb: &RingLb,
    backends: &[TestBackend],
    ms: u64,
) -> (String, thread::JoinHandle<String>) {
    let addr = lb.addr("web");
    let path = format!("/sleep/{ms}");
    let p = path.clone();
    let h = thread::spawn(move || served_by(addr, &p));
    let mut on = None;
    wait_for(
        &format!("{path} on a server"),
        Duration::from_secs(5),
        || {
            on = backends.iter().find(|b| b.requests_to(&path) > 0);
            on.is_some()
        },
    );
    (on.unwrap().name().to_string(), h)
}

#[test]
fn least_conn_sends_new_requests_to_the_idle_server() {
    let b = three();
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    let lb = RingLb::start(&app_config(1, "", "balance = \"least_conn\"", &servers));
    // Two long requests: least_conn puts the second on another server than the first.
    let (busy1, first) = slow_request(&lb, &b, 2000);
    let (busy2, second) = slow_request(&lb, &b, 2001);
    assert_ne!(busy1, busy2, "both slow requests went to one server");
    let idle = b
        .iter()
        .map(|s| s.name())
        .find(|&n| n != busy1 && n != busy2)
        .unwrap();
    // Every short request while both are busy goes to the idle one (round robin would
    // send two in three elsewhere).
    let t = tally_keepalive(lb.addr("web"), "/", 60);
    assert_eq!(
        t.get(idle),
        60,
        "least_conn sent short requests to busy servers {busy1} and {busy2}: {t:?}"
    );
    assert_eq!(first.join().expect("slow request"), busy1);
    assert_eq!(second.join().expect("slow request"), busy2);
    // Idle again: the load evens out.
    let t = tally_keepalive(lb.addr("web"), "/", 60);
    assert_eq!(t.names().len(), 3, "least_conn with equal loads: {t:?}");
}

#[test]
fn first_fills_server_one_then_moves_on_at_maxconn() {
    let b = three();
    let lb = RingLb::start(&app_config(
        1,
        "",
        "balance = \"first\"",
        &[
            server("s1", b[0].addr(), "maxconn = 1"),
            server("s2", b[1].addr(), "maxconn = 1"),
            server("s3", b[2].addr(), ""),
        ],
    ));
    let addr = lb.addr("web");
    let t = tally_keepalive(addr, "/", 50);
    assert_eq!(t.get("s1"), 50, "sequential requests with `first`: {t:?}");

    // s1 at its maxconn: the next server in id order takes new requests.
    let (on, hold1) = slow_request(&lb, &b, 1500);
    assert_eq!(on, "s1");
    let t = tally_keepalive(addr, "/", 20);
    assert_eq!(t.get("s2"), 20, "s1 full: {t:?}");

    // s1 and s2 full: s3.
    let (on, hold2) = slow_request(&lb, &b, 1501);
    assert_eq!(on, "s2");
    let t = tally_keepalive(addr, "/", 20);
    assert_eq!(t.get("s3"), 20, "s1 and s2 full: {t:?}");

    assert_eq!(hold1.join().unwrap(), "s1");
    assert_eq!(hold2.join().unwrap(), "s2");
    // Free again: back to s1.
    let t = tally_keepalive(addr, "/", 20);
    assert_eq!(t.get("s1"), 20, "after the slow requests: {t:?}");
}
