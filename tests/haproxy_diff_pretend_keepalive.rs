//! Differential test of what a server is told about its connection: HAProxy 2.6 and
//! ringlb run the same haproxy.cfg, with `option http-server-close` and `option
//! httpclose` (the server connection ends after the response: `Connection: close`
//! goes to the server), each with and without `option http-pretend-keepalive` (which
//! has no effect on it in HAProxy 2.6 either), and the keep-alive default with clients
//! that close or speak HTTP/1.0. The `Connection` header each server got must match.

use crate::common;

use common::twins::{Side, Srv, Twins};
use common::HttpClient;

/// The `Connection` header the server saw (`-`: none).
fn told(s: &Side, fe: &str, request: &str) -> String {
    let r = HttpClient::connect(s.addr(fe)).request(request);
    assert_eq!(r.status, 200, "{}", s.who);
    r.body_str()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case("connection")
                .then(|| format!("{k}: {v}"))
        })
        .unwrap_or_else(|| "-".into())
}

#[test]
fn the_server_is_told_to_close_as_haproxy_tells_it() {
    let body = r#"
frontend keep
    bind "127.0.0.1:${P1}"
    default_backend app

frontend sclose
    bind "127.0.0.1:${P2}"
    option http-server-close
    default_backend app

frontend sclose_pretend
    bind "127.0.0.1:${P3}"
    option http-server-close
    option http-pretend-keepalive
    default_backend app

frontend close
    bind "127.0.0.1:${P4}"
    option httpclose
    default_backend app

frontend close_pretend
    bind "127.0.0.1:${P5}"
    option httpclose
    option http-pretend-keepalive
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(
        body,
        &[
            ("keep", "P1"),
            ("sclose", "P2"),
            ("sclose_pretend", "P3"),
            ("close", "P4"),
            ("close_pretend", "P5"),
        ],
        &[("S1", Srv::Up("s1"))],
    );
    let plain = "GET /headers HTTP/1.1\r\nHost: h\r\n\r\n";
    t.same("the Connection header each server got", |s| {
        ["keep", "sclose", "sclose_pretend", "close", "close_pretend"]
            .iter()
            .map(|fe| (fe.to_string(), told(s, fe, plain)))
            .collect::<Vec<_>>()
    });
    // A client that closes, or speaks HTTP/1.0, on the keep-alive frontend.
    t.same("what a closing client's server is told", |s| {
        [
            "GET /headers HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            "GET /headers HTTP/1.0\r\nHost: h\r\n\r\n",
            "GET /headers HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
        ]
        .iter()
        .map(|r| told(s, "keep", r))
        .collect::<Vec<_>>()
    });
}
