//! One backend on one shard: its servers' state as this shard sees it (health,
//! operator state, weight, slow start, this shard's active requests, idle
//! connections), the balancer of the primary and the backup group, and the way to a
//! server slot: at once when a server has one free and nobody waits, else through the
//! backend's queue, which every shard shares (`shared`): a slot another shard frees
//! goes to the oldest waiter wherever it waits.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::balance::{Balancer, Member};
use super::pool::{PoolKey, Pools, ServerPool};
use crate::config::state_file::SavedAdmin;
use crate::config::{Backend, PoolSettings};
use crate::control::AdminState;
use crate::limits::{BackendShared, Links, Slots, Waiter};

pub struct ServerState {
    pub name: String,
    /// HAProxy's server id (places it on a consistent-hash ring).
    pub id: u32,
    /// Where it is now: DNS may move it (`resolved` false: it has no address yet,
    /// and takes no request).
    pub addr: Cell<SocketAddr>,
    pub resolved: Cell<bool>,
    /// Times the address changed: part of its connections' pool tag, so that one
    /// opened to the old address and put back afterwards is never handed out again.
    pub addr_gen: Cell<u32>,
    /// Its address comes from DNS (a reload carries the address DNS gave).
    pub dns: bool,
    /// It starts from the server-state file (a reload does not carry the old
    /// generation's state over it).
    pub saved: bool,
    /// The port is the client's destination port plus this (see `config::Server`).
    pub port_offset: Option<i32>,
    pub backup: bool,
    /// Weight set by config or operator (0–256).
    pub weight: Cell<u32>,
    /// The weight the config gave.
    pub conf_weight: u32,
    /// Weight the balancer uses (lower during slow start).
    pub effective_weight: Cell<u32>,
    /// The health thread's verdict.
    pub up: Cell<bool>,
    /// Up, but no new load-balanced traffic (`disable-on-404`, HAProxy's NOLB).
    pub nolb: Cell<bool>,
    pub admin: Cell<AdminState>,
    /// When the server last came up, while its slow start runs.
    pub ramp_since: Cell<Option<Instant>>,
    pub slowstart: Duration,
    /// The server has a `maxconn`: its slots are taken from the process-wide counter
    /// (`slots`), which an unlimited server's requests never touch.
    pub limited: Cell<bool>,
    pub slots: Arc<Slots>,
    /// Consecutive passive failures seen by this shard.
    pub fail_streak: Cell<u32>,
    /// Its idle connections on this shard, shared with the other generations: made
    /// when the first connection is put back (`Upstreams::release_conn`), or taken over
    /// from the previous generation.
    pub pool: std::cell::OnceCell<std::rc::Rc<ServerPool>>,
    /// How long a connection may idle in the pool, and how many may.
    pub pool_idle: Duration,
    pub pool_max: u32,
    /// Connections start with a PROXY header (part of the pool's identity).
    pub send_proxy: bool,
    /// TLS to the server (`ssl`).
    pub tls: Option<UpTls>,
    /// Its HTTP/2 connections on this shard (`proto h2`; `None`: HTTP/1.1). Boxed, as
    /// what follows: every shard holds every server, most never speak h2.
    pub h2: Option<Box<super::h2::H2Conns>>,
    /// Ends its sessions on this shard (`on-marked-down shutdown-sessions`); made for
    /// the first session that waits on it (`kill_switch`).
    kill: std::cell::OnceCell<Box<super::kill::KillSwitch>>,
    /// `on-marked-down shutdown-sessions`, `on-marked-up shutdown-backup-sessions`.
    pub shutdown_on_down: bool,
    pub shutdown_backups_on_up: bool,
}

/// TLS to one server, on one shard.
pub struct UpTls {
    /// This shard's client config: the server's, with the pool's session store (so
    /// sessions outlive a reload that keeps the settings).
    pub config: Arc<rustls::ClientConfig>,
    pub settings: Arc<crate::tls::UpstreamTls>,
}

impl UpTls {
    fn new(t: &Arc<crate::tls::UpstreamTls>, pool: &ServerPool) -> UpTls {
        let mut config = (*t.config).clone();
        if !t.settings.no_reuse {
            config.resumption = rustls::client::Resumption::store(pool.sessions());
        }
        UpTls {
            config: Arc::new(config),
            settings: t.clone(),
        }
    }

    /// The SNI tag of a connection opened with `sni` (0: the name is fixed).
    pub fn tag(&self, sni: Option<&str>) -> u64 {
        match (&self.settings.settings.sni, sni) {
            (
                Some(crate::tls::SniSource::HostHeader | crate::tls::SniSource::ClientSni),
                Some(n),
            ) => xxhash_rust::xxh3::xxh3_64(n.as_bytes()) | 1,
            _ => 0,
        }
    }
}

impl ServerState {
    /// Its connections are used as they are connected: no TLS, no HTTP/2 to open.
    pub fn plain(&self) -> bool {
        self.tls.is_none() && self.h2.is_none()
    }

    /// What its sessions wait on to be ended (made at the first).
    pub fn kill_switch(&self) -> &super::kill::KillSwitch {
        self.kill.get_or_init(Box::default)
    }

    /// Ends the sessions waiting on its kill switch, if any ever waited.
    pub fn fire_kill(&self, by_primary: bool) {
        if let Some(k) = self.kill.get() {
            k.fire(by_primary);
        }
    }

    /// The address to connect to for a client that connected to `local`.
    pub fn addr_for(&self, local: SocketAddr) -> SocketAddr {
        let mut a = self.addr.get();
        // 0.0.0.0 (or `::`): the address the client connected to, as HAProxy.
        if a.ip().is_unspecified() {
            a.set_ip(local.ip());
        }
        if let Some(off) = self.port_offset {
            a.set_port((i32::from(local.port()) + off).clamp(0, 65535) as u16);
        }
        a
    }

    /// Probe up (not NOLB), an address (DNS), operator ready, weight above zero.
    pub fn usable(&self) -> bool {
        self.up.get()
            && self.resolved.get()
            && !self.nolb.get()
            && self.admin.get() == AdminState::Ready
            && self.effective_weight.get() > 0
    }

    /// What makes its connections interchangeable with another generation's.
    pub fn pool_key(&self, backend: &str) -> PoolKey {
        PoolKey {
            backend: backend.to_string(),
            server: self.name.clone(),
            addr: self.addr.get(),
            send_proxy: self.send_proxy,
            tls: self
                .tls
                .as_ref()
                .map(|t| format!("{:?}", t.settings.settings)),
        }
    }

    /// A request may take a slot now.
    fn free(&self) -> bool {
        !self.limited.get() || self.slots.free()
    }
}

pub struct BackendState {
    pub name: String,
    pub servers: Vec<ServerState>,
    /// Active requests (connections in tcp mode) per server, on this shard: what
    /// `leastconn` and `random` weigh.
    pub active: Vec<Cell<u32>>,
    primary: RefCell<Balancer>,
    backup: RefCell<Balancer>,
    all_backups: bool,
    /// A map-based hash of a source, URI or header, with the backups used one at a
    /// time: HAProxy hashes nothing when a single server is in use, so a request to
    /// the backups takes slot 0 of their map (`url_param` still hashes).
    backup_slot_zero: bool,
    maxqueue: Option<usize>,
    pub connect_timeout: Duration,
    /// `option srvtcpka`: keep-alive probes on new server connections.
    pub tcpka: Option<crate::config::TcpKeepalive>,
    /// A `disabled` backend: no server is ever picked (503).
    pub disabled: bool,
    /// The slots and the queue every shard shares.
    pub shared: Arc<BackendShared>,
    links: Arc<Links>,
    shard: usize,
    /// This shard's requests waiting in the shared queue.
    waiters: RefCell<Vec<Arc<Waiter>>>,
    /// Some server takes its SNI from the request's Host (`sni req.hdr(host)`), or
    /// from the client's own SNI (`sni ssl_fc_sni`).
    pub sni_from_host: bool,
    pub sni_from_client: bool,
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

/// A slot on a server: `counted` when it was taken from the server's process-wide
/// counter (and must go back to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub server: u32,
    pub counted: bool,
}

/// A waiter in a backend's queue whose wait may be dropped before it ends: the drop
/// takes it out of the queue, and passes on a slot it was granted meanwhile.
struct Queued<'a> {
    be: &'a BackendState,
    /// `None` once the wait ended (the waiter is then dealt with in `acquire`).
    waiter: Option<Arc<Waiter>>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else {
            return;
        };
        self.be
            .waiters
            .borrow_mut()
            .retain(|w| !Arc::ptr_eq(w, &waiter));
        match waiter.give_up() {
            Err(s) => {
                self.be.adopt(s);
                self.be.release(Taken {
                    server: s,
                    counted: true,
                });
            }
            Ok(_) => self.be.shared.remove(&waiter),
        }
    }
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
    /// Servers are usable but none has a free slot; the one the request is bound to
    /// (a hash key's server), if any.
    Full(Option<u32>),
    NoServer,
}

/// What a waiter in the queue was woken by.
enum Woken {
    Granted(u32),
    /// Servers changed on this shard (or a limit): look again.
    Nudged,
}

impl BackendState {
    pub fn new(
        b: &Backend,
        shard: usize,
        shared: Arc<BackendShared>,
        links: Arc<Links>,
        pools: &Pools,
        pool: &PoolSettings,
    ) -> Self {
        let mut servers: Vec<ServerState> = b
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| ServerState {
                tls: None,
                name: s.name.clone(),
                id: s.id,
                addr: Cell::new(s.addr),
                resolved: Cell::new(!s.no_addr),
                addr_gen: Cell::new(0),
                dns: s.dns.is_some(),
                saved: s.saved.is_some(),
                port_offset: s.port_offset,
                backup: s.backup,
                weight: Cell::new(s.start_weight()),
                conf_weight: s.weight,
                effective_weight: Cell::new(s.start_weight()),
                // Where the server-state file says it was, else up.
                up: Cell::new(s.saved.is_none_or(|v| v.up)),
                nolb: Cell::new(false),
                admin: Cell::new(match s.saved.map(|v| v.admin) {
                    Some(SavedAdmin::Maint) => AdminState::Maint,
                    Some(SavedAdmin::Drain) => AdminState::Drain,
                    Some(SavedAdmin::Ready) => AdminState::Ready,
                    None if s.disabled => AdminState::Maint,
                    None => AdminState::Ready,
                }),
                ramp_since: Cell::new(None),
                slowstart: s.slowstart,
                limited: Cell::new(s.maxconn.is_some()),
                slots: shared.servers[i].clone(),
                fail_streak: Cell::new(0),
                pool: std::cell::OnceCell::new(),
                pool_idle: s.pool_purge_delay.unwrap_or(pool.idle_timeout),
                // HAProxy's `pool-purge-delay 0`: no idle connection is kept.
                pool_max: if s.pool_purge_delay == Some(Duration::ZERO) {
                    0
                } else {
                    pool.max_idle_per_server.min(u32::MAX as usize) as u32
                },
                send_proxy: s.send_proxy.is_some(),
                h2: s.h2.then(Box::default),
                kill: Default::default(),
                shutdown_on_down: s.shutdown_on_down,
                shutdown_backups_on_up: s.shutdown_backups_on_up,
            })
            .collect();
        for (st, s) in servers.iter_mut().zip(&b.servers) {
            let max = st.pool_max as usize;
            let Some(t) = &s.tls else {
                if !pools.is_empty() {
                    if let Some(p) = pools.find(&st.pool_key(&b.name), st.pool_idle, max) {
                        let _ = st.pool.set(p);
                    }
                }
                continue;
            };
            // A TLS server's pool keeps the shard's sessions with it (so that they
            // outlive reloads) and its client config points at them: made with the
            // generation, not at the first connection put back.
            let key = PoolKey {
                tls: Some(format!("{:?}", t.settings)),
                ..st.pool_key(&b.name)
            };
            let p = pools
                .find(&key, st.pool_idle, max)
                .unwrap_or_else(|| pools.create(key, st.pool_idle, max));
            st.tls = Some(UpTls::new(t, &p));
            let _ = st.pool.set(p);
        }
        let sni_from = |want: crate::tls::SniSource| {
            b.servers.iter().any(|s| {
                s.tls
                    .as_ref()
                    .is_some_and(|t| t.settings.sni.as_ref() == Some(&want))
            })
        };
        let gcd = super::balance::placement::weight_gcd(b.servers.iter().map(|s| s.weight));
        let mut primary = Balancer::new(&b.balance, shard as u64);
        let mut backup = Balancer::new(&b.balance, shard as u64);
        primary.set_weight_divisor(gcd);
        backup.set_weight_divisor(gcd);
        let be = BackendState {
            backup_slot_zero: !b.all_backups
                && matches!(
                    &b.balance,
                    crate::config::BalanceAlgo::Hash {
                        consistent: false,
                        key,
                        ..
                    } if !matches!(key, crate::config::HashKey::UrlParam(_))
                ),
            sni_from_host: sni_from(crate::tls::SniSource::HostHeader),
            sni_from_client: sni_from(crate::tls::SniSource::ClientSni),
            name: b.name.clone(),
            active: servers.iter().map(|_| Cell::new(0)).collect(),
            servers,
            primary: RefCell::new(primary),
            backup: RefCell::new(backup),
            all_backups: b.all_backups,
            maxqueue: b.maxqueue,
            connect_timeout: b.timeouts.connect,
            tcpka: b.tcpka,
            disabled: b.disabled,
            shared,
            links,
            shard,
            waiters: RefCell::new(Vec::new()),
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
                    id: s.id,
                })
        };
        self.primary.borrow_mut().rebuild(members(false));
        if self.all_backups {
            self.backup.borrow_mut().rebuild(members(true));
        } else {
            self.backup.borrow_mut().rebuild_first_of(members(true));
        }
        self.primary.borrow().init_loads(&self.active, |_| u32::MAX);
        self.backup.borrow().init_loads(&self.active, |_| u32::MAX);
        // Capacity may have appeared (or vanished): let every waiter look again.
        self.nudge_waiters();
    }

    /// Usable primaries and backups.
    pub fn usable_counts(&self) -> (usize, usize) {
        (
            self.primary.borrow().members().len(),
            self.backup.borrow().members().len(),
        )
    }

    fn pick(&self, key: Option<u32>, tried: &Tried) -> Pick {
        let primary = self.primary.borrow();
        let (group, key) = if primary.is_empty() {
            let key = key.map(|k| if self.backup_slot_zero { 0 } else { k });
            (self.backup.borrow(), key)
        } else {
            (primary, key)
        };
        if group.is_empty() || self.disabled {
            return Pick::NoServer;
        }
        let free = |s: u32| self.servers[s as usize].free();
        if !tried.is_empty() {
            if let Some(s) = group.pick(&self.active, key, |s| free(s) && !tried.contains(s)) {
                return Pick::Server(s);
            }
        }
        match group.pick(&self.active, key, free) {
            Some(s) => Pick::Server(s),
            // A hash key is bound to its server: it waits for that one.
            None => Pick::Full(key.and_then(|_| group.pick(&self.active, key, |_| true))),
        }
    }

    /// A slot on a server at once, if one is free and nobody waits (`Ok(None)`: the
    /// request must wait in the queue, `acquire`).
    pub fn try_acquire(
        &self,
        key: Option<u32>,
        tried: &Tried,
    ) -> Result<Option<Taken>, AcquireError> {
        if self.shared.anyone_waiting() {
            return Ok(None);
        }
        // The last free slot may go to another shard between the pick and the take.
        for _ in 0..4 {
            match self.pick(key, tried) {
                Pick::Server(s) => {
                    if let Some(t) = self.occupy(s) {
                        return Ok(Some(t));
                    }
                }
                Pick::NoServer => return Err(AcquireError::NoServer),
                Pick::Full(_) => return Ok(None),
            }
        }
        Ok(None)
    }

    /// A slot on a server: at once when one is free and nobody waits, else from the
    /// queue, in arrival order across shards, until `deadline`.
    pub async fn acquire(
        &self,
        key: Option<u32>,
        tried: &Tried,
        deadline: Instant,
    ) -> Result<Taken, AcquireError> {
        // A waiter woken to look again keeps its place at the front.
        let mut woken = false;
        loop {
            let want = if woken || !self.shared.anyone_waiting() {
                match self.pick(key, tried) {
                    Pick::Server(s) => match self.occupy(s) {
                        Some(t) => return Ok(t),
                        None => continue,
                    },
                    Pick::NoServer => return Err(AcquireError::NoServer),
                    Pick::Full(want) => want,
                }
            } else if self.primary.borrow().is_empty() && self.backup.borrow().is_empty() {
                return Err(AcquireError::NoServer);
            } else {
                match self.pick(key, tried) {
                    Pick::Full(want) => want,
                    _ => None,
                }
            };
            let waiter = Arc::new(Waiter::new(self.shard, want));
            let queued = if woken {
                self.shared.enqueue_front(waiter.clone())
            } else {
                self.shared.enqueue(waiter.clone(), self.maxqueue)
            };
            if !queued {
                return Err(AcquireError::QueueFull);
            }
            self.waiters.borrow_mut().push(waiter.clone());
            // Should the wait be dropped (a client that left, `option abortonclose`),
            // the waiter leaves the queue and a slot granted meanwhile goes on.
            let mut guard = Queued {
                be: self,
                waiter: Some(waiter.clone()),
            };
            let wait = std::future::poll_fn(|cx| {
                if let Some(s) = waiter.granted() {
                    return Poll::Ready(Woken::Granted(s));
                }
                if waiter.take_nudge() {
                    return Poll::Ready(Woken::Nudged);
                }
                waiter.set_waker(cx.waker());
                Poll::Pending
            });
            // A monoio timer is 128-byte aligned: inline, it would make every connection
            // task an aligned allocation. Boxed, on the queueing path only.
            let at = monoio::time::Instant::from_std(deadline);
            let woke = Box::pin(monoio::time::timeout_at(at, wait)).await;
            guard.waiter = None;
            self.waiters
                .borrow_mut()
                .retain(|w| !Arc::ptr_eq(w, &waiter));
            // Whatever woke it, a slot handed over meanwhile is the waiter's.
            let granted = match woke {
                Ok(Woken::Granted(s)) => Some(s),
                _ => waiter.give_up().err(),
            };
            if let Some(s) = granted {
                self.adopt(s);
                return Ok(Taken {
                    server: s,
                    counted: true,
                });
            }
            self.shared.remove(&waiter);
            if woke.is_err() {
                return Err(AcquireError::QueueTimeout);
            }
            woken = true;
        }
    }

    /// Takes a slot on server `s` if it is usable and has one free, nobody waiting
    /// (a sticky client's server).
    pub fn take(&self, s: u32) -> Option<Taken> {
        let state = self.servers.get(s as usize)?;
        if !state.usable() || !state.free() || self.shared.anyone_waiting() {
            return None;
        }
        self.occupy(s)
    }

    /// Takes a slot on server `s` whatever its health, weight and admin state, if it
    /// has one free and nobody waits (a persistence cookie's server, already judged).
    pub fn take_pinned(&self, s: u32) -> Option<Taken> {
        let state = self.servers.get(s as usize)?;
        if !state.free() || self.shared.anyone_waiting() {
            return None;
        }
        self.occupy(s)
    }

    /// Takes a slot on `s` (from its counter when it is limited): `None` when the
    /// counter has none left.
    fn occupy(&self, s: u32) -> Option<Taken> {
        let state = &self.servers[s as usize];
        let counted = state.limited.get();
        if counted && !state.slots.try_take() {
            return None;
        }
        self.adopt(s);
        Some(Taken { server: s, counted })
    }

    /// This shard's count of a slot it now holds.
    fn adopt(&self, s: u32) {
        let a = &self.active[s as usize];
        a.set(a.get() + 1);
        self.load_changed(s);
    }

    /// Gives a slot back: to the oldest waiter that can use it, or to the counter.
    pub fn release(&self, t: Taken) {
        let a = &self.active[t.server as usize];
        a.set(a.get().saturating_sub(1));
        self.load_changed(t.server);
        if t.counted {
            self.shared.release(t.server, &self.links);
        }
    }

    fn load_changed(&self, server: u32) {
        let active = self.active[server as usize].get();
        self.primary.borrow().load_changed(server, active, u32::MAX);
        self.backup.borrow().load_changed(server, active, u32::MAX);
    }

    /// This shard's waiters look at the servers again.
    pub fn nudge_waiters(&self) {
        for w in self.waiters.borrow().iter() {
            w.nudge();
            w.wake_here();
        }
    }

    /// A server's `maxconn` changed (runtime API): every shard with waiters looks
    /// again, so that more slots serve them at once.
    pub fn set_maxconn(&self, server: usize, maxconn: Option<u32>) {
        let s = &self.servers[server];
        s.slots.set_max(maxconn);
        s.limited.set(maxconn.is_some());
        self.rebuild();
        self.shared.nudge(&self.links);
    }

    /// Requests waiting now and at most, all shards together.
    pub fn queue_figures(&self) -> (u64, u64) {
        self.shared.queue_figures()
    }
}
