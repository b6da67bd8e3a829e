//! A shard's copy of its backends: every server's state (probe result from the health
//! thread, operator state, weight, this shard's active requests and slot share), the
//! balancers of the primary and backup groups, the queue of requests waiting for a
//! slot, and its servers' idle connection pools (which the shard's generations share).

pub mod balance;
mod pool;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use monoio::net::TcpStream;

pub use balance::{Balancer, Member};
pub use pool::{PoolKey, Pools, ServerPool};

use crate::config::{Backend, Config, PoolSettings};
use crate::control::HealthReport;

/// The operator's say on a server (HAProxy's READY / DRAIN / MAINT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    /// No new requests; in-flight ones finish.
    Drain,
    /// Out of service.
    Maint,
}

impl AdminState {
    /// The runtime API's word for it (`set server B/S state WORD`).
    pub fn word(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

    pub fn from_word(w: &str) -> Option<AdminState> {
        match w {
            "ready" => Some(AdminState::Ready),
            "drain" => Some(AdminState::Drain),
            "maint" => Some(AdminState::Maint),
            _ => None,
        }
    }
}

pub struct ServerState {
    pub name: String,
    pub addr: SocketAddr,
    pub backup: bool,
    /// Weight set by config or operator (0–256).
    pub weight: Cell<u32>,
    /// The weight the config gave.
    pub conf_weight: u32,
    /// Weight the balancer uses (lower during slow start).
    pub effective_weight: Cell<u32>,
    /// The health thread's verdict.
    pub up: Cell<bool>,
    pub admin: Cell<AdminState>,
    /// When the server last came up, while its slow start runs.
    pub ramp_since: Cell<Option<Instant>>,
    pub slowstart: Duration,
    /// This shard's share of the server's maxconn.
    pub limit: Cell<u32>,
    /// Consecutive passive failures seen by this shard.
    pub fail_streak: Cell<u32>,
    /// Its idle connections on this shard, shared with the other generations.
    pub pool: Rc<ServerPool>,
}

impl ServerState {
    /// Probe up, operator ready, weight above zero.
    pub fn usable(&self) -> bool {
        self.up.get() && self.admin.get() == AdminState::Ready && self.effective_weight.get() > 0
    }
}

pub struct BackendState {
    pub name: String,
    pub servers: Vec<ServerState>,
    /// Active requests (connections in tcp mode) per server, on this shard.
    pub active: Vec<Cell<u32>>,
    primary: RefCell<Balancer>,
    backup: RefCell<Balancer>,
    all_backups: bool,
    maxqueue: Option<usize>,
    connect_timeout: Duration,
    /// Requests waiting for a slot, in arrival order.
    queue: RefCell<VecDeque<local_sync::oneshot::Sender<()>>>,
    /// Longest the queue has been.
    pub queue_max: Cell<u64>,
}

/// The outcome of asking a backend for a server slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// No server is up, ready and weighted (primaries nor backups).
    NoServer,
    /// The queue is at `maxqueue`.
    QueueFull,
    /// No slot freed within `timeout.queue`.
    QueueTimeout,
}

/// Servers a request already failed on, so a retry goes elsewhere.
#[derive(Default, Clone, Copy)]
pub struct Tried {
    servers: [u32; 8],
    len: usize,
}

impl Tried {
    pub fn add(&mut self, s: u32) {
        self.servers[self.len % 8] = s;
        self.len += 1;
    }
    pub fn contains(&self, s: u32) -> bool {
        self.servers[..self.len.min(8)].contains(&s)
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

enum Pick {
    Server(u32),
    /// Servers are usable but none has a free slot.
    Full,
    NoServer,
}

impl BackendState {
    fn new(b: &Backend, shard: usize, shards: usize, pools: &Pools, pool: &PoolSettings) -> Self {
        let servers: Vec<ServerState> = b
            .servers
            .iter()
            .map(|s| ServerState {
                name: s.name.clone(),
                addr: s.addr,
                backup: s.backup,
                weight: Cell::new(s.weight),
                conf_weight: s.weight,
                effective_weight: Cell::new(s.weight),
                up: Cell::new(true),
                admin: Cell::new(if s.disabled {
                    AdminState::Maint
                } else {
                    AdminState::Ready
                }),
                ramp_since: Cell::new(None),
                slowstart: s.slowstart,
                limit: Cell::new(s.maxconn_share(shard, shards)),
                fail_streak: Cell::new(0),
                pool: pools.bind(
                    PoolKey {
                        backend: b.name.clone(),
                        server: s.name.clone(),
                        addr: s.addr,
                        send_proxy: s.send_proxy.is_some(),
                    },
                    s.pool_purge_delay.unwrap_or(pool.idle_timeout),
                    // HAProxy's `pool-purge-delay 0`: no idle connection is kept.
                    if s.pool_purge_delay == Some(Duration::ZERO) {
                        0
                    } else {
                        pool.max_idle_per_server
                    },
                ),
            })
            .collect();
        let be = BackendState {
            name: b.name.clone(),
            active: servers.iter().map(|_| Cell::new(0)).collect(),
            servers,
            primary: RefCell::new(Balancer::new(&b.balance, shard as u64)),
            backup: RefCell::new(Balancer::new(&b.balance, shard as u64)),
            all_backups: b.all_backups,
            maxqueue: b.maxqueue,
            connect_timeout: b.timeouts.connect,
            queue: RefCell::new(VecDeque::new()),
            queue_max: Cell::new(0),
        };
        be.rebuild();
        be
    }

    /// Recomputes both groups after any change of state or weight.
    pub fn rebuild(&self) {
        let members = |backup: bool| {
            self.servers
                .iter()
                .enumerate()
                .filter(move |(_, s)| s.backup == backup && s.usable())
                .map(|(i, s)| Member {
                    server: i as u32,
                    weight: s.effective_weight.get(),
                    name: &s.name,
                })
        };
        self.primary.borrow_mut().rebuild(members(false));
        if self.all_backups {
            self.backup.borrow_mut().rebuild(members(true));
        } else {
            self.backup.borrow_mut().rebuild(members(true).take(1));
        }
        let limit = |s: u32| self.servers[s as usize].limit.get();
        self.primary.borrow().init_loads(&self.active, limit);
        self.backup.borrow().init_loads(&self.active, limit);
        // Capacity may have appeared (or vanished): let every waiter look again.
        self.wake_all();
    }

    /// Usable primaries and backups.
    pub fn usable_counts(&self) -> (usize, usize) {
        (
            self.primary.borrow().members().len(),
            self.backup.borrow().members().len(),
        )
    }

    fn pick(&self, key: Option<u64>, tried: &Tried) -> Pick {
        let primary = self.primary.borrow();
        let group = if primary.is_empty() {
            self.backup.borrow()
        } else {
            primary
        };
        if group.is_empty() {
            return Pick::NoServer;
        }
        let free = |s: u32| self.active[s as usize].get() < self.servers[s as usize].limit.get();
        if !tried.is_empty() {
            if let Some(s) = group.pick(&self.active, key, |s| free(s) && !tried.contains(s)) {
                return Pick::Server(s);
            }
        }
        match group.pick(&self.active, key, free) {
            Some(s) => Pick::Server(s),
            None => Pick::Full,
        }
    }

    /// Takes a slot on a server: at once when one is free and nobody waits, else in
    /// arrival order from the queue until `deadline`.
    pub async fn acquire(
        &self,
        key: Option<u64>,
        tried: &Tried,
        deadline: Instant,
    ) -> Result<u32, AcquireError> {
        let mut woken = false;
        loop {
            if woken || self.queue.borrow().is_empty() {
                match self.pick(key, tried) {
                    Pick::Server(s) => {
                        self.occupy(s);
                        return Ok(s);
                    }
                    Pick::NoServer => return Err(AcquireError::NoServer),
                    Pick::Full => {}
                }
            } else if self.primary.borrow().is_empty() && self.backup.borrow().is_empty() {
                return Err(AcquireError::NoServer);
            }
            let (tx, rx) = local_sync::oneshot::channel();
            {
                let mut q = self.queue.borrow_mut();
                if !woken && self.maxqueue.is_some_and(|m| q.len() >= m) {
                    return Err(AcquireError::QueueFull);
                }
                // A waiter that lost its slot to a newcomer keeps its place.
                if woken {
                    q.push_front(tx);
                } else {
                    q.push_back(tx);
                }
                if q.len() as u64 > self.queue_max.get() {
                    self.queue_max.set(q.len() as u64);
                }
            }
            // A monoio timer is 128-byte aligned: inline, it would make every connection
            // task an aligned allocation. Boxed, on the queueing path only.
            let wait = monoio::time::timeout_at(monoio::time::Instant::from_std(deadline), rx);
            match Box::pin(wait).await {
                Ok(_) => woken = true,
                Err(_) => return Err(AcquireError::QueueTimeout),
            }
        }
    }

    /// Takes a slot on server `s` if it is usable and has one free, nobody waiting
    /// (a sticky client's server).
    pub fn take(&self, s: u32) -> bool {
        let Some(state) = self.servers.get(s as usize) else {
            return false;
        };
        let busy = self.active[s as usize].get() >= state.limit.get();
        if !state.usable() || busy || !self.queue.borrow().is_empty() {
            return false;
        }
        self.occupy(s);
        true
    }

    fn occupy(&self, s: u32) {
        let a = &self.active[s as usize];
        a.set(a.get() + 1);
        self.load_changed(s);
    }

    /// Gives a slot back and lets the first waiter try for it.
    pub fn release(&self, server: u32) {
        let a = &self.active[server as usize];
        a.set(a.get().saturating_sub(1));
        self.load_changed(server);
        let mut q = self.queue.borrow_mut();
        while let Some(tx) = q.pop_front() {
            // A waiter that timed out has dropped its receiver: try the next one.
            if tx.send(()).is_ok() {
                break;
            }
        }
    }

    fn load_changed(&self, server: u32) {
        let (active, limit) = (
            self.active[server as usize].get(),
            self.servers[server as usize].limit.get(),
        );
        self.primary.borrow().load_changed(server, active, limit);
        self.backup.borrow().load_changed(server, active, limit);
    }

    fn wake_all(&self) {
        let waiters: Vec<_> = self.queue.borrow_mut().drain(..).collect();
        for tx in waiters {
            let _ = tx.send(());
        }
    }

    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }
}

pub struct Upstreams {
    pub backends: Vec<BackendState>,
    shard: usize,
    /// The shard's idle connections, shared by its generations.
    pools: Rc<Pools>,
    /// Passive failure reports to the health thread.
    reports: Option<Sender<HealthReport>>,
    /// Superseded by a reload: its server numbering is stale, so it reports nothing.
    retired: Cell<bool>,
}

impl Upstreams {
    /// A generation's servers. Their idle connection pools come from `pools`: a server
    /// the previous generation had keeps its pool, and pools of servers this config no
    /// longer has are retired.
    pub fn new(
        cfg: &Config,
        shard: usize,
        reports: Option<Sender<HealthReport>>,
        pools: Rc<Pools>,
    ) -> Self {
        let shards = cfg.runtime.shards;
        pools.begin_generation();
        let up = Upstreams {
            backends: cfg
                .backends
                .iter()
                .map(|b| BackendState::new(b, shard, shards, &pools, &cfg.pool))
                .collect(),
            shard,
            pools,
            reports,
            retired: Cell::new(false),
        };
        up.pools.retire_unbound();
        for be in &up.backends {
            for s in &be.servers {
                up.sync_pool(s);
            }
        }
        up
    }

    /// An idle pooled connection to `server` that has nothing to read (see `pool`).
    /// `now` is the caller's latest clock reading (the request path reads the clock
    /// sparingly).
    pub fn pooled(&self, backend: usize, server: u32, now: Instant) -> Option<TcpStream> {
        self.pools
            .take(&self.backends[backend].servers[server as usize].pool, now)
    }

    /// A new connection to `server`, within `timeout.connect`.
    pub async fn connect(&self, backend: usize, server: u32) -> std::io::Result<TcpStream> {
        let s = &self.backends[backend].servers[server as usize];
        // One more connection: the shard's idle ones make way if it holds its limit.
        self.pools.make_room();
        // Boxed: an inline monoio timer (128-byte aligned) would make every connection
        // task an aligned allocation; a new connection can afford one allocation.
        let res = match Box::pin(monoio::time::timeout(
            self.backends[backend].connect_timeout,
            TcpStream::connect_addr(s.addr),
        ))
        .await
        {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timeout",
            )),
        };
        if let Err(e) = &res {
            tracing::warn!(backend = %self.backends[backend].name, server = %s.name, addr = %s.addr, error = %e, "connect failed");
        }
        res
    }

    /// Connects to `server`, trying it again up to `stay` more times when it fails
    /// (retries without redispatch stay on the same server, as HAProxy's do). Returns
    /// the outcome and how many failed attempts were already reported.
    pub async fn connect_staying(
        &self,
        backend: usize,
        server: u32,
        stay: u32,
    ) -> (std::io::Result<TcpStream>, u32) {
        let mut failed = 0;
        loop {
            match self.connect(backend, server).await {
                Ok(s) => return (Ok(s), failed),
                Err(e) if failed >= stay => return (Err(e), failed),
                Err(_) => {
                    self.report_failure(backend, server);
                    failed += 1;
                }
            }
        }
    }

    /// Returns a connection whose last exchange completed cleanly; it is idle from now
    /// (not from its response's first byte: a long body must not age it).
    pub fn release_conn(&self, backend: usize, server: u32, stream: TcpStream) {
        let pool = &self.backends[backend].servers[server as usize].pool;
        self.pools.put(pool, stream, Instant::now());
    }

    /// A connection or request to the server failed: tell the health thread.
    pub fn report_failure(&self, backend: usize, server: u32) {
        let s = &self.backends[backend].servers[server as usize];
        s.fail_streak.set(s.fail_streak.get() + 1);
        self.send_report(backend, server, s.fail_streak.get());
    }

    /// The server answered: end a failure streak (one message, only after failures).
    pub fn report_success(&self, backend: usize, server: u32) {
        let s = &self.backends[backend].servers[server as usize];
        if s.fail_streak.get() > 0 {
            s.fail_streak.set(0);
            self.send_report(backend, server, 0);
        }
    }

    fn send_report(&self, backend: usize, server: u32, streak: u32) {
        if self.retired.get() {
            return;
        }
        if let Some(tx) = &self.reports {
            let _ = tx.send(HealthReport {
                shard: self.shard,
                backend,
                server: server as usize,
                streak,
            });
        }
    }

    pub fn reports(&self) -> Option<Sender<HealthReport>> {
        self.reports.clone()
    }

    /// This generation was replaced by a reload.
    pub fn retire(&self) {
        self.retired.set(true);
    }

    /// Takes over the state of servers that exist in both generations (same backend
    /// and server name): health verdict, operator state, an operator-set weight, slow
    /// start, failure streak. (Idle connections need nothing: the pool is shared when
    /// the address is unchanged.)
    pub fn adopt(&self, old: &Upstreams) {
        for be in &self.backends {
            let Some(ob) = old.backends.iter().find(|b| b.name == be.name) else {
                continue;
            };
            for s in &be.servers {
                let Some(os) = ob.servers.iter().find(|x| x.name == s.name) else {
                    continue;
                };
                s.up.set(os.up.get());
                s.admin.set(os.admin.get());
                s.fail_streak.set(os.fail_streak.get());
                if os.weight.get() != os.conf_weight {
                    s.weight.set(os.weight.get());
                    s.effective_weight.set(os.weight.get());
                }
                if os.ramp_since.get().is_some() && !s.slowstart.is_zero() {
                    s.ramp_since.set(os.ramp_since.get());
                    s.effective_weight
                        .set(os.effective_weight.get().min(s.weight.get()));
                }
                self.sync_pool(s);
            }
            be.rebuild();
        }
    }

    /// Applies the health thread's verdict on a server.
    pub fn set_up(&self, backend: usize, server: usize, up: bool) {
        let be = &self.backends[backend];
        let s = &be.servers[server];
        if s.up.get() == up {
            return;
        }
        s.up.set(up);
        if up {
            s.fail_streak.set(0);
            if !s.slowstart.is_zero() {
                s.ramp_since.set(Some(Instant::now()));
                s.effective_weight
                    .set(ramp_weight(s.weight.get(), Duration::ZERO, s.slowstart));
            }
        }
        self.sync_pool(s);
        be.rebuild();
    }

    /// Applies an operator's weight change.
    pub fn set_weight(&self, backend: usize, server: usize, weight: u32) {
        let be = &self.backends[backend];
        let s = &be.servers[server];
        s.weight.set(weight);
        if s.ramp_since.get().is_none() {
            s.effective_weight.set(weight);
        }
        self.sync_pool(s);
        be.rebuild();
    }

    /// Applies an operator's state change.
    pub fn set_admin(&self, backend: usize, server: usize, state: AdminState) {
        let be = &self.backends[backend];
        let s = &be.servers[server];
        if s.admin.get() != state {
            s.admin.set(state);
            self.sync_pool(s);
            be.rebuild();
        }
    }

    /// Applies an operator's maxconn change; this shard takes its share.
    pub fn set_maxconn(&self, backend: usize, server: usize, maxconn: Option<u32>, shards: usize) {
        let be = &self.backends[backend];
        let share = crate::config::maxconn_share(maxconn, self.shard, shards);
        be.servers[server].limit.set(share);
        be.rebuild();
    }

    /// Advances slow starts; called from the control tick.
    pub fn tick_slowstart(&self, now: Instant) {
        for be in &self.backends {
            let mut changed = false;
            for s in &be.servers {
                let Some(since) = s.ramp_since.get() else {
                    continue;
                };
                let elapsed = now.saturating_duration_since(since);
                let w = if elapsed >= s.slowstart {
                    s.ramp_since.set(None);
                    s.weight.get()
                } else {
                    ramp_weight(s.weight.get(), elapsed, s.slowstart)
                };
                if w != s.effective_weight.get() {
                    s.effective_weight.set(w);
                    changed = true;
                }
            }
            if changed {
                be.rebuild();
            }
        }
    }

    /// A server that takes no new request (down, not ready, weight 0) keeps no idle
    /// connection, and takes none back until it does again.
    fn sync_pool(&self, s: &ServerState) {
        if s.usable() {
            self.pools.reopen(&s.pool);
        } else {
            self.pools.close_pool(&s.pool);
        }
    }
}

/// Effective weight `elapsed` into a slow start of `period`: linear, at least 1.
fn ramp_weight(weight: u32, elapsed: Duration, period: Duration) -> u32 {
    if weight == 0 {
        return 0;
    }
    let frac = elapsed.as_secs_f64() / period.as_secs_f64().max(1e-9);
    ((f64::from(weight) * frac).ceil() as u32).clamp(1, weight)
}
