//! Maps and ACL pattern files changed at run time, across nodes. A change on one node
//! is written whole to the hash `PREFIX:maps` (field: the file's path as the config
//! names it, value: its entries, one `KEY VALUE` line each) and published as `map NODE
//! FILE`; other nodes read the field and apply it. A node that (re)connects first
//! writes the changes it made meanwhile, then applies every field of the hash for the
//! files its config uses: a new or restarted node starts with the current entries.
//! Only files travel (an ACL line's own patterns have no name another node shares).

use std::collections::BTreeMap;
use std::sync::Arc;

use redis::Commands;

use crate::control::Core;
use crate::rules::map::Entry;

pub struct MapSync {
    core: Arc<Core>,
    /// Local changes not yet in Redis: file → its entries now.
    pending: BTreeMap<String, Arc<Vec<Entry>>>,
    pub need_resync: bool,
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

impl MapSync {
    pub fn new(core: Arc<Core>) -> MapSync {
        MapSync {
            core,
            pending: BTreeMap::new(),
            need_resync: true,
        }
    }

    pub fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn drop_pending(&mut self) {
        self.pending.clear();
    }

    pub fn local_change(&mut self, file: String, entries: Arc<Vec<Entry>>) {
        self.pending.insert(file, entries);
    }

    /// Writes and publishes the local changes.
    pub fn flush(
        &mut self,
        conn: &mut redis::Connection,
        prefix: &str,
        node: &str,
    ) -> redis::RedisResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (file, entries) in &self.pending {
            pipe.hset(format!("{prefix}:maps"), file, encode(entries))
                .ignore();
            pipe.publish(format!("{prefix}:events"), format!("map {node} {file}"))
                .ignore();
        }
        pipe.query::<()>(conn)?;
        self.pending.clear();
        Ok(())
    }

    /// After a (re)connect: our changes, then the hash applied here.
    pub fn resync(&mut self, conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()> {
        let key = format!("{prefix}:maps");
        if !self.pending.is_empty() {
            let mut pipe = redis::pipe();
            for (file, entries) in &self.pending {
                pipe.hset(&key, file, encode(entries)).ignore();
            }
            pipe.query::<()>(conn)?;
            self.pending.clear();
        }
        let all: Vec<(String, String)> = conn.hgetall(&key)?;
        let mut applied = 0;
        for (file, text) in all {
            if self.apply(&file, &text) {
                applied += 1;
            }
        }
        if applied > 0 {
            tracing::info!(files = applied, "cluster: applied map entries from redis");
        }
        Ok(())
    }

    /// `FILE` changed on another node: its entries are read from the hash.
    pub fn remote(
        &mut self,
        conn: &mut redis::Connection,
        prefix: &str,
        file: &str,
    ) -> redis::RedisResult<()> {
        let text: Option<String> = conn.hget(format!("{prefix}:maps"), file)?;
        if let Some(text) = text {
            self.apply(file, &text);
        }
        Ok(())
    }

    /// Makes `file`'s entries those of `text` on this node, if its config uses it
    /// and the entries suit every expression; whether anything changed.
    fn apply(&self, file: &str, text: &str) -> bool {
        let cfg = self.core.cfg();
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
        let r = self.core.pat_change(&cfg, r, true, |entries| {
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
