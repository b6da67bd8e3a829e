//! Counter semantics (issue 22): HAProxy 2.6 and ringlb get the same N requests, of
//! which K fail in different ways (404s from the server, requests denied by a rule,
//! invalid requests, requests whose server refuses every connect); then, on each
//! side, every counter reads the same in `show stat` and in the Prometheus exporter,
//! on ringlb also on the stats page, and ringlb's `show stat` counters equal
//! HAProxy's.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::twins::{ask, get, stat_rows, Side, Srv, Twins};

const CONFIG: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    http-request deny if { path /denied }
    use_backend broken if { path_beg /broken }
    default_backend app

backend app
    server s1 "${S1}"
    server s2 "${S2}"

backend broken
    retries 2
    server gone "${D1}"

listen admin
    bind "127.0.0.1:${APORT}"
    stats enable
    stats uri /stats
    http-request use-service prometheus-exporter if { path /metrics }
"#;

/// The rows compared: (pxname, svname).
const ROWS: &[(&str, &str)] = &[
    ("web", "FRONTEND"),
    ("app", "s1"),
    ("app", "s2"),
    ("app", "BACKEND"),
    ("broken", "gone"),
    ("broken", "BACKEND"),
];

/// `show stat` column → the exporter's family suffix and `code` label.
const METRICS: &[(&str, &str, Option<&str>)] = &[
    ("stot", "sessions_total", None),
    ("lbtot", "loadbalanced_total", None),
    ("req_tot", "http_requests_total", None),
    ("hrsp_1xx", "http_responses_total", Some("1xx")),
    ("hrsp_2xx", "http_responses_total", Some("2xx")),
    ("hrsp_3xx", "http_responses_total", Some("3xx")),
    ("hrsp_4xx", "http_responses_total", Some("4xx")),
    ("hrsp_5xx", "http_responses_total", Some("5xx")),
    ("hrsp_other", "http_responses_total", Some("other")),
    ("dreq", "requests_denied_total", None),
    ("dresp", "responses_denied_total", None),
    ("ereq", "request_errors_total", None),
    ("econ", "connection_errors_total", None),
    ("eresp", "response_errors_total", None),
    ("wretr", "retry_warnings_total", None),
    ("wredis", "redispatch_warnings_total", None),
    ("cli_abrt", "client_aborts_total", None),
    ("srv_abrt", "server_aborts_total", None),
    ("intercepted", "intercepted_requests_total", None),
    ("bin", "bytes_in_total", None),
    ("bout", "bytes_out_total", None),
];

/// Counters whose value must be the same as HAProxy's. Bytes are not: the error pages
/// differ in their text, and HAProxy counts a request's bytes as its internal (HTX)
/// form takes them, not as they came on the wire.
const SAME_AS_HAPROXY: &[&str] = &[
    "stot",
    "lbtot",
    "req_tot",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "cli_abrt",
    "srv_abrt",
    "intercepted",
];

/// The stats page's cells of a row, in order, after the name (see src/admin/page.rs:
/// queue, session rate, sessions, bytes, denied, errors, warnings).
const PAGE: &[&str] = &[
    "qcur", "qmax", "qlimit", "rate", "rate_max", "rate_lim", "scur", "smax", "slim", "stot",
    "lbtot", "lastsess", "bin", "bout", "dreq", "dresp", "ereq", "econ", "eresp", "wretr",
    "wredis",
];

/// Counters read on the page (the rest move with time).
const PAGE_COUNTERS: &[&str] = &[
    "stot", "lbtot", "bin", "bout", "dreq", "dresp", "ereq", "econ", "eresp", "wretr", "wredis",
];

/// N requests, K of which fail, each on its own connection; returns N.
fn traffic(s: &Side) -> usize {
    let web = s.addr("web");
    let mut n = 0;
    let mut send = |raw: String, want: u16| {
        let (status, _) = ask(web, &raw);
        assert_eq!(status, want, "{}: {raw:?}", s.who);
        n += 1;
    };
    for i in 0..24 {
        let path = if i % 6 == 5 { "/status/404" } else { "/" };
        send(get("a", path), if i % 6 == 5 { 404 } else { 200 });
    }
    for _ in 0..2 {
        send(get("a", "/denied"), 403);
        send(
            "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n".into(),
            400,
        );
        send(get("a", "/broken"), 503);
    }
    n
}

/// (family, sorted labels) → value.
type Samples = BTreeMap<(String, Vec<(String, String)>), String>;

/// Prometheus text → its samples.
fn samples(text: &str) -> Samples {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut l: Vec<(String, String)> = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        l.sort();
        out.insert((name.to_string(), l), value.to_string());
    }
    out
}

/// The sample for `column` of row `px/sv`, if the exporter has that family for the
/// row's kind: `Some(None)` when the family exists but not that series.
fn metric(m: &Samples, px: &str, sv: &str, column: &str) -> Option<Option<String>> {
    let &(_, suffix, code) = METRICS.iter().find(|(c, _, _)| *c == column)?;
    let kind = match sv {
        "FRONTEND" => "frontend",
        "BACKEND" => "backend",
        _ => "server",
    };
    let name = format!("haproxy_{kind}_{suffix}");
    if !m.keys().any(|(n, _)| *n == name) {
        return None;
    }
    let mut labels = vec![("proxy".to_string(), px.to_string())];
    if kind == "server" {
        labels.push(("server".to_string(), sv.to_string()));
    }
    if let Some(c) = code {
        labels.push(("code".to_string(), c.to_string()));
    }
    labels.sort();
    Some(m.get(&(name, labels)).cloned())
}

/// The exporter's value in `show stat`'s writing (counters are integers).
fn as_count(v: &str) -> String {
    v.parse::<f64>()
        .map(|f| format!("{}", f as u64))
        .unwrap_or_else(|_| v.to_string())
}

/// Every counter of the compared rows reads the same in `show stat` and on
/// `/metrics`; returns how many pairs were compared.
fn stat_equals_metrics(s: &Side) -> usize {
    let mut c = common::client::HttpClient::connect(s.addr("admin"));
    let r = c.request("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200, "{}: /metrics", s.who);
    let m = samples(&r.body_str());
    let rows = stat_rows(&s.cli("show stat"));
    let mut compared = 0;
    let mut differ = Vec::new();
    for &(px, sv) in ROWS {
        let row = rows
            .iter()
            .find(|r| r["pxname"] == px && r["svname"] == sv)
            .unwrap_or_else(|| panic!("{}: no {px}/{sv} row", s.who));
        for &(col, _, _) in METRICS {
            let stat = row.get(col).cloned().unwrap_or_default();
            match metric(&m, px, sv, col) {
                None => {}
                Some(None) if stat.is_empty() => {}
                Some(v) => {
                    compared += 1;
                    let v = v.as_deref().map(as_count).unwrap_or_default();
                    if v != stat {
                        differ.push(format!(
                            "{px}/{sv} {col}: show stat {stat:?}, /metrics {v:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(differ.is_empty(), "{}: {differ:#?}", s.who);
    compared
}

/// Text of an HTML fragment without its tags.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut tag = false;
    for ch in html.chars() {
        match ch {
            '<' => tag = true,
            '>' => tag = false,
            c if !tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ").trim().to_string()
}

/// ringlb's stats page: row `px/label` → its cells by `show stat` column, plus the
/// HTTP response counts of its tooltip.
fn page_row(page: &str, id: &str) -> BTreeMap<String, String> {
    let at = page
        .find(&format!("data-row=\"{id}\""))
        .unwrap_or_else(|| panic!("no row {id} on the page"));
    let end = page[at..].find("</tr>\n").map_or(page.len(), |e| at + e);
    let html = &page[at..end];
    let mut out = BTreeMap::new();
    for (code, col) in [
        ("1xx", "hrsp_1xx"),
        ("2xx", "hrsp_2xx"),
        ("3xx", "hrsp_3xx"),
        ("4xx", "hrsp_4xx"),
        ("5xx", "hrsp_5xx"),
    ] {
        let key = format!("- HTTP {code} responses:</th><td>");
        if let Some(p) = html.find(&key) {
            let rest = &html[p + key.len()..];
            out.insert(col.to_string(), rest[..rest.find('<').unwrap()].to_string());
        }
    }
    // Tooltips out, then one cell per `<td>`.
    let mut flat = String::new();
    let mut rest = html;
    while let Some(p) = rest.find("<div class=tips>") {
        flat.push_str(&rest[..p]);
        rest = &rest[p..];
        rest = &rest[rest.find("</div>").unwrap() + 6..];
    }
    flat.push_str(rest);
    let cells: Vec<String> = flat.split("<td>").skip(1).map(text).collect();
    for (col, v) in PAGE.iter().zip(cells) {
        out.insert(col.to_string(), v);
    }
    out
}

#[test]
fn the_same_counts_everywhere_and_as_haproxy() {
    let t = Twins::start(
        CONFIG,
        &[("web", "PORT"), ("admin", "APORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("D1", Srv::Dead),
        ],
    );
    // HAProxy's start-up probe of its port is a session of its own: counted from here.
    let (before_hx, before_lb) = t.both(|s| stat_rows(&s.cli("show stat")));
    let (n_hx, n_lb) = t.both(traffic);
    assert_eq!(n_hx, n_lb);
    // Counters are merged when asked: every request has ended on both sides.
    t.wait_both("every session ended", Duration::from_secs(5), |s| {
        stat_rows(&s.cli("show stat"))
            .iter()
            .filter(|r| r["pxname"] != "admin")
            .all(|r| r["scur"] == "0")
    });

    // Within each side, show stat and the exporter agree.
    let (c_hx, c_lb) = t.both(stat_equals_metrics);
    assert!(c_hx >= 60, "only {c_hx} pairs on HAProxy");
    assert_eq!(c_hx, c_lb, "as many (row, counter) pairs on both");

    // ringlb's stats page shows the same counters as its show stat.
    let page = {
        let mut c = common::client::HttpClient::connect(t.lb.addr("admin"));
        let r = c.request("GET /stats HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.status, 200);
        r.body_str()
    };
    let rows = stat_rows(&t.lb.cli("show stat"));
    let mut differ = Vec::new();
    for &(px, sv) in ROWS {
        let label = match sv {
            "FRONTEND" => "Frontend",
            "BACKEND" => "Backend",
            s => s,
        };
        let cells = page_row(&page, &format!("{px}/{label}"));
        let row = rows
            .iter()
            .find(|r| r["pxname"] == px && r["svname"] == sv)
            .unwrap();
        for col in PAGE_COUNTERS
            .iter()
            .copied()
            .chain(["hrsp_2xx", "hrsp_4xx", "hrsp_5xx"])
        {
            let want = row.get(col).cloned().unwrap_or_default();
            let got = cells.get(col).cloned().unwrap_or_default();
            if want != got {
                differ.push(format!("{px}/{sv} {col}: show stat {want:?}, page {got:?}"));
            }
        }
    }
    assert!(differ.is_empty(), "page differs: {differ:#?}");

    // ringlb counts as HAProxy does.
    let (hx, lb) = t.both(|s| stat_rows(&s.cli("show stat")));
    let mut differ = Vec::new();
    for &(px, sv) in ROWS {
        let find = |rows: &[BTreeMap<String, String>]| {
            rows.iter()
                .find(|r| r["pxname"] == px && r["svname"] == sv)
                .cloned()
                .unwrap()
        };
        let delta =
            |after: &[BTreeMap<String, String>], before: &[BTreeMap<String, String>], col: &str| {
                let (a, b) = (
                    find(after).get(col).cloned(),
                    find(before).get(col).cloned(),
                );
                match (
                    a.as_deref().map(str::parse::<u64>),
                    b.as_deref().map(str::parse::<u64>),
                ) {
                    (Some(Ok(a)), Some(Ok(b))) => Some(a.saturating_sub(b).to_string()),
                    _ => a,
                }
            };
        for &col in SAME_AS_HAPROXY {
            let (h, l) = (delta(&hx, &before_hx, col), delta(&lb, &before_lb, col));
            if h != l {
                differ.push(format!("{px}/{sv} {col}: HAProxy {h:?}, ringlb {l:?}"));
            }
        }
    }
    assert!(differ.is_empty(), "ringlb counts differently: {differ:#?}");

    // And the counts are the traffic's.
    let fe = lb
        .iter()
        .find(|r| r["svname"] == "FRONTEND" && r["pxname"] == "web")
        .unwrap();
    assert_eq!(fe["stot"], n_lb.to_string());
    assert_eq!(fe["hrsp_2xx"], "20");
    assert_eq!(fe["hrsp_4xx"], "8");
    assert_eq!(fe["hrsp_5xx"], "2");
    assert_eq!(fe["dreq"], "2");
    assert_eq!(fe["ereq"], "2");
    let app = lb
        .iter()
        .find(|r| r["svname"] == "BACKEND" && r["pxname"] == "app")
        .unwrap();
    assert_eq!(app["hrsp_2xx"], "20");
    assert_eq!(app["hrsp_4xx"], "4");
}

const DENY_CONFIG: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    http-request reject if { path /rejected }
    http-request deny if { path /denied }
    http-request return status 200 content-type text/plain string ok if { path /ret }
    default_backend app

frontend refuse
    bind "127.0.0.1:${RPORT}"
    tcp-request connection reject
    default_backend app

frontend nosess
    bind "127.0.0.1:${SPORT}"
    tcp-request session reject
    default_backend app

backend app
    http-response deny if { status 404 }
    server s1 "${S1}"
"#;

/// A request for `path` the balancer closes without answering: it reads EOF (or a
/// reset).
fn refused(addr: std::net::SocketAddr, path: &str) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(get("a", path).as_bytes());
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "answered: {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn rules_count_denied_requests_responses_connections_and_sessions_as_haproxy() {
    let t = Twins::start(
        DENY_CONFIG,
        &[("web", "PORT"), ("refuse", "RPORT"), ("nosess", "SPORT")],
        &[("S1", Srv::Up("s1"))],
    );
    let (before_hx, before_lb) = t.both(|s| stat_rows(&s.cli("show stat")));
    t.both(|s| {
        let web = s.addr("web");
        for _ in 0..2 {
            assert_eq!(ask(web, &get("a", "/")).0, 200, "{}", s.who);
            assert_eq!(ask(web, &get("a", "/denied")).0, 403, "{}", s.who);
            assert_eq!(ask(web, &get("a", "/ret")).0, 200, "{}", s.who);
            // The server's 404 is replaced by the proxy's 502.
            assert_eq!(ask(web, &get("a", "/status/404")).0, 502, "{}", s.who);
            refused(web, "/rejected");
            refused(s.addr("refuse"), "/");
            refused(s.addr("nosess"), "/");
        }
    });
    t.wait_both("every session ended", Duration::from_secs(5), |s| {
        stat_rows(&s.cli("show stat"))
            .iter()
            .all(|r| r["scur"] == "0")
    });
    let (hx, lb) = t.both(|s| stat_rows(&s.cli("show stat")));
    let value = |rows: &[BTreeMap<String, String>], px: &str, sv: &str, col: &str| -> u64 {
        rows.iter()
            .find(|r| r["pxname"] == px && r["svname"] == sv)
            .and_then(|r| r.get(col))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut differ = Vec::new();
    for (px, sv, col) in [
        ("web", "FRONTEND", "dreq"),
        ("web", "FRONTEND", "dresp"),
        ("web", "FRONTEND", "intercepted"),
        ("web", "FRONTEND", "req_tot"),
        ("web", "FRONTEND", "hrsp_4xx"),
        ("web", "FRONTEND", "hrsp_5xx"),
        ("app", "BACKEND", "dresp"),
        ("app", "s1", "dresp"),
        ("refuse", "FRONTEND", "dcon"),
        ("nosess", "FRONTEND", "dses"),
    ] {
        let h = value(&hx, px, sv, col) - value(&before_hx, px, sv, col);
        let l = value(&lb, px, sv, col) - value(&before_lb, px, sv, col);
        if h != l {
            differ.push(format!("{px}/{sv} {col}: HAProxy {h}, ringlb {l}"));
        }
    }
    assert!(differ.is_empty(), "ringlb counts differently: {differ:#?}");
    assert_eq!(value(&lb, "refuse", "FRONTEND", "dcon"), 2);
    assert_eq!(value(&lb, "nosess", "FRONTEND", "dses"), 2);
    assert_eq!(value(&lb, "app", "BACKEND", "dresp"), 2);
}
