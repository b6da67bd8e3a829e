//! HTTP rules on the data path: a list of `http-request`, `http-response` or
//! `http-after-response` rules applied, in order, to a head being rewritten in place.
//! Each rule sees what the rules before it did (as in HAProxy); a rule that answers
//! (`deny`, `return`, `redirect`, a rate limit) writes its reply into `answer` and
//! ends the list. Expressions evaluate in this shard's scratch buffers: nothing is
//! allocated per request for header rules with literal or `%[src]`-like values.

use std::net::SocketAddr;

use super::edit::{self, Part};
use crate::config::{HttpAction, HttpRule, Service};
use crate::rules::action::VarTarget;
use crate::rules::parse::detach;
use crate::rules::{Ctx, Dir, Head, Smp, Txn};
use crate::shard::Shard;

/// Where a request is: what rules may read besides its head.
pub struct Site<'s> {
    pub shard: &'s Shard,
    pub frontend: usize,
    pub backend: Option<usize>,
    pub server: Option<u32>,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// How a rule list ended.
#[derive(Debug)]
pub enum Verdict {
    /// Every rule ran (or `allow` stopped the list): go on.
    Continue,
    /// A local answer is in `answer`: send it (status for the log).
    Answer(u16),
    /// The same for a `return` or a `redirect`: HAProxy's intercepted requests,
    /// logged `LR` rather than a denial's `PR`.
    Local(u16),
    /// Close the connection without an answer (`reject`; `silent-drop` resets it).
    Close { silent: bool },
    /// `tarpit`: hold the client, then send the answer in `answer`.
    Tarpit(u16),
    /// An admin page (stats, metrics).
    Service(Service),
}

pub use crate::rules::{with_work, Work};

impl Site<'_> {
    /// The custom error response for `status` (`errorfile`, `http-error`...): the
    /// backend's once one was chosen, else the frontend's (HAProxy's
    /// `http_error_message`).
    pub fn error_page(&self, status: u16) -> Option<&std::sync::Arc<crate::config::Reply>> {
        let cfg = &self.shard.config;
        self.backend
            .and_then(|b| cfg.backends[b].error_pages.get(status))
            .or_else(|| cfg.frontends[self.frontend].error_pages.get(status))
    }

    /// The evaluation context over a head (`dir` says which one it is).
    pub fn ctx<'a>(&'a self, txn: &'a Txn, head: Option<&'a [u8]>, dir: Dir) -> Ctx<'a> {
        let mut c = Ctx::new(self.src, self.dst, txn);
        c.dir = dir;
        match dir {
            Dir::Req => c.req = head.map(Head::new),
            Dir::Res => c.res = head.map(Head::new),
        }
        c.world = Some(self.shard);
        c.frontend = self.frontend;
        c.backend = self.backend;
        c.server = self.server;
        c
    }
}

/// Applies `rules` to `head` (the request head for `Dir::Req`, the response head for
/// `Dir::Res`). `rate(N)`: counts the request against rate limit N, true when over.
pub fn run(
    rules: &[HttpRule],
    site: &Site<'_>,
    txn: &mut Txn,
    head: &mut Vec<u8>,
    dir: Dir,
    answer: &mut Vec<u8>,
    mut rate: impl FnMut(usize) -> bool,
) -> Verdict {
    if rules.is_empty() {
        return Verdict::Continue;
    }
    with_work(|w| {
        for rule in rules {
            let hit = {
                let ctx = site.ctx(txn, Some(head), dir);
                rule.cond.holds(&ctx, &mut w.s)
            };
            if !hit {
                continue;
            }
            match apply(&rule.action, site, txn, head, dir, answer, w, &mut rate) {
                Some(Verdict::Continue) => return Verdict::Continue,
                Some(v) => return v,
                None => {}
            }
        }
        Verdict::Continue
    })
}

/// Evaluates a log-format value into `w.val`.
fn value(
    fmt: &crate::rules::LogFormat,
    site: &Site<'_>,
    txn: &Txn,
    head: &[u8],
    dir: Dir,
    w: &mut Work,
) {
    w.val.clear();
    if let Some(c) = &fmt.constant {
        w.val.extend_from_slice(c);
        return;
    }
    let ctx = site.ctx(txn, Some(head), dir);
    fmt.eval(&ctx, None, &mut w.s, &mut w.val);
}

/// One action; `Some(verdict)` ends the list (`Continue` for `allow`).
#[allow(clippy::too_many_arguments)]
fn apply(
    action: &HttpAction,
    site: &Site<'_>,
    txn: &mut Txn,
    head: &mut Vec<u8>,
    dir: Dir,
    answer: &mut Vec<u8>,
    w: &mut Work,
    rate: &mut impl FnMut(usize) -> bool,
) -> Option<Verdict> {
    match action {
        HttpAction::SetHeader(name, fmt) => {
            value(fmt, site, txn, head, dir, w);
            let bit = crate::rules::head::name_bit(name.as_bytes());
            if txn.names[dir as usize] & bit != 0 {
                edit::del_header(head, name);
            }
            edit::add_header(head, name, &w.val);
            txn.names[dir as usize] |= bit;
        }
        HttpAction::AddHeader(name, fmt) => {
            value(fmt, site, txn, head, dir, w);
            edit::add_header(head, name, &w.val);
            txn.names[dir as usize] |= crate::rules::head::name_bit(name.as_bytes());
        }
        HttpAction::DelHeader(name, m, re) => {
            let absent = *m == crate::rules::pattern::Method::Str
                && txn.names[dir as usize] & crate::rules::head::name_bit(name.as_bytes()) == 0;
            if !absent {
                edit::del_header_by(head, name, *m, re.as_ref());
            }
        }
        HttpAction::ReplaceHeader {
            name,
            re,
            fmt,
            each_value,
        } => {
            value(fmt, site, txn, head, dir, w);
            replace_header(head, name, re, *each_value, w);
        }
        HttpAction::SetPath(f)
        | HttpAction::SetPathQ(f)
        | HttpAction::SetUri(f)
        | HttpAction::SetQuery(f)
        | HttpAction::SetMethod(f) => {
            value(f, site, txn, head, dir, w);
            let part = match action {
                HttpAction::SetPath(_) => Part::Path,
                HttpAction::SetPathQ(_) => Part::PathQ,
                HttpAction::SetUri(_) => Part::Uri,
                HttpAction::SetQuery(_) => Part::Query,
                _ => Part::Method,
            };
            edit::set_part(head, part, &w.val);
        }
        HttpAction::ReplacePath {
            re,
            fmt,
            with_query,
        } => {
            value(fmt, site, txn, head, dir, w);
            let part = if *with_query { Part::PathQ } else { Part::Path };
            replace_part(head, part, re, w);
        }
        HttpAction::ReplaceUri(re, fmt) => {
            value(fmt, site, txn, head, dir, w);
            replace_part(head, Part::Uri, re, w);
        }
        HttpAction::SetVar(target, expr) => {
            let smp = {
                let ctx = site.ctx(txn, Some(head), dir);
                expr.eval(&ctx, &mut w.s).map(|v| detach(v, &mut w.s))
            };
            if let Some(v) = smp {
                store_var(txn, target, &v, &w.s.cur);
            }
        }
        HttpAction::SetSrc(expr) => {
            let ip = {
                let ctx = site.ctx(txn, Some(head), dir);
                let port = ctx.src.port();
                expr.eval(&ctx, &mut w.s)
                    .and_then(|v| v.as_ip(&w.s.cur))
                    .map(|ip| (ip, port))
            };
            if let Some((ip, port)) = ip {
                txn.src = Some(std::net::SocketAddr::new(ip, port));
            }
        }
        HttpAction::SetVarFmt(target, fmt) => {
            value(fmt, site, txn, head, dir, w);
            let v = Smp::Str(crate::rules::Data::Buf);
            store_var(txn, target, &v, &w.val);
        }
        HttpAction::UnsetVar(target) => match target {
            VarTarget::Slot(id) => {
                if let Some(s) = txn.vars.slot(*id) {
                    s.unset();
                }
            }
            VarTarget::Proc(n) => crate::rules::vars::proc_unset(n),
        },
        HttpAction::Allow => return Some(Verdict::Continue),
        HttpAction::Reject { silent } => return Some(Verdict::Close { silent: *silent }),
        HttpAction::Deny(r) | HttpAction::Tarpit(r) | HttpAction::Return(r) => {
            answer.clear();
            // HAProxy's default page for the status: the proxy's own, if it has one.
            let r = match r.error_page {
                true => site.error_page(r.status).unwrap_or(r),
                false => r,
            };
            let ctx = site.ctx(txn, Some(head), dir);
            r.write(&ctx, &mut w.s, answer);
            return Some(match action {
                HttpAction::Tarpit(_) => Verdict::Tarpit(r.status),
                HttpAction::Return(_) => Verdict::Local(r.status),
                _ => Verdict::Answer(r.status),
            });
        }
        HttpAction::Auth { realm, page } => {
            answer.clear();
            let page = site.error_page(401).unwrap_or(page);
            let ctx = site.ctx(txn, Some(head), dir);
            page.write(&ctx, &mut w.s, answer);
            // HAProxy adds the challenge after the page's own headers.
            if let Some(end) = answer.windows(4).position(|x| x == b"\r\n\r\n") {
                w.val.clear();
                w.val
                    .extend_from_slice(b"\r\nwww-authenticate: Basic realm=\"");
                w.val.extend_from_slice(realm.as_bytes());
                w.val.push(b'"');
                edit::splice(answer, end..end, &w.val);
            }
            return Some(Verdict::Answer(401));
        }
        HttpAction::Redirect(r) => {
            answer.clear();
            let ctx = site.ctx(txn, Some(head), dir);
            r.write(&ctx, &mut w.s, answer);
            return Some(Verdict::Local(r.code));
        }
        HttpAction::Capture { expr, slot, len } => {
            w.val.clear();
            let got = {
                let ctx = site.ctx(txn, Some(head), dir);
                expr.write_str(&ctx, &mut w.s, &mut w.val)
            };
            let caps = match dir {
                Dir::Req => &mut txn.req_caps,
                Dir::Res => &mut txn.res_caps,
            };
            if let (true, Some(c)) = (got, caps.get_mut(*slot)) {
                c.set = true;
                c.bytes.clear();
                c.bytes.extend_from_slice(&w.val[..w.val.len().min(*len)]);
            }
        }
        HttpAction::TrackSc {
            counter,
            key,
            table,
        } => {
            let c = *counter as usize;
            if txn.track[c].is_none() && txn.sess_track[c].is_none() {
                let e = {
                    let ctx = site.ctx(txn, Some(head), dir);
                    key.eval(&ctx, &mut w.s).and_then(|v| {
                        site.shard.cluster.sc_track(
                            &site.shard.config,
                            *table,
                            &v,
                            &w.s.cur,
                            crate::tables::TrackFrom::Http,
                        )
                    })
                };
                if e.is_some() {
                    txn.track[c] = e;
                }
            }
        }
        HttpAction::ScIncGpc { counter, gpc } => {
            let c = *counter as usize;
            if let Some(e) = txn.track[c].or(txn.sess_track[c]) {
                let d = if *gpc == 0 {
                    crate::rules::stick::DataType::Gpc0
                } else {
                    crate::rules::stick::DataType::Gpc1
                };
                let _ = site
                    .shard
                    .cluster
                    .sc_op(e, crate::rules::stick::ScOp::Inc(d));
            }
        }
        HttpAction::ScSetGpt0 { counter, expr } => {
            let c = *counter as usize;
            if let Some(e) = txn.track[c].or(txn.sess_track[c]) {
                let v = {
                    let ctx = site.ctx(txn, Some(head), dir);
                    expr.eval(&ctx, &mut w.s).and_then(|v| v.as_int(&w.s.cur))
                };
                if let Some(v) = v {
                    site.shard.cluster.sc_set_gpt0(e, v);
                }
            }
        }
        HttpAction::SetLogLevel(l) => txn.log_level = Some(*l),
        HttpAction::SetStatus(code, reason) => {
            edit::set_status(head, *code, reason.as_deref());
            txn.status = Some(*code);
        }
        HttpAction::Service(svc) => return Some(Verdict::Service(svc.clone())),
        HttpAction::RateLimit {
            limiter,
            status,
            bytes,
        } => {
            if rate(*limiter) {
                answer.clear();
                answer.extend_from_slice(bytes);
                return Some(Verdict::Answer(*status));
            }
        }
        HttpAction::Nothing => {}
    }
    None
}

/// Stores a sample in a variable.
fn store_var(txn: &mut Txn, target: &VarTarget, v: &Smp<'_>, bytes: &[u8]) {
    let b = v.bytes(bytes).unwrap_or(&[]);
    match target {
        VarTarget::Slot(id) => {
            if let Some(s) = txn.vars.slot(*id) {
                s.set(v, b);
            }
        }
        VarTarget::Proc(n) => crate::rules::vars::proc_set(n, v, b),
    }
}

/// `replace-path`, `replace-uri`: when the regex matches, the part becomes the
/// expanded replacement (`w.val`).
fn replace_part(head: &mut Vec<u8>, part: Part, re: &regex::bytes::Regex, w: &mut Work) {
    let r = edit::part_range(head, part);
    let new = {
        let cur = &head[r.clone()];
        let Some(caps) = re.captures(cur) else { return };
        w.s.tmp.clear();
        crate::rules::expand(&w.val, &caps, &mut w.s.tmp);
        std::mem::take(&mut w.s.tmp)
    };
    edit::splice(head, r, &new);
    w.s.tmp = new;
}

/// `replace-header` / `replace-value`: each matching value (or each comma-separated
/// element) becomes the expanded replacement.
fn replace_header(
    head: &mut Vec<u8>,
    name: &str,
    re: &regex::bytes::Regex,
    each_value: bool,
    w: &mut Work,
) {
    let mut out = std::mem::take(&mut w.s.tmp);
    out.clear();
    let h = Head::new(head);
    out.extend_from_slice(&head[..h.first_line_len()]);
    let mut changed = false;
    for f in h.fields() {
        if !f.name.eq_ignore_ascii_case(name.as_bytes()) {
            out.extend_from_slice(&head[f.start..f.end]);
            continue;
        }
        out.extend_from_slice(f.name);
        out.extend_from_slice(b": ");
        let pieces: &mut dyn Iterator<Item = &[u8]> = if each_value {
            &mut f.value.split(|&c| c == b',').map(crate::rules::head::trim)
        } else {
            &mut std::iter::once(f.value)
        };
        for (i, v) in pieces.enumerate() {
            if i > 0 {
                // HAProxy joins the values it rewrote with a bare comma.
                out.push(b',');
            }
            match re.captures(v) {
                Some(caps) => {
                    crate::rules::expand(&w.val, &caps, &mut out);
                    changed = true;
                }
                None => out.extend_from_slice(v),
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if changed {
        std::mem::swap(head, &mut out);
    }
    w.s.tmp = out;
}

/// Adds `connection: close` (or `keep-alive` for HTTP/1.0) to a local answer (one
/// without a length, an errorfile's, carries its own and always closes).
pub fn connection_header(answer: &mut Vec<u8>, close: bool, minor: u8) {
    if !crate::config::error_pages::framed(answer) {
        return;
    }
    let Some(end) = answer.windows(4).position(|x| x == b"\r\n\r\n") else {
        return;
    };
    let h: &[u8] = if close {
        b"\r\nconnection: close"
    } else if minor == 0 {
        b"\r\nconnection: keep-alive"
    } else {
        return;
    };
    edit::splice(answer, end..end, h);
}
