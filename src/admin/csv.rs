//! `show stat`: HAProxy 2.6's CSV, same header and column order; columns for features
//! ringlb does not have are left empty, as HAProxy leaves columns that do not apply.

use super::Core;
use crate::config::{BalanceAlgo, Config, HashKey, Mode};
use crate::control::AdminState;
use crate::control::CheckView;
use crate::stats::Totals;

/// HAProxy 2.6's `show stat` header (without the leading `# `).
pub const HEADER: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

/// A proxy's `iid`: HAProxy numbers proxies in config order; ringlb numbers the
/// frontends, then the backends, from 2 (HAProxy's first user proxy usually gets 2).
pub fn proxy_id(cfg: &Config, frontend: bool, index: usize) -> usize {
    let pos = cfg.proxy_order.iter().position(|p| {
        if frontend {
            p.frontend == Some(index)
        } else {
            p.backend == Some(index)
        }
    });
    2 + pos.unwrap_or(0)
}

/// HAProxy's numeric check status (`enum healthcheck_status`), for `show servers state`.
pub fn check_status_code(status: &str) -> u32 {
    match status {
        "L4OK" => 6,
        "L4TOUT" => 7,
        "L4CON" => 8,
        "L7TOUT" => 12,
        "L7RSP" => 13,
        "L7OK" => 15,
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
            HashKey::Uri | HashKey::Path => "uri",
            HashKey::Header(_) => "hdr",
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

struct Row {
    cols: Vec<String>,
}

impl Row {
    fn new() -> Row {
        Row {
            cols: vec![String::new(); HEADER.split(',').count() - 1],
        }
    }

    fn set(&mut self, name: &str, value: impl ToString) {
        if let Some(i) = HEADER.split(',').position(|c| c == name) {
            self.cols[i] = value.to_string();
        }
    }

    fn counters(&mut self, t: &Totals) {
        for (k, v) in [
            ("scur", t.scur),
            ("smax", t.smax),
            ("stot", t.stot),
            ("bin", t.bin),
            ("bout", t.bout),
            ("hrsp_1xx", t.hrsp[0]),
            ("hrsp_2xx", t.hrsp[1]),
            ("hrsp_3xx", t.hrsp[2]),
            ("hrsp_4xx", t.hrsp[3]),
            ("hrsp_5xx", t.hrsp[4]),
            ("hrsp_other", t.hrsp[5]),
        ] {
            self.set(k, v);
        }
    }

    fn finish(self, out: &mut String) {
        out.push_str(&self.cols.join(","));
        out.push_str(",\n");
    }
}

/// The status column of a server, as HAProxy writes it.
pub fn server_status(admin: AdminState, weight: u32, h: Option<&CheckView>) -> String {
    let up = h.is_none_or(|h| h.up);
    match admin {
        AdminState::Maint => return "MAINT".into(),
        AdminState::Drain if up => return "DRAIN".into(),
        _ => {}
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

pub fn show_stat(core: &Core) -> String {
    let g = core.gather();
    let cfg = &core.cfg();
    let health = core.health().lock().map(|h| h.clone()).unwrap_or_default();
    let op = core.operator.lock().map(|o| o.clone()).unwrap_or_default();
    let stopping = core.stopping.load(std::sync::atomic::Ordering::Relaxed);
    let mut out = format!("# {HEADER}\n");
    for p in &cfg.proxy_order {
        if let Some(fi) = p.frontend {
            let f = &cfg.frontends[fi];
            let t = &g.stats.frontends[fi];
            let mut r = Row::new();
            r.set("pxname", &f.name);
            r.set("svname", "FRONTEND");
            r.counters(t);
            r.set("dreq", 0);
            r.set("dresp", 0);
            r.set("ereq", t.ereq);
            r.set("status", if stopping { "STOP" } else { "OPEN" });
            r.set("pid", 1);
            r.set("iid", proxy_id(cfg, true, fi));
            r.set("sid", 0);
            r.set("type", 0);
            r.set("req_tot", t.req_tot);
            r.set("conn_tot", t.stot);
            r.set("mode", if f.mode == Mode::Http { "http" } else { "tcp" });
            r.finish(&mut out);
        }
        if let Some(bi) = p.backend {
            let b = &cfg.backends[bi];
            let iid = proxy_id(cfg, false, bi);
            let (mut act, mut bck, mut act_w, mut bck_w) = (0, 0, 0, 0);
            let mut last_change = u64::MAX;
            for (si, s) in b.servers.iter().enumerate() {
                let t = &g.stats.servers[bi][si];
                let h = health.get(bi).and_then(|v| v.get(si));
                let o = op.get(bi).and_then(|v| v.get(si));
                let admin = o.map_or(AdminState::Ready, |o| o.admin);
                let weight = o.map_or(s.weight, |o| o.weight);
                let up = h.is_none_or(|c| c.up);
                let usable = up && admin == AdminState::Ready && weight > 0;
                if usable {
                    if s.backup {
                        bck += 1;
                        bck_w += weight;
                    } else {
                        act += 1;
                        act_w += weight;
                    }
                }
                let since = h.map_or(0, |h| h.last_change.elapsed().as_secs());
                last_change = last_change.min(since);
                let mut r = Row::new();
                r.set("pxname", &b.name);
                r.set("svname", &s.name);
                r.set("qcur", 0);
                r.set("qmax", 0);
                r.counters(t);
                let maxconn = o.map_or(s.maxconn, |o| o.maxconn);
                r.set("slim", maxconn.map(|m| m.to_string()).unwrap_or_default());
                r.set("dresp", 0);
                r.set("econ", t.econ);
                r.set("eresp", t.eresp);
                r.set("wretr", t.wretr);
                r.set("wredis", t.wredis);
                r.set("status", server_status(admin, weight, h));
                r.set("weight", weight);
                r.set("uweight", weight);
                r.set("act", u8::from(!s.backup));
                r.set("bck", u8::from(s.backup));
                r.set("lastchg", since);
                r.set("pid", 1);
                r.set("iid", iid);
                r.set("sid", si + 1);
                r.set("lbtot", t.lbtot);
                r.set("type", 2);
                r.set("addr", s.addr);
                r.set("mode", backend_mode(cfg, bi));
                if let Some(h) = h.filter(|h| h.checked) {
                    r.set("chkfail", h.chkfail);
                    r.set("chkdown", h.chkdown);
                    let down =
                        h.downtime + h.down_since.map_or(Default::default(), |d| d.elapsed());
                    r.set("downtime", down.as_secs());
                    r.set("check_status", h.status);
                    r.set(
                        "check_code",
                        h.code.map(|c| c.to_string()).unwrap_or_default(),
                    );
                    r.set(
                        "check_duration",
                        h.duration
                            .map(|d| d.as_millis().to_string())
                            .unwrap_or_default(),
                    );
                    r.set("check_desc", &h.desc);
                    r.set("check_rise", h.rise);
                    r.set("check_fall", h.fall);
                    r.set("check_health", h.health);
                }
                r.finish(&mut out);
            }
            let t = &g.stats.backends[bi];
            let (qcur, qmax) = g.queued.get(bi).copied().unwrap_or((0, 0));
            let mut r = Row::new();
            r.set("pxname", &b.name);
            r.set("svname", "BACKEND");
            r.set("qcur", qcur);
            r.set("qmax", qmax);
            r.counters(t);
            r.set("dreq", t.dreq);
            r.set("dresp", 0);
            r.set("econ", t.econ);
            r.set("eresp", t.eresp);
            r.set("wretr", t.wretr);
            r.set("wredis", t.wredis);
            r.set("status", if act + bck > 0 { "UP" } else { "DOWN" });
            r.set("weight", if act > 0 { act_w } else { bck_w });
            r.set("uweight", if act > 0 { act_w } else { bck_w });
            r.set("act", act);
            r.set("bck", bck);
            r.set(
                "lastchg",
                if last_change == u64::MAX {
                    0
                } else {
                    last_change
                },
            );
            r.set("pid", 1);
            r.set("iid", iid);
            r.set("sid", 0);
            r.set("lbtot", t.stot);
            r.set("type", 1);
            r.set("req_tot", t.hrsp.iter().sum::<u64>());
            r.set("mode", backend_mode(cfg, bi));
            r.set("algo", algo_name(&b.balance));
            r.finish(&mut out);
        }
    }
    out
}
