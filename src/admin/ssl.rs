//! The runtime API's certificate commands (`show/set/commit/abort ssl cert`), over the
//! control plane's `Certs`: a commit is answered once every shard serves the new
//! certificate to new handshakes (open connections keep theirs).

use std::sync::Arc;

use crate::control::{Core, ToShard};

pub fn show(core: &Core, name: Option<&str>) -> String {
    match core.certs.lock() {
        Ok(c) => c.show(name),
        Err(_) => "Operations on certificates are currently locked!\n".into(),
    }
}

pub fn set(core: &Core, name: &str, payload: &str) -> String {
    match core.certs.lock() {
        Ok(mut c) => c.set(name, payload),
        Err(_) => "Operations on certificates are currently locked!\n".into(),
    }
}

pub fn abort(core: &Core, name: &str) -> String {
    match core.certs.lock() {
        Ok(mut c) => c.abort(name),
        Err(_) => "Operations on certificates are currently locked!\n".into(),
    }
}

/// Commits, then waits for every shard: other certificate commands wait meanwhile.
pub fn commit(core: &Core, name: &str) -> String {
    let Ok(mut certs) = core.certs.lock() else {
        return "Operations on certificates are currently locked!\n".into();
    };
    let update = match certs.commit(name) {
        Ok(u) => Arc::new(u),
        Err(e) => return e,
    };
    tracing::warn!(
        certificate = name,
        binds = update.binds.len(),
        "certificate committed by the operator"
    );
    let applied = core.apply_everywhere(|| ToShard::Certs(update.clone()));
    drop(certs);
    match applied {
        Ok(()) => format!("Committing {name}.\nSuccess!\n"),
        Err(e) => format!("Committing {name}.\n{e}"),
    }
}
