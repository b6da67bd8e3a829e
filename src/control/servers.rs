//! `add server` and `del server`: servers added to and removed from a backend at run
//! time, with HAProxy 2.6's rules and words. The main thread makes the new config from
//! the one in force (`reload::servers`); the answer goes once every shard runs on it.
//! Servers keep their state, counters and idle connections across the change (as a
//! reload keeps them); a reload of the file drops dynamic servers, as HAProxy's does.
//! With `[cluster]`, each change goes to the other nodes (`cluster::servers`), which
//! make it with the same line.

use std::sync::Arc;
use std::time::Duration;

use super::{AdminState, Core, ServersChange, Up};
use crate::config::{Backend, BalanceAlgo, Config};

/// Longest the runtime API waits for the main thread to put a change in force.
const CHANGE_WAIT: Duration = Duration::from_secs(10);

/// HAProxy's `BE_LB_PROP_DYN`: every algorithm but static round robin and map-based
/// hashing can take a server at run time.
fn dynamic_lb(algo: &BalanceAlgo) -> bool {
    !matches!(
        algo,
        BalanceAlgo::StaticRr
            | BalanceAlgo::Hash {
                consistent: false,
                ..
            }
    )
}

/// `B/S` split as HAProxy splits it; `None` without a server name.
fn split(spec: Option<&&str>) -> Option<(String, String)> {
    let (b, s) = spec?.split_once('/')?;
    (!s.is_empty()).then(|| (b.to_string(), s.to_string()))
}

impl Core {
    /// `add server B/S ADDR [keywords]` from the runtime API (`shared`: from another
    /// node, so not sent on again). HAProxy's messages of its own end without a
    /// newline (so no blank line follows them); those of the server parser with one.
    pub fn add_server(&self, w: &[&str], shared: bool) -> String {
        let answer = add(self, w);
        if answer.starts_with("New server") && !shared {
            self.share_servers(w);
        }
        answer
    }

    /// `del server B/S` (`shared`: from another node).
    pub fn del_server(&self, w: &[&str], shared: bool) -> String {
        let answer = del(self, w);
        if answer.starts_with("Server deleted") && !shared {
            self.share_servers(w);
        }
        answer
    }

    /// Tells the cluster thread: `w` is an `add server` line's words after the
    /// command (`B/S ADDR ...`), or a `del server`'s (`B/S`).
    fn share_servers(&self, w: &[&str]) {
        if let (Some(tx), Some(spec)) = (self.cluster.get(), w.first()) {
            let _ = tx.send(Up::Servers {
                server: spec.to_string(),
                line: w[1..].join(" "),
            });
        }
    }
}

fn add(core: &Core, w: &[&str]) -> String {
    let Some((bname, sname)) = split(w.first()) else {
        return "Require 'backend/server'.".into();
    };
    let cfg = core.cfg();
    let Some(b) = cfg.backends.iter().find(|b| b.name == bname) else {
        return "No such backend.".into();
    };
    if !dynamic_lb(&b.balance) {
        return "Backend must use a dynamic load balancing to support dynamic servers.".into();
    }
    let Some(addr) = w.get(1) else {
        return "'server' expects <name> and <addr>[:<port>] as arguments.\n".into();
    };
    let (server, maxqueue) = match crate::config::dynamic_server(b, &sname, addr, &w[2..]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let sn = sname.clone();
    let made = change(core, &bname, move |b| {
        if b.servers.iter().any(|s| s.name == sn) {
            return Err("Already exists a server with the same name in backend.\n".into());
        }
        if b.servers.iter().any(|s| s.id == server.id) {
            return Err(format!("'id' : custom id {} already used\n", server.id));
        }
        if server.check && b.health.is_none() {
            b.health = Some(crate::config::dynamic_checks(b));
        }
        if let Some(c) = &mut b.cookie {
            Arc::make_mut(c).values.push(None);
        }
        if let Some(q) = maxqueue {
            b.maxqueue = Some(b.maxqueue.map_or(q, |m| m.max(q)));
        }
        b.servers.push(server);
        Ok(())
    });
    match made {
        Ok(()) => {
            tracing::warn!("Server {bname}/{sname} added by the operator (in maintenance).");
            "New server registered.\n".into()
        }
        Err(e) => e,
    }
}

/// `del server B/S`: only a server in maintenance that nothing uses.
fn del(core: &Core, w: &[&str]) -> String {
    let Some((bname, sname)) = split(w.first()) else {
        return "Require 'backend/server'.".into();
    };
    let cfg = core.cfg();
    let Some(bi) = cfg.backends.iter().position(|b| b.name == bname) else {
        return "No such backend.".into();
    };
    let b = &cfg.backends[bi];
    let Some(si) = b.servers.iter().position(|s| s.name == sname) else {
        return "No such server.".into();
    };
    // What points at it by position: a `use-server` rule; a DNS slot (HAProxy's
    // `SRV_F_NON_PURGEABLE`).
    if b.use_server.iter().any(|u| u.server as usize == si) || b.servers[si].dns.is_some() {
        return "This server cannot be removed at runtime due to other configuration elements pointing to it.".into();
    }
    let maint = core
        .operator
        .lock()
        .ok()
        .and_then(|o| o.get(bi)?.get(si).map(|o| o.admin))
        == Some(AdminState::Maint);
    if !maint {
        return "Only servers in maintenance mode can be deleted.".into();
    }
    // In use: requests and connections on it in every generation a shard still runs
    // (one that began before an earlier `add server` is in `scur`, one from before a
    // reload in `older`), idle pooled connections
    // (pools are shared by generations; maintenance closed them, as HAProxy's
    // `srv_cleanup_connections`). A shard that did not answer may still use it.
    let g = core.gather();
    let busy = g
        .stats
        .servers
        .get(bi)
        .and_then(|v| v.get(si))
        .map_or(0, |t| t.scur)
        + g.held.older_of(bi, si);
    let idle = g.held.idle_of(bi, si);
    if busy > 0 || idle > 0 || g.shards_answered < core.shard_count() {
        return "Server still has connections attached to it, cannot remove it.".into();
    }
    let sn = sname.clone();
    let made = change(core, &bname, move |b| {
        let si = b
            .servers
            .iter()
            .position(|s| s.name == sn)
            .ok_or_else(|| "No such server.".to_string())?;
        b.servers.remove(si);
        // Rules and cookies name servers by position: those after it move up one.
        for u in &mut b.use_server {
            if u.server as usize > si {
                u.server -= 1;
            }
        }
        if let Some(c) = &mut b.cookie {
            let values = &mut Arc::make_mut(c).values;
            if si < values.len() {
                values.remove(si);
            }
        }
        Ok(())
    });
    match made {
        Ok(()) => {
            tracing::warn!("Server {bname}/{sname} deleted by the operator.");
            "Server deleted.".into()
        }
        Err(e) => e,
    }
}

/// Has the main thread apply `edit` to backend `name` of a copy of the config in
/// force (the one in force then: a reload may have come first) and put it in force;
/// returns once it is, or the operator's error line.
fn change(
    core: &Core,
    name: &str,
    edit: impl FnOnce(&mut Backend) -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    let Some(tx) = core.servers.get() else {
        return Err("This process cannot change its servers at run time.\n".into());
    };
    let name = name.to_string();
    let make = move |cfg: &Config| {
        let mut new = cfg.clone();
        // The server-state file had its say when the config in force was loaded: a
        // change of servers is no load, every server goes on from where it is.
        for s in new.backends.iter_mut().flat_map(|b| b.servers.iter_mut()) {
            s.saved = None;
        }
        let b = new
            .backends
            .iter_mut()
            .find(|b| b.name == name)
            .ok_or_else(|| "No such backend.".to_string())?;
        edit(b)?;
        Ok(new)
    };
    let (done, answer) = crossbeam_channel::bounded(1);
    tx.send(ServersChange {
        change: Box::new(make),
        done,
    })
    .map_err(|_| "The process is stopping.\n".to_string())?;
    answer
        .recv_timeout(CHANGE_WAIT)
        .unwrap_or_else(|_| Err("The change was not confirmed in time.\n".into()))
}
