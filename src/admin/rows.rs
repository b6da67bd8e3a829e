//! The figures of every proxy and server as HAProxy's `show stat` fields, built once
//! per command from the shards' merged snapshots, the health view and the operator's
//! settings: the CSV, `typed` and `json` outputs, the Prometheus exporter and the
//! stats page all read these rows.

use std::sync::Arc;
use std::time::Duration;

use super::csv::{algo_name, backend_mode, proxy_id, server_status};
use super::fields::{stat_pos, Obj, STAT, V};
use super::Core;
use crate::config::{Config, Mode};
use crate::control::{AdminState, CheckView, Gathered, Operator};
use crate::stats::Totals;

/// One row of `show stat`: a frontend, a server or a backend.
pub struct Row {
    pub obj: Obj,
    pub iid: usize,
    pub sid: usize,
    /// Index of the frontend, or of the backend (and server) in the config.
    pub frontend: Option<usize>,
    pub backend: Option<usize>,
    pub server: Option<usize>,
    /// By field position; `None`: left empty.
    pub vals: Vec<Option<V>>,
}

impl Row {
    fn new(obj: Obj, iid: usize, sid: usize) -> Row {
        Row {
            obj,
            iid,
            sid,
            frontend: None,
            backend: None,
            server: None,
            vals: vec![None; STAT.len()],
        }
    }

    /// Sets field `name` (a name the table lacks is a bug: debug builds say so).
    fn set(&mut self, name: &str, v: impl Into<V>) {
        match stat_pos(name) {
            Some(i) => self.vals[i] = Some(v.into()),
            None => debug_assert!(false, "no stat field {name}"),
        }
    }

    /// Replaces a text field (the status with `up` / `no-maint`).
    pub fn set_text(&mut self, name: &str, v: String) {
        self.set(name, v);
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        stat_pos(name).and_then(|i| self.vals[i].as_ref())
    }

    /// A numeric field, 0 when empty.
    pub fn num(&self, name: &str) -> i64 {
        self.get(name).and_then(V::num).unwrap_or(0)
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).map(V::text).unwrap_or_default()
    }
}

/// Everything a stats output needs, read once.
pub struct Stats {
    pub cfg: Arc<Config>,
    pub g: Gathered,
    pub health: Vec<Vec<CheckView>>,
    pub op: Vec<Vec<Operator>>,
    pub rows: Vec<Row>,
    pub limits: Limits,
}

/// The process's limits, as `show info` names them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The open-file limit (`Ulimit-n`, `Maxsock`).
    pub nofile: u64,
    /// The global maxconn in force (configured, or derived from the open-file limit).
    pub maxconn: u64,
}

/// The open-file limit and the global maxconn in force (the one `global_maxconn`
/// derived at start, computed again from the same inputs).
pub fn limits(cfg: &Config) -> Limits {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a local struct.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    let nofile = if ok && lim.rlim_cur != libc::RLIM_INFINITY {
        lim.rlim_cur
    } else {
        0
    };
    let maxconn = match cfg.runtime.maxconn {
        Some(m) => u64::from(m),
        None if nofile > 0 => u64::from(crate::config::fd_budget::derive_maxconn(cfg, nofile)),
        None => 0,
    };
    Limits { nofile, maxconn }
}

/// Reads every shard's figures and builds the rows, in config order.
pub fn gather(core: &Core) -> Stats {
    let g = core.gather();
    let cfg = core.cfg();
    let health = core.health().lock().map(|h| h.clone()).unwrap_or_default();
    let op = core.operator.lock().map(|o| o.clone()).unwrap_or_default();
    let stopping = core.stopping.load(std::sync::atomic::Ordering::Relaxed);
    let limits = limits(&cfg);
    let mut st = Stats {
        cfg: cfg.clone(),
        g,
        health,
        op,
        rows: Vec::new(),
        limits,
    };
    for p in &cfg.proxy_order {
        if let Some(fi) = p.frontend {
            let r = frontend_row(&st, fi, stopping);
            st.rows.push(r);
        }
        if let Some(bi) = p.backend {
            for si in 0..cfg.backends[bi].servers.len() {
                let r = server_row(&st, bi, si);
                st.rows.push(r);
            }
            let r = backend_row(&st, bi);
            st.rows.push(r);
        }
    }
    st
}

/// The fields every object has from its counters.
fn common(r: &mut Row, t: &Totals, http: bool) {
    for (k, v) in [
        ("scur", t.scur),
        ("smax", t.smax),
        ("stot", t.stot),
        ("bin", t.bin),
        ("bout", t.bout),
        ("dresp", t.dresp),
        ("wrew", 0),
        ("rate", t.rate.cur),
        ("rate_max", t.rate.max),
    ] {
        r.set(k, v);
    }
    r.set("pid", 1u64);
    r.set("type", u64::from(r.obj.number()));
    r.set("iid", r.iid as u64);
    r.set("sid", r.sid as u64);
    if http {
        for (i, c) in [
            "hrsp_1xx",
            "hrsp_2xx",
            "hrsp_3xx",
            "hrsp_4xx",
            "hrsp_5xx",
            "hrsp_other",
        ]
        .iter()
        .enumerate()
        {
            r.set(c, t.hrsp[i]);
        }
    }
    // HAProxy's SSL module: new sessions (full handshakes), resumed ones, failures;
    // frontends only (server-side TLS is not counted here: 0).
    let (full, resumed, failed) = if matches!(r.obj, super::fields::Obj::Frontend) {
        (
            t.tls_done.saturating_sub(t.tls_resumed),
            t.tls_resumed,
            t.tls_failed,
        )
    } else {
        (0, 0, 0)
    };
    r.set("ssl_sess", full);
    r.set("ssl_reused_sess", resumed);
    r.set("ssl_failed_handshake", failed);
}

/// The HTTP/2 module's fields and the HTTP/1 module's.
fn modules(r: &mut Row, h2: [u64; 13], h1: [u64; 8]) {
    for (f, v) in STAT[super::fields::FIRST_MODULE + 3..super::fields::FIRST_MODULE + 16]
        .iter()
        .zip(h2)
    {
        r.set(f.name, v);
    }
    for (f, v) in STAT[super::fields::FIRST_MODULE + 16..].iter().zip(h1) {
        r.set(f.name, v);
    }
}

/// The time averages and maxima (ms) and the last session.
fn timing(r: &mut Row, t: &Totals, now_ms: u64) {
    for (i, (avg, max)) in [
        ("qtime", "qtime_max"),
        ("ctime", "ctime_max"),
        ("rtime", "rtime_max"),
        ("ttime", "ttime_max"),
    ]
    .into_iter()
    .enumerate()
    {
        r.set(avg, t.timing.avg(i));
        r.set(max, t.timing.max[i]);
    }
    let last = if t.last_sess == 0 {
        -1
    } else {
        (now_ms.saturating_sub(t.last_sess - 1) / 1000) as i64
    };
    r.set("lastsess", last);
    r.set("cli_abrt", t.cli_abrt);
    r.set("srv_abrt", t.srv_abrt);
    r.set("connect", t.connect);
    r.set("reuse", t.reuse);
    r.set("econ", t.econ);
    r.set("eresp", t.eresp);
    r.set("wretr", t.wretr);
    r.set("wredis", t.wredis);
    r.set("lbtot", t.lbtot);
}

/// A frontend's session limit: its maxconn, else the process's.
fn frontend_limit(st: &Stats, fi: usize) -> u64 {
    st.cfg.frontends[fi]
        .maxconn
        .map_or(st.limits.maxconn, u64::from)
}

fn frontend_row(st: &Stats, fi: usize, stopping: bool) -> Row {
    let f = &st.cfg.frontends[fi];
    let t = &st.g.stats.frontends[fi];
    let http = f.mode == Mode::Http;
    let mut r = Row::new(Obj::Frontend, proxy_id(&st.cfg, true, fi), 0);
    r.frontend = Some(fi);
    r.set("pxname", f.name.as_str());
    r.set("svname", "FRONTEND");
    common(&mut r, t, http);
    r.set("slim", frontend_limit(st, fi));
    r.set("dreq", t.denied);
    r.set("ereq", t.ereq);
    r.set("status", if stopping { "STOP" } else { "OPEN" });
    r.set("rate_lim", 0u64);
    r.set("req_rate", t.req_rate.cur);
    r.set("req_rate_max", t.req_rate.max);
    r.set("req_tot", t.req_tot);
    for c in ["comp_in", "comp_out", "comp_byp", "comp_rsp"] {
        r.set(c, 0u64);
    }
    r.set("dcon", t.dcon);
    r.set("dses", t.dses);
    r.set("mode", if http { "http" } else { "tcp" });
    r.set("conn_rate", t.rate.cur);
    r.set("conn_rate_max", t.rate.max);
    r.set("conn_tot", t.stot);
    if http {
        r.set("intercepted", t.intercepted);
        r.set("cache_lookups", 0u64);
        r.set("cache_hits", 0u64);
    }
    r.set("eint", t.panics);
    let h1 = if http {
        [
            t.scur,
            t.active,
            t.stot,
            t.req_tot,
            t.bin,
            t.bout,
            0,
            t.spliced_out,
        ]
    } else {
        [0; 8]
    };
    // HTTP/2 from clients (`h2::tally`); stream protocol errors are not told apart.
    let h2 = [
        t.h2_headers_rcvd,
        t.h2_data_rcvd,
        t.h2_settings_rcvd,
        t.h2_rst_stream_rcvd,
        t.h2_goaway_rcvd,
        t.h2_conn_proto_err,
        0,
        t.h2_rst_stream_resp,
        t.h2_goaway_resp,
        t.h2_open_conns,
        t.h2_open_streams,
        t.h2_total_conns,
        t.h2_total_streams,
    ];
    modules(&mut r, h2, h1);
    r
}

/// Whether a server takes traffic now (up, ready, weight above zero).
fn usable(h: Option<&CheckView>, o: Option<&Operator>, weight: u32) -> bool {
    h.is_none_or(|h| h.up && !h.nolb && !h.no_addr)
        && o.is_none_or(|o| o.admin == AdminState::Ready)
        && weight > 0
}

fn server_row(st: &Stats, bi: usize, si: usize) -> Row {
    let cfg = &st.cfg;
    let b = &cfg.backends[bi];
    let s = &b.servers[si];
    let t = &st.g.stats.servers[bi][si];
    let h = st.health.get(bi).and_then(|v| v.get(si));
    let o = st.op.get(bi).and_then(|v| v.get(si));
    let admin = o.map_or(AdminState::Ready, |o| o.admin);
    let weight = o.map_or(s.weight, |o| o.weight);
    // An SRV answer's weight is the server's, as HAProxy applies it.
    let weight = h.and_then(|h| h.dns_weight).unwrap_or(weight);
    let mode = backend_mode(cfg, bi);
    let http = mode == "http";
    let mut r = Row::new(Obj::Server, proxy_id(cfg, false, bi), s.id as usize);
    r.backend = Some(bi);
    r.server = Some(si);
    r.set("pxname", b.name.as_str());
    r.set("svname", s.name.as_str());
    common(&mut r, t, http);
    timing(&mut r, t, st.g.stats.now_ms);
    r.set("qcur", 0u64);
    r.set("qmax", 0u64);
    if let Some(m) = o.map_or(s.maxconn, |o| o.maxconn) {
        r.set("slim", u64::from(m));
    }
    r.set("status", server_status(admin, weight, h));
    r.set("weight", u64::from(weight));
    r.set("uweight", u64::from(weight));
    r.set("act", u64::from(!s.backup));
    r.set("bck", u64::from(s.backup));
    let since = h.map_or(0, |h| h.last_change.elapsed().as_secs());
    r.set("lastchg", since);
    if let Some(q) = b.maxqueue {
        r.set("qlimit", q as u64);
    }
    // Slow start in progress: the share of the weight in force.
    let up_for = h.filter(|h| h.up).map(|h| h.last_change.elapsed());
    if let Some(e) = up_for.filter(|e| !s.slowstart.is_zero() && *e < s.slowstart) {
        let pct = (e.as_millis() * 100 / s.slowstart.as_millis().max(1)) as u64;
        r.set("throttle", pct.max(1));
    }
    if http {
        r.set("req_tot", t.hrsp.iter().sum::<u64>());
    }
    // Where DNS put it; nothing while it has no address.
    match h {
        Some(h) if h.no_addr => {}
        Some(h) => r.set("addr", h.addr.to_string()),
        None => r.set("addr", s.addr.to_string()),
    }
    r.set("mode", mode);
    r.set("eint", 0u64);
    let idle =
        st.g.held
            .idle
            .get(bi)
            .and_then(|v| v.get(si))
            .copied()
            .unwrap_or(0);
    // Every idle connection was pooled after a complete exchange: safe to reuse.
    r.set("srv_icur", idle);
    r.set("idle_conn_cur", 0u64);
    r.set("safe_conn_cur", idle);
    r.set("used_conn_cur", t.scur);
    r.set("need_conn_est", t.smax.max(t.scur));
    if let Some(h) = h.filter(|h| h.checked) {
        r.set("chkfail", h.chkfail);
        r.set("chkdown", h.chkdown);
        let down = h.downtime + h.down_since.map_or(Duration::ZERO, |d| d.elapsed());
        r.set("downtime", down.as_secs());
        if !h.status.is_empty() {
            r.set("check_status", h.status);
            if let Some(c) = h.code {
                r.set("check_code", u64::from(c));
            }
            if let Some(d) = h.duration {
                r.set("check_duration", d.as_millis() as u64);
            }
            r.set("check_desc", h.desc.as_str());
        }
        r.set("last_chk", h.info.as_str());
        r.set("check_rise", h.rise);
        r.set("check_fall", h.fall);
        r.set("check_health", h.health);
    }
    r
}

fn backend_row(st: &Stats, bi: usize) -> Row {
    let cfg = &st.cfg;
    let b = &cfg.backends[bi];
    let t = &st.g.stats.backends[bi];
    let mode = backend_mode(cfg, bi);
    let http = mode == "http";
    let mut r = Row::new(Obj::Backend, proxy_id(cfg, false, bi), 0);
    r.backend = Some(bi);
    r.set("pxname", b.name.as_str());
    r.set("svname", "BACKEND");
    common(&mut r, t, http);
    timing(&mut r, t, st.g.stats.now_ms);
    let (qcur, qmax) = st.g.queued.get(bi).copied().unwrap_or((0, 0));
    r.set("qcur", qcur);
    r.set("qmax", qmax);
    // HAProxy's default fullconn: a tenth of the maxconn of the frontends using it.
    let users: u64 = cfg
        .frontends
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.default_backend == Some(bi)
                || f.routes.iter().any(|x| match x.target {
                    crate::config::RouteTarget::Backend(b) => b == bi,
                    // A name built per request may be any backend.
                    crate::config::RouteTarget::Dynamic(_) => true,
                })
        })
        .map(|(fi, _)| frontend_limit(st, fi))
        .sum();
    r.set("slim", users.div_ceil(10));
    r.set("dreq", t.dreq);
    let (mut act, mut bck, mut act_w, mut bck_w) = (0u64, 0u64, 0u64, 0u64);
    for (si, s) in b.servers.iter().enumerate() {
        let h = st.health.get(bi).and_then(|v| v.get(si));
        let o = st.op.get(bi).and_then(|v| v.get(si));
        let w = o.map_or(s.weight, |o| o.weight);
        if usable(h, o, w) {
            if s.backup {
                bck += 1;
                bck_w += u64::from(w);
            } else {
                act += 1;
                act_w += u64::from(w);
            }
        }
    }
    // A backend without servers is UP for HAProxy (nothing to be down).
    let up = act + bck > 0 || b.servers.is_empty();
    r.set("status", if up { "UP" } else { "DOWN" });
    let w = if act > 0 { act_w } else { bck_w };
    r.set("weight", w);
    r.set("uweight", w);
    r.set("act", act);
    r.set("bck", bck);
    if let Some(f) = st.health.get(bi).and_then(|v| v.first()).map(|c| c.backend) {
        r.set("chkdown", f.chkdown);
        r.set("lastchg", f.last_change.elapsed().as_secs());
        r.set("downtime", f.downtime().as_secs());
    }
    if http {
        r.set("req_tot", t.hrsp.iter().sum::<u64>());
        for c in ["cache_lookups", "cache_hits"] {
            r.set(c, 0u64);
        }
    }
    for c in ["comp_in", "comp_out", "comp_byp", "comp_rsp", "eint"] {
        r.set(c, 0u64);
    }
    for c in [
        "agg_server_status",
        "agg_server_check_status",
        "agg_check_status",
    ] {
        r.set(c, 0u64);
    }
    r.set("mode", mode);
    r.set("algo", algo_name(&b.balance));
    // Server side: HTTP/2 (`proto h2` servers: connections open and made, streams
    // open and carried), and HTTP/1 for the others (connections open, busy and idle,
    // requests, bytes). A server's sessions are its streams, its connects its
    // connections; the frames its connections received, by kind, and the errors
    // they detected and sent.
    let idle: u64 = st.g.held.idle.get(bi).map_or(0, |v| v.iter().sum());
    let mut h2 = [0u64; 13];
    if let Some(f) = st.g.held.h2_frames.get(bi) {
        h2[..9].copy_from_slice(f);
    }
    let (mut h2_idle, mut h2_bytes) = (0, (0, 0));
    for (si, _) in b.servers.iter().enumerate().filter(|(_, s)| s.h2) {
        let sv = &st.g.stats.servers[bi][si];
        h2[9] +=
            st.g.held
                .h2_open
                .get(bi)
                .and_then(|v| v.get(si))
                .copied()
                .unwrap_or(0);
        h2[10] += sv.scur;
        h2[11] += sv.connect;
        h2[12] += sv.stot;
        h2_idle += st.g.held.idle_of(bi, si);
        h2_bytes = (h2_bytes.0 + sv.bout, h2_bytes.1 + sv.bin);
    }
    let h1 = if http {
        [
            (t.scur + idle).saturating_sub(h2[10] + h2_idle),
            t.scur.saturating_sub(h2[10]),
            t.connect.saturating_sub(h2[11]),
            t.stot.saturating_sub(h2[12]),
            t.bout.saturating_sub(h2_bytes.0),
            t.bin.saturating_sub(h2_bytes.1),
            t.spliced_out,
            0,
        ]
    } else {
        [0; 8]
    };
    modules(&mut r, h2, h1);
    r
}
