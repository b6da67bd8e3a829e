//! `balance = "hash"`: for every key kind (client IP, URI, path, a header, a URL
//! parameter) the same key always reaches the same server, across connections and
//! shards, with map-based and consistent hashing alike; a request without the key is
//! balanced round robin; with consistent hashing, removing one server of five moves
//! only the keys it held; weights shape the share of keys; a tcp and an http frontend
//! send a client IP to the same server; `hash_type` names HAProxy's functions and
//! modifier, and a bad one is refused with its path. Placement itself (the same
//! server as HAProxy 2.6 for every key) is compared in `haproxy_diff_hash.rs`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use common::traffic::*;
use common::*;

const HASH_TYPES: [&str; 2] = ["map-based", "consistent"];
const KEYS: usize = 25;
const REPEATS: usize = 4;

fn backends(n: usize) -> Vec<TestBackend> {
    (1..=n)
        .map(|i| TestBackend::start(&format!("s{i}")))
        .collect()
}

fn hash_lb(shards: usize, key: &str, hash_type: &str, b: &[TestBackend]) -> RingLb {
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    RingLb::start(&app_config(
        shards,
        "",
        &format!("balance = \"hash\"\nhash_key = \"{key}\"\nhash_type = \"{hash_type}\""),
        &servers,
    ))
}

/// Sends `request(key, i)` for every key `REPEATS` times, each on a new connection
/// (so both shards see every key), and checks that each key stays on one server.
/// Returns the server of each key.
fn assert_sticky(
    lb: &RingLb,
    what: &str,
    request: impl Fn(usize, usize) -> Vec<u8>,
) -> BTreeMap<usize, String> {
    let mut seen: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for i in 0..REPEATS {
        for k in 0..KEYS {
            let r = HttpClient::connect(lb.addr("web")).request(request(k, i));
            assert_eq!(r.status, 200, "{what}: key {k}: {:?}", r.body_str());
            seen.entry(k).or_default().insert(backend_of(&r));
        }
    }
    let split: Vec<_> = seen.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(
        split.is_empty(),
        "{what}: keys on several servers: {split:?}"
    );
    let map: BTreeMap<usize, String> = seen
        .into_iter()
        .map(|(k, s)| (k, s.into_iter().next().unwrap()))
        .collect();
    let used: BTreeSet<&String> = map.values().collect();
    assert!(
        used.len() >= 2,
        "{what}: {KEYS} keys all hashed to {used:?}"
    );
    map
}

/// `n` requests from `request(i)` on one keep-alive connection: the tally.
fn tally_of(lb: &RingLb, n: usize, request: impl Fn(usize) -> Vec<u8>) -> Tally {
    let mut c = HttpClient::connect(lb.addr("web"));
    let mut t = Tally::default();
    for i in 0..n {
        let r = c.request(request(i));
        assert_eq!(r.status, 200, "request {i}: {:?}", r.body_str());
        t.add(&backend_of(&r));
    }
    t
}

fn get(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: test.local\r\n{extra_headers}\r\n").into_bytes()
}

#[test]
fn source_ip_is_sticky() {
    let b = backends(3);
    for ht in HASH_TYPES {
        let lb = hash_lb(2, "source", ht, &b);
        let addr = lb.addr("web");
        let mut seen: BTreeMap<u8, BTreeSet<String>> = BTreeMap::new();
        for _ in 0..REPEATS {
            // 127.0.0.2 ..= 127.0.0.31: every one a different client IP on loopback.
            for host in 2..2 + KEYS as u8 {
                let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
                let mut c = HttpClient::connect_from(addr, ip);
                let r = c.get("/");
                assert_eq!(r.status, 200);
                seen.entry(host).or_default().insert(backend_of(&r));
            }
        }
        let split: Vec<_> = seen.iter().filter(|(_, s)| s.len() > 1).collect();
        assert!(
            split.is_empty(),
            "{ht}: client IPs on several servers: {split:?}"
        );
        let used: BTreeSet<&String> = seen.values().flatten().collect();
        assert!(used.len() >= 2, "{ht}: {KEYS} client IPs all on {used:?}");
    }
}

#[test]
fn uri_is_sticky_and_includes_the_query() {
    let b = backends(3);
    for ht in HASH_TYPES {
        let lb = hash_lb(2, "uri", ht, &b);
        assert_sticky(&lb, &format!("uri/{ht}"), |k, _| {
            get(&format!("/item/{k}?v=1"), "")
        });
        // Same path, a different query on each key: the query is part of the key, so
        // these spread too.
        assert_sticky(&lb, &format!("uri query/{ht}"), |k, _| {
            get(&format!("/item?v={k}"), "")
        });
    }
}

#[test]
fn path_is_sticky_and_ignores_the_query() {
    let b = backends(3);
    for ht in HASH_TYPES {
        let lb = hash_lb(2, "path", ht, &b);
        assert_sticky(&lb, &format!("path/{ht}"), |k, i| {
            get(&format!("/item/{k}?nonce={i}-{k}"), "")
        });
    }
}

#[test]
fn header_is_sticky_and_missing_header_is_round_robin() {
    let b = backends(3);
    for ht in HASH_TYPES {
        let lb = hash_lb(2, "header:X-User", ht, &b);
        assert_sticky(&lb, &format!("header/{ht}"), |k, i| {
            get(&format!("/r{i}"), &format!("X-User: user-{k}\r\n"))
        });
        // The header name matches in any case.
        let mut c = HttpClient::connect(lb.addr("web"));
        let a = backend_of(&c.request(get("/", "X-User: user-7\r\n")));
        let b2 = backend_of(&c.request(get("/", "x-user: user-7\r\n")));
        assert_eq!(a, b2, "header name case changed the server");
        drop(lb);

        // Without the header: round robin (one shard, so exactly even).
        let lb = hash_lb(1, "header:X-User", ht, &b);
        let t = tally_of(&lb, 60, |_| get("/", ""));
        for s in &b {
            t.assert_share(s.name(), 1.0 / 3.0, 0.15);
        }
    }
}

#[test]
fn url_param_is_sticky_and_missing_param_is_round_robin() {
    let b = backends(3);
    for ht in HASH_TYPES {
        let lb = hash_lb(2, "url_param:user", ht, &b);
        assert_sticky(&lb, &format!("url_param/{ht}"), |k, i| {
            get(&format!("/q{i}?a={i}&user=u{k}&z={k}"), "")
        });
        drop(lb);

        let lb = hash_lb(1, "url_param:user", ht, &b);
        // No query, another parameter, and a parameter whose name only starts with
        // `user`: none is the key.
        let t = tally_of(&lb, 60, |i| {
            let target = match i % 3 {
                0 => "/q".to_string(),
                1 => format!("/q?other={i}"),
                _ => "/q?username=u1".to_string(),
            };
            get(&target, "")
        });
        for s in &b {
            t.assert_share(s.name(), 1.0 / 3.0, 0.15);
        }
    }
}

/// The server of each of `n` X-User keys, through a fresh balancer over `servers`.
/// The server of `n` keys behind `servers`, each with its id (`s3` is id 3): ids
/// place the servers on the ring, as in HAProxy, so a server keeps its points when
/// another leaves the config.
fn map_keys(servers: &[&TestBackend], n: usize) -> Vec<String> {
    let conf: Vec<String> = servers
        .iter()
        .map(|b| server(b.name(), b.addr(), &format!("id = {}", &b.name()[1..])))
        .collect();
    let lb = RingLb::start(&app_config(
        2,
        "",
        "balance = \"hash\"\nhash_key = \"header:X-User\"\nhash_type = \"consistent\"",
        &conf,
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    (0..n)
        .map(|k| {
            let r = c.request(get("/", &format!("X-User: client-{k}\r\n")));
            assert_eq!(r.status, 200, "key {k}");
            backend_of(&r)
        })
        .collect()
}

#[test]
fn consistent_hash_moves_only_the_keys_of_a_removed_server() {
    const N: usize = 1000;
    let b = backends(5);
    let all: Vec<&TestBackend> = b.iter().collect();
    let before = map_keys(&all, N);
    let mut per_server = Tally::default();
    for s in &before {
        per_server.add(s);
    }
    for s in &b {
        let got = per_server.get(s.name());
        assert!(
            (N / 10..=N * 3 / 10).contains(&got),
            "{} holds {got} of {N} keys with 5 equal servers: {per_server:?}",
            s.name()
        );
    }

    // The same five again: the same map (the ring depends on ids and weights only).
    assert_eq!(map_keys(&all, N), before, "restart changed the key map");

    // s3 leaves.
    let four: Vec<&TestBackend> = b.iter().filter(|s| s.name() != "s3").collect();
    let after = map_keys(&four, N);
    let mut moved = 0;
    for (k, (was, now)) in before.iter().zip(&after).enumerate() {
        if was != now {
            assert_eq!(
                was, "s3",
                "key {k} moved from {was} to {now} though only s3 left"
            );
            moved += 1;
        }
        assert_ne!(now, "s3");
    }
    assert!(
        moved <= N * 3 / 10,
        "{moved} of {N} keys moved when one of 5 servers left (want about 1/5)"
    );
}

#[test]
fn map_based_spreads_keys_over_every_server() {
    let b = backends(3);
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    let lb = RingLb::start(&app_config(
        1,
        "",
        "balance = \"hash\"\nhash_key = \"header:X-User\"",
        &servers,
    ));
    let t = tally_of(&lb, 600, |k| get("/", &format!("X-User: client-{k}\r\n")));
    for s in &b {
        let got = t.get(s.name());
        assert!(
            (100..=300).contains(&got),
            "{} got {got} of 600 distinct keys: {t:?}",
            s.name()
        );
    }
}

#[test]
fn weights_shape_the_key_share() {
    let heavy = TestBackend::start("heavy");
    let light = TestBackend::start("light");
    for ht in HASH_TYPES {
        let lb = RingLb::start(&app_config(
            1,
            "",
            &format!("balance = \"hash\"\nhash_key = \"header:X-User\"\nhash_type = \"{ht}\""),
            &[
                server("heavy", heavy.addr(), "weight = 3"),
                server("light", light.addr(), "weight = 1"),
            ],
        ));
        let t = tally_of(&lb, 800, |k| get("/", &format!("X-User: client-{k}\r\n")));
        // HAProxy's ring has 16 points per unit of weight: a looser share than a map.
        let tolerance = if ht == "consistent" { 0.3 } else { 0.15 };
        t.assert_share("heavy", 0.75, tolerance);
        t.assert_share("light", 0.25, tolerance);
    }
}

#[test]
fn tcp_and_http_frontends_agree_on_the_source_hash() {
    // One backend behind an http and a tcp frontend: a client IP lands on the same
    // server through either (the tcp frontend passes the HTTP bytes through).
    let b = backends(3);
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    let cfg = format!(
        "[runtime]\nshards = 2\n\n[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"http\"\ndefault_backend = \"app\"\n\n[frontend.raw]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"app\"\n\n[backend.app]\nbalance = \"hash\"\nhash_key = \"source\"\nhash_type = \"consistent\"\n\n{}",
        servers.join("\n")
    );
    let lb = RingLb::start(&cfg);
    let mut used = BTreeSet::new();
    for host in 2..2 + KEYS as u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
        let via_http = backend_of(&HttpClient::connect_from(lb.addr("web"), ip).get("/"));
        let via_tcp = backend_of(&HttpClient::connect_from(lb.addr("raw"), ip).get("/"));
        assert_eq!(via_http, via_tcp, "client 127.0.0.{host}");
        used.insert(via_http);
    }
    assert!(used.len() >= 2, "{used:?}");
}

#[test]
fn hash_type_takes_a_function_and_avalanche() {
    let b = backends(3);
    let servers: Vec<String> = b.iter().map(|b| server(b.name(), b.addr(), "")).collect();
    // The function changes where keys go: djb2 and crc32 do not agree with sdbm on
    // every key.
    let mut maps = Vec::new();
    for ht in ["map-based", "map-based djb2", "consistent crc32 avalanche"] {
        let lb = RingLb::start(&app_config(
            1,
            "",
            &format!("balance = \"hash\"\nhash_key = \"header:X-User\"\nhash_type = \"{ht}\""),
            &servers,
        ));
        let mut c = HttpClient::connect(lb.addr("web"));
        let m: Vec<String> = (0..100)
            .map(|k| backend_of(&c.request(get("/", &format!("X-User: u{k}\r\n")))))
            .collect();
        maps.push(m);
    }
    assert_ne!(maps[0], maps[1], "djb2 placed every key as sdbm");
    assert_ne!(maps[0], maps[2], "crc32 placed every key as sdbm");

    for (ht, want) in [
        ("consistent md5", "unknown hash function"),
        ("map-based sdbm fast", "unknown hash modifier"),
        ("ring", "unknown hash type"),
    ] {
        let out = check_config(&app_config(
            1,
            "",
            &format!("balance = \"hash\"\nhash_key = \"source\"\nhash_type = \"{ht}\""),
            &servers,
        ));
        let err = &out.stderr;
        assert!(!out.status.success(), "{ht:?} accepted");
        assert!(
            err.contains("backend.app.hash_type") && err.contains(want),
            "{ht:?}: {err}"
        );
    }
}
