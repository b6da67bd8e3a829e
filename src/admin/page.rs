//! The HTML stats page (`stats uri`): one table per proxy with its servers, states,
//! weights, sessions, bytes and check results, from the merged figures.

use std::fmt::Write as _;

use super::{csv, Core};
use crate::control::AdminState;
use crate::stats::Totals;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(core: &Core, refresh: Option<u64>) -> String {
    let g = core.gather();
    let cfg = &core.cfg();
    let health = core.health().lock().map(|h| h.clone()).unwrap_or_default();
    let op = core.operator.lock().map(|o| o.clone()).unwrap_or_default();
    let mut out = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Statistics Report for ringlb</title>\n");
    if let Some(r) = refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{r}\">");
    }
    out.push_str("<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #999;padding:2px 6px;text-align:right}th{background:#ddd}td.n{text-align:left}.UP{background:#c0ffc0}.DOWN{background:#ffc0c0}.MAINT{background:#c0c0ff}.DRAIN{background:#ffffa0}</style></head><body>\n");
    let _ = writeln!(
        out,
        "<h1>ringlb statistics</h1><p>pid {} &middot; {} shards &middot; uptime {} s</p>",
        std::process::id(),
        cfg.runtime.shards,
        core.started.elapsed().as_secs()
    );
    let head = "<tr><th>Name</th><th>Status</th><th>Weight</th><th>Cur</th><th>Max</th><th>Total</th><th>Bytes in</th><th>Bytes out</th><th>2xx</th><th>4xx</th><th>5xx</th><th>Conn err</th><th>Resp err</th><th>Check</th></tr>";
    let row = |out: &mut String,
               name: &str,
               status: &str,
               weight: String,
               t: &Totals,
               check: &str| {
        let class = status.split(' ').next().unwrap_or("");
        let _ = writeln!(
            out,
            "<tr><td class=\"n\">{}</td><td class=\"{class}\">{}</td><td>{weight}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name), esc(status), t.scur, t.smax, t.stot, t.bin, t.bout, t.hrsp[1], t.hrsp[3], t.hrsp[4], t.econ, t.eresp, esc(check)
        );
    };
    for (fi, f) in cfg.frontends.iter().enumerate() {
        let _ = writeln!(out, "<h2>frontend {}</h2><table>{head}", esc(&f.name));
        row(
            &mut out,
            "FRONTEND",
            "OPEN",
            String::new(),
            &g.stats.frontends[fi],
            "",
        );
        out.push_str("</table>\n");
    }
    for (bi, b) in cfg.backends.iter().enumerate() {
        let _ = writeln!(out, "<h2>backend {}</h2><table>{head}", esc(&b.name));
        let mut usable = 0;
        for (si, s) in b.servers.iter().enumerate() {
            let h = health.get(bi).and_then(|v| v.get(si));
            let o = op.get(bi).and_then(|v| v.get(si));
            let admin = o.map_or(AdminState::Ready, |o| o.admin);
            let w = o.map_or(s.weight, |o| o.weight);
            let status = csv::server_status(admin, w, h);
            if status.starts_with("UP") || status == "no check" {
                usable += 1;
            }
            let check = h
                .filter(|h| h.checked)
                .map(|h| {
                    format!(
                        "{} {}",
                        h.status,
                        h.code.map(|c| c.to_string()).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let name = if s.backup {
                format!("{} (backup)", s.name)
            } else {
                s.name.clone()
            };
            row(
                &mut out,
                &name,
                &status,
                w.to_string(),
                &g.stats.servers[bi][si],
                check.trim(),
            );
        }
        let status = if usable > 0 { "UP" } else { "DOWN" };
        row(
            &mut out,
            "BACKEND",
            status,
            String::new(),
            &g.stats.backends[bi],
            "",
        );
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}
