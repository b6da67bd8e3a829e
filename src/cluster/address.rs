//! Server addresses and names set at run time (`set server B/S addr IP [port P]`,
//! `set server B/S fqdn NAME`), across nodes (`shared`): the hashes `PREFIX:addrs`
//! (value: the words after `addr`) and `PREFIX:fqdns` (value: the name), field
//! `BACKEND/SERVER`, events `addr NODE BACKEND/SERVER` and `fqdn NODE BACKEND/SERVER`.
//! Other nodes make the change as their runtime API makes it (on every shard, through
//! the resolver for a name), unless it is in force already. A deleted server's fields
//! become `-` (one added again under its name starts from its own line). Resynced once
//! the main loop runs, after the servers: a server added elsewhere exists by then.

use std::sync::Arc;

use super::shared::{Apply, Shared};
use crate::control::Core;

/// The value of a deleted server's fields.
pub const CLEARED: &str = "-";

pub struct Address {
    core: Arc<Core>,
    fqdn: bool,
}

pub fn addrs(core: Arc<Core>) -> Shared<Address> {
    Shared::new(Address { core, fqdn: false }, "addrs", "addr").after_start()
}

pub fn fqdns(core: Arc<Core>) -> Shared<Address> {
    Shared::new(Address { core, fqdn: true }, "fqdns", "fqdn").after_start()
}

impl Apply for Address {
    fn apply(&self, field: &str, value: &str) -> bool {
        if value == CLEARED {
            return false;
        }
        let Some(answer) = crate::admin::apply_shared_address(&self.core, field, self.fqdn, value)
        else {
            return false;
        };
        let verb = if self.fqdn { "fqdn" } else { "addr" };
        tracing::warn!(
            server = field,
            "cluster: set server {verb} from another node: {}",
            answer.trim_end()
        );
        true
    }
}
