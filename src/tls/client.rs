//! TLS to servers (`server ... ssl verify none|required ca-file FILE sni EXPR`): one
//! `rustls::ClientConfig` per server, built at load, and `connect`, the client-side
//! twin of `accept`, giving the same `TlsStream` shape. rustls keeps client sessions
//! per config, so new connections to a server resume.
//!
//! As HAProxy 2.6: `verify required` is the default (`ssl-server-verify`), and needs a
//! `ca-file` (`@system-ca` reads the system's bundle); the certificate's name is
//! checked against the SNI sent (or `verifyhost`) and not at all when neither is set.
//! `verify none` accepts any certificate (signatures are still checked).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::time::Instant;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};

use super::certs;
use super::store::SslConf;
use super::stream::{ClientTls, TlsStream};

/// Where a server's SNI comes from (`sni EXPR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SniSource {
    /// `sni str(NAME)`.
    Fixed(String),
    /// `sni req.hdr(host)`: the request's Host, without the port.
    HostHeader,
    /// `sni ssl_fc_sni`: the name the client sent us.
    ClientSni,
}

impl SniSource {
    /// The expressions ringlb evaluates; others are refused by the config readers.
    pub fn parse(expr: &str) -> Result<SniSource, String> {
        if let Some(v) = expr.strip_prefix("str(").and_then(|r| r.strip_suffix(')')) {
            if v.is_empty() {
                return Err("'sni str()' needs a name".into());
            }
            return Ok(SniSource::Fixed(v.to_string()));
        }
        match expr {
            "req.hdr(host)" | "hdr(host)" | "req.hdr(Host)" | "hdr(Host)" => {
                Ok(SniSource::HostHeader)
            }
            "ssl_fc_sni" => Ok(SniSource::ClientSni),
            _ => Err(format!(
                "'sni {expr}': ringlb evaluates str(NAME), req.hdr(host) and ssl_fc_sni"
            )),
        }
    }
}

/// Server certificate verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVerify {
    None,
    /// Against these CA files (`@system-ca`: the system's bundle).
    Required {
        ca_file: PathBuf,
    },
}

/// A server's TLS settings as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub verify: ServerVerify,
    pub sni: Option<SniSource>,
    /// `verifyhost NAME`.
    pub verifyhost: Option<String>,
    /// `alpn`, `ssl-min-ver`, `ciphers`... (the client side of the same options).
    pub conf: SslConf,
    /// `no-ssl-reuse`: no session resumption.
    pub no_reuse: bool,
    /// `check-ssl`: health checks speak TLS too.
    pub check_ssl: bool,
    /// `check-sni NAME`: the SNI of TLS health checks.
    pub check_sni: Option<String>,
}

/// A server's TLS, as the config model holds it: the settings and the client config
/// they build (one per server; its session cache makes new connections resume).
#[derive(Debug)]
pub struct UpstreamTls {
    pub settings: ClientSettings,
    pub config: Arc<ClientConfig>,
}

/// Accepts any certificate, still checking handshake signatures.
#[derive(Debug)]
pub(crate) struct AcceptAny(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// WebPKI verification that skips the name check when no name was configured.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The system CA bundle `ca-file @system-ca` stands for.
fn system_ca() -> PathBuf {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"))
}

impl ClientSettings {
    /// The server's `ClientConfig`; `Err` says what is wrong (at load).
    pub fn build(&self, warnings: &mut Vec<String>) -> Result<Arc<ClientConfig>, String> {
        let ctx = super::server::Context::build(&self.conf, false, "server", warnings)?;
        let builder = ClientConfig::builder_with_provider(ctx.provider.clone())
            .with_protocol_versions(&ctx.versions)
            .map_err(|e| format!("TLS settings rustls refuses: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match &self.verify {
            ServerVerify::None => Arc::new(AcceptAny(ctx.provider.clone())),
            ServerVerify::Required { ca_file } => {
                let path = if ca_file.as_os_str() == "@system-ca" {
                    system_ca()
                } else {
                    ca_file.clone()
                };
                let mut roots = RootCertStore::empty();
                for c in certs::load_ca_file(&path).map_err(|e| format!("ca-file {e}"))? {
                    roots
                        .add(c)
                        .map_err(|e| format!("ca-file '{}': {e}", path.display()))?;
                }
                let inner = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    ctx.provider.clone(),
                )
                .build()
                .map_err(|e| format!("server verification: {e}"))?;
                Arc::new(ChainOnly {
                    inner,
                    check_name: self.sni.is_some() || self.verifyhost.is_some(),
                })
            }
        };
        let mut cfg = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        cfg.alpn_protocols = ctx.alpn;
        if self.no_reuse {
            cfg.resumption = rustls::client::Resumption::disabled();
        }
        Ok(Arc::new(cfg))
    }

    /// The name to verify and send: `verifyhost`, else the SNI, else the address
    /// (rustls sends no SNI for an address).
    pub fn server_name(&self, sni: Option<&str>, addr: std::net::IpAddr) -> ServerName<'static> {
        let name = self.verifyhost.as_deref().or(sni);
        name.and_then(|n| ServerName::try_from(n.to_string()).ok())
            .unwrap_or(ServerName::IpAddress(addr.into()))
    }
}

/// Opens TLS to a server over `io`, finishing by `deadline`.
pub async fn connect<S>(
    io: S,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    deadline: Instant,
) -> io::Result<ClientTls<S>>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    let conn = ClientConnection::new(config, name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stream = TlsStream::new(io, conn);
    match monoio::time::timeout_at(deadline, stream.handshake()).await {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}
