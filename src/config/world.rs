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

    /// HAProxy numbers proxies in config order from 1, after its CLI proxy (`GLOBAL`,
    /// id 1) when there is a `stats socket`; `show stat` numbers them the same way.
    fn proxy_id(&self, fe: Option<usize>, be: Option<usize>) -> Option<i64> {
        let first = if self.admin.stats_socket.is_some() || !self.admin.stats_tcp.is_empty() {
            2
        } else {
            1
        };
        self.proxy_order
            .iter()
            .position(|p| (fe.is_some() && p.frontend == fe) || (be.is_some() && p.backend == be))
            .map(|i| i as i64 + first)
    }

    fn table_key(&self, table: u32) -> Option<KeyType> {
        Some(self.tables.get(table as usize)?.key)
    }
}
