//! The certificate store of one TLS bind: every certificate with the TLS context
//! (option set) it is served with, and the SNI index. Built once at load, immutable,
//! shared read-only by the shards (`Arc`).
//!
//! Lookup follows HAProxy: exact names first, then wildcards (`*.example.com`
//! covers exactly one label: `www.example.com`, not `a.b.example.com` nor
//! `example.com`); among the certificates of the first stage that matched, ECDSA when
//! the client offers an ECDSA signature scheme, else RSA, else any. No match: the
//! default certificate (the first loaded, or `default-crt`), or nothing with
//! `strict-sni` (the handshake then fails with an alert).
//!
//! A `crt-list` line's SNI filters replace the certificate's own names. A negative
//! filter `!name` means the line's certificate is never chosen for `name` (the usual
//! use: `*.example.com !admin.example.com`); such a client gets another match or the
//! default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::SignatureScheme;

use super::certs::{self, CertError, KeyKind, LoadedCert};

/// Client-certificate verification (`verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    #[default]
    None,
    Optional,
    Required,
}

/// A protocol version as HAProxy names it (`ssl-min-ver TLSv1.2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Ssl3,
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn parse(s: &str) -> Option<TlsVersion> {
        Some(match s {
            "SSLv3" => TlsVersion::Ssl3,
            "TLSv1.0" => TlsVersion::Tls10,
            "TLSv1.1" => TlsVersion::Tls11,
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Ssl3 => "SSLv3",
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// The options of one TLS context, as written (paths not yet read). A crt-list line's
/// options are laid over its bind's with `over`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslConf {
    /// `alpn`: protocols in preference order; `None` = not set (HAProxy 2.6: no ALPN).
    pub alpn: Option<Vec<String>>,
    pub verify: Option<Verify>,
    pub ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    pub min_ver: Option<TlsVersion>,
    pub max_ver: Option<TlsVersion>,
    /// `no-tlsv10` ... `no-tlsv13`, `force-*` turned into a range at parse time.
    pub no_versions: Vec<TlsVersion>,
    /// OpenSSL cipher list for TLS ≤ 1.2 (`ciphers`).
    pub ciphers: Option<String>,
    /// OpenSSL TLS 1.3 suite list (`ciphersuites`).
    pub ciphersuites: Option<String>,
    /// `curves` (`ecdhe` names a single one).
    pub curves: Option<String>,
}

impl SslConf {
    /// `self` with every option `line` sets replacing it.
    pub fn over(&self, line: &SslConf) -> SslConf {
        let mut no_versions = self.no_versions.clone();
        no_versions.extend(line.no_versions.iter().copied());
        SslConf {
            alpn: line.alpn.clone().or_else(|| self.alpn.clone()),
            verify: line.verify.or(self.verify),
            ca_file: line.ca_file.clone().or_else(|| self.ca_file.clone()),
            crl_file: line.crl_file.clone().or_else(|| self.crl_file.clone()),
            min_ver: line.min_ver.or(self.min_ver),
            max_ver: line.max_ver.or(self.max_ver),
            no_versions,
            ciphers: line.ciphers.clone().or_else(|| self.ciphers.clone()),
            ciphersuites: line
                .ciphersuites
                .clone()
                .or_else(|| self.ciphersuites.clone()),
            curves: line.curves.clone().or_else(|| self.curves.clone()),
        }
    }
}

/// One `crt-list` line: a certificate file (or directory), its options, its filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrtListLine {
    pub line: usize,
    pub crt: PathBuf,
    pub conf: SslConf,
    /// Names the certificate answers for instead of its own (`*.x` allowed).
    pub filters: Vec<String>,
    /// Names it never answers for (`!name`).
    pub negative: Vec<String>,
}

/// A certificate in the store.
#[derive(Debug, Clone)]
pub struct Entry {
    pub cert: Arc<LoadedCert>,
    /// Index of its TLS context (0: the bind's own options).
    pub ctx: usize,
    /// The names it was indexed under instead of its own (a crt-list line's filters).
    filters: Vec<String>,
    negative: Vec<String>,
}

/// The certificates of one bind and their SNI index.
#[derive(Debug, Clone, Default)]
pub struct CertStore {
    pub entries: Vec<Entry>,
    exact: HashMap<String, Vec<u32>>,
    /// Keyed by what follows the `*`: `.example.com`.
    wild: HashMap<String, Vec<u32>>,
    pub default: Option<usize>,
    pub strict_sni: bool,
}

/// What the client offered that selection looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hello<'a> {
    pub sni: Option<&'a str>,
    pub schemes: &'a [SignatureScheme],
}

impl Hello<'_> {
    fn offers(&self, kind: KeyKind) -> bool {
        self.schemes.iter().any(|s| match kind {
            KeyKind::Ecdsa => matches!(
                s,
                SignatureScheme::ECDSA_NISTP256_SHA256
                    | SignatureScheme::ECDSA_NISTP384_SHA384
                    | SignatureScheme::ECDSA_NISTP521_SHA512
            ),
            KeyKind::Rsa => matches!(
                s,
                SignatureScheme::RSA_PSS_SHA256
                    | SignatureScheme::RSA_PSS_SHA384
                    | SignatureScheme::RSA_PSS_SHA512
                    | SignatureScheme::RSA_PKCS1_SHA256
                    | SignatureScheme::RSA_PKCS1_SHA384
                    | SignatureScheme::RSA_PKCS1_SHA512
            ),
            KeyKind::Ed25519 => *s == SignatureScheme::ED25519,
            KeyKind::Other => false,
        })
    }
}

impl CertStore {
    /// Adds a certificate served with context `ctx`, indexed under `filters` (its own
    /// names when empty) except the `negative` ones.
    pub fn add(
        &mut self,
        cert: Arc<LoadedCert>,
        ctx: usize,
        filters: &[String],
        negative: &[String],
    ) {
        let idx = self.entries.len() as u32;
        let names: Vec<String> = if filters.is_empty() {
            cert.names.clone()
        } else {
            filters.iter().map(|f| f.to_ascii_lowercase()).collect()
        };
        for n in names {
            match n.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => {
                    self.wild.entry(suffix.to_string()).or_default().push(idx)
                }
                _ => self.exact.entry(n).or_default().push(idx),
            }
        }
        if self.default.is_none() {
            self.default = Some(idx as usize);
        }
        self.entries.push(Entry {
            cert,
            ctx,
            filters: filters.to_vec(),
            negative: negative.iter().map(|n| n.to_ascii_lowercase()).collect(),
        });
    }

    /// The certificates loaded from `path`, if any.
    pub fn uses(&self, path: &Path) -> bool {
        self.entries.iter().any(|e| e.cert.path == path)
    }

    /// The same store with `cert` in place of the certificate(s) loaded from `path`
    /// (`commit ssl cert`): same order, contexts, filters and default; the names of
    /// an unfiltered entry are the new certificate's. `None`: no such certificate.
    pub fn with_cert(&self, path: &Path, cert: &Arc<LoadedCert>) -> Option<CertStore> {
        if !self.uses(path) {
            return None;
        }
        let mut out = CertStore {
            strict_sni: self.strict_sni,
            ..CertStore::default()
        };
        for e in &self.entries {
            let c = if e.cert.path == path {
                cert.clone()
            } else {
                e.cert.clone()
            };
            out.add(c, e.ctx, &e.filters, &e.negative);
        }
        out.default = self.default;
        Some(out)
    }

    /// The entry to serve this client, or `None` (strict-sni without a match).
    pub fn select(&self, hello: &Hello<'_>) -> Option<&Entry> {
        if let Some(sni) = hello.sni {
            let mut lower = [0u8; 256];
            let name = ascii_lower(sni, &mut lower);
            if let Some(e) = self.best(self.exact.get(name), name, hello) {
                return Some(e);
            }
            if let Some(dot) = name.find('.') {
                if let Some(e) = self.best(self.wild.get(&name[dot..]), name, hello) {
                    return Some(e);
                }
            }
        }
        if self.strict_sni {
            return None;
        }
        self.default.map(|d| &self.entries[d])
    }

    fn best(&self, candidates: Option<&Vec<u32>>, name: &str, hello: &Hello<'_>) -> Option<&Entry> {
        let usable = candidates?
            .iter()
            .map(|&i| &self.entries[i as usize])
            .filter(|e| !e.negative.iter().any(|n| n == name));
        let (mut ecdsa, mut rsa, mut any) = (None, None, None);
        for e in usable {
            match e.cert.kind {
                KeyKind::Ecdsa if hello.offers(KeyKind::Ecdsa) => {
                    ecdsa = ecdsa.or(Some(e));
                }
                KeyKind::Rsa if hello.offers(KeyKind::Rsa) => rsa = rsa.or(Some(e)),
                _ => any = any.or(Some(e)),
            }
        }
        ecdsa.or(rsa).or(any)
    }

    /// Makes the entry loaded from `path` the default (`default-crt`).
    pub fn set_default(&mut self, path: &Path) -> bool {
        match self.entries.iter().position(|e| e.cert.path == path) {
            Some(i) => {
                self.default = Some(i);
                true
            }
            None => false,
        }
    }
}

/// `name` lower-cased, without allocating for names up to 256 bytes.
fn ascii_lower<'a>(name: &'a str, buf: &'a mut [u8; 256]) -> &'a str {
    if !name.bytes().any(|b| b.is_ascii_uppercase()) || name.len() > buf.len() {
        return name;
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    // Only ASCII letters changed, so this is still UTF-8.
    std::str::from_utf8(out).unwrap_or(name)
}

/// A `crt-list` file: one certificate per line, `#` comments, options in brackets.
pub fn parse_crt_list(text: &str) -> Result<Vec<CrtListLine>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (crt, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let mut rest = rest.trim();
        let mut entry = CrtListLine {
            line,
            crt: PathBuf::from(crt),
            ..CrtListLine::default()
        };
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                return Err(format!("line {line}: missing ']' after the options"));
            };
            let words: Vec<&str> = opts.split_whitespace().collect();
            parse_ssl_options(&words, &mut entry.conf).map_err(|e| format!("line {line}: {e}"))?;
            rest = after.trim();
        }
        for f in rest.split_whitespace() {
            match f.strip_prefix('!') {
                Some(n) => entry.negative.push(n.to_ascii_lowercase()),
                None => entry.filters.push(f.to_ascii_lowercase()),
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// The options a crt-list line may carry (HAProxy's "ssl bind conf" subset).
pub fn parse_ssl_options(words: &[&str], conf: &mut SslConf) -> Result<(), String> {
    let mut it = words.iter();
    while let Some(&w) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .map(|v| v.to_string())
                .ok_or_else(|| format!("'{what}' expects a value"))
        };
        match w {
            "alpn" => conf.alpn = Some(parse_alpn(&value(w)?)?),
            "verify" => conf.verify = Some(parse_verify(&value(w)?)?),
            "ca-file" => conf.ca_file = Some(value(w)?.into()),
            "crl-file" => conf.crl_file = Some(value(w)?.into()),
            "ssl-min-ver" | "ssl-max-ver" => {
                let v = value(w)?;
                let ver = TlsVersion::parse(&v).ok_or_else(|| {
                    format!("'{w}': unknown version '{v}' (SSLv3, TLSv1.0 ... TLSv1.3)")
                })?;
                if w == "ssl-min-ver" {
                    conf.min_ver = Some(ver)
                } else {
                    conf.max_ver = Some(ver)
                }
            }
            "ciphers" => conf.ciphers = Some(value(w)?),
            "ciphersuites" => conf.ciphersuites = Some(value(w)?),
            "curves" | "ecdhe" => conf.curves = Some(value(w)?),
            other => return Err(format!("unsupported crt-list option '{other}'")),
        }
    }
    Ok(())
}

/// `h2,http/1.1` → the protocol names.
pub fn parse_alpn(v: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = v.split(',').map(str::to_string).collect();
    if list.iter().any(|p| p.is_empty() || p.len() > 255) {
        return Err(format!("'alpn': invalid protocol list '{v}'"));
    }
    Ok(list)
}

pub fn parse_verify(v: &str) -> Result<Verify, String> {
    match v {
        "none" => Ok(Verify::None),
        "optional" => Ok(Verify::Optional),
        "required" => Ok(Verify::Required),
        _ => Err(format!(
            "'verify' expects none, optional or required, got '{v}'"
        )),
    }
}

/// Reads `path` (a file or directory) into the store with context `ctx`.
pub fn load_into(
    store: &mut CertStore,
    path: &Path,
    ctx: usize,
    filters: &[String],
    negative: &[String],
) -> Result<(), CertError> {
    for c in certs::load_path(path)? {
        store.add(Arc::new(c), ctx, filters, negative);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    fn cert(sans: &[&str], cn: &str, rsa: bool) -> Arc<LoadedCert> {
        let key = if rsa {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap()
        } else {
            rcgen::KeyPair::generate().unwrap()
        };
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let c = p.self_signed(&key).unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let path = PathBuf::from(format!("{cn}.pem"));
        Arc::new(
            certs::certified(&path, vec![CertificateDer::from(c.der().to_vec())], der).unwrap(),
        )
    }

    const ECDSA_AND_RSA: &[SignatureScheme] = &[
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::RSA_PSS_SHA256,
    ];
    const RSA_ONLY: &[SignatureScheme] = &[SignatureScheme::RSA_PSS_SHA256];

    fn pick<'a>(
        s: &'a CertStore,
        sni: Option<&str>,
        schemes: &[SignatureScheme],
    ) -> Option<&'a str> {
        s.select(&Hello { sni, schemes })
            .map(|e| e.cert.path.to_str().unwrap())
    }

    #[test]
    fn names_come_from_sans_and_cn() {
        let c = cert(&["www.a.test", "*.b.test"], "a.test", false);
        assert_eq!(c.names, vec!["www.a.test", "*.b.test", "a.test"]);
        assert_eq!(c.subject, "/CN=a.test");
        assert_eq!(c.kind, KeyKind::Ecdsa);
    }

    #[test]
    fn exact_then_one_label_wildcard_then_default() {
        let mut s = CertStore::default();
        s.add(cert(&[], "first", true), 0, &[], &[]);
        s.add(cert(&["*.w.test"], "wild", false), 0, &[], &[]);
        s.add(cert(&["x.w.test"], "exact", false), 0, &[], &[]);
        let cases: &[(Option<&str>, &str)] = &[
            (Some("x.w.test"), "exact.pem"),
            (Some("X.W.Test"), "exact.pem"),
            (Some("y.w.test"), "wild.pem"),
            (Some("a.y.w.test"), "first.pem"),
            (Some("w.test"), "first.pem"),
            (Some("first"), "first.pem"),
            (Some("nothing"), "first.pem"),
            (None, "first.pem"),
        ];
        for (sni, want) in cases {
            assert_eq!(pick(&s, *sni, ECDSA_AND_RSA), Some(*want), "{sni:?}");
        }
        s.strict_sni = true;
        assert_eq!(pick(&s, Some("nothing"), ECDSA_AND_RSA), None);
        assert_eq!(pick(&s, None, ECDSA_AND_RSA), None);
        assert_eq!(pick(&s, Some("y.w.test"), ECDSA_AND_RSA), Some("wild.pem"));
    }

    #[test]
    fn ecdsa_when_offered_rsa_otherwise() {
        let mut s = CertStore::default();
        s.add(cert(&["a.test"], "rsa", true), 0, &[], &[]);
        s.add(cert(&["a.test"], "ecdsa", false), 0, &[], &[]);
        assert_eq!(pick(&s, Some("a.test"), ECDSA_AND_RSA), Some("ecdsa.pem"));
        assert_eq!(pick(&s, Some("a.test"), RSA_ONLY), Some("rsa.pem"));
    }

    #[test]
    fn filters_replace_names_and_negative_filters_exclude() {
        let mut s = CertStore::default();
        s.add(cert(&[], "default", true), 0, &[], &[]);
        let wild = cert(&["ignored.test"], "w", false);
        s.add(wild, 1, &["*.ex.test".into()], &["admin.ex.test".into()]);
        assert_eq!(pick(&s, Some("www.ex.test"), ECDSA_AND_RSA), Some("w.pem"));
        assert_eq!(
            pick(&s, Some("admin.ex.test"), ECDSA_AND_RSA),
            Some("default.pem")
        );
        assert_eq!(
            pick(&s, Some("ignored.test"), ECDSA_AND_RSA),
            Some("default.pem")
        );
        assert_eq!(
            s.select(&Hello {
                sni: Some("www.ex.test"),
                schemes: ECDSA_AND_RSA
            })
            .unwrap()
            .ctx,
            1
        );
        // Negative filters alone remove names from the certificate's own.
        let mut t = CertStore::default();
        t.add(cert(&[], "default", true), 0, &[], &[]);
        t.add(
            cert(&["a.test", "b.test"], "ab", false),
            0,
            &[],
            &["b.test".into()],
        );
        assert_eq!(pick(&t, Some("a.test"), ECDSA_AND_RSA), Some("ab.pem"));
        assert_eq!(pick(&t, Some("b.test"), ECDSA_AND_RSA), Some("default.pem"));
    }

    #[test]
    fn default_crt_overrides_the_first_loaded() {
        let mut s = CertStore::default();
        s.add(cert(&[], "one", false), 0, &[], &[]);
        s.add(cert(&[], "two", false), 0, &[], &[]);
        assert!(s.set_default(Path::new("two.pem")));
        assert!(!s.set_default(Path::new("three.pem")));
        assert_eq!(pick(&s, Some("x"), ECDSA_AND_RSA), Some("two.pem"));
    }

    #[test]
    fn crt_list_lines() {
        let text = "\
# comment
a.pem
b.pem [alpn h2,http/1.1 verify required ca-file ca.pem ssl-min-ver TLSv1.3] b.test *.b.test !x.b.test

c.pem [ciphers ECDHE-RSA-AES128-GCM-SHA256 curves X25519:P-256]
d.pem !only.neg
";
        let l = parse_crt_list(text).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].crt, PathBuf::from("a.pem"));
        assert_eq!(l[0].conf, SslConf::default());
        assert_eq!(l[1].line, 3);
        assert_eq!(l[1].conf.alpn, Some(vec!["h2".into(), "http/1.1".into()]));
        assert_eq!(l[1].conf.verify, Some(Verify::Required));
        assert_eq!(l[1].conf.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(l[1].conf.min_ver, Some(TlsVersion::Tls13));
        assert_eq!(l[1].filters, vec!["b.test", "*.b.test"]);
        assert_eq!(l[1].negative, vec!["x.b.test"]);
        assert_eq!(l[2].conf.curves.as_deref(), Some("X25519:P-256"));
        assert!(l[3].filters.is_empty());
        assert_eq!(l[3].negative, vec!["only.neg"]);
        for (bad, why) in [
            ("a.pem [verify sometimes]", "line 1: 'verify'"),
            ("a.pem [alpn h2", "missing ']'"),
            (
                "\na.pem [frobnicate]",
                "line 2: unsupported crt-list option 'frobnicate'",
            ),
            ("a.pem [ssl-min-ver TLSv9]", "unknown version"),
        ] {
            let e = parse_crt_list(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn line_options_override_the_binds() {
        let bind = SslConf {
            alpn: Some(vec!["http/1.1".into()]),
            ciphers: Some("HIGH".into()),
            ..SslConf::default()
        };
        let line = SslConf {
            alpn: Some(vec!["h2".into()]),
            verify: Some(Verify::Optional),
            ..SslConf::default()
        };
        let m = bind.over(&line);
        assert_eq!(m.alpn, Some(vec!["h2".into()]));
        assert_eq!(m.verify, Some(Verify::Optional));
        assert_eq!(m.ciphers.as_deref(), Some("HIGH"));
    }
}
