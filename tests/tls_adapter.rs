//! The TLS adapter (`ringlb::tls`: accept, `TlsStream`, connect) over real loopback
//! sockets in a monoio runtime, each test on both io drivers, against real clients:
//! rustls on a thread, `openssl s_client`, and ringlb's own client side.
//! Certificates are generated per test (rcgen).

use crate::tls_util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use monoio::time::Instant;
use ringlb::tls::{self, BindTls, ServerSet, TlsInfo, TlsVersion, Verify};
use tls_util::*;

/// Accepts `n` TLS clients; each sends a line, gets `ok <sni> <alpn>\n` and a
/// close_notify. Returns what each handshake gave.
async fn serve(
    listener: TcpListener,
    bind: Arc<BindTls>,
    n: usize,
    deadline: Duration,
) -> Vec<Result<TlsInfo, String>> {
    let set = ServerSet::new(&bind).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let (sock, _) = listener.accept().await.unwrap();
        match tls::accept(
            sock,
            &set,
            Instant::now() + deadline,
            tls::Acceptor::default(),
            None,
        )
        .await
        {
            Ok((mut s, info)) => {
                let line = read_line(&mut s).await;
                let reply = format!(
                    "ok {} {} {}\n",
                    info.sni.as_deref().unwrap_or("-"),
                    String::from_utf8_lossy(&info.alpn),
                    String::from_utf8_lossy(&line)
                );
                let (r, _) = s.write_all(reply.into_bytes()).await;
                r.unwrap();
                // The client may be gone already (it read the line).
                let _ = s.shutdown().await;
                out.push(Ok(info));
            }
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    out
}

async fn read_line<S: AsyncReadRent>(s: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        let (r, buf) = s.read(Vec::with_capacity(4096)).await;
        match r {
            Ok(0) | Err(_) => break,
            Ok(_) => got.extend_from_slice(&buf),
        }
    }
    got
}

/// Runs `clients` on a thread against a server of `n` connections.
async fn run<F>(
    bind: Arc<BindTls>,
    n: usize,
    clients: F,
) -> (Vec<Result<TlsInfo, String>>, Vec<Result<Seen, String>>)
where
    F: FnOnce(SocketAddr) -> Vec<Result<Seen, String>> + Send + 'static,
{
    let (l, addr) = listener();
    let t = std::thread::spawn(move || clients(addr));
    let server = serve(l, bind, n, Duration::from_secs(5)).await;
    (server, join(t).await)
}

#[test]
fn handshake_echo_and_the_facts_a_connection_keeps() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let bind = load_bind(&spec_with(&[&pki.path("a.pem")]));
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let (srv, cli) = run(bind, 1, move |addr| {
                vec![exchange(
                    addr,
                    client_config(&ca, ClientOpts::default()),
                    "a.test",
                    b"hello\n",
                )]
            })
            .await;
            let info = srv[0].as_ref().unwrap();
            let seen = cli[0].as_ref().unwrap();
            assert_eq!(seen.reply, b"ok a.test  hello\n\n");
            assert_eq!(info.protocol, "TLSv1.3");
            assert_eq!(info.cipher, "TLS_AES_256_GCM_SHA384");
            assert!(!info.client_cert && info.client_dn.is_none() && !info.resumed);
            // HAProxy 2.6: no ALPN unless configured.
            assert_eq!(seen.alpn, None);
        }
    });
}

#[test]
fn sni_picks_exact_then_wildcard_then_the_default_and_strict_sni_refuses() {
    let pki = Pki::new("Test CA");
    // A directory, loaded in name order: "0default.pem" is the default.
    pki.server(
        "certs/0default.pem",
        &["default.test"],
        "default.test",
        Alg::Rsa,
        false,
    );
    pki.server("certs/a.pem", &[], "a.test", Alg::Ecdsa, true); // CN only, key apart
    pki.server(
        "certs/wild.pem",
        &["*.wild.test"],
        "wild",
        Alg::Ecdsa,
        false,
    );
    let spec = spec_with(&[&pki.path("certs")]);
    let bind = load_bind(&spec);
    let strict = load_bind(&tls::BindTlsSpec {
        strict_sni: true,
        ..spec.clone()
    });
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, strict, ca) = (bind.clone(), strict.clone(), ca.clone());
        async move {
            let names = ["a.test", "www.wild.test", "a.b.wild.test", "other.test"];
            let ca2 = ca.clone();
            let (srv, cli) = run(bind, names.len(), move |addr| {
                names
                    .iter()
                    .map(|n| {
                        // Any certificate: the default does not match the name.
                        exchange_any(addr, &ca2, n)
                    })
                    .collect()
            })
            .await;
            assert!(srv.iter().all(|r| r.is_ok()), "{srv:?}");
            let got: Vec<_> = cli
                .iter()
                .map(|c| c.as_ref().unwrap().peer_names.clone())
                .collect();
            assert_eq!(got[0], vec!["a.test"], "exact name from the CN");
            assert_eq!(got[1], vec!["*.wild.test", "wild"], "one-label wildcard");
            assert_eq!(
                got[2],
                vec!["default.test"],
                "two labels: no wildcard match"
            );
            assert_eq!(got[3], vec!["default.test"], "unknown: the first loaded");
            let (srv, cli) = run(strict, 2, move |addr| {
                vec![
                    exchange_any(addr, &ca, "a.test"),
                    exchange_any(addr, &ca, "other.test"),
                ]
            })
            .await;
            assert!(srv[0].is_ok() && cli[0].is_ok());
            assert!(srv[1].is_err() && cli[1].is_err(), "{srv:?} {cli:?}");
        }
    });
}

/// A client that accepts any certificate (to see which one the server chose).
fn exchange_any(
    addr: SocketAddr,
    _ca: &rustls::pki_types::CertificateDer<'static>,
    sni: &str,
) -> Result<Seen, String> {
    #[derive(Debug)]
    struct Any(Arc<rustls::crypto::CryptoProvider>);
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
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Any(provider())))
        .with_no_client_auth();
    exchange(addr, Arc::new(cfg), sni, b"x\n")
}

#[test]
fn alpn_is_chosen_from_the_servers_list() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let mut spec = spec_with(&[&pki.path("a.pem")]);
    spec.conf.alpn = Some(vec!["h2".into(), "http/1.1".into()]);
    let bind = load_bind(&spec);
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let (srv, cli) = run(bind, 2, move |addr| {
                let o = ClientOpts {
                    alpn: vec!["http/1.1"],
                    ..Default::default()
                };
                let both = ClientOpts {
                    alpn: vec!["http/1.1", "h2"],
                    ..Default::default()
                };
                vec![
                    exchange(addr, client_config(&ca, o), "a.test", b"x\n"),
                    exchange(addr, client_config(&ca, both), "a.test", b"x\n"),
                ]
            })
            .await;
            assert_eq!(&*srv[0].as_ref().unwrap().alpn, b"http/1.1");
            assert_eq!(
                cli[0].as_ref().unwrap().alpn.as_deref(),
                Some(&b"http/1.1"[..])
            );
            // Server preference: h2 first.
            assert_eq!(&*srv[1].as_ref().unwrap().alpn, b"h2");
        }
    });
}

#[test]
fn ssl_min_ver_tls13_refuses_a_tls12_only_client() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Rsa, false);
    let mut spec = spec_with(&[&pki.path("a.pem")]);
    spec.conf.min_ver = Some(TlsVersion::Tls13);
    let bind = load_bind(&spec);
    let default = load_bind(&spec_with(&[&pki.path("a.pem")]));
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, default, ca) = (bind.clone(), default.clone(), ca.clone());
        async move {
            let tls12 = || ClientOpts {
                versions: vec![&rustls::version::TLS12],
                ..Default::default()
            };
            let ca2 = ca.clone();
            let (srv, cli) = run(bind, 2, move |addr| {
                vec![
                    exchange(addr, client_config(&ca2, tls12()), "a.test", b"x\n"),
                    exchange(
                        addr,
                        client_config(&ca2, ClientOpts::default()),
                        "a.test",
                        b"x\n",
                    ),
                ]
            })
            .await;
            assert!(srv[0].is_err() && cli[0].is_err());
            assert_eq!(srv[1].as_ref().unwrap().protocol, "TLSv1.3");
            // Without it, TLS 1.2 is served, with OpenSSL's suite name.
            let (srv, _) = run(default, 1, move |addr| {
                vec![exchange(
                    addr,
                    client_config(&ca, tls12()),
                    "a.test",
                    b"x\n",
                )]
            })
            .await;
            let info = srv[0].as_ref().unwrap();
            assert_eq!(info.protocol, "TLSv1.2");
            assert_eq!(info.cipher, "ECDHE-RSA-AES256-GCM-SHA384");
        }
    });
}

#[test]
fn client_certificates_required_optional_other_ca_and_revoked() {
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let good = Arc::new(pki.client("alice"));
    let revoked = Arc::new(pki.client("mallory"));
    let foreign = Arc::new(other.client("eve"));
    let crl = pki.crl("crl.pem", &[revoked.2]);
    let mut spec = spec_with(&[&pki.path("a.pem")]);
    spec.conf.verify = Some(Verify::Required);
    spec.conf.ca_file = Some(pki.ca_path());
    spec.conf.crl_file = Some(crl);
    let required = load_bind(&spec);
    let mut opt = spec.clone();
    opt.conf.verify = Some(Verify::Optional);
    let optional = load_bind(&opt);
    let ca = pki.ca_der();
    both_drivers(|| {
        let (required, optional, ca) = (required.clone(), optional.clone(), ca.clone());
        let (good, revoked, foreign) = (good.clone(), revoked.clone(), foreign.clone());
        async move {
            let with = |c: &(Vec<_>, rustls::pki_types::PrivateKeyDer<'static>, u64)| ClientOpts {
                auth: Some((c.0.clone(), c.1.clone_key())),
                ..Default::default()
            };
            let (ca2, good2) = (ca.clone(), good.clone());
            let (srv, cli) = run(required, 4, move |addr| {
                vec![
                    exchange(
                        addr,
                        client_config(&ca2, ClientOpts::default()),
                        "a.test",
                        b"x\n",
                    ),
                    exchange(addr, client_config(&ca2, with(&good2)), "a.test", b"x\n"),
                    exchange(addr, client_config(&ca2, with(&foreign)), "a.test", b"x\n"),
                    exchange(addr, client_config(&ca2, with(&revoked)), "a.test", b"x\n"),
                ]
            })
            .await;
            assert!(
                srv[0].is_err() && cli[0].is_err(),
                "no certificate: {:?}",
                cli[0]
            );
            let info = srv[1].as_ref().unwrap();
            assert!(info.client_cert);
            assert_eq!(info.verify, 0);
            assert_eq!(info.client_dn.as_deref(), Some("/O=ringlb test/CN=alice"));
            assert!(cli[1].is_ok());
            assert!(srv[2].is_err() && cli[2].is_err(), "other CA: {:?}", cli[2]);
            assert!(srv[3].is_err() && cli[3].is_err(), "revoked: {:?}", cli[3]);
            let (srv, _) = run(optional, 2, move |addr| {
                vec![
                    exchange(
                        addr,
                        client_config(&ca, ClientOpts::default()),
                        "a.test",
                        b"x\n",
                    ),
                    exchange(addr, client_config(&ca, with(&good)), "a.test", b"x\n"),
                ]
            })
            .await;
            assert!(!srv[0].as_ref().unwrap().client_cert);
            assert!(srv[1].as_ref().unwrap().client_cert);
        }
    });
}

#[test]
fn tickets_from_one_key_file_resume_across_two_server_configs() {
    use base64::Engine;
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let keys: String = (1..=3u8)
        .map(|i| {
            format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode([i; 80])
            )
        })
        .collect();
    std::fs::write(pki.path("tickets"), keys).unwrap();
    let mut spec = spec_with(&[&pki.path("a.pem")]);
    spec.ticket_keys = Some(pki.path("tickets"));
    // Two loads: what two shards (or two processes reading the file) hold.
    let (one, two) = (load_bind(&spec), load_bind(&spec));
    let lone = load_bind(&spec_with(&[&pki.path("a.pem")]));
    let ca = pki.ca_der();
    for versions in [vec![&rustls::version::TLS13], vec![&rustls::version::TLS12]] {
        both_drivers(|| {
            let (one, two, lone, ca) = (one.clone(), two.clone(), lone.clone(), ca.clone());
            let versions = versions.clone();
            async move {
                let cfg = client_config(
                    &ca,
                    ClientOpts {
                        versions,
                        ..Default::default()
                    },
                );
                let c1 = cfg.clone();
                let (s1, _) = run(one, 1, move |a| vec![exchange(a, c1, "a.test", b"x\n")]).await;
                assert!(!s1[0].as_ref().unwrap().resumed);
                let c2 = cfg.clone();
                let (s2, cli) = run(two, 1, move |a| vec![exchange(a, c2, "a.test", b"x\n")]).await;
                assert!(
                    s2[0].as_ref().unwrap().resumed,
                    "resumed on the other config"
                );
                assert!(cli[0].as_ref().unwrap().resumed);
                // A bind with other keys cannot decrypt the ticket: a full handshake.
                let (s3, _) = run(lone, 1, move |a| vec![exchange(a, cfg, "a.test", b"x\n")]).await;
                assert!(!s3[0].as_ref().unwrap().resumed);
            }
        });
    }
}

#[test]
fn half_a_client_hello_is_dropped_at_the_deadline() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let bind = load_bind(&spec_with(&[&pki.path("a.pem")]));
    both_drivers(|| {
        let bind = bind.clone();
        async move {
            let (l, addr) = listener();
            let client = std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                // A record header announcing 512 bytes of handshake, then 20 of them.
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
                    .unwrap();
                s.write_all(&[0u8; 11]).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let started = std::time::Instant::now();
                let mut b = [0u8; 16];
                let r = s.read(&mut b);
                (r.map_err(|e| e.kind()), started.elapsed())
            });
            let set = ServerSet::new(&bind).unwrap();
            let (sock, _) = l.accept().await.unwrap();
            let started = std::time::Instant::now();
            let r = tls::accept(
                sock,
                &set,
                Instant::now() + Duration::from_millis(300),
                tls::Acceptor::default(),
                None,
            )
            .await;
            let took = started.elapsed();
            assert!(matches!(r, Err(tls::AcceptError::Timeout)), "{:?}", r.err());
            assert!(
                took >= Duration::from_millis(250) && took < Duration::from_secs(5),
                "{took:?}"
            );
            let (read, waited) = join(client).await;
            // The socket was closed with the dropped future: EOF, not the 10 s timeout.
            assert!(
                matches!(read, Ok(0)) || read.is_err() && waited < Duration::from_secs(5),
                "{read:?}"
            );
            assert!(waited < Duration::from_secs(5));
        }
    });
}

#[test]
fn a_read_dropped_by_its_timeout_leaves_the_read_side_refusing_further_use() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let bind = load_bind(&spec_with(&[&pki.path("a.pem")]));
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let (l, addr) = listener();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let cfg = client_config(&ca, ClientOpts::default());
            let client = std::thread::spawn(move || {
                use std::io::Write;
                let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
                let conn = rustls::ClientConnection::new(cfg, name).unwrap();
                let sock = std::net::TcpStream::connect(addr).unwrap();
                let mut s = rustls::StreamOwned::new(conn, sock);
                s.write_all(b"first\n").unwrap();
                // Stay silent until the server gave up on its read.
                let _ = rx.recv_timeout(Duration::from_secs(10));
                let _ = s.write_all(b"late\n");
            });
            let set = ServerSet::new(&bind).unwrap();
            let (sock, _) = l.accept().await.unwrap();
            let (mut s, _) = tls::accept(
                sock,
                &set,
                Instant::now() + Duration::from_secs(5),
                tls::Acceptor::default(),
                None,
            )
            .await
            .unwrap();
            assert_eq!(read_line(&mut s).await, b"first\n");
            let timed_out =
                monoio::time::timeout(Duration::from_millis(100), s.read(Vec::with_capacity(64)))
                    .await;
            assert!(timed_out.is_err(), "the client is silent");
            tx.send(()).unwrap();
            let (r, _) = s.read(Vec::with_capacity(64)).await;
            assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::ConnectionAborted);
            // The write side is independent (a split stream writes while it reads):
            // it may go on; the caller closes the connection after a timeout anyway.
            drop(s);
            join(client).await;
        }
    });
}

#[test]
fn a_megabyte_each_way_and_close_notify_reads_as_eof() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let bind = load_bind(&spec_with(&[&pki.path("a.pem")]));
    let ca = pki.ca_der();
    let blob: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    both_drivers(|| {
        let (bind, ca, blob) = (bind.clone(), ca.clone(), blob.clone());
        async move {
            let (l, addr) = listener();
            let cfg = client_config(&ca, ClientOpts::default());
            let sent = blob.clone();
            let client = std::thread::spawn(move || {
                use std::io::{Read, Write};
                let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
                let conn = rustls::ClientConnection::new(cfg, name).unwrap();
                let sock = std::net::TcpStream::connect(addr).unwrap();
                let mut s = rustls::StreamOwned::new(conn, sock);
                s.write_all(&sent).unwrap();
                s.conn.send_close_notify();
                s.flush().unwrap();
                let mut back = Vec::new();
                s.read_to_end(&mut back).unwrap();
                back
            });
            let set = ServerSet::new(&bind).unwrap();
            let (sock, _) = l.accept().await.unwrap();
            let (mut s, _) = tls::accept(
                sock,
                &set,
                Instant::now() + Duration::from_secs(5),
                tls::Acceptor::default(),
                None,
            )
            .await
            .unwrap();
            let mut got = Vec::new();
            let mut buf = Vec::with_capacity(8192);
            loop {
                buf.clear();
                let (r, b) = s.read(buf).await;
                buf = b;
                match r.unwrap() {
                    0 => break,
                    _ => got.extend_from_slice(&buf),
                }
            }
            assert_eq!(got.len(), blob.len());
            assert!(got == blob);
            let (r, _) = s.write_all(got).await;
            r.unwrap();
            s.shutdown().await.unwrap();
            let back = join(client).await;
            assert!(back == blob, "{} bytes back", back.len());
        }
    });
}

#[test]
fn ringlb_client_to_ringlb_server_verify_required_and_a_foreign_certificate() {
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    other.server("b.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let good = load_bind(&spec_with(&[&pki.path("a.pem")]));
    let bad = load_bind(&spec_with(&[&other.path("b.pem")]));
    let settings = tls::ClientSettings {
        verify: tls::ServerVerify::Required {
            ca_file: pki.ca_path(),
        },
        sni: Some(tls::SniSource::Fixed("a.test".into())),
        verifyhost: None,
        conf: Default::default(),
        no_reuse: false,
        check_ssl: false,
        check_sni: None,
    };
    let cfg = settings.build(&mut Vec::new()).unwrap();
    let name = settings.server_name(Some("a.test"), "127.0.0.1".parse().unwrap());
    both_drivers(|| {
        let (good, bad, cfg, name) = (good.clone(), bad.clone(), cfg.clone(), name.clone());
        async move {
            for (bind, ok) in [(good, true), (bad, false)] {
                let (l, addr) = listener();
                let server = monoio::spawn(serve(l, bind, 1, Duration::from_secs(5)));
                let sock = TcpStream::connect(addr).await.unwrap();
                let r = tls::connect(
                    sock,
                    cfg.clone(),
                    name.clone(),
                    Instant::now() + Duration::from_secs(5),
                )
                .await;
                match r {
                    Ok(mut s) => {
                        assert!(ok);
                        let (w, _) = s.write_all(b"hi\n".to_vec()).await;
                        w.unwrap();
                        assert_eq!(read_line(&mut s).await, b"ok a.test  hi\n\n");
                    }
                    Err(e) => assert!(!ok, "{e}"),
                }
                let srv = server.await;
                assert_eq!(srv[0].is_ok(), ok);
            }
        }
    });
}

#[test]
fn openssl_s_client_sees_the_sni_certificate_and_tls13() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no openssl CLI");
        return;
    }
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Rsa, false);
    pki.server("b.pem", &["b.test"], "b.test", Alg::Ecdsa, false);
    let bind = load_bind(&spec_with(&[&pki.path("a.pem"), &pki.path("b.pem")]));
    let ca = pki.ca_path();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let (l, addr) = listener();
            let client = std::thread::spawn(move || {
                let mut child = std::process::Command::new("openssl")
                    .args([
                        "s_client",
                        "-connect",
                        &addr.to_string(),
                        "-servername",
                        "b.test",
                        "-CAfile",
                    ])
                    .arg(&ca)
                    .args(["-verify_return_error", "-quiet"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(b"hey\n").unwrap();
                child.wait_with_output().unwrap()
            });
            let srv = serve(l, bind, 1, Duration::from_secs(10)).await;
            let out = join(client).await;
            let info = srv[0].as_ref().unwrap();
            assert_eq!(info.sni.as_deref(), Some("b.test"));
            assert_eq!(info.protocol, "TLSv1.3");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stdout.contains("ok b.test  hey"), "{stdout} {stderr}");
            assert!(
                stderr.contains("CN = b.test") || stderr.contains("CN=b.test"),
                "{stderr}"
            );
        }
    });
}
