//! TLS to servers on the real binary (haproxy.cfg `server ... ssl`): re-encryption
//! with `verify required` against HAProxy 2.6 (a certificate from another CA gives
//! 503 on both), pooled server connections and resumed sessions, the SNI taken from
//! the request's Host without mixing connections, and `check-ssl` health checks.

use crate::common;
use crate::tls_util;

use std::time::Duration;

use common::haproxy::{ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;
use common::twins::stat_rows;
use common::*;
use tls_util::*;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

/// Two HTTPS servers: `good` has a certificate of the CA the proxy trusts, `bad` one
/// of another CA.
fn servers() -> (Pki, Pki, TlsBackend, TlsBackend) {
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    pki.server("srv.pem", &["a.test", "b.test"], "srv", Alg::Ecdsa, false);
    other.server("srv.pem", &["a.test"], "srv", Alg::Ecdsa, false);
    let good = TlsBackend::start(&pki.path("srv.pem"));
    let bad = TlsBackend::start(&other.path("srv.pem"));
    (pki, other, good, bad)
}

#[test]
fn reencryption_with_verify_required_answers_as_haproxy_does() {
    let (pki, _other, good, bad) = servers();
    let ca = pki.ca_path();
    let body = |good_fe: &str, bad_fe: &str| {
        format!(
            "{DEFAULTS}frontend good\n    bind {good_fe}\n    default_backend good\nfrontend bad\n    bind {bad_fe}\n    default_backend bad\nbackend good\n    server s1 {} ssl verify required ca-file {} sni str(a.test)\nbackend bad\n    server s1 {} ssl verify required ca-file {} sni str(a.test)\n",
            good.addr(),
            ca.display(),
            bad.addr(),
            ca.display()
        )
    };
    let (p1, p2) = (ReservedPort::new(), ReservedPort::new());
    let hx_answers = {
        let _hx = HaProxy::start(
            &body(&p1.addr().to_string(), &p2.addr().to_string()),
            &[p1.addr(), p2.addr()],
            None,
        );
        (
            HttpClient::connect(p1.addr()).get("/").status,
            HttpClient::connect(p2.addr()).get("/").status,
        )
    };
    let lb = ringlb_cfg(&body("127.0.0.1:0", "127.0.0.1:0"));
    let ours = (
        HttpClient::connect(lb.addr("good")).get("/").status,
        HttpClient::connect(lb.addr("bad")).get("/").status,
    );
    assert_eq!(hx_answers, (200, 503), "HAProxy");
    assert_eq!(ours, hx_answers, "ringlb as HAProxy");
    assert!(
        lb.stderr().contains("TLS handshake with the server failed"),
        "{}",
        lb.stderr()
    );
    assert_eq!(bad.requests(), 0, "no request reached the untrusted server");
}

#[test]
fn server_connections_are_pooled_and_new_ones_resume_their_session() {
    let (pki, _other, good, _bad) = servers();
    let cfg = format!(
        "global\n    nbthread 2\n{DEFAULTS}frontend pooled\n    bind 127.0.0.1:0\n    default_backend be\nfrontend fresh\n    bind 127.0.0.1:0\n    option http-server-close\n    default_backend be2\nbackend be\n    server s1 {} ssl verify required ca-file {} sni str(a.test)\nbackend be2\n    server s1 {} ssl verify required ca-file {} sni str(a.test)\n",
        good.addr(),
        pki.ca_path().display(),
        good.addr(),
        pki.ca_path().display()
    );
    let lb = ringlb_cfg(&cfg);
    for _ in 0..20 {
        let r = HttpClient::connect(lb.addr("pooled")).get("/");
        assert_eq!(r.status, 200);
        assert!(r.body_str().starts_with("sni=a.test "), "{}", r.body_str());
    }
    assert!(
        good.handshakes() <= 2,
        "20 requests over at most one pooled connection per shard: {} handshakes",
        good.handshakes()
    );
    // One server connection per request: after the first on each shard, they resume.
    let before = (good.handshakes(), good.resumed());
    for _ in 0..20 {
        assert_eq!(HttpClient::connect(lb.addr("fresh")).get("/").status, 200);
    }
    let (h, r) = (good.handshakes() - before.0, good.resumed() - before.1);
    assert_eq!(h, 20, "a new server connection per request");
    assert!(r >= 17, "sessions resumed: {r} of {h}");
}

#[test]
fn sni_from_the_host_header_never_mixes_pooled_connections() {
    let (pki, _other, good, _bad) = servers();
    let cfg = format!(
        "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server s1 {} ssl verify required ca-file {} sni req.hdr(host)\n",
        good.addr(),
        pki.ca_path().display()
    );
    let lb = ringlb_cfg(&cfg);
    let mut c = HttpClient::connect(lb.addr("fe"));
    for i in 0..20 {
        let host = if i % 2 == 0 { "a.test" } else { "b.test" };
        let r = c.get_host(&format!("{host}:8443"), "/");
        assert_eq!(r.status, 200);
        let body = r.body_str();
        assert!(body.starts_with(&format!("sni={host} ")), "#{i}: {body}");
    }
    assert_eq!(
        good.handshakes(),
        2,
        "one pooled connection per name: {:?}",
        good.snis()
    );
}

#[test]
fn check_ssl_checks_speak_tls() {
    let (pki, _other, good, _bad) = servers();
    let plain = TestBackend::start("plain");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let cfg = format!(
        "global\n    stats socket {}\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    option httpchk GET /health\n    default-server inter 200ms fall 2 rise 2\n    server tls {} ssl verify required ca-file {} check check-sni a.test\n    server plain {} ssl verify none check\n",
        sock.display(),
        good.addr(),
        pki.ca_path().display(),
        plain.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let status = |sv: &str| {
        stat_rows(&cli(&sock, "show stat"))
            .into_iter()
            .find(|r| r["pxname"] == "be" && r["svname"] == sv)
            .map(|r| (r["status"].clone(), r["check_status"].clone()))
            .unwrap()
    };
    wait_for("the plain server down", Duration::from_secs(10), || {
        status("plain").0 == "DOWN"
    });
    // The plain server never answers the ClientHello.
    assert_eq!(status("plain").1, "L6TOUT");
    assert_eq!(status("tls"), ("UP".to_string(), "L7OK".to_string()));
    assert!(good.requests() >= 1, "the TLS server saw the checks");
    assert!(
        good.snis().iter().all(|s| s.as_deref() == Some("a.test")),
        "check-sni: {:?}",
        good.snis()
    );
    for _ in 0..5 {
        assert_eq!(HttpClient::connect(lb.addr("fe")).get("/").status, 200);
    }
}
