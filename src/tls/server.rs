//! A TLS bind: its settings as configured (`BindTlsSpec`), loaded into certificates,
//! contexts and ticket keys at config load (`BindTls`, immutable, shared by the
//! shards), and each shard's own `rustls::ServerConfig`s built from it (`ServerSet`:
//! own session cache, so no lock is shared between cores).
//!
//! A context is one set of options: context 0 is the bind's, and each `crt-list` line
//! with options of its own adds one (its options laid over the bind's). Every problem
//! is found here, at load: unreadable or mismatched files, a cipher list with nothing
//! usable, a version range rustls cannot serve, `verify` without `ca-file`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::certs::{self, LoadedCert};
use super::store::{self, CertStore, Hello, SslConf, TlsVersion, Verify};
use super::suites;
use super::tickets::TicketKeys;

/// Where a bind's certificates come from, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrtSource {
    /// `crt FILE|DIR`.
    Crt(PathBuf),
    /// `crt-list FILE`.
    List(PathBuf),
}

/// A TLS bind as configured; paths are as written (relative to the working directory,
/// or already joined with `crt-base`/`ca-base`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindTlsSpec {
    pub crts: Vec<CrtSource>,
    pub conf: SslConf,
    pub strict_sni: bool,
    /// `default-crt FILE`: the default certificate instead of the first loaded.
    pub default_crt: Option<PathBuf>,
    pub no_tls_tickets: bool,
    /// `tls-ticket-keys FILE`.
    pub ticket_keys: Option<PathBuf>,
    /// `no-ca-names`: no CA list in the client-certificate request.
    pub no_ca_names: bool,
    /// Base directory of `crt-list` lines' relative certificate paths (`crt-base`).
    pub crt_base: Option<PathBuf>,
    /// Base directory of their relative `ca-file`/`crl-file` paths (`ca-base`).
    pub ca_base: Option<PathBuf>,
    /// Seconds a session (ticket) is good for (`tune.ssl.lifetime`, default 300).
    pub lifetime: u32,
    /// `prefer-client-ciphers`: the client's suite order wins (HAProxy: the server's).
    pub prefer_client_ciphers: bool,
}

/// One TLS context, validated.
#[derive(Debug, Clone)]
pub struct Context {
    pub alpn: Vec<Vec<u8>>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// The provider restricted to the context's suites and groups.
    pub provider: Arc<CryptoProvider>,
    pub verify: Verify,
    pub verifier: Arc<dyn ClientCertVerifier>,
}

/// A TLS bind, loaded.
#[derive(Debug)]
pub struct BindTls {
    pub store: CertStore,
    pub contexts: Vec<Context>,
    /// `None`: `no-tls-tickets`.
    pub tickets: Option<Arc<TicketKeys>>,
    /// The keys are the process's (no `tls-ticket-keys` file): with a cluster, the
    /// ones every node shares replace them.
    pub shared_tickets: bool,
    pub prefer_client_ciphers: bool,
}

/// What loading a bind found: warnings (the bind works), or errors (it does not).
#[derive(Debug, Default)]
pub struct Findings {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl BindTls {
    /// Reads every file the bind names and checks every option. `process_keys` are
    /// the process's generated ticket keys, used when the bind names no file.
    pub fn load(
        spec: &BindTlsSpec,
        process_keys: &Arc<TicketKeys>,
        out: &mut Findings,
    ) -> Option<Arc<BindTls>> {
        let errors_before = out.errors.len();
        let mut store = CertStore::default();
        store.strict_sni = spec.strict_sni;
        let mut confs: Vec<SslConf> = vec![spec.conf.clone()];
        for src in &spec.crts {
            match src {
                CrtSource::Crt(p) => {
                    if let Err(e) = store::load_into(&mut store, p, 0, &[], &[]) {
                        out.errors.push(format!("crt {e}"));
                    }
                }
                CrtSource::List(list) => load_list(spec, list, &mut store, &mut confs, out),
            }
        }
        if let Some(d) = &spec.default_crt {
            if !store.set_default(d) {
                match store::load_into(&mut store, d, 0, &[], &[]) {
                    Ok(()) => {
                        store.set_default(d);
                    }
                    Err(e) => out.errors.push(format!("default-crt {e}")),
                }
            }
        }
        if store.entries.is_empty() && out.errors.len() == errors_before {
            out.errors
                .push("'ssl' needs at least one certificate ('crt' or 'crt-list')".into());
        }
        let mut contexts = Vec::new();
        for (i, c) in confs.iter().enumerate() {
            let what = if i == 0 {
                "bind".to_string()
            } else {
                format!("crt-list context {i}")
            };
            match Context::build(c, spec.no_ca_names, &what, &mut out.warnings) {
                Ok(ctx) => contexts.push(ctx),
                Err(e) => out.errors.push(e),
            }
        }
        // The file is read (and checked) even under `no-tls-tickets`.
        let from_file = spec.ticket_keys.as_ref().and_then(|path| {
            match TicketKeys::from_file(path, spec.lifetime) {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    out.errors.push(format!("tls-ticket-keys {e}"));
                    None
                }
            }
        });
        let shared_tickets = !spec.no_tls_tickets && from_file.is_none();
        let tickets = if spec.no_tls_tickets {
            None
        } else {
            from_file.or_else(|| Some(process_keys.clone()))
        };
        if out.errors.len() > errors_before {
            return None;
        }
        let bind = Arc::new(BindTls {
            store,
            contexts,
            tickets,
            shared_tickets,
            prefer_client_ciphers: spec.prefer_client_ciphers,
        });
        // Build once here so that whatever rustls refuses is an error at load.
        if let Err(e) = ServerSet::new(&bind) {
            out.errors.push(e);
            return None;
        }
        Some(bind)
    }
}

fn load_list(
    spec: &BindTlsSpec,
    list: &Path,
    store: &mut CertStore,
    confs: &mut Vec<SslConf>,
    out: &mut Findings,
) {
    let text = match std::fs::read_to_string(list) {
        Ok(t) => t,
        Err(e) => {
            return out
                .errors
                .push(format!("crt-list '{}': {e}", list.display()))
        }
    };
    let lines = match store::parse_crt_list(&text) {
        Ok(l) => l,
        Err(e) => {
            return out
                .errors
                .push(format!("crt-list '{}': {e}", list.display()))
        }
    };
    for line in lines {
        let ctx = if line.conf == SslConf::default() {
            0
        } else {
            let mut own = line.conf.clone();
            for p in [&mut own.ca_file, &mut own.crl_file].into_iter().flatten() {
                if let (Some(base), true) = (&spec.ca_base, p.is_relative()) {
                    *p = base.join(&*p);
                }
            }
            let merged = spec.conf.over(&own);
            match confs.iter().position(|c| *c == merged) {
                Some(i) => i,
                None => {
                    confs.push(merged);
                    confs.len() - 1
                }
            }
        };
        let path = match (&spec.crt_base, line.crt.is_relative()) {
            (Some(base), true) => base.join(&line.crt),
            _ => line.crt.clone(),
        };
        if let Err(e) = store::load_into(store, &path, ctx, &line.filters, &line.negative) {
            out.errors.push(format!(
                "crt-list '{}' line {}: {e}",
                list.display(),
                line.line
            ));
        }
    }
}

impl Context {
    /// Checks one option set; warnings name what ringlb cannot offer.
    pub fn build(
        conf: &SslConf,
        no_ca_names: bool,
        what: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Context, String> {
        let base = super::provider();
        // As HAProxy: with ssl-min-ver/ssl-max-ver, the no-tlsv1x flags are ignored.
        let flags_ignored =
            (conf.min_ver.is_some() || conf.max_ver.is_some()) && !conf.no_versions.is_empty();
        if flags_ignored {
            warnings.push(format!(
                "{what}: no-sslv3/no-tlsv1x are ignored with ssl-min-ver/ssl-max-ver (as HAProxy); use only 'ssl-min-ver' and 'ssl-max-ver'"
            ));
        }
        let no = if flags_ignored {
            &[][..]
        } else {
            &conf.no_versions[..]
        };
        let (versions, wanted_old) = suites::versions(conf.min_ver, conf.max_ver, no);
        if wanted_old {
            warnings.push(format!(
                "{what}: TLSv1.0/TLSv1.1 cannot be offered (rustls has neither): ringlb serves TLSv1.2 and TLSv1.3 only"
            ));
        }
        if versions.is_empty() {
            return Err(format!(
                "{what}: no protocol version left to offer (ringlb offers TLSv1.2 and TLSv1.3)"
            ));
        }
        let has12 = versions.contains(&&rustls::version::TLS12);
        let has13 = versions.contains(&&rustls::version::TLS13);
        let mut ids = Vec::new();
        match &conf.ciphersuites {
            Some(list) => {
                let m = suites::map_ciphersuites(list);
                note_dropped(what, "ciphersuites", &m.unsupported, &m.unknown, warnings);
                if m.items.is_empty() && has13 {
                    return Err(format!(
                        "{what}: 'ciphersuites {list}' leaves no TLSv1.3 suite ringlb can offer"
                    ));
                }
                ids.extend(m.items);
            }
            None => ids.extend(default_ids(&base, true)),
        }
        match &conf.ciphers {
            Some(list) => {
                let m = suites::map_ciphers(list);
                note_dropped(what, "ciphers", &m.unsupported, &m.unknown, warnings);
                if m.items.is_empty() && has12 {
                    return Err(format!("{what}: 'ciphers {list}' leaves no TLSv1.2 suite ringlb can offer (it has ECDHE with AES-GCM or ChaCha20 only; no DHE, CBC or RSA key exchange)"));
                }
                ids.extend(m.items);
            }
            None => ids.extend(default_ids(&base, false)),
        }
        let mut provider = (*base).clone();
        provider.cipher_suites = suites::suites_by_id(&base, &ids);
        if let Some(list) = &conf.curves {
            let m = suites::map_curves(&base, list);
            note_dropped(what, "curves", &m.unsupported, &m.unknown, warnings);
            if m.items.is_empty() {
                return Err(format!("{what}: 'curves {list}' leaves no curve ringlb can offer (X25519, P-256, P-384, X25519MLKEM768)"));
            }
            provider.kx_groups = m.items;
        }
        let verify = conf.verify.unwrap_or_default();
        let verifier = client_verifier(conf, verify, no_ca_names, &base, what)?;
        Ok(Context {
            alpn: conf
                .alpn
                .iter()
                .flatten()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            versions,
            provider: Arc::new(provider),
            verify,
            verifier,
        })
    }

    /// This context's `ServerConfig` for one shard.
    fn server_config(
        &self,
        resolver: Arc<dyn ResolvesServerCert>,
        bind: &BindTls,
        cache: &Arc<ServerSessionMemoryCache>,
    ) -> Result<ServerConfig, String> {
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|e| format!("TLS settings rustls refuses: {e}"))?
            .with_client_cert_verifier(self.verifier.clone())
            .with_cert_resolver(resolver);
        cfg.alpn_protocols = self.alpn.clone();
        // HAProxy sets the server's preference unless `prefer-client-ciphers`.
        cfg.ignore_client_order = !bind.prefer_client_ciphers;
        cfg.session_storage = cache.clone();
        // After the handshake the record layer is ringlb's own (`records`): rustls
        // hands over the traffic keys, and its key log hook the TLS 1.3 secrets.
        cfg.enable_secret_extraction = true;
        cfg.key_log = Arc::new(super::records::SecretHook);
        if let Some(t) = &bind.tickets {
            cfg.ticketer = t.clone();
        }
        Ok(cfg)
    }
}

fn default_ids(p: &CryptoProvider, tls13: bool) -> Vec<rustls::CipherSuite> {
    p.cipher_suites
        .iter()
        .filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)) == tls13)
        .map(|s| s.suite())
        .collect()
}

fn note_dropped(
    what: &str,
    key: &str,
    unsupported: &[String],
    unknown: &[String],
    w: &mut Vec<String>,
) {
    if !unsupported.is_empty() {
        w.push(format!(
            "{what}: '{key}': {} not offered (rustls has no TLSv1.0/1.1, DHE, CBC, static-RSA, CCM or NULL suites, nor P-521/X448)",
            unsupported.join(", ")
        ));
    }
    if !unknown.is_empty() {
        w.push(format!(
            "{what}: '{key}': unknown name(s) {} ignored",
            unknown.join(", ")
        ));
    }
}

fn client_verifier(
    conf: &SslConf,
    verify: Verify,
    no_ca_names: bool,
    provider: &Arc<CryptoProvider>,
    what: &str,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    if verify == Verify::None {
        if conf.crl_file.is_some() && conf.ca_file.is_none() {
            return Err(format!("{what}: 'crl-file' needs 'ca-file' and 'verify'"));
        }
        return Ok(WebPkiClientVerifier::no_client_auth());
    }
    let Some(ca) = &conf.ca_file else {
        return Err(format!(
            "{what}: 'verify {}' needs a 'ca-file' to check client certificates against",
            if verify == Verify::Required {
                "required"
            } else {
                "optional"
            }
        ));
    };
    let mut roots = RootCertStore::empty();
    for c in certs::load_ca_file(ca).map_err(|e| format!("{what}: ca-file {e}"))? {
        roots
            .add(c)
            .map_err(|e| format!("{what}: ca-file '{}': {e}", ca.display()))?;
    }
    let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl) = &conf.crl_file {
        let crls = certs::load_crl_file(crl).map_err(|e| format!("{what}: crl-file {e}"))?;
        // OpenSSL (HAProxy) checks every certificate of the chain and refuses an
        // expired CRL.
        b = b.with_crls(crls).enforce_revocation_expiration();
    }
    if verify == Verify::Optional {
        b = b.allow_unauthenticated();
    }
    if no_ca_names {
        b = b.clear_root_hint_subjects();
    }
    b.build()
        .map_err(|e| format!("{what}: client verification: {e}"))
}

/// Picks the certificate for a ClientHello from the bind's store.
#[derive(Debug)]
struct StoreResolver(Arc<BindTls>);

impl ResolvesServerCert for StoreResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0
            .store
            .select(&Hello {
                sni: hello.server_name(),
                schemes: hello.signature_schemes(),
            })
            .map(|e| e.cert.certified.clone())
    }
}

/// One shard's `ServerConfig`s for a bind, one per context.
#[derive(Debug, Clone)]
pub struct ServerSet {
    pub bind: Arc<BindTls>,
    pub configs: Vec<Arc<ServerConfig>>,
}

/// Sessions kept for TLS 1.2 session-id and TLS 1.3 stateful resumption, per shard
/// (HAProxy's `tune.ssl.cachesize` default).
pub const SESSION_CACHE: usize = 20_000;

impl ServerSet {
    pub fn new(bind: &Arc<BindTls>) -> Result<ServerSet, String> {
        let resolver: Arc<dyn ResolvesServerCert> = Arc::new(StoreResolver(bind.clone()));
        let cache = ServerSessionMemoryCache::new(SESSION_CACHE);
        let configs = bind
            .contexts
            .iter()
            .map(|c| {
                c.server_config(resolver.clone(), bind, &cache)
                    .map(Arc::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(ServerSet {
            bind: bind.clone(),
            configs,
        })
    }
}

impl BindTls {
    /// The same bind with `cert` in place of the certificate loaded from `path`
    /// (`commit ssl cert`); `None` if the bind does not use it.
    pub fn with_cert(&self, path: &Path, cert: &Arc<LoadedCert>) -> Option<Arc<BindTls>> {
        Some(Arc::new(BindTls {
            store: self.store.with_cert(path, cert)?,
            contexts: self.contexts.clone(),
            tickets: self.tickets.clone(),
            shared_tickets: self.shared_tickets,
            prefer_client_ciphers: self.prefer_client_ciphers,
        }))
    }

    /// The same bind with the ticket keys every node shares (`keys`: a
    /// `tls-ticket-keys` file's text), if it uses the process's; else itself.
    pub fn with_shared_tickets(self: &Arc<Self>, keys: &str) -> Arc<BindTls> {
        let Some(own) = self.tickets.as_ref().filter(|_| self.shared_tickets) else {
            return self.clone();
        };
        match TicketKeys::parse(keys, own.lifetime()) {
            Ok(k) => Arc::new(BindTls {
                store: self.store.clone(),
                contexts: self.contexts.clone(),
                tickets: Some(Arc::new(k)),
                shared_tickets: true,
                prefer_client_ciphers: self.prefer_client_ciphers,
            }),
            Err(e) => {
                tracing::error!(error = %e, "shared TLS ticket keys unusable; keeping this process's");
                self.clone()
            }
        }
    }
}

/// `ssl-min-ver` and friends, for the config readers.
pub fn parse_version(v: &str) -> Option<TlsVersion> {
    TlsVersion::parse(v)
}
