//! Differential test of `stats scope`: HAProxy 2.6 and ringlb run the same haproxy.cfg,
//! whose stats page is limited to its own proxy (`.`) and one named backend; the CSV
//! and the HTML page show those proxies (and their servers) and no other.

use crate::common;

use common::twins::{Side, Srv, Twins};
use common::HttpClient;

/// The (proxy, row) names of the page's CSV, sorted.
fn csv_rows(s: &Side, path: &str) -> Vec<(String, String)> {
    let r = HttpClient::connect(s.addr("web"))
        .request(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_eq!(r.status, 200, "{}", r.body_str());
    let mut rows: Vec<(String, String)> = r
        .body_str()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut f = l.split(',');
            (
                f.next().unwrap_or("").to_string(),
                f.next().unwrap_or("").to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Which of `names` the HTML page shows a table for.
fn html_proxies(s: &Side, path: &str, names: &[&str]) -> Vec<String> {
    let r = HttpClient::connect(s.addr("web"))
        .request(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_eq!(r.status, 200);
    let body = r.body_str();
    names
        .iter()
        .filter(|n| body.contains(&format!("<a name=\"{n}\">")))
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn stats_scope_limits_the_page_as_haproxy_does() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    stats uri /stats
    stats scope .
    stats scope app
    stats scope app
    default_backend app

backend app
    server s1 "${S1}"

backend other
    server s2 "${S2}"

frontend hidden
    bind "127.0.0.1:${PORT2}"
    default_backend other
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT"), ("hidden", "PORT2")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    t.same("the CSV's rows", |s| csv_rows(s, "/stats;csv"));
    let shown = t.same("the HTML page's proxies", |s| {
        html_proxies(s, "/stats", &["web", "app", "other", "hidden"])
    });
    assert_eq!(shown, ["web", "app"]);
}
