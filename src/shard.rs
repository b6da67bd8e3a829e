//! A shard's state, as its connections share it: the config generation they run on,
//! its copy of every server (health, operator state, weight, balancer, pools), its
//! counters, its local copies of the shared tables, its connection limits. Only this
//! shard's thread touches it; a reload makes a new generation that new connections
//! take while old ones finish on theirs. The thread and its runtime are `runtime`'s.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::accesslog::ShardLog;
use crate::config::Config;
use crate::control::ServiceQuery;
use crate::limits::{ConnLimit, Shared};
use crate::rules::World;
use crate::stats::ShardStats;
use crate::upstream::Upstreams;

pub mod maps;

/// The state a shard's connections share. Only this shard's thread touches it.
pub struct Shard {
    pub id: usize,
    pub config: Arc<Config>,
    pub upstreams: Upstreams,
    /// Wakes the shard's control loop (shared by every generation of this shard).
    pub wake: Rc<crate::io::LocalBell>,
    /// Set on shutdown: keep-alive connections close at their next request boundary.
    /// Shared by every config generation of this shard, as is the in-flight count.
    pub draining: Rc<Cell<bool>>,
    /// Pipes for splicing large bodies (shared by generations).
    pub pipes: Rc<crate::splice::PipePool>,
    /// Idle upstream connections, by server identity (shared by generations).
    pub pools: Rc<crate::upstream::Pools>,
    inflight: Rc<Cell<usize>>,
    pub stats: ShardStats,
    /// Test hook (`RINGLB_FAULT_PANIC_PATH`, debug builds and the `fault-injection`
    /// feature only): a request for this path panics, to prove that a panic costs one
    /// connection and nothing else.
    pub fault_panic_path: Option<String>,
    /// Access log lines waiting for the next tick.
    pub log: Option<Rc<ShardLog>>,
    pub services: Sender<ServiceQuery>,
    /// Local copies of the shared state (stick tables, rate counters).
    pub cluster: Rc<crate::tables::ShardCluster>,
    /// The limits every shard shares (servers, queues, frontends, the process).
    pub shared: Arc<Shared>,
    /// Rung when a connection limit has room again: paused accept loops look again
    /// (shared by generations).
    pub room: Rc<crate::io::LocalBell>,
    /// Where the current generation lives, so that a keep-alive connection can move to
    /// a newer config at its next request.
    home: std::cell::RefCell<std::rc::Weak<std::cell::RefCell<Rc<Shard>>>>,
    /// This generation's TLS contexts per bind (replaced in place by `commit ssl
    /// cert`; a connection keeps the set it started with).
    pub tls: crate::tls::shard::ShardTls,
    /// Handshakes computing at once on this shard (shared by generations).
    pub turns: Rc<crate::tls::gate::Turns>,
    /// The session-ticket keys every node shares (`[cluster]`), once the cluster
    /// thread has them (shared by generations).
    pub shared_tickets: Rc<std::cell::RefCell<Option<Arc<str>>>>,
    /// Maps and ACL patterns changed at run time (this generation's config only).
    pub maps: maps::ShardMaps,
    /// The generations a reload replaced (shared by generations): those still alive
    /// have requests in flight on their servers (see `fold_older`).
    older: Rc<std::cell::RefCell<Vec<Older>>>,
}

/// A generation a reload replaced, as long as it lives.
struct Older {
    gen: std::rc::Weak<Shard>,
    /// Only `add server` / `del server` replaced it and those after it: `show stat`
    /// counts its sessions.
    counted: bool,
}

/// A connection's slot under the process's or a frontend's maxconn, given back (to
/// whichever shard waits for one) when the connection closes.
pub struct ConnPermit {
    limit: Arc<ConnLimit>,
    shared: Arc<Shared>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.limit.give(&self.shared.links);
    }
}

/// Connection slots a connection holds until it closes.
pub type Permits = (Option<ConnPermit>, Option<ConnPermit>);

impl Shard {
    /// The first generation of shard `id`'s state (later ones: `next_generation`).
    #[allow(clippy::too_many_arguments)] // each is a distinct part, named at the call
    pub fn new(
        id: usize,
        config: Arc<Config>,
        stats: ShardStats,
        reports: Option<Sender<crate::control::HealthReport>>,
        log: Option<Rc<ShardLog>>,
        services: Sender<ServiceQuery>,
        wake: Rc<crate::io::LocalBell>,
        shared: Arc<Shared>,
        maxconn: Option<u32>,
    ) -> Shard {
        // The descriptors maxconn was sized for bound this shard's pooled connections
        // and pipes (a budget, not a connection limit).
        let budget = crate::limits::fd_share(maxconn, id, config.runtime.shards);
        let pools = Rc::new(crate::upstream::Pools::new(budget));
        Shard {
            id,
            wake: wake.clone(),
            upstreams: Upstreams::new(&config, id, reports, &shared, pools.clone(), wake.clone()),
            draining: Rc::new(Cell::new(false)),
            pipes: Rc::new(crate::splice::PipePool::new(budget)),
            pools,
            inflight: Rc::new(Cell::new(0)),
            stats,
            fault_panic_path: fault_panic_path(),
            log,
            services,
            cluster: Rc::new(crate::tables::ShardCluster::new(&config, wake)),
            shared,
            room: Rc::default(),
            home: std::cell::RefCell::new(std::rc::Weak::new()),
            tls: shard_tls(&config, None),
            turns: Rc::new(crate::tls::gate::Turns::new(config.runtime.tls_handshakes)),
            shared_tickets: Rc::default(),
            maps: Default::default(),
            older: Rc::default(),
            config,
        }
    }

    /// The ticket keys every node shares changed (the cluster thread).
    pub fn share_tickets(&self, keys: Arc<str>) {
        self.tls.share_tickets(&keys);
        *self.shared_tickets.borrow_mut() = Some(keys);
    }

    /// New certificates (`commit ssl cert`), if they belong to this generation's config.
    pub fn apply_certs(&self, update: &crate::control::CertUpdate) {
        if !Arc::ptr_eq(&self.config, &update.config) {
            return;
        }
        let shared = self.shared_tickets.borrow();
        for (at, tls) in &update.binds {
            self.tls
                .replace(at.frontend, at.bind, tls, shared.as_deref());
        }
    }

    /// Where the current generation lives (set once, by the runtime).
    pub fn set_home(&self, home: &Rc<std::cell::RefCell<Rc<Shard>>>) {
        *self.home.borrow_mut() = Rc::downgrade(home);
    }

    /// Requests in flight (and new connections waiting for their first request).
    pub fn inflight(&self) -> usize {
        self.inflight.get()
    }

    /// The current generation, if a reload replaced this one.
    pub fn newer(&self) -> Option<Rc<Shard>> {
        let home = self.home.borrow().upgrade()?;
        let current = home.borrow().clone();
        (!std::ptr::eq(Rc::as_ptr(&current), self)).then_some(current)
    }

    /// Waits for room under the process's and the frontend's maxconn, counted across
    /// every shard: until then the connection stays in the kernel's backlog (accept
    /// is simply not called), as with HAProxy.
    pub async fn room(&self, frontend: usize) -> Permits {
        let global = self.shared.global.clone();
        let fe = self.shared.frontends.get(frontend).cloned().flatten();
        if global.is_none() && fe.is_none() {
            return (None, None);
        }
        loop {
            if let Some(p) = self.try_room(&global, &fe) {
                return p;
            }
            self.room.wait().await;
        }
    }

    /// Room at once, if there is some (`None`: wait with `room`).
    pub fn room_now(&self, frontend: usize) -> Option<Permits> {
        let global = self.shared.global.clone();
        let fe = self.shared.frontends.get(frontend).cloned().flatten();
        if global.is_none() && fe.is_none() {
            return Some((None, None));
        }
        self.try_room(&global, &fe)
    }

    /// Both slots, or none (and this shard is told when one frees).
    fn try_room(
        &self,
        global: &Option<Arc<ConnLimit>>,
        fe: &Option<Arc<ConnLimit>>,
    ) -> Option<Permits> {
        let permit = |limit: &Arc<ConnLimit>| ConnPermit {
            limit: limit.clone(),
            shared: self.shared.clone(),
        };
        let g = match global {
            Some(l) if !l.take_or_wait(self.id) => return None,
            Some(l) => Some(permit(l)),
            None => None,
        };
        let f = match fe {
            // Dropping `g` gives the process's slot back.
            Some(l) if !l.take_or_wait(self.id) => return None,
            Some(l) => Some(permit(l)),
            None => None,
        };
        Some((g, f))
    }
    /// The shard's state for a new config (a reload): servers that exist in both keep
    /// their health, operator state, weight and idle connections; counters carry over.
    /// Connections in flight finish on the old generation.
    /// `servers_only` (`add server`, `del server`): the tables carry over, their
    /// records following each server to its new place.
    pub fn next_generation(
        &self,
        config: Arc<Config>,
        shared: Arc<Shared>,
        servers_only: bool,
    ) -> Shard {
        let upstreams = Upstreams::new(
            &config,
            self.id,
            self.upstreams.reports(),
            &shared,
            self.pools.clone(),
            self.wake.clone(),
        );
        upstreams.adopt(&self.upstreams);
        self.upstreams.retire();
        let mut stats = ShardStats::new(&config);
        stats.adopt(&self.stats, &self.config, &config);
        Shard {
            id: self.id,
            upstreams,
            draining: self.draining.clone(),
            pipes: self.pipes.clone(),
            pools: self.pools.clone(),
            inflight: self.inflight.clone(),
            stats,
            fault_panic_path: self.fault_panic_path.clone(),
            log: self.log.clone(),
            services: self.services.clone(),
            cluster: if servers_only {
                self.cluster.renumber_servers(&self.config, &config);
                self.cluster.clone()
            } else {
                Rc::new(crate::tables::ShardCluster::new(&config, self.wake.clone()))
            },
            wake: self.wake.clone(),
            shared,
            room: self.room.clone(),
            home: std::cell::RefCell::new(self.home.borrow().clone()),
            tls: shard_tls(&config, self.shared_tickets.borrow().as_deref()),
            turns: self.turns.clone(),
            shared_tickets: self.shared_tickets.clone(),
            maps: Default::default(),
            older: self.older.clone(),
            config,
        }
    }

    /// `next` replaced `self` (a reload, or only the servers changed: `servers_only`):
    /// `self` lives on while its requests finish.
    pub fn replaced_by(self: &Rc<Self>, next: &Shard, servers_only: bool) {
        let mut older = next.older.borrow_mut();
        older.retain(|g| g.gen.strong_count() > 0);
        if !servers_only {
            for g in older.iter_mut() {
                g.counted = false;
            }
        }
        older.push(Older {
            gen: Rc::downgrade(self),
            counted: servers_only,
        });
    }

    /// Adds to `snap` (this generation's figures) the sessions older generations
    /// still run on its backends and servers (matched by name), where `show stat`
    /// counts them: those of generations only `add server` / `del server` replaced
    /// since the last reload (HAProxy's one process counts them; a reload is a new
    /// process for HAProxy, whose `show stat` does not count the old one's). Returns
    /// the others per server (`Held::older`; empty: none), which `del server`
    /// counts too. Off the request path (a snapshot asks).
    pub fn fold_older(&self, snap: &mut crate::stats::Snapshot) -> Vec<Vec<u64>> {
        let mut older = self.older.borrow_mut();
        older.retain(|g| g.gen.strong_count() > 0);
        if older.is_empty() {
            return Vec::new();
        }
        let names = crate::config::by_name(&self.config.backends, |b| &b.name);
        let mut apart: Vec<Vec<u64>> = self
            .config
            .backends
            .iter()
            .map(|b| vec![0; b.servers.len()])
            .collect();
        for g in older.iter() {
            let Some(old) = g.gen.upgrade() else { continue };
            for (ob, b) in old.config.backends.iter().enumerate() {
                let Some(&bi) = names.get(b.name.as_str()) else {
                    continue;
                };
                if let Some(c) = old.stats.backend_used(ob).filter(|_| g.counted) {
                    snap.backends[bi].scur += c.scur.get();
                }
                let now = &self.config.backends[bi].servers;
                for (os, s) in b.servers.iter().enumerate() {
                    let busy = old.stats.server_scur(ob, os);
                    let Some(si) = now.iter().position(|x| x.name == s.name) else {
                        continue;
                    };
                    match g.counted {
                        true => snap.servers[bi][si].scur += busy,
                        false => apart[bi][si] += busy,
                    }
                }
            }
        }
        apart
    }

    /// Counts one request (or L4 connection) in flight until the guard drops.
    pub fn begin_request(self: &Rc<Self>) -> InflightGuard {
        self.inflight.set(self.inflight.get() + 1);
        InflightGuard(self.clone())
    }
}

/// A generation is dropped once a reload replaced it and its last connection closed
/// (or when the shard stops): what it held goes back to the system.
impl Drop for Shard {
    fn drop(&mut self) {
        // The trimmer waits a little: by then these fields are freed.
        crate::memory::trim_soon();
    }
}

/// The TLS contexts of every bind of `config`, for one shard.
fn shard_tls(config: &Config, shared: Option<&str>) -> crate::tls::shard::ShardTls {
    let binds: Vec<Vec<_>> = config
        .frontends
        .iter()
        .map(|f| f.binds.iter().map(|b| b.tls.as_ref()).collect())
        .collect();
    crate::tls::shard::ShardTls::new(&binds, shared)
}

pub struct InflightGuard(Rc<Shard>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.set(self.0.inflight.get() - 1);
    }
}

/// The fault hook exists in debug builds (the test suite) and with the
/// `fault-injection` feature; release builds leave it out.
#[cfg(any(debug_assertions, feature = "fault-injection"))]
fn fault_panic_path() -> Option<String> {
    std::env::var("RINGLB_FAULT_PANIC_PATH").ok()
}

#[cfg(not(any(debug_assertions, feature = "fault-injection")))]
fn fault_panic_path() -> Option<String> {
    None
}

#[cfg(any(debug_assertions, feature = "fault-injection"))]
thread_local! {
    static DOOMED: Cell<bool> = const { Cell::new(false) };
}

/// The fault hook: a request for `PANIC_PATH/shard` kills its shard's runtime (at the
/// next control tick), a request for `PANIC_PATH` only its own connection.
pub fn fault(panic_path: &str, path: &str) {
    if path == panic_path {
        panic!("fault injection: request for {path}");
    }
    #[cfg(any(debug_assertions, feature = "fault-injection"))]
    if path.strip_prefix(panic_path) == Some("/shard") {
        DOOMED.with(|d| d.set(true));
    }
}

pub fn fault_kill_shard(_shard: usize) {
    #[cfg(any(debug_assertions, feature = "fault-injection"))]
    if DOOMED.with(|d| d.replace(false)) {
        panic!("fault injection: shard {_shard} killed");
    }
}

/// A shard answers rules' questions about its servers, counters and tables; names
/// come from its config.
impl crate::rules::World for Shard {
    fn unique_id_format(&self, fe: usize) -> Option<&crate::rules::LogFormat> {
        self.config.frontends.get(fe)?.unique_id_format.as_deref()
    }

    fn frontend_name(&self, fe: usize) -> Option<&str> {
        self.config.frontend_name(fe)
    }

    fn backend_name(&self, be: usize) -> Option<&str> {
        self.config.backend_name(be)
    }

    fn server_name(&self, be: usize, sv: usize) -> Option<&str> {
        self.config.server_name(be, sv)
    }

    fn backend_index(&self, name: &str) -> Option<usize> {
        self.config.backend_index(name)
    }

    fn server_index(&self, be: usize, name: &str) -> Option<usize> {
        World::server_index(&*self.config, be, name)
    }

    fn proxy_id(&self, fe: Option<usize>, be: Option<usize>) -> Option<i64> {
        self.config.proxy_id(fe, be)
    }

    fn server_id(&self, be: usize, sv: usize) -> Option<i64> {
        self.config.server_id(be, sv)
    }

    fn table_key(&self, table: u32) -> Option<crate::rules::stick::KeyType> {
        self.config.table_key(table)
    }

    fn thread(&self) -> Option<usize> {
        Some(self.id)
    }

    fn stopping(&self) -> bool {
        self.draining.get()
    }

    fn usable_counts(&self, be: usize) -> Option<(usize, usize)> {
        Some(self.upstreams.backends.get(be)?.usable_counts())
    }

    fn be_conn(&self, be: usize) -> Option<i64> {
        if be >= self.config.backends.len() {
            return None;
        }
        Some(self.stats.backend_used(be).map_or(0, |c| c.scur.get()) as i64)
    }

    fn fe_conn(&self, fe: usize) -> Option<i64> {
        Some(self.stats.frontends.get(fe)?.scur.get() as i64)
    }

    fn srv_conn(&self, be: usize, sv: usize) -> Option<i64> {
        // Counters are allocated at a backend's first use: 0 before, nothing allocated.
        self.upstreams.backends.get(be)?.servers.get(sv)?;
        Some(self.stats.server_scur(be, sv) as i64)
    }

    fn srv_is_up(&self, be: usize, sv: usize) -> Option<bool> {
        Some(self.upstreams.backends.get(be)?.servers.get(sv)?.usable())
    }

    fn queue(&self, be: usize) -> Option<i64> {
        Some(self.upstreams.backends.get(be)?.queue_figures().0 as i64)
    }

    fn connslots(&self, be: usize) -> Option<i64> {
        let be = self.upstreams.backends.get(be)?;
        let mut free = 0i64;
        // Slots are counted for the whole process, as HAProxy counts them.
        for sv in be.servers.iter().filter(|sv| sv.usable()) {
            let Some(limit) = sv.slots.max().filter(|_| sv.limited.get()) else {
                return Some(-1);
            };
            free += i64::from(limit) - i64::from(sv.slots.busy());
        }
        Some(free + be.queue_figures().0 as i64)
    }

    fn sc_value(&self, e: crate::rules::Tracked, op: crate::rules::stick::ScOp) -> Option<i64> {
        Some(self.cluster.sc_op(e, op).unwrap_or(0))
    }

    fn sc_has(&self, table: u32, key: u64) -> Option<bool> {
        Some(self.cluster.sc_has(table, key))
    }

    fn pat_find(&self, e: u32, smp: &crate::rules::Smp<'_>, cur: &[u8]) -> Option<Option<usize>> {
        self.maps.find(e, smp, cur)
    }

    fn pat_value(
        &self,
        e: u32,
        smp: &crate::rules::Smp<'_>,
        s: &mut crate::rules::Scratch,
    ) -> Option<Option<crate::rules::Smp<'static>>> {
        self.maps.value(e, smp, s)
    }

    fn pat_changed(&self) -> bool {
        self.maps.changed()
    }

    fn pat_live(&self, e: u32) -> bool {
        self.maps.is_live(e)
    }
}
