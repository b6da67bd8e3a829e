//! What a TLS connection remembers of its handshake, for rule fetches (`ssl_fc`,
//! `ssl_fc_sni`, `ssl_fc_protocol`, `ssl_fc_cipher`, `ssl_fc_alpn`, `ssl_c_used`,
//! `ssl_c_verify`, `ssl_c_s_dn`) and log lines. Filled once per handshake.

use rustls::{ProtocolVersion, ServerConnection};

use super::suites::openssl_name;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The server name the client asked for (`ssl_fc_sni`).
    pub sni: Option<Box<str>>,
    /// `TLSv1.2`, `TLSv1.3` (`ssl_fc_protocol`).
    pub protocol: &'static str,
    /// OpenSSL's name of the suite (`ssl_fc_cipher`).
    pub cipher: &'static str,
    /// The protocol ALPN settled on (`ssl_fc_alpn`), empty if none.
    pub alpn: Box<[u8]>,
    /// The client sent a certificate (`ssl_c_used`).
    pub client_cert: bool,
    /// The client certificate's verification result (`ssl_c_verify`): 0 when it
    /// verified. A certificate that does not verify fails the handshake, so an
    /// established connection always reads 0 here, as HAProxy without
    /// `crt-ignore-err`/`ca-ignore-err`.
    pub verify: u32,
    /// The client certificate's subject DN (`ssl_c_s_dn`), `/C=../CN=..`.
    pub client_dn: Option<Box<str>>,
    /// The session was resumed (`ssl_fc_is_resumed`).
    pub resumed: bool,
}

impl TlsInfo {
    pub fn from_server(conn: &ServerConnection) -> TlsInfo {
        let peer = conn.peer_certificates().and_then(|c| c.first());
        TlsInfo {
            sni: conn.server_name().map(Into::into),
            protocol: conn.protocol_version().map_or("", protocol_name),
            cipher: conn
                .negotiated_cipher_suite()
                .map_or("", |s| openssl_name(s.suite())),
            alpn: conn.alpn_protocol().unwrap_or_default().into(),
            client_cert: peer.is_some(),
            verify: 0,
            client_dn: peer.and_then(|der| {
                use x509_parser::prelude::{FromDer, X509Certificate};
                X509Certificate::from_der(der)
                    .ok()
                    .map(|(_, c)| super::certs::openssl_dn(c.subject()).into())
            }),
            resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }
}

/// What the rule language reads of a client connection (`ssl_fc*`, `ssl_c_*`, the
/// log's `%sslv`/`%sslc`), built once after the handshake. ALPN is `None` when none
/// was agreed (the fetch then finds nothing, as in HAProxy); `ssl_c_verify` is 0: a
/// client certificate that does not verify fails the handshake.
pub fn facts(conn: &ServerConnection) -> crate::rules::TlsFacts {
    let client_cert = conn.peer_certificates().and_then(|c| c.first()).map(|der| {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let parsed = X509Certificate::from_der(der).ok().map(|(_, c)| c);
        let dn = |f: fn(&X509Certificate<'_>) -> String| {
            parsed.as_ref().map(f).unwrap_or_default().into_boxed_str()
        };
        crate::rules::ClientCert {
            subject_dn: dn(|c| super::certs::openssl_dn(c.subject())),
            issuer_dn: dn(|c| super::certs::openssl_dn(c.issuer())),
            serial: parsed
                .as_ref()
                .map(|c| c.raw_serial().into())
                .unwrap_or_default(),
            der: der.as_ref().into(),
            verify: 0,
        }
    });
    crate::rules::TlsFacts {
        sni: conn.server_name().map(Into::into),
        protocol: conn.protocol_version().map(protocol_name),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| openssl_name(s.suite()).into()),
        alpn: conn.alpn_protocol().map(Into::into),
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        client_cert,
    }
}

/// A protocol version as OpenSSL names it.
pub fn protocol_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        ProtocolVersion::TLSv1_1 => "TLSv1.1",
        ProtocolVersion::TLSv1_0 => "TLSv1",
        ProtocolVersion::SSLv3 => "SSLv3",
        _ => "unknown",
    }
}
