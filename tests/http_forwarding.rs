//! What the backend sees of a request: X-Forwarded-For when asked for, end-to-end
//! headers intact, hop-by-hop headers removed; `Expect: 100-continue` handled.

use crate::common;

use std::time::Duration;

use common::wire::{header, header_values, Headers};
use common::*;

fn lb_with_forward_for(b: &TestBackend, on: bool) -> RingLb {
    RingLb::start(&format!(
        r#"
[runtime]
shards = 2

[frontend.web]
bind = "127.0.0.1:0"
default_backend = "app"
forward_for = {on}

[backend.app]
{}
"#,
        servers_toml("app", &[b.addr()])
    ))
}

/// All X-Forwarded-For values the backend saw, joined as one list.
fn xff(h: &Headers) -> Option<String> {
    let v = header_values(h, "x-forwarded-for");
    if v.is_empty() {
        None
    } else {
        Some(v.join(", "))
    }
}

#[test]
fn forward_for_adds_client_ip() {
    let b = TestBackend::start("a");
    let lb = lb_with_forward_for(&b, true);
    let r = http_get(lb.addr("web"), "/");
    assert_eq!(r.status, 200);
    assert_eq!(xff(&b.last_headers()).as_deref(), Some("127.0.0.1"));
}

#[test]
fn forward_for_appends_to_existing_header() {
    let b = TestBackend::start("a");
    let lb = lb_with_forward_for(&b, true);
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request("GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        xff(&b.last_headers()).as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
}

#[test]
fn forward_for_is_added_on_every_request_of_a_connection() {
    let b = TestBackend::start("a");
    let lb = lb_with_forward_for(&b, true);
    let mut c = HttpClient::connect(lb.addr("web"));
    for i in 0..3 {
        assert_eq!(c.get("/").status, 200);
        assert_eq!(
            xff(&b.last_headers()).as_deref(),
            Some("127.0.0.1"),
            "request {i}"
        );
    }
}

#[test]
fn no_forward_for_by_default() {
    let b = TestBackend::start("a");
    let lb = lb_with_forward_for(&b, false);
    assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    assert_eq!(xff(&b.last_headers()), None);
    // A client's own header passes through untouched.
    let mut c = HttpClient::connect(lb.addr("web"));
    c.request("GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n");
    assert_eq!(xff(&b.last_headers()).as_deref(), Some("203.0.113.7"));
}

#[test]
fn end_to_end_headers_are_kept() {
    let b = TestBackend::start("a");
    let lb = lb_with_forward_for(&b, false);
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request(
        "GET /headers HTTP/1.1\r\nHost: Example.COM:8080\r\nUser-Agent: ringlb-test\r\n\
         X-Custom-A: 1\r\nX-Custom-A: 2\r\nCookie: a=b; c=d\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let h = b.last_headers();
    assert_eq!(header(&h, "host"), Some("Example.COM:8080"));
    assert_eq!(header(&h, "user-agent"), Some("ringlb-test"));
    assert_eq!(header_values(&h, "x-custom-a"), vec!["1", "2"]);
    assert_eq!(header(&h, "cookie"), Some("a=b; c=d"));
    // The backend's own view (the /headers body) agrees.
    assert!(r
        .body_str()
        .to_lowercase()
        .contains("user-agent: ringlb-test"));
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let b = TestBackend::start("a");
    let lb = lb_with_forward_for(&b, false);
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request(
        "GET /headers HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, x-custom\r\nx-custom: secret\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-Normal: kept\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let h = b.last_headers();
    for name in ["x-custom", "keep-alive", "te", "proxy-connection"] {
        assert_eq!(
            header(&h, name),
            None,
            "hop-by-hop header {name} reached the backend: {h:?}"
        );
    }
    for v in header_values(&h, "connection") {
        assert!(
            !v.to_lowercase().contains("x-custom"),
            "Connection: {v} forwarded"
        );
    }
    assert_eq!(header(&h, "x-normal"), Some("kept"));
}

#[test]
fn expect_100_continue() {
    let b = TestBackend::start("a");
    let lb = lb_with_forward_for(&b, false);
    let mut c = HttpClient::connect(lb.addr("web"));
    c.set_timeout(Duration::from_secs(5));
    let body = b"body sent only after 100 Continue";
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let (_, status, _, _) = c
        .read_head()
        .expect("a 100 Continue before the body is sent");
    assert_eq!(status, 100, "first response to Expect: 100-continue");
    c.send(body);
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    // Still usable afterwards.
    assert_eq!(c.get("/").status, 200);
}
