//! Servers added and deleted at run time travel through Redis (`[cluster]`): `add
//! server` on node A appears on node B (in maintenance, as on A), `enable server` on
//! A reaches B through the shared operator states, so B's traffic reaches the new
//! server; `del server` on B removes it from A; a node that starts afterwards gets
//! the servers added meanwhile.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::server_state::state_rows;
use common::*;

const WAIT: Duration = Duration::from_secs(10);

struct Node {
    lb: RingLb,
    sock: std::path::PathBuf,
}

fn node(ip: &str, redis: &RedisServer, dir: &Path, be: &TestBackend) -> Node {
    let sock = dir.join(format!("{ip}.sock"));
    let text = format!(
        r#"
global
    nbthread 2
    stats socket {sock} level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend web
    bind {ip}:0
    default_backend app

backend app
    server s1 {be}
"#,
        sock = sock.display(),
        be = be.addr()
    );
    let lb = redis.node(&text);
    Node { lb, sock }
}

/// (name, op_state, admin_state) of every server of `app`.
fn servers(n: &Node) -> Vec<(String, String, String)> {
    state_rows(&cli(&n.sock, "show servers state app"))
        .into_iter()
        .map(|r| (r[3].clone(), r[5].clone(), r[6].clone()))
        .collect()
}

fn row(name: &str, op: &str, admin: &str) -> (String, String, String) {
    (name.into(), op.into(), admin.into())
}

#[test]
fn added_and_deleted_servers_reach_every_node() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let a = node("127.0.0.2", &redis, dir.path(), &s1);
    let b = node("127.0.0.3", &redis, dir.path(), &s1);
    redis.wait_subscribed(2);

    let line = format!("add server app/s2 {} weight 3", s2.addr());
    assert_eq!(cli(&a.sock, &line), "New server registered.\n\n");
    wait_for("B has s2, in maintenance", WAIT, || {
        servers(&b) == [row("s1", "2", "0"), row("s2", "0", "1")]
    });
    assert_eq!(cli(&a.sock, "enable server app/s2"), "\n");
    wait_for("B's s2 ready", WAIT, || {
        servers(&b) == [row("s1", "2", "0"), row("s2", "2", "0")]
    });
    let weights = cli(&b.sock, "get weight app/s2");
    assert_eq!(weights, "3 (initial 3)\n\n");
    let before = s2.requests();
    for _ in 0..8 {
        assert_eq!(http_get(b.lb.addr("web"), "/").status, 200);
    }
    assert!(s2.requests() > before, "B sent nothing to s2");

    // A node started now has it too.
    let c = node("127.0.0.4", &redis, dir.path(), &s1);
    wait_for("C has s2, ready", WAIT, || {
        servers(&c) == [row("s1", "2", "0"), row("s2", "2", "0")]
    });

    // B deletes it; A and C follow.
    assert_eq!(cli(&b.sock, "disable server app/s2"), "\n");
    wait_for("the others' s2 in maintenance", WAIT, || {
        servers(&a)[1].2 == "1" && servers(&c)[1].2 == "1"
    });
    assert_eq!(cli(&b.sock, "del server app/s2"), "Server deleted.\n");
    wait_for("s2 gone everywhere", WAIT, || {
        [&a, &b, &c]
            .iter()
            .all(|n| servers(n) == [row("s1", "2", "0")])
    });
}
