//! The shard's main task: the first generation, the accept loops, then the control
//! loop that applies what other threads send (health flips, operator changes, shared
//! tables, reloads, stop) and the periodic work (logs, tables, slow starts, pools).
//! It sleeps until there is something to do: the doorbell wakes it the moment a
//! message is sent, the data path rings it when it leaves work for later, and its
//! timers run only while that work exists (an idle shard does not wake up at all,
//! but once a second while idle connections wait in its pools).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use monoio::net::TcpStream;

use super::accept::{spawn_serve, start_accept, AcceptLoop, UNKNOWN_LISTENER};
use super::rescue::Survive;
use super::{Adopted, Current, ShardEnv};
use crate::accesslog::ShardLog;
use crate::config::Config;
use crate::control::{FromShard, ShardReport, ToShard};
use crate::shard::Shard;
use crate::stats::ShardStats;

/// How long log lines, stick records and rate counts wait before they leave (one
/// batch per tick), and the step of slow starts and of a stop's drain check.
pub const CONTROL_TICK: Duration = Duration::from_millis(20);
/// Between two sweeps of idle pooled connections and expired table entries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub(super) async fn shard_main(
    spec: &ShardEnv,
    listeners: Vec<(crate::config::BindRef, std::net::TcpListener)>,
    queued: Adopted,
    survive: &Survive,
    driver: &'static str,
    core: Option<usize>,
) {
    let _rescue = super::rescue::RescueOnPanic(survive, spec.id);
    let config = survive.borrow().config.clone();
    let shared = survive.borrow().shared.clone();
    let mut stats = ShardStats::new(&config);
    // After a restart the counters go on from where the dead runtime left them.
    if let Some(old) = &survive.borrow().current {
        let old = old.borrow();
        stats.adopt(&old.stats, &old.config, &config);
    }
    let wake = Rc::new(crate::io::LocalBell::default());
    crate::io::set_epoll_driver(driver == "legacy");
    crate::http::set_idle_bell(wake.clone());
    // A runtime that died may have taken the last datagram with it: start afresh, and
    // look at the channel once before waiting.
    spec.control.answered();
    wake.ring();
    let doorbell = ring_on_messages(&spec.control, wake.clone());
    let shard = Rc::new(Shard::new(
        spec.id,
        config.clone(),
        stats,
        Some(spec.reports.clone()),
        spec.log
            .clone()
            .map(|tx| Rc::new(ShardLog::new(tx, wake.clone()))),
        spec.services.clone(),
        wake.clone(),
        shared,
        spec.maxconn,
    ));
    let id = shard.id;
    let current: Current = Rc::new(std::cell::RefCell::new(shard.clone()));
    shard.set_home(&current);
    if let Some(old) = survive.borrow_mut().current.replace(current.clone()) {
        // The dead runtime's generation: what it holds belongs to that runtime, but
        // its idle server connections have nothing in flight and can close now.
        if let Ok(g) = old.try_borrow() {
            g.pools.abandon();
        }
        std::mem::forget(old);
        for msg in (spec.resync)(&config) {
            apply(&shard, msg);
        }
        tracing::warn!(shard = id, driver, "shard runtime restarted");
    }
    // Operator states sent before this shard ran (the cluster's first sync, a
    // hand-over) apply before the first connection; a stop or a reload waits its turn.
    let mut early = std::collections::VecDeque::new();
    while let Ok((_, msg)) = spec.control.rx.try_recv() {
        match msg {
            m @ (ToShard::Shutdown { .. } | ToShard::Reload { .. }) => early.push_back(m),
            m => apply(&shard, m),
        }
    }
    let mut accepts: Vec<AcceptLoop> = Vec::new();
    for (at, std_listener) in listeners {
        match start_accept(&current, at, std_listener) {
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
    for (at, stream, peer) in queued {
        let permits = shard.room(at.frontend).await;
        if let Ok(stream) = TcpStream::from_std(stream) {
            spawn_serve(&current, at, UNKNOWN_LISTENER, stream, peer, permits);
        }
    }
    // From here on the loop takes the generation in force from `current` each time:
    // bindings kept to the first one and its config would hold them (all its servers,
    // counters and histograms) for the life of the runtime, whatever reloads replace
    // them.
    drop(shard);
    drop(config);
    let _ = spec.events.send(FromShard::Started {
        shard: id,
        driver,
        core,
    });

    // The stop's deadline; the next tick (flushes, slow starts, the drain check) and
    // sweep, while there is work for them.
    let mut deadline: Option<Instant> = None;
    let mut tick: Option<Instant> = None;
    let mut sweep: Option<Instant> = None;
    // The earliest deadline of a connection waiting for a request (see `http::idle`).
    let mut waiting: Option<Instant> = None;
    let mut ramping = false;
    loop {
        let due = [tick, sweep, waiting].into_iter().flatten().min();
        match due {
            Some(at) => {
                monoio::select! {
                    _ = wake.wait() => {}
                    _ = monoio::time::sleep_until(monoio::time::Instant::from_std(at)) => {}
                }
            }
            None => wake.wait().await,
        }
        crate::stats::process::count(&crate::stats::process::CONTROL_WAKEUPS);
        crate::shard::fault_kill_shard(id);
        // Every pending message; a closed channel means the process is going away.
        spec.control.answered();
        let mut shutdown: Option<Option<Duration>> = None;
        loop {
            let shard = current.borrow().clone();
            let next = match early.pop_front() {
                Some(m) => Ok(m),
                None => spec.control.rx.try_recv().map(|(sent, m)| {
                    record_latency(sent);
                    m
                }),
            };
            match next {
                Ok(ToShard::Shutdown { grace }) => {
                    shutdown = Some(match shutdown {
                        Some(Some(a)) => Some(grace.map_or(a, |g| g.min(a))),
                        _ => grace,
                    })
                }
                Ok(ToShard::Reload {
                    config,
                    servers_only,
                    shared,
                    listeners,
                }) => {
                    if deadline.is_none() {
                        let mut s = survive.borrow_mut();
                        s.config = config.clone();
                        s.shared = shared.clone();
                        let next = (config, servers_only);
                        reload(&current, &mut s.accepts, next, shared, listeners);
                        ramping = current.borrow().upstreams.ramping();
                    }
                    let _ = spec.events.send(FromShard::Reloaded { shard: id });
                }
                Ok(msg @ ToShard::ServerUp { .. }) => {
                    apply(&shard, msg);
                    ramping |= shard.upstreams.ramping();
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
            tracing::debug!(shard = id, inflight = shard.inflight(), "shutdown received");
            // Tasks left behind when the runtime ends are never dropped, so wait until
            // every accept loop has ended and its listener is really closed.
            let accepts = std::mem::take(&mut survive.borrow_mut().accepts);
            for a in accepts {
                drop(a.keep);
                drop(a.stop);
                a.handle.await;
            }
            // Closing a socket is itself a submission on io_uring: enter the ring once,
            // so that the listeners close now rather than at the next wake-up.
            monoio::time::sleep(Duration::from_millis(1)).await;
            shard.draining.set(true);
            // HTTP/2 connections get GOAWAY and count as in flight until they end.
            crate::h2::drain::drain(&shard);
            shard.pools.close();
            shard.upstreams.release_h2();
            deadline =
                Some(Instant::now() + grace.unwrap_or(Duration::from_secs(100 * 365 * 86400)));
        }
        let now = Instant::now();
        if tick.is_some_and(|t| now >= t) {
            tick = None;
            if ramping {
                ramping = shard.upstreams.tick_slowstart(now);
            }
            shard.cluster.flush(id, &shard.config, &spec.cluster);
            if let Some(log) = &shard.log {
                log.flush();
            }
        }
        crate::http::wake_idle(monoio::time::Instant::from_std(now));
        let open = super::rescue::open_clients();
        if sweep.is_some_and(|t| now >= t) {
            sweep = None;
            shard.pools.purge(std::time::Instant::now());
            shard.upstreams.sweep_h2(std::time::Instant::now());
            shard.pipes.purge();
            shard.cluster.sweep();
            crate::http::trim_memory(open);
        }
        if let Some(d) = deadline {
            let inflight = shard.inflight();
            // `proto h2` connections let go end with GOAWAY once their streams did.
            if (inflight == 0 && shard.pools.h2_open() == 0) || now >= d {
                if let Some(log) = &shard.log {
                    log.flush();
                }
                // The doorbell's pending receive would keep the ring alive after
                // the runtime ends: stop it first.
                if let Some((stop, task)) = doorbell {
                    drop(stop);
                    task.await;
                }
                let _ = spec.events.send(FromShard::Stopped {
                    shard: id,
                    abandoned: inflight,
                });
                return;
            }
        }
        // Timers only while their work exists.
        let busy = ramping
            || deadline.is_some()
            || shard.cluster.pending()
            || shard.log.as_ref().is_some_and(|l| l.pending());
        if busy && tick.is_none() {
            tick = Some(now + CONTROL_TICK);
        }
        // At most one wake-up per tick for waiting connections' deadlines.
        waiting = crate::http::next_idle_deadline().map(|d| d.into_std().max(now + CONTROL_TICK));
        let idle_state = shard.upstreams.may_have_idle()
            || shard.cluster.has_entries()
            || crate::bufpool::wants_trim(open);
        if idle_state && sweep.is_none() {
            sweep = Some(now + SWEEP_EVERY);
        }
    }
}

/// Wakes the control loop whenever another thread sends this shard a message: a task
/// that waits on the doorbell until told to stop (dropping the returned sender).
fn ring_on_messages(
    inbox: &crate::control::Inbox,
    wake: Rc<crate::io::LocalBell>,
) -> Option<(
    local_sync::oneshot::Sender<()>,
    monoio::task::JoinHandle<()>,
)> {
    let sock = inbox
        .bell
        .try_clone()
        .and_then(monoio::net::unix::UnixDatagram::from_std);
    let sock = match sock {
        Ok(s) => s,
        Err(e) => {
            // Without a doorbell the loop still wakes for its own timers; poll often.
            tracing::error!(error = %e, "no doorbell: control messages wait for a timer");
            let (stop, mut stopped) = local_sync::oneshot::channel::<()>();
            let task = monoio::spawn(async move {
                loop {
                    monoio::select! {
                        _ = &mut stopped => return,
                        _ = monoio::time::sleep(CONTROL_TICK) => wake.ring(),
                    }
                }
            });
            return Some((stop, task));
        }
    };
    let (stop, mut stopped) = local_sync::oneshot::channel::<()>();
    let task = monoio::spawn(async move {
        let mut buf = Vec::with_capacity(8);
        loop {
            buf.clear();
            let res = monoio::select! {
                _ = &mut stopped => return,
                r = sock.recv(buf) => r,
            };
            buf = res.1;
            wake.ring();
            if res.0.is_err() {
                // Not expected on a socket pair; do not spin on it.
                monoio::time::sleep(CONTROL_TICK).await;
            }
        }
    });
    Some((stop, task))
}

/// How long a control message took to be in force here.
fn record_latency(sent: Instant) {
    crate::stats::process::count(&crate::stats::process::CONTROL_MESSAGES);
    let us = sent.elapsed().as_micros() as u64;
    if let Ok(mut h) = crate::stats::process::control_latency().lock() {
        let _ = h.record(us.max(1));
    }
}

/// A new config: a new generation for new connections, listeners kept, added or closed.
fn reload(
    current: &Current,
    accepts: &mut Vec<AcceptLoop>,
    (config, servers_only): (Arc<Config>, bool),
    shared: Arc<crate::limits::Shared>,
    listeners: Vec<(
        SocketAddr,
        crate::config::BindRef,
        Option<std::net::TcpListener>,
    )>,
) {
    let prev = current.borrow().clone();
    let next = Rc::new(prev.next_generation(config, shared, servers_only));
    prev.replaced_by(&next, servers_only);
    drop(prev);
    let id = next.id;
    *current.borrow_mut() = next;
    // Listeners whose address is gone close (their accepted connections finish).
    accepts.retain(|a| listeners.iter().any(|(addr, _, _)| *addr == a.addr));
    for (addr, at, socket) in listeners {
        match socket {
            Some(l) => match start_accept(current, at, l) {
                Ok(a) => accepts.push(a),
                Err(e) => tracing::error!(shard = id, %addr, error = %e, "reload: cannot listen"),
            },
            None => {
                if let Some(a) = accepts.iter().find(|a| a.addr == addr) {
                    a.at.set(at);
                    super::accept::listener_keepalive(current, at, &a.keep);
                }
            }
        }
    }
}

/// Applies a message from the health or admin thread.
fn apply(shard: &Shard, msg: ToShard) {
    let up = &shard.upstreams;
    match msg {
        ToShard::Shutdown { .. } | ToShard::Reload { .. } => {}
        ToShard::Certs(update) => shard.apply_certs(&update),
        ToShard::TicketKeys(keys) => shard.share_tickets(keys),
        ToShard::Patterns(up) => {
            if Arc::ptr_eq(&up.config, &shard.config) {
                shard.maps.apply(&shard.config, &up);
            }
        }
        ToShard::Ack(reply) => {
            let _ = reply.send(shard.id);
        }
        ToShard::Limits(crate::limits::Event::Granted(w)) => w.wake_here(),
        ToShard::Limits(crate::limits::Event::Nudge) => {
            for b in &up.backends {
                b.nudge_waiters();
            }
        }
        ToShard::Limits(crate::limits::Event::Room) => shard.room.ring(),
        ToShard::ServerUp {
            backend,
            server,
            up: is_up,
        } => up.set_up(backend, server, is_up),
        ToShard::ServerNolb {
            backend,
            server,
            nolb,
        } => up.set_nolb(backend, server, nolb),
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
        } => up.set_maxconn(backend, server, maxconn),
        ToShard::SetAddr {
            backend,
            server,
            addr,
            weight,
        } => up.set_addr(backend, server, addr, weight),
        ToShard::Sticks(recs) => shard.cluster.apply_sticks(&shard.config, &recs),
        ToShard::Rates(counts) => shard.cluster.apply_rates(&shard.config, &counts),
        ToShard::ClearCounters { all } => shard.stats.clear(all),
        ToShard::Inspect(reply) => {
            let sessions = super::rescue::clients()
                .into_iter()
                .map(|c| crate::control::Session {
                    fd: c.fd,
                    frontend: c.frontend as usize,
                    peer: c.peer,
                    age: c.since.elapsed(),
                })
                .collect();
            let (captures, events) = shard.stats.captures();
            let _ = reply.send(crate::control::Inspected {
                shard: shard.id,
                sessions,
                captures,
                events,
                tables: shard.cluster.dump(),
                counters: shard.cluster.dump_counters(),
            });
        }
        ToShard::ClearTable {
            owner,
            limiter,
            key,
        } => shard.cluster.clear(owner, limiter, key),
        ToShard::ClearStickCounters { table, key } => shard.cluster.clear_counters(table, key),
        ToShard::Tables(downs) => shard.cluster.apply_tables(&shard.config, &downs),
        ToShard::Snapshot(reply) => {
            let (busy, idle, max, spliced) = shard.pipes.figures();
            let per_server = |f: &dyn Fn(&crate::upstream::ServerState) -> usize| {
                up.backends
                    .iter()
                    .map(|b| b.servers.iter().map(|s| f(s) as u64).collect())
                    .collect()
            };
            let h2 = |s: &crate::upstream::ServerState| {
                s.h2.as_ref().map_or((0, 0, [0; 9]), |h| h.figures())
            };
            let mut stats = shard.stats.snapshot();
            let held = crate::control::Held {
                idle: per_server(&|s| s.pool.get().map_or(0, |p| p.len()) + h2(s).1),
                h2_open: per_server(&|s| h2(s).0),
                h2_frames: up
                    .backends
                    .iter()
                    .map(|b| {
                        b.servers.iter().fold([0; 9], |mut sum, s| {
                            sum.iter_mut().zip(h2(s).2).for_each(|(a, v)| *a += v);
                            sum
                        })
                    })
                    .collect(),
                older: shard.fold_older(&mut stats),
                inflight: shard.inflight() as u64,
                pipes: (busy as u64, idle as u64, max as u64),
                spliced,
                buffers: crate::http::buffer_figures(),
            };
            let _ = reply.send(ShardReport {
                shard: shard.id,
                stats,
                queued: up.backends.iter().map(|b| b.queue_figures()).collect(),
                held,
            });
        }
    }
}
