//! What `add server` / `del server` leave alone, against the real binary on two shards
//! (each change is a new config generation on every shard and a new health thread):
//! every other server's checks go on where they were (rise/fall progress, next check),
//! so a change brings no burst of checks, nor of DNS questions; a request or a TCP
//! connection that began before an earlier change still counts as the server's, so
//! `del server` waits for it, as HAProxy's does; the server-state file placed the
//! servers at load and does not again at each change. (Against HAProxy 2.6:
//! tests/haproxy_diff_add_server.rs.)

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::haproxy::{cli, render, ringlb_cfg};
use common::server_state::{row, state_rows};
use common::twins::stat_rows;
use common::*;

const WAIT: Duration = Duration::from_secs(10);
const REFUSED: &str = "Server still has connections attached to it, cannot remove it.\n";

/// ringlb with backend `app` (`servers`, HTTP checks of `/health` where a server has
/// `check`) and its stats socket (in the returned directory).
fn start(servers: &str) -> (RingLb, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let lb = start_in(dir.path(), "", servers);
    let sock = dir.path().join("s.sock");
    (lb, dir, sock)
}

/// `start`'s ringlb with its files in `dir` and `global` lines added.
fn start_in(dir: &Path, global: &str, servers: &str) -> RingLb {
    let sock = dir.join("s.sock");
    let cfg = render(
        r#"global
    nbthread 2
    stats socket "${SOCK}" mode 600 level admin
${GLOBAL}

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:0
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health
${SERVERS}
"#,
        &[
            ("SOCK", sock.display().to_string()),
            ("GLOBAL", global.to_string()),
            ("SERVERS", servers.to_string()),
        ],
    );
    ringlb_cfg(&cfg)
}

/// `show stat` column `col` of server `app/sv`.
fn stat(sock: &Path, sv: &str, col: &str) -> String {
    stat_rows(&cli(sock, "show stat"))
        .into_iter()
        .find(|r| r["pxname"] == "app" && r["svname"] == sv)
        .unwrap_or_else(|| panic!("no app/{sv} in show stat"))[col]
        .clone()
}

/// An `add server` then a `del server` of a server nobody uses.
fn add_and_del(sock: &Path, name: &str) {
    let add = cli(sock, &format!("add server app/{name} 127.0.0.1:1"));
    assert_eq!(add, "New server registered.\n\n");
    assert_eq!(
        cli(sock, &format!("del server app/{name}")),
        "Server deleted.\n"
    );
}

/// s1 failed one check of three (`fall 3`) before an unrelated `add server`: it goes
/// DOWN at its third failed check, not after three more.
#[test]
fn a_server_on_its_way_down_stays_on_its_course() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let check = "check inter 1s fastinter 1s downinter 60s rise 2 fall 3";
    let (_lb, _dir, sock) = start(&format!(
        "    server s1 {} {check}\n    server s2 {} {check}",
        s1.addr(),
        s2.addr()
    ));
    wait_for("a first check of s1", WAIT, || {
        stat(&sock, "s1", "check_status") == "L7OK"
    });
    s1.set_health_status(500);
    wait_for("a failed check of s1", WAIT, || {
        stat(&sock, "s1", "chkfail") == "1"
    });
    // HAProxy's "going down" status: one failure of three seen.
    assert_eq!(stat(&sock, "s1", "status"), "UP 2/3");
    let s3 = TestBackend::start("s3");
    let add = format!("add server app/s3 {}", s3.addr());
    assert_eq!(cli(&sock, &add), "New server registered.\n\n");
    wait_for("s1 down", WAIT, || stat(&sock, "s1", "status") == "DOWN");
    // The third failed check took it down (the next one is a `downinter` away).
    assert_eq!(stat(&sock, "s1", "chkfail"), "3");
    assert_eq!(stat(&sock, "s1", "chkdown"), "1");
    // What s1 saw: those three (and one more if a check was under way at the
    // change: the new health thread makes it again).
    let failed = s1.health_answers().iter().filter(|&&s| s == 500).count();
    assert!((3..=4).contains(&failed), "{failed} failed checks");
    // The others went on as they were.
    assert_eq!(stat(&sock, "s2", "status"), "UP");
    assert_eq!(stat(&sock, "s2", "chkfail"), "0");
}

/// With `inter 30s`, s1 (checked first) has its check at start and the next one 30
/// seconds later: twenty changes in between check it no more.
#[test]
fn changes_of_the_servers_bring_no_extra_checks() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let (_lb, _dir, sock) = start(&format!(
        "    server s1 {} check inter 30s\n    server s2 {} check inter 30s",
        s1.addr(),
        s2.addr()
    ));
    // Its result seen, so that no check is under way at the first change.
    wait_for("the first check of s1", WAIT, || {
        stat(&sock, "s1", "check_status") == "L7OK"
    });
    assert_eq!(s1.health_checks(), 1);
    let began = Instant::now();
    for i in 0..10 {
        add_and_del(&sock, &format!("x{i}"));
    }
    // Each change is in force when answered; the health thread's first checks
    // would have come at once (s1 first in the list: no spread).
    let again = s1.health_checks();
    let s2_seen = s2.health_checks();
    // One check per 30 s interval at most, however slow this machine was.
    let allowed = 1 + began.elapsed().as_secs() as usize / 30;
    assert!(
        again <= allowed,
        "s1 checked {again} times (allowed {allowed})"
    );
    assert!(
        s2_seen <= allowed,
        "s2 checked {s2_seen} times (allowed {allowed})"
    );
    assert_eq!(stat(&sock, "s1", "status"), "UP");
}

/// A slow request on s1 began before `add server`: `del server app/s1` is refused
/// until it ends, and it gets its whole response.
#[test]
fn del_server_waits_for_a_request_of_an_older_generation() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let (lb, _dir, sock) = start(&format!("    server s1 {}", s1.addr()));
    let addr = lb.addr("web");
    let slow = std::thread::spawn(move || {
        let r = http_get(addr, "/sleep/3000");
        (r.status, r.body_str())
    });
    wait_for("the slow request at s1", WAIT, || s1.in_flight() == 1);
    let add = format!("add server app/s2 {}", s2.addr());
    assert_eq!(cli(&sock, &add), "New server registered.\n\n");
    assert_eq!(cli(&sock, "enable server app/s2"), "\n");
    assert_eq!(cli(&sock, "disable server app/s1"), "\n");
    assert_eq!(cli(&sock, "del server app/s1"), REFUSED);
    // Another change in between: the request is two generations old now.
    add_and_del(&sock, "x");
    assert_eq!(cli(&sock, "del server app/s1"), REFUSED);
    assert_eq!(s1.in_flight(), 1, "the refusals came while the request ran");
    assert_eq!(slow.join().unwrap(), (200, "slept 3000".to_string()));
    wait_for("del server accepted", WAIT, || {
        cli(&sock, "del server app/s1") == "Server deleted.\n"
    });
    assert_eq!(http_get(addr, "/").header("x-backend"), Some("s2"));
}

/// s1 starts in maintenance from the server-state file; the operator enables it: an
/// `add server` keeps it enabled (the file placed the servers at load, not at each
/// change).
#[test]
fn the_server_state_file_does_not_come_back_with_add_server() {
    let s1 = TestBackend::start("s1");
    let s2 = TestBackend::start("s2");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let state = dir.path().join("state");
    let global = format!("    server-state-file \"{}\"", state.display());
    let servers = format!(
        "    load-server-state-from-file global\n    server s1 {}",
        s1.addr()
    );
    let lb = start_in(dir.path(), &global, &servers);
    assert_eq!(cli(&sock, "disable server app/s1"), "\n");
    std::fs::write(&state, cli(&sock, "show servers state")).unwrap();
    drop(lb);

    let lb = start_in(dir.path(), &global, &servers);
    let admin = |sv: &str| row(&state_rows(&cli(&sock, "show servers state")), sv)[6].clone();
    assert_eq!(admin("s1"), "1", "maintenance, from the file");
    assert_eq!(cli(&sock, "enable server app/s1"), "\n");
    let add = format!("add server app/s2 {}", s2.addr());
    assert_eq!(cli(&sock, &add), "New server registered.\n\n");
    assert_eq!(admin("s1"), "0");
    assert_eq!(
        http_get(lb.addr("web"), "/").header("x-backend"),
        Some("s1")
    );
}

/// s1's address comes from DNS (`hold valid 30s`: one question every 30 s): ten
/// add/del pairs ask nothing more, and `show resolvers` keeps its counts.
#[test]
fn changes_of_the_servers_ask_dns_nothing_more() {
    let s1 = TestBackend::start("s1");
    let dns = common::dns::DnsServer::start();
    dns.set("s1.test", &["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let global = format!(
        "\nresolvers dns\n    nameserver ns1 {}\n    timeout resolve 1s\n    hold valid 30s",
        dns.addr()
    );
    let servers = format!(
        "    server s1 s1.test:{} resolvers dns init-addr none",
        s1.addr().port()
    );
    let lb = start_in(dir.path(), &global, &servers);
    wait_for("s1 resolved", WAIT, || {
        stat(&sock, "s1", "status") == "no check"
    });
    let sent = || -> u64 {
        cli(&sock, "show resolvers dns")
            .lines()
            .find_map(|l| l.trim().strip_prefix("sent:"))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    wait_for("the answer counted", WAIT, || sent() >= 1);
    let (asked, counted) = (dns.questions(), sent());
    let began = Instant::now();
    for i in 0..10 {
        add_and_del(&sock, &format!("x{i}"));
    }
    // Each change is in force when answered: a new resolver thread would have asked
    // at once.
    let allowed = 1 + began.elapsed().as_secs() as usize / 30;
    let more = dns.questions() - asked;
    assert!(more <= allowed, "{more} more questions (allowed {allowed})");
    assert!(sent() >= counted, "show resolvers started again");
    assert_eq!(
        http_get(lb.addr("web"), "/").header("x-backend"),
        Some("s1")
    );
}

/// The same for a TCP connection: open on s1 before `add server`, it holds
/// `del server` back until it closes, and echoes all along.
#[test]
fn del_server_waits_for_a_tcp_connection_of_an_older_generation() {
    use std::io::{Read, Write};
    let s1 = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let lb = ringlb_cfg(&render(
        r#"global
    nbthread 2
    stats socket "${SOCK}" mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend tcp
    bind 127.0.0.1:0
    default_backend app

backend app
    server s1 ${S1}
"#,
        &[
            ("SOCK", sock.display().to_string()),
            ("S1", s1.addr().to_string()),
        ],
    ));
    let mut conn = std::net::TcpStream::connect(lb.addr("tcp")).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut echo = |msg: &[u8]| {
        conn.write_all(msg).unwrap();
        let mut back = vec![0; msg.len()];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    };
    echo(b"before");
    add_and_del(&sock, "x");
    assert_eq!(cli(&sock, "disable server app/s1"), "\n");
    assert_eq!(cli(&sock, "del server app/s1"), REFUSED);
    echo(b"after");
    drop(conn);
    wait_for("del server accepted", WAIT, || {
        cli(&sock, "del server app/s1") == "Server deleted.\n"
    });
}
