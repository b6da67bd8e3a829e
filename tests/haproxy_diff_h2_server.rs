//! Differential test of HTTP/2 to servers (`server ... proto h2`): Debian's HAProxy
//! 2.6 and ringlb run the same haproxy.cfg, each in front of its own gRPC-shaped h2
//! server (tests/common/grpc.rs), and the same calls go to both: a gRPC unary call and
//! a bidirectional streaming call over h2c, a plain GET over h2c, and HTTP/1.1 GET and
//! chunked POST (with a trailer) on the frontend's HTTP/1 bind. The answers (status,
//! headers minus `date`, body, trailers) and what each server saw (method, path,
//! headers, body, trailers) must be the same.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::grpc::{self, GrpcServer, Seen};
use common::haproxy::{render, ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;
use common::HttpClient;

const CFG: &str = r#"global
    nbthread 1

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind "127.0.0.1:${H2}" proto h2
    bind "127.0.0.1:${H1}"
    default_backend be

backend be
    server s1 "${SRV}" proto h2
"#;

/// One side: its h2c and HTTP/1 addresses and its server.
struct Side {
    h2: SocketAddr,
    h1: SocketAddr,
    server: GrpcServer,
}

/// An answer, normalised for comparison.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.retain(|(n, _)| n != "date");
    v.sort();
    v
}

impl Answer {
    fn new(parts: http::response::Parts, body: Vec<u8>, trailers: Option<http::HeaderMap>) -> Self {
        Answer {
            status: parts.status.as_u16(),
            headers: fields(&parts.headers),
            body,
            trailers: trailers.as_ref().map(fields).unwrap_or_default(),
        }
    }
}

fn fields(h: &http::HeaderMap) -> Vec<(String, String)> {
    sorted(
        h.iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    )
}

/// What a server saw, normalised (its `:authority` included, except beside an equal
/// `host`: ringlb adds it to an HTTP/1 request, see tests/haproxy_diff_h2_scheme.rs).
fn seen(s: &Seen) -> Seen {
    let mut headers = s.headers.clone();
    if let Some(host) = s.header("host").map(str::to_string) {
        headers.retain(|(n, v)| n != ":authority" || *v != host);
    }
    Seen {
        headers: sorted(headers),
        trailers: sorted(s.trailers.clone()),
        ..s.clone()
    }
}

async fn h2_calls(addr: SocketAddr) -> Vec<Answer> {
    let mut conn = grpc::connect(addr, None).await;
    let mut out = Vec::new();
    let msg = grpc::grpc_message(b"diff");
    let (parts, body, trailers) = grpc::unary(&mut conn, "grpc.test", &msg).await;
    out.push(Answer::new(parts, body, trailers));
    // Bidirectional: each echo before the next message.
    std::future::poll_fn(|cx| conn.poll_ready(cx))
        .await
        .unwrap();
    let (res, mut send) = conn
        .send_request(grpc::grpc_request("grpc.test", "/echo.Echo/Bidi"), false)
        .unwrap();
    send.send_data(Bytes::from(grpc::grpc_message(b"a")), false)
        .unwrap();
    let res = monoio::time::timeout(Duration::from_secs(10), res)
        .await
        .expect("a response before the request ends")
        .unwrap();
    let (parts, mut rx) = res.into_parts();
    let mut body = Vec::new();
    for m in [b"a".as_slice(), b"bb"] {
        if m != b"a" {
            send.send_data(Bytes::from(grpc::grpc_message(m)), false)
                .unwrap();
        }
        let d = monoio::time::timeout(Duration::from_secs(10), rx.data())
            .await
            .expect("an echo")
            .unwrap()
            .unwrap();
        let _ = rx.flow_control().release_capacity(d.len());
        body.extend_from_slice(&d);
    }
    send.send_data(Bytes::new(), true).unwrap();
    let (rest, trailers) = grpc::read_body(&mut rx).await;
    body.extend_from_slice(&rest);
    out.push(Answer::new(parts, body, trailers));
    // A plain GET.
    std::future::poll_fn(|cx| conn.poll_ready(cx))
        .await
        .unwrap();
    let req = http::Request::get("http://plain.test/plain?x=1")
        .header("x-custom", "v")
        .body(())
        .unwrap();
    let (res, _) = conn.send_request(req, true).unwrap();
    let (parts, mut rx) = res.await.unwrap().into_parts();
    let (body, trailers) = grpc::read_body(&mut rx).await;
    out.push(Answer::new(parts, body, trailers));
    out
}

fn h1_calls(addr: SocketAddr) -> Vec<Answer> {
    let mut c = HttpClient::connect(addr);
    let mut out = Vec::new();
    for raw in [
        "GET /plain HTTP/1.1\r\nHost: h1.test\r\nX-Custom: v\r\n\r\n",
        "POST /chunked HTTP/1.1\r\nHost: h1.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-check: 7\r\n\r\n",
    ] {
        let r = c.request(raw);
        let head: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.to_lowercase(), v.clone()))
            .collect();
        out.push(Answer {
            status: r.status,
            headers: sorted(head),
            body: r.body.clone(),
            trailers: sorted(r.trailers.clone()),
        });
    }
    out
}

#[test]
fn proto_h2_servers_get_the_same_requests_and_give_the_same_answers_as_from_haproxy() {
    let hx_ports = (ReservedPort::new(), ReservedPort::new());
    let hx = GrpcServer::start(None);
    let lb_server = GrpcServer::start(None);
    let hx_text = render(
        CFG,
        &[
            ("H2", hx_ports.0.port().to_string()),
            ("H1", hx_ports.1.port().to_string()),
            ("SRV", hx.addr().to_string()),
        ],
    );
    let lb_text = render(
        CFG,
        &[
            ("H2", "0".into()),
            ("H1", "0".into()),
            ("SRV", lb_server.addr().to_string()),
        ],
    );
    let _haproxy = HaProxy::start(&hx_text, &[hx_ports.0.addr(), hx_ports.1.addr()], None);
    let ringlb = ringlb_cfg(&lb_text);
    let sides = [
        Side {
            h2: hx_ports.0.addr(),
            h1: hx_ports.1.addr(),
            server: hx,
        },
        Side {
            h2: ringlb.addrs("web")[0],
            h1: ringlb.addrs("web")[1],
            server: lb_server,
        },
    ];
    let [a, b] = sides.map(|s| {
        let h2 = grpc::run(h2_calls(s.h2));
        let h1 = h1_calls(s.h1);
        let seen: Vec<_> = s.server.seen().iter().map(seen).collect();
        (h2, h1, seen)
    });
    assert_eq!(a.0, b.0, "HTTP/2 answers: haproxy, then ringlb");
    assert_eq!(a.1, b.1, "HTTP/1.1 answers: haproxy, then ringlb");
    assert_eq!(a.2.len(), b.2.len());
    for (x, y) in a.2.iter().zip(&b.2) {
        assert_eq!(
            format!("{x:?}"),
            format!("{y:?}"),
            "what the server saw: haproxy, then ringlb"
        );
    }
}
