//! A panic while handling one connection closes that connection only: requests in
//! flight on the same shard finish, new ones are served, the panic is logged and counted.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_panicking_connection_costs_only_itself() {
    // Only this test runs in this binary, so setting the variable races with nothing.
    std::env::set_var("RINGLB_FAULT_PANIC_PATH", "/boom");
    let b = TestBackend::start("b");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
        b.addr()
    ));
    let addr = lb.addr("web");

    // A slow request in flight on the (only) shard.
    let slow = std::thread::spawn(move || http_get(addr, "/sleep/500"));
    wait_for(
        "the slow request to reach the backend",
        Duration::from_secs(5),
        || b.in_flight() == 1,
    );

    let mut c = HttpClient::connect(addr);
    c.set_timeout(Duration::from_secs(5));
    assert!(
        c.try_request(get_request("/boom")).is_err(),
        "the panicking connection is closed without a response"
    );

    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "the request in flight finished");
    for _ in 0..5 {
        assert_eq!(http_get(addr, "/").status, 200);
    }
    wait_for("the panic in the log", Duration::from_secs(5), || {
        lb.stderr().contains("connection handler panicked")
    });
    let m = http_get(lb.admin_addr(), "/metrics").body_str();
    assert!(
        m.contains("ringlb_frontend_handler_panics_total{proxy=\"web\"} 1"),
        "{m}"
    );
}
