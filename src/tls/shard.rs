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
    sets: RefCell<Vec<Vec<Option<Slot>>>>,
}

/// A TLS bind: its settings as loaded (or committed), and the contexts built from them.
struct Slot {
    bind: Arc<BindTls>,
    set: Option<Rc<ServerSet>>,
}

impl ShardTls {
    /// The contexts of every TLS bind (`binds[frontend]` = its binds);
    /// `shared`: the ticket keys every node shares (a `tls-ticket-keys` text), for the
    /// binds that would use the process's.
    pub fn new(binds: &[Vec<Option<&Arc<BindTls>>>], shared: Option<&str>) -> ShardTls {
        let sets = binds
            .iter()
            .map(|fe| fe.iter().map(|b| b.map(|b| Slot::new(b, shared))).collect())
            .collect();
        ShardTls {
            sets: RefCell::new(sets),
        }
    }

    /// The current contexts of a TLS bind (`None`: not a TLS bind, or its contexts
    /// could not be built, which the caller treats as a refusal).
    pub fn set(&self, frontend: usize, bind: usize) -> Option<Rc<ServerSet>> {
        self.sets
            .borrow()
            .get(frontend)
            .and_then(|f| f.get(bind))
            .and_then(|s| s.as_ref())
            .and_then(|s| s.set.clone())
    }

    /// New certificates for a bind (`commit ssl cert`).
    pub fn replace(&self, frontend: usize, bind: usize, tls: &Arc<BindTls>, shared: Option<&str>) {
        let mut sets = self.sets.borrow_mut();
        if let Some(slot) = sets.get_mut(frontend).and_then(|f| f.get_mut(bind)) {
            *slot = Some(Slot::new(tls, shared));
        }
    }

    /// New shared ticket keys: the binds that use them get new contexts.
    pub fn share_tickets(&self, keys: &str) {
        let mut sets = self.sets.borrow_mut();
        for fe in sets.iter_mut() {
            for slot in fe.iter_mut().flatten() {
                if slot.bind.shared_tickets {
                    *slot = Slot::new(&slot.bind.clone(), Some(keys));
                }
            }
        }
    }
}

impl Slot {
    fn new(bind: &Arc<BindTls>, shared: Option<&str>) -> Slot {
        let effective = match shared {
            Some(keys) => bind.with_shared_tickets(keys),
            None => bind.clone(),
        };
        Slot {
            bind: bind.clone(),
            set: build(&effective),
        }
    }
}

/// A bind's contexts, its ALPN list as configured: an HTTP frontend serves `h2`
/// (`h2::serve`), a TCP one passes it through as it passes any protocol.
fn build(bind: &Arc<BindTls>) -> Option<Rc<ServerSet>> {
    match ServerSet::new(bind) {
        Ok(s) => Some(Rc::new(s)),
        Err(e) => {
            // Checked at load: rustls refused nothing then.
            tracing::error!(error = %e, "TLS contexts could not be built; the bind refuses clients");
            None
        }
    }
}
