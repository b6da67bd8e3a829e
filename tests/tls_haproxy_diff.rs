//! Certificate selection against HAProxy 2.6: the same certificate directory and
//! crt-list served by HAProxy (`bind ... ssl crt DIR crt-list FILE`) and by ringlb's
//! TLS accept (in-process until the binary serves TLS), asked by the same rustls
//! client for a list of SNIs, offering ECDSA and RSA or RSA only: each side must
//! present the same certificate, or both refuse (strict-sni).

use crate::common;
use crate::tls_util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::haproxy::HaProxy;
use ringlb::tls::{self, BindTlsSpec, CrtSource, ServerSet};
use tls_util::{both_drivers, load_bind, provider, Alg, Pki};

/// Accepts any certificate; offers RSA-only signature schemes when `rsa_only`.
#[derive(Debug)]
struct Any {
    p: Arc<rustls::crypto::CryptoProvider>,
    rsa_only: bool,
}

impl rustls::client::danger::ServerCertVerifier for Any {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.p.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.p.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        let all = self.p.signature_verification_algorithms.supported_schemes();
        if self.rsa_only {
            all.into_iter()
                .filter(|s| format!("{s:?}").starts_with("RSA_"))
                .collect()
        } else {
            all
        }
    }
}

/// The names of the certificate `addr` presents for `sni`, or the failure.
fn presented(addr: SocketAddr, sni: Option<&str>, rsa_only: bool) -> Result<Vec<String>, String> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Any {
            p: provider(),
            rsa_only,
        }))
        .with_no_client_auth();
    cfg.enable_sni = sni.is_some();
    let name = rustls::pki_types::ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_string())
        .unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?;
    Ok(ringlb::tls::certs::CertFacts::parse(der).unwrap().names)
}

const ASKS: &[(Option<&str>, bool)] = &[
    (Some("a.test"), false),
    (Some("A.Test"), false),
    (Some("www.wild.test"), false),
    (Some("a.b.wild.test"), false),
    (Some("wild.test"), false),
    (Some("dual.test"), false),
    (Some("dual.test"), true),
    (Some("www.neg.test"), false),
    (Some("admin.neg.test"), false),
    (Some("listed.test"), false),
    (Some("unknown.test"), false),
    (None, false),
];

fn ringlb_answers(bind: Arc<tls::BindTls>) -> Vec<Result<Vec<String>, String>> {
    let out = Arc::new(std::sync::Mutex::new(Vec::new()));
    let first = Arc::new(std::sync::Mutex::new(None));
    both_drivers(|| {
        let (bind, out, first) = (bind.clone(), out.clone(), first.clone());
        async move {
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                ASKS.iter()
                    .map(|(sni, rsa)| presented(addr, *sni, *rsa))
                    .collect::<Vec<_>>()
            });
            let set = ServerSet::new(&bind).unwrap();
            for _ in ASKS {
                let (s, _) = l.accept().await.unwrap();
                let _ = tls::accept(
                    s,
                    &set,
                    monoio::time::Instant::now() + Duration::from_secs(5),
                    tls::Acceptor::default(),
                    None,
                )
                .await;
            }
            while !client.is_finished() {
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            let got = client.join().unwrap();
            // Both drivers answer alike.
            let mut f = first.lock().unwrap();
            match &*f {
                None => *f = Some(format!("{got:?}")),
                Some(prev) => assert_eq!(prev, &format!("{got:?}")),
            }
            *out.lock().unwrap() = got;
        }
    });
    let v = out.lock().unwrap().clone();
    v
}

fn setup() -> (Pki, BindTlsSpec) {
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
    let spec = BindTlsSpec {
        crts: vec![CrtSource::Crt(pki.path("certs")), CrtSource::List(list)],
        lifetime: 300,
        ..Default::default()
    };
    (pki, spec)
}

fn haproxy_answers(pki: &Pki, strict: bool) -> Vec<Result<Vec<String>, String>> {
    // HAProxy refuses port 0: a port held (bound, not listening) until it binds it.
    let held = common::tcp::ReservedPort::new();
    let addr = held.addr();
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {addr} ssl crt {} crt-list {}{}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n",
        pki.path("certs").display(),
        pki.path("list.txt").display(),
        if strict { " strict-sni" } else { "" }
    );
    let _h = HaProxy::start(&cfg, &[addr], None);
    ASKS.iter()
        .map(|(sni, rsa)| presented(addr, *sni, *rsa))
        .collect()
}

#[test]
fn the_same_certificate_as_haproxy_for_every_sni() {
    let (pki, spec) = setup();
    for strict in [false, true] {
        let spec = BindTlsSpec {
            strict_sni: strict,
            ..spec.clone()
        };
        let hx = haproxy_answers(&pki, strict);
        let rl = ringlb_answers(load_bind(&spec));
        for (i, (ask, (h, r))) in ASKS.iter().zip(hx.iter().zip(rl.iter())).enumerate() {
            match (h, r) {
                (Ok(h), Ok(r)) => assert_eq!(h, r, "#{i} {ask:?} strict={strict}"),
                // The same alert (unrecognized_name for strict-sni).
                (Err(h), Err(r)) => assert_eq!(h, r, "#{i} {ask:?} strict={strict}"),
                _ => panic!("#{i} {ask:?} strict={strict}: haproxy {h:?}, ringlb {r:?}"),
            }
        }
    }
}

/// Sends a request after the handshake and reads the status line: `Ok(status)`, or
/// the failure (a refused client certificate surfaces here in TLS 1.3).
fn request(
    addr: SocketAddr,
    sni: &str,
    auth: Option<&(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
        u64,
    )>,
) -> Result<String, String> {
    use std::io::{Read, Write};
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Any {
            p: provider(),
            rsa_only: false,
        }));
    let cfg = match auth {
        Some((chain, key, _)) => b
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf[9..12]).into_owned())
}

#[test]
fn crt_list_lines_check_client_certificates_as_haproxy_does() {
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    pki.server("b.pem", &["b.test"], "b.test", Alg::Ecdsa, false);
    let good = pki.client("alice");
    let foreign = other.client("eve");
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
    let asks: Vec<(&str, Option<&_>)> = vec![
        ("a.test", None),
        ("a.test", Some(&good)),
        ("a.test", Some(&foreign)),
        ("b.test", None),
        ("b.test", Some(&good)),
    ];
    // HAProxy refuses port 0: a port held (bound, not listening) until it binds it.
    let held = common::tcp::ReservedPort::new();
    let addr = held.addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {addr} ssl crt-list {}\n    http-request return status 200 content-type text/plain string ok\n",
        list.display()
    );
    let hx: Vec<_> = {
        let _h = HaProxy::start(&cfg, &[addr], None);
        asks.iter()
            .map(|(sni, auth)| request(addr, sni, *auth))
            .collect()
    };
    let bind = load_bind(&BindTlsSpec {
        crts: vec![CrtSource::List(list.clone())],
        lifetime: 300,
        ..Default::default()
    });
    let n = asks.len();
    let asks: Vec<(String, Option<Arc<_>>)> = asks
        .iter()
        .map(|(s, a)| {
            (
                s.to_string(),
                a.map(|x| Arc::new((x.0.clone(), x.1.clone_key(), x.2))),
            )
        })
        .collect();
    let results = Arc::new(std::sync::Mutex::new(Vec::new()));
    both_drivers(|| {
        let (bind, asks, results) = (bind.clone(), asks.clone(), results.clone());
        async move {
            use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                asks.iter()
                    .map(|(sni, auth)| request(addr, sni, auth.as_deref()))
                    .collect::<Vec<_>>()
            });
            let set = ServerSet::new(&bind).unwrap();
            for _ in 0..n {
                let (s, _) = l.accept().await.unwrap();
                let deadline = monoio::time::Instant::now() + Duration::from_secs(5);
                if let Ok((mut t, _)) =
                    tls::accept(s, &set, deadline, tls::Acceptor::default(), None).await
                {
                    let (r, _) = t.read(Vec::with_capacity(4096)).await;
                    if r.is_ok_and(|n| n > 0) {
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
                        let (w, _) = t.write_all(reply).await;
                        let _ = w;
                        let _ = monoio::io::AsyncWriteRent::shutdown(&mut t).await;
                    }
                }
            }
            while !client.is_finished() {
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            results.lock().unwrap().push(client.join().unwrap());
        }
    });
    let expect = ["fail", "200", "fail", "200", "200"];
    let results = results.lock().unwrap();
    assert_eq!(results.len(), 2, "one run per driver");
    for rl in results.iter() {
        for (i, (h, r)) in hx.iter().zip(rl.iter()).enumerate() {
            let verdict =
                |x: &Result<String, String>| x.as_ref().map_or("fail".to_string(), |s| s.clone());
            assert_eq!(verdict(h), expect[i], "haproxy #{i}: {h:?}");
            assert_eq!(verdict(r), expect[i], "ringlb #{i}: {r:?}");
        }
    }
}
