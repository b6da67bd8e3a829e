//! What rules read of the running proxy, behind a trait so that the language depends
//! on neither the config model nor the shard (both sit above it): names and indices
//! from the config in force, and one shard's counters, servers and stick tables. The
//! config answers names alone (a log line formatted where no shard is at hand); a
//! shard answers everything. Only the fetches that ask pay the indirect call.

use super::sample::{Scratch, Smp};
use super::stick::{KeyType, ScOp};
use super::Tracked;

pub trait World {
    fn frontend_name(&self, fe: usize) -> Option<&str>;
    fn backend_name(&self, be: usize) -> Option<&str>;
    fn server_name(&self, be: usize, sv: usize) -> Option<&str>;
    fn backend_index(&self, name: &str) -> Option<usize>;
    fn server_index(&self, be: usize, name: &str) -> Option<usize>;
    /// HAProxy's proxy number (`fe_id`, `be_id`, `show stat`'s `iid`).
    fn proxy_id(&self, fe: Option<usize>, be: Option<usize>) -> Option<i64>;
    /// HAProxy's server id (`srv_id`, `show stat`'s `sid`): `id N`, or its numbering.
    fn server_id(&self, be: usize, sv: usize) -> Option<i64>;
    /// The key type of stick table `table`.
    fn table_key(&self, table: u32) -> Option<KeyType>;

    // One shard's state: `None` where no shard is at hand.

    /// The shard's number (`thread`).
    /// Frontend `fe`'s `unique-id-format`.
    fn unique_id_format(&self, _fe: usize) -> Option<&super::LogFormat> {
        None
    }

    fn thread(&self) -> Option<usize> {
        None
    }
    /// The shard is draining for a reload or a stop (`stopping`).
    fn stopping(&self) -> bool {
        false
    }
    /// Usable (active, backup) servers of `be`.
    fn usable_counts(&self, _be: usize) -> Option<(usize, usize)> {
        None
    }
    fn be_conn(&self, _be: usize) -> Option<i64> {
        None
    }
    fn fe_conn(&self, _fe: usize) -> Option<i64> {
        None
    }
    fn srv_conn(&self, _be: usize, _sv: usize) -> Option<i64> {
        None
    }
    fn srv_is_up(&self, _be: usize, _sv: usize) -> Option<bool> {
        None
    }
    /// Requests queued on `be` and its servers.
    fn queue(&self, _be: usize) -> Option<i64> {
        None
    }
    /// `connslots`: free connection slots plus queue room (-1: a server is unlimited).
    fn connslots(&self, _be: usize) -> Option<i64> {
        None
    }
    /// A stick counter's value for a tracked entry (0 when the entry is absent).
    fn sc_value(&self, _e: Tracked, _op: ScOp) -> Option<i64> {
        None
    }
    /// Whether stick table `table` holds `key`.
    fn sc_has(&self, _table: u32, _key: u64) -> Option<bool> {
        None
    }
    /// The shard's runtime copy of pattern expression `e` (after `add map`, `del
    /// acl`, ...): the index of the entry `smp` matches. `None`: no copy, the
    /// config's patterns are in force.
    fn pat_find(&self, _e: u32, _smp: &Smp<'_>, _cur: &[u8]) -> Option<Option<usize>> {
        None
    }
    /// The value map expression `e`'s runtime copy gives `smp` (a string is copied
    /// into the scratch buffer). `None`: no copy.
    fn pat_value(&self, _e: u32, _smp: &Smp<'_>, _s: &mut Scratch) -> Option<Option<Smp<'static>>> {
        None
    }
    /// Whether the runtime API changed any pattern expression on this shard (in this
    /// generation): a cheap test before asking `pat_live` of each.
    fn pat_changed(&self) -> bool {
        false
    }
    /// Whether pattern expression `e` has a runtime copy here (the config's patterns
    /// are not the ones in force).
    fn pat_live(&self, _e: u32) -> bool {
        false
    }
}
