//! HAProxy's runtime API on the stats socket: round trips of every command, errors in
//! HAProxy's words, and operator changes reaching every shard (drain, maint, weight).

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

struct Setup {
    lb: RingLb,
    sock: PathBuf,
    _dir: tempfile::TempDir,
    a: TestBackend,
    b: TestBackend,
}

fn setup(extra_server: &str) -> Setup {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ringlb.sock");
    let toml = format!(
        "[runtime]\nshards = 2\n[admin]\nstats_socket = \"{}\"\n\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n\n[backend.app]\n[[backend.app.server]]\nname = \"s1\"\naddr = \"{}\"\n[[backend.app.server]]\nname = \"s2\"\naddr = \"{}\"\n{extra_server}",
        sock.display(),
        a.addr(),
        b.addr()
    );
    let lb = RingLb::start(&toml);
    Setup {
        lb,
        sock,
        _dir: dir,
        a,
        b,
    }
}

/// Which backends answer `n` requests on fresh connections.
fn spread(addr: std::net::SocketAddr, n: usize) -> (usize, usize) {
    let (mut a, mut b) = (0, 0);
    for _ in 0..n {
        let r = http_get(addr, "/");
        assert_eq!(r.status, 200);
        match r.header("x-backend") {
            Some("a") => a += 1,
            Some("b") => b += 1,
            other => panic!("unexpected backend {other:?}"),
        }
    }
    (a, b)
}

#[test]
fn show_stat_has_haproxy_header_and_rows() {
    let s = setup("");
    for _ in 0..6 {
        assert_eq!(http_get(s.lb.addr("web"), "/").status, 200);
    }
    let out = cli(&s.sock, "show stat");
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,"),
        "{header}"
    );
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).unwrap();
    let rows: Vec<Vec<&str>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    let names: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        names,
        [
            ("web", "FRONTEND"),
            ("app", "s1"),
            ("app", "s2"),
            ("app", "BACKEND")
        ]
    );
    for r in &rows {
        assert_eq!(r.len(), cols.len(), "every row has every column: {r:?}");
    }
    assert_eq!(rows[0][col("status")], "OPEN");
    assert_eq!(rows[0][col("req_tot")], "6");
    assert_eq!(rows[0][col("hrsp_2xx")], "6");
    // Merged from both shards: the servers' totals add up to the requests.
    let s1: u64 = rows[1][col("stot")].parse().unwrap();
    let s2: u64 = rows[2][col("stot")].parse().unwrap();
    assert_eq!(s1 + s2, 6);
    assert_eq!(rows[1][col("status")], "no check");
    assert_eq!(rows[3][col("status")], "UP");
    assert_eq!(rows[3][col("act")], "2");
    assert_eq!(rows[3][col("algo")], "roundrobin");
    assert!(out.ends_with("\n\n"), "answer ends with an empty line");
}

#[test]
fn drain_and_maint_stop_new_requests_and_ready_restores() {
    let s = setup("");
    let addr = s.lb.addr("web");
    let (a, b) = spread(addr, 20);
    assert!(a > 0 && b > 0, "both serve at first: {a}/{b}");

    assert_eq!(cli(&s.sock, "set server app/s1 state drain"), "\n");
    // A change reaches every shard within one control tick; allow a generous moment.
    // 24 connections: 6 could all land on the shard that already has it (it happened).
    wait_for("drain to reach every shard", Duration::from_secs(3), || {
        spread(addr, 24).0 == 0
    });
    assert_eq!(spread(addr, 20), (0, 20));
    let stat = cli(&s.sock, "show stat");
    assert!(
        stat.contains("app,s1,")
            && stat
                .lines()
                .any(|l| l.starts_with("app,s1,") && l.contains(",DRAIN,")),
        "{stat}"
    );

    assert_eq!(cli(&s.sock, "set server app/s1 state ready"), "\n");
    wait_for("s1 back in rotation", Duration::from_secs(3), || {
        spread(addr, 6).0 > 0
    });

    assert_eq!(cli(&s.sock, "disable server app/s2"), "\n");
    wait_for("maint to reach every shard", Duration::from_secs(3), || {
        spread(addr, 24).1 == 0
    });
    assert!(cli(&s.sock, "show stat")
        .lines()
        .any(|l| l.starts_with("app,s2,") && l.contains(",MAINT,")));
    assert_eq!(cli(&s.sock, "enable server app/s2"), "\n");
    wait_for("s2 back in rotation", Duration::from_secs(3), || {
        spread(addr, 6).1 > 0
    });
    assert!(s.a.requests() > 0 && s.b.requests() > 0);
}

#[test]
fn weight_changes_reach_every_shard() {
    let s = setup("");
    let addr = s.lb.addr("web");
    assert_eq!(cli(&s.sock, "set server app/s2 weight 0"), "\n");
    assert_eq!(cli(&s.sock, "get weight app/s2"), "0 (initial 1)\n\n");
    wait_for("weight 0 on every shard", Duration::from_secs(3), || {
        spread(addr, 24).1 == 0
    });
    assert_eq!(cli(&s.sock, "set weight app/s2 100%"), "\n");
    assert_eq!(cli(&s.sock, "get weight app/s2"), "1 (initial 1)\n\n");
    wait_for("s2 weighted again", Duration::from_secs(3), || {
        spread(addr, 6).1 > 0
    });
    assert!(cli(&s.sock, "show servers state").contains("app 2 s2 127.0.0.1 2 0 1 1"));
}

#[test]
fn errors_are_haproxy_style_lines() {
    let s = setup("");
    let cases = [
        ("set server app/zz state drain", "No such server.\n\n"),
        ("set server nope/s1 state drain", "No such backend.\n\n"),
        (
            "set server app/s1 state foo",
            "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n",
        ),
        (
            "set server app/s1 weight 300",
            "Absolute weight can only be between 0 and 256 inclusive.\n\n",
        ),
        (
            "set weight app/s1",
            "Require <weight> or <weight%>.

",
        ),
        (
            "set maxconn server app/s1 x",
            "maxconn string empty or preceded by garbage
",
        ),
        ("show servers state nope", "Can't find backend.\n\n"),
    ];
    for (cmd, want) in cases {
        assert_eq!(cli(&s.sock, cmd), want, "{cmd}");
    }
    let unknown = cli(&s.sock, "bogus command");
    assert!(unknown.starts_with("Unknown command"), "{unknown}");
    assert!(
        unknown.contains("show stat"),
        "lists the commands: {unknown}"
    );
    // The process is unaffected.
    assert_eq!(http_get(s.lb.addr("web"), "/").status, 200);
}

#[test]
fn several_commands_on_one_line_and_show_info() {
    let s = setup("");
    let out = cli(&s.sock, "get weight app/s1; show info; help");
    let mut parts = out.split("\n\n");
    assert_eq!(parts.next(), Some("1 (initial 1)"));
    let info = parts.next().unwrap();
    assert!(info.contains("Nbthread: 2"), "{info}");
    assert!(info.contains(&format!("Pid: {}", s.lb.pid())), "{info}");
    assert!(
        info.lines().any(|l| l.starts_with("Uptime_sec: ")),
        "{info}"
    );
    assert!(parts
        .next()
        .unwrap()
        .contains("The following commands are valid"));
}

#[test]
fn maxconn_set_at_runtime_limits_concurrency() {
    let s = setup("");
    assert_eq!(cli(&s.sock, "set maxconn server app/s1 2"), "\n");
    assert_eq!(cli(&s.sock, "set maxconn server app/s2 2"), "\n");
    let addr = s.lb.addr("web");
    let mut threads = Vec::new();
    // Shards take messages in order: once a snapshot came back, they all applied it.
    assert!(cli(&s.sock, "show stat")
        .lines()
        .any(|l| l.starts_with("app,s1,") && l.split(',').nth(6) == Some("2")));
    for _ in 0..10 {
        threads.push(std::thread::spawn(move || {
            http_get(addr, "/sleep/200").status
        }));
    }
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert!(
        s.a.max_concurrent() <= 2 && s.b.max_concurrent() <= 2,
        "{} {}",
        s.a.max_concurrent(),
        s.b.max_concurrent()
    );
    // Below the shard count: the limit is the process's, so it is accepted.
    assert_eq!(cli(&s.sock, "set maxconn server app/s1 1"), "\n");
}

#[test]
fn socat_round_trip() {
    if std::process::Command::new("socat")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("socat not installed; scripts/test-all installs it");
        return;
    }
    let s = setup("");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo 'show stat' | socat stdio unix-connect:{}",
            s.sock.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("# pxname,svname,"), "{text}");
    assert!(text.contains("app,BACKEND,"), "{text}");
}
