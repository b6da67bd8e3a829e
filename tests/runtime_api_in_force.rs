//! A runtime API change is in force when the command is answered, as in HAProxy:
//! `set server B/S weight 0`, `state drain`, `state maint` and `health down`, each followed at once by
//! a burst of requests on new connections and on keep-alive connections spread over
//! every shard, and not one request reaches the server after the answer.

use crate::common;

use common::*;

fn config(s1: std::net::SocketAddr, s2: std::net::SocketAddr, sock: &str) -> String {
    format!(
        r#"
[runtime]
shards = 2

[admin]
stats_socket = "{sock}"
listen = "127.0.0.1:0"

[frontend.web]
bind = "127.0.0.1:0"
default_backend = "app"

[backend.app]
[[backend.app.server]]
name = "s1"
addr = "{s1}"
check = false
[[backend.app.server]]
name = "s2"
addr = "{s2}"
check = false
"#
    )
}

#[test]
fn weight_drain_and_maint_are_in_force_when_answered() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stats.sock");
    let lb = RingLb::start(&config(s1.addr(), s2.addr(), sock.to_str().unwrap()));
    let addr = lb.addr("web");
    // Keep-alive clients: enough that the kernel spreads them over both shards.
    let mut clients: Vec<HttpClient> = (0..16).map(|_| HttpClient::connect(addr)).collect();
    for c in &mut clients {
        assert_eq!(c.get("/").status, 200);
    }

    let changes = [
        ("set server app/s2 weight 0", "set server app/s2 weight 1"),
        (
            "set server app/s2 state drain",
            "set server app/s2 state ready",
        ),
        (
            "set server app/s2 state maint",
            "set server app/s2 state ready",
        ),
        ("disable server app/s2", "enable server app/s2"),
        // Forced by the health thread, which tells the shards: in force on every shard
        // when answered, not only on the health thread.
        (
            "set server app/s2 health down",
            "set server app/s2 health up",
        ),
    ];
    for (change, undo) in changes {
        // s2 takes traffic before the change.
        let before = s2.requests();
        for c in &mut clients {
            assert_eq!(c.get("/").status, 200);
        }
        assert!(s2.requests() > before, "{undo}: s2 took no traffic");

        assert_eq!(cli(&sock, change).trim(), "", "{change}");
        let seen = s2.requests();
        // Keep-alive clients first: their requests reach the shards at once.
        for c in &mut clients {
            for _ in 0..6 {
                assert_eq!(c.get("/").status, 200);
            }
        }
        for _ in 0..60 {
            assert_eq!(http_get(addr, "/").status, 200);
        }
        assert_eq!(
            s2.requests(),
            seen,
            "requests reached s2 after `{change}` was answered"
        );
        assert_eq!(cli(&sock, undo).trim(), "", "{undo}");
    }
    // Both shards served the keep-alive clients (the test proved what it says).
    let metrics = http_get(lb.admin_addr(), "/metrics").body_str();
    for shard in 0..2 {
        let series = format!("ringlb_shard_connections_total{{shard=\"{shard}\"}}");
        let n = metric(&metrics, &series).unwrap_or(0.0);
        assert!(
            n >= 1.0,
            "shard {shard} accepted no connection: {series} = {n}"
        );
    }
}
