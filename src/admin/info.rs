//! `show info`: HAProxy 2.6's process fields in its order, as `Name: value` lines, or
//! `typed` / `json`; the Prometheus exporter's `haproxy_process_*` families read the
//! same values. Figures come from the shards' merged snapshots and from the process
//! itself (limits, CPU time for `Idle_pct`).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::fields::{InfoField, INFO, V};
use super::rows::Stats;
use super::Core;

/// ringlb's version, where HAProxy writes its own.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The values of every `show info` field (`None`: left out, as HAProxy leaves out
/// empty ones).
pub fn values(core: &Core, st: &Stats) -> Vec<(&'static InfoField, Option<V>)> {
    let cfg = &st.cfg;
    let g = &st.g;
    let up = core.started.elapsed();
    let (mut cur, mut cum, mut req, mut bout) = (0, 0, 0, 0);
    let (mut tls_cur, mut tls_cum, mut tls_resumed) = (0, 0, 0);
    for f in &g.stats.frontends {
        tls_cur += f.tls_cur;
        // Every connection accepted on a TLS listener, its handshake failed or not.
        tls_cum += f.tls_done + f.tls_failed;
        tls_resumed += f.tls_resumed;
        cur += f.scur;
        cum += f.stot;
        req += f.req_tot;
        bout += f.bout;
    }
    let host = crate::rules::hostname();
    let stopping = core.stopping.load(std::sync::atomic::Ordering::Relaxed);
    let listeners: usize = cfg.frontends.iter().map(|f| f.binds.len()).sum();
    let (used, idle) = g.held.buffers;
    let p = &g.stats.process;
    let started = SystemTime::now()
        .checked_sub(up)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = up.as_secs();
    let uptime = format!(
        "{}d {}h{:02}m{:02}s",
        secs / 86400,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    let shards = cfg.runtime.shards as u64;
    let n = |v: u64| Some(V::from(v));
    INFO.iter()
        .map(|f| {
            let v = match f.name {
                "Name" => Some(V::from("ringlb")),
                "Version" => Some(V::from(VERSION)),
                "Release_date" => Some(V::from(release_date())),
                "Nbthread" => n(shards),
                "Nbproc" | "Process_num" => n(1),
                "Pid" => n(u64::from(std::process::id())),
                "Uptime" => Some(V::from(uptime.clone())),
                "Uptime_sec" => n(secs),
                "PoolAlloc_MB" => n((used + idle) >> 20),
                "PoolUsed_MB" => n(used >> 20),
                "PoolAlloc_bytes" => n(used + idle),
                "PoolUsed_bytes" => n(used),
                "Ulimit-n" | "Maxsock" => n(st.limits.nofile),
                "Maxconn" | "Hard_maxconn" => n(st.limits.maxconn),
                "CurrConns" => n(cur),
                "CumConns" => n(cum),
                "CumReq" => n(req),
                "CurrSslConns" => n(tls_cur),
                "CumSslConns" => n(tls_cum),
                // Over the process's life (HAProxy: over its rate window).
                "SslFrontendSessionReuse_pct" => {
                    n((tls_resumed * 100).checked_div(tls_cum).unwrap_or(0))
                }
                "Maxpipes" => n(g.held.pipes.2),
                "PipesUsed" => n(g.held.pipes.0),
                "PipesFree" => n(g.held.pipes.1),
                "ConnRate" | "SessRate" => n(p.conn_rate.cur),
                "MaxConnRate" | "MaxSessRate" => n(p.conn_rate.max),
                "Tasks" => n(cur + g.held.inflight + listeners as u64),
                "Idle_pct" => n(idle_pct(shards)),
                "node" => Some(V::from(host.trim())),
                "Stopping" => n(u64::from(stopping)),
                "Jobs" => n(cur + listeners as u64),
                "Listeners" => n(listeners as u64),
                "TotalBytesOut" => n(bout),
                "TotalSplicdedBytesOut" => n(g.held.spliced),
                "BytesOutRate" => n(p.out_rate.cur),
                "Build info" => Some(V::from(VERSION)),
                "Start_time_sec" => n(started),
                "Tainted" => Some(V::from("0")),
                // Limits ringlb does not set, features it does not have yet (TLS
                // counters, compression) and HAProxy-only machinery (peers,
                // resolvers, the run queue, busy polling, debug commands, log
                // reception): HAProxy's value for the same state.
                _ => n(0),
            };
            (f, v)
        })
        .collect()
}

/// The build date, where HAProxy writes its release date (`YYYY/MM/DD`).
fn release_date() -> String {
    option_env!("RINGLB_RELEASE_DATE")
        .unwrap_or("2026/01/01")
        .to_string()
}

/// How idle the shards were since the previous reading (at most the last minute), in
/// percent: 100 − the process's CPU time over the shards' wall time. HAProxy measures
/// its threads' idle loop time; a shard only burns CPU when it works.
fn idle_pct(shards: u64) -> u64 {
    static LAST: Mutex<Option<(Instant, f64)>> = Mutex::new(None);
    let Some(cpu) = process_cpu_seconds() else {
        return 100;
    };
    let now = Instant::now();
    let Ok(mut last) = LAST.lock() else {
        return 100;
    };
    let pct = match *last {
        Some((at, before)) if now.duration_since(at).as_secs_f64() > 0.05 => {
            let wall = now.duration_since(at).as_secs_f64() * shards.max(1) as f64;
            let busy = ((cpu - before) / wall).clamp(0.0, 1.0);
            Some((100.0 - busy * 100.0).round() as u64)
        }
        _ => None,
    };
    if pct.is_some() || last.is_none() {
        *last = Some((now, cpu));
    }
    pct.unwrap_or(100)
}

/// User + system CPU time of the process, from /proc/self/stat.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some((utime + stime) / hz.max(1) as f64)
}

/// `show info [typed|json|desc|float]*`.
pub fn show_info(core: &Core, words: &[&str]) -> String {
    let st = super::rows::gather(core);
    let vals = values(core, &st);
    let typed = words.contains(&"typed");
    let json = words.contains(&"json");
    let mut out = String::new();
    if json {
        out.push('[');
        let mut first = true;
        for (f, v) in &vals {
            let Some(v) = v else { continue };
            if !first {
                out.push(',');
            }
            first = false;
            let (origin, nature, scope) = f.meta.words();
            let _ = write!(
                out,
                "{{\"field\":{{\"pos\":{},\"name\":\"{}\"}},\"processNum\":1,\"tags\":{{\"origin\":\"{origin}\",\"nature\":\"{nature}\",\"scope\":\"{scope}\"}},\"value\":{}}}",
                f.pos,
                f.name,
                super::csv::json_value(v, f.meta.ty())
            );
        }
        out.push_str("]\n");
        return out;
    }
    for (f, v) in &vals {
        let Some(v) = v else { continue };
        if typed {
            let _ = writeln!(
                out,
                "{}.{}.1:{}:{}",
                f.pos,
                f.name,
                f.meta.tags(),
                v.typed(f.meta)
            );
        } else {
            let _ = writeln!(out, "{}: {}", f.name, v.text());
        }
    }
    out
}
