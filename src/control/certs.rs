//! Certificates changed at run time, with HAProxy's transaction (`set ssl cert NAME`
//! with a PEM payload, then `commit ssl cert NAME` or `abort ssl cert NAME`; one
//! transaction at a time): the binds' certificates in force (the config's, then each
//! commit's), and the transaction in progress. A commit gives the new `BindTls` of
//! every bind that uses the file; the caller sends them to the shards and answers once
//! every shard has them. A reload reads the files again (as HAProxy, which forgets
//! committed certificates that were not written to disk).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::CertUpdate;
use crate::config::{BindRef, Config};
use crate::tls::{BindTls, LoadedCert};

/// The certificates in force and the transaction.
pub struct Certs {
    cfg: Arc<Config>,
    /// The TLS of every bind, `[frontend][bind]`, with the commits made since `cfg`.
    binds: Vec<Vec<Option<Arc<BindTls>>>>,
    /// A commit changed something since `cfg` was loaded.
    changed: bool,
    txn: Option<Txn>,
}

/// The transaction in progress: the certificate file it replaces and what the
/// payloads gave so far.
struct Txn {
    path: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
}

impl Certs {
    pub fn new(cfg: &Arc<Config>) -> Certs {
        Certs {
            cfg: cfg.clone(),
            binds: cfg
                .frontends
                .iter()
                .map(|f| f.binds.iter().map(|b| b.tls.clone()).collect())
                .collect(),
            changed: false,
            txn: None,
        }
    }

    /// The same certificates for `cfg`, a config made from the one in force by `add
    /// server` / `del server` (same binds).
    pub fn carry_to(&mut self, cfg: &Arc<Config>) {
        self.cfg = cfg.clone();
    }

    /// Every certificate file the binds use, sorted (as HAProxy's tree lists them).
    pub fn names(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .binds
            .iter()
            .flatten()
            .flatten()
            .flat_map(|b| b.store.entries.iter().map(|e| e.cert.path.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The certificate in force for `name`.
    pub fn find(&self, name: &Path) -> Option<Arc<LoadedCert>> {
        self.binds
            .iter()
            .flatten()
            .flatten()
            .flat_map(|b| b.store.entries.iter())
            .find(|e| e.cert.path == name)
            .map(|e| e.cert.clone())
    }

    /// `set ssl cert NAME <<PAYLOAD`: starts or updates the transaction. A payload for
    /// `NAME.key` gives the key of NAME's transaction.
    pub fn set(&mut self, name: &str, payload: &str) -> String {
        let cant = |why: &str| format!("{why}\nCan't update {name}!\n");
        let (target, key_only) = match (self.find(Path::new(name)), name.strip_suffix(".key")) {
            (Some(_), _) => (PathBuf::from(name), false),
            (None, Some(base)) if self.find(Path::new(base)).is_some() => {
                (PathBuf::from(base), true)
            }
            _ => {
                return cant(
                    "Can't replace a certificate which is not referenced by the configuration!",
                )
            }
        };
        if let Some(t) = &self.txn {
            if t.path != target {
                return cant(&format!(
                    "The ongoing transaction is about '{}' but you are trying to set '{name}'",
                    t.path.display()
                ));
            }
        }
        let parsed = crate::tls::certs::parse_pem(&target, payload.as_bytes());
        let (chain, key) = match parsed {
            Ok((chain, key)) if key_only && key.is_some() => (chain, key),
            Ok((chain, key)) if !key_only && !chain.is_empty() => (chain, key),
            _ if key_only => {
                return cant(&format!(
                    "unable to load the private key from file '{name}'.\nCan't load the payload"
                ))
            }
            _ => {
                return cant(&format!(
                    "unable to load certificate from file '{name}'.\nCan't load the payload"
                ))
            }
        };
        let created = self.txn.is_none();
        let txn = self.txn.get_or_insert_with(|| Txn {
            path: target.clone(),
            chain: Vec::new(),
            key: None,
        });
        if key_only {
            txn.key = key;
        } else {
            // The payload replaces the file: its certificates and its key (or none).
            txn.chain = chain;
            txn.key = key;
        }
        let shown = target.display();
        if created {
            format!("Transaction created for certificate {shown}!\n")
        } else {
            format!("Transaction updated for certificate {shown}!\n")
        }
    }

    /// `abort ssl cert NAME`.
    pub fn abort(&mut self, name: &str) -> String {
        match &self.txn {
            None => "No ongoing transaction!\n".into(),
            Some(t) if t.path != Path::new(name) => format!(
                "The ongoing transaction is about '{}' but you are trying to abort a transaction for '{name}'\n",
                t.path.display()
            ),
            Some(_) => {
                self.txn = None;
                format!("Transaction aborted for certificate '{name}'!\n")
            }
        }
    }

    /// `commit ssl cert NAME`: the new TLS of every bind that uses the file (to send to
    /// the shards), or the operator's error lines. The transaction ends either way
    /// except when it is about another file or incomplete.
    pub fn commit(&mut self, name: &str) -> Result<CertUpdate, String> {
        let cant = |why: &str| format!("{why}\nCan't commit {name}!\n");
        let Some(t) = &self.txn else {
            return Err(cant("No ongoing transaction! !"));
        };
        if t.path != Path::new(name) {
            return Err(cant(&format!(
                "The ongoing transaction is about '{}' but you are trying to set '{name}'",
                t.path.display()
            )));
        }
        let (Some(key), false) = (&t.key, t.chain.is_empty()) else {
            return Err(cant(
                "The transaction must contain at least a certificate and a private key!",
            ));
        };
        let cert = match crate::tls::certs::certified(&t.path, t.chain.clone(), key.clone_key()) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                return Err(cant(&format!(
                    "inconsistencies between private key and certificate loaded '{name}': {}",
                    e.reason
                )))
            }
        };
        let path = t.path.clone();
        let mut binds = Vec::new();
        for (fi, fe) in self.binds.iter_mut().enumerate() {
            for (bi, slot) in fe.iter_mut().enumerate() {
                let Some(tls) = slot.as_ref() else { continue };
                if let Some(new) = tls.with_cert(&path, &cert) {
                    *slot = Some(new.clone());
                    binds.push((
                        BindRef {
                            frontend: fi,
                            bind: bi,
                        },
                        new,
                    ));
                }
            }
        }
        self.txn = None;
        self.changed = true;
        Ok(CertUpdate {
            config: self.cfg.clone(),
            binds,
        })
    }

    /// `show ssl cert [NAME]` (`*NAME`: the transaction).
    pub fn show(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            let mut out = String::new();
            if let Some(t) = &self.txn {
                out.push_str(&format!("# transaction\n*{}\n", t.path.display()));
            }
            out.push_str("# filename\n");
            for n in self.names() {
                out.push_str(&format!("{}\n", n.display()));
            }
            return out;
        };
        let missing = "Can't display the certificate: Not found or the certificate is a bundle!\n";
        if let Some(txn_name) = name.strip_prefix('*') {
            return match &self.txn {
                Some(t) if t.path == Path::new(txn_name) => match t.chain.first() {
                    Some(leaf) => crate::tls::show::details(name, "Unused", leaf),
                    None => missing.into(),
                },
                _ => missing.into(),
            };
        }
        match self.find(Path::new(name)) {
            Some(c) => match c.certified.cert.first() {
                Some(leaf) => crate::tls::show::details(name, "Used", leaf),
                None => missing.into(),
            },
            None => missing.into(),
        }
    }

    /// What a shard restarted after a panic must be told: every TLS bind, if a commit
    /// changed something since the config it runs was loaded.
    pub fn resync(&self, cfg: &Config) -> Option<CertUpdate> {
        if !self.changed || !std::ptr::eq(Arc::as_ptr(&self.cfg), cfg) {
            return None;
        }
        let mut binds = Vec::new();
        for (fi, fe) in self.binds.iter().enumerate() {
            for (bi, slot) in fe.iter().enumerate() {
                if let Some(t) = slot {
                    binds.push((
                        BindRef {
                            frontend: fi,
                            bind: bi,
                        },
                        t.clone(),
                    ));
                }
            }
        }
        Some(CertUpdate {
            config: self.cfg.clone(),
            binds,
        })
    }
}
