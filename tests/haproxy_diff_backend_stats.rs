//! Differential test of `stats enable|uri|auth` in a **backend** (the classic `backend
//! web; stats enable; stats uri /haproxy?stats` pattern): HAProxy 2.6 and ringlb run
//! the same haproxy.cfg; a request routed to that backend for the stats URI gets the
//! stats page (behind `stats auth`: 401 without credentials) instead of reaching a
//! server, other requests reach the servers, and a frontend's other backend has no
//! page.

use crate::common;

use common::twins::{Side, Srv, Twins};
use common::HttpClient;

/// (status, content type, a stats page?, the server that answered).
fn look(s: &Side, fe: &str, path: &str, auth: &str) -> (u16, String, bool, String) {
    let r = HttpClient::connect(s.addr(fe))
        .request(format!("GET {path} HTTP/1.1\r\nHost: h\r\n{auth}\r\n"));
    let body = r.body_str();
    (
        r.status,
        r.header("content-type").unwrap_or("-").to_string(),
        body.contains("Statistics Report"),
        r.header("x-backend").unwrap_or("-").to_string(),
    )
}

#[test]
fn stats_in_a_backend_matches_haproxy() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    use_backend other if { path_beg /other }
    default_backend app

backend app
    stats enable
    stats uri /haproxy?stats
    server s1 "${S1}"

backend other
    stats enable
    stats uri /other/stats
    stats auth admin:secret
    stats realm Private
    server s2 "${S2}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    // admin:secret
    let basic = "Authorization: Basic YWRtaW46c2VjcmV0\r\n";
    t.same(
        "the stats URI of each backend, and ordinary requests",
        |s| {
            vec![
                look(s, "web", "/haproxy?stats", ""),
                look(s, "web", "/haproxy?stats;csv", ""),
                look(s, "web", "/", ""),
                look(s, "web", "/app/page", ""),
                look(s, "web", "/other/stats", ""),
                look(s, "web", "/other/stats", basic),
                look(s, "web", "/other/page", ""),
            ]
        },
    );
}
