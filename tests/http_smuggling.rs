//! Request framing and smuggling vectors (RFC 9112): each malformed request gets its
//! status (400, or 414 / 431 over a limit) and a close, and the backend never sees it
//! nor the second request smuggled behind it. One test per vector.

mod common;

use std::time::Duration;

use common::{http_config, HttpClient, RingLb, TestBackend};

/// Appended to every vector: if the balancer and the backend disagreed on where the
/// first request ends, this would reach the backend as a request of its own.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";

fn setup(extra: &str) -> (TestBackend, RingLb) {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], extra));
    (b, lb)
}

/// Sends `raw` + SMUGGLED; expects `status`, a close, and a backend that saw nothing.
fn refused_with(raw: &[u8], status: u16, extra: &str) {
    let (b, lb) = setup(extra);
    let mut c = HttpClient::connect(lb.addr("web"));
    let mut bytes = raw.to_vec();
    bytes.extend_from_slice(SMUGGLED.as_bytes());
    // The balancer may answer and close before all of it is written.
    let _ = c.try_send(&bytes);
    let r = c
        .try_read_response("GET")
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(raw)));
    assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(raw));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_by_peer(Duration::from_secs(5)), "not closed");
    // The balancer still serves, and only that request reached the backend.
    let mut c2 = HttpClient::connect(lb.addr("web"));
    assert_eq!(c2.get("/after").status, 200);
    assert_eq!(
        b.requests_to("/smuggled"),
        0,
        "smuggled request reached the backend"
    );
    assert_eq!(b.requests(), 1, "the malformed request reached the backend");
}

fn bad(raw: &str) {
    refused_with(raw.as_bytes(), 400, "");
}

macro_rules! vectors {
    ($($name:ident: $raw:expr;)*) => {$(
        #[test]
        fn $name() {
            bad($raw);
        }
    )*};
}

vectors! {
    content_length_and_chunked: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    chunked_and_content_length: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
    two_differing_content_lengths: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc";
    differing_content_length_list: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 40\r\n\r\nabc";
    content_length_plus_sign: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc";
    content_length_hex: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x3\r\n\r\nabc";
    content_length_negative: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n";
    content_length_inner_space: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3 3\r\n\r\nabc";
    content_length_empty: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n";
    content_length_overflow: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n";
    chunked_not_last: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n";
    unimplemented_coding_before_chunked: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
    identity_coding: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc";
    chunked_twice: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n";
    chunked_in_two_fields: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    unknown_coding_name: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n";
    empty_transfer_encoding: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc";
    chunked_on_http10: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    vertical_tab_before_chunked: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n";
    space_before_colon: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n";
    tab_before_colon: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length\t: 3\r\n\r\nabc";
    obs_fold_continuation: "GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n";
    obs_fold_transfer_encoding: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n";
    space_before_first_header: "GET / HTTP/1.1\r\n Host: t\r\n\r\n";
    nul_in_value: "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n";
    bare_cr_in_value: "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n";
    control_byte_in_name: "GET / HTTP/1.1\r\nHost: t\r\nX\x01A: a\r\n\r\n";
    del_in_value: "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x7fb\r\n\r\n";
    invalid_chunk_size: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    chunk_size_too_many_digits: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n";
    chunk_size_with_0x: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n";
    junk_chunk_extension: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5 junk\r\nhello\r\n0\r\n\r\n";
    unterminated_quoted_extension: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\r\nhello\r\n0\r\n\r\n";
    missing_crlf_after_chunk_data: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n";
    bare_lf_after_chunk_size: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n";
    trailer_line_not_a_field: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /x HTTP/1.1\r\n\r\n";
    request_line_without_version: "GET /\r\nHost: t\r\n\r\n";
    request_line_double_space: "GET  / HTTP/1.1\r\nHost: t\r\n\r\n";
    request_line_tab: "GET\t/ HTTP/1.1\r\nHost: t\r\n\r\n";
    request_line_http2: "GET / HTTP/2.0\r\nHost: t\r\n\r\n";
    request_line_lowercase_version: "GET / http/1.1\r\nHost: t\r\n\r\n";
    request_line_trailing_space: "GET / HTTP/1.1 \r\nHost: t\r\n\r\n";
    target_not_origin_form: "GET foo HTTP/1.1\r\nHost: t\r\n\r\n";
    asterisk_not_options: "GET * HTTP/1.1\r\nHost: t\r\n\r\n";
    connect_not_configured: "CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n";
    http11_without_host: "GET / HTTP/1.1\r\n\r\n";
    two_host_headers: "GET / HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n";
    host_with_userinfo: "GET / HTTP/1.1\r\nHost: u@t\r\n\r\n";
    host_with_space: "GET / HTTP/1.1\r\nHost: t u\r\n\r\n";
    host_with_path: "GET / HTTP/1.1\r\nHost: t/x\r\n\r\n";
    absolute_form_other_host: "GET http://evil/ HTTP/1.1\r\nHost: t\r\n\r\n";
    absolute_form_other_port: "GET http://t:8080/ HTTP/1.1\r\nHost: t\r\n\r\n";
    absolute_form_userinfo: "GET http://u@t/ HTTP/1.1\r\nHost: t\r\n\r\n";
    absolute_form_empty_host: "GET http:/// HTTP/1.1\r\nHost: t\r\n\r\n";
}

#[test]
fn too_many_headers() {
    let mut raw = "GET / HTTP/1.1\r\nHost: t\r\n".to_string();
    for i in 0..20 {
        raw.push_str(&format!("X-{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    refused_with(raw.as_bytes(), 431, "[limits]\nmax_headers = 10\n");
}

#[test]
fn default_header_count_is_101() {
    let mut raw = "GET / HTTP/1.1\r\nHost: t\r\n".to_string();
    for i in 0..101 {
        raw.push_str(&format!("X-{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    refused_with(raw.as_bytes(), 431, "");
}

#[test]
fn head_too_large() {
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "v".repeat(2000)
    );
    refused_with(raw.as_bytes(), 431, "[limits]\nmax_header_bytes = 1024\n");
}

#[test]
fn request_line_too_long() {
    let raw = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(600));
    refused_with(raw.as_bytes(), 414, "[limits]\nmax_request_line = 512\n");
}

#[test]
fn request_line_too_long_before_the_head_is_whole() {
    // No CRLF yet: refused as soon as the line is over the limit.
    let raw = format!("GET /{}", "a".repeat(700));
    refused_with(raw.as_bytes(), 414, "[limits]\nmax_request_line = 512\n");
}

#[test]
fn too_many_chunks() {
    let mut raw = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
    for _ in 0..10 {
        raw.push_str("1\r\na\r\n");
    }
    raw.push_str("0\r\n\r\n");
    refused_with(raw.as_bytes(), 400, "[limits]\nmax_chunks = 4\n");
}

#[test]
fn chunk_size_line_too_long() {
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;a={}\r\nhello\r\n0\r\n\r\n",
        "x".repeat(5000)
    );
    refused_with(raw.as_bytes(), 400, "");
}

#[test]
fn bad_chunk_after_the_head_was_forwarded() {
    // The head and first chunk went upstream before the bad chunk arrived: the client
    // gets a 400, the upstream connection is closed, nothing after the bad chunk moves.
    let (b, lb) = setup("");
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    common::wait_for("the head upstream", Duration::from_secs(5), || {
        b.requests() == 1
    });
    let _ = c.try_send(format!("5\r\nworldXX0\r\n\r\n{SMUGGLED}"));
    let r = c.read_response();
    assert_eq!(r.status, 400);
    assert!(c.closed_by_peer(Duration::from_secs(5)));
    common::wait_for(
        "the backend to see the close",
        Duration::from_secs(5),
        || b.in_flight() == 0,
    );
    let mut c2 = HttpClient::connect(lb.addr("web"));
    assert_eq!(c2.get("/after").status, 200);
    assert_eq!(b.requests_to("/smuggled"), 0);
    assert_eq!(b.requests(), 2);
}

#[test]
fn accepted_forms_are_normalised() {
    // What is accepted reaches the backend as exactly the requests the balancer saw:
    // bare-LF line ends, a repeated identical length, an absolute-form target matching
    // Host, OPTIONS *, and a chunk extension.
    let (b, lb) = setup("");
    let cases: &[(&str, &str)] = &[
        ("GET /lf HTTP/1.1\nHost: t\n\n", "/lf"),
        (
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            "/echo",
        ),
        (
            "GET http://T:80/abs HTTP/1.1\r\nHost: t\r\n\r\n",
            "http://T:80/abs",
        ),
        (
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;name=\"v\"\r\nabc\r\n0\r\n\r\n",
            "/echo",
        ),
    ];
    for (raw, path) in cases {
        let before = b.requests_to(path);
        let mut c = HttpClient::connect(lb.addr("web"));
        c.send(format!("{raw}{SMUGGLED}"));
        let r = c.read_response();
        assert_eq!(r.status, 200, "{raw:?}");
        // The second request is served as the second request, in order.
        let r2 = c.read_response();
        assert_eq!(r2.status, 200, "{raw:?}");
        assert_eq!(b.requests_to(path), before + 1, "{raw:?}");
    }
    assert_eq!(b.requests_to("/smuggled"), cases.len());
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(
        c.request("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
}

#[test]
fn haproxy_tune_limits_apply() {
    // `tune.http.maxhdr` and `tune.bufsize` from haproxy.cfg are the same limits.
    let b = TestBackend::start("a");
    let cfg = format!(
        "global\n    nbthread 1\n    tune.http.maxhdr 10\n    tune.bufsize 2048\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    );
    let lb = common::haproxy::ringlb_cfg(&cfg);
    let mut headers = String::new();
    for i in 0..20 {
        headers.push_str(&format!("X-{i}: v\r\n"));
    }
    let mut c = HttpClient::connect(lb.addr("www"));
    let r = c.request(format!("GET / HTTP/1.1\r\nHost: t\r\n{headers}\r\n"));
    assert_eq!(r.status, 431, "tune.http.maxhdr");
    let mut c = HttpClient::connect(lb.addr("www"));
    let r = c.request(format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "v".repeat(3000)
    ));
    assert_eq!(r.status, 431, "tune.bufsize");
    let mut c = HttpClient::connect(lb.addr("www"));
    assert_eq!(c.get("/").status, 200);
    assert_eq!(b.requests(), 1);
}
