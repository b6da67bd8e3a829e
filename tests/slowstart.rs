//! `slowstart`: a server that comes back up starts with a small effective weight and
//! ramps up to its configured weight over the slow-start period, instead of taking its
//! full share at once.

use crate::common;

use std::time::{Duration, Instant};

use common::traffic::*;
use common::*;

#[test]
fn server_back_up_ramps_up_its_share() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    // One shard, so the shares are exact for the one balancer.
    let lb = RingLb::start(&app_config(
        1,
        "",
        "balance = \"round_robin\"\n[backend.app.health]\ntype = \"http\"\ninterval = \"100ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\npath = \"/health\"",
        &[
            server("s1", b1.addr(), "weight = 20\nslowstart = \"3s\""),
            server("s2", b2.addr(), "weight = 20"),
        ],
    ));
    let addr = lb.addr("web");
    // At start servers are up with their full weight: no ramp.
    tally_keepalive(addr, "/", 200).assert_share("s1", 0.5, 0.15);

    b1.set_health_status(500);
    wait_for_log(&lb, "Server app/s1 is DOWN", Duration::from_secs(3));
    until_in_a_row(addr, "/", 20, Duration::from_secs(3), "on s2", |s| {
        s == "s2"
    });
    b1.set_health_status(200);
    wait_for_log(&lb, "Server app/s1 is UP", Duration::from_secs(3));
    let up_at = Instant::now();

    // Just back: a small part of its half (weight 1 of 20 at first, growing).
    until_in_a_row(addr, "/", 1, Duration::from_secs(2), "on s1", |s| s == "s1");
    let early = tally_keepalive(addr, "/", 200);
    let early_took = up_at.elapsed();
    assert!(
        early.get("s1") < 50,
        "s1 took {} of 200 requests in the first {early_took:?} of a 3 s slow start (full share: 100): {early:?}",
        early.get("s1")
    );

    // After the ramp: its full share again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = tally_keepalive(addr, "/", 200);
        if (85..=115).contains(&t.get("s1")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "s1 still below its share {:?} after it came back: {t:?}",
            up_at.elapsed()
        );
    }
    assert!(
        up_at.elapsed() >= Duration::from_secs(1),
        "full share after only {:?} of a 3 s slow start",
        up_at.elapsed()
    );
}

/// haproxy.cfg server `slowstart`: a server back up after a check failure takes a small
/// part of its share (weight 20 against 20, `slowstart 30s`); ignored, it would take half.
#[test]
fn haproxy_cfg_slowstart_holds_back_a_server_that_comes_back() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    balance roundrobin\n    option httpchk GET /health\n    server s1 {} check inter 100ms rise 1 fall 1 weight 20 slowstart 30s\n    server s2 {} check inter 100ms rise 1 fall 1 weight 20\n",
        b1.addr(),
        b2.addr()
    ));
    let addr = lb.addr("web");
    b1.set_health_status(500);
    wait_for_log(&lb, "Server app/s1 is DOWN", Duration::from_secs(3));
    b1.set_health_status(200);
    wait_for_log(&lb, "Server app/s1 is UP", Duration::from_secs(3));
    let early = tally_keepalive(addr, "/", 200);
    assert!(
        early.get("s1") < 50,
        "s1 took {} of 200 requests early in a 30 s slow start (full share: 100): {early:?}",
        early.get("s1")
    );
}
