//! Maps changed at run time travel through Redis (`[cluster]`): `add map` on node A
//! is in force on node B within a second, `del map` on B reaches A, and a node that
//! starts afterwards serves its first request with the current entries.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

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
    http-request deny deny_status 429 if {{ req.hdr(host),map({dir}/hosts.map,open) -m str closed }}
    default_backend app

backend app
    server s1 {be}
"#,
        sock = sock.display(),
        dir = dir.display(),
        be = be.addr()
    );
    let lb = redis.node(&text);
    Node { lb, sock }
}

fn statuses(n: &Node, host: &str) -> Vec<u16> {
    (0..20)
        .map(|_| http_get_host(n.lb.addr("web"), host, "/").status)
        .collect()
}

#[test]
fn map_changes_reach_every_node_and_new_nodes_start_with_them() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts.map"), "shut.example closed\n").unwrap();
    let map = format!("{}/hosts.map", dir.path().display());
    let be = TestBackend::start("s1");
    let a = node("127.0.0.2", &redis, dir.path(), &be);
    let b = node("127.0.0.3", &redis, dir.path(), &be);
    redis.wait_subscribed(2);
    assert!(statuses(&b, "new.example").iter().all(|&s| s == 200));

    let t0 = Instant::now();
    assert_eq!(
        cli(&a.sock, &format!("add map {map} new.example closed")),
        "\n"
    );
    // A: in force when answered.
    assert!(statuses(&a, "new.example").iter().all(|&s| s == 429));
    wait_for("B sees A's entry", Duration::from_secs(10), || {
        statuses(&b, "new.example").iter().all(|&s| s == 429)
    });
    let took = t0.elapsed();
    let shown = cli(&b.sock, &format!("show map {map}"));
    assert!(shown.contains(" new.example closed\n"), "{shown}");

    // B deletes the file's own entry; A follows.
    assert_eq!(cli(&b.sock, &format!("del map {map} shut.example")), "\n");
    assert!(statuses(&b, "shut.example").iter().all(|&s| s == 200));
    wait_for("A sees B's deletion", Duration::from_secs(10), || {
        statuses(&a, "shut.example").iter().all(|&s| s == 200)
    });

    // A node started now serves its first request with the current entries.
    let c = node("127.0.0.4", &redis, dir.path(), &be);
    let first = http_get_host(c.lb.addr("web"), "new.example", "/").status;
    assert_eq!(first, 429, "the new node's first request");
    assert!(statuses(&c, "shut.example").iter().all(|&s| s == 200));
    let shown = cli(&c.sock, &format!("show map {map}"));
    assert_eq!(
        shown.lines().filter(|l| !l.is_empty()).count(),
        1,
        "{shown}"
    );
    eprintln!("add map on A in force on B after {took:?}");
}
