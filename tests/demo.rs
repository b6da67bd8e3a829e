//! `ringlb demo --port P`: three in-process backends behind a balancer, ready to curl.

mod common;

use std::collections::BTreeSet;

use common::*;

#[test]
fn demo_serves_hello() {
    let port = free_port();
    let lb = RingLb::demo(port);
    let addr = lb.addr("demo");
    assert_eq!(addr.port(), port);
    assert!(addr.ip().is_loopback(), "demo listens on {addr}");

    let r = http_get(addr, "/");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body_str().contains("hello from backend"),
        "body: {:?}",
        r.body_str()
    );
}

#[test]
fn demo_balances_across_its_backends() {
    let lb = RingLb::demo(free_port());
    let mut c = HttpClient::connect(lb.addr("demo"));
    let mut seen = BTreeSet::new();
    for _ in 0..9 {
        let r = c.get("/");
        assert_eq!(r.status, 200);
        seen.insert(r.body_str().trim().to_string());
    }
    assert!(
        seen.len() > 1,
        "9 requests all went to one backend: {seen:?}"
    );
}
