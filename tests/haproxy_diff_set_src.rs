//! Differential test of `http-request set-src`: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg, where the client's address comes from `X-Real-IP` when a trusted
//! header is there. `src` in later rules, X-Forwarded-For, and the address a
//! keep-alive connection's next request sees (the connection's source changed) must
//! match; a value that is no address changes nothing.

use crate::common;

use common::twins::{Side, Srv, Twins};
use common::HttpClient;

/// For each request on one keep-alive connection: (status, the src the response
/// rules saw, the X-Forwarded-For the server got).
fn seen(s: &Side, requests: &[&str]) -> Vec<(u16, String, String)> {
    let mut c = HttpClient::connect(s.addr("web"));
    requests
        .iter()
        .map(|extra| {
            let r = c.request(format!("GET /headers HTTP/1.1\r\nHost: h\r\n{extra}\r\n"));
            let xff = r
                .body_str()
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(": ")?;
                    k.eq_ignore_ascii_case("x-forwarded-for")
                        .then(|| v.to_string())
                })
                .unwrap_or_else(|| "-".into());
            (r.status, r.header("x-src").unwrap_or("-").to_string(), xff)
        })
        .collect()
}

#[test]
fn set_src_changes_the_connections_client_as_haproxy_does() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    option forwardfor
    http-request set-src hdr(x-real-ip) if { req.hdr(x-real-ip) -m found }
    http-request set-header X-Src-Seen %[src]
    http-response set-header X-Src %[src]
    http-request deny deny_status 403 if { src 10.9.0.0/16 }
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let cases: &[&[&str]] = &[
        // No header: the socket's address.
        &[""],
        // An address, then the same connection without the header: it stays.
        &["X-Real-IP: 192.0.2.7\r\n", ""],
        // IPv6.
        &["X-Real-IP: 2001:db8::5\r\n"],
        // Not an address: nothing changes.
        &["X-Real-IP: not-an-ip\r\n"],
        // Later rules see the new address.
        &["X-Real-IP: 10.9.1.1\r\n"],
        // The last occurrence of a list, as `hdr()` takes it.
        &["X-Real-IP: 198.51.100.1, 198.51.100.2\r\n"],
    ];
    for case in cases {
        t.same(&format!("{case:?}"), |s| seen(s, case));
    }
}
