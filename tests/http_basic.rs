//! Plain HTTP/1.1 proxying: methods, request bodies (Content-Length and chunked), and
//! every way a response can be delimited (length, chunked, close, no body at all).

use crate::common;

use common::*;

fn setup() -> (TestBackend, RingLb) {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    (b, lb)
}

#[test]
fn get_root() {
    let (_b, lb) = setup();
    let r = http_get(lb.addr("web"), "/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "backend=a");
    assert_eq!(r.header("x-backend"), Some("a"));
    assert_eq!(lb.shards(), Some(2), "ready line: {:?}", lb.stdout_lines());
}

#[test]
fn request_target_reaches_backend_unchanged() {
    let (b, lb) = setup();
    let r = http_get(lb.addr("web"), "/some/path?x=1&y=%20z");
    assert_eq!(r.status, 200);
    let req = b.last_request().expect("backend saw a request");
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/some/path?x=1&y=%20z");
}

#[test]
fn post_with_content_length() {
    let (_b, lb) = setup();
    let body = b"hello, content-length body\x00\xff\r\n\r\nwith a blank line inside";
    let r = HttpClient::connect(lb.addr("web")).post("/echo", body);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
}

#[test]
fn post_with_empty_content_length() {
    let (_b, lb) = setup();
    let r = HttpClient::connect(lb.addr("web")).post("/echo", b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[test]
fn post_chunked_body() {
    let (_b, lb) = setup();
    let body = pattern(100_003);
    for piece in [1, 7, 4096, 100_003] {
        let mut c = HttpClient::connect(lb.addr("web"));
        let r = c.request(post_chunked_request("/echo", &body, piece));
        assert_eq!(r.status, 200, "piece {piece}");
        assert_eq!(r.body.len(), body.len(), "piece {piece}");
        assert!(r.body == body, "piece {piece}: body differs");
    }
}

#[test]
fn chunked_request_with_extensions_and_trailers() {
    let (_b, lb) = setup();
    let raw = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
               5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: yes\r\n\r\n";
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request(raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "hello world");
    // The connection is still in sync afterwards.
    assert_eq!(c.get("/").body_str(), "backend=a");
}

#[test]
fn chunked_response() {
    let (_b, lb) = setup();
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.post("/echo-chunked", b"echo me back in chunks");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "echo me back in chunks");

    let r = c.get("/bytes-chunked/300000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 300_000);
    assert_eq!(pattern_mismatch(&r.body, 0), None);
    // Keep-alive still works after a chunked response.
    assert_eq!(c.get("/").body_str(), "backend=a");
}

#[test]
fn close_delimited_response() {
    let (_b, lb) = setup();
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.get("/bytes-close/200000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 200_000, "framing {:?}", r.framing);
    assert_eq!(pattern_mismatch(&r.body, 0), None);
}

#[test]
fn head_has_length_but_no_body() {
    let (_b, lb) = setup();
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request("HEAD /bytes/1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1000"));
    assert!(r.body.is_empty());
    // If the balancer waited for (or sent) a body, this request would hang or misparse.
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "backend=a");
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    let (_b, lb) = setup();
    let mut c = HttpClient::connect(lb.addr("web"));
    for status in [204, 304] {
        let r = c.get(&format!("/status/{status}"));
        assert_eq!(r.status, status);
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some("\"v1\""));
        let r = c.get("/");
        assert_eq!(r.status, 200, "request after {status}");
        assert_eq!(r.body_str(), "backend=a", "request after {status}");
    }
}

#[test]
fn error_statuses_pass_through() {
    let (_b, lb) = setup();
    let mut c = HttpClient::connect(lb.addr("web"));
    for status in [201, 301, 404, 500, 503] {
        let r = c.get(&format!("/status/{status}"));
        assert_eq!(r.status, status);
        assert_eq!(r.body_str(), format!("status {status}"));
    }
}

#[test]
fn other_methods_pass_through() {
    let (b, lb) = setup();
    let mut c = HttpClient::connect(lb.addr("web"));
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = c.request(format!(
            "{method} /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        ));
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(r.body_str(), "abc", "{method}");
        assert_eq!(b.last_request().unwrap().method, method);
    }
}

#[test]
fn http10_client_gets_an_answer() {
    let (_b, lb) = setup();
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request("GET / HTTP/1.0\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "backend=a");
}

#[test]
fn content_length_with_chunked_is_not_ambiguous() {
    // Both framings at once (a request-smuggling classic): reject it, or use chunked
    // only. Using Content-Length would leave "hello..." to be read as a second request.
    let (b, lb) = setup();
    let mut c = HttpClient::connect(lb.addr("web"));
    let mut raw =
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec();
    raw.extend_from_slice(&id_request("after"));
    c.send(&raw);
    let r = c.read_response();
    match r.status {
        400 => {}
        200 => {
            assert_eq!(r.body_str(), "hello", "the chunked body should win");
            let r2 = c.read_response();
            assert_eq!(r2.body_str(), "after");
            assert_eq!(b.requests(), 2, "the backend saw a smuggled request");
        }
        s => panic!("unexpected status {s}: {r:?}"),
    }
}

#[test]
fn frontend_with_two_binds() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n\n[frontend.web]\nbind = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\ndefault_backend = \"app\"\n\n[backend.app]\n{}",
        servers_toml("app", &[b.addr()])
    ));
    let addrs = lb.addrs("web");
    assert_eq!(addrs.len(), 2, "listening lines: {:?}", lb.stdout_lines());
    for a in addrs {
        let r = http_get(a, "/");
        assert_eq!(r.status, 200, "via {a}");
        assert_eq!(r.body_str(), "backend=a", "via {a}");
    }
}
