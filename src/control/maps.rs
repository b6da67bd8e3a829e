//! Maps and ACL patterns changed at run time: the current entries of every pattern
//! reference the runtime API (or the cluster) changed, for the config in force. This
//! is the truth `show map` lists; shards hold compiled copies, told by `ToShard::
//! Patterns`. A reload starts from the files again, as HAProxy does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Core, PatUpdate, ToShard, Up};
use crate::config::Config;
use crate::rules::map::Entry;

#[derive(Default)]
pub struct PatState {
    /// The config the entries belong to.
    config: Option<Arc<Config>>,
    current: HashMap<u32, Arc<Vec<Entry>>>,
}

impl PatState {
    /// The same entries for `cfg`, a config made from the one they belong to by
    /// `add server` / `del server` (same maps, same numbering).
    pub(super) fn carry_to(&mut self, cfg: &Arc<Config>) {
        if self.config.is_some() {
            self.config = Some(cfg.clone());
        }
    }

    fn for_config(&mut self, cfg: &Arc<Config>) -> &mut HashMap<u32, Arc<Vec<Entry>>> {
        if !self.config.as_ref().is_some_and(|c| Arc::ptr_eq(c, cfg)) {
            self.config = Some(cfg.clone());
            self.current.clear();
        }
        &mut self.current
    }
}

/// What a change did: `added(n)` = appended `entries[n..]`, or anything else.
pub enum Changed {
    Added(usize),
    Other,
    /// Nothing changed (no shard is told).
    Nothing,
}

impl Core {
    /// The current entries of reference `r` of `cfg`.
    pub fn pat_entries(&self, cfg: &Arc<Config>, r: usize) -> Arc<Vec<Entry>> {
        let mut st = lock(&self.patterns);
        st.for_config(cfg)
            .get(&(r as u32))
            .cloned()
            .unwrap_or_else(|| cfg.patterns.refs[r].entries.clone())
    }

    /// Changes reference `r`'s entries with `f`, then tells every shard and waits for
    /// them, and tells the cluster (a change that came from the cluster: only the
    /// shards, without waiting). The lock is held
    /// throughout: changes reach the shards in the order they were made.
    pub fn pat_change<T>(
        &self,
        cfg: &Arc<Config>,
        r: usize,
        from_cluster: bool,
        f: impl FnOnce(&mut Vec<Entry>) -> Result<(Changed, T), String>,
    ) -> Result<T, String> {
        let mut st = lock(&self.patterns);
        let cur = st.for_config(cfg);
        let mut entries: Vec<Entry> = match cur.get(&(r as u32)) {
            Some(e) => e.as_ref().clone(),
            None => cfg.patterns.refs[r].entries.as_ref().clone(),
        };
        let (changed, out) = f(&mut entries)?;
        let added = match changed {
            Changed::Nothing => return Ok(out),
            Changed::Added(n) => Some(n),
            Changed::Other => None,
        };
        let entries = Arc::new(entries);
        cur.insert(r as u32, entries.clone());
        let up = Arc::new(PatUpdate {
            config: cfg.clone(),
            pat_ref: r as u32,
            entries: entries.clone(),
            added,
        });
        if !from_cluster {
            if let (Some(tx), Some(file)) = (self.cluster.get(), &cfg.patterns.refs[r].file) {
                let _ = tx.send(Up::Patterns {
                    file: file.clone(),
                    entries: entries.clone(),
                });
            }
        }
        if from_cluster {
            // The cluster thread does not wait (a starting node's shards may not run
            // yet: they apply what is queued before their first connection).
            self.broadcast(|| ToShard::Patterns(up.clone()));
        } else {
            self.apply_everywhere(|| ToShard::Patterns(up.clone()))?;
        }
        Ok(out)
    }

    /// The messages that bring a restarted shard's maps up to date.
    pub(super) fn pat_resync(&self, cfg: &Arc<Config>) -> Vec<ToShard> {
        let mut st = lock(&self.patterns);
        st.for_config(cfg)
            .iter()
            .map(|(&r, e)| {
                ToShard::Patterns(Arc::new(PatUpdate {
                    config: cfg.clone(),
                    pat_ref: r,
                    entries: e.clone(),
                    added: None,
                }))
            })
            .collect()
    }
}

fn lock(m: &Mutex<PatState>) -> std::sync::MutexGuard<'_, PatState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
