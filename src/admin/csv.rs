//! `show stat`: HAProxy 2.6's CSV (same header and column order), `typed` and `json`
//! outputs, and the `IID TYPE SID`, `up` and `no-maint` filters, over the rows of
//! `rows`; columns that do not apply to a row are left empty, as HAProxy leaves them.

use std::fmt::Write as _;

use super::fields::{Obj, FIRST_MODULE, STAT, V};
use super::rows::Row;
use super::Core;
use crate::config::{BalanceAlgo, Config, HashKey, Mode};
use crate::control::AdminState;
use crate::control::CheckView;

/// HAProxy 2.6's `show stat` header (without the leading `# `).
pub const HEADER: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

/// A proxy's `iid`: its `id N`, else HAProxy's numbering (`config::number_proxies`).
pub fn proxy_id(cfg: &Config, frontend: bool, index: usize) -> usize {
    cfg.proxy_uid(frontend, index).unwrap_or(0) as usize
}

/// HAProxy's numeric check status (`enum healthcheck_status`), for `show servers state`.
pub fn check_status_code(status: &str) -> u32 {
    match status {
        "L4OK" => 6,
        "L4TOUT" => 7,
        "L4CON" => 8,
        "L6OK" => 9,
        "L6TOUT" => 10,
        "L6RSP" => 11,
        "L7TOUT" => 12,
        "L7RSP" => 13,
        "L7OK" => 15,
        "L7OKC" => 16,
        "L7STS" => 17,
        _ => 1,
    }
}

pub fn algo_name(algo: &BalanceAlgo) -> &'static str {
    match algo {
        BalanceAlgo::RoundRobin => "roundrobin",
        BalanceAlgo::StaticRr => "static-rr",
        BalanceAlgo::LeastConn => "leastconn",
        BalanceAlgo::Random { .. } => "random",
        BalanceAlgo::First => "first",
        BalanceAlgo::Hash { key, .. } => match key {
            HashKey::Source => "source",
            HashKey::Uri(_) => "uri",
            HashKey::Header { .. } => "hdr",
            HashKey::UrlParam(_) => "url_param",
        },
    }
}

/// `tcp` when a tcp frontend uses the backend, else `http`.
pub fn backend_mode(cfg: &Config, backend: usize) -> &'static str {
    let tcp = cfg
        .frontends
        .iter()
        .any(|f| f.mode == Mode::Tcp && f.default_backend == Some(backend));
    if tcp {
        "tcp"
    } else {
        "http"
    }
}

/// The status column of a server, as HAProxy writes it.
pub fn server_status(admin: AdminState, weight: u32, h: Option<&CheckView>) -> String {
    let up = h.is_none_or(|h| h.up);
    // No address from DNS (yet): HAProxy's resolution maintenance, over any other.
    if h.is_some_and(|h| h.no_addr) {
        return "MAINT (resolution)".into();
    }
    match admin {
        AdminState::Maint => return "MAINT".into(),
        AdminState::Drain if up => return "DRAIN".into(),
        _ => {}
    }
    if up && h.is_some_and(|h| h.nolb) {
        return "NOLB".into();
    }
    let Some(h) = h.filter(|h| h.checked) else {
        return if up { "no check".into() } else { "DOWN".into() };
    };
    let top = h.rise + h.fall - 1;
    if up && weight == 0 {
        "NOLB".into()
    } else if up && h.health < top {
        format!("UP {}/{}", h.health + 1 - h.rise, h.fall)
    } else if up {
        "UP".into()
    } else if h.health > 0 {
        format!("DOWN {}/{}", h.health, h.rise)
    } else {
        "DOWN".into()
    }
}

/// What `show stat` was asked for: a format, row filters.
#[derive(Debug, Default)]
pub struct StatArgs {
    pub typed: bool,
    pub json: bool,
    pub desc: bool,
    /// Hide servers in maintenance (`no-maint`), or every server not up (`up`).
    pub no_maint: bool,
    pub up: bool,
    /// `IID TYPE SID`: a proxy id (-1: all), a bit field of row kinds (1 frontends,
    /// 2 backends, 4 servers; -1: all), a server id (-1: all).
    pub bound: Option<(i64, i64, i64)>,
}

/// Parses `show stat`'s arguments as HAProxy 2.6 does (`words` after `show stat`).
pub fn parse_args(core: &Core, words: &[&str]) -> Result<StatArgs, String> {
    let mut a = StatArgs::default();
    let mut w = words;
    if w.first() == Some(&"domain") {
        match w.get(1) {
            Some(&"proxy") => w = &w[2..],
            _ => return Err("Invalid statistics domain.\n".into()),
        }
    }
    if w.len() >= 3 {
        let cfg = core.cfg();
        let by_name = cfg
            .frontends
            .iter()
            .position(|f| f.name == w[0])
            .map(|i| proxy_id(&cfg, true, i))
            .or_else(|| {
                cfg.backends
                    .iter()
                    .position(|b| b.name == w[0])
                    .map(|i| proxy_id(&cfg, false, i))
            });
        let iid = by_name.map_or_else(|| atoi(w[0]), |i| i as i64);
        if iid == 0 {
            return Err("No such proxy.\n".into());
        }
        a.bound = Some((iid, atoi(w[1]), atoi(w[2])));
        w = &w[3..];
    }
    for word in w {
        match *word {
            "typed" => (a.typed, a.json) = (true, false),
            "json" => (a.typed, a.json) = (false, true),
            "desc" => a.desc = true,
            "no-maint" => a.no_maint = true,
            "up" => a.up = true,
            _ => {}
        }
    }
    Ok(a)
}

/// C's `atoi`: the leading integer of `s`, 0 if none.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

/// Whether `row` passes the filters of `a`.
pub fn shown(a: &StatArgs, row: &Row) -> bool {
    if let Some((iid, ty, sid)) = a.bound {
        if iid != -1 && iid != row.iid as i64 {
            return false;
        }
        if ty != -1 && ty & (1 << row.obj.number()) == 0 {
            return false;
        }
        if row.obj == Obj::Server && sid != -1 && sid != row.sid as i64 {
            return false;
        }
    }
    if row.obj == Obj::Server {
        let status = row.text("status");
        if a.no_maint && status.starts_with("MAINT") {
            return false;
        }
        if a.up
            && !(status.starts_with("UP")
                || status == "no check"
                || status == "DRAIN"
                || status == "NOLB")
        {
            return false;
        }
    }
    true
}

/// `show stat [IID TYPE SID] [typed|json] [desc] [up|no-maint]`.
pub fn show_stat(core: &Core, words: &[&str]) -> String {
    show_stat_in(core, words, &[])
}

/// `show stat` restricted to the proxies named in `scope` (`stats scope` of a stats
/// page; empty: all).
pub fn show_stat_in(core: &Core, words: &[&str], scope: &[String]) -> String {
    let a = match parse_args(core, words) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let mut st = super::rows::gather(core);
    st.rows.retain(|r| in_scope(scope, r));
    if a.up || a.no_maint {
        count_up(&mut st.rows);
    }
    let rows = st.rows.iter().filter(|r| shown(&a, r));
    if a.json {
        json(rows)
    } else if a.typed {
        typed(rows, a.desc)
    } else {
        csv(rows)
    }
}

/// Whether a row's proxy is one `stats scope` lets the page show.
pub fn in_scope(scope: &[String], r: &Row) -> bool {
    scope.is_empty() || scope.iter().any(|n| *n == r.text("pxname"))
}

/// With `up` or `no-maint`, HAProxy adds to a backend's status how many of its
/// servers are not stopped, of how many (`UP (2/3)`).
fn count_up(rows: &mut [Row]) {
    let mut counts = std::collections::HashMap::new();
    for r in rows.iter().filter(|r| r.obj == Obj::Server) {
        let status = r.text("status");
        let stopped = status.starts_with("DOWN") || status == "MAINT";
        let c = counts.entry(r.backend).or_insert((0, 0));
        c.0 += u32::from(!stopped);
        c.1 += 1;
    }
    for r in rows.iter_mut().filter(|r| r.obj == Obj::Backend) {
        let (up, all) = counts.get(&r.backend).copied().unwrap_or((0, 0));
        let status = format!("{} ({up}/{all})", r.text("status"));
        r.set_text("status", status);
    }
}

/// The CSV: HAProxy's header, then a line per row.
pub fn csv<'a>(rows: impl Iterator<Item = &'a Row>) -> String {
    let mut out = format!("# {HEADER}\n");
    for r in rows {
        for (i, v) in r.vals.iter().enumerate() {
            if i == FIRST_MODULE {
                out.push_str("-,");
            }
            if let Some(v) = v {
                out.push_str(&csv_field(&v.text()));
            }
            out.push(',');
        }
        out.push('\n');
    }
    out
}

/// A CSV value: quoted when it holds a comma, a quote or a line end (HAProxy's
/// `csv_enc`).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `show stat typed`: `F.IID.SID.POS.NAME.1:TAGS:TYPE:VALUE`, one line per field.
pub fn typed<'a>(rows: impl Iterator<Item = &'a Row>, desc: bool) -> String {
    let mut out = String::new();
    for r in rows {
        for (i, v) in r.vals.iter().enumerate() {
            let (Some(v), f) = (v, &STAT[i]) else {
                continue;
            };
            let meta = f.meta(r.obj);
            let _ = write!(
                out,
                "{}.{}.{}.{i}.{}.1:{}:{}",
                r.obj.letter(),
                r.iid,
                r.sid,
                f.name,
                meta.tags(),
                v.typed(meta)
            );
            if desc {
                let _ = write!(out, ":\"{}\"", f.desc);
            }
            out.push('\n');
        }
    }
    out
}

/// `show stat json`: an array of rows, each an array of its fields.
pub fn json<'a>(rows: impl Iterator<Item = &'a Row>) -> String {
    let mut out = String::from("[");
    for (n, r) in rows.enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('[');
        let mut first = true;
        for (i, v) in r.vals.iter().enumerate() {
            let (Some(v), f) = (v, &STAT[i]) else {
                continue;
            };
            if !first {
                out.push(',');
            }
            first = false;
            let meta = f.meta(r.obj);
            let (origin, nature, scope) = meta.words();
            let _ = write!(
                out,
                "{{\"objType\":\"{}\",\"proxyId\":{},\"id\":{},\"field\":{{\"pos\":{i},\"name\":\"{}\"}},\"processNum\":1,\"tags\":{{\"origin\":\"{origin}\",\"nature\":\"{nature}\",\"scope\":\"{scope}\"}},\"value\":{}}}",
                r.obj.word(),
                r.iid,
                r.sid,
                f.name,
                json_value(v, meta.ty()),
            );
        }
        out.push(']');
    }
    out.push_str("]\n");
    out
}

/// `{"type":"u32","value":3}`, keys in HAProxy's order.
pub fn json_value(v: &V, ty: &str) -> String {
    let value = match v {
        V::N(n) => n.to_string(),
        V::S(s) => serde_json::Value::String(s.clone()).to_string(),
    };
    format!("{{\"type\":\"{ty}\",\"value\":{value}}}")
}
