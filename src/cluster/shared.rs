//! The one pattern every runtime change shared across nodes follows (operator states,
//! added servers, maps, server addresses and names): a Redis hash `PREFIX:KEY` holds
//! the last value of each field (`BACKEND/SERVER`, a map's file), and each change is
//! published on `PREFIX:events` as `EVENT NODE FIELD` (`EVENT NODE FIELD VALUE` when
//! the value travels with it). A node writes its own changes as they come; one that
//! (re)connects writes those it made meanwhile (and publishes them), fills the fields
//! nobody wrote yet when its kind asks for it (HSETNX: a Redis that lost its data
//! learns them back), then applies every field of the hash. What a field means is
//! the kind's own business (`Apply`); applying another node's change never publishes
//! it again (the kind makes it as "shared").

use std::collections::BTreeMap;

use redis::Commands;

/// What one kind of shared change does on this node.
pub trait Apply {
    /// Makes another node's value of `field` the one in force here; whether anything
    /// changed.
    fn apply(&self, field: &str, value: &str) -> bool;

    /// This node's values, written where the hash has none after a (re)connect.
    fn fill(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// One hash and its event word, with the local changes not yet in Redis.
pub struct Shared<A> {
    kind: A,
    /// The hash's name after `PREFIX:`.
    key: &'static str,
    /// The first word of its events.
    event: &'static str,
    /// The value travels in the event (no read back from the hash).
    value_in_event: bool,
    /// Resynced only once the process's main loop runs (it makes the changes).
    after_start: bool,
    /// Local changes not yet in Redis: field → value.
    pending: BTreeMap<String, String>,
    pub need_resync: bool,
}

impl<A: Apply> Shared<A> {
    pub fn new(kind: A, key: &'static str, event: &'static str) -> Shared<A> {
        Shared {
            kind,
            key,
            event,
            value_in_event: false,
            after_start: false,
            pending: BTreeMap::new(),
            need_resync: true,
        }
    }

    /// The value travels in the event (`EVENT NODE FIELD VALUE`): no blank in fields.
    pub fn value_in_event(mut self) -> Self {
        self.value_in_event = true;
        self
    }

    /// Not resynced before the main loop runs.
    pub fn after_start(mut self) -> Self {
        self.after_start = true;
        self.need_resync = false;
        self
    }

    pub fn local_change(&mut self, field: String, value: String) {
        self.pending.insert(field, value);
    }

    fn hash(&self, prefix: &str) -> String {
        format!("{prefix}:{}", self.key)
    }
}

/// The cluster thread's view of a `Shared`, whatever its kind.
pub trait Synced {
    fn pending(&self) -> bool;
    fn drop_pending(&mut self);
    fn need_resync(&mut self) -> &mut bool;
    /// After a (re)connect (`started`: the main loop runs): whether to resync.
    fn connected(&mut self, started: bool);
    /// The main loop runs now: catch up with what waited for it.
    fn started(&mut self);
    fn event(&self) -> &'static str;
    /// Writes and publishes the local changes.
    fn flush(
        &mut self,
        conn: &mut redis::Connection,
        prefix: &str,
        node: &str,
    ) -> redis::RedisResult<()>;
    /// After a (re)connect: our changes, our values where the hash has none, then the
    /// hash applied here (our changes stay pending, so that `flush` publishes them).
    fn resync(&mut self, conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()>;
    /// An event's `FIELD[ VALUE]` from another node (`conn`: to read the value).
    fn remote(
        &mut self,
        conn: Option<&mut redis::Connection>,
        prefix: &str,
        rest: &str,
    ) -> redis::RedisResult<()>;
}

impl<A: Apply> Synced for Shared<A> {
    fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn drop_pending(&mut self) {
        self.pending.clear();
        self.need_resync = false;
    }

    fn need_resync(&mut self) -> &mut bool {
        &mut self.need_resync
    }

    fn connected(&mut self, started: bool) {
        self.need_resync = started || !self.after_start;
    }

    fn started(&mut self) {
        self.need_resync |= self.after_start;
    }

    fn event(&self) -> &'static str {
        self.event
    }

    fn flush(
        &mut self,
        conn: &mut redis::Connection,
        prefix: &str,
        node: &str,
    ) -> redis::RedisResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (key, events) = (self.hash(prefix), format!("{prefix}:events"));
        let mut pipe = redis::pipe();
        for (field, value) in &self.pending {
            pipe.hset(&key, field, value).ignore();
            let msg = if self.value_in_event {
                format!("{} {node} {field} {value}", self.event)
            } else {
                format!("{} {node} {field}", self.event)
            };
            pipe.publish(&events, msg).ignore();
        }
        pipe.query::<()>(conn)?;
        self.pending.clear();
        Ok(())
    }

    fn resync(&mut self, conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()> {
        let key = self.hash(prefix);
        let fill = self.kind.fill();
        if !self.pending.is_empty() || !fill.is_empty() {
            let mut pipe = redis::pipe();
            for (field, value) in &self.pending {
                pipe.hset(&key, field, value).ignore();
            }
            for (field, value) in &fill {
                pipe.hset_nx(&key, field, value).ignore();
            }
            pipe.query::<()>(conn)?;
        }
        let all: Vec<(String, String)> = conn.hgetall(&key)?;
        let applied = all
            .iter()
            .filter(|(field, value)| self.kind.apply(field, value))
            .count();
        if applied > 0 {
            tracing::info!(fields = applied, "cluster: applied {key} from redis");
        }
        Ok(())
    }

    fn remote(
        &mut self,
        conn: Option<&mut redis::Connection>,
        prefix: &str,
        rest: &str,
    ) -> redis::RedisResult<()> {
        if self.value_in_event {
            if let Some((field, value)) = rest.split_once(' ') {
                self.kind.apply(field, value);
            }
            return Ok(());
        }
        let Some(conn) = conn else {
            self.need_resync = true;
            return Ok(());
        };
        let value: Option<String> = conn.hget(self.hash(prefix), rest)?;
        if let Some(v) = value {
            self.kind.apply(rest, &v);
        }
        Ok(())
    }
}
