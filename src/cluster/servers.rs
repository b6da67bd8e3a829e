//! Servers added and deleted at run time (`add server`, `del server`), across nodes
//! (`shared`): the hash `PREFIX:servers` (field `BACKEND/SERVER`, value: the `add
//! server` line's address and keywords, or `-` once deleted), events `srv NODE
//! BACKEND/SERVER`. Other nodes make the same change with the same line (a server
//! added in maintenance, as on the first node; its state then follows
//! `PREFIX:operator`), unless they made it already. Resynced once the main loop runs,
//! which makes the changes.

use std::sync::Arc;

use super::shared::{Apply, Shared};
use crate::control::Core;

/// The value of a deleted server.
pub const DELETED: &str = "-";

pub struct Servers(Arc<Core>);

pub fn sync(core: Arc<Core>) -> Shared<Servers> {
    Shared::new(Servers(core), "servers", "srv").after_start()
}

/// A local change (`line` empty: deleted): its value.
pub fn value(line: String) -> String {
    if line.is_empty() {
        DELETED.into()
    } else {
        line
    }
}

impl Apply for Servers {
    /// Makes the change here unless it is made already.
    fn apply(&self, field: &str, value: &str) -> bool {
        let core = &self.0;
        let exists = core.find_server(field).is_some();
        let answer = match (value == DELETED, exists) {
            (true, true) => core.del_server(&[field], true),
            (false, false) => {
                let words: Vec<&str> = std::iter::once(field).chain(value.split(' ')).collect();
                core.add_server(&words, true)
            }
            _ => return false,
        };
        let verb = if value == DELETED { "del" } else { "add" };
        tracing::warn!(
            server = field,
            "cluster: {verb} server from another node: {}",
            answer.trim_end()
        );
        true
    }
}
