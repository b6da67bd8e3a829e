//! Idle upstream connections of one shard: one pool per server identity (backend name,
//! server name, address, PROXY protocol or not, TLS settings), LIFO (the warmest
//! first), bounded, aged out, and never handing out a connection that turned readable
//! while idle.
//!
//! TLS: a server's connections are interchangeable when their TLS settings are the
//! same (verification, CA, SNI source, ALPN, versions: part of the key) and, when the
//! SNI comes from the request (`sni req.hdr(host)`, `sni ssl_fc_sni`), when they were
//! opened with the same name: each idle connection carries a tag (a hash of its SNI,
//! 0 for a fixed one) and is handed out only for the same tag. The pool also keeps the
//! shard's TLS sessions with the server, so new connections resume (across reloads
//! too, as long as the settings stay the same).
//!
//! The pools belong to the shard, not to a config generation: every generation that
//! has a server shares its pool. A server's pool is made when its first connection is
//! put back, so servers that never see traffic on a shard cost nothing here. So a reload neither strands idle connections in a
//! generation nobody sweeps (the sweep covers every pool) nor closes those a kept
//! server goes on using. A pool no generation in force has (its server was removed)
//! is retired: its idle connections close at once and whatever is released into it
//! later closes too, once its request ends.
//!
//! Liveness: an idle HTTP connection has nothing to read, so one that became readable
//! (a late body on a 204, 304 or HEAD answer, bytes past Content-Length, EOF, an error)
//! must never carry another request: its bytes would become the next client's
//! response. Every reuse checks, with a `poll` that does not wait (`is_quiet`): one
//! syscall per keep-alive request, 0.3-0.6 µs depending on the host (README,
//! Performance). Why not a readiness wait kept armed on each idle connection, as
//! HAProxy keeps its idle server connections subscribed to epoll: with monoio 0.2 on
//! io_uring that is a PollAdd for every connection put back and a cancel for every one
//! taken, and monoio boxes the data of an op dropped in flight (an allocation per
//! request), besides a future per idle connection to drive it. The check also decides
//! on the bytes present at the moment of reuse, not on a wake-up that may not have run
//! yet.
//!
//! File descriptors: a shard keeps at most `limit` upstream connections, busy (a server
//! slot is held) and idle together: its share of the global maxconn, which bounds its
//! client connections. A connection released beyond that closes, and a new connection
//! first closes the oldest idle one (HAProxy trades an idle connection for a new one
//! when it runs short of descriptors). With one client socket and one server socket per
//! connection, the process never holds more than the fd budget that maxconn was derived
//! from.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::tls::ServerStream;

/// What makes two servers' connections interchangeable across config generations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub backend: String,
    pub server: String,
    pub addr: SocketAddr,
    /// Connections to a `send-proxy` server started with a PROXY header.
    pub send_proxy: bool,
    /// The server's TLS settings, as text (`None`: plain TCP).
    pub tls: Option<String>,
}

/// An idle connection: the stream, since when it is idle, its SNI tag.
type Idle = (ServerStream, Instant, u64);

/// One server's idle connections on one shard.
pub struct ServerPool {
    idle: RefCell<Vec<Idle>>,
    /// This shard's TLS sessions with the server (made on first use).
    sessions: RefCell<Option<std::sync::Arc<rustls::client::ClientSessionMemoryCache>>>,
    /// Set by the newest generation that has the server.
    idle_timeout: Cell<Duration>,
    max_idle: Cell<usize>,
    /// Takes nothing back: the server is down, not ready, or gone from the config.
    closed: Cell<bool>,
    /// The registry epoch of the last generation that has this server.
    epoch: Cell<u64>,
}

impl ServerPool {
    fn new(idle_timeout: Duration, max_idle: usize, epoch: u64) -> ServerPool {
        ServerPool {
            idle: RefCell::new(Vec::new()),
            sessions: RefCell::new(None),
            idle_timeout: Cell::new(idle_timeout),
            max_idle: Cell::new(max_idle),
            closed: Cell::new(false),
            epoch: Cell::new(epoch),
        }
    }

    /// Idle connections held now.
    pub fn len(&self) -> usize {
        self.idle.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shard's TLS sessions with this server, kept as long as the pool.
    pub fn sessions(&self) -> std::sync::Arc<rustls::client::ClientSessionMemoryCache> {
        self.sessions
            .borrow_mut()
            .get_or_insert_with(|| {
                std::sync::Arc::new(rustls::client::ClientSessionMemoryCache::new(
                    SESSIONS_PER_SERVER,
                ))
            })
            .clone()
    }
}

/// TLS sessions kept per server and shard (rustls' default for a client config).
const SESSIONS_PER_SERVER: usize = 256;

/// A shard's pools, shared by all its config generations.
pub struct Pools {
    by_server: RefCell<HashMap<PoolKey, Rc<ServerPool>>>,
    /// Bumped by each new generation; pools it did not bind are retired.
    epoch: Cell<u64>,
    /// Idle connections in all pools.
    idle: Cell<usize>,
    /// Server slots held (requests or L4 connections that may hold a server connection).
    busy: Cell<usize>,
    /// Most upstream connections, busy and idle, this shard keeps.
    limit: usize,
    /// The shard is stopping: nothing is pooled any more.
    closing: Cell<bool>,
    /// `proto h2` connections still open (their tasks run), all generations.
    h2_open: Rc<Cell<usize>>,
}

impl Pools {
    /// `limit`: the shard's share of the global maxconn (`usize::MAX`: no bound).
    pub fn new(limit: usize) -> Pools {
        Pools {
            by_server: RefCell::new(HashMap::new()),
            epoch: Cell::new(0),
            idle: Cell::new(0),
            busy: Cell::new(0),
            limit,
            closing: Cell::new(false),
            h2_open: Rc::default(),
        }
    }

    /// `proto h2` connections still open: a stopping shard waits for them, as they
    /// end with GOAWAY once their streams finished.
    pub fn h2_open(&self) -> usize {
        self.h2_open.get()
    }

    /// The count of open `proto h2` connections, for their tasks to keep.
    pub fn h2_count(&self) -> Rc<Cell<usize>> {
        self.h2_open.clone()
    }

    /// Starts binding a new generation's servers (`bind` each, then `retire_unbound`).
    pub fn begin_generation(&self) {
        self.epoch.set(self.epoch.get() + 1);
    }

    /// The pool of server `key` for the generation being built, if a generation
    /// before it pooled connections to that server: the new generation keeps it and
    /// its idle connections. (A server without one gets its pool from `create` when its
    /// first connection is put back.)
    pub fn find(
        &self,
        key: &PoolKey,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Option<Rc<ServerPool>> {
        let map = self.by_server.borrow();
        let pool = map.get(key)?;
        pool.idle_timeout.set(idle_timeout);
        pool.max_idle.set(max_idle);
        pool.epoch.set(self.epoch.get());
        Some(pool.clone())
    }

    /// Whether any server has a pool (a first generation has nothing to find).
    pub fn is_empty(&self) -> bool {
        self.by_server.borrow().is_empty()
    }

    /// The pool of server `key` in the generation in force, made at the first
    /// connection put back to it (a server that never pools costs nothing here).
    pub fn create(&self, key: PoolKey, idle_timeout: Duration, max_idle: usize) -> Rc<ServerPool> {
        let epoch = self.epoch.get();
        let mut map = self.by_server.borrow_mut();
        map.entry(key)
            .or_insert_with(|| Rc::new(ServerPool::new(idle_timeout, max_idle, epoch)))
            .clone()
    }

    /// Retires the pools of servers the generation being built does not have: their
    /// idle connections close, and so will the ones still in use, when released.
    pub fn retire_unbound(&self) {
        let epoch = self.epoch.get();
        let mut retired = Vec::new();
        self.by_server.borrow_mut().retain(|_, p| {
            let keep = p.epoch.get() == epoch;
            if !keep {
                retired.push(p.clone());
            }
            keep
        });
        for p in retired {
            self.close_pool(&p);
        }
    }

    /// The most recently released connection of `pool` with SNI tag `tag` that is
    /// younger than its idle timeout and has nothing to read (older or readable ones
    /// close on the way).
    pub fn take(&self, pool: &ServerPool, now: Instant, tag: u64) -> Option<ServerStream> {
        let max_idle = pool.idle_timeout.get();
        let mut idle = pool.idle.borrow_mut();
        // The common case (one tag): the last one.
        while let Some(i) = idle.iter().rposition(|(_, _, t)| *t == tag) {
            let (mut conn, since, _) = idle.remove(i);
            self.idle.set(self.idle.get() - 1);
            if now.saturating_duration_since(since) < max_idle && is_quiet(&mut conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse, unless the pool is closed, the shard is stopping, or the
    /// shard already holds its limit of upstream connections. When the pool is full,
    /// its coldest connection makes room.
    pub fn put(&self, pool: &ServerPool, conn: ServerStream, now: Instant, tag: u64) {
        let max = pool.max_idle.get();
        // The releasing request still holds its slot: once it ends, busy and idle
        // connections together stay within the limit.
        if max == 0
            || pool.closed.get()
            || self.closing.get()
            || self.busy.get() + self.idle.get() > self.limit
        {
            return;
        }
        let mut idle = pool.idle.borrow_mut();
        if idle.len() >= max {
            idle.remove(0);
        } else {
            self.idle.set(self.idle.get() + 1);
        }
        idle.push((conn, now, tag));
    }

    /// Before a new upstream connection: closes idle ones (the oldest first, any
    /// server) while the shard holds more than its limit.
    pub fn make_room(&self) {
        while self.busy.get() + self.idle.get() > self.limit && self.idle.get() > 0 {
            let map = self.by_server.borrow();
            let oldest = map
                .values()
                .filter_map(|p| p.idle.borrow().first().map(|(_, t, _)| (*t, p.clone())))
                .min_by_key(|(t, _)| *t);
            drop(map);
            // Idle connections sit only in pools the registry still has (a retired
            // pool is emptied and takes nothing back).
            let Some((_, pool)) = oldest else { return };
            pool.idle.borrow_mut().remove(0);
            self.idle.set(self.idle.get() - 1);
        }
    }

    /// A server slot was taken (`Slot::new`) or given back.
    pub fn slot_taken(&self) {
        self.busy.set(self.busy.get() + 1);
    }

    pub fn slot_released(&self) {
        self.busy.set(self.busy.get().saturating_sub(1));
    }

    /// Closes the idle connections of `pool` and takes nothing back until `reopen`.
    pub fn close_pool(&self, pool: &ServerPool) {
        pool.closed.set(true);
        let n = std::mem::take(&mut *pool.idle.borrow_mut()).len();
        self.idle.set(self.idle.get() - n);
    }

    pub fn reopen(&self, pool: &ServerPool) {
        pool.closed.set(false);
    }

    /// Closes connections idle for longer than their pool's timeout, and those the
    /// server closed or wrote to (called once a second by the shard).
    pub fn purge(&self, now: Instant) {
        let mut kept = 0;
        for p in self.by_server.borrow().values() {
            let max_idle = p.idle_timeout.get();
            let mut idle = p.idle.borrow_mut();
            idle.retain_mut(|(c, since, _)| {
                now.saturating_duration_since(*since) < max_idle && is_quiet(c)
            });
            kept += idle.len();
        }
        self.idle.set(kept);
    }

    /// The shard is stopping: every idle connection closes and nothing is pooled again.
    pub fn close(&self) {
        self.closing.set(true);
        for p in self.by_server.borrow().values() {
            p.idle.borrow_mut().clear();
        }
        self.idle.set(0);
    }

    /// After the runtime that owned these connections died of a panic: closes their
    /// descriptors without handing the streams to a driver that no longer runs (an
    /// idle connection has no operation in flight, so nothing else refers to them).
    pub fn abandon(&self) {
        self.closing.set(true);
        for p in self.by_server.borrow().values() {
            for (conn, _, _) in p.idle.borrow_mut().drain(..) {
                let fd = conn.raw_fd();
                std::mem::forget(conn);
                // SAFETY: the stream that owned `fd` was forgotten just above, so this
                // is the descriptor's only close.
                unsafe { libc::close(fd) };
            }
        }
        self.idle.set(0);
    }

    /// Idle connections in all pools.
    pub fn idle(&self) -> usize {
        self.idle.get()
    }

    /// Pools in the registry (servers some generation in force has).
    pub fn servers(&self) -> usize {
        self.by_server.borrow().len()
    }
}

/// An idle HTTP connection has nothing to read: stray bytes, EOF or an error all mean
/// it cannot carry another request. `poll` with no timeout rather than a one-byte
/// `recv(MSG_PEEK)`: the same answer without taking the socket lock (about 0.63 µs
/// against 0.73 µs per call on the shared VM of the README's figures). A TLS
/// connection must also hold nothing above the socket (bytes rustls has not given
/// out, a record not sent).
fn is_quiet(conn: &mut ServerStream) -> bool {
    if !conn.is_drained() {
        return false;
    }
    let mut p = libc::pollfd {
        fd: conn.raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: poll on one descriptor owned by `conn`, with a local pollfd.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 0
}
