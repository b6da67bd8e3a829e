//! A shard's TLS contexts, per bind of its config generation: one `ServerSet` (the
//! shard's own `rustls::ServerConfig`s and session cache) built from the bind's
//! immutable `BindTls`. `commit ssl cert` replaces the sets of the binds that use the
//! certificate, in place: new handshakes take the new set, and a connection keeps the
//! one it started with (an `Rc`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::server::{BindTls, ServerSet};

/// What each bind serves, by frontend then bind: plain TCP (`None`), or TLS with
/// these contexts.
pub struct ShardTls {
    sets: RefCell<Vec<Vec<Option<Rc<ServerSet>>>>>,
    /// Per frontend: it speaks HTTP (its ALPN offers no `h2`: `ServerSet::without_h2`).
    http: Vec<bool>,
}

impl ShardTls {
    /// The contexts of every TLS bind (`binds[frontend]` = (HTTP mode, its binds)).
    pub fn new(binds: &[(bool, Vec<Option<&Arc<BindTls>>>)]) -> ShardTls {
        let sets = binds
            .iter()
            .map(|(http, fe)| fe.iter().map(|b| b.and_then(|b| build(b, *http))).collect())
            .collect();
        ShardTls {
            sets: RefCell::new(sets),
            http: binds.iter().map(|(h, _)| *h).collect(),
        }
    }

    /// The current contexts of a TLS bind (`None`: not a TLS bind, or its contexts
    /// could not be built, which the caller treats as a refusal).
    pub fn set(&self, frontend: usize, bind: usize) -> Option<Rc<ServerSet>> {
        self.sets
            .borrow()
            .get(frontend)
            .and_then(|f| f.get(bind))
            .cloned()
            .flatten()
    }

    /// New certificates for a bind (`commit ssl cert`).
    pub fn replace(&self, frontend: usize, bind: usize, tls: &Arc<BindTls>) {
        let mut sets = self.sets.borrow_mut();
        let http = self.http.get(frontend).copied().unwrap_or(false);
        if let Some(slot) = sets.get_mut(frontend).and_then(|f| f.get_mut(bind)) {
            *slot = build(tls, http);
        }
    }
}

fn build(bind: &Arc<BindTls>, http: bool) -> Option<Rc<ServerSet>> {
    match ServerSet::new(bind) {
        Ok(s) if http => Some(Rc::new(s.without_h2())),
        Ok(s) => Some(Rc::new(s)),
        Err(e) => {
            // Checked at load: rustls refused nothing then.
            tracing::error!(error = %e, "TLS contexts could not be built; the bind refuses clients");
            None
        }
    }
}
