//! Retries without `redispatch` stay on the server that failed (as HAProxy's do);
//! with it, they go to another server.

use crate::common;

use common::*;

fn config(redispatch: bool, dead: &ReservedPort, alive: std::net::SocketAddr) -> String {
    format!(
        "[runtime]\nshards = 1\n[timeout]\nconnect = \"1s\"\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\nretries = 2\nredispatch = {redispatch}\nerror_limit = 0\n[[backend.app.server]]\nname = \"dead\"\naddr = \"{}\"\n[[backend.app.server]]\nname = \"alive\"\naddr = \"{alive}\"\n",
        dead.addr()
    )
}

#[test]
fn without_redispatch_retries_stay_on_the_failing_server() {
    let b = TestBackend::start("alive");
    let dead = ReservedPort::new();
    let lb = RingLb::start(&config(false, &dead, b.addr()));
    let statuses: Vec<u16> = (0..10)
        .map(|_| http_get(lb.addr("web"), "/").status)
        .collect();
    // Round robin alternates: the requests picked for the dead server fail after
    // their retries there; the others are served.
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        5,
        "{statuses:?}"
    );
    // Three attempts (one + two retries) per failed request, all on the dead server.
    wait_for(
        "15 connect failures logged",
        std::time::Duration::from_secs(5),
        || lb.stderr().matches("server=dead").count() == 15,
    );
    assert_eq!(lb.stderr().matches("connect failed").count(), 15);
}

#[test]
fn with_redispatch_every_request_is_served() {
    let b = TestBackend::start("alive");
    let dead = ReservedPort::new();
    let lb = RingLb::start(&config(true, &dead, b.addr()));
    for _ in 0..10 {
        assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    }
}
