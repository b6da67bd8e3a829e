//! Operators' server states across nodes. A change on one node is written to the hash
//! `PREFIX:operator` (field `BACKEND/SERVER`, value `STATE WEIGHT`) and published as
//! `op NODE BACKEND/SERVER STATE WEIGHT`; other nodes apply it when they hear it. A
//! node that (re)connects first writes the changes it made meanwhile, then fills the
//! fields nobody wrote yet with its own states (HSETNX: a Redis that lost its data
//! learns them back), then applies the hash.

use std::sync::Arc;

use redis::Commands;

use crate::control::AdminState;
use crate::control::Core;

pub struct OperatorSync {
    core: Arc<Core>,
    /// Local changes not yet in Redis: (backend/server, state, weight).
    pending: Vec<(String, AdminState, u32)>,
    pub need_resync: bool,
}

/// `STATE WEIGHT` → both.
fn parse_value(v: &str) -> Option<(AdminState, u32)> {
    let (s, w) = v.split_once(' ')?;
    Some((AdminState::from_word(s)?, w.parse().ok()?))
}

impl OperatorSync {
    pub fn new(core: Arc<Core>) -> OperatorSync {
        OperatorSync {
            core,
            pending: Vec::new(),
            need_resync: true,
        }
    }

    pub fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn drop_pending(&mut self) {
        self.pending.clear();
    }

    pub fn local_change(
        &mut self,
        backend: String,
        server: String,
        state: AdminState,
        weight: u32,
    ) {
        let field = format!("{backend}/{server}");
        self.pending.retain(|p| p.0 != field);
        self.pending.push((field, state, weight));
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
        for (field, state, weight) in &self.pending {
            let value = format!("{} {weight}", state.word());
            pipe.hset(format!("{prefix}:operator"), field, &value)
                .ignore();
            pipe.publish(
                format!("{prefix}:events"),
                format!("op {node} {field} {value}"),
            )
            .ignore();
        }
        pipe.query::<()>(conn)?;
        self.pending.clear();
        Ok(())
    }

    /// After a (re)connect: our changes, then our states where the hash has none, then
    /// the hash applied here.
    pub fn resync(&mut self, conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()> {
        let key = format!("{prefix}:operator");
        let mut pipe = redis::pipe();
        for (field, state, weight) in &self.pending {
            pipe.hset(&key, field, format!("{} {weight}", state.word()))
                .ignore();
        }
        for (b, s, state, weight) in self.core.operator_states() {
            pipe.hset_nx(&key, format!("{b}/{s}"), format!("{state} {weight}"))
                .ignore();
        }
        pipe.query::<()>(conn)?;
        let all: Vec<(String, String)> = conn.hgetall(&key)?;
        let mut changed = 0;
        for (field, value) in all {
            let (Some((b, s)), Some((state, weight))) =
                (field.split_once('/'), parse_value(&value))
            else {
                continue;
            };
            if self.core.apply_shared(b, s, state, weight) {
                changed += 1;
            }
        }
        if changed > 0 {
            tracing::info!(
                servers = changed,
                "cluster: applied operator states from redis"
            );
        }
        Ok(())
    }

    /// `BACKEND/SERVER STATE WEIGHT` from another node.
    pub fn remote<'a>(&mut self, mut w: impl Iterator<Item = &'a str>) {
        let (Some(field), Some(state), Some(weight)) = (w.next(), w.next(), w.next()) else {
            return;
        };
        let (Some((b, s)), Some(state), Ok(weight)) = (
            field.split_once('/'),
            AdminState::from_word(state),
            weight.parse::<u32>(),
        ) else {
            return;
        };
        self.core.apply_shared(b, s, state, weight);
    }
}
