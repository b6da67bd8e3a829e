//! A shard's own copy of the pattern expressions the runtime API changed (`add map`,
//! `del acl`, ...). Until a change reaches it, an ACL test or a map converter matches
//! against the patterns its config loaded; after one, against this copy, patched (an
//! addition) or rebuilt (a deletion, a new value) by the control message, so that a
//! lookup stays a borrow of a `RefCell` on this thread: no lock, no allocation.
//! A reload starts a new generation with an empty copy (files read again, runtime
//! changes gone, as in HAProxy).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::control::PatUpdate;
use crate::rules::map::{Entry, Live, MapValue};
use crate::rules::{Data, Scratch, Smp};

#[derive(Default)]
pub struct ShardMaps {
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The current entries of the references changed at run time.
    current: HashMap<u32, Arc<Vec<Entry>>>,
    /// Per expression: its runtime copy, once one of its references changed.
    live: Vec<Option<Live>>,
}

impl ShardMaps {
    /// The index of the entry `smp` matches in expression `e`'s runtime copy;
    /// `None` when there is no copy (the config's patterns are in force).
    pub fn find(&self, e: u32, smp: &Smp<'_>, cur: &[u8]) -> Option<Option<usize>> {
        let inner = self.inner.try_borrow().ok()?;
        let live = inner.live.get(e as usize)?.as_ref()?;
        Some(live.pats.find(smp, cur))
    }

    /// The value map expression `e`'s runtime copy gives `smp` (a string is copied
    /// into the scratch buffer); `None` when there is no copy.
    pub fn value<'a>(&self, e: u32, smp: &Smp<'_>, s: &mut Scratch) -> Option<Option<Smp<'a>>> {
        let inner = self.inner.try_borrow().ok()?;
        let live = inner.live.get(e as usize)?.as_ref()?;
        let Some(i) = live.pats.find(smp, &s.cur) else {
            return Some(None);
        };
        Some(match live.values.get(i)? {
            MapValue::Str(b) => {
                s.tmp.clear();
                s.tmp.extend_from_slice(b);
                s.swap();
                Some(Smp::Str(Data::Buf))
            }
            MapValue::Int(v) => Some(Smp::Int(*v)),
            MapValue::Ip(a) => Some(Smp::Ip(*a)),
        })
    }

    /// Whether any expression has a runtime copy (the runtime API changed one).
    pub fn changed(&self) -> bool {
        self.inner.try_borrow().is_ok_and(|i| !i.live.is_empty())
    }

    /// Whether expression `e` has a runtime copy.
    pub fn is_live(&self, e: u32) -> bool {
        self.inner
            .try_borrow()
            .is_ok_and(|i| i.live.get(e as usize).is_some_and(Option::is_some))
    }

    /// Applies a change of one reference to every expression that uses it.
    pub fn apply(&self, cfg: &Config, up: &PatUpdate) {
        let pr = &cfg.patterns;
        let Some(rf) = pr.refs.get(up.pat_ref as usize) else {
            return;
        };
        let mut inner = self.inner.borrow_mut();
        let Inner { current, live } = &mut *inner;
        let before = current
            .get(&up.pat_ref)
            .map_or(rf.entries.len(), |v| v.len());
        current.insert(up.pat_ref, up.entries.clone());
        if live.len() < pr.exprs.len() {
            live.resize_with(pr.exprs.len(), || None);
        }
        for &e in &rf.exprs {
            let e = e as usize;
            match (&mut live[e], up.added) {
                (Some(l), Some(from)) if from == before && from <= up.entries.len() => {
                    l.push(&pr.exprs[e], &up.entries[from..])
                }
                (slot, _) => {
                    *slot = Some(pr.build(e, &|r| {
                        current
                            .get(&(r as u32))
                            .cloned()
                            .unwrap_or_else(|| pr.refs[r].entries.clone())
                    }))
                }
            }
        }
    }
}
