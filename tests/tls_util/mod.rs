//! Test PKI and clients for the TLS tests: a CA, server and client certificates and
//! CRLs generated at test time (rcgen) into a temporary directory, none committed;
//! a blocking rustls client on a thread; and a runner for both io drivers.
#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod https;
#[allow(unused_imports)]
pub use https::*;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Runs `f` on the epoll driver, then on io_uring.
pub fn both_drivers<F, Fut>(f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut legacy = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("legacy runtime");
    legacy.block_on(f());
    let mut uring = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("io_uring runtime (ulimit -l?)");
    uring.block_on(f());
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Alg {
    Ecdsa,
    Rsa,
}

pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    serial: std::cell::Cell<u64>,
}

impl Pki {
    pub fn new(cn: &str) -> Pki {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = dn(cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca,
            serial: std::cell::Cell::new(100),
        };
        std::fs::write(pki.ca_path(), pki.ca.pem()).unwrap();
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.path("ca.pem")
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    fn next_serial(&self) -> u64 {
        let s = self.serial.get() + 1;
        self.serial.set(s);
        s
    }

    /// A server certificate with these SANs and CN, written to `file` (key inside, or
    /// in `file.key` when `key_apart`). Returns its serial.
    pub fn server(&self, file: &str, sans: &[&str], cn: &str, alg: Alg, key_apart: bool) -> u64 {
        let key = match alg {
            Alg::Ecdsa => KeyPair::generate().unwrap(),
            Alg::Rsa => KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap(),
        };
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name = dn(cn);
        let serial = self.next_serial();
        p.serial_number = Some(SerialNumber::from(serial));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.ca).unwrap();
        let path = self.path(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        if key_apart {
            std::fs::write(&path, cert.pem()).unwrap();
            let mut k = path.as_os_str().to_owned();
            k.push(".key");
            std::fs::write(PathBuf::from(k), key.serialize_pem()).unwrap();
        } else {
            std::fs::write(&path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        }
        serial
    }

    /// A client certificate (chain and key) and its serial.
    pub fn client(&self, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, u64) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = dn(cn);
        let serial = self.next_serial();
        p.serial_number = Some(SerialNumber::from(serial));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.ca).unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        (vec![cert.der().clone()], key, serial)
    }

    /// A CRL revoking these serials, written to `file`.
    pub fn crl(&self, file: &str, revoked: &[u64]) -> PathBuf {
        let now = rcgen::date_time_ymd(2024, 1, 1);
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.ca).unwrap();
        let path = self.path(file);
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "ringlb test");
    d.push(DnType::CommonName, cn);
    d
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    ringlb::tls::provider()
}

/// A rustls client config trusting `ca`.
pub struct ClientOpts {
    pub alpn: Vec<&'static str>,
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    pub auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    pub ecdsa_only: bool,
    /// Offer only these cipher suites (empty: every suite of the provider).
    pub suites: Vec<rustls::SupportedCipherSuite>,
    /// Allow `dangerous_extract_secrets` (a client that seals records itself).
    pub extract_secrets: bool,
}

impl Default for ClientOpts {
    fn default() -> Self {
        ClientOpts {
            alpn: Vec::new(),
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            auth: None,
            ecdsa_only: false,
            suites: Vec::new(),
            extract_secrets: false,
        }
    }
}

pub fn client_config(ca: &CertificateDer<'static>, o: ClientOpts) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut p = Arc::unwrap_or_clone(provider());
    if !o.suites.is_empty() {
        p.cipher_suites = o.suites.clone();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&o.versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match o.auth {
        Some((chain, key)) => b.with_client_auth_cert(chain, key).unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = o.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    c.enable_secret_extraction = o.extract_secrets;
    Arc::new(c)
}

/// A loopback listener for an in-process server, and its address.
pub fn listener() -> (monoio::net::TcpListener, std::net::SocketAddr) {
    let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Waits for a client thread without blocking the runtime (which must go on to
/// submit the cancellations and closes of what the server dropped).
pub async fn join<T>(t: std::thread::JoinHandle<T>) -> T {
    while !t.is_finished() {
        monoio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    t.join().unwrap()
}

/// What a blocking client saw.
#[derive(Debug)]
pub struct Seen {
    pub reply: Vec<u8>,
    pub peer_names: Vec<String>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
    pub resumed: bool,
}

/// Connects, sends `msg`, reads until the server closes (close_notify or EOF).
pub fn exchange(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    sni: &str,
    msg: &[u8],
) -> Result<Seen, String> {
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(msg).map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !reply.is_empty() => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    let peer_names = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| {
            ringlb::tls::certs::CertFacts::parse(c)
                .map(|f| f.names)
                .unwrap_or_default()
        })
        .unwrap_or_default();
    Ok(Seen {
        reply,
        peer_names,
        alpn: tls.conn.alpn_protocol().map(|a| a.to_vec()),
        version: tls.conn.protocol_version(),
        resumed: tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    })
}

/// Loads a bind from its spec, panicking with every finding on failure.
pub fn load_bind(spec: &ringlb::tls::BindTlsSpec) -> Arc<ringlb::tls::BindTls> {
    let keys = Arc::new(ringlb::tls::TicketKeys::generate(300).unwrap());
    let mut f = ringlb::tls::Findings::default();
    match ringlb::tls::BindTls::load(spec, &keys, &mut f) {
        Some(b) => b,
        None => panic!("bind refused: {:?}", f.errors),
    }
}

pub fn spec_with(crts: &[&Path]) -> ringlb::tls::BindTlsSpec {
    ringlb::tls::BindTlsSpec {
        crts: crts
            .iter()
            .map(|p| ringlb::tls::CrtSource::Crt(p.to_path_buf()))
            .collect(),
        lifetime: 300,
        ..Default::default()
    }
}
