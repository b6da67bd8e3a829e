//! TLS settings of both config readers → the model: a bind's `ssl` options become a
//! `tls::BindTlsSpec`, a server's a `tls::ClientSettings`, and loading them reads
//! every file and checks every option, so a bad certificate, key, CA, CRL, cipher
//! list or ticket-key file is an error at load (`ringlb -c` included).
//!
//! TOML (`[frontend.NAME.tls]`, `backend.NAME.server[].tls`) is strict: a cipher or
//! curve name ringlb cannot offer is an error there, where haproxy.cfg warns.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::tls::{
    BindTls, BindTlsSpec, ClientSettings, CrtSource, Findings, ServerVerify, SniSource, SslConf,
    TlsVersion, UpstreamTls,
};

/// HAProxy's `tune.ssl.lifetime` default, seconds.
pub const DEFAULT_LIFETIME: u32 = 300;

/// Loads a bind; findings are added to `errors` / `warnings`.
pub fn load_bind(
    spec: &BindTlsSpec,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<Arc<BindTls>> {
    let keys = crate::tls::tickets::process_keys(spec.lifetime);
    let mut f = Findings::default();
    let bind = BindTls::load(spec, &keys, &mut f);
    errors.extend(f.errors);
    warnings.extend(f.warnings);
    bind
}

/// Builds a server's TLS client config.
pub fn load_server(
    settings: ClientSettings,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<Arc<UpstreamTls>> {
    match settings.build(warnings) {
        Ok(config) => Some(Arc::new(UpstreamTls { settings, config })),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// `[frontend.NAME.tls]`: TLS on the frontend's binds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Certificate files or directories, in order (the first is the default).
    #[serde(default)]
    pub crt: Vec<String>,
    #[serde(default)]
    pub crt_list: Vec<String>,
    pub default_crt: Option<String>,
    #[serde(default)]
    pub strict_sni: bool,
    /// Default `["h2", "http/1.1"]` in mode http, `["http/1.1"]` in mode tcp.
    pub alpn: Option<Vec<String>>,
    pub verify: Option<String>,
    pub ca_file: Option<String>,
    pub crl_file: Option<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub ciphers: Option<String>,
    pub ciphersuites: Option<String>,
    pub curves: Option<String>,
    /// Session tickets (default on).
    pub tickets: Option<bool>,
    pub ticket_keys: Option<String>,
}

/// `backend.NAME.server[].tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    /// `"required"` (default) or `"none"`.
    pub verify: Option<String>,
    pub ca_file: Option<String>,
    /// A name, sent as SNI and checked against the certificate.
    pub sni: Option<String>,
    pub alpn: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    /// Health checks over TLS too (default: true).
    pub check: Option<bool>,
}

fn version(v: &Option<String>, key: &str, errs: &mut Vec<(String, String)>) -> Option<TlsVersion> {
    let v = v.as_ref()?;
    let t = TlsVersion::parse(v);
    if t.is_none() {
        errs.push((
            key.into(),
            format!("unknown version {v:?} (\"TLSv1.2\" or \"TLSv1.3\")"),
        ));
    }
    t
}

/// The TOML table → a spec; errors are `(key, message)`.
/// `http`: the frontend is in mode http, where the default ALPN list offers `h2`.
pub fn toml_bind_spec(raw: &RawTls, http: bool) -> Result<BindTlsSpec, Vec<(String, String)>> {
    let mut errs = Vec::new();
    let verify = match raw.verify.as_deref().map(crate::tls::store::parse_verify) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errs.push(("verify".into(), e));
            None
        }
    };
    let mut crts: Vec<CrtSource> = raw.crt.iter().map(|c| CrtSource::Crt(c.into())).collect();
    crts.extend(raw.crt_list.iter().map(|c| CrtSource::List(c.into())));
    if crts.is_empty() {
        errs.push((
            "crt".into(),
            "a TLS frontend needs a certificate (crt or crt_list)".into(),
        ));
    }
    let conf = SslConf {
        alpn: Some(raw.alpn.clone().unwrap_or_else(|| {
            let default: &[&str] = if http {
                &["h2", "http/1.1"]
            } else {
                &["http/1.1"]
            };
            default.iter().map(|p| p.to_string()).collect()
        })),
        verify,
        ca_file: raw.ca_file.as_ref().map(PathBuf::from),
        crl_file: raw.crl_file.as_ref().map(PathBuf::from),
        min_ver: version(&raw.min_version, "min_version", &mut errs),
        max_ver: version(&raw.max_version, "max_version", &mut errs),
        no_versions: Vec::new(),
        ciphers: raw.ciphers.clone(),
        ciphersuites: raw.ciphersuites.clone(),
        curves: raw.curves.clone(),
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(BindTlsSpec {
        crts,
        conf,
        strict_sni: raw.strict_sni,
        default_crt: raw.default_crt.as_ref().map(PathBuf::from),
        no_tls_tickets: raw.tickets == Some(false),
        ticket_keys: raw.ticket_keys.as_ref().map(PathBuf::from),
        no_ca_names: false,
        crt_base: None,
        ca_base: None,
        lifetime: DEFAULT_LIFETIME,
        prefer_client_ciphers: false,
    })
}

/// The TOML table → a server's settings; errors are `(key, message)`.
pub fn toml_server_settings(raw: &RawServerTls) -> Result<ClientSettings, Vec<(String, String)>> {
    let mut errs = Vec::new();
    let verify = match raw.verify.as_deref() {
        None | Some("required") => {
            match &raw.ca_file {
                Some(ca) => ServerVerify::Required { ca_file: ca.into() },
                None => {
                    errs.push(("ca_file".into(), "verify = \"required\" (the default) needs a ca_file (or verify = \"none\")".into()));
                    ServerVerify::None
                }
            }
        }
        Some("none") => ServerVerify::None,
        Some(other) => {
            errs.push((
                "verify".into(),
                format!("expected \"required\" or \"none\", got {other:?}"),
            ));
            ServerVerify::None
        }
    };
    let conf = SslConf {
        alpn: raw.alpn.clone(),
        min_ver: version(&raw.min_version, "min_version", &mut errs),
        max_ver: version(&raw.max_version, "max_version", &mut errs),
        ..SslConf::default()
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(ClientSettings {
        verify,
        sni: raw.sni.clone().map(SniSource::Fixed),
        verifyhost: None,
        conf,
        no_reuse: false,
        check_ssl: raw.check.unwrap_or(true),
        check_sni: raw.sni.clone(),
    })
}

impl super::validate::Validator {
    /// `[frontend.NAME.tls]`, loaded (every file read).
    pub(super) fn frontend_tls(
        &mut self,
        path: &str,
        raw: &RawTls,
        http: bool,
    ) -> Option<std::sync::Arc<crate::tls::BindTls>> {
        match toml_bind_spec(raw, http) {
            Ok(spec) => self.loaded(&format!("{path}.tls"), |e, w| load_bind(&spec, e, w)),
            Err(errs) => {
                for (k, m) in errs {
                    self.err(format!("{path}.tls.{k}"), m);
                }
                None
            }
        }
    }

    /// `server[].tls`, its client config built.
    pub(super) fn server_tls(
        &mut self,
        path: &str,
        raw: &RawServerTls,
    ) -> Option<std::sync::Arc<crate::tls::UpstreamTls>> {
        match toml_server_settings(raw) {
            Ok(s) => self.loaded(&format!("{path}.tls"), |e, w| load_server(s, e, w)),
            Err(errs) => {
                for (k, m) in errs {
                    self.err(format!("{path}.tls.{k}"), m);
                }
                None
            }
        }
    }

    /// Runs a TLS loader; in TOML, what haproxy.cfg would warn about is an error too.
    fn loaded<T>(
        &mut self,
        path: &str,
        load: impl FnOnce(&mut Vec<String>, &mut Vec<String>) -> Option<T>,
    ) -> Option<T> {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let out = load(&mut errors, &mut warnings);
        let clean = errors.is_empty() && warnings.is_empty();
        for m in errors.into_iter().chain(warnings) {
            self.err(path, m);
        }
        out.filter(|_| clean)
    }
}
