//! Maps and ACL pattern files changed at run time, across nodes (`shared`): the hash
//! `PREFIX:maps` (field: the file's path as the config names it, value: its entries
//! whole, one `KEY VALUE` line each), events `map NODE FILE` (the file may hold
//! blanks). A node applies the files its config uses: a new or restarted node starts
//! with the current entries. Only files travel (an ACL line's own patterns have no
//! name another node shares).

use std::sync::Arc;

use super::shared::{Apply, Shared};
use crate::control::Core;
use crate::rules::map::Entry;

pub struct Maps(Arc<Core>);

pub fn sync(core: Arc<Core>) -> Shared<Maps> {
    Shared::new(Maps(core), "maps", "map")
}

/// A local change: the file's entries now, as the hash holds them.
pub fn value(entries: &[Entry]) -> String {
    encode(entries)
}

fn encode(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&e.key);
        if !e.value.is_empty() {
            out.push(' ');
            out.push_str(&e.value);
        }
        out.push('\n');
    }
    out
}

fn decode(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(' ') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

impl Apply for Maps {
    /// Makes `file`'s entries those of `text` on this node, if its config uses it
    /// and the entries suit every expression; whether anything changed.
    fn apply(&self, file: &str, text: &str) -> bool {
        let core = &self.0;
        let cfg = core.cfg();
        let pr = &cfg.patterns;
        let Some(r) = pr.lookup(file, crate::rules::map::RefKind::Any) else {
            return false;
        };
        let new = decode(text);
        let map = pr.refs[r].map;
        if let Some((k, e)) = new.iter().find_map(|(k, v)| {
            pr.check(r, k, map.then_some(v.as_str()))
                .err()
                .map(|e| (k, e))
        }) {
            tracing::warn!(file, key = k.as_str(), "cluster: map entry refused: {e}");
            return false;
        }
        let same = |cur: &[Entry]| {
            cur.len() == new.len()
                && cur
                    .iter()
                    .zip(&new)
                    .all(|(a, (k, v))| &*a.key == k && &*a.value == v)
        };
        let r = core.pat_change(&cfg, r, true, |entries| {
            if same(entries) {
                return Ok((crate::control::Changed::Nothing, false));
            }
            *entries = new.iter().map(|(k, v)| Entry::new(k, v)).collect();
            Ok((crate::control::Changed::Other, true))
        });
        match r {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(file, "cluster: map change: {}", e.trim_end());
                false
            }
        }
    }
}
