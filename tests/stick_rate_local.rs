//! Stick tables and request-rate limits on one node without Redis: from haproxy.cfg
//! (`stick-table` + `stick on`, `track-sc0` + `deny if { sc_http_req_rate(0) gt N }`,
//! checked by `haproxy -c` and run side by side with HAProxy) and from TOML; the shards
//! of the node agree through the cluster thread. Config mistakes are reported with
//! their line or path.

use crate::common;

use std::time::{Duration, Instant};

use common::haproxy::{haproxy_check, render, ringlb_cfg, ringlb_check, write_cfg, HaProxy};
use common::*;

const STICKY_CFG: &str = "
global
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:${PORT}
    default_backend app
backend app
    balance roundrobin
    stick-table type string len 32 size 10k expire 30s
    stick on req.cook(session)
    server s1 ${S1}
    server s2 ${S2}
    server s3 ${S3}
";

#[test]
fn cookie_stickiness_from_haproxy_cfg_holds_across_shards() {
    let bs: Vec<TestBackend> = (1..=3)
        .map(|i| TestBackend::start(&format!("b{i}")))
        .collect();
    let text = |port: &str| {
        render(
            STICKY_CFG,
            &[
                ("PORT", port.to_string()),
                ("S1", bs[0].addr().to_string()),
                ("S2", bs[1].addr().to_string()),
                ("S3", bs[2].addr().to_string()),
            ],
        )
    };
    // `-c` binds nothing, and HAProxy refuses port 0: the checked text names a port.
    let f = write_cfg(&text("18480"));
    let hx = haproxy_check(f.path(), &[]);
    assert!(hx.status.success(), "haproxy -c: {}", hx.stderr);
    let rc = ringlb_check(f.path(), &[]);
    assert!(rc.status.success(), "ringlb -c: {}{}", rc.stdout, rc.stderr);
    let lb = ringlb_cfg(&text("0"));
    let addr = lb.addr("web");
    let mut spread = std::collections::HashSet::new();
    for u in 0..9 {
        let cookie = format!("Cookie: theme=dark; session=s{u}");
        assert_eq!(get_with(addr, &cookie).status, 200);
        let mut server = String::new();
        wait_for("the shards agree", Duration::from_secs(2), || {
            let v: Vec<String> = (0..12)
                .map(|_| {
                    get_with(addr, &cookie)
                        .header("x-backend")
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            server = v[0].clone();
            v.iter().all(|x| *x == v[0])
        });
        // Stays put (20 requests on fresh connections, both shards).
        for _ in 0..20 {
            assert_eq!(
                get_with(addr, &cookie).header("x-backend"),
                Some(server.as_str())
            );
        }
        spread.insert(server);
    }
    assert!(
        spread.len() > 1,
        "round robin should spread new sessions: {spread:?}"
    );
    // Without the cookie: plain round robin.
    let seen: std::collections::HashSet<String> = (0..6)
        .map(|_| {
            http_get(addr, "/")
                .header("x-backend")
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(seen.len() > 1, "{seen:?}");
}

#[test]
fn sticky_server_drained_sends_the_client_elsewhere_and_rewrites_the_record() {
    let (a, b) = (TestBackend::start("a"), TestBackend::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n[admin]\nstats_socket = \"{}\"\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[backend.app.stick]\non = \"src\"\nexpire = \"1m\"\n[[backend.app.server]]\nname = \"a\"\naddr = \"{}\"\n[[backend.app.server]]\nname = \"b\"\naddr = \"{}\"\n",
        sock.display(),
        a.addr(),
        b.addr()
    ));
    let addr = lb.addr("web");
    http_get(addr, "/");
    let mut first = String::new();
    wait_for("the shards agree", Duration::from_secs(2), || {
        let v: Vec<String> = (0..12)
            .map(|_| {
                http_get(addr, "/")
                    .header("x-backend")
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        first = v[0].clone();
        v.iter().all(|x| *x == v[0])
    });
    let other = if first == "a" { "b" } else { "a" };
    assert_eq!(
        cli(&sock, &format!("set server app/{first} state drain")),
        "\n"
    );
    wait_for("the client moves", Duration::from_secs(2), || {
        (0..6).all(|_| http_get(addr, "/").header("x-backend") == Some(other))
    });
    // Back to ready: the client stays on its new server (the record was rewritten).
    assert_eq!(
        cli(&sock, &format!("set server app/{first} state ready")),
        "\n"
    );
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..10 {
        assert_eq!(http_get(addr, "/").header("x-backend"), Some(other));
    }
}

const RATE_CFG: &str = "
global
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:${PORT}
    stick-table type ip size 100k expire 30s store http_req_rate(10s)
    http-request track-sc0 src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt ${LIMIT} }
    default_backend app
backend app
    server s1 ${S1}
";

/// Sends `n` requests at `rate` per second on fresh connections; (200s, 429s, the
/// last 429 response).
fn paced(addr: std::net::SocketAddr, n: usize, rate: f64) -> (usize, usize, Response) {
    let (mut ok, mut limited) = (0, 0);
    let mut last_429 = None;
    let start = Instant::now();
    for i in 0..n {
        let r = http_get(addr, "/");
        match r.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                last_429 = Some(r);
            }
            s => panic!("status {s}"),
        }
        let due = start + Duration::from_secs_f64((i + 1) as f64 / rate);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    (ok, limited, last_429.expect("some requests were limited"))
}

#[test]
fn rate_limit_from_haproxy_cfg_matches_haproxy_within_the_bound() {
    let s1 = TestBackend::start("s1");
    let limit = 20;
    let text = |port: u16| {
        render(
            RATE_CFG,
            &[
                ("PORT", port.to_string()),
                ("LIMIT", limit.to_string()),
                ("S1", s1.addr().to_string()),
            ],
        )
    };
    // HAProxy refuses port 0: it binds a port reserved for it; ringlb binds port 0.
    let hport = ReservedPort::new();
    let htext = text(hport.port());
    let f = write_cfg(&htext);
    let c = haproxy_check(f.path(), &[]);
    assert!(c.status.success(), "haproxy -c: {}", c.stderr);
    let haddr = hport.addr();
    let hx = HaProxy::start(&htext, &[haddr], None);
    let (h_ok, h_429, h_resp) = paced(haddr, 60, 25.0);
    drop(hx);
    let lb = ringlb_cfg(&text(0));
    let (r_ok, r_429, r_resp) = paced(lb.addr("web"), 60, 25.0);
    eprintln!("60 requests at 25/s, limit {limit}/10s: haproxy admitted {h_ok} (429: {h_429}), ringlb (2 shards, no Redis) admitted {r_ok} (429: {r_429})");
    assert_eq!(h_resp.status, r_resp.status);
    assert_eq!(h_resp.body, r_resp.body, "the 429 page is HAProxy's");
    // ringlb: at least the limit; at most the limit plus what arrives during one sync
    // lag (L <= 400 ms allowed here, ~140 ms expected: 25/s x 0.4 s) plus the sliding
    // window's share; shards that never heard of each other would admit 2 x 20.
    assert!(r_ok >= limit, "{r_ok}");
    let bound = limit as f64 * (1.0 + 2.4 / 10.0) + 25.0 * 0.4;
    assert!((r_ok as f64) <= bound, "{r_ok} admitted, bound {bound}");
}

#[test]
fn toml_rate_limit_on_a_header_counts_each_client_apart() {
    let s1 = TestBackend::start("s1");
    let lb = RingLb::start(&http_config(
        &[s1.addr()],
        "[[frontend.web.rate_limit]]\nkey = \"hdr(X-Api-Key)\"\nlimit = 5\nperiod = \"30s\"\nstatus = 503\n",
    ));
    let addr = lb.addr("web");
    let mut c = HttpClient::connect(addr);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            c.request("GET / HTTP/1.1\r\nHost: t\r\nX-Api-Key: k1\r\n\r\n")
                .status,
        );
    }
    // One keep-alive connection stays on one shard: exact.
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 503]);
    // The other shard hears the count within a sync interval or two.
    wait_for("every shard limits k1", Duration::from_secs(2), || {
        (0..6).all(|_| get_with(addr, "X-Api-Key: k1").status == 503)
    });
    assert_eq!(get_with(addr, "X-Api-Key: k2").status, 200);
    // Requests without the key are not counted.
    for _ in 0..8 {
        assert_eq!(http_get(addr, "/").status, 200);
    }
}

#[test]
fn stick_and_rate_mistakes_are_reported_with_their_place() {
    let out = check_config(&http_config(
        &["127.0.0.1:1".parse().unwrap()],
        "[backend.app.stick]\non = \"url\"\n[[frontend.web.rate_limit]]\nlimit = -1\n",
    ));
    assert!(!out.status.success());
    assert!(
        out.stdout.contains("backend.app.stick.on:")
            || out.stderr.contains("backend.app.stick.on:"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("frontend.web.rate_limit[0].limit:")
            || out.stderr.contains("frontend.web.rate_limit[0].limit:"),
        "{out:?}"
    );
    let cfg = "
defaults
    mode http
frontend web
    bind 127.0.0.1:0
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 5 }
    default_backend app
backend app
    stick match src
    server s1 127.0.0.1:1
";
    let f = write_cfg(cfg);
    let out = ringlb_check(f.path(), &[]);
    assert!(!out.status.success());
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(":9: 'stick match' is not supported"),
        "{text}"
    );
    // A rate of a counter nothing tracks is valid (HAProxy accepts it): it never
    // matches.
    assert!(!text.contains(":6:"), "{text}");
}
