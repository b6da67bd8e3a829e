//! `add server` / `del server` on the runtime API, against the real binary on two
//! shards: a new server starts in maintenance and takes traffic after `enable server`;
//! `del server` is refused while the server is ready or holds a connection, then
//! accepted, and the server is gone from every listing; on a consistent-hash backend
//! only the new server's keys move; bad lines get HAProxy's error and change nothing;
//! a reload drops the dynamic server (it is not in the file), as HAProxy 2.6.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::haproxy::{cli, render, ringlb_cfg};
use common::server_state::state_rows;
use common::*;

const WAIT: Duration = Duration::from_secs(10);

fn config(sock: &Path, balance: &str, servers: &str) -> String {
    render(
        r#"global
    nbthread 2
    stats socket "${SOCK}" mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:0
    default_backend app

backend app
    ${BALANCE}
${SERVERS}

frontend stats
    bind 127.0.0.1:0
    http-request use-service prometheus-exporter if { path /metrics }

backend fixed
    balance static-rr
    server f1 127.0.0.1:1
"#,
        &[
            ("SOCK", sock.display().to_string()),
            ("BALANCE", balance.to_string()),
            ("SERVERS", servers.to_string()),
        ],
    )
}

/// ringlb on `config(.., balance, servers)`, and its stats socket (in `dir`).
fn start(balance: &str, servers: &str) -> (RingLb, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let lb = ringlb_cfg(&config(&sock, balance, servers));
    (lb, dir, sock)
}

/// The server that answered each of `n` requests on fresh connections.
fn spread(addr: std::net::SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let r = http_get(addr, "/");
        assert_eq!(r.status, 200);
        *seen
            .entry(r.header("x-backend").unwrap_or("-").to_string())
            .or_default() += 1;
    }
    seen
}

/// Server names of `show servers state`.
fn state_names(sock: &Path) -> Vec<String> {
    state_rows(&cli(sock, "show servers state"))
        .into_iter()
        .map(|r| r[3].clone())
        .collect()
}

/// Server names of backend `app` in `show stat`.
fn stat_names(sock: &Path) -> Vec<String> {
    cli(sock, "show stat")
        .lines()
        .filter(|l| l.starts_with("app,") && !l.contains(",FRONTEND,") && !l.contains(",BACKEND,"))
        .map(|l| l.split(',').nth(1).unwrap_or("").to_string())
        .collect()
}

#[test]
fn an_added_server_takes_traffic_once_enabled() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let (lb, _dir, sock) = start(
        "balance roundrobin",
        &format!("    server s1 {}", s1.addr()),
    );
    let addr = lb.addr("web");
    assert_eq!(
        cli(&sock, &format!("add server app/s2 {} weight 1", s2.addr())),
        "New server registered.\n\n"
    );
    // In maintenance: listed, but no request reaches it.
    assert_eq!(state_names(&sock), ["s1", "s2", "f1"]);
    assert_eq!(stat_names(&sock), ["s1", "s2"]);
    let rows = state_rows(&cli(&sock, "show servers state app"));
    assert_eq!(rows[1][2..9], ["2", "s2", "127.0.0.1", "0", "1", "1", "1"]);
    assert_eq!(rows[1][9], s2.addr().port().to_string());
    assert_eq!(spread(addr, 20).get("s2"), None);
    assert_eq!(s2.requests(), 0);

    assert_eq!(cli(&sock, "enable server app/s2"), "\n");
    let seen = spread(addr, 40);
    assert!(seen.get("s2").copied().unwrap_or(0) >= 10, "{seen:?}");
    assert!(seen.get("s1").copied().unwrap_or(0) >= 10, "{seen:?}");
    let rows = state_rows(&cli(&sock, "show servers state app"));
    assert_eq!(rows[1][5..7], ["2", "0"]);
    // Counted like any other server.
    let stat = cli(&sock, "show stat");
    let line = stat.lines().find(|l| l.starts_with("app,s2,")).unwrap();
    let stot: u64 = line.split(',').nth(7).unwrap().parse().unwrap();
    assert!(stot >= 10, "{line}");
    let metrics = http_get(lb.addr("stats"), "/metrics").body_str();
    assert!(
        metrics.contains("haproxy_server_sessions_total{proxy=\"app\",server=\"s2\"}"),
        "{metrics}"
    );
}

#[test]
fn a_busy_or_ready_server_is_not_deleted() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let (lb, _dir, sock) = start(
        "balance roundrobin",
        &format!("    server s1 {}", s1.addr()),
    );
    let addr = lb.addr("web");
    assert!(cli(&sock, &format!("add server app/s2 {}", s2.addr()))
        .starts_with("New server registered."));
    assert_eq!(cli(&sock, "enable server app/s2"), "\n");
    assert_eq!(
        cli(&sock, "del server app/s2"),
        "Only servers in maintenance mode can be deleted.\n"
    );
    // Every request to s2 now: one of them holds its connection for a while.
    assert_eq!(cli(&sock, "disable server app/s1"), "\n");
    let slow = std::thread::spawn(move || http_get(addr, "/sleep/2500").status);
    wait_for("the slow request at s2", WAIT, || s2.in_flight() == 1);
    assert_eq!(cli(&sock, "disable server app/s2"), "\n");
    assert_eq!(
        cli(&sock, "del server app/s2"),
        "Server still has connections attached to it, cannot remove it.\n"
    );
    assert_eq!(state_names(&sock), ["s1", "s2", "f1"]);
    assert_eq!(slow.join().unwrap(), 200);
    wait_for("del server accepted", WAIT, || {
        cli(&sock, "del server app/s2") == "Server deleted.\n"
    });
    assert_eq!(state_names(&sock), ["s1", "f1"]);
    assert_eq!(stat_names(&sock), ["s1"]);
    assert_eq!(cli(&sock, "del server app/s2"), "No such server.\n");
    // s1 serves again; s2 sees nothing more.
    assert_eq!(cli(&sock, "enable server app/s1"), "\n");
    let before = s2.requests();
    assert_eq!(spread(addr, 10).get("s1"), Some(&10));
    assert_eq!(s2.requests(), before);
    // A server of the config can go too, and its name can come back.
    assert_eq!(cli(&sock, "disable server app/s1"), "\n");
    assert_eq!(cli(&sock, "del server app/s1"), "Server deleted.\n");
    assert!(cli(&sock, &format!("add server app/s1 {}", s1.addr()))
        .starts_with("New server registered."));
    assert_eq!(state_names(&sock), ["s1", "f1"]);
}

#[test]
fn a_consistent_hash_moves_only_the_new_servers_keys() {
    let backends: Vec<TestBackend> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|n| TestBackend::start(n))
        .collect();
    let servers: String = backends[..3]
        .iter()
        .map(|b| format!("    server {} {}\n", b.name(), b.addr()))
        .collect();
    let (lb, _dir, sock) = start("balance uri\n    hash-type consistent", &servers);
    let addr = lb.addr("web");
    let place = || -> Vec<String> {
        (0..300)
            .map(|i| {
                let r = http_get(addr, &format!("/key/{i}"));
                assert_eq!(r.status, 200);
                r.header("x-backend").unwrap().to_string()
            })
            .collect()
    };
    let before = place();
    let cmd = format!("add server app/s4 {}", backends[3].addr());
    assert!(cli(&sock, &cmd).starts_with("New server registered."));
    assert_eq!(place(), before, "a server in maintenance moved keys");
    assert_eq!(cli(&sock, "enable server app/s4"), "\n");
    let after = place();
    let moved: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert!(!moved.is_empty(), "no key went to the new server");
    for &i in &moved {
        assert_eq!(
            after[i], "s4",
            "key {i} moved from {} to {}",
            before[i], after[i]
        );
    }
    // Out again: every key is back where it was.
    assert_eq!(cli(&sock, "disable server app/s4"), "\n");
    assert_eq!(cli(&sock, "del server app/s4"), "Server deleted.\n");
    assert_eq!(place(), before);
}

#[test]
fn bad_lines_get_an_error_and_change_nothing() {
    let s1 = TestBackend::start("s1");
    let (_lb, _dir, sock) = start(
        "balance roundrobin",
        &format!("    server s1 {}", s1.addr()),
    );
    let state = || {
        let mut rows = state_rows(&cli(&sock, "show servers state"));
        for r in &mut rows {
            r.truncate(9);
        }
        rows
    };
    let before = state();
    for (line, answer) in [
        ("add server app", "Require 'backend/server'.\n"),
        ("add server nope/x 127.0.0.1:80", "No such backend.\n"),
        (
            "add server fixed/x 127.0.0.1:80",
            "Backend must use a dynamic load balancing to support dynamic servers.\n",
        ),
        (
            "add server app/s1 127.0.0.1:80",
            "Already exists a server with the same name in backend.\n\n",
        ),
        (
            "add server app/x 127.0.0.1:80 cookie c",
            "'cookie' option is not accepted for dynamic server\n\n",
        ),
        (
            "add server app/x 127.0.0.1:80 weight 300",
            "weight of server x is not within 0 and 256 (300)..\n\n",
        ),
        (
            "add server app/x",
            "'server' expects <name> and <addr>[:<port>] as arguments.\n\n",
        ),
        (
            "add server app/x 127.0.0.1:80 id 1",
            "'id' : custom id 1 already used ('server s1').\n\n",
        ),
        ("del server app", "Require 'backend/server'.\n"),
        ("del server nope/s1", "No such backend.\n"),
        ("del server app/nope", "No such server.\n"),
        (
            "del server app/s1",
            "Only servers in maintenance mode can be deleted.\n",
        ),
    ] {
        assert_eq!(cli(&sock, line), answer, "{line}");
    }
    for line in [
        "add server app/x not-an-address:80",
        "add server app/x 127.0.0.1:80 bogus",
        "add server app/x 127.0.0.1:99999",
    ] {
        let a = cli(&sock, line);
        assert!(!a.starts_with("New server") && a.len() > 2, "{line}: {a:?}");
    }
    assert_eq!(state(), before);
}

#[test]
fn a_reload_drops_dynamic_servers() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let (lb, _dir, sock) = start(
        "balance roundrobin",
        &format!("    server s1 {}", s1.addr()),
    );
    assert!(cli(&sock, &format!("add server app/s2 {}", s2.addr()))
        .starts_with("New server registered."));
    assert_eq!(cli(&sock, "enable server app/s2"), "\n");
    assert_eq!(state_names(&sock), ["s1", "s2", "f1"]);
    lb.signal(libc::SIGUSR2);
    wait_for("the reload", WAIT, || lb.stdout_count("reloaded") == 1);
    assert_eq!(state_names(&sock), ["s1", "f1"]);
    // `bind :0` binds a new port on reload.
    let addr = lb.latest_addr("web").unwrap();
    assert_eq!(spread(addr, 10).get("s1"), Some(&10));
}

/// Stick records survive `add server` and `del server` (the tables carry over), and a
/// keep-alive client connected before the change reaches the new server.
#[test]
fn stick_records_and_keepalive_clients_follow_the_change() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let s3 = TestBackend::start("s3");
    let servers = format!(
        "    stick-table type ip size 1k expire 10m\n    stick on src\n    server s1 {}\n    server s2 {}",
        s1.addr(),
        s2.addr()
    );
    let (lb, _dir, sock) = start("balance roundrobin", &servers);
    let addr = lb.addr("web");
    // 127.0.0.1 sticks to s2, on every shard once they have told each other.
    assert_eq!(cli(&sock, "disable server app/s1"), "\n");
    assert_eq!(spread(addr, 2).get("s2"), Some(&2));
    assert_eq!(cli(&sock, "enable server app/s1"), "\n");
    wait_for("the record on every shard", WAIT, || {
        spread(addr, 8).get("s2") == Some(&8)
    });
    let mut kept = HttpClient::connect(addr);
    assert_eq!(kept.get("/").header("x-backend"), Some("s2"));
    assert!(cli(&sock, &format!("add server app/s3 {}", s3.addr())).starts_with("New server"));
    assert_eq!(cli(&sock, "enable server app/s3"), "\n");
    assert_eq!(spread(addr, 6).get("s2"), Some(&6));
    assert_eq!(kept.get("/").header("x-backend"), Some("s2"));
    // s1 goes (it is before s2 in the list): the record still leads to s2.
    assert_eq!(cli(&sock, "disable server app/s1"), "\n");
    assert_eq!(cli(&sock, "del server app/s1"), "Server deleted.\n");
    assert_eq!(spread(addr, 6).get("s2"), Some(&6));
    // Without the record, the keep-alive client's requests reach the new server too.
    assert_eq!(cli(&sock, "clear table app"), "\n");
    assert_eq!(cli(&sock, "disable server app/s2"), "\n");
    assert_eq!(kept.get("/").header("x-backend"), Some("s3"));
}
