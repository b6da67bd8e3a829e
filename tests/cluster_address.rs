//! Addresses and names set at run time travel through Redis (`[cluster]`): `set server
//! addr` on node A moves node B's traffic to the new address (and B's `show servers
//! state` says so); a server added on A then given an address has it on B; `set
//! server fqdn` on A makes B follow the new name through its own resolver; a node
//! started afterwards learns all of it; a deleted server's address leaves the hash.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::dns::DnsServer;
use common::redis::Reply;
use common::*;

const WAIT: Duration = Duration::from_secs(10);

struct Node {
    lb: RingLb,
    sock: std::path::PathBuf,
}

fn node(ip: &str, redis: &RedisServer, dns: &DnsServer, dir: &Path, be: &TestBackend) -> Node {
    let sock = dir.join(format!("{ip}.sock"));
    let text = format!(
        r#"
global
    nbthread 2
    stats socket {sock} level admin

resolvers dns
    nameserver ns1 {dns}
    timeout resolve 100ms
    timeout retry 200ms
    hold valid 200ms

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

backend named
    server n1 one.test:8080 resolvers dns init-addr none
"#,
        sock = sock.display(),
        dns = dns.addr(),
        be = be.addr()
    );
    let lb = redis.node(&text);
    Node { lb, sock }
}

/// (srv_addr, srv_port, srv_fqdn) of server `name` of backend `backend` on `n`.
fn server(n: &Node, backend: &str, name: &str) -> Option<(String, String, String)> {
    let dump = cli(&n.sock, &format!("show servers state {backend}"));
    dump.lines().skip(2).find_map(|l| {
        let w: Vec<&str> = l.split(' ').collect();
        (w.len() > 18 && w[3] == name).then(|| (w[4].into(), w[18].into(), w[17].into()))
    })
}

/// PUBLISH commands Redis has run so far.
fn publishes(redis: &RedisServer) -> u64 {
    let Reply::Bulk(Some(info)) = redis.cmd(&["INFO", "commandstats"]) else {
        panic!("no INFO answer");
    };
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
        .and_then(|v| v.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

fn at(addr: &str, port: u16, fqdn: &str) -> Option<(String, String, String)> {
    Some((addr.into(), port.to_string(), fqdn.into()))
}

#[test]
fn addresses_and_names_set_on_one_node_reach_the_others() {
    let redis = RedisServer::start();
    let dns = DnsServer::start();
    dns.set("one.test", &["127.0.0.21"]);
    dns.set("two.test", &["127.0.0.22"]);
    let dir = tempfile::tempdir().unwrap();
    let old = TestBackend::start("old");
    let new = TestBackend::start("new");
    let p1 = old.addr().port();
    let p2 = new.addr().port();
    let a = node("127.0.0.2", &redis, &dns, dir.path(), &old);
    let b = node("127.0.0.3", &redis, &dns, dir.path(), &old);
    redis.wait_subscribed(2);
    wait_for("B resolved one.test", WAIT, || {
        server(&b, "named", "n1") == at("127.0.0.21", 8080, "one.test")
    });

    // A moves s1; B's traffic follows.
    let answer = cli(
        &a.sock,
        &format!("set server app/s1 addr 127.0.0.1 port {p2}"),
    );
    assert_eq!(
        answer,
        format!(
            "no need to change the addr, port changed from '{p1}' to '{p2}' by 'stats socket command'\n\n"
        )
    );
    wait_for("B's s1 at the new port", WAIT, || {
        server(&b, "app", "s1") == at("127.0.0.1", p2, "-")
    });
    let before = old.requests();
    for _ in 0..6 {
        let r = http_get(b.lb.addr("web"), "/");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            b"backend=new".as_slice(),
            "B still sends to the old address"
        );
    }
    assert_eq!(old.requests(), before);

    // A server added on A, then given an address: B makes both, in that order.
    let added = format!("add server app/s2 127.0.0.1:{p1}");
    assert_eq!(cli(&a.sock, &added), "New server registered.\n\n");
    let moved = cli(
        &a.sock,
        &format!("set server app/s2 addr 127.0.0.1 port {p2}"),
    );
    assert!(
        moved.contains(&format!("port changed from '{p1}' to '{p2}'")),
        "{moved}"
    );
    wait_for("B's s2 at the new port", WAIT, || {
        server(&b, "app", "s2") == at("127.0.0.1", p2, "-")
    });

    // A new name on A: B asks its own DNS for it.
    assert_eq!(
        cli(&a.sock, "set server named/n1 fqdn two.test"),
        "named/n1 changed its FQDN from one.test to two.test by 'stats socket command'\n\n"
    );
    wait_for("B follows two.test", WAIT, || {
        server(&b, "named", "n1") == at("127.0.0.22", 8080, "two.test")
    });

    // A node started now learns all of it.
    let c = node("127.0.0.4", &redis, &dns, dir.path(), &old);
    wait_for("C has every change", WAIT, || {
        server(&c, "app", "s1") == at("127.0.0.1", p2, "-")
            && server(&c, "app", "s2") == at("127.0.0.1", p2, "-")
            && server(&c, "named", "n1") == at("127.0.0.22", 8080, "two.test")
    });
    let r = http_get(c.lb.addr("web"), "/");
    assert_eq!(r.body, b"backend=new".as_slice());

    // B changes s1 back: A and C follow, and do not publish it again. A change of
    // A's afterwards marks the end: A's own events go out in order, so one echo of
    // B's change by A would be counted by then (and C's goes out as C applies it).
    let published = || publishes(&redis);
    let before = published();
    cli(
        &b.sock,
        &format!("set server app/s1 addr 127.0.0.1 port {p1}"),
    );
    wait_for("A and C back at the old port", WAIT, || {
        [&a, &c]
            .iter()
            .all(|n| server(n, "app", "s1") == at("127.0.0.1", p1, "-"))
    });
    cli(&a.sock, "set server app/s2 addr 127.0.0.5");
    wait_for("B and C have A's next change", WAIT, || {
        [&b, &c]
            .iter()
            .all(|n| server(n, "app", "s2") == at("127.0.0.5", p2, "-"))
    });
    assert_eq!(published(), before + 2, "a change was published again");
    assert_eq!(
        redis.cmd(&["HGET", "ringlb:addrs", "app/s1"]),
        Reply::Bulk(Some(format!("127.0.0.1 port {p1}")))
    );

    // A deleted server's address leaves the hash (a server added again under the
    // name starts from its own line).
    assert_eq!(cli(&a.sock, "del server app/s2"), "Server deleted.\n");
    wait_for("s2 gone from B and C", WAIT, || {
        server(&b, "app", "s2").is_none() && server(&c, "app", "s2").is_none()
    });
    assert_eq!(
        redis.cmd(&["HGET", "ringlb:addrs", "app/s2"]),
        Reply::Bulk(Some("-".into()))
    );
}
