//! Observability parity with HAProxy 2.6 (issue 22): HAProxy and ringlb run the same
//! haproxy.cfg with the same traffic, and what each reports is compared field by
//! field: the Prometheus families (`prometheus-exporter`) with their types and label
//! names, the `show stat` columns each kind of row fills, the `show info` fields,
//! and the tags and types of `show stat typed`. What ringlb lacks is printed (run
//! with `--nocapture`); the test holds the share present to the issue's bar: 95 %
//! of families and columns, 90 % of info fields. README.md names each one missing
//! and says why.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::twins::{ask, get, stat_rows, status_of, Side, Srv, Twins};

const CONFIG: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    http-request use-service prometheus-exporter if { path /metrics }
    http-request deny if { path /denied }
    default_backend app

backend app
    option httpchk GET /
    default-server inter 200ms fall 1 rise 1
    server s1 "${S1}" check
    server s2 "${S2}" check
    server dead "${D1}" check

listen tcpsvc
    mode tcp
    bind "127.0.0.1:${TPORT}"
    server t1 "${T1}"
"#;

fn start() -> Twins {
    let t = Twins::start(
        CONFIG,
        &[("web", "PORT"), ("tcpsvc", "TPORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("D1", Srv::Dead),
            ("T1", Srv::Up("t1")),
        ],
    );
    t.wait_both("dead DOWN, s1 and s2 UP", Duration::from_secs(10), |s| {
        status_of(s, "app", "dead") == "DOWN" && status_of(s, "app", "s1") == "UP"
    });
    t
}

/// The same traffic on a side: good requests, a 404, a denied one, an invalid one,
/// and TCP connections through the `listen` section.
fn traffic(s: &Side) {
    let web = s.addr("web");
    for i in 0..20 {
        let path = if i % 5 == 0 { "/status/404" } else { "/" };
        assert_ne!(ask(web, &get("a", path)).0, 0, "{}: no answer", s.who);
    }
    assert_eq!(ask(web, &get("a", "/denied")).0, 403, "{}", s.who);
    let (status, _) = ask(web, "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n");
    assert_eq!(status, 400, "{}", s.who);
    for _ in 0..3 {
        let mut c = TcpStream::connect(s.addr("tcpsvc")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        assert!(out.starts_with(b"HTTP/1.1 200"), "{}: tcp answer", s.who);
    }
}

/// Prometheus text: family → (type, label names seen, samples).
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>, usize)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>, usize)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (w.next(), w.next()) {
                out.entry(name.to_string()).or_default().0 = kind.to_string();
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let mut labels = BTreeSet::new();
        if line[name_end..].starts_with('{') {
            let inner = &line[name_end + 1..line.find('}').unwrap_or(line.len())];
            for pair in inner.split("\",") {
                if let Some((k, _)) = pair.split_once('=') {
                    labels.insert(k.trim_matches(',').to_string());
                }
            }
        }
        let fam = out.entry(name.to_string()).or_default();
        fam.1.extend(labels);
        fam.2 += 1;
    }
    out
}

/// The kind of a `show stat` row: FRONTEND, BACKEND or server.
fn kind(row: &BTreeMap<String, String>) -> &'static str {
    match row["svname"].as_str() {
        "FRONTEND" => "FRONTEND",
        "BACKEND" => "BACKEND",
        _ => "server",
    }
}

/// (row kind, column) pairs some row of that kind fills.
fn filled(csv: &str) -> BTreeSet<(&'static str, String)> {
    let mut out = BTreeSet::new();
    for row in stat_rows(csv) {
        let k = kind(&row);
        for (col, v) in &row {
            if !v.is_empty() && !col.is_empty() && col != "-" {
                out.insert((k, col.clone()));
            }
        }
    }
    out
}

/// `show info` fields with a value.
fn info_fields(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| k.to_string())
        .collect()
}

/// (kind letter, field name) → "tags:type" from `show stat typed`.
fn typed(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ':');
        let (Some(id), Some(tags), Some(ty)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let f: Vec<&str> = id.split('.').collect();
        if f.len() >= 5 {
            out.insert((f[0].to_string(), f[4].to_string()), format!("{tags}:{ty}"));
        } else if f.len() == 3 {
            out.insert(("I".to_string(), f[1].to_string()), format!("{tags}:{ty}"));
        }
    }
    out
}

fn share(have: usize, of: usize) -> f64 {
    if of == 0 {
        1.0
    } else {
        have as f64 / of as f64
    }
}

#[test]
fn families_columns_and_info_fields_match_haproxy() {
    let t = start();
    traffic(&t.hx);
    traffic(&t.lb);
    let scrape = |s: &Side| {
        let mut c = common::client::HttpClient::connect(s.addr("web"));
        let r = c.request("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.status, 200, "{}: /metrics", s.who);
        r.body_str()
    };
    let (hx, lb) = (families(&scrape(&t.hx)), families(&scrape(&t.lb)));
    let mut missing = Vec::new();
    let mut present = 0;
    for (name, (kind, labels, _)) in &hx {
        match lb.get(name) {
            None => missing.push(format!("{name}: absent")),
            Some((_, _, 0)) => missing.push(format!("{name}: no sample")),
            Some((k, _, _)) if k != kind => {
                missing.push(format!("{name}: type {k}, HAProxy's {kind}"))
            }
            Some((_, l, _)) if l != labels => {
                missing.push(format!("{name}: labels {l:?}, HAProxy's {labels:?}"))
            }
            Some(_) => present += 1,
        }
    }
    eprintln!(
        "Prometheus families: {present} of {} match ({:.1} %); missing or different:\n  {}",
        hx.len(),
        100.0 * share(present, hx.len()),
        missing.join("\n  ")
    );
    assert!(
        hx.len() >= 150,
        "HAProxy's exporter wrote {} families",
        hx.len()
    );
    assert!(share(present, hx.len()) >= 0.95, "{missing:#?}");

    let (hs, ls) = t.both(|s| s.cli("show stat"));
    assert_eq!(hs.lines().next(), ls.lines().next(), "same header");
    let (hf, lf) = (filled(&hs), filled(&ls));
    let absent: Vec<_> = hf.difference(&lf).collect();
    eprintln!(
        "show stat (row kind, column) pairs: {} of {} filled ({:.1} %); empty in ringlb: {absent:?}",
        hf.len() - absent.len(),
        hf.len(),
        100.0 * share(hf.len() - absent.len(), hf.len())
    );
    assert!(
        share(hf.len() - absent.len(), hf.len()) >= 0.95,
        "{absent:?}"
    );
    // Same rows, in the same order.
    let names = |csv: &str| -> Vec<(String, String)> {
        stat_rows(csv)
            .into_iter()
            .map(|r| (r["pxname"].clone(), r["svname"].clone()))
            .collect()
    };
    assert_eq!(names(&hs), names(&ls));

    let (hi, li) = t.both(|s| info_fields(&s.cli("show info")));
    let lacking: Vec<_> = hi.difference(&li).collect();
    eprintln!(
        "show info fields: {} of {} ({:.1} %); lacking: {lacking:?}",
        hi.len() - lacking.len(),
        hi.len(),
        100.0 * share(hi.len() - lacking.len(), hi.len())
    );
    assert!(
        share(hi.len() - lacking.len(), hi.len()) >= 0.90,
        "{lacking:?}"
    );
    // In HAProxy's order.
    let order = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_once(": ").map(|(k, _)| k.to_string()))
            .filter(|k| hi.contains(k) && li.contains(k))
            .collect()
    };
    assert_eq!(order(&t.hx.cli("show info")), order(&t.lb.cli("show info")));

    // Every field both fill carries HAProxy's tags and type.
    let (ht, lt) = t.both(|s| typed(&s.cli("show stat typed")));
    let differ: Vec<_> = ht
        .iter()
        .filter_map(|(k, v)| lt.get(k).filter(|w| *w != v).map(|w| (k, v, w)))
        .collect();
    assert!(differ.is_empty(), "tags or types differ: {differ:#?}");
    let (hit, lit) = t.both(|s| typed(&s.cli("show info typed")));
    let differ: Vec<_> = hit
        .keys()
        .filter(|k| lit.contains_key(*k) && lit[*k] != hit[*k])
        .collect();
    assert!(differ.is_empty(), "show info typed differs: {differ:?}");
}
