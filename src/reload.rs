//! Reload in place (SIGHUP / SIGUSR2): the new file is read and validated off the
//! request path; a bad one is refused with its errors and nothing changes. A good one
//! is handed to every shard as a new immutable config: new connections use it,
//! connections in flight finish on the old one. Listeners on unchanged addresses keep
//! their sockets (no accept-queue loss), new addresses are bound, removed ones close.
//! Servers that exist in both configs keep their health, operator state and idle
//! connections; new ones start up, as HAProxy starts them.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use crate::config::{BindRef, Config};
use crate::control::ToShard;
use crate::{health, listen, Running};

/// Applies the file at `path`, or logs why it was refused.
pub fn reload(running: &mut Running, path: &Path) {
    match apply(running, path) {
        Ok(()) => {
            tracing::warn!("reload: {} applied", path.display());
            // The old config is gone from this thread (shards drop their old
            // generations when its last connection closes, and ask again then).
            crate::memory::trim_soon();
        }
        Err(errors) => {
            for e in &errors {
                tracing::error!("reload refused: {e}");
            }
            tracing::error!(
                "reload refused: {} error(s) in {}; the running configuration is unchanged",
                errors.len(),
                path.display()
            );
        }
    }
}

fn apply(running: &mut Running, path: &Path) -> Result<(), Vec<String>> {
    let file = path.to_path_buf();
    let (new, warnings) =
        crate::memory::build_in_turn(move || Config::load_with_warnings(&file)).map_err(|e| e.0)?;
    for w in warnings {
        tracing::warn!("reload: {w}");
    }
    let old = running.cfg.clone();
    // What the running process was built around cannot change under it.
    let mut fixed = Vec::new();
    if new.runtime.shards != old.runtime.shards
        || new.runtime.driver != old.runtime.driver
        || new.runtime.cpus != old.runtime.cpus
    {
        fixed.push("changing the shard count, driver or cpus needs a restart");
    }
    if new.admin.stats_socket != old.admin.stats_socket
        || new.admin.stats_unix_more != old.admin.stats_unix_more
        || new.admin.stats_tcp != old.admin.stats_tcp
        || new.admin.listen != old.admin.listen
    {
        fixed.push("changing the stats socket or the admin listener needs a restart");
    }
    if new.runtime.process != old.runtime.process {
        fixed.push("changing daemon, ulimit-n, chroot, user/uid or group/gid needs a restart");
    }
    if new.log != old.log {
        fixed.push("changing the log target needs a restart");
    }
    if !fixed.is_empty() {
        return Err(fixed
            .into_iter()
            .map(|f| format!("{}: {f}", path.display()))
            .collect());
    }
    let new = Arc::new(new);
    let shards = running.shards.len();

    // Listeners: keep the sockets of unchanged addresses, bind the new ones first so
    // that a failure leaves everything as it was.
    let mut per_shard: Vec<Vec<(SocketAddr, BindRef, Option<TcpListener>)>> =
        (0..shards).map(|_| Vec::new()).collect();
    let mut listening = Vec::new();
    let mut bound_at = Vec::new();
    for (fi, fe) in new
        .frontends
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.disabled)
    {
        for (bi, (want, opts)) in fe.binds.iter().map(|b| (b.addr, b.sock)).enumerate() {
            let at = BindRef {
                frontend: fi,
                bind: bi,
            };
            let kept = want.port() != 0 && running.listening.iter().any(|(_, a)| *a == want);
            if kept {
                for list in &mut per_shard {
                    list.push((want, at, None));
                }
                listening.push((fe.name.clone(), want));
                bound_at.push((at, want));
                continue;
            }
            let fail =
                |e: std::io::Error| vec![format!("frontend {}: cannot bind {want}: {e}", fe.name)];
            let addr = listen::probe(want, opts).map_err(fail)?;
            for list in &mut per_shard {
                list.push((
                    addr,
                    at,
                    Some(listen::reuseport_listener(addr, opts).map_err(fail)?),
                ));
            }
            listening.push((fe.name.clone(), addr));
            bound_at.push((at, addr));
        }
    }

    switch(running, new.clone(), per_shard, Generation::File)?;
    running.listening = listening;
    running.bound_at = bound_at;
    let mut out = std::io::stdout().lock();
    for (name, addr) in &running.listening {
        let _ = writeln!(out, "listening frontend={name} addr={addr}");
    }
    let _ = writeln!(out, "reloaded");
    let _ = out.flush();
    Ok(())
}

/// Why a new config comes in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Generation {
    /// A reload: the file read again.
    File,
    /// The runtime API changed the servers (`add server`, `del server`): what else the
    /// operator changed at run time (certificates, maps, paused checks) stays.
    Servers,
}

/// The runtime API's change of the servers' list: a new config made from the one in
/// force, on every shard (and the health thread) when `done` answers. Listeners stay.
pub fn servers(running: &mut Running, change: crate::control::ServersChange) {
    let new = match (change.change)(&running.cfg) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            let _ = change.done.send(Err(e));
            return;
        }
    };
    let per_shard = (0..running.shards.len())
        .map(|_| {
            running
                .bound_at
                .iter()
                .map(|&(at, addr)| (addr, at, None))
                .collect()
        })
        .collect();
    let res = switch(running, new, per_shard, Generation::Servers).map_err(|e| e.join("\n") + "\n");
    let _ = change.done.send(res);
}

/// Puts `new` in force: limits carried over, a new health thread (going on with the
/// checks' schedules after a change of the servers), every shard on it.
fn switch(
    running: &mut Running,
    new: Arc<Config>,
    per_shard: Vec<Vec<(SocketAddr, BindRef, Option<TcpListener>)>>,
    why: Generation,
) -> Result<(), Vec<String>> {
    let old = running.cfg.clone();
    let shards = running.shards.len();
    // The old health thread stops before shards switch, and the new one starts after
    // they have the new config queued: a flip is never applied to the wrong numbering.
    let old_view = running.admin.as_ref().map(|a| a.core.health());
    let stopped = running.health.take().and_then(|h| h.stop());
    let (reports, schedules) =
        stopped.unwrap_or_else(|| (crossbeam_channel::unbounded().1, Default::default()));
    // Only a change of the servers keeps the checks' schedules (see `Schedules`).
    let schedules = match why {
        Generation::Servers => schedules,
        Generation::File => Default::default(),
    };
    // The hand-over offer follows: kept sockets stay, new ones join, removed ones go.
    if let Some(offer) = &running.offer {
        if let Ok(mut handed) = offer.sockets.lock() {
            handed.retain(|h| {
                per_shard
                    .iter()
                    .flatten()
                    .any(|(a, _, s)| *a == h.addr && s.is_none())
            });
            for (shard, list) in per_shard.iter().enumerate() {
                for (addr, _, sock) in list {
                    if let Some(dup) = sock.as_ref().and_then(|s| s.try_clone().ok()) {
                        handed.push(crate::upgrade::Handed {
                            addr: *addr,
                            shard,
                            socket: dup,
                        });
                    }
                }
            }
        }
    }
    // Counters of servers and proxies that stay carry over: in-flight requests of the
    // old config give their slots back to them.
    // The process's maxconn (configured, or derived from the open-file limit) may
    // change: the one counter of connections carries over with its new limit.
    let shared = Arc::new(crate::limits::Shared::with_global(
        &new,
        Some((&old, &running.shared)),
        crate::global_maxconn(&new),
    ));
    for ((tx, _), listeners) in running.shards.iter().zip(per_shard) {
        let _ = tx.send(ToShard::Reload {
            config: new.clone(),
            servers_only: why == Generation::Servers,
            shared: shared.clone(),
            listeners,
        });
    }
    let senders: Vec<_> = running.shards.iter().map(|(tx, _)| tx.clone()).collect();
    let health = health::Health::spawn_from(
        new.clone(),
        senders,
        reports,
        old_view.as_ref().map(|v| (&*old, v)),
        why == Generation::Servers,
        schedules,
        running.log.clone(),
    )
    .map_err(|e| vec![format!("health thread: {e}")])?;
    if let Some(a) = &running.admin {
        a.core
            .reload(new.clone(), health.view.clone(), why == Generation::Servers);
        if why == Generation::Servers {
            a.core.resend_runtime_changes();
        }
        if let Ok(mut d) = a.core.dns.lock() {
            *d = health.dns.clone();
        }
        if let Ok(mut d) = a.core.dns_cmds.lock() {
            *d = health.dns_commands();
        }
        if let Ok(mut d) = a.core.health_cmds.lock() {
            *d = Some(health.commands());
        }
    }
    running.health = Some(health);
    // Every shard confirms before we say the reload is done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut acks = 0;
    while acks < shards {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match running.events.recv_timeout(left) {
            Ok(crate::control::FromShard::Reloaded { .. }) => acks += 1,
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(acks, shards, "reload: not every shard confirmed in time");
                break;
            }
        }
    }
    running.cfg = new;
    running.shared = shared;
    Ok(())
}
