//! Certificate files → certified keys and the names SNI is matched against. Runs at
//! load (config check, start, reload), never on a shard.
//!
//! As HAProxy: `crt FILE` holds the certificate, its chain and usually the key; a key
//! missing from the file is read from `FILE.key`, then from the file name with its
//! `crt DIR` loads every file of the directory in name order, except the companions
//! HAProxy also skips (`.key`, `.ocsp`, `.issuer`, `.sctl`) and dot files. (`.ocsp`
//! stapling files are not read: Let's Encrypt, the largest CA, ended OCSP in 2025.) Names are the certificate's DNS SANs *and* its
//! subject CNs, lower-cased (rustls' own SNI resolver only knows SANs).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::SignatureAlgorithm;

/// A certificate file that could not be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}': {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for CertError {}

fn fail(path: &Path, reason: impl fmt::Display) -> CertError {
    CertError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The key's algorithm, for choosing ECDSA over RSA when the client offers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ecdsa,
    Rsa,
    Ed25519,
    Other,
}

/// One certificate with its key, ready for rustls, and what HAProxy shows about it.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// The file as the config named it (`show ssl cert` and logs use it).
    pub path: PathBuf,
    pub certified: Arc<CertifiedKey>,
    pub kind: KeyKind,
    /// DNS SANs then subject CNs, lower-cased, without duplicates.
    pub names: Vec<String>,
    /// Subject DN as OpenSSL prints it with `-nameopt compat`, e.g. `/CN=a.test`.
    pub subject: String,
    /// Serial number in upper-case hex.
    pub serial: String,
}

/// Reads `path`: a file, or every certificate file of a directory.
pub fn load_path(path: &Path) -> Result<Vec<LoadedCert>, CertError> {
    let meta = std::fs::metadata(path).map_err(|e| fail(path, e))?;
    if !meta.is_dir() {
        return load_file(path).map(|c| vec![c]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| fail(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_cert_file(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail(path, "no certificate file in this directory"));
    }
    files.iter().map(|f| load_file(f)).collect()
}

fn is_cert_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let companion = [".key", ".ocsp", ".issuer", ".sctl"]
        .iter()
        .any(|ext| name.ends_with(ext));
    !name.starts_with('.') && !companion && p.is_file()
}

/// Reads one PEM file (certificate, chain, and the key here or in its `.key` file).
pub fn load_file(path: &Path) -> Result<LoadedCert, CertError> {
    let pem = std::fs::read(path).map_err(|e| fail(path, e))?;
    let chain = certs_from_pem(path, &pem)?;
    if chain.is_empty() {
        return Err(fail(path, "no certificate found in the file"));
    }
    let key = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => key_beside(path)?,
        Err(e) => return Err(fail(path, format!("unreadable private key: {e:?}"))),
    };
    certified(path, chain, key)
}

/// The certificates and the key (if any) of a PEM text (`set ssl cert`'s payload).
pub fn parse_pem(
    path: &Path,
    pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, Option<PrivateKeyDer<'static>>), CertError> {
    let chain = certs_from_pem(path, pem)?;
    let key = match PrivateKeyDer::from_pem_slice(pem) {
        Ok(k) => Some(k),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => None,
        Err(e) => return Err(fail(path, format!("unreadable private key: {e:?}"))),
    };
    Ok((chain, key))
}

/// Builds a certificate from its parts (also used by `set ssl cert`).
pub fn certified(
    path: &Path,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<LoadedCert, CertError> {
    let signing = super::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| fail(path, format!("unusable private key: {e}")))?;
    let kind = match signing.algorithm() {
        SignatureAlgorithm::ECDSA => KeyKind::Ecdsa,
        SignatureAlgorithm::RSA => KeyKind::Rsa,
        SignatureAlgorithm::ED25519 => KeyKind::Ed25519,
        _ => KeyKind::Other,
    };
    let leaf = chain[0].clone();
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        // The provider cannot tell (no SPKI for this key type): trust the file.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err(fail(path, "the private key does not match the certificate")),
    }
    let facts = CertFacts::parse(&leaf).map_err(|e| fail(path, e))?;
    Ok(LoadedCert {
        path: path.to_path_buf(),
        certified: Arc::new(certified),
        kind,
        names: facts.names,
        subject: facts.subject,
        serial: facts.serial,
    })
}

fn certs_from_pem(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(path, format!("unreadable certificate: {e:?}")))
}

/// The key of a certificate file that has none: `FILE.key`.
fn key_beside(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let mut with = path.as_os_str().to_owned();
    with.push(".key");
    let key = PathBuf::from(with);
    if !key.is_file() {
        return Err(fail(
            path,
            format!("no private key in the file, nor in '{}'", key.display()),
        ));
    }
    PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| fail(&key, format!("unreadable private key: {e:?}")))
}

/// Reads every certificate of a CA file (`ca-file`).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem = std::fs::read(path).map_err(|e| fail(path, e))?;
    let certs = certs_from_pem(path, &pem)?;
    if certs.is_empty() {
        return Err(fail(path, "no certificate found in the CA file"));
    }
    Ok(certs)
}

/// Reads every CRL of a file (`crl-file`).
pub fn load_crl_file(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    let pem = std::fs::read(path).map_err(|e| fail(path, e))?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(path, format!("unreadable CRL: {e:?}")))?;
    if crls.is_empty() {
        return Err(fail(path, "no CRL found in the file"));
    }
    Ok(crls)
}

/// What the rule fetches and `show ssl cert` read from a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFacts {
    pub names: Vec<String>,
    pub subject: String,
    pub serial: String,
}

impl CertFacts {
    pub fn parse(der: &[u8]) -> Result<CertFacts, String> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("invalid certificate: {e}"))?;
        let mut names: Vec<String> = Vec::new();
        let mut add = |n: &str| {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for g in &san.value.general_names {
                if let GeneralName::DNSName(d) = g {
                    add(d);
                }
            }
        }
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                add(s);
            }
        }
        Ok(CertFacts {
            names,
            subject: openssl_dn(cert.subject()),
            serial: cert.raw_serial_as_string().replace(':', "").to_uppercase(),
        })
    }
}

/// A DN the way HAProxy's `ssl_c_s_dn` prints it: `/C=FR/O=x/CN=name`.
pub fn openssl_dn(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(
                attr.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_string)
            .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| String::from_utf8_lossy(attr.as_slice()).into_owned());
            out.push('/');
            out.push_str(&key);
            out.push('=');
            out.push_str(&value);
        }
    }
    out
}
