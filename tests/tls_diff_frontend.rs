//! TLS termination on the binary against HAProxy 2.6 on the same haproxy.cfg: the
//! certificate and ALPN chosen from a directory and a crt-list (exact, wildcard,
//! default, ECDSA/RSA, `!name`, strict-sni), crt-list lines that require a client
//! certificate, `ssl-min-ver TLSv1.3` against a TLS 1.2-only client, and `verify
//! required` with a CRL (no certificate, another CA's, a revoked one, a good one).

use crate::common;
use crate::tls_util;

use std::net::SocketAddr;

use common::haproxy::{ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;
use tls_util::*;

/// Runs `probe` against HAProxy, then ringlb, both on `cfg(bind address)`.
fn on_both<T>(cfg: impl Fn(&str) -> String, probe: impl Fn(SocketAddr) -> T) -> (T, T) {
    let held = ReservedPort::new();
    let hx = {
        let _h = HaProxy::start(&cfg(&held.addr().to_string()), &[held.addr()], None);
        probe(held.addr())
    };
    let lb = ringlb_cfg(&cfg("127.0.0.1:0"));
    let ours = probe(lb.addr("fe"));
    (hx, ours)
}

/// `Ok(status)` of a GET after the handshake, or "fail".
fn status(addr: SocketAddr, sni: &str, cfg: std::sync::Arc<rustls::ClientConfig>) -> String {
    match Https::connect(addr, cfg, sni).and_then(|mut c| c.get(sni, "/")) {
        Ok(a) => a.status.to_string(),
        Err(_) => "fail".into(),
    }
}

const ASKS: &[(Option<&str>, bool)] = &[
    (Some("a.test"), false),
    (Some("A.Test"), false),
    (Some("www.wild.test"), false),
    (Some("a.b.wild.test"), false),
    (Some("wild.test"), false),
    (Some("dual.test"), false),
    (Some("dual.test"), true),
    (Some("x.neg.test"), false),
    (Some("admin.neg.test"), false),
    (Some("listed.test"), false),
    (Some("unknown.test"), false),
    (None, false),
];

#[test]
fn certificate_and_alpn_selection_match_haproxy() {
    let pki = Pki::new("Test CA");
    pki.server(
        "certs/0default.pem",
        &["default.test"],
        "default.test",
        Alg::Rsa,
        false,
    );
    pki.server("certs/a.pem", &[], "a.test", Alg::Ecdsa, true);
    pki.server(
        "certs/wild.pem",
        &["*.wild.test"],
        "wild",
        Alg::Ecdsa,
        false,
    );
    pki.server(
        "certs/dual-rsa.pem",
        &["dual.test"],
        "dual-rsa",
        Alg::Rsa,
        false,
    );
    pki.server(
        "certs/dual-ecdsa.pem",
        &["dual.test"],
        "dual-ecdsa",
        Alg::Ecdsa,
        false,
    );
    pki.server("list/neg.pem", &["neg.test"], "neg", Alg::Ecdsa, false);
    pki.server(
        "list/listed.pem",
        &["listed.test"],
        "listed",
        Alg::Ecdsa,
        false,
    );
    let list = pki.path("list.txt");
    std::fs::write(
        &list,
        format!(
            "{} [alpn h2] *.neg.test !admin.neg.test\n{}\n",
            pki.path("list/neg.pem").display(),
            pki.path("list/listed.pem").display()
        ),
    )
    .unwrap();
    for strict in ["", " strict-sni"] {
        let (hx, ours) = on_both(
            |bind| {
                format!(
                    "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {bind} ssl crt {} crt-list {} alpn http/1.1{strict}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n",
                    pki.path("certs").display(),
                    list.display()
                )
            },
            |addr| {
                ASKS.iter()
                    .map(|(sni, rsa)| presented(addr, *sni, *rsa, &["h2", "http/1.1"]))
                    .collect::<Vec<_>>()
            },
        );
        for (i, (h, r)) in hx.iter().zip(&ours).enumerate() {
            match (h, r) {
                (Ok(h), Ok(r)) => assert_eq!(h, r, "#{i} {:?}{strict}", ASKS[i]),
                (Err(_), Err(_)) => {}
                _ => panic!("#{i} {:?}{strict}: haproxy {h:?}, ringlb {r:?}", ASKS[i]),
            }
        }
        // The checks mean something: the line's ALPN and the wildcard were used.
        assert_eq!(ours[7].as_ref().unwrap().1.as_deref(), Some(&b"h2"[..]));
        assert_eq!(ours[2].as_ref().unwrap().0, vec!["*.wild.test", "wild"]);
    }
}

#[test]
fn crt_list_lines_require_client_certificates_as_haproxy_does() {
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    pki.server("b.pem", &["b.test"], "b.test", Alg::Ecdsa, false);
    let list = pki.path("list.txt");
    std::fs::write(
        &list,
        format!(
            "{} [verify required ca-file {}] a.test\n{}\n",
            pki.path("a.pem").display(),
            pki.ca_path().display(),
            pki.path("b.pem").display()
        ),
    )
    .unwrap();
    let good = pki.client("alice");
    let foreign = other.client("eve");
    let with = |c: &(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
        u64,
    )| { any_cert_client(&[], Some((c.0.clone(), c.1.clone_key()))) };
    let (hx, ours) = on_both(
        |bind| {
            format!(
                "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {bind} ssl crt-list {}\n    http-request return status 200 content-type text/plain string ok\n",
                list.display()
            )
        },
        |addr| {
            vec![
                status(addr, "a.test", any_cert_client(&[], None)),
                status(addr, "a.test", with(&good)),
                status(addr, "a.test", with(&foreign)),
                status(addr, "b.test", any_cert_client(&[], None)),
                status(addr, "b.test", with(&good)),
            ]
        },
    );
    assert_eq!(hx, ["fail", "200", "fail", "200", "200"], "HAProxy");
    assert_eq!(ours, hx);
}

#[test]
fn ssl_min_ver_and_verify_required_with_a_crl_match_haproxy() {
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let good = pki.client("alice");
    let revoked = pki.client("mallory");
    let foreign = other.client("eve");
    let crl = pki.crl("crl.pem", &[revoked.2]);
    let v = |versions: Vec<&'static rustls::SupportedProtocolVersion>| {
        let o = ClientOpts {
            versions,
            ..ClientOpts::default()
        };
        client_config(&pki.ca_der(), o)
    };
    let (hx, ours) = on_both(
        |bind| {
            format!(
                "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {bind} ssl crt {} ssl-min-ver TLSv1.3\n    http-request return status 200 content-type text/plain string ok\n",
                pki.path("a.pem").display()
            )
        },
        |addr| {
            vec![
                status(addr, "a.test", v(vec![&rustls::version::TLS12])),
                status(addr, "a.test", v(vec![&rustls::version::TLS13])),
            ]
        },
    );
    assert_eq!(hx, ["fail", "200"], "HAProxy");
    assert_eq!(ours, hx);
    // openssl s_client -tls1_2 is refused by ringlb too.
    let lb = ringlb_cfg(&format!(
        "defaults\n    mode http\n    timeout client 5s\nfrontend fe\n    bind 127.0.0.1:0 ssl crt {} ssl-min-ver TLSv1.3\n    http-request return status 200 content-type text/plain string ok\n",
        pki.path("a.pem").display()
    ));
    let s_client = |v: &str| {
        std::process::Command::new("openssl")
            .args(["s_client", "-connect", &lb.addr("fe").to_string(), v])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl")
    };
    let out12 = String::from_utf8_lossy(&s_client("-tls1_2").stdout).into_owned();
    let out13 = String::from_utf8_lossy(&s_client("-tls1_3").stdout).into_owned();
    assert!(out12.contains("Cipher is (NONE)"), "{out12}");
    assert!(out13.contains("TLSv1.3"), "{out13}");

    let with = |c: &(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
        u64,
    )| {
        let o = ClientOpts {
            auth: Some((c.0.clone(), c.1.clone_key())),
            ..ClientOpts::default()
        };
        client_config(&pki.ca_der(), o)
    };
    let (hx, ours) = on_both(
        |bind| {
            format!(
                "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {bind} ssl crt {} verify required ca-file {} crl-file {}\n    http-request return status 200 content-type text/plain string ok\n",
                pki.path("a.pem").display(),
                pki.ca_path().display(),
                crl.display()
            )
        },
        |addr| {
            vec![
                status(
                    addr,
                    "a.test",
                    client_config(&pki.ca_der(), ClientOpts::default()),
                ),
                status(addr, "a.test", with(&foreign)),
                status(addr, "a.test", with(&revoked)),
                status(addr, "a.test", with(&good)),
            ]
        },
    );
    assert_eq!(hx, ["fail", "fail", "fail", "200"], "HAProxy");
    assert_eq!(ours, hx);
}
