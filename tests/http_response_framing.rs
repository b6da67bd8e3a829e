//! Responses are held to the same framing rules as requests: a malformed response head
//! is a 502 for the client, and that server connection is closed, never pooled (the
//! next request arrives on a new connection). One test per vector.

mod common;

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
    // The head already went to the client: the response is cut short (the client sees
    // a close before the end of the body), and the server connection is closed.
    let (s, lb) =
        setup(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n");
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("GET /bad HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.try_read_response("GET").is_err(), "a whole response");
    upstream_was_closed(&s, &lb);
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
