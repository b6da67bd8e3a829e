//! Several nodes sharing one real Redis: an operator's drain on node A reaches node B
//! within a second; a client stuck to a server through A lands on it through B; a
//! request-rate limit holds across both nodes within the documented bound; Redis
//! stopped mid-run costs no request and state converges once it is back.
//!
//! Nodes listen on different loopback addresses (127.0.0.2, 127.0.0.3), as two
//! machines behind ECMP would.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::Reply;
use common::*;

struct Node {
    lb: RingLb,
    sock: PathBuf,
}

impl Node {
    fn addr(&self) -> std::net::SocketAddr {
        self.lb.addr("web")
    }
}

/// A node on `ip` with backend `app` (servers s1, s2, ...), sharing `redis`.
fn node(
    ip: &str,
    redis: &RedisServer,
    dir: &Path,
    servers: &[&TestBackend],
    frontend_extra: &str,
    backend_extra: &str,
) -> Node {
    let sock = dir.join(format!("{ip}.sock"));
    let mut toml = format!(
        "[runtime]\nshards = 2\n[admin]\nstats_socket = \"{}\"\n[cluster]\nredis = \"{}\"\n\n[frontend.web]\nbind = \"{ip}:0\"\ndefault_backend = \"app\"\n{frontend_extra}\n\n[backend.app]\n{backend_extra}\n",
        sock.display(),
        redis.url()
    );
    for (i, b) in servers.iter().enumerate() {
        toml.push_str(&format!(
            "[[backend.app.server]]\nname = \"s{}\"\naddr = \"{}\"\n",
            i + 1,
            b.addr()
        ));
    }
    let lb = RingLb::start(&toml);
    Node { lb, sock }
}

/// Both nodes are in: each one's subscriber listens on the events channel (what a
/// change on the other needs to reach it), and the operator hash holds `servers`
/// states (the first node's fill alone would already make that true).
fn both_nodes_connected(redis: &RedisServer, servers: i64) {
    let listening = Reply::Array(vec![
        Reply::Bulk(Some("ringlb:events".into())),
        Reply::Int(2),
    ]);
    wait_for("both nodes connected", Duration::from_secs(5), || {
        redis.cmd(&["PUBSUB", "NUMSUB", "ringlb:events"]) == listening
            && redis.cmd(&["HLEN", "ringlb:operator"]) == Reply::Int(servers)
    });
}

fn backend_of(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.body_str());
    r.header("x-backend").unwrap_or("?").to_string()
}

/// The admin state column of `show servers state` for server `srv` (8 = drain).
fn admin_state(sock: &Path, srv: &str) -> Option<u32> {
    cli(sock, "show servers state app").lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.get(3) == Some(&srv))
            .then(|| w[6].parse().ok())
            .flatten()
    })
}

#[test]
fn drain_on_one_node_reaches_the_other_within_a_second() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (b1, b2) = (TestBackend::start("b1"), TestBackend::start("b2"));
    let a = node("127.0.0.2", &redis, dir.path(), &[&b1, &b2], "", "");
    let b = node("127.0.0.3", &redis, dir.path(), &[&b1, &b2], "", "");
    both_nodes_connected(&redis, 2);
    let seen: Vec<String> = (0..6)
        .map(|_| backend_of(&http_get(b.addr(), "/")))
        .collect();
    assert!(seen.iter().any(|s| s == "b1"), "{seen:?}");

    let t0 = Instant::now();
    assert_eq!(cli(&a.sock, "set server app/s1 state drain"), "\n");
    // Requests through B, on fresh connections (either shard), for 1.5 s: the last
    // one that still reached s1 bounds the propagation delay.
    let mut last_b1: Option<Duration> = None;
    let mut n = 0;
    while t0.elapsed() < Duration::from_millis(1500) {
        if backend_of(&http_get(b.addr(), "/")) == "b1" {
            last_b1 = Some(t0.elapsed());
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("drain propagation A→B: last request to the drained server {last_b1:?} after the command ({n} requests through B)");
    assert!(
        last_b1.is_none_or(|d| d < Duration::from_secs(1)),
        "B still sent to s1 {last_b1:?} after the drain"
    );
    assert_eq!(admin_state(&b.sock, "s1"), Some(8));
    assert_eq!(
        redis.cmd(&["HGET", "ringlb:operator", "app/s1"]),
        Reply::Bulk(Some("drain 1".into()))
    );

    // A node that starts now catches up from the hash.
    let c = node("127.0.0.4", &redis, dir.path(), &[&b1, &b2], "", "");
    wait_for("node C applies the drain", Duration::from_secs(5), || {
        admin_state(&c.sock, "s1") == Some(8)
    });
    for _ in 0..10 {
        assert_eq!(backend_of(&http_get(c.addr(), "/")), "b2");
    }

    // Weight and ready travel the same way.
    assert_eq!(cli(&b.sock, "set server app/s1 state ready"), "\n");
    assert_eq!(cli(&b.sock, "set server app/s2 weight 7"), "\n");
    wait_for(
        "A sees s1 ready and s2 weight 7",
        Duration::from_secs(2),
        || {
            admin_state(&a.sock, "s1") == Some(0)
                && cli(&a.sock, "get weight app/s2").starts_with("7 ")
        },
    );
}

#[test]
fn a_client_stuck_through_one_node_lands_on_the_same_server_through_the_other() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let backends: Vec<TestBackend> = (1..=3)
        .map(|i| TestBackend::start(&format!("b{i}")))
        .collect();
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let stick = "[backend.app.stick]\non = \"hdr(X-User)\"\nexpire = \"30s\"\n";
    let a = node("127.0.0.2", &redis, dir.path(), &refs, "", stick);
    let b = node("127.0.0.3", &redis, dir.path(), &refs, "", stick);
    both_nodes_connected(&redis, 3);
    let users: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    let mut chosen = Vec::new();
    for u in &users {
        assert_eq!(get_with(a.addr(), &format!("X-User: {u}")).status, 200);
        // Fresh connections land on either shard of A: within a tick or two they agree
        // (two shards that saw the key in the same tick: the first record to reach the
        // cluster thread wins).
        let mut agreed = String::new();
        wait_for("A's shards agree", Duration::from_secs(2), || {
            let v: Vec<String> = (0..6)
                .map(|_| backend_of(&get_with(a.addr(), &format!("X-User: {u}"))))
                .collect();
            agreed = v[0].clone();
            v.iter().all(|x| *x == v[0])
        });
        chosen.push(agreed);
    }
    // The round robin spread the users: stickiness is what keeps each one in place.
    let distinct: std::collections::HashSet<_> = chosen.iter().collect();
    assert!(distinct.len() > 1, "{chosen:?}");
    wait_for(
        "the records in Redis",
        Duration::from_secs(2),
        || matches!(redis.cmd(&["KEYS", "ringlb:stick:app:*"]), Reply::Array(v) if v.len() == users.len()),
    );
    // Settled: what A's shards agree on now (20 fresh connections) is each user's record.
    for (u, s) in users.iter().zip(chosen.iter_mut()) {
        wait_for("A settled", Duration::from_secs(2), || {
            let v: Vec<String> = (0..20)
                .map(|_| backend_of(&get_with(a.addr(), &format!("X-User: {u}"))))
                .collect();
            *s = v[0].clone();
            v.iter().all(|x| *x == v[0])
        });
    }
    let mut right_first = 0;
    for (u, s) in users.iter().zip(&chosen) {
        if backend_of(&get_with(b.addr(), &format!("X-User: {u}"))) == *s {
            right_first += 1;
        }
        for _ in 0..5 {
            assert_eq!(backend_of(&get_with(b.addr(), &format!("X-User: {u}"))), *s);
        }
    }
    eprintln!(
        "stickiness A→B: {right_first}/{} users on their server at the first request through B",
        users.len()
    );
    assert_eq!(right_first, users.len());
    // Without the header, plain balancing.
    assert_eq!(http_get(b.addr(), "/").status, 200);
}

#[test]
fn rate_limit_holds_across_both_nodes_within_the_bound() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let b1 = TestBackend::start("b1");
    let (limit, period_s) = (60usize, 10u64);
    let rl = format!("[[frontend.web.rate_limit]]\nkey = \"hdr(X-Client)\"\nlimit = {limit}\nperiod = \"{period_s}s\"\n");
    let a = node("127.0.0.2", &redis, dir.path(), &[&b1], &rl, "");
    let b = node("127.0.0.3", &redis, dir.path(), &[&b1], &rl, "");
    both_nodes_connected(&redis, 1);
    // 200 requests at about 100/s, alternating nodes, over two seconds.
    let rate = 100.0;
    let mut ca = HttpClient::connect(a.addr());
    let mut cb = HttpClient::connect(b.addr());
    let req = "GET / HTTP/1.1\r\nHost: t\r\nX-Client: c1\r\n\r\n";
    let (mut ok, mut limited) = (0usize, 0usize);
    let start = Instant::now();
    for i in 0..200 {
        let r = if i % 2 == 0 {
            let r = ca.try_request(req);
            if r.as_ref().is_ok_and(|r| r.status == 429) {
                ca = HttpClient::connect(a.addr());
            }
            r
        } else {
            let r = cb.try_request(req);
            if r.as_ref().is_ok_and(|r| r.status == 429) {
                cb = HttpClient::connect(b.addr());
            }
            r
        };
        match r.expect("an answer").status {
            200 => ok += 1,
            429 => limited += 1,
            s => panic!("status {s}"),
        }
        let due = start + Duration::from_secs_f64((i + 1) as f64 / rate);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let took = start.elapsed().as_secs_f64();
    // Documented bound: N + N·D/P (a window boundary inside the run) + R·L, with the
    // sync lag L at most 300 ms here (20 ms ticks + 100 ms sync interval + slack).
    let bound = limit as f64 * (1.0 + took / period_s as f64) + rate * 0.3;
    eprintln!(
        "rate limit {limit}/{period_s}s across 2 nodes: {ok} admitted of 200 in {took:.2}s (overshoot {}, bound {bound:.0})",
        ok as i64 - limit as i64
    );
    assert_eq!(ok + limited, 200);
    assert!(
        ok >= limit,
        "{ok} admitted: the limit must not deny below {limit}"
    );
    assert!((ok as f64) <= bound, "{ok} admitted, bound {bound:.0}");
    // Another client is not limited.
    let r = get_with(b.addr(), "X-Client: c2");
    assert_eq!(r.status, 200);
}

#[test]
fn redis_down_costs_no_request_and_state_converges_when_it_returns() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (b1, b2) = (TestBackend::start("b1"), TestBackend::start("b2"));
    let stick = "[backend.app.stick]\non = \"src\"\nexpire = \"1m\"\n";
    let a = node("127.0.0.2", &redis, dir.path(), &[&b1, &b2], "", stick);
    let b = node("127.0.0.3", &redis, dir.path(), &[&b1, &b2], "", stick);
    both_nodes_connected(&redis, 2);
    // Steady traffic through both nodes until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let loaders: Vec<_> = [a.addr(), b.addr()]
        .into_iter()
        .map(|addr| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match HttpClient::try_connect(addr)
                        .and_then(|mut c| c.try_request(get_request("/")))
                    {
                        Ok(r) if r.status == 200 => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    redis.stop();
    let before = done.load(Ordering::Relaxed);
    // During the outage: an operator change on A applies on A at once.
    assert_eq!(cli(&a.sock, "set server app/s1 state drain"), "\n");
    wait_for(
        "traffic flows during the outage",
        Duration::from_secs(5),
        || done.load(Ordering::Relaxed) > before + 100,
    );
    assert_eq!(admin_state(&a.sock, "s1"), Some(8));
    assert_eq!(admin_state(&b.sock, "s1"), Some(0), "B cannot know yet");
    let t_back = Instant::now();
    redis.restart();
    // Backoff tops at 5 s: both nodes resync, and B applies A's drain.
    wait_for(
        "B converges after Redis returns",
        Duration::from_secs(15),
        || admin_state(&b.sock, "s1") == Some(8),
    );
    eprintln!("convergence after Redis returned: {:?}", t_back.elapsed());
    assert_eq!(
        redis.cmd(&["HGET", "ringlb:operator", "app/s1"]),
        Reply::Bulk(Some("drain 1".into()))
    );
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
    // The loss is logged once per node (a PING each sync interval notices it), and
    // the recovery too.
    for n in [&a, &b] {
        wait_for("the recovery logged", Duration::from_secs(10), || {
            n.lb.stderr().contains("redis reachable again")
        });
        let err = n.lb.stderr();
        assert_eq!(err.matches("redis unreachable").count(), 1, "{err}");
    }
}
