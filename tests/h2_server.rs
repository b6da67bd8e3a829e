//! HTTP/2 to servers (`server ... proto h2`) and gRPC through ringlb: a gRPC-shaped
//! server written on the h2 crate (tests/common/grpc.rs) behind the real binary. A
//! unary call and a bidirectional streaming call pass with their `grpc-status`
//! trailers and `te: trailers`, the streaming one message by message (the server echoes
//! each as it comes, so a proxy that held the request body would hang it); clients over
//! h2c, h2 over TLS (to a TLS and a cleartext `proto h2` server) and HTTP/1.1 all
//! reach it; the streams of a shard share one connection to the server; a client that
//! resets its stream cancels the request at the server (RST_STREAM(CANCEL) on an h2
//! server, the connection closed on an HTTP/1 one). Runs on both io drivers
//! (scripts/test-all).

use crate::common;
use crate::tls_util;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::grpc::{self, GrpcServer};
use common::haproxy::ringlb_cfg;
use common::*;
use tls_util::*;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

/// A `proto h2` bind in front of `server`, one shard (so one server connection).
fn h2c_setup(server: &str) -> RingLb {
    ringlb_cfg(&format!(
        "global\n    nbthread 1\n{DEFAULTS}\
frontend web\n    bind 127.0.0.1:0 proto h2\n    bind 127.0.0.1:0\n    default_backend be\n\
backend be\n    server s1 {server}\n"
    ))
}

/// Waits at most 10 s for `f` (a step of a streaming call), so a proxy that buffers
/// fails the test instead of hanging it.
async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    monoio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A bidirectional streaming call: each message's echo comes back before the next is
/// sent, then the trailers.
async fn bidi(conn: &mut ::h2::client::SendRequest<Bytes>, authority: &str) {
    bidi_around(conn, authority, || {}).await
}

/// `bidi`, with `mid` run once the first echo came (the call is in flight).
async fn bidi_around(
    conn: &mut ::h2::client::SendRequest<Bytes>,
    authority: &str,
    mid: impl FnOnce(),
) {
    let mut mid = Some(mid);
    std::future::poll_fn(|cx| conn.poll_ready(cx))
        .await
        .unwrap();
    let (res, mut send) = conn
        .send_request(grpc::grpc_request(authority, "/echo.Echo/Bidi"), false)
        .unwrap();
    let first = grpc::grpc_message(b"one");
    send.send_data(Bytes::from(first.clone()), false).unwrap();
    let res = within("the response head", res).await.expect("response");
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    for (i, msg) in [b"one".as_slice(), b"two", b"three"].iter().enumerate() {
        if i > 0 {
            if let Some(f) = mid.take() {
                f();
            }
            send.send_data(Bytes::from(grpc::grpc_message(msg)), false)
                .unwrap();
        }
        // The echo of this message, before the call goes on.
        let mut got = Vec::new();
        let want = grpc::grpc_message(msg);
        while got.len() < want.len() {
            let d = within("an echo", body.data())
                .await
                .expect("data")
                .expect("data");
            let _ = body.flow_control().release_capacity(d.len());
            got.extend_from_slice(&d);
        }
        assert_eq!(got, want);
    }
    send.send_data(Bytes::new(), true).unwrap();
    assert!(within("the end", body.data()).await.is_none());
    let t = within("the trailers", body.trailers())
        .await
        .unwrap()
        .expect("trailers");
    assert_eq!(t["grpc-status"], "0");
    assert_eq!(t["grpc-message"], "bidi ok");
}

/// A unary call's answer, and what the server saw of it.
async fn unary_ok(
    conn: &mut ::h2::client::SendRequest<Bytes>,
    authority: &str,
    server: &GrpcServer,
) {
    let msg = grpc::grpc_message(b"hello");
    let before = server.seen().len();
    let (parts, body, trailers) = grpc::unary(conn, authority, &msg).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["content-type"], "application/grpc");
    assert_eq!(body, msg);
    let t = trailers.expect("trailers");
    assert_eq!(t["grpc-status"], "0");
    assert_eq!(t["grpc-message"], "unary ok");
    let seen = server.seen();
    // Concurrent calls may have come in between.
    let s = seen[before..]
        .iter()
        .find(|s| s.path == "/echo.Echo/Unary")
        .expect("the call reached the server");
    assert_eq!(s.method, "POST");
    assert_eq!(s.header("te"), Some("trailers"), "{s:?}");
    assert_eq!(s.header("content-type"), Some("application/grpc"));
    assert_eq!(s.header(":authority"), Some(authority));
    assert_eq!(s.body, msg);
}

#[test]
fn grpc_unary_and_bidi_calls_over_h2c_share_one_server_connection() {
    let server = GrpcServer::start(None);
    let lb = h2c_setup(&format!("{} proto h2", server.addr()));
    let addr = lb.addrs("web")[0];
    grpc::run(async {
        for _ in 0..2 {
            let mut conn = grpc::connect(addr, None).await;
            unary_ok(&mut conn, "grpc.test", &server).await;
            bidi(&mut conn, "grpc.test").await;
            // Concurrent streams of one client connection.
            let (mut a, mut b) = (conn.clone(), conn.clone());
            futures_join(
                unary_ok(&mut a, "grpc.test", &server),
                bidi(&mut b, "grpc.test"),
            )
            .await;
        }
    });
    // Two client connections, eight streams: one connection to the server.
    assert_eq!(server.connections(), 1);
}

/// Runs both futures to completion, concurrently.
async fn futures_join(
    a: impl std::future::Future<Output = ()>,
    b: impl std::future::Future<Output = ()>,
) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut da, mut db) = (false, false);
    std::future::poll_fn(|cx| {
        if !da {
            da = a.as_mut().poll(cx).is_ready();
        }
        if !db {
            db = b.as_mut().poll(cx).is_ready();
        }
        if da && db {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// A server that takes one stream per connection: a second concurrent request opens a
/// second connection (HAProxy 2.6 takes no more streams on a full connection), and
/// both are served.
#[test]
fn a_full_server_connection_makes_the_next_request_open_another() {
    let server = GrpcServer::start_limited(None, Some(1));
    let lb = h2c_setup(&format!("{} proto h2", server.addr()));
    let addr = lb.addrs("web")[0];
    grpc::run(async {
        let mut conn = grpc::connect(addr, None).await;
        let mut bodies = Vec::new();
        for _ in 0..2 {
            std::future::poll_fn(|cx| conn.poll_ready(cx))
                .await
                .unwrap();
            let req = http::Request::get("http://slow.test/slow")
                .body(())
                .unwrap();
            let (res, _) = conn.send_request(req, true).unwrap();
            let res = within("a response", res).await.unwrap();
            assert_eq!(res.status(), 200);
            let mut body = res.into_body();
            let d = within("a line", body.data()).await.unwrap().unwrap();
            assert_eq!(&d[..], b"tick\n");
            bodies.push(body);
        }
        // Both answers go on at once.
        for body in &mut bodies {
            let d = within("another line", body.data()).await.unwrap().unwrap();
            assert_eq!(&d[..], b"tick\n");
        }
    });
    assert_eq!(server.connections(), 2);
}

#[test]
fn h2_over_tls_clients_reach_tls_and_cleartext_h2_servers() {
    let pki = Pki::new("Test CA");
    pki.server("lb.pem", &["lb.test"], "lb.test", Alg::Ecdsa, false);
    pki.server("srv.pem", &["srv.test"], "srv.test", Alg::Ecdsa, false);
    let tls_server = GrpcServer::start(Some(server_config(&pki.path("srv.pem"))));
    let clear_server = GrpcServer::start(None);
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 2\n{DEFAULTS}\
frontend fe\n    bind 127.0.0.1:0 ssl crt {} alpn h2,http/1.1\n\
    use_backend clear if {{ req.hdr(host) -m beg clear }}\n    default_backend secure\n\
backend secure\n    server s1 {} proto h2 ssl verify required ca-file {} sni str(srv.test) alpn h2\n\
backend clear\n    server s1 {} proto h2\n",
        pki.path("lb.pem").display(),
        tls_server.addr(),
        pki.ca_path().display(),
        clear_server.addr()
    ));
    let addr = lb.addr("fe");
    grpc::run(async {
        let mut conn = grpc::connect(addr, Some((any_cert_client(&["h2"], None), "lb.test"))).await;
        unary_ok(&mut conn, "secure.test", &tls_server).await;
        bidi(&mut conn, "secure.test").await;
        unary_ok(&mut conn, "clear.test", &clear_server).await;
        bidi(&mut conn, "clear.test").await;
    });
    assert!(tls_server.connections() >= 1 && clear_server.connections() >= 1);
}

/// A rustls server config for `pem` (certificate then key) offering h2.
fn server_config(pem: &std::path::Path) -> Arc<rustls::ServerConfig> {
    let mut cfg = tls_util::server_config(pem);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

#[test]
fn http11_clients_reach_an_h2_server() {
    let server = GrpcServer::start(None);
    let lb = h2c_setup(&format!("{} proto h2", server.addr()));
    let h1 = lb.addrs("web")[1];
    let mut c = HttpClient::connect(h1);
    let r = c.get("/plain");
    assert_eq!(
        r.status,
        200,
        "{:?} conns={}",
        server.seen(),
        server.connections()
    );
    assert_eq!(r.body_str(), "GET /plain 0\n");
    assert_eq!(wire::header(&r.headers, "x-served-by"), Some("h2"));
    // Keep-alive: the next request on the same client connection.
    let r = c.request("POST /post HTTP/1.1\r\nHost: h1.test\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "POST /post 5\n");
    let r = c.request(
        "POST /chunked0 HTTP/1.1\r\nHost: h1.test\r\nTransfer-Encoding: chunked\r\n\r\n\
         3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    // A chunked body with a trailer: DATA frames, then the trailer as HEADERS.
    let r = c.request(
        "POST /chunked HTTP/1.1\r\nHost: h1.test\r\nTransfer-Encoding: chunked\r\n\r\n\
         3\r\nabc\r\n4\r\ndefg\r\n0\r\nx-check: 7\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "POST /chunked 7\n");
    let seen = server.seen();
    let s = seen.last().unwrap();
    assert_eq!(s.body, b"abcdefg");
    // An HTTP/1 client's Host stays a field, as HAProxy 2.6 sends it, and is the
    // `:authority` too (with `:scheme https`: tests/haproxy_diff_h2_scheme.rs).
    assert_eq!(s.header("host"), Some("h1.test"));
    assert_eq!(s.header(":authority"), Some("h1.test"));
    assert!(
        s.trailers.iter().any(|(n, v)| n == "x-check" && v == "7"),
        "{s:?}"
    );
    // No connection-specific field reached the server.
    assert!(s.header("transfer-encoding").is_none() && s.header("connection").is_none());
    assert_eq!(server.connections(), 1);
}

/// GETs `url`, reads the first line of the answer (`tick`), then resets the stream
/// while the answer goes on.
async fn reset_mid_response(conn: &mut ::h2::client::SendRequest<Bytes>, url: &str) {
    std::future::poll_fn(|cx| conn.poll_ready(cx))
        .await
        .unwrap();
    let req = http::Request::get(url).body(()).unwrap();
    let (res, mut send) = conn.send_request(req, true).unwrap();
    let res = within("the response", res).await.unwrap();
    let mut body = res.into_body();
    let d = within("a line", body.data()).await.unwrap().unwrap();
    assert_eq!(&d[..], b"tick\n");
    send.send_reset(::h2::Reason::CANCEL);
}

#[test]
fn a_client_reset_cancels_the_h2_server_stream() {
    let server = GrpcServer::start(None);
    let lb = h2c_setup(&format!("{} proto h2", server.addr()));
    let addr = lb.addrs("web")[0];
    grpc::run(async {
        let mut conn = grpc::connect(addr, None).await;
        reset_mid_response(&mut conn, "http://slow.test/slow").await;
        // The connection lives on for other streams.
        unary_ok(&mut conn, "grpc.test", &server).await;
    });
    wait_for("the server stream's reset", Duration::from_secs(10), || {
        !server.resets().is_empty()
    });
    assert_eq!(server.resets(), vec![::h2::Reason::CANCEL]);
}

#[test]
fn a_client_reset_closes_the_http1_server_connection() {
    // An HTTP/1 server that sends the start of a chunked response, then waits to see
    // its connection closed.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the request came");
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ntick\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
        tx.send(closed).unwrap();
    });
    let lb = h2c_setup(&server.to_string());
    let addr = lb.addrs("web")[0];
    grpc::run(async {
        let mut conn = grpc::connect(addr, None).await;
        reset_mid_response(&mut conn, "http://h1.test/slow").await;
        // The client connection stays open (its task runs) until the server saw
        // its connection closed.
        let verdict = within("the server's verdict", async {
            loop {
                if let Ok(closed) = rx.try_recv() {
                    return closed;
                }
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        assert!(verdict.await, "the server connection was closed");
    });
}

/// `option httpchk` checks of a `proto h2` server go over HTTP/2, as HAProxy 2.6 sends
/// them (the server speaks nothing else): they pass, and the server stays up.
#[test]
fn http_checks_of_a_proto_h2_server_go_over_http2() {
    let server = GrpcServer::start(None);
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\n{DEFAULTS}\
frontend web\n    bind 127.0.0.1:0\n    default_backend be\n\
backend be\n    option httpchk GET /health\n    server s1 {} proto h2 check inter 100 fall 2\n",
        server.addr()
    ));
    let checks = || server.seen().iter().filter(|s| s.path == "/health").count();
    wait_for("four checks over HTTP/2", Duration::from_secs(10), || {
        checks() >= 4
    });
    let seen = server.seen();
    let check = seen.iter().find(|s| s.path == "/health").unwrap();
    assert_eq!(check.method, "GET");
    // Had they failed, the server would be down (fall 2) and this a 503.
    let r = http_get(lb.addr("web"), "/after-checks");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "GET /after-checks 0\n");
}

#[test]
fn proto_h2_server_options_are_checked() {
    let cases = [
        (
            "backend b\n    mode http\n    server s 127.0.0.1:1 proto h3\n",
            ":3:",
            "unknown MUX protocol 'h3'",
        ),
        (
            "backend b\n    mode tcp\n    server s 127.0.0.1:1 proto h2\n",
            ":3:",
            "needs 'mode http'",
        ),
    ];
    common::haproxy::assert_refused(&cases);
    let toml = "[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"http\"\ndefault_backend = \"app\"\n\n[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:1\"\nproto = \"h3\"\n";
    let out = check_config(toml);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("backend.app.server[0].proto"),
        "{}",
        out.stderr
    );
    // A TCP frontend cannot speak HTTP/2 to its servers.
    let toml = "[frontend.raw]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"app\"\n\n[backend.app]\n[[backend.app.server]]\nname = \"g\"\naddr = \"127.0.0.1:1\"\nproto = \"h2\"\n";
    let out = check_config(toml);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains(
            "frontend.raw.default_backend: server \"g\" of backend \"app\" has proto = \"h2\", which needs mode = \"http\""
        ),
        "{}",
        out.stderr
    );
}

/// The TOML form: `proto = "h2"` on a server.
#[test]
fn a_toml_server_with_proto_h2_gets_http2() {
    let server = GrpcServer::start(None);
    let lb = RingLb::start(&format!(
        "[frontend.web]\nbind = [{{ addr = \"127.0.0.1:0\", proto = \"h2\" }}]\nmode = \"http\"\ndefault_backend = \"app\"\n\n\
[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\nproto = \"h2\"\n",
        server.addr()
    ));
    let addr = lb.addr("web");
    grpc::run(async {
        let mut conn = grpc::connect(addr, None).await;
        unary_ok(&mut conn, "toml.test", &server).await;
        bidi(&mut conn, "toml.test").await;
    });
}

/// `check-proto h2`: the HTTP checks of a server without `proto h2` go over HTTP/2
/// (the server here speaks HTTP/2 only: an HTTP/1.1 check would never be seen as a
/// request), in haproxy.cfg and in TOML (`check_proto = "h2"`).
#[test]
fn check_proto_h2_checks_a_server_over_http2() {
    let server = GrpcServer::start(None);
    let _lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\n{DEFAULTS}\
frontend web\n    bind 127.0.0.1:0\n    default_backend be\n\
backend be\n    option httpchk GET /health\n    server s1 {} check inter 100 check-proto h2\n",
        server.addr()
    ));
    let toml_server = GrpcServer::start(None);
    let _toml = RingLb::start(&format!(
        "[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"http\"\ndefault_backend = \"app\"\n\n\
[backend.app]\nhealth = {{ type = \"http\", path = \"/hc\", interval = \"100ms\" }}\n\
[[backend.app.server]]\naddr = \"{}\"\ncheck_proto = \"h2\"\n",
        toml_server.addr()
    ));
    for (server, path) in [(&server, "/health"), (&toml_server, "/hc")] {
        wait_for("checks over HTTP/2", Duration::from_secs(10), || {
            server.seen().iter().filter(|s| s.path == path).count() >= 3
        });
    }
}

/// `check-proto h1` on a `proto h2` server: its checks speak HTTP/1.1 (here to the
/// HTTP/1 server on its check port), while its requests still go over HTTP/2.
#[test]
fn check_proto_h1_checks_a_proto_h2_server_over_http1() {
    let server = GrpcServer::start(None);
    let h1 = TestBackend::start("h1");
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\n{DEFAULTS}\
frontend web\n    bind 127.0.0.1:0\n    default_backend be\n\
backend be\n    option httpchk GET /health\n    server s1 {} proto h2 check inter 100 port {} check-proto h1\n",
        server.addr(),
        h1.addr().port()
    ));
    wait_for("checks over HTTP/1.1", Duration::from_secs(10), || {
        h1.health_checks() >= 3
    });
    let r = http_get(lb.addr("web"), "/traffic");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "GET /traffic 0\n");
}

/// `check-proto` values and check types HAProxy 2.6 accepts or refuses, the same for
/// `ringlb -c` (run on both binaries); refusals name their line, or the TOML path.
#[test]
fn check_proto_is_accepted_and_refused_as_by_haproxy() {
    use common::haproxy::{haproxy_check, ringlb_check, write_cfg};
    let cases = [
        ("option httpchk GET /", "check check-proto h2", true),
        ("option httpchk GET /", "check check-proto h1", true),
        (
            "option httpchk GET /",
            "proto h2 check check-proto h1",
            true,
        ),
        ("", "check check-proto none", true),
        ("option tcp-check", "check check-proto none", true),
        // Not checked: the check type does not matter.
        ("", "check-proto h2", true),
        ("", "check check-proto h2", false),
        ("option tcp-check", "check check-proto h1", false),
        ("option httpchk GET /", "check check-proto none", false),
        ("option httpchk GET /", "check check-proto H2", false),
        ("option httpchk GET /", "check check-proto h3", false),
        ("option httpchk GET /", "check check-proto", false),
    ];
    for (option, server, valid) in cases {
        let cfg = format!(
            "{DEFAULTS}frontend web\n    bind 127.0.0.1:1\n    default_backend be\n\
backend be\n    {option}\n    server s1 127.0.0.1:1 {server}\n"
        );
        let file = write_cfg(&cfg);
        let hx = haproxy_check(file.path(), &[]);
        assert_eq!(
            hx.code() == Some(0),
            valid,
            "haproxy -c:\n{cfg}\n{}",
            hx.stderr
        );
        let lb = ringlb_check(file.path(), &[]);
        assert_eq!(
            lb.code() == Some(0),
            valid,
            "ringlb -c:\n{cfg}\n{}",
            lb.stderr
        );
        if !valid {
            assert!(
                lb.stderr.contains("check-proto") || lb.stderr.contains("MUX protocol"),
                "{}",
                lb.stderr
            );
            assert!(
                lb.stderr.contains(":11:"),
                "the server's line: {}",
                lb.stderr
            );
        }
    }
    let toml = |health: &str, proto: &str| {
        format!(
            "[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"http\"\ndefault_backend = \"app\"\n\n\
[backend.app]\nhealth = {{ type = \"{health}\" }}\n[[backend.app.server]]\naddr = \"127.0.0.1:1\"\ncheck_proto = \"{proto}\"\n"
        )
    };
    for (health, proto, valid) in [
        ("http", "h2", true),
        ("tcp", "none", true),
        ("tcp", "h2", false),
        ("http", "none", false),
        ("http", "fcgi", false),
    ] {
        let out = check_config(&toml(health, proto));
        assert_eq!(
            out.code() == Some(0),
            valid,
            "{health} {proto}: {}",
            out.stderr
        );
        if !valid {
            assert!(
                out.stderr.contains("backend.app.server[0].check_proto"),
                "{}",
                out.stderr
            );
        }
    }
}

/// A `proto h2` server's connection without a stream closes after the server's idle
/// time (`pool-purge-delay`, as its idle HTTP/1 connections, and as HAProxy 2.6 purges
/// idle HTTP/2 server connections), cleanly (GOAWAY); one with a stream in flight
/// stays however long the stream lasts; the next request opens another.
#[test]
fn an_idle_h2_server_connection_closes_after_the_idle_time() {
    let server = GrpcServer::start(None);
    let lb = h2c_setup(&format!("{} proto h2 pool-purge-delay 1s", server.addr()));
    let addr = lb.addrs("web")[0];
    grpc::run(async {
        let mut conn = grpc::connect(addr, None).await;
        // Quiet for three idle times mid-call: the connection carries a stream.
        bidi_around(&mut conn, "idle.test", || {
            std::thread::sleep(Duration::from_secs(3))
        })
        .await;
        assert!(server.ends().is_empty(), "{:?}", server.ends());
        assert_eq!(server.connections(), 1);
    });
    wait_for(
        "the idle connection closed",
        Duration::from_secs(10),
        || !server.ends().is_empty(),
    );
    assert_eq!(server.ends(), vec![None], "a clean end");
    grpc::run(async {
        let mut conn = grpc::connect(addr, None).await;
        unary_ok(&mut conn, "idle.test", &server).await;
    });
    assert_eq!(server.connections(), 2);
}

/// A reload in place keeps an unchanged `proto h2` server's connection (a gRPC
/// stream in flight goes on, later calls share it), and a soft stop (SIGUSR1) lets
/// the stream in flight finish, then closes the server connection cleanly.
#[test]
fn reload_and_soft_stop_let_a_grpc_stream_in_flight_finish() {
    let server = GrpcServer::start(None);
    let mut lb = h2c_setup(&format!("{} proto h2", server.addr()));
    let addr = lb.addrs("web")[0];
    grpc::run(async {
        let mut conn = grpc::connect(addr, None).await;
        bidi_around(&mut conn, "reload.test", || {
            lb.signal(libc::SIGUSR2);
            wait_for("the reload", Duration::from_secs(10), || {
                lb.stdout_count("reloaded") >= 1
            });
        })
        .await;
        unary_ok(&mut conn, "reload.test", &server).await;
        assert_eq!(
            server.connections(),
            1,
            "the connection outlived the reload"
        );
        bidi_around(&mut conn, "stop.test", || lb.signal(libc::SIGUSR1)).await;
    });
    assert!(
        lb.wait_exit(Duration::from_secs(10)).is_some(),
        "exits once done"
    );
    wait_for(
        "the server connection ended",
        Duration::from_secs(10),
        || !server.ends().is_empty(),
    );
    assert_eq!(server.ends(), vec![None], "a clean end");
}

/// `show stat` field `name` of row `px,sv`.
fn stat(csv: &str, px: &str, sv: &str, name: &str) -> String {
    let head: Vec<&str> = csv
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = head
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let row = csv
        .lines()
        .find(|l| l.starts_with(&format!("{px},{sv},")))
        .unwrap_or_else(|| panic!("no row {px},{sv}"));
    row.split(',').nth(col).unwrap().to_string()
}

/// `show stat` counts a `proto h2` server's streams as an HTTP/1 server's requests
/// (sessions, requests, statuses, bytes), its connections as connections (one made,
/// the next streams reuses; idle without a stream: a safe idle connection, as HAProxy
/// 2.6 shows it), and the backend's HTTP/2 module (frames received, connections and
/// streams, open and in all) apart from the HTTP/1 one's. Disabled, the server lets its idle
/// connection go.
#[test]
fn show_stat_counts_proto_h2_streams_and_connections() {
    let server = GrpcServer::start(None);
    let h1 = TestBackend::start("h1");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stats.sock");
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\n    stats socket {} level admin\n{DEFAULTS}\
frontend web\n    bind 127.0.0.1:0\n    use_backend one if {{ path_beg /one }}\n    default_backend grpc\n\
backend grpc\n    server s1 {} proto h2\n\
backend one\n    server s1 {}\n",
        sock.display(),
        server.addr(),
        h1.addr()
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    for p in ["/a", "/one/b", "/c", "/one/d", "/e"] {
        assert_eq!(c.get(p).status, 200, "{p}");
    }
    let csv = cli(&sock, "show stat");
    let f = |px: &str, sv: &str, name: &str| stat(&csv, px, sv, name);
    for (name, want) in [
        ("stot", "3"),
        ("req_tot", "3"),
        ("hrsp_2xx", "3"),
        ("connect", "1"),
        ("reuse", "2"),
        ("scur", "0"),
        ("srv_icur", "1"),
        ("safe_conn_cur", "1"),
        ("used_conn_cur", "0"),
    ] {
        assert_eq!(f("grpc", "s1", name), want, "grpc/s1 {name}");
    }
    assert!(f("grpc", "s1", "bin").parse::<u64>().unwrap() > 0);
    assert!(f("grpc", "s1", "bout").parse::<u64>().unwrap() > 0);
    for (name, grpc, one) in [
        // Frames the server sent: a HEADERS and a DATA per answer, none reset.
        ("h2_headers_rcvd", "3", "0"),
        ("h2_data_rcvd", "3", "0"),
        ("h2_rst_stream_rcvd", "0", "0"),
        ("h2_open_connections", "1", "0"),
        ("h2_total_connections", "1", "0"),
        ("h2_backend_open_streams", "0", "0"),
        ("h2_backend_total_streams", "3", "0"),
        ("h1_open_connections", "0", "1"),
        ("h1_total_connections", "0", "1"),
        ("h1_total_streams", "0", "2"),
    ] {
        assert_eq!(f("grpc", "BACKEND", name), grpc, "grpc {name}");
        assert_eq!(f("one", "BACKEND", name), one, "one {name}");
    }
    assert!(
        f("grpc", "BACKEND", "h2_settings_rcvd")
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(f("grpc", "BACKEND", "h1_bytes_in"), "0");
    assert!(f("one", "BACKEND", "h1_bytes_in").parse::<u64>().unwrap() > 0);
    // A server in maintenance keeps no idle connection (as its HTTP/1 pool would not).
    cli(&sock, "disable server grpc/s1");
    wait_for(
        "the idle connection let go",
        Duration::from_secs(10),
        || !server.ends().is_empty(),
    );
    assert_eq!(
        stat(&cli(&sock, "show stat"), "grpc", "s1", "srv_icur"),
        "0"
    );
}

/// A `proto h2` server connection let go (idle past `pool-purge-delay`, or at a soft
/// stop) ends with GOAWAY(NO_ERROR) before it closes, as the server sees it (a
/// Python h2 server that reports the frames).
#[test]
fn server_connections_let_go_end_with_goaway() {
    let Some(server) = common::seen::SeenServer::start(None) else {
        eprintln!("python3 with the h2 package missing; scripts/test-all installs it");
        return;
    };
    let mut lb = h2c_setup(&format!("{} proto h2 pool-purge-delay 1s", server.addr));
    let h1 = lb.addrs("web")[1];
    assert_eq!(http_get(h1, "/idle").status, 200);
    wait_for(
        "the idle connection closed",
        Duration::from_secs(10),
        || server.events().len() >= 2,
    );
    assert_eq!(server.events(), ["goaway 0", "closed"]);
    assert_eq!(http_get(h1, "/stop").status, 200);
    lb.signal(libc::SIGUSR1);
    assert!(lb.wait_exit(Duration::from_secs(10)).is_some());
    wait_for(
        "the second connection closed",
        Duration::from_secs(10),
        || server.events().len() >= 4,
    );
    assert_eq!(server.events()[2..], ["goaway 0", "closed"]);
}

/// A server that answers ringlb's GOAWAY with its own, after ringlb shut its write
/// side, still sees a whole connection: ringlb reads to the server's FIN (for at most a
/// second) before it closes. Closing at once, with the server's GOAWAY unread or still
/// to come, reset the connection, and the server's own shutdown failed.
#[test]
fn a_server_that_answers_the_goaway_sees_a_clean_end() {
    let Some(server) = common::seen::SeenServer::start_fixture("goaway_server.py", None) else {
        eprintln!("python3 with the h2 package missing; scripts/test-all installs it");
        return;
    };
    let lb = h2c_setup(&format!("{} proto h2 pool-purge-delay 1s", server.addr));
    assert_eq!(http_get(lb.addrs("web")[1], "/idle").status, 200);
    wait_for("the idle connection's end", Duration::from_secs(10), || {
        !server.events().is_empty()
    });
    assert_eq!(server.events(), ["end clean"]);
    // The next request opens another connection.
    assert_eq!(http_get(lb.addrs("web")[1], "/next").status, 200);
}

/// A server that never answers ringlb's GOAWAY nor closes its side does not hold the
/// connection: ringlb reads what it sends for at most a second after its own FIN, then
/// closes (the server's writes start failing).
#[test]
fn a_server_that_never_closes_is_let_go_after_the_linger() {
    let Some(server) = common::seen::SeenServer::start_fixture("mute_server.py", None) else {
        eprintln!("python3 with the h2 package missing; scripts/test-all installs it");
        return;
    };
    let lb = h2c_setup(&format!("{} proto h2 pool-purge-delay 1s", server.addr));
    assert_eq!(http_get(lb.addrs("web")[1], "/idle").status, 200);
    wait_for(
        "ringlb's FIN at the server",
        Duration::from_secs(10),
        || server.events().iter().any(|e| e == "fin"),
    );
    // The linger is 1 s; the server pings every 100 ms until a write fails.
    wait_for("the connection closed", Duration::from_secs(10), || {
        server.events().iter().any(|e| e == "closed")
    });
    assert_eq!(server.events(), ["fin", "closed"]);
    assert_eq!(http_get(lb.addrs("web")[1], "/next").status, 200);
}

/// An HTTP/1.1 client's request body reaches a `proto h2` server chunk by chunk, as
/// the client sends it (not held until its end).
#[test]
fn an_http11_request_body_reaches_an_h2_server_as_it_comes() {
    let Some(server) = common::seen::SeenServer::start(None) else {
        eprintln!("python3 with the h2 package missing; scripts/test-all installs it");
        return;
    };
    let lb = h2c_setup(&format!("{} proto h2", server.addr));
    let mut c = HttpClient::connect(lb.addrs("web")[1]);
    c.send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
    wait_for(
        "the first chunk at the server",
        Duration::from_secs(10),
        || server.events().iter().any(|e| e == "data 5"),
    );
    c.send("6\r\nsecond\r\n0\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    wait_for(
        "the second chunk at the server",
        Duration::from_secs(10),
        || server.events().iter().any(|e| e == "data 6"),
    );
}
