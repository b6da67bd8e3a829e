//! The names and indices rule evaluation reads of a config (`rules::World`); a shard
//! adds its state on top (`shard.rs`).

use super::Config;
use crate::rules::stick::KeyType;
use crate::rules::World;

impl World for Config {
    fn frontend_name(&self, fe: usize) -> Option<&str> {
        Some(&self.frontends.get(fe)?.name)
    }

    fn backend_name(&self, be: usize) -> Option<&str> {
        Some(&self.backends.get(be)?.name)
    }

    fn server_name(&self, be: usize, sv: usize) -> Option<&str> {
        Some(&self.backends.get(be)?.servers.get(sv)?.name)
    }

    fn backend_index(&self, name: &str) -> Option<usize> {
        Config::backend_index(self, name)
    }

    fn server_index(&self, be: usize, name: &str) -> Option<usize> {
        self.backends
            .get(be)?
            .servers
            .iter()
            .position(|s| s.name == name)
    }

    fn server_id(&self, be: usize, sv: usize) -> Option<i64> {
        Some(i64::from(self.backends.get(be)?.servers.get(sv)?.id))
    }

    /// HAProxy's proxy id (`id N`, or numbered as HAProxy does: `number_proxies`);
    /// `show stat` gives the same.
    fn proxy_id(&self, fe: Option<usize>, be: Option<usize>) -> Option<i64> {
        match (fe, be) {
            (Some(f), _) => self.proxy_uid(true, f),
            (None, Some(b)) => self.proxy_uid(false, b),
            (None, None) => None,
        }
        .map(i64::from)
    }

    fn table_key(&self, table: u32) -> Option<KeyType> {
        Some(self.tables.get(table as usize)?.key)
    }
}
