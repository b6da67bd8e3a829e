//! Differential tests of traffic: Debian's HAProxy 2.6 and ringlb run the same
//! haproxy.cfg text (`common::twins`: each on its own port and set of test servers with
//! the same names, `nbthread 1` in both), get the same requests, and must answer alike:
//! status codes, the server that answered (`x-backend`), the X-Forwarded-For values the
//! server saw. Covered: round robin and other algorithms, backups, dead servers, failing
//! health checks, retries with and without redispatch, X-Forwarded-For, local replies.
//! Routing is compared in `haproxy_diff_routing.rs`, the runtime API in
//! `haproxy_diff_runtime_api.rs`.
//!
//! A mismatch panics with the config, the request and both answers. Differences that
//! README or `src/config/from_haproxy.rs` document as deliberate are not compared: they
//! are pinned (`documented_deviations_stay_as_documented`) or ignored with the reason.

use crate::common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::traffic::backend_of;
use common::twins::{ask, get, stat_view, status_of, Side, Srv, Twins};
use common::*;

#[test]
fn roundrobin_over_two_servers_takes_turns_in_the_same_order() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    balance roundrobin
    server s1 "${S1}"
    server s2 "${S2}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    t.same("6 GETs, each on a new connection", |s| {
        (0..6)
            .map(|_| ask(s.addr("web"), &get("h", "/")).1)
            .collect::<Vec<_>>()
    });
    t.same("6 GETs on one keep-alive connection", |s| {
        let mut c = HttpClient::connect(s.addr("web"));
        (0..6).map(|_| backend_of(&c.get("/"))).collect::<Vec<_>>()
    });
}

#[test]
fn weighted_roundrobin_gives_the_same_shares() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    balance roundrobin
    server s1 "${S1}" weight 3
    server s2 "${S2}" weight 1
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    t.same(
        "8 GETs (two turns of weights 3:1): requests per server",
        |s| {
            let mut tally = BTreeMap::new();
            for _ in 0..8 {
                *tally
                    .entry(ask(s.addr("web"), &get("h", "/")).1)
                    .or_insert(0) += 1;
            }
            tally
        },
    );
}

#[test]
fn backup_servers_take_over_when_the_primary_is_down() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

frontend all
    bind "127.0.0.1:${PORT2}"
    default_backend app_all

backend app
    option httpchk GET /health
    default-server inter 100ms fall 2 rise 2
    server s1 "${S1}" check
    server b1 "${B1}" check backup
    server b2 "${B2}" check backup

backend app_all
    option allbackups
    server d1 "${D1}" check inter 100ms fall 1
    server b3 "${B3}" backup
    server b4 "${B4}" backup
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT"), ("all", "PORT2")],
        &[
            ("S1", Srv::Up("s1")),
            ("B1", Srv::Up("b1")),
            ("B2", Srv::Up("b2")),
            ("D1", Srv::Dead),
            ("B3", Srv::Up("b3")),
            ("B4", Srv::Up("b4")),
        ],
    );
    let four = |s: &Side, fe: &str| -> Vec<(u16, String)> {
        (0..4).map(|_| ask(s.addr(fe), &get("h", "/"))).collect()
    };
    t.same("4 GETs while s1 is up", |s| four(s, "web"));

    t.both(|s| s.backend("s1").set_health_status(503));
    t.wait_both("s1 DOWN", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "DOWN"
    });
    t.same("4 GETs while s1 is down: the first backup only", |s| {
        four(s, "web")
    });

    t.wait_both("d1 DOWN", Duration::from_secs(10), |s| {
        status_of(s, "app_all", "d1") == "DOWN"
    });
    t.same(
        "4 GETs with option allbackups, the primary down: every backup",
        |s| four(s, "all"),
    );

    t.both(|s| s.backend("s1").set_health_status(200));
    t.wait_both("s1 UP again", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "UP"
    });
    t.same("4 GETs once s1 is back", |s| four(s, "web"));
}

#[test]
fn all_servers_dead_is_503() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

frontend checked
    bind "127.0.0.1:${PORT2}"
    default_backend app_checked

backend app
    retries 1
    server s1 "${D1}"
    server s2 "${D2}"

backend app_checked
    server s3 "${D3}" check inter 100ms fall 1
    server s4 "${D4}" check inter 100ms fall 1
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT"), ("checked", "PORT2")],
        &[
            ("D1", Srv::Dead),
            ("D2", Srv::Dead),
            ("D3", Srv::Dead),
            ("D4", Srv::Dead),
        ],
    );
    t.same("GET / with every server refusing connections", |s| {
        (0..2)
            .map(|_| ask(s.addr("web"), &get("h", "/")).0)
            .collect::<Vec<_>>()
    });
    t.wait_both("every checked server DOWN", Duration::from_secs(10), |s| {
        status_of(s, "app_checked", "BACKEND") == "DOWN"
    });
    t.same("GET / with every server DOWN by its check", |s| {
        ask(s.addr("checked"), &get("h", "/")).0
    });
}

#[test]
fn a_failing_http_check_takes_a_server_out_and_back() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    option httpchk GET /health
    http-check expect status 200
    server s1 "${S1}" check inter 100ms fall 2 rise 2
    server s2 "${S2}" check inter 100ms fall 2 rise 2
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    let cols = ["status", "check_status", "check_code"];
    t.wait_both("both servers checked", Duration::from_secs(10), |s| {
        stat_view(s, &cols)
            .iter()
            .all(|r| r.0 != "app" || r.1 == "BACKEND" || r.2[1] == "L7OK")
    });
    t.same("show stat while both pass", |s| stat_view(s, &cols));

    t.both(|s| s.backend("s1").set_health_status(500));
    t.wait_both("s1 DOWN", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "DOWN"
    });
    t.same("show stat once s1's check answers 500", |s| {
        stat_view(s, &cols)
    });
    t.same("6 GETs while s1 is down", |s| {
        (0..6)
            .map(|_| ask(s.addr("web"), &get("h", "/")))
            .collect::<Vec<_>>()
    });

    t.both(|s| s.backend("s1").set_health_status(200));
    t.wait_both("s1 UP again", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "UP"
    });
    t.same("show stat once s1 passes again", |s| {
        stat_view(s, &["status", "check_status"])
    });
}

/// The X-Forwarded-For values the server saw for a request.
fn xff_seen(
    s: &Side,
    server: &str,
    addr: SocketAddr,
    local: Option<IpAddr>,
    raw: &str,
) -> Vec<String> {
    let mut c = match local {
        Some(ip) => HttpClient::connect_from(addr, ip),
        None => HttpClient::connect(addr),
    };
    let r = c.request(raw);
    assert_eq!(r.status, 200, "{}: {r:?}", s.who);
    s.backend(server)
        .last_headers()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn x_forwarded_for_values_match() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    option forwardfor
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let lo7: IpAddr = "127.0.0.7".parse().unwrap();
    let cases: Vec<(Option<IpAddr>, String)> = vec![
        (None, get("h", "/")),
        (Some(lo7), get("h", "/")),
        (
            None,
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n".into(),
        ),
        (
            Some(lo7),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.1.1.1, 10.2.2.2\r\nX-Forwarded-For: 10.3.3.3\r\n\r\n"
                .into(),
        ),
        (None, "GET / HTTP/1.0\r\n\r\n".into()),
    ];
    t.same_all(&cases, |s, (local, raw)| {
        xff_seen(s, "s1", s.addr("web"), *local, raw)
    });
}

/// The manual: "This option may be specified either in the frontend or in the
/// backend. If at least one of them uses it, the header will be added."
#[test]
fn x_forwarded_for_from_the_backend_only() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    use_backend with_xff if { path_beg /xff/ }
    default_backend app

backend app
    server s1 "${S1}"

backend with_xff
    option forwardfor
    server s2 "${S2}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    t.same("GET / (backend without forwardfor)", |s| {
        xff_seen(s, "s1", s.addr("web"), None, &get("h", "/"))
    });
    t.same("GET /xff/ (option forwardfor in the backend only)", |s| {
        xff_seen(s, "s2", s.addr("web"), None, &get("h", "/xff/"))
    });
}

/// static-rr, leastconn (one request at a time: equally loaded servers take turns) and
/// first. The hash algorithms (source, uri, url_param, hdr) are compared key by key in
/// `haproxy_diff_hash.rs`.
#[test]
fn other_algorithms_pick_the_same_servers() {
    let body = r#"
frontend rr
    bind "127.0.0.1:${P1}"
    default_backend static

frontend lc
    bind "127.0.0.1:${P2}"
    default_backend leastconn

frontend first
    bind "127.0.0.1:${P3}"
    default_backend first

backend static
    balance static-rr
    server s1 "${S1}"
    server s2 "${S2}"
    server s3 "${S3}"

backend leastconn
    balance leastconn
    server l1 "${L1}"
    server l2 "${L2}"
    server l3 "${L3}"

backend first
    balance first
    server f1 "${F1}" maxconn 1
    server f2 "${F2}" maxconn 1
"#;
    let t = Twins::start(
        body,
        &[("rr", "P1"), ("lc", "P2"), ("first", "P3")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("S3", Srv::Up("s3")),
            ("L1", Srv::Up("l1")),
            ("L2", Srv::Up("l2")),
            ("L3", Srv::Up("l3")),
            ("F1", Srv::Up("f1")),
            ("F2", Srv::Up("f2")),
        ],
    );
    for fe in ["rr", "lc", "first"] {
        t.same(&format!("6 GETs in a row to frontend {fe}"), |s| {
            (0..6)
                .map(|_| ask(s.addr(fe), &get("h", "/")).1)
                .collect::<Vec<_>>()
        });
    }
}

/// README documents ringlb's round robin as an earliest-deadline schedule (a server's
/// k-th turn is due at (k + 1/2) / weight), which interleaves servers of different
/// weights in another order than HAProxy's fwrr tree (same shares, see
/// `weighted_roundrobin_gives_the_same_shares`). HAProxy: s1 s3 s1 s2 s1 s3, ringlb:
/// s1 s3 s1 s2 s3 s1.
#[test]
#[ignore = "deliberate: README documents the earliest-deadline round robin, whose order differs from HAProxy's fwrr"]
fn weighted_roundrobin_order() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    balance roundrobin
    server s1 "${S1}" weight 3
    server s2 "${S2}" weight 1
    server s3 "${S3}" weight 2
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("S3", Srv::Up("s3")),
        ],
    );
    t.same("12 GETs (two turns of weights 3:1:2), in order", |s| {
        (0..12)
            .map(|_| ask(s.addr("web"), &get("h", "/")).1)
            .collect::<Vec<_>>()
    });
}

/// The local replies: the config's `timeout server` and `timeout http-request` are
/// short, so 504 and 408 come quickly.
const SHORT: &str = r#"
defaults short
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 400ms
    timeout http-request 400ms

frontend web from short
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app from short
    server s1 "${S1}"
"#;

#[test]
fn local_replies_have_the_same_status() {
    let t = Twins::start(SHORT, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let requests: Vec<String> = vec![
        get("h", "/"),
        // 502: not HTTP, and a close before any response byte.
        get("h", "/garbage"),
        get("h", "/close"),
        // 504: no response within `timeout server`.
        get("h", "/sleep/1500"),
        // The server's own 503 passes through.
        get("h", "/status/503"),
        // 400: malformed requests.
        "NOT HTTP AT ALL\r\n\r\n".into(),
        "GET /\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx".into(),
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n".into(),
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: h\r\nX-Bad Header: 1\r\n\r\n".into(),
        // Two equal Content-Lengths are one.
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n".into(),
        // 408: the head is not complete within `timeout http-request`.
        "GET / HTTP/1.1\r\nHost: h\r\n".into(),
    ];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// Requests README documents ringlb refusing where HAProxy 2.6 goes on ("Framing
/// ambiguities are refused with 400 before anything is forwarded: Content-Length with
/// Transfer-Encoding, ..., Transfer-Encoding on HTTP/1.0, HTTP/1.1 without exactly one
/// Host"; "431 head above `limits.max_header_bytes`"). Not compared: both answers are
/// pinned, so that a change on either side is noticed and the docs follow.
#[test]
fn documented_deviations_stay_as_documented() {
    let t = Twins::start(SHORT, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let big = "a".repeat(20_000);
    let cases: Vec<(String, u16, u16)> = vec![
        // (request, HAProxy's status, ringlb's status)
        ("GET / HTTP/1.1\r\n\r\n".into(), 200, 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".into(), 200, 400),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            200,
            400,
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            200,
            400,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n"),
            400,
            431,
        ),
    ];
    for (raw, hx, lb) in &cases {
        let got = t.both(|s| ask(s.addr("web"), raw).0);
        let shown: String = format!("{raw:?}").chars().take(120).collect();
        assert_eq!(got, (*hx, *lb), "{shown}: (haproxy, ringlb)");
    }
}

/// `HTTP/2.0` on an HTTP/1 request line: HAProxy 2.6 serves it as HTTP/1.1.
#[test]
#[ignore = "documented deviation (README, HTTP behaviour): ringlb answers 400 to a request line that is not HTTP/1.0 or HTTP/1.1"]
fn request_line_with_version_2_0() {
    let t = Twins::start(SHORT, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    t.same("GET / HTTP/2.0 with a Host", |s| {
        ask(s.addr("web"), "GET / HTTP/2.0\r\nHost: h\r\n\r\n")
    });
}

/// Two servers, the first refusing connections; `retries 2` and a 100 ms turn-around
/// (HAProxy waits min(`timeout connect`, 1s) before a retry).
const RETRIES: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    retries 2
    timeout connect 100ms
    server s1 "${D1}"
    server s2 "${S2}"
"#;

/// Without `option redispatch` HAProxy retries the server it picked: a request
/// balanced onto the dead one gets 503.
#[test]
fn retries_without_redispatch_stay_on_the_server() {
    let t = Twins::start(
        RETRIES,
        &[("web", "PORT")],
        &[("D1", Srv::Dead), ("S2", Srv::Up("s2"))],
    );
    t.same(
        "4 GETs, the first server refusing, no option redispatch",
        |s| {
            (0..4)
                .map(|_| ask(s.addr("web"), &get("h", "/")))
                .collect::<Vec<_>>()
        },
    );
}

/// With `option redispatch` the last retry goes to another server.
#[test]
fn retries_with_redispatch_reach_another_server() {
    let body = RETRIES.replace("    retries 2\n", "    retries 2\n    option redispatch\n");
    let t = Twins::start(
        &body,
        &[("web", "PORT")],
        &[("D1", Srv::Dead), ("S2", Srv::Up("s2"))],
    );
    t.same(
        "4 GETs, the first server refusing, option redispatch",
        |s| {
            (0..4)
                .map(|_| ask(s.addr("web"), &get("h", "/")))
                .collect::<Vec<_>>()
        },
    );
}
