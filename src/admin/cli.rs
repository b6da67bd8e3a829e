//! HAProxy's runtime API on the stats socket: one connection, one line of
//! `;`-separated commands, answers in HAProxy's words, then the connection closes
//! (`echo "show stat" | socat stdio unix-connect:PATH` works as with HAProxy).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use super::{csv, Core};
use crate::control::AdminState;
use crate::control::ToShard;

const HELP: &[(&str, &str)] = &[
    ("help [<command>]", "list matching or all commands"),
    ("show info", "report information about the running process"),
    (
        "show stat",
        "report counters for each proxy and server (CSV)",
    ),
    (
        "show servers state [<backend>]",
        "dump volatile server information",
    ),
    (
        "set server <bk>/<srv> state ready|drain|maint",
        "change a server's administrative state",
    ),
    (
        "set server <bk>/<srv> weight <w>[%]",
        "change a server's weight",
    ),
    (
        "set weight <bk>/<srv> (<w>|<w>%)",
        "change a server's weight (deprecated)",
    ),
    ("get weight <bk>/<srv>", "report a server's current weight"),
    (
        "disable server (DEPRECATED)",
        "disable a server for maintenance (use 'set server' instead)",
    ),
    (
        "enable server  (DEPRECATED)",
        "enable a disabled server (use 'set server' instead)",
    ),
    (
        "set maxconn server <bk>/<srv> <n>",
        "change a server's maxconn setting",
    ),
];

pub fn serve(core: Arc<Core>, listener: UnixListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let core = core.clone();
        let _ = std::thread::Builder::new()
            .name("ringlb-cli-conn".into())
            .spawn(move || handle(&core, conn));
    }
}

fn handle(core: &Core, mut conn: UnixStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let mut line = Vec::new();
    let mut byte = [0u8; 1024];
    while !line.contains(&b'\n') && line.len() < 64 * 1024 {
        match conn.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(n) => line.extend_from_slice(&byte[..n]),
        }
    }
    let text = String::from_utf8_lossy(&line);
    let text = text.lines().next().unwrap_or("");
    let mut out = String::new();
    for cmd in text.split(';') {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        out.push_str(&run(core, &words));
        out.push('\n');
    }
    let _ = conn.write_all(out.as_bytes());
}

/// Runs one command; the answer (possibly empty) without the closing blank line.
pub fn run(core: &Core, w: &[&str]) -> String {
    match w {
        ["help", ..] => help(""),
        ["show", "info", ..] => show_info(core),
        ["show", "stat", ..] => csv::show_stat(core),
        ["show", "servers", "state", rest @ ..] => show_servers_state(core, rest.first().copied()),
        ["set", "server", spec, "state", state, ..] => {
            with_server(core, spec, |b, s| set_state(core, b, s, state))
        }
        ["set", "server", _, "state"] => {
            "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n".into()
        }
        ["set", "server", spec, "weight", weight, ..] => {
            with_server(core, spec, |b, s| set_weight(core, b, s, weight))
        }
        ["set", "server", _, "weight"] => "Require <weight>.\n".into(),
        ["set", "server", _, other, ..] => format!(
            "'set server <srv>' only supports 'state' and 'weight' in ringlb (got '{other}').\n"
        ),
        ["set", "server", ..] => "Require 'backend/server'.\n".into(),
        ["set", "weight", spec, weight, ..] => {
            with_server(core, spec, |b, s| set_weight(core, b, s, weight))
        }
        ["set", "weight", _] => "Require <weight> or <weight%>.\n".into(),
        ["set", "weight", ..] => "Require 'backend/server' and 'weight' or 'weight%'.\n".into(),
        ["get", "weight", spec, ..] => with_server(core, spec, |b, s| {
            let op = core.operator.lock().map(|o| o[b][s]).ok();
            let initial = core.cfg().backends[b].servers[s].weight;
            format!("{} (initial {initial})\n", op.map_or(initial, |o| o.weight))
        }),
        ["disable", "server", spec, ..] => {
            with_server(core, spec, |b, s| set_state(core, b, s, "maint"))
        }
        ["enable", "server", spec, ..] => {
            with_server(core, spec, |b, s| set_state(core, b, s, "ready"))
        }
        ["disable" | "enable", "server"] => "Require 'backend/server'.\n".into(),
        ["set", "maxconn", "server", spec, value, ..] => {
            with_server(core, spec, |b, s| set_maxconn(core, b, s, value))
        }
        ["set", "maxconn", "server", ..] => "Require 'backend/server' and 'maxconn'.\n".into(),
        _ => format!(
            "Unknown command, but maybe one of the following ones is a better match:\n{}",
            help("")
        ),
    }
}

fn help(_topic: &str) -> String {
    let mut out = String::from("The following commands are valid at this level:\n");
    for (cmd, desc) in HELP {
        let _ = writeln!(out, "  {cmd:<40}: {desc}");
    }
    out
}

fn with_server(core: &Core, spec: &str, f: impl FnOnce(usize, usize) -> String) -> String {
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

fn set_state(core: &Core, b: usize, s: usize, state: &str) -> String {
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

fn set_weight(core: &Core, b: usize, s: usize, value: &str) -> String {
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
    if matches!(
        core.cfg().backends[b].balance,
        crate::config::BalanceAlgo::StaticRr
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

fn set_maxconn(core: &Core, b: usize, s: usize, value: &str) -> String {
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

fn show_info(core: &Core) -> String {
    let g = core.gather();
    let up = core.started.elapsed().as_secs();
    let (mut cur, mut cum, mut req, mut bout) = (0, 0, 0, 0);
    for f in &g.stats.frontends {
        cur += f.scur;
        cum += f.stot;
        req += f.req_tot;
        bout += f.bout;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let stopping = core.stopping.load(std::sync::atomic::Ordering::Relaxed);
    let listeners: usize = core.cfg().frontends.iter().map(|f| f.binds.len()).sum();
    let mut out = String::new();
    for (k, v) in [
        ("Name", "ringlb".to_string()),
        ("Version", env!("CARGO_PKG_VERSION").to_string()),
        ("Release_date", String::new()),
        ("Nbthread", core.cfg().runtime.shards.to_string()),
        ("Nbproc", "1".into()),
        ("Process_num", "1".into()),
        ("Pid", std::process::id().to_string()),
        (
            "Uptime",
            format!(
                "{}d {}h{:02}m{:02}s",
                up / 86400,
                up / 3600 % 24,
                up / 60 % 60,
                up % 60
            ),
        ),
        ("Uptime_sec", up.to_string()),
        ("Maxconn", "0".into()),
        ("CurrConns", cur.to_string()),
        ("CumConns", cum.to_string()),
        ("CumReq", req.to_string()),
        ("Run_queue", "0".into()),
        ("node", host.trim().to_string()),
        ("Stopping", u8::from(stopping).to_string()),
        ("Jobs", (cur + listeners as u64).to_string()),
        ("Listeners", listeners.to_string()),
        ("TotalBytesOut", bout.to_string()),
    ] {
        let _ = writeln!(out, "{k}: {v}");
    }
    out
}

/// HAProxy's `show servers state` (format version 1).
fn show_servers_state(core: &Core, only: Option<&str>) -> String {
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
            let op_state = if up && admin_state != Some(AdminState::Maint) {
                2
            } else {
                0
            };
            let admin = match admin_state {
                Some(AdminState::Maint) if s.disabled => 5,
                Some(AdminState::Maint) => 1,
                Some(AdminState::Drain) => 8,
                _ => 0,
            };
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
            let _ = writeln!(
                out,
                "{be_id} {} {} {} {} {op_state} {admin} {} {} {since} {check_status} {check_result} {check_health} {check_state} 0 0 0 - {} - 0 0 - - 0",
                b.name,
                si + 1,
                s.name,
                s.addr.ip(),
                o.map_or(s.weight, |o| o.weight),
                s.weight,
                s.addr.port(),
            );
        }
    }
    out
}
