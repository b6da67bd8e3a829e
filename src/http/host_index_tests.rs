//! Table tests of the host index: for every request, the rule it picks is the one the
//! ordered evaluation picks (the reference), and a few picks are spelled out.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use crate::config::Acl;
use crate::http::head::{header_slots, parse_request, Parsed};
use crate::http::route::{eval, View};

fn test(fetch: Fetch, method: MatchMethod, ic: bool, p: &[&str]) -> AclTest {
    AclTest::new(fetch, method, ic, p).unwrap()
}

fn acl(tests: Vec<AclTest>) -> Condition {
    Condition::Acl(Arc::new(Acl {
        name: "t".into(),
        tests,
    }))
}

fn host(ic: bool, p: &[&str]) -> Condition {
    acl(vec![test(
        Fetch::Header("host".into()),
        MatchMethod::Str,
        ic,
        p,
    )])
}

/// Rule i: its condition. Hosts `hN.example` for the filler rules.
fn rules() -> Vec<Condition> {
    let mut r = vec![
        // 0: a path rule before everything: wins over any host.
        acl(vec![test(
            Fetch::Path,
            MatchMethod::Beg,
            false,
            &["/first/"],
        )]),
        // 1: exact, case-insensitive (stored lower-cased).
        host(true, &["a.example"]),
        // 2: case-sensitive.
        host(false, &["B.example"]),
        // 3: the same host as 1: never wins.
        host(true, &["A.EXAMPLE"]),
        // 4: a non-indexable host rule (hdr_beg) between indexed ones.
        acl(vec![test(
            Fetch::Header("host".into()),
            MatchMethod::Beg,
            true,
            &["c."],
        )]),
        // 5: an indexed host after the hdr_beg that also covers it.
        host(true, &["c.example"]),
        // 6: an ACL of two host tests and `||`: indexed.
        Condition::Any(vec![
            host(true, &["d.example", "d2.example"]),
            host(false, &["D3.example"]),
        ]),
        // 7: host AND path: not indexed.
        Condition::All(vec![
            host(true, &["e.example"]),
            acl(vec![test(Fetch::Path, MatchMethod::Beg, false, &["/e/"])]),
        ]),
        // 8: the same host without the path: indexed, after 7.
        host(true, &["e.example"]),
        // 9: a negation: not indexed.
        Condition::Not(Box::new(host(true, &["nowhere.example"]))),
        // 10: a TOML route's host (host name without port, case-insensitive).
        acl(vec![test(
            Fetch::HostName,
            MatchMethod::Str,
            true,
            &["t.example"],
        )]),
    ];
    // 11..: filler so that the index is built; the last one is after the negation.
    for i in 0..20 {
        r.push(host(true, &[&format!("h{i}.example")]));
    }
    r
}

fn pick(ix: &HostIndex, conds: &[Condition], raw: &str) -> (Option<usize>, Option<usize>) {
    let mut headers = header_slots();
    let mut out = Vec::new();
    let limits = crate::config::Limits::default();
    let Parsed::Done(req) = parse_request(raw.as_bytes(), &mut headers, &limits, None, &mut out)
    else {
        panic!("bad request {raw:?}")
    };
    let src: IpAddr = "10.0.0.1".parse().unwrap();
    let v = View { req: &req, src };
    let ordered = conds.iter().position(|c| eval(c, &v));
    let indexed = ix.first(&req, |i| eval(&conds[i], &v));
    (ordered, indexed)
}

#[test]
fn same_answer_as_first_match_order() {
    let conds = rules();
    let ix = HostIndex::build(&conds).expect("enough host rules for an index");
    let get = |path: &str, hosts: &[&str]| {
        let mut raw = format!("GET {path} HTTP/1.1\r\n");
        for h in hosts {
            raw.push_str(&format!("Host: {h}\r\n"));
        }
        raw + "\r\n"
    };
    // (request, the rule it must pick)
    let table: Vec<(String, Option<usize>)> = vec![
        (get("/", &["a.example"]), Some(1)),
        (get("/", &["A.Example"]), Some(1)),
        (get("/first/x", &["a.example"]), Some(0)),
        (get("/", &["B.example"]), Some(2)),
        (get("/", &["b.example"]), Some(9)),
        (get("/", &["c.example"]), Some(4)),
        (get("/", &["C.EXAMPLE"]), Some(4)),
        (get("/", &["d2.example"]), Some(6)),
        (get("/", &["D3.example"]), Some(6)),
        (get("/", &["d3.example"]), Some(9)),
        (get("/e/1", &["e.example"]), Some(7)),
        (get("/x", &["e.example"]), Some(8)),
        (get("/", &["nowhere.example"]), None),
        (get("/", &["t.example:8080"]), Some(9)),
        (get("/", &["h0.example"]), Some(9)),
        (get("/", &["a.example:80"]), Some(9)),
        // (A Host with a list of values, or two Host headers, are refused before
        // routing.)
        (get("/", &["  B.example  "]), Some(2)),
        (get("/", &[&"x".repeat(300)]), Some(9)),
        ("GET / HTTP/1.0\r\n\r\n".to_string(), Some(9)),
        (
            "GET http://T.example:81/ HTTP/1.1\r\nHost: t.example:81\r\n\r\n".to_string(),
            Some(9),
        ),
    ];
    for (raw, want) in &table {
        let (ordered, indexed) = pick(&ix, &conds, raw);
        assert_eq!(ordered, *want, "ordered evaluation of {raw:?}");
        assert_eq!(indexed, *want, "indexed evaluation of {raw:?}");
    }
}

#[test]
fn without_the_negation_hosts_after_it_come_from_the_index() {
    let mut conds = rules();
    conds.remove(9);
    let ix = HostIndex::build(&conds).unwrap();
    for (host, want) in [
        ("h19.example", Some(29)),
        ("H7.example", Some(17)),
        ("t.example:8080", Some(9)),
        ("T.EXAMPLE", Some(9)),
        ("unknown.example", None),
    ] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(pick(&ix, &conds, &raw), (want, want), "{host}");
    }
    // Only the rules not indexed are evaluated, and only those before the hit.
    let raw = "GET / HTTP/1.1\r\nHost: h19.example\r\n\r\n";
    let mut headers = header_slots();
    let mut out = Vec::new();
    let limits = crate::config::Limits::default();
    let Parsed::Done(req) = parse_request(raw.as_bytes(), &mut headers, &limits, None, &mut out)
    else {
        panic!()
    };
    let mut evaluated = Vec::new();
    let _ = ix.first(&req, |i| {
        evaluated.push(i);
        false
    });
    assert_eq!(evaluated, vec![0, 4, 7]);
}

#[test]
fn few_host_rules_make_no_index() {
    let conds: Vec<_> = (0..MIN_INDEXED - 1)
        .map(|i| host(true, &[&format!("h{i}.example")]))
        .collect();
    assert!(HostIndex::build(&conds).is_none());
    let conds: Vec<_> = (0..MIN_INDEXED)
        .map(|i| host(true, &[&format!("h{i}.example")]))
        .collect();
    assert!(HostIndex::build(&conds).is_some());
}
