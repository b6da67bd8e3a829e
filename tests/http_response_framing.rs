//! Responses are held to the same framing rules as requests: a malformed response head
//! (or a bad chunk in the first read, before anything went to the client) is a 502 for
//! the client, and that server connection is closed, never pooled (the next request
//! arrives on a new connection). One test per vector. What is accepted reaches the
//! client framed as the balancer decided, whatever `Connection` names; interim
//! answers (`100 Continue`, `103 Early Hints`) are passed on.

use crate::common;

use std::io::Write;
use std::time::Duration;

use common::raw::read_head;
use common::{wait_for, HttpClient, RawServer, RingLb};

/// A server that answers `/good` properly and `/bad` with `bad`, on keep-alive
/// connections it holds open until the balancer closes them.
fn server(bad: &'static [u8]) -> RawServer {
    RawServer::start(move |mut s| {
        while let Some(head) = read_head(&mut s) {
            let bytes: &[u8] = if head.starts_with(b"GET /bad ") {
                bad
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"
            };
            if s.write_all(bytes).is_err() {
                return;
            }
            // A cut-short head: the server closes.
            if !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
                return;
            }
        }
    })
}

fn setup(bad: &'static [u8]) -> (RawServer, RingLb) {
    let s = server(bad);
    // One shard: the follow-up request would find a pooled connection if there were one.
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    (s, lb)
}

/// The next request, on a fresh client connection, is served on a new server
/// connection: the one that misbehaved was closed.
fn upstream_was_closed(s: &RawServer, lb: &RingLb) {
    wait_for(
        "the balancer to close the bad connection",
        Duration::from_secs(5),
        || s.live() == 0,
    );
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.get("/good");
    assert_eq!((r.status, r.body_str().as_str()), (200, "good"));
    assert_eq!(s.accepts(), 2, "the bad connection was reused");
}

fn bad_gateway(bad: &'static [u8]) {
    let (s, lb) = setup(bad);
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.get("/bad");
    assert_eq!(r.status, 502, "{:?}", String::from_utf8_lossy(bad));
    assert!(c.closed_by_peer(Duration::from_secs(5)));
    upstream_was_closed(&s, &lb);
}

macro_rules! vectors {
    ($($name:ident: $raw:expr;)*) => {$(
        #[test]
        fn $name() {
            bad_gateway($raw);
        }
    )*};
}

vectors! {
    content_length_and_chunked: b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    differing_content_lengths: b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd";
    non_decimal_content_length: b"HTTP/1.1 200 OK\r\nContent-Length: 0x4\r\n\r\nabcd";
    unimplemented_coding: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabcd";
    chunked_twice: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n";
    space_before_colon: b"HTTP/1.1 200 OK\r\nContent-Length : 4\r\n\r\nabcd";
    obs_fold: b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-A: a\r\n b\r\n\r\nabcd";
    nul_in_value: b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-A: a\0b\r\n\r\nabcd";
    bare_cr_in_value: b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-A: a\rb\r\n\r\nabcd";
    chunked_on_http10: b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    status_below_100: b"HTTP/1.1 085 OK\r\nContent-Length: 4\r\n\r\nabcd";
    four_digit_status: b"HTTP/1.1 2000 OK\r\nContent-Length: 4\r\n\r\nabcd";
    missing_status: b"HTTP/1.1 OK\r\nContent-Length: 4\r\n\r\nabcd";
    http2_status_line: b"HTTP/2 200 OK\r\nContent-Length: 4\r\n\r\nabcd";
    unsolicited_101: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    garbage: b"this is not http at all\r\n\r\n";
    closed_mid_head: b"HTTP/1.1 200 OK\r\nContent-Le";
    transfer_encoding_leading_comma: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n";
    content_length_above_2_pow_63_minus_1: b"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nabcd";
    bad_chunk_in_the_first_read: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n";
    chunk_size_2_pow_63_in_the_first_read: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\nabcd";
}

#[test]
fn too_many_headers() {
    let mut raw = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n".to_string();
    for i in 0..150 {
        raw.push_str(&format!("X-{i}: v\r\n"));
    }
    raw.push_str("\r\nabcd");
    bad_gateway(Box::leak(raw.into_bytes().into_boxed_slice()));
}

#[test]
fn head_too_large() {
    let raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Big: {}\r\n\r\nabcd",
        "v".repeat(20_000)
    );
    bad_gateway(Box::leak(raw.into_bytes().into_boxed_slice()));
}

#[test]
fn bad_chunk_in_the_body_cuts_the_response_and_the_connection() {
    // The head already went to the client when the bad chunk comes: the response is
    // cut short (the client sees a close before the end of the body), and the server
    // connection is closed. The server sends the bad chunk once the client has the
    // head and first chunk.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let s = RawServer::start(move |mut s| {
        if read_head(&mut s).is_none() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n");
        let _ = wait.lock().unwrap().recv_timeout(Duration::from_secs(10));
        let _ = s.write_all(b"zz\r\n");
        let _ = read_head(&mut s);
    });
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    let mut c = std::net::TcpStream::connect(lb.addr("web")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /bad HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"4\r\nabcd\r\n") {
        let mut b = [0u8; 1024];
        let n = std::io::Read::read(&mut c, &mut b).expect("the head and first chunk");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    go.send(()).unwrap();
    // Then the close, and nothing more: the response stays cut short.
    let mut b = [0u8; 1024];
    match std::io::Read::read(&mut c, &mut b) {
        Ok(0) => {}
        Ok(n) => panic!(
            "more after the bad chunk: {:?}",
            String::from_utf8_lossy(&b[..n])
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no close: {e}"),
    }
    wait_for(
        "the balancer to close the server connection",
        Duration::from_secs(5),
        || s.live() == 0,
    );
}

#[test]
fn bytes_beyond_content_length_are_never_a_response() {
    // A server that sends more than it announced: the extra bytes (here shaped like a
    // second response) must not answer anyone's next request.
    let (s, lb) = setup(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle",
    );
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.get("/bad");
    assert_eq!((r.status, r.body_str().as_str()), (200, "hello"));
    let r = c.get("/good");
    assert_eq!((r.status, r.body_str().as_str()), (200, "good"));
    // The second request went on a new connection; the first one was closed.
    assert_eq!(s.accepts(), 2, "the connection with extra bytes was reused");
    wait_for(
        "the bad connection to close",
        Duration::from_secs(5),
        || s.live() == 1,
    );
}

#[test]
fn a_good_server_connection_is_pooled() {
    // The control for the tests above: well-formed responses reuse one connection.
    let s = server(b"");
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    for _ in 0..5 {
        assert_eq!(c.get("/good").status, 200);
    }
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.get("/good").status, 200);
    assert_eq!(s.accepts(), 1);
}

// ---- `Connection` never removes a framing field; framing as decided ----

/// A server answering `/bad` with `bad` and anything else with `good`; returns the
/// response to `/bad` and checks the client connection still serves `/good` after it.
fn passed_on(bad: &'static [u8]) -> common::Response {
    let (s, lb) = setup(bad);
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.get("/bad");
    let next = c.get("/good");
    assert_eq!((next.status, next.body_str().as_str()), (200, "good"));
    assert_eq!(s.accepts(), 1, "the server connection was not reused");
    r
}

#[test]
fn connection_naming_content_length_in_a_response_does_not_remove_it() {
    let r = passed_on(
        b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 4\r\n\r\nbody",
    );
    assert_eq!(r.header_values("content-length"), ["4"]);
    assert_eq!(r.body_str(), "body");
    assert_eq!(r.header("connection"), None);
}

#[test]
fn connection_naming_transfer_encoding_in_a_response_does_not_remove_it() {
    let r = passed_on(
        b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
    );
    assert_eq!(r.header_values("transfer-encoding"), ["chunked"]);
    assert_eq!(r.body_str(), "body");
}

#[test]
fn duplicate_content_lengths_in_a_response_become_one() {
    let r = passed_on(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4, 4\r\n\r\nbody");
    assert_eq!(r.header_values("content-length"), ["4"]);
    assert_eq!(r.body_str(), "body");
}

#[test]
fn framing_fields_in_response_trailers_are_dropped() {
    let r = passed_on(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nContent-Length: 4\r\nX-T: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(r.body_str(), "body");
    assert_eq!(r.trailers, vec![("X-T".to_string(), "1".to_string())]);
}

// ---- Interim responses ----

/// A server that sends `interim` before its `200` to every request, reading the body
/// of a request with a Content-Length after sending the interim heads.
fn interim_server(interim: &'static [u8]) -> RawServer {
    RawServer::start(move |mut s| {
        let mut w = common::wire::Wire::new(s.try_clone().unwrap());
        while let Ok(Some(head)) = w.read_head(1 << 16) {
            let req = common::wire::parse_request_head(&head).unwrap();
            if s.write_all(interim).is_err() {
                return;
            }
            let framing = common::wire::request_framing(&req.headers).unwrap();
            let mut body = Vec::new();
            if w.read_body(framing, &mut |b| body.extend_from_slice(b))
                .is_err()
            {
                return;
            }
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let mut all = answer.into_bytes();
            all.extend_from_slice(&body);
            if s.write_all(&all).is_err() {
                return;
            }
        }
    })
}

#[test]
fn early_hints_are_passed_on_to_http11_clients() {
    let s = interim_server(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    let (_, status, _, headers) = c.read_head().unwrap();
    assert_eq!(status, 103);
    assert_eq!(
        common::wire::header(&headers, "link"),
        Some("</s.css>; rel=preload")
    );
    assert_eq!(c.read_response().status, 200);
    // HTTP/1.0 has no 1xx (RFC 9110 §15.2): an HTTP/1.0 client gets the final answer only.
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request("GET /x HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.interim.as_slice()), (200, &[][..]));
}

#[test]
fn a_100_continue_is_passed_on_only_when_asked_for() {
    let s = interim_server(b"HTTP/1.1 100 Continue\r\n\r\n");
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!((r.status, r.interim.as_slice()), (200, &[][..]));
    let r = c.request(
        "POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!((r.status, r.interim.as_slice()), (200, &[100][..]));
    assert_eq!(r.body_str(), "hi");
}

#[test]
fn the_body_waits_for_the_servers_100_continue() {
    // The client sends its body only after a 100; the server sends the 100 when it
    // has the head: the go-ahead comes from the server, through the balancer.
    let s = interim_server(b"HTTP/1.1 100 Continue\r\n\r\n");
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let (_, status, _, _) = c.read_head().expect("a 100 Continue before the body");
    assert_eq!(status, 100);
    c.send("hello");
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "hello"));
}

#[test]
fn a_final_answer_before_the_body_ends_the_exchange() {
    // The server refuses the upload from its head (417): the client gets the 417 and
    // the connection closes (the body was never read); the server connection, which
    // may still wait for the body, is not reused.
    let s = RawServer::start(|mut s| {
        while let Some(head) = read_head(&mut s) {
            let answer: &[u8] = if head.starts_with(b"POST") {
                b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"
            };
            if s.write_all(answer).is_err() {
                return;
            }
        }
    });
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 417);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_by_peer(Duration::from_secs(5)));
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.get("/good").status, 200);
    assert_eq!(
        s.accepts(),
        2,
        "the connection that waited for a body was reused"
    );
}

#[test]
fn a_server_that_ignores_expect_gets_the_body_when_the_client_sends_it() {
    // No 100 ever comes: the client stops waiting and sends its body, which goes on.
    let s = interim_server(b"");
    let lb = RingLb::start(&common::http_config_shards(1, &[s.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    // What a client does after its wait (curl: one second); here, at once.
    c.send("hello");
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "hello"));
}
