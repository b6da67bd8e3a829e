//! A shard's copy of its backends (`backend`: every server's state, the balancers,
//! the way to a slot), the idle connection pools (`pool`), connecting (TLS to `ssl`
//! servers included), and the passive health reports; `shared` holds the limits every
//! shard shares.

mod backend;
pub mod balance;
pub mod h2;
pub mod kill;
mod pool;

pub use backend::{AcquireError, BackendState, ServerState, Taken, Tried, UpTls};

use std::cell::Cell;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use monoio::net::TcpStream;

pub use balance::{Balancer, Member};
pub use pool::{PoolKey, Pools, ServerPool};

use crate::config::Config;
use crate::control::AdminState;
use crate::control::HealthReport;
use crate::tls::{MaybeTls, ServerStream, SniSource};

pub struct Upstreams {
    pub backends: Vec<BackendState>,
    shard: usize,
    /// The shard's idle connections, shared by its generations.
    pools: std::rc::Rc<Pools>,
    /// Passive failure reports to the health thread.
    reports: Option<Sender<HealthReport>>,
    /// Superseded by a reload: its server numbering is stale, so it reports nothing.
    retired: Cell<bool>,
    /// Wakes the control loop when the first connection is pooled (to sweep).
    wake: std::rc::Rc<crate::io::LocalBell>,
    /// `proto h2` connections kept for more streams, as of the last sweep (and those
    /// opened since): the control loop sweeps while there are some.
    h2_kept: Cell<usize>,
}

impl Upstreams {
    /// A generation's servers. Their idle connection pools come from `pools`: a server
    /// the previous generation had keeps its pool, and pools of servers this config no
    /// longer has are retired.
    pub fn new(
        cfg: &Config,
        shard: usize,
        reports: Option<Sender<HealthReport>>,
        shared: &crate::limits::Shared,
        pools: std::rc::Rc<Pools>,
        wake: std::rc::Rc<crate::io::LocalBell>,
    ) -> Self {
        pools.begin_generation();
        let up = Upstreams {
            backends: cfg
                .backends
                .iter()
                .zip(&shared.backends)
                .map(|(b, sh)| {
                    BackendState::new(
                        b,
                        shard,
                        sh.clone(),
                        shared.links.clone(),
                        &pools,
                        &cfg.pool,
                    )
                })
                .collect(),
            shard,
            pools,
            reports,
            retired: Cell::new(false),
            wake,
            h2_kept: Cell::new(0),
        };
        up.pools.retire_unbound();
        for be in &up.backends {
            for s in &be.servers {
                up.sync_pool(s);
            }
        }
        up
    }

    /// An idle pooled connection to `server` that has nothing to read (see `pool`),
    /// opened with SNI tag `tag`. `now` is the caller's latest clock reading (the
    /// request path reads the clock sparingly).
    pub fn pooled(
        &self,
        backend: usize,
        server: u32,
        now: Instant,
        tag: u64,
    ) -> Option<ServerStream> {
        let s = &self.backends[backend].servers[server as usize];
        // A `proto h2` server's requests share its connection: a stream on it.
        if let Some(h2) = &s.h2 {
            return h2.stream();
        }
        let pool = s.pool.get()?;
        self.pools.take(pool, now, tag)
    }

    /// The SNI tag of `server`'s connections for a request whose dynamic SNI (if the
    /// server takes it from the request) is `sni`.
    pub fn sni_tag(&self, backend: usize, server: u32, sni: Option<&str>) -> u64 {
        match &self.backends[backend].servers[server as usize].tls {
            Some(t) => t.tag(sni),
            None => 0,
        }
    }

    /// TLS over a new connection to a server with `ssl` (after its PROXY header, if
    /// any), within `timeout connect`; a plain server's connection as it is. `sni`:
    /// the request's name for a server whose SNI comes from it.
    pub async fn secure(
        &self,
        backend: usize,
        server: u32,
        tcp: TcpStream,
        sni: Option<&str>,
    ) -> std::io::Result<ServerStream> {
        let be = &self.backends[backend];
        let s = &be.servers[server as usize];
        let Some(t) = &s.tls else {
            return match &s.h2 {
                Some(h2) => {
                    let stream = h2.open(h2::poll_io(tcp)?, self.pools.h2_count()).await;
                    self.h2_opened();
                    stream
                }
                None => Ok(MaybeTls::Plain(tcp)),
            };
        };
        let settings = &t.settings.settings;
        let sni = match &settings.sni {
            Some(SniSource::Fixed(n)) => Some(n.as_str()),
            Some(_) => sni,
            None => None,
        };
        let name = settings.server_name(sni, s.addr.get().ip());
        let deadline = monoio::time::Instant::now() + be.connect_timeout;
        if let Some(h2) = &s.h2 {
            // HTTP/2 over TLS: tokio-rustls under the h2 crate, with the server's
            // client config (`alpn h2` offered), on the poll-io socket.
            let io = h2::poll_io(tcp)?;
            let connector = tokio_rustls::TlsConnector::from(t.config.clone());
            let tls = match monoio::time::timeout_at(deadline, connector.connect(name, io)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::warn!(backend = %be.name, server = %s.name, addr = %s.addr.get(), error = %e, "TLS handshake with the server failed");
                    return Err(e);
                }
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "TLS handshake timeout",
                    ))
                }
            };
            let stream = h2.open(tls, self.pools.h2_count()).await;
            self.h2_opened();
            return stream;
        }
        // Boxed: a handshake's state is large and a new connection can afford it.
        match Box::pin(crate::tls::connect(tcp, t.config.clone(), name, deadline)).await {
            Ok(tls) => Ok(MaybeTls::Tls(Box::new(tls))),
            Err(e) => {
                tracing::warn!(backend = %be.name, server = %s.name, addr = %s.addr.get(), error = %e, "TLS handshake with the server failed");
                Err(e)
            }
        }
    }

    /// A new connection to `server`, within `timeout.connect`.
    /// `local`: the address the client connected to (a server without a port takes
    /// its port).
    pub async fn connect(
        &self,
        backend: usize,
        server: u32,
        local: std::net::SocketAddr,
    ) -> std::io::Result<TcpStream> {
        let s = &self.backends[backend].servers[server as usize];
        let addr = s.addr_for(local);
        // One more connection: the shard's idle ones make way if it holds its limit.
        self.pools.make_room();
        // Boxed: an inline monoio timer (128-byte aligned) would make every connection
        // task an aligned allocation; a new connection can afford one allocation.
        let res = match Box::pin(monoio::time::timeout(
            self.backends[backend].connect_timeout,
            TcpStream::connect_addr(addr),
        ))
        .await
        {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                if let Some(ka) = &self.backends[backend].tcpka {
                    use std::os::fd::{AsRawFd, BorrowedFd};
                    // SAFETY: the descriptor is the stream's, open for this borrow.
                    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
                    let _ =
                        crate::config::TcpKeepalive::apply(Some(ka), socket2::SockRef::from(&fd));
                }
                Ok(stream)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timeout",
            )),
        };
        if let Err(e) = &res {
            tracing::warn!(backend = %self.backends[backend].name, server = %s.name, addr = %addr, error = %e, "connect failed");
        }
        res
    }

    /// Returns a connection whose last exchange completed cleanly; it is idle from now
    /// (not from its response's first byte: a long body must not age it).
    pub fn release_conn(&self, backend: usize, server: u32, stream: ServerStream, tag: u64) {
        let be = &self.backends[backend];
        let s = &be.servers[server as usize];
        // A stream of a `proto h2` server's connection ends with its exchange.
        if s.h2.is_some() {
            return;
        }
        if self.pools.idle() == 0 {
            // The first idle connection: the control loop starts sweeping.
            self.wake.ring();
        }
        let pool = match s.pool.get() {
            Some(p) => p,
            // A generation a reload replaced makes no pool (the one in force may have
            // made it meanwhile; this connection simply closes), nor does a server that
            // takes no request or keeps no idle connection.
            None if self.retired.get() || s.pool_max == 0 || !s.usable() => return,
            None => s.pool.get_or_init(|| {
                self.pools
                    .create(s.pool_key(&be.name), s.pool_idle, s.pool_max as usize)
            }),
        };
        self.pools.put(pool, stream, Instant::now(), tag);
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

    /// This generation was replaced by a reload: its `proto h2` connections that the
    /// new one did not adopt close once their streams finished.
    pub fn retire(&self) {
        self.retired.set(true);
        self.release_h2();
    }

    /// Every `proto h2` connection closes once its streams finished (the shard stops).
    pub fn release_h2(&self) {
        for s in self.backends.iter().flat_map(|b| &b.servers) {
            if let Some(h2) = &s.h2 {
                h2.release();
            }
        }
        self.h2_kept.set(0);
    }

    /// A `proto h2` connection may have been kept: the control loop sweeps from now.
    fn h2_opened(&self) {
        if self.h2_kept.get() == 0 {
            self.wake.ring();
        }
        self.h2_kept.set(self.h2_kept.get() + 1);
    }

    /// Lets go of the `proto h2` connections idle for longer than their server's idle
    /// time, as `Pools::purge` closes idle HTTP/1 ones (once a second).
    pub fn sweep_h2(&self, now: Instant) {
        if self.h2_kept.get() == 0 {
            return;
        }
        let kept = self
            .backends
            .iter()
            .flat_map(|b| &b.servers)
            .filter_map(|s| Some(s.h2.as_ref()?.sweep(now, s.pool_idle)))
            .sum();
        self.h2_kept.set(kept);
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
                // The server-state file read by this reload has the say over what the
                // old generation had (as HAProxy's new process).
                if !s.saved {
                    s.up.set(os.up.get());
                    s.nolb.set(os.nolb.get());
                    s.admin.set(os.admin.get());
                }
                // The address DNS gave stays until the resolver says otherwise.
                if s.dns && os.dns {
                    s.addr.set(os.addr.get());
                    s.resolved.set(os.resolved.get());
                    s.addr_gen.set(os.addr_gen.get());
                }
                s.fail_streak.set(os.fail_streak.get());
                if os.weight.get() != os.conf_weight && !s.saved {
                    s.weight.set(os.weight.get());
                    s.effective_weight.set(os.weight.get());
                }
                if os.ramp_since.get().is_some() && !s.slowstart.is_zero() {
                    s.ramp_since.set(os.ramp_since.get());
                    s.effective_weight
                        .set(os.effective_weight.get().min(s.weight.get()));
                }
                self.sync_pool(s);
                // The same server (address, TLS) keeps its HTTP/2 connections.
                if let (Some(h2), Some(old)) = (&s.h2, &os.h2) {
                    if s.pool_key(&be.name) == os.pool_key(&ob.name) {
                        let moved = h2.adopt(old);
                        self.h2_kept.set(self.h2_kept.get() + moved);
                    }
                }
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
        // A server that goes down leaves NOLB (HAProxy's STOPPING) with it.
        s.nolb.set(false);
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
        // As HAProxy: the sessions of a server marked down end with it; a primary
        // coming up ends the backups' sessions.
        if !up && s.shutdown_on_down {
            s.fire_kill(false);
        }
        if up && !s.backup && s.shutdown_backups_on_up {
            for b in be.servers.iter().filter(|b| b.backup) {
                b.fire_kill(true);
            }
        }
    }

    /// Applies the health thread's NOLB verdict (`disable-on-404`).
    pub fn set_nolb(&self, backend: usize, server: usize, nolb: bool) {
        let be = &self.backends[backend];
        let s = &be.servers[server];
        if s.nolb.get() != nolb {
            s.nolb.set(nolb);
            self.sync_pool(s);
            be.rebuild();
        }
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

    /// Applies DNS's word on a server: a new address (its idle connections to the old
    /// one close), no address (out of service), an SRV weight.
    pub fn set_addr(
        &self,
        backend: usize,
        server: usize,
        addr: Option<std::net::SocketAddr>,
        weight: Option<u32>,
    ) {
        let be = &self.backends[backend];
        let s = &be.servers[server];
        if let Some(a) = addr {
            if a != s.addr.get() {
                s.addr.set(a);
                s.addr_gen.set(s.addr_gen.get().wrapping_add(1));
                // Connections to the old address must not serve the new one.
                if let Some(pool) = s.pool.get() {
                    self.pools.close_pool(pool);
                }
            }
        }
        s.resolved.set(addr.is_some());
        if let Some(w) = weight {
            s.weight.set(w);
            if s.ramp_since.get().is_none() {
                s.effective_weight.set(w);
            }
        }
        self.sync_pool(s);
        be.rebuild();
    }

    /// Applies an operator's maxconn change; this shard takes its share.
    pub fn set_maxconn(&self, backend: usize, server: usize, maxconn: Option<u32>) {
        self.backends[backend].set_maxconn(server, maxconn);
    }

    /// Advances slow starts; called from the control tick. `true`: some go on.
    pub fn tick_slowstart(&self, now: Instant) -> bool {
        let mut ramping = false;
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
                    ramping = true;
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
        ramping
    }

    /// Idle connections may wait in a pool (the control loop sweeps once a second
    /// while they do).
    pub fn may_have_idle(&self) -> bool {
        self.pools.idle() > 0 || self.h2_kept.get() > 0
    }

    /// A slow start is under way (the control loop advances it every tick).
    pub fn ramping(&self) -> bool {
        self.backends
            .iter()
            .any(|b| b.servers.iter().any(|s| s.ramp_since.get().is_some()))
    }

    /// A server that takes no new request (down, not ready, weight 0) keeps no idle
    /// connection, and takes none back until it does again.
    fn sync_pool(&self, s: &ServerState) {
        if let (Some(h2), false) = (&s.h2, s.usable()) {
            h2.drop_idle();
        }
        let Some(pool) = s.pool.get() else {
            // No pool yet: it is made open when a usable server's connection comes back.
            return;
        };
        if s.usable() {
            self.pools.reopen(pool);
        } else {
            self.pools.close_pool(pool);
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
