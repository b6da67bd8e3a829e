//! Differential tests of hash balancing: Debian's HAProxy 2.6 and ringlb run the same
//! haproxy.cfg (`common::twins`), get the same keys, and every key must land on the
//! server of the same name on both. Covered: `balance uri` (and its `whole`, `len`,
//! `depth` options), `url_param`, `hdr()` and `source`; `hash-type map-based` and
//! `consistent`, the default function and others with `avalanche`; servers of
//! different weights with explicit and automatic ids; the same again after one server
//! is put in maintenance on both runtime APIs (a consistent ring moves only that
//! server's keys, a map is rebuilt over the others).

use crate::common;

use std::net::{IpAddr, Ipv4Addr};

use common::client::HttpClient;
use common::haproxy::{haproxy_check, ringlb_check, write_cfg};
use common::twins::{ask, get, Srv, Twins};

/// The servers every backend uses: different weights; ids explicit (s2: 10, s4: 3)
/// and automatic (HAProxy numbers s1 1, s3 4, s5 6: the counter moves past every
/// server line and skips used ids).
const SERVERS: &str = r#"
    server s1 "${S1}"
    server s2 "${S2}" weight 3 id 10
    server s3 "${S3}" weight 2
    server s4 "${S4}" id 3
    server s5 "${S5}" weight 4
"#;

/// Backends with even weights only: map-based weights are divided by their gcd.
const EVEN_SERVERS: &str = r#"
    server s1 "${S1}" weight 2
    server s2 "${S2}" weight 6
    server s3 "${S3}" weight 4
"#;

fn servers() -> Vec<(&'static str, Srv)> {
    vec![
        ("S1", Srv::Up("s1")),
        ("S2", Srv::Up("s2")),
        ("S3", Srv::Up("s3")),
        ("S4", Srv::Up("s4")),
        ("S5", Srv::Up("s5")),
    ]
}

/// One frontend per backend `(name, balance and hash-type lines, servers)`.
fn start(backends: &[(&str, &str, &str)]) -> Twins {
    let mut body = String::new();
    let mut frontends = Vec::new();
    for (i, (name, lines, servers)) in backends.iter().enumerate() {
        body.push_str(&format!(
            "frontend fe_{name}\n    bind \"127.0.0.1:${{P{i}}}\"\n    default_backend {name}\n\nbackend {name}\n{lines}\n{servers}\n"
        ));
        frontends.push((*name, format!("P{i}")));
    }
    let fe: Vec<(String, String)> = frontends
        .iter()
        .map(|(n, p)| (format!("fe_{n}"), p.clone()))
        .collect();
    let fe_refs: Vec<(&str, &str)> = fe.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Twins::start(&body, &fe_refs, &servers())
}

/// The server that answered each request on a fresh connection, on both sides; the
/// keys spread over at least two servers (so that agreeing is not trivial).
fn placement(t: &Twins, frontend: &str, requests: &[String]) {
    t.same_all(requests, |s, r| {
        let (status, server) = ask(s.addr(&format!("fe_{frontend}")), r);
        assert_eq!(status, 200, "{} {r:?}", s.who);
        server
    });
    let seen: std::collections::BTreeSet<String> = requests
        .iter()
        .map(|r| ask(t.lb.addr(&format!("fe_{frontend}")), r).1)
        .collect();
    assert!(seen.len() >= 2, "{frontend}: keys on {seen:?} only");
}

fn put_in_maint(t: &Twins, backend: &str, server: &str) {
    for side in [&t.hx, &t.lb] {
        let out = side.cli(&format!("set server {backend}/{server} state maint"));
        assert!(out.trim().is_empty(), "{}: {out}", side.who);
    }
}

fn uri_keys() -> Vec<String> {
    (0..200)
        .map(|i| {
            get(
                "h",
                &format!("/k{i}/d{}/e{}/f?q={i}&r={}", i % 7, i % 3, i * 7),
            )
        })
        .collect()
}

#[test]
fn balance_uri_places_keys_as_haproxy() {
    let backends = [
        ("map_sdbm", "    balance uri", SERVERS),
        ("map_even", "    balance uri", EVEN_SERVERS),
        (
            "map_crc_av",
            "    balance uri\n    hash-type map-based crc32 avalanche",
            SERVERS,
        ),
        (
            "map_wt6",
            "    balance uri\n    hash-type map-based wt6",
            SERVERS,
        ),
        (
            "cons_default",
            "    balance uri\n    hash-type consistent",
            SERVERS,
        ),
        (
            "cons_djb2_av",
            "    balance uri\n    hash-type consistent djb2 avalanche",
            SERVERS,
        ),
        (
            "cons_sdbm",
            "    balance uri\n    hash-type consistent sdbm",
            SERVERS,
        ),
        (
            "depth2",
            "    balance uri depth 2\n    hash-type consistent",
            SERVERS,
        ),
        ("len10", "    balance uri len 10", SERVERS),
        (
            "whole",
            "    balance uri whole\n    hash-type consistent wt6 avalanche",
            SERVERS,
        ),
    ];
    let t = start(&backends);
    let keys = uri_keys();
    for (name, ..) in &backends {
        placement(&t, name, &keys);
    }
    // One server leaves: the same placement again.
    for (name, ..) in &backends {
        put_in_maint(&t, name, if name == &"map_even" { "s3" } else { "s2" });
    }
    for (name, ..) in &backends {
        placement(&t, name, &keys);
    }
}

#[test]
fn balance_url_param_and_hdr_place_keys_as_haproxy() {
    let backends = [
        ("param_map", "    balance url_param user", SERVERS),
        (
            "param_cons",
            "    balance url_param user\n    hash-type consistent",
            SERVERS,
        ),
        (
            "param_crc",
            "    balance url_param user\n    hash-type consistent crc32 avalanche",
            SERVERS,
        ),
        ("hdr_map", "    balance hdr(X-User)", SERVERS),
        (
            "hdr_cons",
            "    balance hdr(X-User)\n    hash-type consistent",
            SERVERS,
        ),
        (
            "hdr_djb2",
            "    balance hdr(X-User)\n    hash-type map-based djb2 avalanche",
            SERVERS,
        ),
        (
            "host_domain",
            "    balance hdr(Host) use_domain_only\n    hash-type consistent",
            SERVERS,
        ),
    ];
    let t = start(&backends);
    let params: Vec<String> = (0..200)
        .map(|i| get("h", &format!("/p?a={i}&user=u{i}x&b=2")))
        .collect();
    let headers: Vec<String> = (0..200)
        .map(|i| format!("GET /same HTTP/1.1\r\nHost: h\r\nX-User: user-{i}, other\r\n\r\n"))
        .collect();
    let hosts: Vec<String> = (0..200)
        .map(|i| get(&format!("www.site{i}.example"), "/"))
        .collect();
    let check = |t: &Twins| {
        for name in ["param_map", "param_cons", "param_crc"] {
            placement(t, name, &params);
        }
        for name in ["hdr_map", "hdr_cons", "hdr_djb2"] {
            placement(t, name, &headers);
        }
        placement(t, "host_domain", &hosts);
    };
    check(&t);
    for (name, ..) in &backends {
        put_in_maint(&t, name, "s5");
    }
    check(&t);
}

#[test]
fn balance_source_places_clients_as_haproxy() {
    let backends = [
        ("src_map", "    balance source", SERVERS),
        (
            "src_cons",
            "    balance source\n    hash-type consistent",
            SERVERS,
        ),
        (
            "src_av",
            "    balance source\n    hash-type map-based sdbm avalanche",
            SERVERS,
        ),
    ];
    let t = start(&backends);
    let clients: Vec<IpAddr> = (0..200u32)
        .map(|i| {
            IpAddr::V4(Ipv4Addr::new(
                127,
                1 + (i % 3) as u8,
                (i / 7) as u8,
                1 + (i % 250) as u8,
            ))
        })
        .collect();
    let check = |t: &Twins| {
        for (name, ..) in &backends {
            t.same_all(&clients, |s, ip| {
                let mut c = HttpClient::connect_from(s.addr(&format!("fe_{name}")), *ip);
                let r = c.get("/");
                assert_eq!(r.status, 200, "{} {ip}", s.who);
                r.header("x-backend").unwrap_or("-").to_string()
            });
            let seen: std::collections::BTreeSet<String> = clients
                .iter()
                .map(|ip| {
                    let mut c = HttpClient::connect_from(t.lb.addr(&format!("fe_{name}")), *ip);
                    c.get("/").header("x-backend").unwrap_or("-").to_string()
                })
                .collect();
            assert!(seen.len() >= 3, "{name}: clients on {seen:?} only");
        }
    };
    check(&t);
    for (name, ..) in &backends {
        put_in_maint(&t, name, "s1");
    }
    check(&t);
}

/// What HAProxy refuses in these keywords, ringlb refuses too (and accepts what it
/// accepts).
#[test]
fn hash_keywords_are_refused_as_haproxy_refuses_them() {
    let cases = [
        (
            "    balance uri depth 2 len 10 whole path-only\n    hash-type consistent",
            true,
        ),
        (
            "    balance hdr(Host) use_domain_only\n    hash-type map-based crc32",
            true,
        ),
        ("    balance uri depth 0", false),
        ("    balance uri len x", false),
        ("    balance uri deep 2", false),
        ("    balance hdr(Host) domain", false),
        ("    balance source\n    hash-type consistent md5", false),
        (
            "    balance source\n    hash-type map-based sdbm fast",
            false,
        ),
        ("    balance source\n    hash-type ring", false),
        (
            "    balance source\n    server a 127.0.0.1:1 id 7\n    server b 127.0.0.1:2 id 7",
            false,
        ),
        ("    balance source\n    server a 127.0.0.1:1 id 0", false),
    ];
    for (lines, ok) in cases {
        let text = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend fe\n    bind 127.0.0.1:9\n    default_backend app\n\nbackend app\n{lines}\n    server z 127.0.0.1:3\n"
        );
        let cfg = write_cfg(&text);
        let hx = haproxy_check(cfg.path(), &[]);
        let rl = ringlb_check(cfg.path(), &[]);
        assert_eq!(
            hx.status.success(),
            ok,
            "haproxy on {lines:?}: {}",
            hx.stderr
        );
        assert_eq!(
            rl.status.success(),
            ok,
            "ringlb on {lines:?}: {}",
            rl.stderr
        );
    }
}
