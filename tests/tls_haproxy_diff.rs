//! Certificate selection against HAProxy 2.6: the same certificate directory and
//! crt-list served by HAProxy (`bind ... ssl crt DIR crt-list FILE`) and by ringlb's
//! TLS accept (in-process until the binary serves TLS), asked by the same rustls
//! client for a list of SNIs, offering ECDSA and RSA or RSA only: each side must
//! present the same certificate, or both refuse (strict-sni).

mod common;
mod tls_util;

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
    let der = conn.peer_certificates().and_then(|c| c.first()).ok_or("no certificate")?;
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
                ASKS.iter().map(|(sni, rsa)| presented(addr, *sni, *rsa)).collect::<Vec<_>>()
            });
            let set = ServerSet::new(&bind).unwrap();
            for _ in ASKS {
                let (s, _) = l.accept().await.unwrap();
                let _ = tls::accept(
                    s,
                    &set,
                    monoio::time::Instant::now() + Duration::from_secs(5),
                    tls::Acceptor::default(),
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
    pki.server("certs/0default.pem", &["default.test"], "default.test", Alg::Rsa, false);
    pki.server("certs/a.pem", &[], "a.test", Alg::Ecdsa, true);
    pki.server("certs/wild.pem", &["*.wild.test"], "wild", Alg::Ecdsa, false);
    pki.server("certs/dual-rsa.pem", &["dual.test"], "dual-rsa", Alg::Rsa, false);
    pki.server("certs/dual-ecdsa.pem", &["dual.test"], "dual-ecdsa", Alg::Ecdsa, false);
    pki.server("list/neg.pem", &["neg.test"], "neg", Alg::Ecdsa, false);
    pki.server("list/listed.pem", &["listed.test"], "listed", Alg::Ecdsa, false);
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
    let port = common::tcp::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {addr} ssl crt {} crt-list {}{}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n",
        pki.path("certs").display(),
        pki.path("list.txt").display(),
        if strict { " strict-sni" } else { "" }
    );
    let _h = HaProxy::start(&cfg, &[addr], None);
    ASKS.iter().map(|(sni, rsa)| presented(addr, *sni, *rsa)).collect()
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
