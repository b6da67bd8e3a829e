//! ringlb: an io_uring, thread-per-core L4/L7 load balancer.
//!
//! The data path, stage by stage: `listen` (SO_REUSEPORT sockets) → `shard` (one pinned
//! monoio runtime per core, accept) → `http` (parse, route, forward) or `l4` (passthrough)
//! → `upstream` (balancing and the connection pool). `config` is the validated model both
//! config syntaxes produce; `control` holds the messages that cross threads.

pub mod accesslog;
pub mod admin;
mod bufpool;
pub mod cluster;
pub mod config;
pub mod control;
pub mod demo;
pub mod dispatch;
pub mod freq;
pub mod h2;
pub mod h2map;
pub mod hash;
pub mod health;
pub mod http;
pub mod io;
pub mod l4;
pub mod limits;
pub mod listen;
pub mod memory;
pub mod pipe;
pub mod process;
pub mod proxy_protocol;
pub mod record;
mod recv_ring;
mod reload;
pub mod resolver;
pub mod route_index;
pub mod rules;
pub mod runtime;
pub mod shard;
pub mod splice;
pub mod stats;
pub mod tables;
pub mod tcp_rules;
pub mod tls;
pub mod upgrade;
pub mod upstream;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;

use config::{Config, ConfigErrors};
use control::{FromShard, ToShard};
use listen::BindError;

#[derive(Debug)]
pub enum Error {
    Config(ConfigErrors),
    Bind(BindError),
    Shard(String),
    Io(std::io::Error),
    /// `ulimit-n`, `chroot`, `user`/`group` could not be applied.
    Process(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::Bind(e) => write!(f, "{e}"),
            Error::Shard(e) => write!(f, "shard failed to start: {e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Process(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// A started balancer: its shards, and the addresses each frontend listens on.
pub struct Running {
    pub(crate) shards: Vec<(control::ShardLink, JoinHandle<()>)>,
    pub(crate) events: Receiver<FromShard>,
    /// (frontend name, bound address), in config order.
    pub listening: Vec<(String, SocketAddr)>,
    /// The same addresses with the bind each serves.
    pub(crate) bound_at: Vec<(config::BindRef, SocketAddr)>,
    /// `add server` / `del server` from the runtime API, for the main loop.
    servers: Receiver<control::ServersChange>,
    shutdown_grace: Duration,
    pub(crate) health: Option<health::Health>,
    /// The log thread (fixed for the process's life: a reload may not change it).
    pub(crate) log: Option<crossbeam_channel::Sender<Vec<u8>>>,
    pub(crate) admin: Option<admin::Admin>,
    cluster: Option<cluster::Cluster>,
    /// The configuration in force, and its limits.
    pub(crate) cfg: Arc<Config>,
    pub(crate) shared: Arc<limits::Shared>,
    /// What a newer process may take over (`-sf`), and the socket it asks on.
    pub(crate) offer: Option<Arc<upgrade::Offer>>,
    _handover: Option<upgrade::Handover>,
}

/// Binds every frontend and starts the shards; returns once all of them run.
pub fn start(cfg: Config) -> Result<Running, Error> {
    start_upgrading(cfg, &[])
}

/// Like `start`, taking over the listeners of the processes `old` (`-sf`) when they
/// hand them over, and binding anew (with a warning) when they do not.
pub fn start_upgrading(cfg: Config, old: &[u32]) -> Result<Running, Error> {
    bufpool::init();
    // The open-file limit first: binding and the derived maxconn depend on it.
    if let Some(n) = cfg.runtime.process.ulimit_n {
        process::raise_nofile(n).map_err(Error::Process)?;
    }
    let cfg = Arc::new(cfg);
    let shards = cfg.runtime.shards;
    let mut received = upgrade::Received::default();
    for &pid in old {
        match upgrade::take(pid) {
            Ok(r) => {
                tracing::info!(
                    pid,
                    sockets = r.sockets.len(),
                    "-sf: took over the listeners"
                );
                received.sockets.extend(r.sockets);
                received.states.extend(r.states);
            }
            Err(e) => {
                stats::process::count(&stats::process::HANDOVER_FAILURES);
                tracing::warn!(pid, error = %e, "-sf: hand-over failed; binding anew");
            }
        }
    }
    let bound = listen::bind_all_inheriting(&cfg, shards, &mut received.sockets, !old.is_empty())
        .map_err(Error::Bind)?;
    // Duplicates of every shard's listeners, for the next upgrade's hand-over.
    let mut handed_list = Vec::new();
    for b in &bound {
        for (i, l) in b.per_shard.iter().enumerate() {
            if let Ok(dup) = l.try_clone() {
                handed_list.push(upgrade::Handed {
                    addr: b.addr,
                    shard: i,
                    socket: dup,
                });
            }
        }
    }
    let handed: upgrade::HandedSockets = Arc::new(std::sync::Mutex::new(handed_list));
    let listening = bound
        .iter()
        .map(|b| (cfg.frontends[b.at.frontend].name.clone(), b.addr))
        .collect();
    let bound_at = bound.iter().map(|b| (b.at, b.addr)).collect();

    let mut per_shard: Vec<Vec<(config::BindRef, std::net::TcpListener)>> =
        (0..shards).map(|_| Vec::new()).collect();
    for b in bound {
        for (i, l) in b.per_shard.into_iter().enumerate() {
            per_shard[i].push((b.at, l));
        }
    }
    let maxconn = global_maxconn(&cfg);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (events_tx, events) = crossbeam_channel::unbounded();
    let (reports_tx, reports_rx) = crossbeam_channel::unbounded();
    let controls = (0..shards)
        .map(|_| control::link())
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::Io)?;
    // The limits every shard shares; they tell a shard about a freed slot through its
    // control channel.
    let shared = Arc::new(limits::Shared::with_global(&cfg, None, maxconn));
    shared.links.set(Arc::new(control::ShardLinks(
        controls.iter().map(|(tx, _)| tx.clone()).collect(),
    )));
    // Lines less severe than the target's level are never formatted (`record`).
    let log = match &cfg.log {
        Some(target) => Some(accesslog::spawn(target.clone()).map_err(Error::Io)?),
        None => None,
    };
    let health = health::Health::spawn(
        cfg.clone(),
        controls.iter().map(|(tx, _)| tx.clone()).collect(),
        reports_rx,
        log.clone(),
    )
    .map_err(Error::Io)?;
    let core = Arc::new(control::Core::new(
        cfg.clone(),
        controls.iter().map(|(tx, _)| tx.clone()).collect(),
        health.view.clone(),
    ));
    if let Ok(mut d) = core.dns.lock() {
        *d = health.dns.clone();
    }
    if let Ok(mut d) = core.dns_cmds.lock() {
        *d = health.dns_commands();
    }
    if let Ok(mut d) = core.health_cmds.lock() {
        *d = Some(health.commands());
    }
    let admin = admin::Admin::start(core).map_err(Error::Io)?;
    let (servers_tx, servers) = crossbeam_channel::unbounded();
    let _ = admin.core.servers.set(servers_tx);
    let (cluster_tx, cluster_rx) = crossbeam_channel::unbounded();
    let _ = admin.core.cluster.set(cluster_tx.clone());
    let cluster = cluster::Cluster::spawn(
        cfg.clone(),
        cluster_rx,
        cluster_tx.clone(),
        controls.iter().map(|(tx, _)| tx.clone()).collect(),
        admin.core.clone(),
    )
    .map_err(Error::Io)?;
    let resync: control::Resync = {
        let core = admin.core.clone();
        Arc::new(move |cfg| core.resync_messages(cfg))
    };
    // Every socket is open now (listeners, stats sockets, the log's, the hand-over
    // socket): write the pid file, then chroot and drop privileges before any shard
    // serves (HAProxy's order).
    let offer = Arc::new(upgrade::Offer {
        sockets: handed.clone(),
        states: {
            let core = admin.core.clone();
            Box::new(move || core.operator_states())
        },
    });
    let handover = match upgrade::serve(offer.clone()) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "no hand-over socket: a later -sf will bind anew");
            None
        }
    };
    if let Some(p) = &cfg.runtime.pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            tracing::warn!(path = %p.display(), error = %e, "cannot write the pid file");
        }
    }
    if let Err(e) = process::confine(&cfg.runtime.process) {
        if let Some(p) = &cfg.runtime.pidfile {
            let _ = std::fs::remove_file(p);
        }
        return Err(Error::Process(e));
    }
    let mut handles = Vec::with_capacity(shards);
    for ((id, listeners), (tx, inbox)) in per_shard.into_iter().enumerate().zip(controls) {
        let core = match &cfg.runtime.cpus {
            Some(list) => Some(core_affinity::CoreId {
                id: list[id % list.len()],
            }),
            None if cores.is_empty() => None,
            None => Some(cores[id % cores.len()]),
        };
        let spec = runtime::ShardSpec {
            id,
            core,
            config: cfg.clone(),
            shared: shared.clone(),
            listeners,
            control: inbox,
            events: events_tx.clone(),
            reports: reports_tx.clone(),
            log: log.clone(),
            services: admin.services.clone(),
            cluster: cluster_tx.clone(),
            resync: resync.clone(),
            handed: handed.clone(),
            maxconn,
        };
        let handle = runtime::spawn(spec).map_err(Error::Io)?;
        handles.push((tx, handle));
    }
    let running = Running {
        shards: handles,
        events,
        listening,
        bound_at,
        servers,
        shutdown_grace: cfg.timeouts.shutdown,
        health: Some(health),
        log,
        admin: Some(admin),
        cluster: Some(cluster),
        cfg: cfg.clone(),
        shared,
        offer: Some(offer),
        _handover: handover,
    };
    let mut started = 0;
    let mut summary = Vec::new();
    while started < shards {
        match running.events.recv_timeout(Duration::from_secs(10)) {
            Ok(FromShard::Started {
                shard,
                driver,
                core,
            }) => {
                tracing::info!(shard, driver, core = ?core, "shard started");
                summary.push((shard, driver, core));
                started += 1;
            }
            Ok(FromShard::Failed { shard, error }) => {
                running.stop();
                return Err(Error::Shard(format!("shard {shard}: {error}")));
            }
            Ok(FromShard::Stopped { .. }) | Ok(FromShard::Reloaded { .. }) => {}
            Err(_) => {
                running.stop();
                return Err(Error::Shard("timed out waiting for shards to start".into()));
            }
        }
    }
    summary.sort();
    let drivers: Vec<_> = summary.iter().map(|s| s.1).collect();
    let cores: Vec<_> = summary.iter().map(|s| s.2).collect();
    tracing::info!(shards, ?drivers, ?cores, "ringlb started");
    // What reading the config and building the shards left behind goes back.
    memory::trim_soon();
    if let Some(admin) = &running.admin {
        let core = admin.core.clone();
        // Operator states of the process we replace, for servers that exist here too
        // and that the server-state file did not place (the file has the say, as for
        // HAProxy's new process).
        let cfg = core.cfg();
        for (b, srv, state, weight) in &received.states {
            let spec = format!("{b}/{srv}");
            let found = core.find_server(&spec);
            if found.is_some_and(|(bi, si)| cfg.backends[bi].servers[si].saved.is_none()) {
                admin::run_command(&core, &["set", "server", &spec, "state", state]);
                admin::run_command(
                    &core,
                    &["set", "server", &spec, "weight", &weight.to_string()],
                );
            }
        }
    }
    Ok(running)
}

impl Running {
    /// Prints the `listening frontend=NAME addr=IP:PORT` lines, `listening admin
    /// addr=IP:PORT` for the admin listener, `listening stats addr=IP:PORT` for each TCP
    /// stats socket, then `ready shards=N`.
    pub fn announce(&self) {
        let mut out = std::io::stdout().lock();
        for (name, addr) in &self.listening {
            let _ = writeln!(out, "listening frontend={name} addr={addr}");
        }
        if let Some(addr) = self.admin.as_ref().and_then(|a| a.listen) {
            let _ = writeln!(out, "listening admin addr={addr}");
        }
        for addr in self.admin.iter().flat_map(|a| a.stats_tcp.iter()) {
            let _ = writeln!(out, "listening stats addr={addr}");
        }
        let _ = writeln!(out, "ready shards={}", self.shards.len());
        let _ = out.flush();
    }

    /// Closes the listeners at once, lets in-flight requests finish within the
    /// shutdown grace period, and joins every shard.
    pub fn stop(self) {
        let grace = self.shutdown_grace;
        self.begin_stop(Some(grace));
        self.wait_stopped(|| None);
    }

    /// Closes every listener now; in-flight requests get `grace` (`None`: no limit).
    pub fn begin_stop(&self, grace: Option<Duration>) {
        if let Some(a) = &self.admin {
            a.set_stopping();
        }
        // The hand-over keeps duplicates of the listeners: drop them, or the sockets
        // would stay open (and keep queueing connections) after the shards let go.
        if let Some(offer) = &self.offer {
            if let Ok(mut s) = offer.sockets.lock() {
                s.clear();
            }
        }
        for (tx, _) in &self.shards {
            let _ = tx.send(ToShard::Shutdown { grace });
        }
    }

    /// Waits for every shard to finish; `shorten` is polled and may cut the grace.
    pub fn wait_stopped(mut self, mut shorten: impl FnMut() -> Option<Duration>) {
        let mut abandoned = 0;
        let mut stopped = 0;
        while stopped < self.shards.len() {
            if let Some(g) = shorten() {
                for (tx, _) in &self.shards {
                    let _ = tx.send(ToShard::Shutdown { grace: Some(g) });
                }
            }
            match self.events.recv_timeout(Duration::from_millis(100)) {
                Ok(FromShard::Stopped { abandoned: n, .. }) => {
                    abandoned += n;
                    stopped += 1;
                }
                Ok(_) => {}
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "grace period over: closed requests still in flight"
            );
        }
        for (_, h) in std::mem::take(&mut self.shards) {
            let _ = h.join();
        }
        if let Some(h) = self.health.take() {
            h.stop();
        }
        if let Some(c) = self.cluster.take() {
            c.stop();
        }
        tracing::info!("stopped");
    }
}

/// The global maxconn in force: the configured one (with a warning when the open-file
/// limit cannot hold it), or, as HAProxy does, one derived from that limit so that
/// accepting pauses before descriptors run out (`config::fd_budget`). The soft limit is
/// raised to the hard one first. `None`: no limit on open files, none on connections.
pub(crate) fn global_maxconn(cfg: &Config) -> Option<u32> {
    let Some(nofile) = raise_fd_limit() else {
        return cfg.runtime.maxconn;
    };
    let reserved = config::fd_budget::reserved(cfg);
    match cfg.runtime.maxconn {
        Some(m) => {
            let needed = config::fd_budget::needed(cfg, m);
            if needed > nofile {
                let fits = config::fd_budget::derive_maxconn(cfg, nofile);
                tracing::warn!(
                    maxconn = m,
                    fd_limit = nofile,
                    fds_needed = needed,
                    "maxconn {m} does not fit in the open-file limit ({nofile}): beyond about {fits} connections, accepts or server connections may fail; raise the limit (ulimit -n, LimitNOFILE) or lower maxconn"
                );
            }
            Some(m)
        }
        None => {
            let m = config::fd_budget::derive_maxconn(cfg, nofile);
            tracing::info!(
                maxconn = m,
                fd_limit = nofile,
                fds_reserved = reserved,
                "global maxconn set to {m} from the open-file limit ({nofile} descriptors, {reserved} reserved, 2.5 per connection)"
            );
            Some(m)
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard one (at most 2^20) and returns the soft
/// limit in force; `None` when it is unlimited or cannot be read.
fn raise_fd_limit() -> Option<u64> {
    const CAP: u64 = 1 << 20;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0
            || lim.rlim_cur == libc::RLIM_INFINITY
        {
            return None;
        }
        let want = lim.rlim_max.min(CAP);
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = want;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// Runs `cfg` until SIGTERM or SIGINT, then stops gracefully.
pub fn run(cfg: Config) -> Result<(), Error> {
    run_with(cfg, None, |_| {})
}

/// Like `run`, calling `ready` once every frontend listens. `source` is the config
/// file, re-read on SIGHUP / SIGUSR2.
///
/// Signals: SIGTERM / SIGINT stop (in-flight requests get `timeout.shutdown`);
/// SIGUSR1 is a soft stop (they get `timeout.hard_stop_after`, unlimited by default;
/// a SIGTERM during it cuts that to `timeout.shutdown`).
pub fn run_with(
    cfg: Config,
    source: Option<std::path::PathBuf>,
    ready: impl FnOnce(&Running),
) -> Result<(), Error> {
    run_upgrading(cfg, source, &[], ready)
}

/// Like `run_with`, taking over from the processes `old` first (`-sf`).
pub fn run_upgrading(
    cfg: Config,
    source: Option<std::path::PathBuf>,
    old: &[u32],
    ready: impl FnOnce(&Running),
) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    // Registered before anything starts, so an early signal still stops cleanly.
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP, SIGUSR2])
            .map_err(Error::Io)?;
    let hard_stop_after = cfg.timeouts.hard_stop_after;
    let grace = cfg.timeouts.shutdown;
    let pidfile = cfg.runtime.pidfile.clone();
    // A chrooted process, or one that dropped its privileges, cannot reach it.
    let confined = cfg.runtime.process.chroot.is_some() || cfg.runtime.process.uid.is_some();
    let mut running = start_upgrading(cfg, old)?;
    running.announce();
    ready(&running);
    upgrade::finish_old(old);
    // Signals and the runtime API's changes of the servers, in arrival order.
    let (sig_tx, sig_rx) = crossbeam_channel::unbounded();
    let sig_handle = signals.handle();
    let forward = std::thread::Builder::new()
        .name("ringlb-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig_tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .map_err(Error::Io)?;
    let servers = running.servers.clone();
    loop {
        let sig = crossbeam_channel::select! {
            recv(sig_rx) -> s => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            recv(servers) -> c => {
                if let Ok(c) = c {
                    reload::servers(&mut running, c);
                }
                continue;
            }
        };
        match sig {
            SIGTERM | SIGINT => {
                tracing::info!(
                    signal = sig,
                    "stopping: listeners closed, finishing in-flight requests"
                );
                running.begin_stop(Some(grace));
                break;
            }
            SIGUSR1 => {
                tracing::info!("soft stop: listeners closed, in-flight requests finish, then exit");
                running.begin_stop(hard_stop_after);
                break;
            }
            _ => match source.as_deref() {
                Some(path) => reload::reload(&mut running, path),
                None => tracing::warn!(
                    "reload requested, but this instance has no config file to re-read"
                ),
            },
        }
    }
    running.wait_stopped(|| {
        sig_rx
            .try_iter()
            .any(|s| s == SIGTERM || s == SIGINT)
            .then_some(grace)
    });
    sig_handle.close();
    let _ = forward.join();
    if let Some(p) = pidfile.as_ref().filter(|_| !confined) {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
