//! Blocking HTTPS pieces for the black-box TLS tests: a client connection that sends
//! keep-alive GETs and tells what the handshake gave (serial, resumption), a client
//! config that accepts any certificate, and `TlsBackend`, a real HTTPS server on
//! `127.0.0.1:0` (rustls on std threads) that counts connections, full and resumed
//! handshakes, and the SNI each connection asked for.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::provider;

/// Accepts any server certificate (handshake signatures are still checked).
#[derive(Debug)]
pub struct AnyCert(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config that accepts any certificate, offering `alpn`, optionally with a
/// client certificate. Its session store makes later connections resume.
pub fn any_cert_client(
    alpn: &[&str],
    auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider())));
    let mut c = match auth {
        Some((chain, key)) => b.with_client_auth_cert(chain, key).unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(c)
}

/// One HTTPS client connection.
pub struct Https {
    s: rustls::StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

/// A response: status, head (lower-cased names), body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Https {
    /// Connects and finishes the handshake.
    pub fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>, sni: &str) -> Result<Https, String> {
        let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| format!("handshake: {e}"))?;
        }
        Ok(Https { s, buf: Vec::new() })
    }

    /// The TLS stream itself, for a client that writes and reads it as it likes.
    pub fn into_stream(self) -> rustls::StreamOwned<ClientConnection, TcpStream> {
        self.s
    }

    pub fn resumed(&self) -> bool {
        self.s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.s.conn.alpn_protocol().map(|a| a.to_vec())
    }

    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.s.conn.protocol_version()
    }

    /// The serial (upper-case hex) of the certificate the server presented.
    pub fn serial(&self) -> String {
        let der = self
            .s
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("a server certificate");
        ringlb::tls::certs::CertFacts::parse(der).unwrap().serial
    }

    /// GET `path` with `Host: host` on this connection (keep-alive).
    pub fn get(&mut self, host: &str, path: &str) -> Result<Answer, String> {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
    }

    /// Sends `raw` (a whole request) and reads one response (Content-Length framing,
    /// or until the close).
    pub fn request(&mut self, raw: &str) -> Result<Answer, String> {
        self.s
            .write_all(raw.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        self.s.flush().map_err(|e| format!("flush: {e}"))?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        let mut a = Answer {
            status,
            head,
            body: Vec::new(),
        };
        self.buf.drain(..head_end);
        match a
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            Some(n) => {
                while self.buf.len() < n {
                    self.fill()?;
                }
                a.body = self.buf.drain(..n).collect();
            }
            None => {
                while self.fill().is_ok() {}
                a.body = std::mem::take(&mut self.buf);
            }
        }
        Ok(a)
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut b = [0u8; 16384];
        match self.s.read(&mut b) {
            Ok(0) => Err("closed".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }
}

/// One GET on a new connection: the answer and whether the handshake resumed.
pub fn https_get(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    sni: &str,
    path: &str,
) -> Result<(Answer, bool), String> {
    let mut c = Https::connect(addr, cfg, sni)?;
    let a = c.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"
    ))?;
    Ok((a, c.resumed()))
}

#[derive(Default)]
struct BackendStats {
    accepts: AtomicUsize,
    handshakes: AtomicUsize,
    resumed: AtomicUsize,
    requests: AtomicUsize,
    snis: Mutex<Vec<Option<String>>>,
}

/// A server config for the certificate file `pem` (certificate then key).
pub fn server_config(pem: &std::path::Path) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(pem).unwrap();
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

/// A real HTTPS server: answers every GET with `sni=NAME conn=N` (keep-alive).
pub struct TlsBackend {
    addr: SocketAddr,
    stats: Arc<BackendStats>,
    stop: Arc<AtomicBool>,
}

impl TlsBackend {
    /// Serves the certificate file `pem` (certificate then key).
    pub fn start(pem: &std::path::Path) -> TlsBackend {
        let mut cfg = server_config(pem);
        cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
        let cfg = Arc::new(cfg);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(BackendStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            for (n, sock) in l.incoming().enumerate() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(sock) = sock else { continue };
                st.accepts.fetch_add(1, Ordering::SeqCst);
                let (cfg, st) = (cfg.clone(), st.clone());
                std::thread::spawn(move || serve_tls(sock, cfg, st, n));
            }
        });
        TlsBackend { addr, stats, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn accepts(&self) -> usize {
        self.stats.accepts.load(Ordering::SeqCst)
    }
    pub fn handshakes(&self) -> usize {
        self.stats.handshakes.load(Ordering::SeqCst)
    }
    pub fn resumed(&self) -> usize {
        self.stats.resumed.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }
    /// The SNI of every handshake, in order.
    pub fn snis(&self) -> Vec<Option<String>> {
        self.stats.snis.lock().unwrap().clone()
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve_tls(sock: TcpStream, cfg: Arc<rustls::ServerConfig>, st: Arc<BackendStats>, n: usize) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = rustls::ServerConnection::new(cfg) else {
        return;
    };
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        if s.conn.complete_io(&mut s.sock).is_err() {
            return;
        }
    }
    st.handshakes.fetch_add(1, Ordering::SeqCst);
    if s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        st.resumed.fetch_add(1, Ordering::SeqCst);
    }
    let sni = s.conn.server_name().map(String::from);
    st.snis.lock().unwrap().push(sni.clone());
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w: &[u8]| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut b = [0u8; 8192];
            match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&b[..k]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end);
        st.requests.fetch_add(1, Ordering::SeqCst);
        let body = format!("sni={} conn={n}", sni.as_deref().unwrap_or("-"));
        let close = head.contains("connection: close");
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        if s.write_all(reply.as_bytes()).is_err() || s.flush().is_err() || close {
            s.conn.send_close_notify();
            let _ = s.flush();
            return;
        }
    }
}

/// The names of the certificate `addr` presents for `sni` (none: no SNI), offering
/// RSA signature schemes only when `rsa_only`, or the failure.
pub fn presented(
    addr: SocketAddr,
    sni: Option<&str>,
    rsa_only: bool,
    alpn: &[&str],
) -> Result<(Vec<String>, Option<Vec<u8>>), String> {
    #[derive(Debug)]
    struct Rsa(AnyCert);
    impl ServerCertVerifier for Rsa {
        fn verify_server_cert(
            &self,
            a: &CertificateDer<'_>,
            b: &[CertificateDer<'_>],
            c: &ServerName<'_>,
            d: &[u8],
            e: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            self.0.verify_server_cert(a, b, c, d, e)
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(m, c, d)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(m, c, d)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0
                .supported_verify_schemes()
                .into_iter()
                .filter(|s| format!("{s:?}").starts_with("RSA_"))
                .collect()
        }
    }
    let verifier: Arc<dyn ServerCertVerifier> = if rsa_only {
        Arc::new(Rsa(AnyCert(provider())))
    } else {
        Arc::new(AnyCert(provider()))
    };
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.enable_sni = sni.is_some();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let c = Https::connect(addr, Arc::new(cfg), sni.unwrap_or("no-sni.invalid"))?;
    let der =
        c.s.conn
            .peer_certificates()
            .and_then(|p| p.first())
            .ok_or("no certificate")?;
    let names = ringlb::tls::certs::CertFacts::parse(der)
        .map(|f| f.names)
        .map_err(|e| e.to_string())?;
    Ok((names, c.alpn()))
}
