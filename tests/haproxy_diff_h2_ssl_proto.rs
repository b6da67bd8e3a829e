//! `bind ... ssl crt ... proto h2` against HAProxy 2.6 on the same haproxy.cfg: after
//! the TLS handshake every client is served HTTP/2, whatever ALPN settled (nothing
//! offered, or `http/1.1` chosen), as HAProxy forces its HTTP/2 multiplexer on such a
//! bind; a client that speaks HTTP/1.1 there gets no HTTP/1.1 answer. Compared: the
//! status, the ALPN the client saw and the protocol version the server saw. Real
//! rustls and h2 clients, the real binary and Debian's HAProxy. The TOML form of the
//! bind (`{ addr = ..., proto = "h2" }` on a TLS frontend) behaves the same. And on a
//! TLS bind without `proto h2`, a client that sends the HTTP/2 preface though ALPN
//! did not settle on `h2` is served HTTP/2, as HAProxy's HTTP/1 multiplexer upgrades
//! it (bodies of a few MiB both ways compared too).

use crate::common;
use crate::tls_util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use monoio::io::IntoPollIo;

use common::twins::{Side, Srv, Twins};
use common::wire::header;
use tls_util::*;

/// What one HTTP/2 exchange over TLS gave: the status, the ALPN protocol the client
/// saw, and the `x-ver` header (`%[req.ver]`) the server saw.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    alpn: Option<String>,
    version: Option<String>,
}

async fn h2_get(addr: SocketAddr, alpn: &[&str]) -> Result<(u16, Option<String>), String> {
    fetch(addr, alpn, "/", None)
        .await
        .map(|(status, alpn, _)| (status, alpn))
}

/// One HTTP/2 request over TLS offering `alpn` (a POST of `upload`, or a GET): the
/// status, the ALPN protocol the client saw, and the response body.
async fn fetch(
    addr: SocketAddr,
    alpn: &[&str],
    path: &str,
    upload: Option<Vec<u8>>,
) -> Result<(u16, Option<String>, Vec<u8>), String> {
    let s = monoio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let io = s.into_poll_io().map_err(|e| format!("poll io: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(any_cert_client(alpn, None))
        .connect(name, io)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let picked = tls
        .get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let (mut send, conn) = h2::client::handshake(tls)
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    monoio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::builder()
        .method(if upload.is_some() { "POST" } else { "GET" })
        .uri(format!("https://a.test{path}"))
        .body(())
        .unwrap();
    let (res, mut body_out) = send
        .send_request(req, upload.is_none())
        .map_err(|e| format!("send: {e}"))?;
    if let Some(up) = upload {
        body_out
            .send_data(bytes::Bytes::from(up), true)
            .map_err(|e| format!("send body: {e}"))?;
    }
    let res = monoio::time::timeout(Duration::from_secs(20), res)
        .await
        .map_err(|_| "no response in 20 s".to_string())?
        .map_err(|e| format!("response: {e}"))?;
    let status = res.status().as_u16();
    let mut body = res.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = monoio::time::timeout(Duration::from_secs(20), body.data())
        .await
        .map_err(|_| "body stalled for 20 s".to_string())?
    {
        let chunk = chunk.map_err(|e| format!("body: {e}"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    Ok((status, picked, got))
}

fn exchange(side: &Side, frontend: &str, alpn: &[&str]) -> Seen {
    let (status, alpn) = common::grpc::run(h2_get(side.addr(frontend), alpn))
        .unwrap_or_else(|e| panic!("{}: {e}", side.who));
    let seen = side.backend("app").last_headers();
    Seen {
        status,
        alpn,
        version: header(&seen, "x-ver").map(str::to_string),
    }
}

/// An HTTP/1.1 request over TLS (no ALPN): whether an HTTP/1 status line came back
/// before the connection ended (or 5 s passed).
fn http11_answered(side: &Side, frontend: &str) -> bool {
    let cfg = any_cert_client(&[], None);
    let conn = rustls::ClientConnection::new(cfg, "a.test".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(side.addr(frontend)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    if s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got.starts_with(b"HTTP/")
}

/// HAProxy and ringlb with two TLS frontends (name, what their bind line ends with),
/// each setting `x-ver` to the request's version, in front of test server `app`.
fn twins(frontends: [(&str, &str); 2]) -> (Pki, Twins) {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let crt = pki.path("a.pem").display().to_string();
    let mut body = String::new();
    for (i, (name, opts)) in frontends.iter().enumerate() {
        body += &format!(
            "frontend {name}\n    bind 127.0.0.1:${{P{i}}} ssl crt {crt} {opts}\n\
    http-request set-header x-ver %[req.ver]\n    default_backend be\n"
        );
    }
    body += "backend be\n    server app ${APP}\n";
    let t = Twins::start(
        &body,
        &[(frontends[0].0, "P0"), (frontends[1].0, "P1")],
        &[("APP", Srv::Up("app"))],
    );
    (pki, t)
}

#[test]
fn proto_h2_on_an_ssl_bind_serves_http2_whatever_alpn_settled() {
    let (_pki, t) = twins([
        ("plain", "proto h2"),
        ("offers", "alpn h2,http/1.1 proto h2"),
    ]);
    let h2 = |alpn: Option<&str>| Seen {
        status: 200,
        alpn: alpn.map(str::to_string),
        version: Some("2.0".to_string()),
    };
    // No ALPN offered (none configured on the bind, or none offered by the client).
    let got = t.same("HTTP/2 over TLS, no ALPN", |s| exchange(s, "plain", &[]));
    assert_eq!(got, h2(None));
    let got = t.same("HTTP/2 over TLS, client offers h2, bind none", |s| {
        exchange(s, "plain", &["h2"])
    });
    assert_eq!(got, h2(None));
    // ALPN settles on http/1.1: still HTTP/2.
    let got = t.same("HTTP/2 over TLS, ALPN http/1.1", |s| {
        exchange(s, "offers", &["http/1.1"])
    });
    assert_eq!(got, h2(Some("http/1.1")));
    let got = t.same("HTTP/2 over TLS, ALPN h2", |s| {
        exchange(s, "offers", &["h2"])
    });
    assert_eq!(got, h2(Some("h2")));
    // HTTP/1.1 spoken there is not served as HTTP/1.1.
    let answered = t.same("HTTP/1.1 over TLS on a proto h2 bind", |s| {
        http11_answered(s, "plain")
    });
    assert!(!answered);
}

/// The TOML form: `proto = "h2"` on a bind of a TLS frontend whose ALPN offers only
/// `http/1.1`.
#[test]
fn a_toml_tls_bind_with_proto_h2_serves_http2_whatever_alpn_settled() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let app = common::TestBackend::start("app");
    let lb = common::RingLb::start(&format!(
        "[frontend.web]\nbind = [{{ addr = \"127.0.0.1:0\", proto = \"h2\" }}]\ndefault_backend = \"app\"\n\
[frontend.web.tls]\ncrt = [\"{}\"]\nalpn = [\"http/1.1\"]\n[backend.app]\nserver = [{{ addr = \"{}\" }}]\n",
        pki.path("a.pem").display(),
        app.addr()
    ));
    for offered in [&[][..], &["http/1.1"][..], &["h2", "http/1.1"][..]] {
        let (status, alpn) = common::grpc::run(h2_get(lb.addr("web"), offered))
            .unwrap_or_else(|e| panic!("ALPN {offered:?}: {e}"));
        assert_eq!(status, 200, "ALPN {offered:?}");
        let want = (!offered.is_empty()).then(|| "http/1.1".to_string());
        assert_eq!(alpn, want, "ALPN {offered:?}");
    }
    assert_eq!(app.requests(), 3);
}

/// The HTTP/2 preface over TLS from a client that did not pick `h2` (it offered no
/// ALPN, or `http/1.1` was chosen) on a bind without `proto h2`: HAProxy's HTTP/1
/// multiplexer upgrades the connection to HTTP/2, and so does ringlb. A 4 MiB download
/// and a 3 MiB upload cross it whole; HTTP/1.1 clients are served as before.
#[test]
fn the_http2_preface_over_tls_without_alpn_h2_is_served_as_http2() {
    let (_pki, t) = twins([("bare", ""), ("offers", "alpn h2,http/1.1")]);
    let digest = |b: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let n = 4 << 20;
    let upload = common::wire::pattern(3 << 20);
    for (fe, alpn) in [
        ("bare", &[][..]),
        ("offers", &["http/1.1"][..]),
        ("offers", &[][..]),
    ] {
        let what = format!("HTTP/2 preface over TLS on {fe}, client ALPN {alpn:?}");
        let got = t.same(&what, |s| {
            let (status, picked, body) =
                common::grpc::run(fetch(s.addr(fe), alpn, &format!("/bytes/{n}"), None))
                    .unwrap_or_else(|e| panic!("{}: {what}: {e}", s.who));
            let ver = header(&s.backend("app").last_headers(), "x-ver").map(str::to_string);
            (status, picked, ver, body.len(), digest(&body))
        });
        assert_eq!(got.0, 200, "{what}");
        assert_eq!(got.2.as_deref(), Some("2.0"), "{what}");
        assert_eq!(got.3, n, "{what}");
        assert_eq!(got.4, common::wire::pattern_sha256(n as u64), "{what}");
        let up = t.same(&format!("{what}, upload"), |s| {
            let (status, _, body) =
                common::grpc::run(fetch(s.addr(fe), alpn, "/sha256", Some(upload.clone())))
                    .unwrap_or_else(|e| panic!("{}: {what}: upload: {e}", s.who));
            (status, String::from_utf8_lossy(&body).trim().to_string())
        });
        assert_eq!(up, (200, digest(&upload)), "{what}");
    }
    // HTTP/1.1 over the same binds still gets HTTP/1.1.
    let answered = t.same("HTTP/1.1 over TLS, no ALPN", |s| http11_answered(s, "bare"));
    assert!(answered);
}
