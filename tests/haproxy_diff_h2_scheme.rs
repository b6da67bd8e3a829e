//! Differential test of the pseudo-headers a `proto h2` server gets: Debian's HAProxy
//! 2.6 and ringlb run the same haproxy.cfg, in front of a cleartext and a TLS
//! (`ssl alpn h2`) h2 server that answer with the header block they received
//! (tests/fixtures/h2/seen_server.py, Python's h2 package: it shows `:scheme` even
//! without `:authority`, which the h2 crate's server drops). HAProxy 2.6 derives
//! `:scheme` from the request, never from the server connection: an HTTP/2 client's
//! own, `https` for an HTTP/1 origin-form request, the URI's for an absolute-form one
//! (then with `:authority` and no `host`). Both send the same, except one difference
//! the h2 crate imposes (it cannot send `:scheme https` without `:authority`): for an
//! HTTP/1 origin-form request ringlb adds `:authority` equal to the `host` it keeps.

use crate::common;
use crate::tls_util;

use std::net::SocketAddr;

use common::grpc;
use common::haproxy::{render, ringlb_cfg, HaProxy};
use common::seen::SeenServer;
use common::tcp::ReservedPort;
use common::HttpClient;
use tls_util::{Alg, Pki};

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
    use_backend tls if { path_beg /tls }
    default_backend clear

backend clear
    server s1 "${CLEAR}" proto h2

backend tls
    server s1 "${TLS}" proto h2 ssl verify none alpn h2
"#;

/// What the server saw, line by line, for each request; the `:authority` ringlb adds
/// beside an equal `host` (see the module's comment) is checked, then left out.
async fn h2_calls(addr: SocketAddr) -> Vec<String> {
    let mut conn = grpc::connect(addr, None).await;
    let mut out = Vec::new();
    for uri in [
        "http://h2.test/plain",
        "https://h2.test/plain",
        "http://h2.test/tls/a?x=1",
        "https://h2.test/tls/b",
    ] {
        std::future::poll_fn(|cx| conn.poll_ready(cx))
            .await
            .unwrap();
        let req = http::Request::get(uri).body(()).unwrap();
        let (res, _) = conn.send_request(req, true).unwrap();
        let (parts, mut rx) = res.await.unwrap().into_parts();
        assert_eq!(parts.status, 200, "{uri}");
        let (body, _) = grpc::read_body(&mut rx).await;
        out.push(String::from_utf8(body).unwrap());
    }
    out
}

fn h1_calls(addr: SocketAddr) -> Vec<String> {
    let mut c = HttpClient::connect(addr);
    [
        "GET /plain HTTP/1.1\r\nHost: h1.test\r\n\r\n",
        "GET /tls/a?x=1 HTTP/1.1\r\nHost: h1.test\r\n\r\n",
        "GET http://abs.test/plain HTTP/1.1\r\nHost: abs.test\r\n\r\n",
        "GET http://abs.test/tls/b HTTP/1.1\r\nHost: abs.test\r\n\r\n",
    ]
    .iter()
    .map(|raw| {
        let r = c.request(raw);
        assert_eq!(r.status, 200, "{raw}");
        String::from_utf8(r.body.clone()).unwrap()
    })
    .collect()
}

/// `seen` without an `:authority` line whose value a `host` line repeats.
fn without_repeated_authority(seen: &str) -> String {
    let host = seen.lines().find_map(|l| l.strip_prefix("host: "));
    seen.lines()
        .filter(|l| host.is_none() || l.strip_prefix(":authority: ") != host)
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn proto_h2_servers_get_the_scheme_and_authority_haproxy_sends() {
    let pki = Pki::new("Test CA");
    pki.server("srv.pem", &["srv.test"], "srv.test", Alg::Ecdsa, false);
    let servers = [
        SeenServer::start(None),
        SeenServer::start(Some(&pki.path("srv.pem"))),
        SeenServer::start(None),
        SeenServer::start(Some(&pki.path("srv.pem"))),
    ];
    let [Some(hx_clear), Some(hx_tls), Some(lb_clear), Some(lb_tls)] = servers else {
        eprintln!("python3 with the h2 package missing; scripts/test-all installs it");
        return;
    };
    let hx_ports = (ReservedPort::new(), ReservedPort::new());
    let hx_text = render(
        CFG,
        &[
            ("H2", hx_ports.0.port().to_string()),
            ("H1", hx_ports.1.port().to_string()),
            ("CLEAR", hx_clear.addr.to_string()),
            ("TLS", hx_tls.addr.to_string()),
        ],
    );
    let lb_text = render(
        CFG,
        &[
            ("H2", "0".into()),
            ("H1", "0".into()),
            ("CLEAR", lb_clear.addr.to_string()),
            ("TLS", lb_tls.addr.to_string()),
        ],
    );
    let _haproxy = HaProxy::start(&hx_text, &[hx_ports.0.addr(), hx_ports.1.addr()], None);
    let ringlb = ringlb_cfg(&lb_text);
    let hx = (
        grpc::run(h2_calls(hx_ports.0.addr())),
        h1_calls(hx_ports.1.addr()),
    );
    let lb = (
        grpc::run(h2_calls(ringlb.addrs("web")[0])),
        h1_calls(ringlb.addrs("web")[1]),
    );
    // What the difference is, where HAProxy has no `:authority`.
    for seen in &lb.1[..2] {
        assert!(
            seen.contains(":scheme: https\n:authority: h1.test\n"),
            "{seen}"
        );
    }
    // A TLS server gets an HTTP/2 client's `:scheme http`, as from HAProxy.
    assert!(hx.0[2].contains(":scheme: http\n"), "{}", hx.0[2]);
    assert_eq!(hx.0, lb.0, "HTTP/2 clients: haproxy, then ringlb");
    let lb_h1: Vec<String> = lb.1.iter().map(|s| without_repeated_authority(s)).collect();
    assert_eq!(hx.1, lb_h1, "HTTP/1.1 clients: haproxy, then ringlb");
}
