//! Servers added and deleted at run time (`add server`, `del server`), across nodes.
//! A change on one node is written to the hash `PREFIX:servers` (field
//! `BACKEND/SERVER`, value: the `add server` line's address and keywords, or `-` once
//! deleted) and published as `srv NODE BACKEND/SERVER`; other nodes read the field and
//! make the same change with the same line (a server added in maintenance, as on the
//! first node; its state then follows `PREFIX:operator`). A node that (re)connects
//! first writes its own changes, then makes those of the hash it has not made.

use std::collections::BTreeMap;
use std::sync::Arc;

use redis::Commands;

use crate::control::Core;

/// The value of a deleted server.
const DELETED: &str = "-";

pub struct ServerSync {
    core: Arc<Core>,
    /// Local changes not yet in Redis: field → value.
    pending: BTreeMap<String, String>,
    /// Not before the process's main loop runs: it is the one that makes changes.
    pub need_resync: bool,
}

impl ServerSync {
    pub fn new(core: Arc<Core>) -> ServerSync {
        ServerSync {
            core,
            pending: BTreeMap::new(),
            need_resync: false,
        }
    }

    pub fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// `line` empty: deleted.
    pub fn local_change(&mut self, server: String, line: String) {
        let value = if line.is_empty() {
            DELETED.into()
        } else {
            line
        };
        self.pending.insert(server, value);
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
        for (field, value) in &self.pending {
            pipe.hset(format!("{prefix}:servers"), field, value)
                .ignore();
            pipe.publish(format!("{prefix}:events"), format!("srv {node} {field}"))
                .ignore();
        }
        pipe.query::<()>(conn)?;
        self.pending.clear();
        Ok(())
    }

    /// After a (re)connect: our changes, then the hash's made here.
    pub fn resync(&mut self, conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()> {
        let key = format!("{prefix}:servers");
        if !self.pending.is_empty() {
            let mut pipe = redis::pipe();
            for (field, value) in &self.pending {
                pipe.hset(&key, field, value).ignore();
            }
            pipe.query::<()>(conn)?;
            self.pending.clear();
        }
        let all: Vec<(String, String)> = conn.hgetall(&key)?;
        for (field, value) in all {
            self.apply(&field, &value);
        }
        Ok(())
    }

    /// `BACKEND/SERVER` changed on another node.
    pub fn remote(
        &mut self,
        conn: &mut redis::Connection,
        prefix: &str,
        field: &str,
    ) -> redis::RedisResult<()> {
        let value: Option<String> = conn.hget(format!("{prefix}:servers"), field)?;
        if let Some(v) = value {
            self.apply(field, &v);
        }
        Ok(())
    }

    /// Makes the change here unless it is made already.
    fn apply(&self, field: &str, value: &str) {
        let exists = self.core.find_server(field).is_some();
        let answer = match (value == DELETED, exists) {
            (true, true) => self.core.del_server(&[field], true),
            (false, false) => {
                let words: Vec<&str> = std::iter::once(field).chain(value.split(' ')).collect();
                self.core.add_server(&words, true)
            }
            _ => return,
        };
        let verb = if value == DELETED { "del" } else { "add" };
        tracing::warn!(
            server = field,
            "cluster: {verb} server from another node: {}",
            answer.trim_end()
        );
    }
}
