//! One core: pin the thread, start its monoio runtime (io_uring or epoll), take over its
//! listeners, accept, and run the control tick that drains messages from other threads.

use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use monoio::net::{TcpListener, TcpStream};

use crate::accesslog::ShardLog;
use crate::config::{maxconn_share, Config, DriverChoice, Mode};
use crate::control::{FromShard, HealthReport, ServiceQuery, ShardReport, ToShard};
use crate::stats::{Counters, ShardStats};
use crate::upstream::Upstreams;
use local_sync::semaphore::{OwnedSemaphorePermit, Semaphore};

/// How often a shard looks at its control channel and cleans its pools.
pub const CONTROL_TICK: Duration = Duration::from_millis(20);
const POOL_PURGE_EVERY: u32 = 50;

/// Everything one shard needs to start.
pub struct ShardSpec {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub config: Arc<Config>,
    /// (frontend index, listening socket) pairs owned by this shard.
    pub listeners: Vec<(usize, std::net::TcpListener)>,
    pub control: Receiver<ToShard>,
    pub events: Sender<FromShard>,
    /// Passive failure reports to the health thread.
    pub reports: Sender<HealthReport>,
    /// The access log thread, when logs are configured.
    pub log: Option<Sender<Vec<u8>>>,
    /// The admin side, for stats pages and metrics requested on a frontend.
    pub services: Sender<ServiceQuery>,
    /// The cluster thread (shared state: stick tables, rate limits).
    pub cluster: Sender<crate::cluster::Up>,
    /// Server states for a shard restarted after a panic.
    pub resync: crate::control::Resync,
    /// The listeners offered to a newer process (`-sf`); a restart swaps its own.
    pub handed: crate::upgrade::HandedSockets,
}

/// The state a shard's connections share. Only this shard's thread touches it.
pub struct Shard {
    pub id: usize,
    pub config: Arc<Config>,
    pub upstreams: Upstreams,
    /// Set on shutdown: keep-alive connections close at their next request boundary.
    /// Shared by every config generation of this shard, as is the in-flight count.
    pub draining: Rc<Cell<bool>>,
    /// Pipes for splicing large bodies (shared by generations).
    pub pipes: Rc<crate::splice::PipePool>,
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
    pub cluster: crate::cluster::local::ShardCluster,
    /// This shard's share of the global maxconn (shared by its generations).
    conn_limit: Option<Rc<Semaphore>>,
    /// This shard's share of each frontend's maxconn.
    frontend_limits: Vec<Option<Rc<Semaphore>>>,
    /// Where the current generation lives, so that a keep-alive connection can move to
    /// a newer config at its next request.
    home: std::cell::RefCell<std::rc::Weak<std::cell::RefCell<Rc<Shard>>>>,
}

/// Connection slots a connection holds until it closes.
type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

fn frontend_limits(config: &Config, shard: usize) -> Vec<Option<Rc<Semaphore>>> {
    let shards = config.runtime.shards;
    config
        .frontends
        .iter()
        .map(|f| {
            f.maxconn.map(|m| {
                Rc::new(Semaphore::new(
                    maxconn_share(Some(m), shard, shards) as usize
                ))
            })
        })
        .collect()
}

impl Shard {
    /// The current generation, if a reload replaced this one.
    pub fn newer(&self) -> Option<Rc<Shard>> {
        let home = self.home.borrow().upgrade()?;
        let current = home.borrow().clone();
        (!std::ptr::eq(Rc::as_ptr(&current), self)).then_some(current)
    }

    /// Waits for room under the global and the frontend's maxconn: until then the
    /// connection stays in the kernel's backlog (accept is simply not called).
    async fn room(&self, frontend: usize) -> Permits {
        let global = match &self.conn_limit {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        let fe = match self.frontend_limits.get(frontend).cloned().flatten() {
            Some(s) => s.acquire_owned().await.ok(),
            None => None,
        };
        (global, fe)
    }
    /// The shard's state for a new config (a reload): servers that exist in both keep
    /// their health, operator state, weight and idle connections; counters carry over.
    /// Connections in flight finish on the old generation.
    pub fn next_generation(&self, config: Arc<Config>) -> Shard {
        let upstreams = Upstreams::new(&config, self.id, self.upstreams.reports());
        upstreams.adopt(&self.upstreams);
        self.upstreams.retire();
        let stats = ShardStats::new(&config);
        stats.adopt(&self.stats, &self.config, &config);
        Shard {
            id: self.id,
            upstreams,
            draining: self.draining.clone(),
            pipes: self.pipes.clone(),
            inflight: self.inflight.clone(),
            stats,
            fault_panic_path: self.fault_panic_path.clone(),
            log: self.log.clone(),
            services: self.services.clone(),
            cluster: crate::cluster::local::ShardCluster::new(&config),
            conn_limit: self.conn_limit.clone(),
            frontend_limits: frontend_limits(&config, self.id),
            home: std::cell::RefCell::new(self.home.borrow().clone()),
            config,
        }
    }

    /// Counts one request (or L4 connection) in flight until the guard drops.
    pub fn begin_request(self: &Rc<Self>) -> InflightGuard {
        self.inflight.set(self.inflight.get() + 1);
        InflightGuard(self.clone())
    }
}

pub struct InflightGuard(Rc<Shard>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.set(self.0.inflight.get() - 1);
    }
}

/// A request's slot on a server; dropping it frees the slot for the next waiter.
pub struct Slot {
    shard: Rc<Shard>,
    backend: usize,
    server: u32,
}

impl Slot {
    /// Wraps a slot `BackendState::acquire` handed out, and counts the session.
    pub fn new(shard: &Rc<Shard>, backend: usize, server: u32) -> Slot {
        let be = &shard.stats.backends[backend];
        let sv = &shard.stats.servers[backend][server as usize];
        for c in [be, sv] {
            c.up(&c.scur, &c.smax);
            Counters::inc(&c.stot);
        }
        Counters::inc(&sv.lbtot);
        Slot {
            shard: shard.clone(),
            backend,
            server,
        }
    }

    pub fn server(&self) -> u32 {
        self.server
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let st = &self.shard.stats;
        Counters::down(&st.backends[self.backend].scur);
        Counters::down(&st.servers[self.backend][self.server as usize].scur);
        self.shard.upstreams.backends[self.backend].release(self.server);
    }
}

pub fn spawn(spec: ShardSpec) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ringlb-shard-{}", spec.id))
        .spawn(move || run(spec))
}

/// Shard runtimes that died of a panic and were started again (all shards).
pub static RESTARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What outlives one runtime of a shard: after a panic that kills the runtime, the
/// thread starts a new one from the last config it had and the same listening sockets.
struct Survivor {
    config: Arc<Config>,
    handed: crate::upgrade::HandedSockets,
    accepts: Vec<AcceptLoop>,
    /// The last generation, whose counters the next runtime carries on.
    current: Option<Current>,
    /// What a dead runtime leaves for the next: fresh listeners, the connections that
    /// were queued on the old ones, and how many of its clients were cut.
    listeners: Vec<(usize, std::net::TcpListener)>,
    adopted: Adopted,
    orphans_closed: usize,
}

type Survive = Rc<std::cell::RefCell<Survivor>>;

impl Survivor {
    /// After a panic: everything the dead runtime owned stays where it is (its tasks
    /// cannot be dropped without it), but its clients are told at once instead of
    /// waiting forever, and its listeners are replaced.
    fn rescue(&mut self, shard: usize) {
        self.orphans_closed += shut_orphans();
        for a in self.accepts.drain(..) {
            let frontend = a.frontend.get();
            std::mem::forget(a.stop);
            std::mem::forget(a.handle);
            std::mem::forget(a.frontend);
            rescue_listener(
                shard,
                frontend,
                a.addr,
                a.keep,
                &mut self.listeners,
                &mut self.adopted,
            );
            // A newer process (-sf) must get the new socket, not the one shut down.
            if let (Some((_, fresh)), Ok(mut handed)) = (self.listeners.last(), self.handed.lock())
            {
                for h in handed.iter_mut() {
                    if h.addr == a.addr && h.shard == shard {
                        if let Ok(dup) = fresh.try_clone() {
                            h.socket = dup;
                        }
                    }
                }
            }
        }
    }
}

/// Rescues as the panic unwinds, while the dead runtime has had no chance to take a
/// new connection yet.
struct RescueOnPanic<'a>(&'a Survive, usize);

impl Drop for RescueOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut s) = self.0.try_borrow_mut() {
                s.rescue(self.1);
            }
        }
    }
}

fn run(spec: ShardSpec) {
    let id = spec.id;
    let core = spec.core.and_then(|c| {
        if core_affinity::set_for_current(c) {
            Some(c.id)
        } else {
            tracing::warn!(
                shard = id,
                core = c.id,
                "could not pin shard to its core; running unpinned"
            );
            None
        }
    });
    let mut spec = spec;
    let mut listeners = std::mem::take(&mut spec.listeners);
    let survive: Survive = Rc::new(std::cell::RefCell::new(Survivor {
        config: spec.config.clone(),
        handed: spec.handed.clone(),
        accepts: Vec::new(),
        current: None,
        listeners: Vec::new(),
        adopted: Vec::new(),
        orphans_closed: 0,
    }));
    let mut adopted = Vec::new();
    let mut backoff = Duration::from_millis(50);
    loop {
        let started = Instant::now();
        let given = std::mem::take(&mut listeners);
        let queued = std::mem::take(&mut adopted);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_runtime(&spec, given, queued, &survive, core)
        }));
        let Err(panic) = outcome else { return };
        RESTARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (closed, kept) = {
            let mut s = survive.borrow_mut();
            s.rescue(id);
            listeners = std::mem::take(&mut s.listeners);
            adopted = std::mem::take(&mut s.adopted);
            (std::mem::take(&mut s.orphans_closed), adopted.len())
        };
        tracing::error!(
            shard = id,
            panic = %panic_text(&*panic),
            connections_closed = closed,
            queued_connections_kept = kept,
            "shard runtime died; restarting it on its core"
        );
        // A shard that dies again at once waits longer each time.
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(50);
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Connections accepted from a dead runtime's listener, for the next one to serve.
type Adopted = Vec<(usize, std::net::TcpStream, SocketAddr)>;

/// A dead runtime's listening socket still sits in the SO_REUSEPORT group, and an
/// accept the dead io_uring had posted would take connections nobody serves. So: a
/// fresh socket joins the group, the connections already queued on the old one are
/// taken for the next runtime, and the old one is shut down (which ends that accept).
fn rescue_listener(
    shard: usize,
    frontend: usize,
    addr: SocketAddr,
    old: std::net::TcpListener,
    listeners: &mut Vec<(usize, std::net::TcpListener)>,
    adopted: &mut Adopted,
) {
    let fresh = match crate::listen::reuseport_listener(addr) {
        Ok(l) => l,
        Err(e) => {
            // Without a fresh socket the old one goes on (an accept the dead runtime
            // posted may still take one connection).
            tracing::warn!(shard, %addr, error = %e, "cannot bind a fresh listener; keeping the old socket");
            listeners.push((frontend, old));
            return;
        }
    };
    let _ = old.set_nonblocking(true);
    while let Ok((stream, peer)) = old.accept() {
        if stream.set_nonblocking(true).is_ok() {
            adopted.push((frontend, stream, peer));
        }
    }
    let _ = socket2::SockRef::from(&old).shutdown(std::net::Shutdown::Both);
    listeners.push((frontend, fresh));
}

thread_local! {
    /// The client sockets this thread's runtime serves, so that the ones a dead
    /// runtime leaves behind can be shut (their tasks can never run or drop again).
    static CLIENTS: std::cell::RefCell<slab::Slab<std::os::fd::RawFd>> =
        const { std::cell::RefCell::new(slab::Slab::new()) };
}

/// A client socket registered in `CLIENTS` for as long as its task holds it.
struct ClientFd(usize);

impl ClientFd {
    fn new(fd: std::os::fd::RawFd) -> ClientFd {
        ClientFd(CLIENTS.with(|c| c.borrow_mut().insert(fd)))
    }
}

impl Drop for ClientFd {
    fn drop(&mut self) {
        CLIENTS.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.try_remove(self.0);
            }
        });
    }
}

/// Shuts down (without closing: the dead tasks still own the descriptors) every client
/// socket a dead runtime left; returns how many.
fn shut_orphans() -> usize {
    CLIENTS.with(|c| {
        let mut c = c.borrow_mut();
        let n = c.len();
        for (_, &fd) in c.iter() {
            // SAFETY: shutdown on a descriptor the dead task still owns; it is never
            // closed while registered (the registration drops with the socket).
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        c.clear();
        n
    })
}

/// A panic's message.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Builds a runtime (io_uring, or epoll where refused) and runs the shard on it.
fn run_runtime(
    spec: &ShardSpec,
    listeners: Vec<(usize, std::net::TcpListener)>,
    queued: Adopted,
    survive: &Survive,
    core: Option<usize>,
) {
    let id = spec.id;
    let fail = |error: String| {
        let _ = spec.events.send(FromShard::Failed { shard: id, error });
    };
    let config = survive.borrow().config.clone();
    let force_legacy = std::env::var("MONOIO_FORCE_LEGACY_DRIVER")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false);
    let want_uring = match config.runtime.driver {
        DriverChoice::Legacy => false,
        DriverChoice::IoUring => true,
        DriverChoice::Auto => !force_legacy && monoio::utils::detect_uring(),
    };
    if want_uring {
        match uring_runtime() {
            Ok((mut rt, driver)) => {
                return rt.block_on(shard_main(spec, listeners, queued, survive, driver, core))
            }
            Err(e) if config.runtime.driver == DriverChoice::Auto => {
                tracing::warn!(shard = id, error = %e, "io_uring refused, falling back to the legacy epoll driver");
            }
            Err(e) => return fail(format!("io_uring runtime: {e}")),
        }
    }
    match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(mut rt) => rt.block_on(shard_main(spec, listeners, queued, survive, "legacy", core)),
        Err(e) => fail(format!("legacy runtime: {e}")),
    }
}

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

/// An io_uring runtime with the cheapest completion mode the kernel offers. Completions
/// are finished by "task work" in the shard's thread; by default the kernel interrupts
/// the thread (an IPI) for each one. With DEFER_TASKRUN (6.1+, one submitting thread)
/// they wait until the shard asks for completions, all at once; COOP_TASKRUN (5.19+)
/// at least runs them at the next kernel entry without an interrupt. Older kernels get
/// the plain ring.
fn uring_runtime() -> std::io::Result<(UringRuntime, &'static str)> {
    type Setup = fn(&mut io_uring::Builder);
    let modes: [(&'static str, Setup); 3] = [
        ("io_uring", |b| {
            b.setup_single_issuer().setup_defer_taskrun();
        }),
        ("io_uring (coop taskrun)", |b| {
            b.setup_coop_taskrun();
        }),
        ("io_uring (plain)", |_| {}),
    ];
    let mut last = None;
    for (name, setup) in modes {
        let mut urb = io_uring::IoUring::builder();
        setup(&mut urb);
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(4096)
            .uring_builder(urb)
            .enable_timer()
            .build()
        {
            Ok(rt) => return Ok((rt, name)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no io_uring mode")))
}

/// One listening socket's accept loop, and how to stop it.
struct AcceptLoop {
    addr: SocketAddr,
    /// The frontend it serves; a reload may renumber frontends.
    frontend: Rc<Cell<usize>>,
    /// Dropping it ends the loop, which closes the listener.
    stop: local_sync::oneshot::Sender<()>,
    handle: monoio::task::JoinHandle<()>,
    /// The same socket, outside the runtime: should the runtime die, the next one
    /// accepts from it.
    keep: std::net::TcpListener,
}

/// The current config generation; accept loops take it for each new connection.
type Current = Rc<std::cell::RefCell<Rc<Shard>>>;

fn start_accept(
    current: &Current,
    frontend: usize,
    listener: std::net::TcpListener,
) -> std::io::Result<AcceptLoop> {
    let addr = listener.local_addr()?;
    // Accepted sockets inherit it: one setsockopt per listener, not per connection.
    socket2::SockRef::from(&listener).set_nodelay(true)?;
    let keep = listener.try_clone()?;
    let listener = TcpListener::from_std(listener)?;
    let (stop, stop_rx) = local_sync::oneshot::channel::<()>();
    let frontend = Rc::new(Cell::new(frontend));
    let handle = monoio::spawn(accept_loop(
        current.clone(),
        frontend.clone(),
        listener,
        stop_rx,
    ));
    Ok(AcceptLoop {
        addr,
        frontend,
        stop,
        handle,
        keep,
    })
}

async fn shard_main(
    spec: &ShardSpec,
    listeners: Vec<(usize, std::net::TcpListener)>,
    queued: Adopted,
    survive: &Survive,
    driver: &'static str,
    core: Option<usize>,
) {
    let _rescue = RescueOnPanic(survive, spec.id);
    crate::http::set_epoll_driver(driver == "legacy");
    let config = survive.borrow().config.clone();
    let stats = ShardStats::new(&config);
    // After a restart the counters go on from where the dead runtime left them.
    if let Some(old) = &survive.borrow().current {
        let old = old.borrow();
        stats.adopt(&old.stats, &old.config, &config);
    }
    let shard = Rc::new(Shard {
        id: spec.id,
        upstreams: Upstreams::new(&config, spec.id, Some(spec.reports.clone())),
        config: config.clone(),
        draining: Rc::new(Cell::new(false)),
        pipes: Rc::default(),
        inflight: Rc::new(Cell::new(0)),
        stats,
        fault_panic_path: fault_panic_path(),
        log: spec.log.clone().map(|tx| Rc::new(ShardLog::new(tx))),
        services: spec.services.clone(),
        cluster: crate::cluster::local::ShardCluster::new(&config),
        conn_limit: config.runtime.maxconn.map(|m| {
            Rc::new(Semaphore::new(
                maxconn_share(Some(m), spec.id, config.runtime.shards) as usize,
            ))
        }),
        frontend_limits: frontend_limits(&config, spec.id),
        home: std::cell::RefCell::new(std::rc::Weak::new()),
    });
    let id = shard.id;
    let current: Current = Rc::new(std::cell::RefCell::new(shard.clone()));
    *shard.home.borrow_mut() = Rc::downgrade(&current);
    if let Some(old) = survive.borrow_mut().current.replace(current.clone()) {
        // The dead runtime's generation: what it holds belongs to that runtime.
        std::mem::forget(old);
        for msg in (spec.resync)(&config) {
            apply(&shard, msg);
        }
        tracing::warn!(shard = id, driver, "shard runtime restarted");
    }
    // Operator states sent before this shard ran (the cluster's first sync, a
    // hand-over) apply before the first connection; a stop or a reload waits its turn.
    let mut early = std::collections::VecDeque::new();
    while let Ok(msg) = spec.control.try_recv() {
        match msg {
            m @ (ToShard::Shutdown { .. } | ToShard::Reload { .. }) => early.push_back(m),
            m => apply(&shard, m),
        }
    }
    let mut accepts: Vec<AcceptLoop> = Vec::new();
    for (frontend, std_listener) in listeners {
        match start_accept(&current, frontend, std_listener) {
            Ok(a) => accepts.push(a),
            Err(e) => {
                let _ = spec.events.send(FromShard::Failed {
                    shard: id,
                    error: format!("listener: {e}"),
                });
                return;
            }
        }
    }
    survive.borrow_mut().accepts = accepts;
    // Connections that were waiting on a dead runtime's listener.
    for (frontend, stream, peer) in queued {
        let permits = shard.room(frontend).await;
        if let Ok(stream) = TcpStream::from_std(stream) {
            let at = &Cell::new(frontend);
            spawn_serve(&current, at, UNKNOWN_LISTENER, stream, peer, permits);
        }
    }
    let _ = spec.events.send(FromShard::Started {
        shard: id,
        driver,
        core,
    });

    let mut deadline: Option<Instant> = None;
    let mut ticks = 0u32;
    loop {
        monoio::time::sleep(CONTROL_TICK).await;
        ticks = ticks.wrapping_add(1);
        crate::http::wake_idle(monoio::time::Instant::now());
        fault_kill_shard(id);
        // Drain every pending message; a closed channel means the process is going away.
        let mut shutdown: Option<Option<Duration>> = None;
        loop {
            let shard = current.borrow().clone();
            let next = match early.pop_front() {
                Some(m) => Ok(m),
                None => spec.control.try_recv(),
            };
            match next {
                Ok(ToShard::Shutdown { grace }) => {
                    shutdown = Some(match shutdown {
                        Some(Some(a)) => Some(grace.map_or(a, |g| g.min(a))),
                        _ => grace,
                    })
                }
                Ok(ToShard::Reload { config, listeners }) => {
                    if deadline.is_none() {
                        let mut s = survive.borrow_mut();
                        s.config = config.clone();
                        reload(&current, &mut s.accepts, config, listeners);
                    }
                    let _ = spec.events.send(FromShard::Reloaded { shard: id });
                }
                Ok(msg) => apply(&shard, msg),
                Err(TryRecvError::Disconnected) => {
                    shutdown = Some(Some(shard.config.timeouts.shutdown));
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let shard = current.borrow().clone();
        if let Some(grace) = shutdown {
            // Without a grace period, requests may take as long as they take.
            let until = Instant::now() + grace.unwrap_or(Duration::from_secs(100 * 365 * 86400));
            if let Some(d) = deadline {
                deadline = Some(d.min(until));
            }
        }
        if let (Some(grace), None) = (shutdown, deadline) {
            tracing::debug!(
                shard = id,
                inflight = shard.inflight.get(),
                "shutdown received"
            );
            // Tasks left behind when the runtime ends are never dropped, so wait until
            // every accept loop has ended and its listener is really closed.
            let accepts = std::mem::take(&mut survive.borrow_mut().accepts);
            for a in accepts {
                drop(a.keep);
                drop(a.stop);
                a.handle.await;
            }
            shard.draining.set(true);
            shard.upstreams.clear_pools();
            deadline =
                Some(Instant::now() + grace.unwrap_or(Duration::from_secs(100 * 365 * 86400)));
        }
        shard.upstreams.tick_slowstart(std::time::Instant::now());
        shard.cluster.flush(id, &shard.config, &spec.cluster);
        if let Some(log) = &shard.log {
            log.flush();
        }
        if ticks.is_multiple_of(POOL_PURGE_EVERY) {
            shard.upstreams.purge_idle();
            shard.pipes.purge();
            let open = CLIENTS.with(|c| {
                let mut c = c.borrow_mut();
                // The room a burst of connections left goes back too.
                if c.capacity() > 4 * c.len().max(256) {
                    c.shrink_to_fit();
                }
                c.len()
            });
            crate::http::trim_memory(open);
        }
        if let Some(d) = deadline {
            let inflight = shard.inflight.get();
            if inflight == 0 || Instant::now() >= d {
                if let Some(log) = &shard.log {
                    log.flush();
                }
                let _ = spec.events.send(FromShard::Stopped {
                    shard: id,
                    abandoned: inflight,
                });
                return;
            }
        }
    }
}

/// A new config: a new generation for new connections, listeners kept, added or closed.
fn reload(
    current: &Current,
    accepts: &mut Vec<AcceptLoop>,
    config: Arc<Config>,
    listeners: Vec<(SocketAddr, usize, Option<std::net::TcpListener>)>,
) {
    let next = Rc::new(current.borrow().next_generation(config));
    let id = next.id;
    *current.borrow_mut() = next;
    // Listeners whose address is gone close (their accepted connections finish).
    accepts.retain(|a| listeners.iter().any(|(addr, _, _)| *addr == a.addr));
    for (addr, frontend, socket) in listeners {
        match socket {
            Some(l) => match start_accept(current, frontend, l) {
                Ok(a) => accepts.push(a),
                Err(e) => tracing::error!(shard = id, %addr, error = %e, "reload: cannot listen"),
            },
            None => {
                if let Some(a) = accepts.iter().find(|a| a.addr == addr) {
                    a.frontend.set(frontend);
                }
            }
        }
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

fn fault_kill_shard(_shard: usize) {
    #[cfg(any(debug_assertions, feature = "fault-injection"))]
    if DOOMED.with(|d| d.replace(false)) {
        panic!("fault injection: shard {_shard} killed");
    }
}

/// Applies a message from the health or admin thread.
fn apply(shard: &Shard, msg: ToShard) {
    let up = &shard.upstreams;
    match msg {
        ToShard::Shutdown { .. } | ToShard::Reload { .. } => {}
        ToShard::ServerUp {
            backend,
            server,
            up: is_up,
        } => up.set_up(backend, server, is_up),
        ToShard::SetAdmin {
            backend,
            server,
            state,
        } => up.set_admin(backend, server, state),
        ToShard::SetWeight {
            backend,
            server,
            weight,
        } => up.set_weight(backend, server, weight),
        ToShard::SetMaxconn {
            backend,
            server,
            maxconn,
        } => up.set_maxconn(backend, server, maxconn, shard.config.runtime.shards),
        ToShard::Sticks(recs) => shard.cluster.apply_sticks(&shard.config, &recs),
        ToShard::Rates(counts) => shard.cluster.apply_rates(&shard.config, &counts),
        ToShard::Snapshot(reply) => {
            let _ = reply.send(ShardReport {
                shard: shard.id,
                stats: shard.stats.snapshot(),
                queued: up
                    .backends
                    .iter()
                    .map(|b| (b.queued() as u64, b.queue_max.get()))
                    .collect(),
            });
        }
    }
}

async fn accept_loop(
    current: Current,
    frontend: Rc<Cell<usize>>,
    listener: TcpListener,
    mut stop: local_sync::oneshot::Receiver<()>,
) {
    let listening = listener.local_addr().unwrap_or(UNKNOWN_LISTENER);
    loop {
        let waiting = current.borrow().clone();
        let permits = monoio::select! {
            _ = &mut stop => break,
            p = waiting.room(frontend.get()) => p,
        };
        // A cancelable accept: when stopping, an accept the kernel already completed
        // still hands its connection over instead of losing it with the dropped op.
        let canceller = monoio::io::Canceller::new();
        let accept = listener.cancelable_accept(canceller.handle());
        let mut accept = std::pin::pin!(accept);
        let accepted = monoio::select! {
            _ = &mut stop => {
                let _canceller = canceller.cancel();
                if let Ok((stream, peer)) = accept.await {
                    spawn_serve(&current, &frontend, listening, stream, peer, permits);
                }
                tracing::debug!(frontend = frontend.get(), "listener closed");
                break;
            }
            accepted = &mut accept => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                spawn_serve(&current, &frontend, listening, stream, peer, permits)
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of fds or memory: back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A listener address not known: the wildcard, so each connection asks its own socket.
const UNKNOWN_LISTENER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// The task owns the connection from here on: accept never waits for a server. It
/// keeps the config generation it started with.
/// `listening` is the listener's address: the connection's own local address unless
/// the listener is bound to a wildcard address.
///
/// A plain HTTP connection's handler sits in its task in place, wrapped by `Caught`
/// and nothing else: an idle keep-alive connection then costs little more than its
/// `Conn` (see `http::serve`). An `async` wrapper would keep the handler's arguments
/// and the handler itself side by side (what a generator moves into an inner future
/// keeps its own slot), which had made every connection's task 3.5 KiB. A PROXY
/// header or a TCP connection is handled in a boxed future of its own.
fn spawn_serve(
    current: &Current,
    frontend: &Cell<usize>,
    listening: SocketAddr,
    stream: TcpStream,
    peer: SocketAddr,
    permits: Permits,
) {
    let shard = current.borrow().clone();
    let fe = frontend.get();
    let conf = &shard.config.frontends[fe];
    let (mode, proxy) = (conf.mode, conf.accept_proxy);
    // TCP_NODELAY comes from the listener (Linux copies it to accepted sockets).
    let guard = ConnGuard::new(&shard, fe, peer, &stream, permits);
    let local = if listening.ip().is_unspecified() {
        stream.local_addr().unwrap_or(listening)
    } else {
        listening
    };
    if mode == Mode::Http && !proxy {
        let handler = crate::http::serve(shard, fe, stream, peer, local, Vec::new());
        monoio::spawn(Caught { handler, guard });
    } else {
        let handler = Box::pin(serve_other(shard, fe, mode, stream, peer, local));
        monoio::spawn(Caught { handler, guard });
    }
}

/// A TCP connection, or one behind a PROXY header.
async fn serve_other(
    shard: Rc<Shard>,
    frontend: usize,
    mode: Mode,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let conf = &shard.config.frontends[frontend];
    // Only a PROXY header needs a buffer here; the HTTP side takes its own from the
    // shard's pool, and L4 copies through its own.
    let buf = if conf.accept_proxy {
        Vec::with_capacity(shard.config.limits.max_header_bytes)
    } else {
        Vec::new()
    };
    // On accept-proxy binds the client is whoever the PROXY header names.
    let (peer, local, buf) = if conf.accept_proxy {
        let deadline = monoio::time::Instant::now() + conf.timeouts.http_request;
        // Boxed: its timer would otherwise grow the task.
        match Box::pin(crate::proxy_protocol::receive(&mut stream, buf, deadline)).await {
            Some((h, rest)) => {
                let (p, l) = h.addrs.unwrap_or((peer, local));
                (p, l, rest)
            }
            None => {
                tracing::debug!(shard = shard.id, %peer, "missing or malformed PROXY header: closed");
                return;
            }
        }
    } else {
        (peer, local, buf)
    };
    match mode {
        Mode::Http => crate::http::serve(shard.clone(), frontend, stream, peer, local, buf).await,
        Mode::Tcp => crate::l4::serve(shard.clone(), frontend, stream, peer, local, buf).await,
    }
}

/// What a connection holds besides its handler: its registration (for a dead
/// runtime's orphans), its frontend's session count, its maxconn permits.
struct ConnGuard {
    _registered: ClientFd,
    shard: Rc<Shard>,
    frontend: usize,
    peer: SocketAddr,
    _permits: Permits,
}

impl ConnGuard {
    fn new(
        shard: &Rc<Shard>,
        frontend: usize,
        peer: SocketAddr,
        stream: &TcpStream,
        permits: Permits,
    ) -> ConnGuard {
        let fe = &shard.stats.frontends[frontend];
        fe.up(&fe.scur, &fe.smax);
        Counters::inc(&fe.stot);
        ConnGuard {
            _registered: ClientFd::new(std::os::fd::AsRawFd::as_raw_fd(stream)),
            shard: shard.clone(),
            frontend,
            peer,
            _permits: permits,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        Counters::down(&self.shard.stats.frontends[self.frontend].scur);
    }
}

/// A connection's task: polls its handler in place. A bug that panics while serving
/// one connection closes that connection only; its guards (slots, in-flight count)
/// are released when the handler is dropped, with the task.
struct Caught<F> {
    handler: F,
    guard: ConnGuard,
}

impl<F: std::future::Future<Output = ()>> std::future::Future for Caught<F> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        // SAFETY: `handler` is pinned with `self` and never moved out of it (nor is
        // `self` given out unpinned); `guard` is never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let handler = unsafe { std::pin::Pin::new_unchecked(&mut this.handler) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let g = &this.guard;
                tracing::error!(
                    shard = g.shard.id,
                    frontend = %g.shard.config.frontends[g.frontend].name,
                    peer = %g.peer,
                    panic = %panic_text(&*panic),
                    "connection handler panicked; that connection was closed"
                );
                Counters::inc(&g.shard.stats.frontends[g.frontend].panics);
                std::task::Poll::Ready(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    /// The per-connection setsockopt was dropped on the strength of this: Linux copies
    /// TCP_NODELAY from a listener to the sockets it accepts.
    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let l = crate::listen::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        socket2::SockRef::from(&l).set_nodelay(true).unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.write_all(b"x").unwrap();
        l.set_nonblocking(false).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert!(socket2::SockRef::from(&accepted).nodelay().unwrap());
    }
}
