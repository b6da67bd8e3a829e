//! haproxy.cfg TLS keywords: the `ssl` options of `bind` and `server` lines (and
//! `default-server`), and the globals `ssl-default-bind-*`, `ssl-default-server-*`,
//! `ssl-server-verify`, `crt-base`, `ca-base`, `tune.ssl.lifetime`. Files are read
//! when the proxies are assembled, each error with its line.

use std::path::{Path, PathBuf};

use super::*;
use crate::tls::{
    BindTlsSpec, ClientSettings, CrtSource, ServerVerify, SniSource, SslConf, TlsVersion,
    UpstreamTls,
};

/// The `global` section's TLS settings.
#[derive(Clone)]
pub(super) struct SslGlobals {
    bind: SslConf,
    bind_no_tickets: bool,
    bind_prefer_client: bool,
    server: SslConf,
    server_no_reuse: bool,
    /// `ssl-server-verify none`.
    server_verify_none: bool,
    crt_base: Option<PathBuf>,
    ca_base: Option<PathBuf>,
    lifetime: u32,
}

impl Default for SslGlobals {
    fn default() -> Self {
        SslGlobals {
            bind: SslConf::default(),
            bind_no_tickets: false,
            bind_prefer_client: false,
            server: SslConf::default(),
            server_no_reuse: false,
            server_verify_none: false,
            crt_base: None,
            ca_base: None,
            lifetime: crate::config::tls::DEFAULT_LIFETIME,
        }
    }
}

/// The TLS options of one bind line.
#[derive(Clone, Default)]
pub(super) struct BindSsl {
    pub line: usize,
    pub ssl: bool,
    pub spec: BindTlsSpec,
    /// A TLS option without `ssl` (HAProxy ignores them; so do we, with a warning).
    pub stray: Option<String>,
}

/// The TLS options of a server (or `default-server`) line.
#[derive(Clone, Default)]
pub(super) struct ServerSsl {
    pub ssl: bool,
    /// `verify none|required` (None: `ssl-server-verify`).
    pub verify_required: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub sni: Option<SniSource>,
    pub verifyhost: Option<String>,
    pub conf: SslConf,
    pub no_reuse: bool,
    pub check_ssl: bool,
    pub check_sni: Option<String>,
}

/// `no-tlsv12` → the version; `force-tlsv12` → min = max.
fn version_flag(opt: &str, conf: &mut SslConf) -> bool {
    let v = |s: &str| match s {
        "sslv3" => Some(TlsVersion::Ssl3),
        "tlsv10" => Some(TlsVersion::Tls10),
        "tlsv11" => Some(TlsVersion::Tls11),
        "tlsv12" => Some(TlsVersion::Tls12),
        "tlsv13" => Some(TlsVersion::Tls13),
        _ => None,
    };
    if let Some(ver) = opt.strip_prefix("no-").and_then(v) {
        conf.no_versions.push(ver);
        return true;
    }
    if let Some(ver) = opt.strip_prefix("force-").and_then(v) {
        conf.min_ver = Some(ver);
        conf.max_ver = Some(ver);
        return true;
    }
    false
}

fn based(base: &Option<PathBuf>, p: &str) -> PathBuf {
    match base {
        Some(b) if Path::new(p).is_relative() => b.join(p),
        _ => PathBuf::from(p),
    }
}

impl Mapper<'_> {
    /// An option both `bind` and `ssl-default-bind-options` (and the server side)
    /// accept; `Ok(words taken)`, `Err(())` if not such an option.
    fn conf_option(
        &mut self,
        l: &Line,
        opt: &str,
        value: Option<&String>,
        conf: &mut SslConf,
    ) -> Result<usize, ()> {
        let need = |m: &mut Self| -> Option<String> {
            if value.is_none() {
                m.err(l.line, format!("'{opt}' expects a value"));
            }
            value.cloned()
        };
        match opt {
            "ssl-min-ver" | "ssl-max-ver" => {
                if let Some(v) = need(self) {
                    match TlsVersion::parse(&v) {
                        Some(t) if opt == "ssl-min-ver" => conf.min_ver = Some(t),
                        Some(t) => conf.max_ver = Some(t),
                        None => self.err(l.line, format!("'{opt}': unknown version '{v}' (SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3)")),
                    }
                }
                Ok(2)
            }
            "ciphers" => {
                conf.ciphers = need(self);
                Ok(2)
            }
            "ciphersuites" => {
                conf.ciphersuites = need(self);
                Ok(2)
            }
            "curves" | "ecdhe" => {
                conf.curves = need(self);
                Ok(2)
            }
            "alpn" => {
                if let Some(v) = need(self) {
                    match crate::tls::store::parse_alpn(&v) {
                        Ok(a) => conf.alpn = Some(a),
                        Err(e) => self.err(l.line, e),
                    }
                }
                Ok(2)
            }
            o if version_flag(o, conf) => Ok(1),
            _ => Err(()),
        }
    }

    /// A TLS option of a `bind` line at `w[0]`; `Some(words taken)`, `None` if the
    /// word is not a TLS option.
    pub(super) fn bind_ssl_option(
        &mut self,
        l: &Line,
        w: &[String],
        b: &mut BindSsl,
    ) -> Option<usize> {
        let opt = w[0].as_str();
        let value = w.get(1);
        let base_crt = self.ssl.crt_base.clone();
        let base_ca = self.ssl.ca_base.clone();
        let need = |m: &mut Self| -> Option<String> {
            if value.is_none() {
                m.err(l.line, format!("'{opt}' expects a value"));
            }
            value.cloned()
        };
        let taken = match opt {
            "ssl" => {
                b.ssl = true;
                return Some(1);
            }
            "crt" => {
                if let Some(v) = need(self) {
                    b.spec.crts.push(CrtSource::Crt(based(&base_crt, &v)));
                }
                2
            }
            "crt-list" => {
                if let Some(v) = need(self) {
                    b.spec.crts.push(CrtSource::List(based(&base_crt, &v)));
                }
                2
            }
            "default-crt" => {
                b.spec.default_crt = need(self).map(|v| based(&base_crt, &v));
                2
            }
            "ca-file" => {
                b.spec.conf.ca_file = need(self).map(|v| based(&base_ca, &v));
                2
            }
            "crl-file" => {
                b.spec.conf.crl_file = need(self).map(|v| based(&base_ca, &v));
                2
            }
            "verify" => {
                if let Some(v) = need(self) {
                    match crate::tls::store::parse_verify(&v) {
                        Ok(x) => b.spec.conf.verify = Some(x),
                        Err(e) => self.err(l.line, e),
                    }
                }
                2
            }
            "tls-ticket-keys" => {
                b.spec.ticket_keys = need(self).map(PathBuf::from);
                2
            }
            "strict-sni" => {
                b.spec.strict_sni = true;
                1
            }
            "no-tls-tickets" => {
                b.spec.no_tls_tickets = true;
                1
            }
            "no-ca-names" => {
                b.spec.no_ca_names = true;
                1
            }
            "prefer-client-ciphers" => {
                b.spec.prefer_client_ciphers = true;
                1
            }
            "allow-0rtt" => {
                self.warn(l.line, "bind option 'allow-0rtt' ignored: ringlb does not accept TLS early data (clients send it again after the handshake)");
                1
            }
            "npn" => {
                self.warn(
                    l.line,
                    "bind option 'npn' ignored: NPN is obsolete (rustls has none); use 'alpn'",
                );
                2
            }
            "crt-ignore-err" | "ca-ignore-err" | "ca-verify-file" | "ca-sign-file"
            | "ca-sign-pass" => {
                self.err(
                    l.line,
                    format!("bind option '{opt}' is not supported by ringlb"),
                );
                2
            }
            "generate-certificates" | "no-renegotiation" | "ssl-skip-self-issued-ca" => {
                if opt == "generate-certificates" {
                    self.err(
                        l.line,
                        "bind option 'generate-certificates' is not supported by ringlb",
                    );
                }
                1
            }
            _ => match self.conf_option(l, opt, value, &mut b.spec.conf) {
                Ok(n) => n,
                Err(()) => return None,
            },
        };
        if b.stray.is_none() {
            b.stray = Some(opt.to_string());
        }
        Some(taken)
    }

    /// The TLS keywords of the `global` section; false if `l` is not one.
    pub(super) fn global_ssl(&mut self, l: &Line) -> bool {
        let a = l.args();
        let first = a.first().cloned();
        let need = |m: &mut Self| -> Option<String> {
            if first.is_none() {
                m.err(l.line, format!("'{}' expects a value", l.keyword()));
            }
            first.clone()
        };
        match l.keyword() {
            "ssl-default-bind-ciphers" => self.ssl.bind.ciphers = need(self),
            "ssl-default-bind-ciphersuites" => self.ssl.bind.ciphersuites = need(self),
            "ssl-default-bind-curves" => self.ssl.bind.curves = need(self),
            "ssl-default-server-ciphers" => self.ssl.server.ciphers = need(self),
            "ssl-default-server-ciphersuites" => self.ssl.server.ciphersuites = need(self),
            "ssl-default-server-curves" => self.ssl.server.curves = need(self),
            "ssl-default-bind-options" | "ssl-default-server-options" => {
                let bind = l.keyword() == "ssl-default-bind-options";
                let mut conf = if bind {
                    self.ssl.bind.clone()
                } else {
                    self.ssl.server.clone()
                };
                let mut i = 0;
                while i < a.len() {
                    let (opt, value) = (a[i].as_str(), a.get(i + 1));
                    i += match opt {
                        "no-tls-tickets" if bind => {
                            self.ssl.bind_no_tickets = true;
                            1
                        }
                        "prefer-client-ciphers" if bind => {
                            self.ssl.bind_prefer_client = true;
                            1
                        }
                        "no-tls-tickets" | "no-ssl-reuse" if !bind => {
                            self.ssl.server_no_reuse = true;
                            1
                        }
                        _ => match self.conf_option(l, opt, value, &mut conf) {
                            Ok(n) => n,
                            Err(()) => {
                                self.err(
                                    l.line,
                                    format!("'{}': unknown option '{opt}'", l.keyword()),
                                );
                                1
                            }
                        },
                    };
                }
                if bind {
                    self.ssl.bind = conf;
                } else {
                    self.ssl.server = conf;
                }
            }
            "ssl-server-verify" => match first.as_deref() {
                Some("none") => self.ssl.server_verify_none = true,
                Some("required") => self.ssl.server_verify_none = false,
                _ => self.err(l.line, "'ssl-server-verify' expects 'none' or 'required'"),
            },
            "crt-base" => self.ssl.crt_base = need(self).map(PathBuf::from),
            "ca-base" => self.ssl.ca_base = need(self).map(PathBuf::from),
            "tune.ssl.lifetime" => match first.as_deref().map(parse_time) {
                Some(Ok(d)) if d.as_secs() > 0 && d.as_secs() <= 7 * 86400 => {
                    self.ssl.lifetime = d.as_secs() as u32
                }
                _ => self.err(
                    l.line,
                    "'tune.ssl.lifetime' expects a time between 1s and 7d",
                ),
            },
            "tune.ssl.default-dh-param" => self.warn(
                l.line,
                "'tune.ssl.default-dh-param' ignored: ringlb offers no DHE suites (ECDHE only)",
            ),
            "ssl-load-extra-files" | "ssl-load-extra-del-ext" => self.warn(
                l.line,
                format!(
                    "'{}' ignored: ringlb reads the key from the PEM file or FILE.key only",
                    l.keyword()
                ),
            ),
            "ssl-engine"
            | "ssl-mode-async"
            | "ssl-dh-param-file"
            | "ssl-skip-self-issued-ca"
            | "ssl-propquery"
            | "ssl-provider"
            | "ssl-provider-path" => self.warn(
                l.line,
                format!("'{}' ignored: ringlb uses rustls", l.keyword()),
            ),
            k if k.starts_with("tune.ssl.") => self.warn(
                l.line,
                format!("'{k}' ignored: rustls manages its own buffers and caches"),
            ),
            _ => return false,
        }
        true
    }

    /// Loads a bind line's TLS (with the global defaults under it).
    pub(super) fn load_bind_ssl(
        &mut self,
        b: &BindSsl,
    ) -> Option<std::sync::Arc<crate::tls::BindTls>> {
        if !b.ssl {
            if let Some(opt) = &b.stray {
                self.warn(
                    b.line,
                    format!("bind option '{opt}' ignored: the bind has no 'ssl'"),
                );
            }
            return None;
        }
        let mut spec = b.spec.clone();
        spec.conf = self.ssl.bind.over(&b.spec.conf);
        spec.no_tls_tickets |= self.ssl.bind_no_tickets;
        spec.prefer_client_ciphers |= self.ssl.bind_prefer_client;
        spec.crt_base = self.ssl.crt_base.clone();
        spec.ca_base = self.ssl.ca_base.clone();
        spec.lifetime = self.ssl.lifetime;
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let out = crate::config::tls::load_bind(&spec, &mut errors, &mut warnings);
        for e in errors {
            self.err(b.line, e);
        }
        for w in warnings {
            self.warn(b.line, w);
        }
        out
    }

    /// A TLS option of a `server` / `default-server` line at `w[0]`.
    pub(super) fn server_ssl_option(
        &mut self,
        l: &Line,
        w: &[String],
        s: &mut ServerSsl,
    ) -> Option<usize> {
        let opt = w[0].as_str();
        let value = w.get(1);
        let need = |m: &mut Self| -> Option<String> {
            if value.is_none() {
                m.err(l.line, format!("'{opt}' expects a value"));
            }
            value.cloned()
        };
        let base_ca = self.ssl.ca_base.clone();
        Some(match opt {
            "ssl" => {
                s.ssl = true;
                1
            }
            "no-ssl" => {
                s.ssl = false;
                1
            }
            "check-ssl" => {
                s.check_ssl = true;
                1
            }
            "no-check-ssl" => {
                s.check_ssl = false;
                1
            }
            "verify" => {
                match need(self).as_deref() {
                    Some("none") => s.verify_required = Some(false),
                    Some("required") => s.verify_required = Some(true),
                    Some(v) => self.err(
                        l.line,
                        format!("server 'verify' expects none or required, got '{v}'"),
                    ),
                    None => {}
                }
                2
            }
            "ca-file" => {
                s.ca_file = need(self).map(|v| {
                    if v == "@system-ca" {
                        PathBuf::from(v)
                    } else {
                        based(&base_ca, &v)
                    }
                });
                2
            }
            "sni" => {
                if let Some(v) = need(self) {
                    match SniSource::parse(&v) {
                        Ok(x) => s.sni = Some(x),
                        Err(e) => self.err(l.line, e),
                    }
                }
                2
            }
            "verifyhost" => {
                s.verifyhost = need(self);
                2
            }
            "check-sni" => {
                s.check_sni = need(self);
                2
            }
            "no-ssl-reuse" | "no-tls-tickets" => {
                s.no_reuse = true;
                1
            }
            "crt" | "crl-file" | "send-proxy-v2-ssl" | "send-proxy-v2-ssl-cn" => {
                self.err(
                    l.line,
                    format!("server option '{opt}' is not supported by ringlb yet"),
                );
                if opt.starts_with("send-proxy") {
                    1
                } else {
                    2
                }
            }
            "npn" => {
                self.warn(
                    l.line,
                    "server option 'npn' ignored: NPN is obsolete; use 'alpn'",
                );
                2
            }
            _ => match self.conf_option(l, opt, value, &mut s.conf) {
                Ok(n) => n,
                Err(()) => return None,
            },
        })
    }

    /// A server's TLS client config, with the global defaults under its options.
    pub(super) fn load_server_ssl(
        &mut self,
        line: usize,
        name: &str,
        s: &ServerSsl,
    ) -> Option<std::sync::Arc<UpstreamTls>> {
        if !s.ssl {
            if s.check_ssl {
                self.err(line, format!("server '{name}': 'check-ssl' without 'ssl' (TLS checks of a plain server) is not supported by ringlb yet"));
            }
            return None;
        }
        let required = s.verify_required.unwrap_or(!self.ssl.server_verify_none);
        let verify = match (required, &s.ca_file) {
            (false, _) => ServerVerify::None,
            (true, Some(ca)) => ServerVerify::Required {
                ca_file: ca.clone(),
            },
            (true, None) => {
                self.err(line, format!("server '{name}': verify is enabled by default but no CA file specified ('ca-file'); set 'verify none' on the server line or 'ssl-server-verify none' in the global section to skip verification, as HAProxy asks"));
                return None;
            }
        };
        let settings = ClientSettings {
            verify,
            sni: s.sni.clone(),
            verifyhost: s.verifyhost.clone(),
            conf: self.ssl.server.over(&s.conf),
            no_reuse: s.no_reuse || self.ssl.server_no_reuse,
            check_ssl: s.check_ssl,
            check_sni: s.check_sni.clone(),
        };
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let out = crate::config::tls::load_server(settings, &mut errors, &mut warnings);
        for e in errors {
            self.err(line, format!("server '{name}': {e}"));
        }
        for w in warnings {
            self.warn(line, format!("server '{name}': {w}"));
        }
        out
    }
}
