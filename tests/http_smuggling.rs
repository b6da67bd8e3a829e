//! Request framing and smuggling vectors (RFC 9112): each malformed request gets its
//! status (400, or 414 / 431 over a limit) and a close, and the backend never sees it
//! nor the second request smuggled behind it. One test per vector. What is accepted
//! reaches the server framed as the balancer decided (one `Content-Length`, framing
//! trailer fields dropped), whatever `Connection` names, byte for byte.

use crate::common;

use std::time::Duration;

use common::{http_config, HttpClient, Recorder, RingLb, TestBackend};

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
    content_length_above_2_pow_63_minus_1: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9223372036854775808\r\n\r\nabc";
    transfer_encoding_leading_comma: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n";
    transfer_encoding_trailing_comma: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n";
    chunk_size_2_pow_63: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\nhello\r\n0\r\n\r\n";
    chunk_size_2_pow_64_minus_1: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello\r\n0\r\n\r\n";
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

// ---- What reaches the server: `Connection` never removes a framing field ----

/// The balancer on haproxy.cfg text: one thread (one connection pool), a rule that
/// refuses `/SMUGGLED`, and `server` behind it.
fn rule_cfg(bind: &str, server: std::net::SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind {bind}\n    http-request deny if {{ path_beg /SMUGGLED }}\n    default_backend app\nbackend app\n    server s1 {server}\n"
    )
}

fn ringlb_with_rule(server: std::net::SocketAddr) -> RingLb {
    common::haproxy::ringlb_cfg(&rule_cfg("127.0.0.1:0", server))
}

/// The exact bytes of issue 13: `Connection` names the field that frames the body.
const CONNECTION_CONTENT_LENGTH: &str = "POST / HTTP/1.1\r\nHost: example.com\r\nConnection: Content-Length\r\nContent-Length: 45\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: example.com\r\n\r\n";
/// The same with a chunked body (0x2d = 45 bytes).
const CONNECTION_TRANSFER_ENCODING: &str = "POST / HTTP/1.1\r\nHost: example.com\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n2d\r\nGET /SMUGGLED HTTP/1.1\r\nHost: example.com\r\n\r\n\r\n0\r\n\r\n";
const CONNECTION_HOST: &str =
    "GET /h HTTP/1.1\r\nHost: example.com\r\nConnection: Host, X-Drop\r\nX-Drop: 1\r\n\r\n";
const SMUGGLED_BODY: &[u8] = b"GET /SMUGGLED HTTP/1.1\r\nHost: example.com\r\n\r\n";

/// Sends `raw` on a new connection: one answer comes back (to the first request),
/// and the connection stays usable for another.
fn one_answer_then_more(lb: &RingLb, raw: &str, answer: &str) {
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request(raw);
    assert_eq!((r.status, r.body_str().as_str()), (200, answer), "{raw:?}");
    let r = c.get("/after");
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /after"));
}

#[test]
fn connection_naming_content_length_does_not_remove_it() {
    let rec = Recorder::start();
    let lb = ringlb_with_rule(rec.addr());
    one_answer_then_more(&lb, CONNECTION_CONTENT_LENGTH, "POST /");
    let got = rec.received();
    let want = "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 45\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: example.com\r\n\r\nGET /after HTTP/1.1\r\nHost: test.local\r\n\r\n";
    assert_eq!(String::from_utf8_lossy(&got[0]), want);
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, SMUGGLED_BODY);
}

#[test]
fn connection_naming_transfer_encoding_does_not_remove_it() {
    let rec = Recorder::start();
    let lb = ringlb_with_rule(rec.addr());
    one_answer_then_more(&lb, CONNECTION_TRANSFER_ENCODING, "POST /");
    let got = rec.received();
    let want = "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n2d\r\nGET /SMUGGLED HTTP/1.1\r\nHost: example.com\r\n\r\n\r\n0\r\n\r\n";
    assert!(
        String::from_utf8_lossy(&got[0]).starts_with(want),
        "{:?}",
        String::from_utf8_lossy(&got[0])
    );
    assert_eq!(rec.requests()[0].body, SMUGGLED_BODY);
    assert_eq!(rec.requests().len(), 2);
}

#[test]
fn connection_naming_host_does_not_remove_it() {
    // Other names are still removed (RFC 9110 §7.6.1).
    let rec = Recorder::start();
    let lb = ringlb_with_rule(rec.addr());
    one_answer_then_more(&lb, CONNECTION_HOST, "GET /h");
    let got = rec.received();
    assert!(
        String::from_utf8_lossy(&got[0])
            .starts_with("GET /h HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got[0])
    );
}

#[test]
fn connection_naming_a_framing_field_cannot_reach_another_client() {
    // An attacker's request, then a victim on a new connection, three times: the
    // pooled server connection (one thread, one pool) carries no second answer.
    for vector in [CONNECTION_CONTENT_LENGTH, CONNECTION_TRANSFER_ENCODING] {
        let rec = Recorder::start();
        let lb = ringlb_with_rule(rec.addr());
        for trial in 0..3 {
            let mut attacker = HttpClient::connect(lb.addr("web"));
            let r = attacker.request(vector);
            assert_eq!(r.status, 200);
            drop(attacker);
            let mut victim = HttpClient::connect(lb.addr("web"));
            let path = format!("/victim/{trial}");
            let r = victim.get(&path);
            assert_eq!(
                (r.status, r.body_str()),
                (200, format!("GET {path}")),
                "trial {trial}: the victim got another answer"
            );
        }
        let reqs = rec.requests();
        assert!(
            reqs.iter().all(|r| !r.target.starts_with("/SMUGGLED")),
            "{reqs:?}"
        );
        assert_eq!(reqs.len(), 6);
        assert_eq!(rec.accepts(), 1, "the server connection was not reused");
    }
}

#[test]
fn connection_naming_framing_fields_matches_haproxy() {
    // The requests the server reads, HAProxy 2.6 and ringlb in front of it on the same
    // haproxy.cfg: the same methods, targets, Host and bodies.
    let summary = |rec: &Recorder| -> Vec<(String, String, Option<String>, Vec<u8>)> {
        rec.requests()
            .into_iter()
            .map(|r| {
                let host = common::wire::header(&r.headers, "host").map(str::to_string);
                (r.method, r.target, host, r.body)
            })
            .collect()
    };
    for vector in [
        CONNECTION_CONTENT_LENGTH,
        CONNECTION_TRANSFER_ENCODING,
        CONNECTION_HOST,
    ] {
        let (rec_h, rec_r) = (Recorder::start(), Recorder::start());
        let port = common::tcp::ReservedPort::new();
        let addr = port.addr();
        let _h = common::haproxy::HaProxy::start(
            &rule_cfg(&addr.to_string(), rec_h.addr()),
            &[addr],
            None,
        );
        let lb = ringlb_with_rule(rec_r.addr());
        for (to, rec) in [(addr, &rec_h), (lb.addr("web"), &rec_r)] {
            let mut c = HttpClient::connect(to);
            assert_eq!(c.request(vector).status, 200, "{vector:?} via {to}");
            wait_until_recorded(rec, 1);
        }
        assert_eq!(summary(&rec_r), summary(&rec_h), "{vector:?}");
    }
}

fn wait_until_recorded(rec: &Recorder, n: usize) {
    common::wait_for(
        "the server to read the request",
        Duration::from_secs(5),
        || rec.requests().len() >= n,
    );
}

// ---- Framing normalised: what the balancer decided, not the client's text ----

/// Sends `raw` (answered 200) and returns the bytes the server received.
fn server_received(raw: &str) -> String {
    let rec = Recorder::start();
    let lb = RingLb::start(&common::http_config_shards(1, &[rec.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.request(raw).status, 200, "{raw:?}");
    String::from_utf8_lossy(&rec.received()[0]).into_owned()
}

#[test]
fn duplicate_identical_content_lengths_become_one() {
    let got = server_received(
        "POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(
        got,
        "POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
    );
}

#[test]
fn a_content_length_list_becomes_one_length() {
    let got = server_received("POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello");
    assert_eq!(
        got,
        "POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    );
    let got = server_received("POST /d HTTP/1.1\r\nHost: t\r\ncontent-length:  005 \r\n\r\nhello");
    assert_eq!(
        got,
        "POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    );
}

#[test]
fn transfer_encoding_is_written_as_decided() {
    let got = server_received(
        "POST /d HTTP/1.1\r\nHost: t\r\ntransfer-encoding:  Chunked \r\n\r\n1\r\na\r\n0\r\n\r\n",
    );
    assert_eq!(
        got,
        "POST /d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
    );
}

#[test]
fn framing_fields_in_trailers_are_dropped() {
    let got = server_received(
        "POST /d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 5\r\nX-T: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(
        got,
        "POST /d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
    );
}

#[test]
fn framing_fields_in_trailers_are_dropped_when_the_body_comes_in_pieces() {
    // The trailer section arrives a few bytes at a time, cut inside the field names.
    let rec = Recorder::start();
    let lb = RingLb::start(&common::http_config_shards(1, &[rec.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("POST /d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    // Each piece with what the server has then received (`None`: nothing new to see;
    // a short pause lets the piece arrive as a read of its own).
    let pieces: [(&str, Option<&str>); 5] = [
        ("0\r\nConte", Some("hello\r\n0\r\n")),
        ("nt-Len", None),
        ("gth: 5\r", None),
        ("\nX-T: 1\r\nTransfer-", Some("0\r\nX-T: 1\r\n")),
        ("Encoding: chunked\r\n\r\n", None),
    ];
    for (piece, seen) in pieces {
        c.send(piece);
        match seen {
            Some(tail) => common::wait_for(tail, Duration::from_secs(5), || {
                rec.received()
                    .first()
                    .is_some_and(|c| c.ends_with(tail.as_bytes()))
            }),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let r = c.read_response();
    assert_eq!(r.status, 200);
    let got = String::from_utf8_lossy(&rec.received()[0]).into_owned();
    assert!(
        got.ends_with("5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        "{got:?}"
    );
    assert_eq!(
        rec.requests()[0].trailers,
        vec![("X-T".to_string(), "1".to_string())]
    );
}

#[test]
fn max_chunks_counts_data_chunks_only() {
    // The documented default, 1,000,000: exactly that many one-byte chunks pass.
    let rec = Recorder::start();
    let lb = RingLb::start(&common::http_config_shards(1, &[rec.addr()], ""));
    let mut body = String::with_capacity(6_000_010);
    for _ in 0..1_000_000 {
        body.push_str("1\r\na\r\n");
    }
    body.push_str("0\r\n\r\n");
    let mut c = HttpClient::connect(lb.addr("web"));
    c.set_timeout(Duration::from_secs(60));
    let r = c.request(format!(
        "POST /many HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(rec.requests()[0].body.len(), 1_000_000);
    // A low limit: N data chunks pass, N + 1 are refused.
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], "[limits]\nmax_chunks = 4\n"));
    let post = |n: usize| {
        let mut raw =
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
        for _ in 0..n {
            raw.push_str("1\r\na\r\n");
        }
        raw.push_str("0\r\n\r\n");
        let mut c = HttpClient::connect(lb.addr("web"));
        let _ = c.try_send(raw);
        c.try_read_response("POST").map(|r| r.status).unwrap_or(0)
    };
    assert_eq!(post(4), 200);
    assert_eq!(post(5), 400);
}

// ---- `Upgrade: h2c` ----

#[test]
fn an_h2c_upgrade_is_not_passed_on() {
    // HTTP/2 streams behind an upgrade would bypass every rule: the request goes on as
    // plain HTTP/1.1, without Upgrade and HTTP2-Settings (RFC 7540 §3.2 lets the
    // server ignore the upgrade), and is answered as such.
    let got = server_received(
        "GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    assert_eq!(got, "GET /up HTTP/1.1\r\nHost: t\r\n\r\n");
}

#[test]
fn an_h2c_upgrade_answered_101_anyway_is_a_502() {
    // A server that switches protocols without being asked is refused.
    let s = common::RawServer::start(|mut s| {
        use std::io::Write;
        if common::raw::read_head(&mut s).is_some() {
            let _ = s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            );
        }
    });
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request(
        "GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    assert_eq!(r.status, 502);
}
