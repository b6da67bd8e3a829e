//! The config in force and the operator's state of every server, the one truth the
//! runtime API, the cluster thread, reloads and upgrades read and change; and the
//! shards' control channels, to tell them and to gather their figures.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::{AdminState, HealthView, ShardLink, ShardReport, ToShard, Up};
use crate::config::Config;
use crate::stats::Snapshot;

/// Longest the runtime API waits for every shard to confirm a change.
pub const APPLY_WAIT: Duration = Duration::from_secs(2);

/// An operator setting to carry over an upgrade: (backend, server, state word, weight).
pub type ServerState = (String, String, String, u32);

/// The operator's settings for a server: the truth that `show servers state` reports
/// and that shards are told about.
#[derive(Debug, Clone, Copy)]
pub struct Operator {
    pub admin: AdminState,
    pub weight: u32,
    pub maxconn: Option<u32>,
}

/// What the admin threads share.
pub struct Core {
    cfg: std::sync::RwLock<Arc<Config>>,
    shards: Vec<ShardLink>,
    health: Mutex<HealthView>,
    pub operator: Mutex<Vec<Vec<Operator>>>,
    pub started: Instant,
    /// Soft stop in progress: `/ready` fails.
    pub stopping: AtomicBool,
    /// The cluster thread, told about operator changes made here.
    pub cluster: std::sync::OnceLock<Sender<Up>>,
    /// Certificates changed at run time, and the `set ssl cert` transaction.
    pub certs: Mutex<super::Certs>,
    /// The session-ticket keys every node shares, once the cluster thread read them.
    pub shared_tickets: Mutex<Option<Arc<str>>>,
    /// The resolver thread's counters (`show resolvers`), replaced by a reload.
    pub dns: Mutex<super::DnsCounters>,
    /// The resolver thread's commands (none when no server asks DNS), replaced by a
    /// reload.
    pub dns_cmds: Mutex<Option<Sender<super::DnsCmd>>>,
    /// The health thread's commands, replaced by a reload.
    pub health_cmds: Mutex<Option<Sender<super::HealthCmd>>>,
    /// Maps and ACL patterns changed at run time (`add map`, ...).
    pub patterns: Mutex<super::maps::PatState>,
    /// The main thread, which puts a changed list of servers in force (`add server`,
    /// `del server`); unset when nothing runs the process's main loop.
    pub servers: std::sync::OnceLock<Sender<super::ServersChange>>,
}

/// Merged figures of every shard.
pub struct Gathered {
    pub stats: Snapshot,
    /// Per backend: requests queued now, and the sum of shards' maxima.
    pub queued: Vec<(u64, u64)>,
    pub shards_answered: usize,
    /// Per shard that answered: (shard, connections accepted on all its frontends), to
    /// see how evenly the kernel spreads connections over the SO_REUSEPORT sockets.
    pub per_shard: Vec<(usize, u64)>,
    /// What the shards hold (idle connections, pipes, buffers, requests in flight).
    pub held: super::Held,
    /// Per shard that answered: its idle connections per backend and server.
    pub shard_idle: Vec<(usize, Vec<Vec<u64>>)>,
}

impl Core {
    pub fn new(cfg: Arc<Config>, shards: Vec<ShardLink>, health: HealthView) -> Core {
        // Rates and dates count from the process's epoch: fix it now.
        let _ = crate::stats::process::epoch();
        let operator = operators(&cfg, |_, _| None);
        Core {
            certs: Mutex::new(super::Certs::new(&cfg)),
            patterns: Mutex::default(),
            dns: Mutex::default(),
            dns_cmds: Mutex::default(),
            health_cmds: Mutex::default(),
            shared_tickets: Mutex::new(None),
            cfg: std::sync::RwLock::new(cfg),
            shards,
            health: Mutex::new(health),
            operator: Mutex::new(operator),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            cluster: std::sync::OnceLock::new(),
            servers: std::sync::OnceLock::new(),
        }
    }

    /// How many shards run (each answers a `gather`).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Asks every shard for its figures and merges the answers (each shard answers
    /// within one control tick; a shard that does not within a second is left out).
    pub fn gather(&self) -> Gathered {
        let (tx, rx) = crossbeam_channel::unbounded::<ShardReport>();
        let mut asked = 0;
        for s in &self.shards {
            if s.send(ToShard::Snapshot(tx.clone())).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut merged: Option<Gathered> = None;
        for _ in 0..asked {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(r) = rx.recv_timeout(left) else { break };
            let accepted = r.stats.frontends.iter().map(|f| f.stot).sum();
            match &mut merged {
                None => {
                    merged = Some(Gathered {
                        stats: r.stats,
                        queued: r.queued,
                        shards_answered: 1,
                        per_shard: vec![(r.shard, accepted)],
                        shard_idle: vec![(r.shard, r.held.idle.clone())],
                        held: r.held,
                    })
                }
                Some(m) => {
                    m.stats.merge(&r.stats);
                    m.held.add(&r.held);
                    m.shard_idle.push((r.shard, r.held.idle.clone()));
                    // Every shard reports the same process-wide queues.
                    for (a, b) in m.queued.iter_mut().zip(&r.queued) {
                        a.0 = a.0.max(b.0);
                        a.1 = a.1.max(b.1);
                    }
                    m.shards_answered += 1;
                    m.per_shard.push((r.shard, accepted));
                }
            }
        }
        merged.unwrap_or_else(|| {
            let cfg = self.cfg();
            Gathered {
                stats: crate::stats::ShardStats::new(&cfg).snapshot(),
                queued: vec![(0, 0); cfg.backends.len()],
                shards_answered: 0,
                per_shard: Vec::new(),
                shard_idle: Vec::new(),
                held: super::Held {
                    idle: cfg
                        .backends
                        .iter()
                        .map(|b| vec![0; b.servers.len()])
                        .collect(),
                    h2_open: cfg
                        .backends
                        .iter()
                        .map(|b| vec![0; b.servers.len()])
                        .collect(),
                    ..Default::default()
                },
            }
        })
    }

    /// Every shard's client connections and captured invalid requests (a shard that
    /// does not answer within a second is left out).
    pub fn inspect(&self) -> Vec<super::Inspected> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let asked = self
            .shards
            .iter()
            .filter(|s| s.send(ToShard::Inspect(tx.clone())).is_ok())
            .count();
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut out = Vec::new();
        for _ in 0..asked {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => out.push(r),
                Err(_) => break,
            }
        }
        out.sort_by_key(|r| r.shard);
        out
    }

    /// Tells every shard.
    pub fn broadcast(&self, make: impl Fn() -> ToShard) {
        for s in &self.shards {
            let _ = s.send(make());
        }
    }

    /// Tells every shard and returns once every shard applied it (HAProxy's runtime
    /// API semantics: a change is in force when the command is answered). `Err`: the
    /// line for the operator, when some shard did not confirm within `APPLY_WAIT`.
    pub fn apply_everywhere(&self, make: impl Fn() -> ToShard) -> Result<(), String> {
        self.broadcast(make);
        self.confirm()
    }

    /// Returns once every shard has handled what was sent to it before this call, by
    /// the admin thread or another (the health thread's flips): a shard's channel is
    /// first in, first out, so its answer to an `Ack` sent now comes after them.
    pub fn confirm(&self) -> Result<(), String> {
        let (tx, rx) = crossbeam_channel::bounded(self.shards.len());
        let mut asked = 0;
        for s in &self.shards {
            if s.send(ToShard::Ack(tx.clone())).is_ok() {
                asked += 1;
            }
        }
        let deadline = Instant::now() + APPLY_WAIT;
        let mut confirmed = 0;
        while confirmed < asked {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(_) => confirmed += 1,
                Err(_) => break,
            }
        }
        if confirmed == self.shards.len() {
            Ok(())
        } else {
            Err(format!(
                "Change sent, but only {confirmed} of {} shards confirmed it within {}s.\n",
                self.shards.len(),
                APPLY_WAIT.as_secs()
            ))
        }
    }

    /// The configuration in force (replaced by a reload).
    pub fn cfg(&self) -> Arc<Config> {
        self.cfg
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The health thread's current view.
    pub fn health(&self) -> HealthView {
        self.health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// After a reload: the new config and health view; operator settings are kept for
    /// servers that exist in both (same backend and server name). `servers_only`: the
    /// runtime API changed the servers, so certificates and maps changed at run time
    /// stay (`runtime_resync` tells the shards), where a reload reads the files again.
    pub fn reload(&self, cfg: Arc<Config>, health: HealthView, servers_only: bool) {
        let old = self.cfg();
        let old_ops = self.operator.lock().map(|o| o.clone()).unwrap_or_default();
        let names = crate::config::by_name(&old.backends, |b| &b.name);
        let ops = operators(&cfg, |b, s| {
            let ob = *names.get(b)?;
            let os = old.backends[ob].servers.iter().position(|x| x.name == s)?;
            old_ops.get(ob)?.get(os).copied()
        });
        if let Ok(mut o) = self.operator.lock() {
            *o = ops;
        }
        // The files are read again: what a commit changed and did not write is gone,
        // as is a transaction in progress (as with HAProxy's reload).
        if let Ok(mut c) = self.certs.lock() {
            if servers_only {
                c.carry_to(&cfg);
            } else {
                *c = super::Certs::new(&cfg);
            }
        }
        if servers_only {
            if let Ok(mut p) = self.patterns.lock() {
                p.carry_to(&cfg);
            }
        }
        if let Ok(mut c) = self.cfg.write() {
            *c = cfg;
        }
        if let Ok(mut h) = self.health.lock() {
            *h = health;
        }
    }

    /// Tells shards on a new config made by `add server` / `del server` what the
    /// operator changed at run time, so that it stays: map entries and certificates.
    pub fn resend_runtime_changes(&self) {
        let cfg = self.cfg();
        let certs = self
            .certs
            .lock()
            .ok()
            .and_then(|c| c.resync(&cfg))
            .map(Arc::new);
        for s in &self.shards {
            for msg in self.pat_resync(&cfg) {
                let _ = s.send(msg);
            }
            if let Some(u) = &certs {
                let _ = s.send(ToShard::Certs(u.clone()));
            }
        }
    }

    /// Every server's operator state and weight, for a hand-over (`-sf`).
    pub fn operator_states(&self) -> Vec<ServerState> {
        let cfg = self.cfg();
        let ops = self.operator.lock().map(|o| o.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for (bi, b) in cfg.backends.iter().enumerate() {
            for (si, s) in b.servers.iter().enumerate() {
                if let Some(o) = ops.get(bi).and_then(|v| v.get(si)) {
                    let state = o.admin.word().to_string();
                    out.push((b.name.clone(), s.name.clone(), state, o.weight));
                }
            }
        }
        out
    }

    /// Tells the other nodes (through the cluster thread) about an operator change.
    pub fn share(&self, b: usize, s: usize) {
        let Some(tx) = self.cluster.get() else { return };
        let cfg = self.cfg();
        let Some(op) = self
            .operator
            .lock()
            .ok()
            .and_then(|o| o.get(b)?.get(s).copied())
        else {
            return;
        };
        let _ = tx.send(Up::Operator {
            backend: cfg.backends[b].name.clone(),
            server: cfg.backends[b].servers[s].name.clone(),
            state: op.admin,
            weight: op.weight,
        });
    }

    /// Tells the other nodes (through the cluster thread) about `set server addr`
    /// (`fqdn`: `set server fqdn`) made here; `value`: the words after the verb.
    pub fn share_address(&self, b: usize, s: usize, fqdn: bool, value: String) {
        let Some(tx) = self.cluster.get() else { return };
        let cfg = self.cfg();
        let _ = tx.send(Up::Address {
            server: format!(
                "{}/{}",
                cfg.backends[b].name, cfg.backends[b].servers[s].name
            ),
            fqdn,
            value,
        });
    }

    /// An operator change made on another node: applied to every shard here, without
    /// telling the others again. `false`: no such server, or nothing changed.
    pub fn apply_shared(
        &self,
        backend: &str,
        server: &str,
        state: AdminState,
        weight: u32,
    ) -> bool {
        let Some((b, s)) = self.find_server(&format!("{backend}/{server}")) else {
            return false;
        };
        let old = match self.operator.lock() {
            Ok(mut o) => {
                let old = o[b][s];
                o[b][s].admin = state;
                o[b][s].weight = weight;
                old
            }
            Err(_) => return false,
        };
        if old.admin != state {
            tracing::warn!(
                "Server {backend}/{server} is going {state:?} by an operator on another node."
            );
            self.broadcast(|| ToShard::SetAdmin {
                backend: b,
                server: s,
                state,
            });
        }
        if old.weight != weight {
            tracing::info!(
                "Server {backend}/{server} weight set to {weight} by an operator on another node."
            );
            self.broadcast(|| ToShard::SetWeight {
                backend: b,
                server: s,
                weight,
            });
        }
        old.admin != state || old.weight != weight
    }

    /// What a shard restarted after a panic must be told: every server's health and
    /// operator settings, if `cfg` is still the config in force.
    pub fn resync_messages(&self, cfg: &Config) -> Vec<ToShard> {
        if !std::ptr::eq(Arc::as_ptr(&self.cfg()), cfg) {
            return Vec::new();
        }
        let health = self.health();
        let health = health.lock().map(|h| h.clone()).unwrap_or_default();
        let ops = self.operator.lock().map(|o| o.clone()).unwrap_or_default();
        let mut out = Vec::new();
        out.extend(self.pat_resync(&self.cfg()));
        if let Some(u) = self.certs.lock().ok().and_then(|c| c.resync(cfg)) {
            out.push(ToShard::Certs(Arc::new(u)));
        }
        if let Some(k) = self.shared_tickets.lock().ok().and_then(|k| k.clone()) {
            out.push(ToShard::TicketKeys(k));
        }
        for (backend, servers) in ops.iter().enumerate() {
            for (server, o) in servers.iter().enumerate() {
                if let Some(v) = health.get(backend).and_then(|b| b.get(server)) {
                    out.push(ToShard::ServerUp {
                        backend,
                        server,
                        up: v.up,
                    });
                }
                out.push(ToShard::SetAdmin {
                    backend,
                    server,
                    state: o.admin,
                });
                out.push(ToShard::SetWeight {
                    backend,
                    server,
                    weight: o.weight,
                });
                out.push(ToShard::SetMaxconn {
                    backend,
                    server,
                    maxconn: o.maxconn,
                });
                // Where DNS or `set server addr` put it, if they did.
                let dns = cfg
                    .backends
                    .get(backend)
                    .and_then(|b| b.servers.get(server));
                if let (Some(s), Some(v)) = (dns, health.get(backend).and_then(|b| b.get(server))) {
                    if s.dns.is_some() || s.no_addr || v.addr != s.addr {
                        out.push(ToShard::SetAddr {
                            backend,
                            server,
                            addr: (!v.no_addr).then_some(v.addr),
                            weight: v.dns_weight,
                        });
                    }
                }
            }
        }
        out
    }

    pub fn find_server(&self, spec: &str) -> Option<(usize, usize)> {
        let cfg = self.cfg();
        let (b, s) = spec.split_once('/')?;
        let bi = cfg.backends.iter().position(|x| x.name == b)?;
        let si = cfg.backends[bi].servers.iter().position(|x| x.name == s)?;
        Some((bi, si))
    }
}

/// Operator settings for every server: what the server-state file gave, else `keep`
/// gives the previous ones of a server that existed before a reload; others start
/// from the config.
fn operators(cfg: &Config, keep: impl Fn(&str, &str) -> Option<Operator>) -> Vec<Vec<Operator>> {
    use crate::config::state_file::SavedAdmin;
    cfg.backends
        .iter()
        .map(|b| {
            b.servers
                .iter()
                .map(|s| {
                    let kept = keep(&b.name, &s.name);
                    let admin = match s.saved.map(|v| v.admin) {
                        Some(SavedAdmin::Maint) => AdminState::Maint,
                        Some(SavedAdmin::Drain) => AdminState::Drain,
                        Some(SavedAdmin::Ready) => AdminState::Ready,
                        None => match kept {
                            Some(k) => return k,
                            None if s.disabled => AdminState::Maint,
                            None => AdminState::Ready,
                        },
                    };
                    Operator {
                        admin,
                        weight: s.start_weight(),
                        // The file has no maxconn: a reload keeps the operator's.
                        maxconn: kept.map_or(s.maxconn, |k| k.maxconn),
                    }
                })
                .collect()
        })
        .collect()
}
