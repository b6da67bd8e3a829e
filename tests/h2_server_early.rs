//! A `proto h2` server answering an HTTP/1.1 client before the request body ended:
//! the response is forwarded while the body still goes (a chunked upload whose answer
//! streams back piece by piece), a 413 sent at once reaches the client well before any
//! timeout whether the server then resets its stream (RST_STREAM(NO_ERROR)) or keeps it
//! with its window shut, a body that breaks its framing meanwhile gets a 400, and
//! `timeout server` runs from the body's end.
//! tests/haproxy_diff_h2_early.rs compares the same with HAProxy 2.6. Runs on both io
//! drivers (scripts/test-all).

use crate::common;
use crate::tls_util;

use std::time::Duration;

use common::early::{read_until, refused_upload, streamed_upload, streamed_upload_on};
use common::grpc::GrpcServer;
use common::haproxy::ringlb_cfg;
use common::*;

/// One HTTP/1 bind in front of `server` (`proto h2`); timeouts far longer than the
/// clients' 10 s waits, so an answer held until a timeout fails the test.
fn setup(server: &GrpcServer) -> RingLb {
    setup_with(server, "30s")
}

fn setup_with(server: &GrpcServer, timeout_server: &str) -> RingLb {
    ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n\
    timeout client 30s\n    timeout server {timeout_server}\n\
frontend web\n    bind 127.0.0.1:0\n    default_backend be\n\
backend be\n    server s1 {} proto h2\n",
        server.addr()
    ))
}

#[test]
fn a_streamed_response_reaches_the_client_while_its_chunked_body_goes() {
    let server = GrpcServer::start(None);
    let lb = setup(&server);
    let s = streamed_upload(lb.addrs("web")[0]);
    assert_eq!(s.status, 200, "{s:?}");
    assert!(
        s.early_first,
        "the answer's first bytes before the body's second chunk: {s:?}"
    );
    assert!(
        s.echoed,
        "the second chunk echoed before the body ended: {s:?}"
    );
    assert!(
        s.ended && s.kept,
        "the response ends, the connection is kept: {s:?}"
    );
}

/// The same through a TLS client connection: the client's bytes may wait in the TLS
/// stream above the socket, which a readiness wait alone would not see.
#[test]
fn a_streamed_response_reaches_a_tls_client_while_its_body_goes() {
    let pki = tls_util::Pki::new("Test CA");
    pki.server(
        "lb.pem",
        &["lb.test"],
        "lb.test",
        tls_util::Alg::Ecdsa,
        false,
    );
    let server = GrpcServer::start(None);
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n\
    timeout client 30s\n    timeout server 30s\n\
frontend web\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\n\
backend be\n    server s1 {} proto h2\n",
        pki.path("lb.pem").display(),
        server.addr()
    ));
    let cfg = tls_util::any_cert_client(&["http/1.1"], None);
    let c = tls_util::Https::connect(lb.addrs("web")[0], cfg, "lb.test").unwrap();
    let s = streamed_upload_on(c.into_stream());
    assert_eq!(s.status, 200, "{s:?}");
    assert!(s.early_first && s.echoed && s.ended && s.kept, "{s:?}");
}

#[test]
fn a_413_before_a_large_upload_reaches_the_client_and_the_rest_is_not_sent() {
    let server = GrpcServer::start(None);
    let lb = setup(&server);
    let addr = lb.addrs("web")[0];
    // The server resets its stream after the 413 (NO_ERROR): the connection closes.
    let r = refused_upload(addr, "/refuse", 32 << 20);
    assert_eq!((r.status, r.body.as_str()), (413, "too large\n"), "{r:?}");
    assert!(r.before_end && r.closed, "{r:?}");
    // Nothing hangs: the next client is served.
    assert_eq!(http_get(addr, "/after").status, 200);
}

#[test]
fn a_413_gets_through_when_the_server_stops_reading_the_body() {
    let server = GrpcServer::start(None);
    let lb = setup(&server);
    let addr = lb.addrs("web")[0];
    // Its window stays shut: the body waits, the answer does not.
    let r = refused_upload(addr, "/refuse-hold", 32 << 20);
    assert_eq!((r.status, r.body.as_str()), (413, "too large\n"), "{r:?}");
    assert!(r.before_end, "{r:?}");
    assert_eq!(http_get(addr, "/after").status, 200);
}

#[test]
fn a_body_that_breaks_its_chunking_while_it_goes_gets_a_400() {
    let server = GrpcServer::start(None);
    let lb = setup(&server);
    let mut c = HttpClient::connect(lb.addrs("web")[0]);
    c.send("POST /whole HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
    // The server waits for the body's end: the bad chunk is the next thing that happens.
    let mut nothing = Vec::new();
    assert!(!read_until(
        c.stream(),
        &mut nothing,
        b"HTTP/",
        Duration::from_millis(200)
    ));
    c.send("zz\r\nbad\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 400);
}

/// `timeout server` runs from the body's last bytes, not from the head: an upload
/// longer than it, to a server that answers at its end, is answered.
#[test]
fn an_upload_longer_than_timeout_server_is_answered() {
    let server = GrpcServer::start(None);
    let lb = setup_with(&server, "1s");
    let mut c = HttpClient::connect(lb.addrs("web")[0]);
    c.send("POST /whole HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    // Paced: the whole body takes about twice `timeout server`.
    for _ in 0..5 {
        c.send("4\r\nabcd\r\n");
        std::thread::sleep(Duration::from_millis(400));
    }
    c.send("0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(
        (r.status, r.body_str()),
        (200, "POST /whole 20\n".to_string())
    );
}
