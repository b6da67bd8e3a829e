//! The upstream connection pool: idle connections are shared by client connections,
//! and a pooled connection that the server closed is not an error for the client.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn pooled_connections_are_shared_across_client_connections() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    for i in 0..50 {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(b.requests(), 50);
    assert!(
        b.accepts() <= 4,
        "50 sequential client connections used {} upstream connections (want <= 4)",
        b.accepts()
    );
}

#[test]
fn server_closed_idle_connection_is_not_an_error() {
    let b = TestBackend::start_with_idle_close("a", Duration::from_millis(100));
    let lb = RingLb::start(&http_config_shards(
        1,
        &[b.addr()],
        "[pool]\nidle_timeout = \"30s\"\n",
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    for i in 0..5 {
        let closes = b.idle_closes();
        let r = c.get("/");
        assert_eq!(r.status, 200, "GET {i}: {r:?}");
        assert_eq!(r.body_str(), "backend=a");
        // Let the backend close the (now idle) pooled connection, then go again.
        wait_for(
            "the backend to close its idle connection",
            Duration::from_secs(5),
            || b.idle_closes() > closes,
        );
    }
    for i in 0..3 {
        let closes = b.idle_closes();
        let r = c.post("/echo", format!("post {i}").as_bytes());
        assert_eq!(r.status, 200, "POST {i}: {r:?}");
        assert_eq!(r.body_str(), format!("post {i}"));
        wait_for(
            "the backend to close its idle connection",
            Duration::from_secs(5),
            || b.idle_closes() > closes,
        );
    }
}

#[test]
fn server_closed_idle_connection_on_fresh_client_connections() {
    let b = TestBackend::start_with_idle_close("a", Duration::from_millis(100));
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    for i in 0..5 {
        let closes = b.idle_closes();
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        wait_for(
            "the backend to close its idle connection",
            Duration::from_secs(5),
            || b.idle_closes() > closes,
        );
    }
}
