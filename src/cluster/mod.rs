//! Beyond one node: the cluster thread keeps what several ringlb nodes must agree on
//! (operators' server states, sticky sessions, request-rate counts) in Redis, and
//! exchanges it with the shards over channels. Nothing on the request path waits for
//! it: shards answer from their local copies (`crate::tables`) and queue what they learn.
//! Without `cluster.redis` the same thread makes the shards of one node agree.
//!
//! `link`: the Redis connection, with backoff and the subscriber; `operator`: server
//! states; `stick`: stick-table records; `rate`: request counts per window;
//! `tickets`: the TLS session-ticket keys; `maps`: map and ACL files changed at run
//! time; `servers`: servers added and deleted at run time; `address`: their addresses
//! and names set at run time. The last four share one pattern (`shared`).

mod address;
mod link;
mod maps;
mod operator;
mod rate;
mod servers;
mod shared;
mod stick;
mod tables;
mod tickets;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::control::Core;
use crate::control::ToShard;
use crate::control::{ShardLink, StickDown, Up};
use shared::{Shared, Synced};

/// The shared hashes of a `Thread` (disjoint borrows of its fields), in the order
/// their changes depend on each other: servers first (an operator state, an address
/// may be about a server added elsewhere).
macro_rules! shared {
    ($t:expr) => {
        [
            &mut $t.servers as &mut dyn Synced,
            &mut $t.operator,
            &mut $t.maps,
            &mut $t.addrs,
            &mut $t.fqdns,
        ]
    };
}

/// Longest a starting node waits for its first exchange with Redis.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(2);

/// The running cluster thread.
pub struct Cluster {
    pub tx: Sender<Up>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Cluster {
    /// Starts the cluster thread (and, with Redis, its subscriber).
    pub fn spawn(
        cfg: Arc<Config>,
        rx: Receiver<Up>,
        tx: Sender<Up>,
        shards: Vec<ShardLink>,
        core: Arc<Core>,
    ) -> std::io::Result<Cluster> {
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let handle = std::thread::Builder::new()
            .name("ringlb-cluster".into())
            .spawn(move || {
                let thread = Thread::new(&cfg, shards, core);
                // The thread keeps what it took from the config, not the config: a
                // reload must be able to free it.
                drop(cfg);
                thread.run(rx, ready_tx)
            })?;
        // A starting node catches up (operator states) before it serves, unless Redis
        // takes longer than this to answer.
        let _ = ready_rx.recv_timeout(FIRST_SYNC_WAIT);
        Ok(Cluster {
            tx,
            handle: Some(handle),
        })
    }

    pub fn stop(mut self) {
        let _ = self.tx.send(Up::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The cluster thread's state.
struct Thread {
    node: String,
    prefix: String,
    sync_interval: Duration,
    shards: Vec<ShardLink>,
    link: link::Link,
    events: Option<(Receiver<link::Event>, link::Subscriber)>,
    operator: Shared<operator::Operator>,
    maps: Shared<maps::Maps>,
    servers: Shared<servers::Servers>,
    addrs: Shared<address::Address>,
    fqdns: Shared<address::Address>,
    /// The process's main loop runs (`ready` was sent).
    started: bool,
    stick: stick::StickSync,
    rate: rate::RateSync,
    tickets: tickets::TicketSync,
    core: Arc<Core>,
    tables: tables::TableSync,
}

impl Thread {
    fn new(cfg: &Config, shards: Vec<ShardLink>, core: Arc<Core>) -> Thread {
        let node = format!("{:016x}", fastrand::u64(..));
        let prefix = cfg.cluster.prefix.clone();
        let link = link::Link::new(cfg.cluster.redis.as_deref());
        let events = cfg.cluster.redis.as_deref().and_then(|url| {
            let (tx, rx) = crossbeam_channel::unbounded();
            link::Subscriber::spawn(url, format!("{prefix}:events"), tx).map(|s| (rx, s))
        });
        let n = shards.len();
        Thread {
            node,
            sync_interval: cfg.cluster.sync_interval,
            shards,
            link,
            events,
            operator: operator::sync(core.clone()),
            maps: maps::sync(core.clone()),
            servers: servers::sync(core.clone()),
            addrs: address::addrs(core.clone()),
            fqdns: address::fqdns(core.clone()),
            started: false,
            tickets: tickets::TicketSync::new(cfg.cluster.ticket_rotation),
            core,
            stick: stick::StickSync::default(),
            rate: rate::RateSync::new(n),
            tables: tables::TableSync::new(n),
            prefix,
        }
    }

    fn run(mut self, rx: Receiver<Up>, ready: Sender<()>) {
        self.sync(true);
        let _ = ready.send(());
        // Servers added or deleted elsewhere: once the main loop runs, which makes them
        // (before, a change would wait for it, and the node's start for the change).
        self.started = true;
        for h in shared!(self) {
            h.started();
        }
        let mut next_sync = Instant::now() + self.sync_interval;
        let never = crossbeam_channel::never();
        loop {
            let wait = next_sync.saturating_duration_since(Instant::now());
            let events = self.events.as_ref().map_or(&never, |(rx, _)| rx);
            crossbeam_channel::select! {
                recv(rx) -> msg => match msg {
                    Ok(Up::Stop) | Err(_) => break,
                    Ok(Up::Batch { shard, config, sticks, counts, tables }) => {
                        let down = self.stick.ingest(&config, &sticks);
                        self.broadcast_sticks(down);
                        self.rate.ingest(shard, &config, &counts);
                        self.tables.ingest(shard, &config, &tables);
                    }
                    Ok(Up::Operator { backend, server, state, weight }) => {
                        let (field, value) = operator::change(&backend, &server, state, weight);
                        self.operator.local_change(field, value);
                    }
                    Ok(Up::Servers { server, line }) => {
                        if line.is_empty() {
                            // Its address and name go with it.
                            let cleared = address::CLEARED.to_string();
                            self.addrs.local_change(server.clone(), cleared.clone());
                            self.fqdns.local_change(server.clone(), cleared);
                        }
                        self.servers.local_change(server, servers::value(line));
                    }
                    Ok(Up::Address { server, fqdn, value }) => {
                        let h = if fqdn { &mut self.fqdns } else { &mut self.addrs };
                        h.local_change(server, value);
                    }
                    Ok(Up::Patterns { file, entries }) => {
                        self.maps.local_change(file, maps::value(&entries));
                    }
                    Ok(Up::ClearSticks { owner, backend, key, done }) => {
                        // Records learnt before the command went out to the shards
                        // ahead of this clear (each shard's channel keeps order); none
                        // comes back after it from here.
                        self.stick.clear(&backend, key);
                        for tx in &self.shards {
                            let _ = tx.send(ToShard::ClearTable { owner, limiter: None, key });
                        }
                        let _ = done.send(());
                    }
                },
                recv(events) -> ev => match ev {
                    Ok(link::Event::Subscribed) => {
                        self.stick.need_resync = true;
                        let started = self.started;
                        for h in shared!(self) {
                            h.connected(started);
                        }
                    }
                    Ok(link::Event::Message(text)) => self.remote(&text),
                    Err(_) => {}
                },
                default(wait) => {}
            }
            // Operator changes and stick records go at once; counts once per interval.
            let now = Instant::now();
            let due = now >= next_sync;
            if due {
                next_sync = now + self.sync_interval;
            }
            let busy = due
                || self.stick.pending()
                || shared!(self)
                    .into_iter()
                    .any(|h| h.pending() || *h.need_resync());
            if busy {
                self.sync(due);
            }
            if due {
                let per_shard = self.rate.answers();
                for (tx, counts) in self.shards.iter().zip(per_shard) {
                    if !counts.is_empty() {
                        let _ = tx.send(ToShard::Rates(counts));
                    }
                }
                let per_shard = self.tables.answers();
                for (tx, downs) in self.shards.iter().zip(per_shard) {
                    if !downs.is_empty() {
                        let _ = tx.send(ToShard::Tables(downs));
                    }
                }
            }
        }
        if let Some((_, sub)) = self.events.take() {
            sub.stop();
        }
    }

    /// One round with Redis (when configured and reachable).
    fn sync(&mut self, counts: bool) {
        if !self.link.configured() {
            // Local only: records are decided here, counts summed here (and nothing
            // allocated while idle).
            self.stick.drop_pending();
            for h in shared!(self) {
                h.drop_pending();
            }
            return;
        }
        let prefix = self.prefix.clone();
        let node = self.node.clone();
        let Some((conn, fresh)) = self.link.get() else {
            return;
        };
        let mut hashes = shared!(self);
        if fresh {
            // (Re)connected: push what changed meanwhile, then catch up.
            self.stick.need_resync = true;
            for h in hashes.iter_mut() {
                h.connected(self.started);
            }
        }
        let result = (|| -> redis::RedisResult<Vec<StickDown>> {
            for h in hashes.iter_mut() {
                if std::mem::take(h.need_resync()) {
                    if let Err(e) = h.resync(conn, &prefix) {
                        *h.need_resync() = true;
                        return Err(e);
                    }
                }
            }
            if std::mem::take(&mut self.stick.need_resync) {
                self.stick.mark_all_pending();
            }
            for h in hashes.iter_mut() {
                h.flush(conn, &prefix, &node)?;
            }
            let adopted = self.stick.flush(conn, &prefix, &node)?;
            if let Some(keys) = self.tickets.sync(conn, &prefix)? {
                if let Ok(mut k) = self.core.shared_tickets.lock() {
                    *k = Some(keys.clone());
                }
                for tx in &self.shards {
                    let _ = tx.send(ToShard::TicketKeys(keys.clone()));
                }
            }
            if counts {
                self.rate.flush(conn, &prefix)?;
                self.tables.flush(conn, &prefix)?;
                // Notices a lost server even when there is nothing to write.
                redis::cmd("PING").query::<()>(conn)?;
            }
            Ok(adopted)
        })();
        match result {
            Ok(adopted) => self.broadcast_sticks(adopted),
            Err(e) => self.link.failed(&e),
        }
    }

    /// A message from another node (or our own, ignored): `KIND NODE REST`.
    fn remote(&mut self, text: &str) {
        let Some((kind, rest)) = text.split_once(' ') else {
            return;
        };
        let Some((node, rest)) = rest.split_once(' ') else {
            return;
        };
        if node == self.node {
            return;
        }
        if kind == "stick" {
            if let Some(d) = self.stick.remote(rest.split(' ')) {
                self.broadcast_sticks(vec![d]);
            }
            return;
        }
        let prefix = self.prefix.clone();
        let (conn, fresh) = match self.link.get() {
            Some((c, fresh)) => (Some(c), fresh),
            None => (None, false),
        };
        let mut hashes = shared!(self);
        if fresh {
            self.stick.need_resync = true;
            for h in hashes.iter_mut() {
                h.connected(self.started);
            }
        }
        let Some(h) = hashes.iter_mut().find(|h| h.event() == kind) else {
            return;
        };
        if let Err(e) = h.remote(conn, &prefix, rest) {
            *h.need_resync() = true;
            self.link.failed(&e);
        }
    }

    fn broadcast_sticks(&self, recs: Vec<StickDown>) {
        if recs.is_empty() {
            return;
        }
        let recs = Arc::new(recs);
        for tx in &self.shards {
            let _ = tx.send(ToShard::Sticks(recs.clone()));
        }
    }
}
