//! `ringlb demo --port P`: three in-process backends behind a balancer, ready to curl.
//! `--port 0` takes a free port and says which.

use crate::common;

use std::collections::BTreeSet;

use common::*;

#[test]
fn demo_serves_hello() {
    let lb = RingLb::demo(0);
    let addr = lb.addr("demo");
    assert_ne!(addr.port(), 0, "the listening line names the port it got");
    assert!(addr.ip().is_loopback(), "demo listens on {addr}");
    // What to curl names the same address.
    let hint = format!("curl http://{addr}/");
    wait_for("the curl hint", std::time::Duration::from_secs(5), || {
        lb.stdout_lines().iter().any(|l| l.contains(&hint))
    });

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
    let lb = RingLb::demo(0);
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
