//! A `disabled` backend runs no health checks (HAProxy starts no check for a stopped
//! proxy): its server's health endpoint sees no connection, while the same server
//! behind an enabled backend is checked.

use crate::common;

use std::time::{Duration, Instant};

use common::haproxy::{render, ringlb_cfg};
use common::raw::RawServer;

#[test]
fn a_disabled_backend_checks_nothing() {
    let stopped = RawServer::start(drop);
    let running = RawServer::start(drop);
    let cfg = render(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend f\n    bind 127.0.0.1:0\n    default_backend live\n\nbackend live\n    server s \"${RUNNING}\" check inter 50ms\n\nbackend off\n    disabled\n    server s \"${STOPPED}\" check inter 50ms\n",
        &[
            ("RUNNING", running.addr().to_string()),
            ("STOPPED", stopped.addr().to_string()),
        ],
    );
    let _lb = ringlb_cfg(&cfg);
    // The enabled backend's checks show the health thread is running.
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.accepts() < 5 {
        assert!(
            Instant::now() < deadline,
            "the enabled backend is not checked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        stopped.accepts(),
        0,
        "the disabled backend's server was checked"
    );
}
