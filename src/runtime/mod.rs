//! One core: pin the thread, build its monoio runtime (`driver`), take over its
//! listeners and accept (`accept`), drain the messages other threads send it
//! (`control`), and start a new runtime when a panic kills one (`rescue`).

mod accept;
mod control;
mod driver;
mod rescue;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::config::Config;
use crate::control::{FromShard, HealthReport, ServiceQuery};
use crate::shard::Shard;
use rescue::{Survive, Survivor};

/// The current config generation; accept loops take it for each new connection.
type Current = Rc<std::cell::RefCell<Rc<Shard>>>;

/// Everything one shard needs to start.
pub struct ShardSpec {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub config: Arc<Config>,
    /// The limits every shard shares, for `config`.
    pub shared: Arc<crate::limits::Shared>,
    /// The global maxconn in force (configured, or derived from the fd limit at
    /// start), which sizes the shard's budget of pooled connections and pipes.
    pub maxconn: Option<u32>,
    /// (bind, listening socket) pairs owned by this shard.
    pub listeners: Vec<(crate::config::BindRef, std::net::TcpListener)>,
    pub control: crate::control::Inbox,
    pub events: Sender<FromShard>,
    /// Passive failure reports to the health thread.
    pub reports: Sender<HealthReport>,
    /// The access log thread, when logs are configured.
    pub log: Option<Sender<Vec<u8>>>,
    /// The admin side, for stats pages and metrics requested on a frontend.
    pub services: Sender<ServiceQuery>,
    /// The cluster thread (shared state: stick tables, rate limits).
    pub cluster: Sender<crate::control::Up>,
    /// Server states for a shard restarted after a panic.
    pub resync: crate::control::Resync,
    /// The listeners offered to a newer process (`-sf`); a restart swaps its own.
    pub handed: crate::upgrade::HandedSockets,
}

pub fn spawn(spec: ShardSpec) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ringlb-shard-{}", spec.id))
        .spawn(move || run(spec))
}

/// What a shard's runtimes use for the thread's whole life. The first config and its
/// limits are not part of it: they move into the `Survivor`, which each reload
/// updates, so that nothing on the thread keeps a replaced config alive.
pub(super) struct ShardEnv {
    pub(super) id: usize,
    pub(super) maxconn: Option<u32>,
    pub(super) control: crate::control::Inbox,
    pub(super) events: Sender<FromShard>,
    pub(super) reports: Sender<HealthReport>,
    pub(super) log: Option<Sender<Vec<u8>>>,
    pub(super) services: Sender<ServiceQuery>,
    pub(super) cluster: Sender<crate::control::Up>,
    pub(super) resync: crate::control::Resync,
}

fn run(spec: ShardSpec) {
    let ShardSpec {
        id,
        core,
        config,
        shared,
        maxconn,
        listeners,
        control,
        events,
        reports,
        log,
        services,
        cluster,
        resync,
        handed,
    } = spec;
    let spec = ShardEnv {
        id,
        maxconn,
        control,
        events,
        reports,
        log,
        services,
        cluster,
        resync,
    };
    let core = core.and_then(|c| {
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
    let mut listeners = listeners;
    let survive: Survive = Rc::new(std::cell::RefCell::new(Survivor {
        config,
        shared,
        handed,
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
            driver::run_runtime(&spec, given, queued, &survive, core)
        }));
        let Err(panic) = outcome else { return };
        crate::stats::process::count(&crate::stats::process::SHARD_RESTARTS);
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
type Adopted = Vec<(crate::config::BindRef, std::net::TcpStream, SocketAddr)>;

/// A panic's message.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
