//! The rule language reading the connection's TLS facts, against HAProxy 2.6 on the
//! same haproxy.cfg: `redirect scheme https if !{ ssl_fc }` on a plain bind and
//! `http-request set-header X-Forwarded-Proto https if { ssl_fc }` on a TLS bind of
//! the same frontend, and the `ssl_fc_*` facts a backend sees in headers.

use crate::common;
use crate::tls_util;

use std::net::SocketAddr;

use common::haproxy::{ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;
use common::*;
use tls_util::*;

/// What a client sees: the plain bind's answer (status, Location) and, over TLS, the
/// headers the backend was given that the rules set.
#[derive(Debug, PartialEq)]
struct Seen {
    plain: (u16, Option<String>),
    plain_code_301: (u16, Option<String>),
    tls_status: u16,
    tls_headers: Vec<String>,
}

fn probe(
    plain: SocketAddr,
    tls: SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
) -> Seen {
    let r = HttpClient::connect(plain).get_host("a.test", "/some/path?q=1");
    let plain_answer = (r.status, r.header("location").map(str::to_string));
    let r = HttpClient::connect(plain).get_host("a.test:8080", "/moved");
    let plain_code_301 = (r.status, r.header("location").map(str::to_string));
    let mut c = Https::connect(tls, client_config(ca, ClientOpts::default()), "a.test")
        .expect("TLS connection");
    let a = c.get("a.test", "/headers").expect("GET over TLS");
    let text = a.text().to_ascii_lowercase();
    let tls_headers = text
        .lines()
        .filter(|l| l.starts_with("x-"))
        .map(str::to_string)
        .collect();
    Seen {
        plain: plain_answer,
        plain_code_301,
        tls_status: a.status,
        tls_headers,
    }
}

#[test]
fn redirect_scheme_https_and_x_forwarded_proto_follow_ssl_fc_as_haproxy() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let app = TestBackend::start("app");
    let cfg = |plain: &str, tls: &str| {
        format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
frontend fe\n    bind {plain}\n    bind {tls} ssl crt {}\n\
    redirect scheme https code 301 if !{{ ssl_fc }} {{ path_beg /moved }}\n\
    redirect scheme https if !{{ ssl_fc }}\n\
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n\
    http-request set-header X-Sni %[ssl_fc_sni] if {{ ssl_fc_has_sni }}\n\
    http-request set-header X-Proto %[ssl_fc_protocol]\n\
    http-request set-header X-Alpn-Empty yes if !{{ ssl_fc_alpn -m found }}\n\
    default_backend app\nbackend app\n    server s1 {}\n",
            pki.path("a.pem").display(),
            app.addr()
        )
    };
    let ca = pki.ca_der();
    let (p, t) = (ReservedPort::new(), ReservedPort::new());
    let theirs = {
        let _h = HaProxy::start(
            &cfg(&p.addr().to_string(), &t.addr().to_string()),
            &[p.addr(), t.addr()],
            None,
        );
        probe(p.addr(), t.addr(), &ca)
    };
    let lb = ringlb_cfg(&cfg("127.0.0.1:0", "127.0.0.1:0"));
    let addrs = lb.addrs("fe");
    assert_eq!(addrs.len(), 2, "{:?}", lb.stdout_lines());
    let ours = probe(addrs[0], addrs[1], &ca);
    // What HAProxy 2.6 does, spelled out, then ringlb the same.
    assert_eq!(
        theirs.plain,
        (302, Some("https://a.test/some/path?q=1".to_string()))
    );
    assert_eq!(
        theirs.plain_code_301,
        (301, Some("https://a.test:8080/moved".to_string()))
    );
    assert_eq!(theirs.tls_status, 200);
    assert!(
        theirs
            .tls_headers
            .contains(&"x-forwarded-proto: https".to_string()),
        "{theirs:?}"
    );
    assert!(
        theirs.tls_headers.contains(&"x-sni: a.test".to_string()),
        "{theirs:?}"
    );
    assert_eq!(ours, theirs);
}
