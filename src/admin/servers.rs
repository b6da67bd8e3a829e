//! The runtime API's commands on servers: their operator state, weight and maxconn
//! (`set server`, `set weight`, `enable|disable server`, `set maxconn server`, `get
//! weight`), applied on every shard before the answer, and `show servers state|conn`.

use std::fmt::Write as _;

use super::{csv, Core};
use crate::control::AdminState;
use crate::control::ToShard;

pub(super) fn with_server(
    core: &Core,
    spec: &str,
    f: impl FnOnce(usize, usize) -> String,
) -> String {
    let Some((b, _)) = spec.split_once('/') else {
        return "Require 'backend/server'.\n".into();
    };
    if !core.cfg().backends.iter().any(|x| x.name == b) {
        return "No such backend.\n".into();
    }
    match core.find_server(spec) {
        Some((b, s)) => f(b, s),
        None => "No such server.\n".into(),
    }
}

pub(super) fn set_state(core: &Core, b: usize, s: usize, state: &str) -> String {
    let Some(state) = AdminState::from_word(state) else {
        return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n".into();
    };
    if let Ok(mut op) = core.operator.lock() {
        op[b][s].admin = state;
    }
    let name = format!(
        "{}/{}",
        core.cfg().backends[b].name,
        core.cfg().backends[b].servers[s].name
    );
    let word = match state {
        AdminState::Ready => "READY",
        AdminState::Drain => "DRAIN",
        AdminState::Maint => "MAINT",
    };
    tracing::warn!("Server {name} is going {word} by the operator.");
    let applied = core.apply_everywhere(|| ToShard::SetAdmin {
        backend: b,
        server: s,
        state,
    });
    core.share(b, s);
    applied.err().unwrap_or_default()
}

pub(super) fn set_weight(core: &Core, b: usize, s: usize, value: &str) -> String {
    let initial = core.cfg().backends[b].servers[s].weight;
    let weight = if let Some(pct) = value.strip_suffix('%') {
        match pct.parse::<u64>() {
            // Rounded down, as HAProxy does.
            Ok(p) => (u64::from(initial) * p / 100).min(256) as u32,
            Err(_) => return "Relative weight must be positive.\n".into(),
        }
    } else {
        match value.parse::<i64>() {
            Ok(w) if (0..=256).contains(&w) => w as u32,
            Ok(_) => return "Absolute weight can only be between 0 and 256 inclusive.\n".into(),
            Err(_) => return "Require <weight> or <weight%>.\n".into(),
        }
    };
    // Static algorithms, as HAProxy's: static-rr and map-based hashing.
    if matches!(
        core.cfg().backends[b].balance,
        crate::config::BalanceAlgo::StaticRr
            | crate::config::BalanceAlgo::Hash {
                consistent: false,
                ..
            }
    ) && weight != 0
        && weight != initial
    {
        return "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n".into();
    }
    if let Ok(mut op) = core.operator.lock() {
        op[b][s].weight = weight;
    }
    let applied = core.apply_everywhere(|| ToShard::SetWeight {
        backend: b,
        server: s,
        weight,
    });
    core.share(b, s);
    applied.err().unwrap_or_default()
}

pub(super) fn set_maxconn(core: &Core, b: usize, s: usize, value: &str) -> String {
    let Ok(n) = value.parse::<u32>() else {
        // HAProxy's words, without a newline of their own.
        return "maxconn string empty or preceded by garbage".into();
    };
    let maxconn = (n > 0).then_some(n);
    if let Ok(mut op) = core.operator.lock() {
        op[b][s].maxconn = maxconn;
    }
    core.apply_everywhere(|| ToShard::SetMaxconn {
        backend: b,
        server: s,
        maxconn,
    })
    .err()
    .unwrap_or_default()
}

/// `enable|disable health B/S`: the health thread starts or stops the server's checks
/// before the (empty) answer, as HAProxy answers.
pub(super) fn set_checks(core: &Core, b: usize, s: usize, on: bool) -> String {
    let Some(tx) = core.health_cmds.lock().ok().and_then(|t| t.clone()) else {
        return String::new();
    };
    let (done, answer) = crossbeam_channel::bounded(1);
    let cmd = crate::control::HealthCmd::Checks {
        backend: b,
        server: s,
        on,
        done,
    };
    in_force(core, tx.send(cmd).is_ok().then_some(answer))
}

/// `set server B/S health up|stopping|down`, in force on the health thread and every
/// shard when answered (empty, as HAProxy).
pub(super) fn set_health(core: &Core, b: usize, s: usize, word: &str) -> String {
    use crate::control::Forced;
    let health = match word {
        "up" => Forced::Up,
        "stopping" => Forced::Stopping,
        "down" => Forced::Down,
        _ => return "'set server <srv> health' expects 'up', 'stopping', or 'down'.\n".into(),
    };
    let Some(tx) = core.health_cmds.lock().ok().and_then(|t| t.clone()) else {
        return String::new();
    };
    let (done, answer) = crossbeam_channel::bounded(1);
    let cmd = crate::control::HealthCmd::Force {
        backend: b,
        server: s,
        health,
        done,
    };
    in_force(core, tx.send(cmd).is_ok().then_some(answer))
}

/// Waits for the health thread to apply a command, then for every shard to apply what
/// it sent them meanwhile (a flip): the answer goes once the change is in force.
fn in_force(core: &Core, answer: Option<crossbeam_channel::Receiver<()>>) -> String {
    if answer.is_some_and(|a| a.recv_timeout(crate::control::APPLY_WAIT).is_ok()) {
        return core.confirm().err().unwrap_or_default();
    }
    String::new()
}

/// HAProxy's `show servers state` (format version 1).
pub(super) fn show_servers_state(core: &Core, only: Option<&str>) -> String {
    if let Some(b) = only {
        if !core.cfg().backends.iter().any(|x| x.name == b) {
            return "Can't find backend.\n".into();
        }
    }
    let health = core.health().lock().map(|h| h.clone()).unwrap_or_default();
    let op = core.operator.lock().map(|o| o.clone()).unwrap_or_default();
    let mut out = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n");
    for (bi, b) in core.cfg().backends.iter().enumerate() {
        if only.is_some_and(|o| o != b.name) {
            continue;
        }
        let be_id = csv::proxy_id(&core.cfg(), false, bi);
        for (si, s) in b.servers.iter().enumerate() {
            let h = health.get(bi).and_then(|v| v.get(si));
            let o = op.get(bi).and_then(|v| v.get(si)).copied();
            let up = h.is_none_or(|h| h.up);
            // SRV_ST_STOPPED = 0, SRV_ST_RUNNING = 2; admin: 0 ready, 1 maint (forced), 8 drain.
            // SRV_ST_STOPPED 0 / RUNNING 2 (maintenance stops it too); admin flags:
            // FMAINT 1 (operator), CMAINT 4 (config `disabled`), FDRAIN 8.
            let admin_state = o.map(|o| o.admin);
            // SRV_ST_STOPPING = 3: NOLB (`disable-on-404`).
            let op_state = match (up, admin_state != Some(AdminState::Maint)) {
                (true, true) if h.is_some_and(|h| h.nolb) => 3,
                (true, true) => 2,
                _ => 0,
            };
            // A `disabled` server keeps CMAINT once enabled, as HAProxy's (the next
            // process tells a config change from an operator's by it).
            let admin = match admin_state {
                Some(AdminState::Maint) => 1,
                Some(AdminState::Drain) => 8,
                _ => 0,
            } | if s.disabled && !s.dynamic { 4 } else { 0 }
                // HMAINT: `set server fqdn` named it (the next process gives the name
                // back by it).
                | if h.is_some_and(|h| h.fqdn.is_some()) { 64 } else { 0 };
            let since = h.map_or(0, |h| h.last_change.elapsed().as_secs());
            let (check_status, check_result, check_health, check_state) = match h {
                Some(h) if h.checked => (
                    csv::check_status_code(h.status),
                    if up { 3 } else { 2 },
                    h.health,
                    6,
                ),
                _ => (0, 0, 0, 0),
            };
            // Where it is now (DNS or `set server addr` may have moved it); `-`
            // without an address, as HAProxy.
            let at = h.map_or(s.addr, |h| h.addr);
            let addr = if h.map_or(s.no_addr, |h| h.no_addr) {
                "-".to_string()
            } else {
                at.ip().to_string()
            };
            // The name DNS follows: `set server fqdn`'s, else the config's.
            let fqdn = h
                .and_then(|h| h.fqdn.as_deref())
                .or(s.dns.as_ref().map(|d| d.fqdn.as_str()))
                // An SRV name is not the server's (HAProxy shows the target's).
                .filter(|n| !n.starts_with('_'))
                .unwrap_or("-");
            let _ = writeln!(
                out,
                "{be_id} {} {} {} {addr} {op_state} {admin} {} {} {since} {check_status} {check_result} {check_health} {check_state} 0 0 0 {fqdn} {} - 0 0 - - 0",
                b.name,
                s.id,
                s.name,
                o.map_or(s.weight, |o| o.weight),
                s.weight,
                at.port(),
            );
        }
    }
    out
}

/// HAProxy's `show servers conn [<backend>]`: each server's connections, busy and
/// idle, with the idle ones per shard (HAProxy's per thread).
pub(super) fn show_servers_conn(core: &Core, only: Option<&str>) -> String {
    let cfg = core.cfg();
    if let Some(b) = only {
        if !cfg.backends.iter().any(|x| x.name == b) {
            return "Can't find backend.\n".into();
        }
    }
    let g = core.gather();
    let shards = cfg.runtime.shards;
    let mut out = String::from("# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur");
    let _ = writeln!(out, " idle_per_thr[{shards}]");
    for (bi, b) in cfg.backends.iter().enumerate() {
        if only.is_some_and(|o| o != b.name) {
            continue;
        }
        let iid = csv::proxy_id(&cfg, false, bi);
        for (si, s) in b.servers.iter().enumerate() {
            let t = &g.stats.servers[bi][si];
            let idle = g.held.idle_of(bi, si);
            let per_shard: Vec<String> = (0..shards)
                .map(|n| {
                    g.shard_idle
                        .iter()
                        .find(|(sh, _)| *sh == n)
                        .and_then(|(_, v)| v.get(bi)?.get(si).copied())
                        .unwrap_or(0)
                        .to_string()
                })
                .collect();
            let purge = s.pool_purge_delay.map_or(5000, |d| d.as_millis() as u64);
            let limit = cfg.pool.max_idle_per_server as u64 * shards as u64;
            let _ = writeln!(
                out,
                "{}/{} {iid}/{} {} {} - {purge} {} {} {} 0 {idle} {limit} {idle} {}",
                b.name,
                s.name,
                s.id,
                s.addr.ip(),
                s.addr.port(),
                t.scur,
                t.smax,
                t.smax.max(t.scur),
                per_shard.join(" ")
            );
        }
    }
    out
}

/// `get weight <bk>/<srv>`: the weight in force and the configured one.
pub(super) fn get_weight(core: &Core, spec: &str) -> String {
    with_server(core, spec, |b, s| {
        let op = core.operator.lock().map(|o| o[b][s]).ok();
        let initial = core.cfg().backends[b].servers[s].weight;
        format!("{} (initial {initial})\n", op.map_or(initial, |o| o.weight))
    })
}
