//! The HTML stats page (`stats uri`), laid out as HAProxy 2.6's: the process block
//! and the colour legend, then a table per proxy with HAProxy's column groups
//! (queue, session rate, sessions, bytes, denied, errors, warnings, server) and its
//! tooltips, plus ringlb's latency percentiles per backend and server. `;csv`,
//! `;json`, `;up` (hide DOWN servers), `;norefresh`; and with `stats admin`, a form
//! per backend whose actions (ready, drain, maint) are the runtime API's.

use std::fmt::Write as _;

use super::fields::{Obj, V};
use super::rows::{Row, Stats};
use super::Core;
use crate::control::{ServiceAnswer, ServiceQuery};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// HAProxy's `human_time`: `5s`, `3m12s`, `2h05m`, `4d3h`.
fn human(secs: i64) -> String {
    if secs < 0 {
        return "-".into();
    }
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Answers a request for the page: GET (HTML, `;csv`, `;json`), or a POST from the
/// admin form (applied, then a redirect to the page with its outcome).
/// `scope`: the proxies shown (`stats scope`), empty for all.
pub fn serve(
    core: &Core,
    q: &ServiceQuery,
    refresh: Option<u64>,
    scope: &[String],
) -> ServiceAnswer {
    // Options follow the stats URI, which may hold a `?` itself (`/admin?stats;csv`).
    let base = q.target.split(';').next().unwrap_or("/");
    let opts: Vec<&str> = q
        .target
        .split(';')
        .skip(1)
        .map(|o| o.split(['?', '&']).next().unwrap_or(""))
        .collect();
    if q.method == "POST" {
        let code = if q.admin {
            super::page_admin::apply(core, &q.body)
        } else {
            "DENY"
        };
        return ServiceAnswer {
            status: 303,
            content_type: "text/plain",
            location: Some(format!("{base};st={code}")),
            body: String::new(),
        };
    }
    if opts.contains(&"csv") {
        return ServiceAnswer::ok("text/plain", super::csv::show_stat_in(core, &[], scope));
    }
    if opts.contains(&"json") {
        return ServiceAnswer::ok(
            "application/json",
            super::csv::show_stat_in(core, &["json"], scope),
        );
    }
    if opts.contains(&"json-schema") {
        return ServiceAnswer::ok("application/json", super::fields::schema());
    }
    let status = opts.iter().find_map(|o| o.strip_prefix("st="));
    let page = Page {
        base,
        hide_down: opts.contains(&"up"),
        refresh: refresh.filter(|_| !opts.contains(&"norefresh")),
        admin: q.admin,
        status,
        scope,
    };
    ServiceAnswer::ok("text/html", page.render(core))
}

struct Page<'a> {
    base: &'a str,
    hide_down: bool,
    refresh: Option<u64>,
    admin: bool,
    status: Option<&'a str>,
    scope: &'a [String],
}

const STYLE: &str = "body{font-family:arial,helvetica,sans-serif;font-size:12px;color:black;background:white}
th,td{font-size:10px}
h1{font-size:x-large;margin-bottom:.5em}
h2{font-family:helvetica,arial;font-size:x-large;font-weight:bold;font-style:italic;color:#6020a0;margin:0}
h3{font-family:helvetica,arial;font-size:16px;font-weight:bold;color:#b00040;background:#e8e8d0;margin:0}
a.px:link,a.px:visited{color:#ffff40;text-decoration:none}
a.lfsb:link,a.lfsb:visited{color:#000;text-decoration:none}
table.tbl{border-collapse:collapse;border-style:none;margin-bottom:1em}
table.tbl td{text-align:right;border:1px solid gray;padding:2px 3px;white-space:nowrap}
table.tbl td.ac{text-align:center}
table.tbl td.al{text-align:left}
table.tbl th{border:1px solid gray}
table.tbl th.pxname{background:#b00040;color:#ffff40;font-weight:bold;padding:2px 3px;white-space:nowrap}
table.tbl th.empty{border-style:none;background:white}
table.lgd{border-collapse:collapse;border-left:1px solid black}
table.lgd td{border:1px solid gray;padding:2px}
table.lgd td.noborder{border-style:none;white-space:nowrap}
table.det{border-collapse:collapse}
table.det th{text-align:left;border-width:0;font-size:11px}
table.det td{text-align:right;border-width:0;padding:0 0 0 4px;font-size:11px}
u{text-decoration:none;border-bottom:1px dotted black}
div.tips{display:block;visibility:hidden;z-index:2147483647;position:absolute;padding:2px 4px 3px;background:#f0f060;border:1px solid #7040c0;white-space:nowrap;font-size:11px}
u:hover div.tips{visibility:visible}
.hr{margin-top:.25em;border-color:black;border-bottom-style:solid}
.titre{background:#20D0D0;color:#000}
.frontend{background:#e8e8d0}
.backend{background:#e8e8d0}
.active_down{background:#ff9090}
.active_going_up{background:#ffd020}
.active_going_down{background:#ffffa0}
.active_up{background:#c0ffc0}
.active_nolb{background:#20a0ff}
.active_draining{background:#20a0FF}
.active_no_check{background:#e0e0e0}
.backup_down{background:#ff9090}
.backup_going_up{background:#ff80ff}
.backup_going_down{background:#c060ff}
.backup_up{background:#b0d0ff}
.backup_nolb{background:#90b0e0}
.backup_draining{background:#cc9900}
.backup_no_check{background:#e0e0e0}
.maintain{background:#c07820}
.latency{background:#e0e0ff}
";

/// The legend's rows: (class, what it means).
const LEGEND: &[(&str, &str)] = &[
    ("active_up", "active UP"),
    ("backup_up", "backup UP"),
    ("active_going_down", "active UP, going down"),
    ("backup_going_down", "backup UP, going down"),
    ("active_going_up", "active DOWN, going up"),
    ("backup_going_up", "backup DOWN, going up"),
    ("active_down", "active or backup DOWN"),
    ("active_no_check", "not checked"),
    ("maintain", "active or backup DOWN for maintenance (MAINT)"),
    (
        "active_draining",
        "active or backup SOFT STOPPED for maintenance",
    ),
];

/// The column groups: (title, columns), as HAProxy's, then ringlb's latencies.
const GROUPS: &[(&str, &[&str])] = &[
    ("Queue", &["Cur", "Max", "Limit"]),
    ("Session rate", &["Cur", "Max", "Limit"]),
    (
        "Sessions",
        &["Cur", "Max", "Limit", "Total", "LbTot", "Last"],
    ),
    ("Bytes", &["In", "Out"]),
    ("Denied", &["Req", "Resp"]),
    ("Errors", &["Req", "Conn", "Resp"]),
    ("Warnings", &["Retr", "Redis"]),
    (
        "Server",
        &[
            "Status", "LastChk", "Wght", "Act", "Bck", "Chk", "Dwn", "Dwntme", "Thrtle",
        ],
    ),
    ("Latency", &["p50", "p99", "p99.9"]),
];

/// The colour class of a server row, from its status, kind and health counter.
fn row_class(r: &Row) -> &'static str {
    let status = r.text("status");
    let backup = r.num("bck") == 1;
    let pick = |a: &'static str, b: &'static str| if backup { b } else { a };
    match status.as_str() {
        "MAINT" => "maintain",
        "DRAIN" => pick("active_draining", "backup_draining"),
        "NOLB" => pick("active_nolb", "backup_nolb"),
        "no check" => pick("active_no_check", "backup_no_check"),
        "UP" => pick("active_up", "backup_up"),
        s if s.starts_with("UP ") => pick("active_going_down", "backup_going_down"),
        s if s.starts_with("DOWN ") => pick("active_going_up", "backup_going_up"),
        _ => pick("active_down", "backup_down"),
    }
}

/// A cell with a tooltip (HAProxy's `<u>value<div class=tips>...</div></u>`).
fn tip(value: impl std::fmt::Display, lines: &[(&str, String)]) -> String {
    let mut t = format!("<u>{value}<div class=tips><table class=det>");
    for (k, v) in lines {
        let _ = write!(t, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    t.push_str("</table></div></u>");
    t
}

/// Milliseconds from microseconds, for the latency columns.
fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

impl Page<'_> {
    fn render(&self, core: &Core) -> String {
        let mut st = super::rows::gather(core);
        st.rows.retain(|r| super::csv::in_scope(self.scope, r));
        let mut out = String::with_capacity(64 * 1024);
        out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Statistics Report for ringlb</title>\n");
        if let Some(r) = self.refresh {
            let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{r}\">");
        }
        let _ = writeln!(out, "<style type=\"text/css\">{STYLE}</style></head><body>");
        let _ = writeln!(
            out,
            "<h1>ringlb version {}</h1><h2>Statistics Report for pid {}</h2><hr width=\"100%\" class=\"hr\">",
            super::info::VERSION,
            std::process::id()
        );
        self.process_block(core, &st, &mut out);
        if let Some(code) = self.status {
            self.status_message(code, &mut out);
        }
        let mut i = 0;
        while i < st.rows.len() {
            // A proxy's rows: its frontend, then its servers and backend.
            let start = i;
            let iid = st.rows[i].iid;
            while i < st.rows.len() && st.rows[i].iid == iid {
                i += 1;
            }
            self.proxy_table(&st, &st.rows[start..i], &mut out);
        }
        out.push_str("</body></html>\n");
        out
    }

    fn process_block(&self, core: &Core, st: &Stats, out: &mut String) {
        let info = super::info::values(core, st);
        let get = |k: &str| {
            info.iter()
                .find(|(f, _)| f.name == k)
                .and_then(|(_, v)| v.as_ref().map(V::text))
                .unwrap_or_default()
        };
        let rate: f64 = get("BytesOutRate").parse().unwrap_or(0.0);
        out.push_str("<h3>&gt; General process information</h3>\n<table border=0 id=\"process\"><tr><td align=\"left\" nowrap width=\"1%\"><p>\n");
        let _ = writeln!(
            out,
            "<b>pid = </b> {} (process #1, nbproc = 1, nbthread = {})<br>\n<b>uptime = </b> {}<br>\n<b>system limits:</b> memmax = unlimited; ulimit-n = {}<br>\n<b>maxsock = </b> {}; <b>maxconn = </b> {}; <b>maxpipes = </b> {}<br>\ncurrent conns = {}; current pipes = {}/{}; conn rate = {}/sec; bit rate = {:.3} kbps<br>\nRunning tasks: {}/{}; idle = {} %<br>\n</td>",
            get("Pid"),
            get("Nbthread"),
            get("Uptime"),
            get("Ulimit-n"),
            get("Maxsock"),
            get("Maxconn"),
            get("Maxpipes"),
            get("CurrConns"),
            get("PipesUsed"),
            get("PipesFree"),
            get("ConnRate"),
            rate * 8.0 / 1000.0,
            st.g.held.inflight,
            get("Tasks"),
            get("Idle_pct"),
        );
        out.push_str("<td align=\"center\" nowrap><table class=\"lgd\" id=\"legend\">");
        for pair in LEGEND.chunks(2) {
            out.push_str("<tr>");
            for (class, what) in pair {
                let _ = write!(
                    out,
                    "<td class=\"{class}\">&nbsp;</td><td class=\"noborder\">{what}&nbsp;</td>"
                );
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>Note: \"NOLB\"/\"DRAIN\" = UP with load-balancing disabled.</td>\n");
        let base = self.base;
        let _ = write!(
            out,
            "<td align=\"left\" valign=\"top\" nowrap width=\"1%\"><b>Display option:</b><ul style=\"margin-top: 0.25em;\">\
             <li><form method=\"GET\">Scope : <input value=\"\" name=\"scope\" size=\"8\" maxlength=\"20\" tabindex=\"1\"/></form>"
        );
        if self.hide_down {
            let _ = write!(
                out,
                "<li><a href=\"{base}\" id=\"show-down\">Show all servers</a><br>"
            );
        } else {
            let _ = write!(
                out,
                "<li><a href=\"{base};up\" id=\"hide-down\">Hide 'DOWN' servers</a><br>"
            );
        }
        if self.refresh.is_some() {
            let _ = write!(
                out,
                "<li><a href=\"{base};norefresh\">Disable refresh</a><br>"
            );
        }
        let _ = write!(
            out,
            "<li><a href=\"{base}\">Refresh now</a><br>\
             <li><a href=\"{base};csv;norefresh\" id=\"csv\">CSV export</a><br>\
             <li><a href=\"{base};json;norefresh\" id=\"json\">JSON export</a> (<a href=\"{base};json-schema\">schema</a>)<br></ul></td></tr></table>"
        );
    }

    fn status_message(&self, code: &str, out: &mut String) {
        let (class, text) = match code {
            "DONE" => ("active_up", "Action processed successfully."),
            "NONE" => ("active_going_down", "Nothing has changed."),
            "PART" => ("active_going_down", "Action partially processed."),
            "ERRP" => (
                "active_down",
                "Action not processed because of invalid parameters.",
            ),
            "DENY" => ("active_down", "<b>Action denied.</b>"),
            _ => ("active_down", "Unexpected result."),
        };
        let _ = writeln!(
            out,
            "<p><div class={class} id=\"status\"><a class=lfsb href=\"{}\" title=\"Remove this message\">[X]</a> {text}</div>",
            self.base
        );
    }

    fn proxy_table(&self, st: &Stats, rows: &[Row], out: &mut String) {
        let Some(first) = rows.first() else { return };
        let name = esc(&first.text("pxname"));
        let backend = rows.iter().find(|r| r.obj == Obj::Backend);
        let admin = self.admin && backend.is_some();
        if admin {
            out.push_str("<form method=\"post\">");
        }
        let _ = write!(
            out,
            "<table class=\"tbl\" width=\"100%\"><tr class=\"titre\"><th class=\"pxname\" width=\"10%\"><a name=\"{name}\"></a><a class=px href=\"#{name}\">{name}</a></th><th class=\"empty\" width=\"90%\"></th></tr></table>\n<table class=\"tbl proxy\" width=\"100%\" id=\"px-{name}\"><tr class=\"titre\">"
        );
        if admin {
            out.push_str("<th rowspan=2 width=1><input type=\"checkbox\" onclick=\"for(c of document.getElementsByClassName('px-check')) c.checked = this.checked\"></th>");
        }
        out.push_str("<th rowspan=2></th>");
        for (title, cols) in GROUPS {
            let _ = write!(
                out,
                "<th colspan={} class=\"group\">{title}</th>",
                cols.len()
            );
        }
        out.push_str("</tr><tr class=\"titre\">");
        for (_, cols) in GROUPS {
            for c in *cols {
                let _ = write!(out, "<th>{c}</th>");
            }
        }
        out.push_str("</tr>\n");
        for r in rows {
            if r.obj == Obj::Server && self.hide_down && r.text("status").starts_with("DOWN") {
                continue;
            }
            self.row(st, r, admin, out);
        }
        out.push_str("</table>\n");
        if let (true, Some(b)) = (admin, backend) {
            let _ = write!(
                out,
                "Choose the action to perform on the checked servers : <select name=action><option value=\"\"></option><option value=\"ready\">Set state to READY</option><option value=\"drain\">Set state to DRAIN</option><option value=\"maint\">Set state to MAINT</option></select><input type=\"hidden\" name=\"b\" value=\"#{}\"><input type=\"submit\" value=\"Apply\" id=\"apply-{name}\"></form>",
                b.iid
            );
        }
        out.push_str("<p>\n");
    }

    fn row(&self, st: &Stats, r: &Row, admin: bool, out: &mut String) {
        let n = |k: &str| r.num(k);
        let opt = |k: &str| r.get(k).map(V::text).unwrap_or_default();
        let (class, label) = match r.obj {
            Obj::Frontend => ("frontend".to_string(), "Frontend".to_string()),
            Obj::Backend => ("backend".to_string(), "Backend".to_string()),
            Obj::Server => (row_class(r).to_string(), esc(&r.text("svname"))),
        };
        let px = esc(&r.text("pxname"));
        let _ = write!(out, "<tr class=\"{class}\" data-row=\"{px}/{label}\">");
        if admin {
            if r.obj == Obj::Server {
                let _ = write!(
                    out,
                    "<td><input class='px-check' type=\"checkbox\" name=\"s\" value=\"{label}\"></td>"
                );
            } else {
                out.push_str("<td></td>");
            }
        }
        let _ = write!(
            out,
            "<td class=ac><a name=\"{px}/{label}\"></a><a class=lfsb href=\"#{px}/{label}\">{label}</a></td>"
        );
        let mut cells: Vec<String> = Vec::with_capacity(36);
        // Queue.
        cells.push(opt("qcur"));
        cells.push(opt("qmax"));
        cells.push(opt("qlimit"));
        // Session rate.
        let rate_tip = if r.obj == Obj::Frontend {
            tip(
                n("rate"),
                &[
                    ("Current connection rate:", format!("{}/s", n("conn_rate"))),
                    ("Current session rate:", format!("{}/s", n("rate"))),
                    ("Current request rate:", format!("{}/s", n("req_rate"))),
                ],
            )
        } else {
            n("rate").to_string()
        };
        cells.push(rate_tip);
        let max_tip = if r.obj == Obj::Frontend {
            tip(
                n("rate_max"),
                &[
                    ("Max connection rate:", format!("{}/s", n("conn_rate_max"))),
                    ("Max session rate:", format!("{}/s", n("rate_max"))),
                    ("Max request rate:", format!("{}/s", n("req_rate_max"))),
                ],
            )
        } else {
            n("rate_max").to_string()
        };
        cells.push(max_tip);
        cells.push(opt("rate_lim"));
        // Sessions.
        cells.push(n("scur").to_string());
        cells.push(n("smax").to_string());
        cells.push(opt("slim"));
        let mut total_tip = vec![
            ("Cum. sessions:", n("stot").to_string()),
            ("Cum. HTTP requests:", n("req_tot").to_string()),
        ];
        for c in ["1xx", "2xx", "3xx", "4xx", "5xx", "other"] {
            total_tip.push(match c {
                "1xx" => ("- HTTP 1xx responses:", n("hrsp_1xx").to_string()),
                "2xx" => ("- HTTP 2xx responses:", n("hrsp_2xx").to_string()),
                "3xx" => ("- HTTP 3xx responses:", n("hrsp_3xx").to_string()),
                "4xx" => ("- HTTP 4xx responses:", n("hrsp_4xx").to_string()),
                "5xx" => ("- HTTP 5xx responses:", n("hrsp_5xx").to_string()),
                _ => ("- other responses:", n("hrsp_other").to_string()),
            });
        }
        if r.obj != Obj::Frontend {
            for (k, f) in [
                ("Avg queue time:", "qtime"),
                ("Avg connect time:", "ctime"),
                ("Avg response time:", "rtime"),
                ("Avg total time:", "ttime"),
            ] {
                total_tip.push((k, format!("{} ms", n(f))));
            }
            total_tip.push(("Connection attempts:", n("connect").to_string()));
            total_tip.push(("Connection reuses:", n("reuse").to_string()));
        } else {
            total_tip.push(("Intercepted requests:", n("intercepted").to_string()));
        }
        cells.push(tip(n("stot"), &total_tip));
        cells.push(opt("lbtot"));
        cells.push(match r.get("lastsess") {
            Some(V::N(s)) => human(*s),
            _ => String::new(),
        });
        // Bytes, denied, errors, warnings.
        for k in [
            "bin", "bout", "dreq", "dresp", "ereq", "econ", "eresp", "wretr", "wredis",
        ] {
            cells.push(opt(k));
        }
        // Server.
        let status = match r.obj {
            Obj::Frontend => opt("status"),
            _ => format!("{} {}", human(n("lastchg")), esc(&opt("status"))),
        };
        cells.push(status);
        let last_chk = match r.get("check_status") {
            Some(s) => {
                let mut t = esc(&s.text());
                if let Some(c) = r.get("check_code") {
                    let _ = write!(t, "/{}", c.text());
                }
                if let Some(d) = r.get("check_duration") {
                    let _ = write!(t, " in {}ms", d.text());
                }
                let info = r.text("last_chk");
                if info.is_empty() {
                    t
                } else {
                    tip(t, &[("Reason:", esc(&info))])
                }
            }
            None => String::new(),
        };
        cells.push(last_chk);
        // HAProxy writes the weight in force over the operator's.
        cells.push(match (r.get("weight"), r.get("uweight")) {
            (Some(w), Some(u)) => format!("{}/{}", w.text(), u.text()),
            _ => String::new(),
        });
        for k in ["act", "bck"] {
            let v = opt(k);
            cells.push(match (r.obj, v.as_str()) {
                (Obj::Server, "1") => "Y".into(),
                (Obj::Server, _) => "-".into(),
                _ => v,
            });
        }
        cells.push(opt("chkfail"));
        cells.push(opt("chkdown"));
        cells.push(match r.get("downtime") {
            Some(V::N(s)) => human(*s),
            _ => String::new(),
        });
        cells.push(match r.get("throttle") {
            Some(t) => format!("{} %", t.text()),
            None => String::new(),
        });
        // ringlb's latencies (request head to response end).
        cells.extend(self.latency(st, r));
        for c in cells {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>\n");
    }

    /// p50, p99 and p99.9 of the backend's or the server's request times.
    fn latency(&self, st: &Stats, r: &Row) -> [String; 3] {
        let h = match (r.obj, r.backend, r.server) {
            (Obj::Backend, Some(b), _) => {
                st.g.stats
                    .latency
                    .get(b)
                    .and_then(Option::as_ref)
                    .map(|l| &l.total)
            }
            (Obj::Server, Some(b), Some(s)) => {
                st.g.stats
                    .server_latency
                    .get(b)
                    .and_then(|v| v.get(s))
                    .and_then(Option::as_ref)
            }
            _ => None,
        };
        match h.filter(|h| !h.is_empty()) {
            Some(h) => [0.5, 0.99, 0.999].map(|q| ms(h.value_at_quantile(q))),
            None => [String::new(), String::new(), String::new()],
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn forms_and_times_read_as_haproxy_writes_them() {
        assert_eq!(super::human(5), "5s");
        assert_eq!(super::human(192), "3m12s");
        assert_eq!(super::human(7500), "2h5m");
        assert_eq!(super::human(-1), "-");
    }
}
