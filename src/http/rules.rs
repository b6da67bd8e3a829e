//! HTTP rules on the data path: a list of `http-request`, `http-response` or
//! `http-after-response` rules applied, in order, to a head being rewritten in place.
//! Each rule sees what the rules before it did (as in HAProxy); a rule that answers
//! (`deny`, `return`, `redirect`, a rate limit) writes its reply into `answer` and
//! ends the list. Expressions evaluate in this shard's scratch buffers: nothing is
//! allocated per request for header rules with literal or `%[src]`-like values.

use std::cell::RefCell;
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
    /// Close the connection without an answer (`reject`; `silent-drop` resets it).
    Close { silent: bool },
    /// `tarpit`: hold the client, then send the answer in `answer`.
    Tarpit(u16),
    /// An admin page (stats, metrics).
    Service(Service),
}

pub use crate::rules::{with_work, Work};

impl Site<'_> {
    /// The evaluation context over a head (`dir` says which one it is).
    pub fn ctx<'a>(&'a self, txn: &'a Txn, head: Option<&'a [u8]>, dir: Dir) -> Ctx<'a> {
        let mut c = Ctx::new(self.src, self.dst, txn);
        c.dir = dir;
        match dir {
            Dir::Req => c.req = head.map(Head::new),
            Dir::Res => c.res = head.map(Head::new),
        }
        c.cfg = Some(&self.shard.config);
        c.shard = Some(self.shard);
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
            let ctx = site.ctx(txn, Some(head), dir);
            r.write(&ctx, &mut w.s, answer);
            return Some(if matches!(action, HttpAction::Tarpit(_)) {
                Verdict::Tarpit(r.status)
            } else {
                Verdict::Answer(r.status)
            });
        }
        HttpAction::Redirect(r) => {
            answer.clear();
            let ctx = site.ctx(txn, Some(head), dir);
            r.write(&ctx, &mut w.s, answer);
            return Some(Verdict::Answer(r.code));
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
                let k = {
                    let ctx = site.ctx(txn, Some(head), dir);
                    let kt = site.shard.config.tables.get(*table as usize).map(|t| t.key);
                    match (key.eval(&ctx, &mut w.s), kt) {
                        (Some(v), Some(kt)) => crate::rules::table_key(kt, &v, &w.s.cur),
                        _ => None,
                    }
                };
                if let Some(k) = k {
                    let e = crate::rules::Tracked {
                        table: *table,
                        key: k,
                    };
                    txn.track[c] = Some(e);
                    site.shard
                        .cluster
                        .sc_track(e, crate::tables::TrackFrom::Http);
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

/// HAProxy's `exp_replace`: the replacement `rep` with `\N` taken from the match.
fn expand(rep: &[u8], caps: &regex::bytes::Captures<'_>, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < rep.len() {
        let c = rep[i];
        if c == b'\\' && i + 1 < rep.len() {
            let n = rep[i + 1];
            if n.is_ascii_digit() {
                if let Some(g) = caps.get(usize::from(n - b'0')) {
                    out.extend_from_slice(g.as_bytes());
                }
                i += 2;
                continue;
            }
            match n {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
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
        expand(&w.val, &caps, &mut w.s.tmp);
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
                    expand(&w.val, &caps, &mut out);
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

/// Adds `connection: close` (or `keep-alive` for HTTP/1.0) to a local answer.
pub fn connection_header(answer: &mut Vec<u8>, close: bool, minor: u8) {
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

/// A request or response that ends in a local answer instead of going on.
#[derive(Debug)]
pub enum Early {
    /// The answer (after-response rules applied) is in the head buffer.
    Answer(u16),
    Close {
        silent: bool,
    },
    Tarpit(u16),
    Service(Service),
}

/// Where a request goes once the request rules ran.
#[derive(Debug, Clone, Copy)]
pub struct Routed {
    pub backend: Option<usize>,
    /// A `use-server` rule picked this server (if it can take the request).
    pub server: Option<u32>,
}

thread_local! {
    /// Local answers are built here (the request head they may quote stays intact).
    static ANSWER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// Everything that happens to a parsed request before it is sent: header captures,
/// the frontend's `tcp-request content` and `http-request` rules, `use_backend`, the
/// backend's rules, `use-server`, and X-Forwarded-For. `out` holds the rewritten head;
/// on `Err(Early::Answer)` it holds the answer instead.
#[allow(clippy::too_many_arguments)]
pub fn request_phase(
    shard: &Shard,
    frontend: usize,
    peer: SocketAddr,
    local: SocketAddr,
    txn: &mut Txn,
    out: &mut Vec<u8>,
    r: &super::head::Request<'_>,
) -> Result<Routed, Early> {
    let cfg = &shard.config;
    let fe = &cfg.frontends[frontend];
    txn.begin_request(cfg, frontend);
    txn.names[0] = r.names;
    {
        let line = Head::new(out).first_line();
        txn.reqline.clear();
        txn.reqline.extend_from_slice(line);
    }
    capture_headers(&fe.captures.request, &mut txn.req_caps, out);
    let mut site = Site {
        shard,
        frontend,
        backend: None,
        server: None,
        src: peer,
        dst: local,
    };
    let client = peer.ip();
    let rate = |limiter: usize| {
        shard
            .cluster
            .rate_exceeded(fe, frontend, limiter, r.headers, client)
    };
    let minor = r.minor_version;
    // Frontend: tcp-request content, then http-request rules. The connection's and
    // tcp-request content's tracked counters count this request (http-request
    // track-sc counts its own when it tracks).
    tcp_content(&fe.tcp_content, &site, txn, out)?;
    for e in txn.sess_track.iter().chain(txn.track.iter()).flatten() {
        shard
            .cluster
            .sc_event(*e, crate::tables::counters::Event::Request);
    }
    let v = ANSWER.with(|a| {
        let mut a = a.borrow_mut();
        let v = run(&fe.http_request, &site, txn, out, Dir::Req, &mut a, rate);
        if matches!(v, Verdict::Answer(_) | Verdict::Tarpit(_)) {
            std::mem::swap(out, &mut a);
        }
        v
    });
    early(v, &site, txn, out, minor)?;
    // use_backend.
    let backend = with_work(|w| {
        let ctx = site.ctx(txn, Some(out), Dir::Req);
        super::route::route(fe, cfg, &ctx, &mut w.s, &mut w.val)
    });
    site.backend = backend;
    let mut server = None;
    if let Some(b) = backend.filter(|&b| Some(b) != fe.listen_backend) {
        let be = &cfg.backends[b];
        tcp_content(&be.tcp_content, &site, txn, out)?;
        let v = ANSWER.with(|a| {
            let mut a = a.borrow_mut();
            let v = run(&be.http_request, &site, txn, out, Dir::Req, &mut a, |_| {
                false
            });
            if matches!(v, Verdict::Answer(_) | Verdict::Tarpit(_)) {
                std::mem::swap(out, &mut a);
            }
            v
        });
        early(v, &site, txn, out, minor)?;
    }
    if let Some(b) = backend {
        let be = &cfg.backends[b];
        if !be.use_server.is_empty() {
            server = with_work(|w| {
                let ctx = site.ctx(txn, Some(out), Dir::Req);
                be.use_server
                    .iter()
                    .find(|u| {
                        u.cond.holds(&ctx, &mut w.s)
                            && shard.upstreams.backends[b].servers[u.server as usize].usable()
                    })
                    .map(|u| u.server)
            });
        }
    }
    forward_for(shard, fe, backend, client, out);
    Ok(Routed { backend, server })
}

/// The end of a request: its tracked counters see its status and bytes, and the
/// request's own trackers stop (the connection's stay).
pub fn request_done(shard: &Shard, txn: &mut Txn, status: u16, bytes_in: u64, bytes_out: u64) {
    use crate::tables::counters::Event;
    for e in txn.sess_track.iter().flatten() {
        if status != 0 {
            shard.cluster.sc_event(*e, Event::Status(status));
        }
        shard.cluster.sc_event(
            *e,
            Event::Bytes {
                from_client: bytes_in,
                to_client: bytes_out,
            },
        );
    }
    for e in txn.track.iter_mut() {
        if let Some(t) = e.take() {
            if status != 0 {
                shard.cluster.sc_event(t, Event::Status(status));
            }
            shard.cluster.sc_event(
                t,
                Event::Bytes {
                    from_client: bytes_in,
                    to_client: bytes_out,
                },
            );
            shard.cluster.sc_event(t, Event::Stop);
        }
    }
}

/// `tcp-request content` rules of an HTTP proxy, on the parsed request.
fn tcp_content(
    rules: &[crate::config::TcpRule],
    site: &Site<'_>,
    txn: &mut Txn,
    out: &[u8],
) -> Result<(), Early> {
    if rules.is_empty() {
        return Ok(());
    }
    let tsite = crate::tcp_rules::Site {
        shard: site.shard,
        frontend: site.frontend,
        backend: site.backend,
        src: site.src,
        dst: site.dst,
    };
    match crate::tcp_rules::run(rules, 0, &tsite, txn, Some(out), None, true, false) {
        crate::tcp_rules::Verdict::Reject => Err(Early::Close { silent: false }),
        crate::tcp_rules::Verdict::SilentDrop => Err(Early::Close { silent: true }),
        _ => Ok(()),
    }
}

/// Turns a request rule list's verdict into an early end (answers get the
/// after-response rules and their connection header).
fn early(
    v: Verdict,
    site: &Site<'_>,
    txn: &mut Txn,
    out: &mut Vec<u8>,
    minor: u8,
) -> Result<(), Early> {
    match v {
        Verdict::Continue => Ok(()),
        Verdict::Close { silent } => Err(Early::Close { silent }),
        Verdict::Service(s) => Err(Early::Service(s)),
        Verdict::Answer(st) | Verdict::Tarpit(st) => {
            after_local(site, txn, out, st);
            let _ = minor;
            Err(if matches!(v, Verdict::Tarpit(_)) {
                Early::Tarpit(st)
            } else {
                Early::Answer(st)
            })
        }
    }
}

/// `http-after-response` rules (backend's, then frontend's) on a complete local
/// answer in `answer` (head and body).
pub fn after_local(site: &Site<'_>, txn: &mut Txn, answer: &mut Vec<u8>, status: u16) {
    let cfg = &site.shard.config;
    let fe = &cfg.frontends[site.frontend];
    let be = site
        .backend
        .filter(|&b| Some(b) != fe.listen_backend)
        .map(|b| &cfg.backends[b]);
    if fe.http_after_response.is_empty() && be.is_none_or(|b| b.http_after_response.is_empty()) {
        return;
    }
    let Some(end) = answer
        .windows(4)
        .position(|x| x == b"\r\n\r\n")
        .map(|e| e + 4)
    else {
        return;
    };
    txn.status = Some(status);
    txn.names[1] = crate::rules::head::names_of(&answer[..end]);
    let mut body = answer.split_off(end);
    let mut scratch = Vec::new();
    if let Some(be) = be {
        let _ = run(
            &be.http_after_response,
            site,
            txn,
            answer,
            Dir::Res,
            &mut scratch,
            |_| false,
        );
    }
    let _ = run(
        &fe.http_after_response,
        site,
        txn,
        answer,
        Dir::Res,
        &mut scratch,
        |_| false,
    );
    answer.append(&mut body);
}

/// The response head just parsed (in `out`): header captures, `http-response` rules
/// (backend's, then frontend's) and `http-after-response` rules. On `Err(Answer)` the
/// answer that replaces the response is in `out`.
#[allow(clippy::too_many_arguments)]
pub fn response_phase(
    shard: &Shard,
    frontend: usize,
    backend: Option<usize>,
    server: Option<u32>,
    peer: SocketAddr,
    local: SocketAddr,
    txn: &mut Txn,
    out: &mut Vec<u8>,
) -> Result<(), Early> {
    let cfg = &shard.config;
    let fe = &cfg.frontends[frontend];
    let be = backend.map(|b| &cfg.backends[b]);
    let own = backend.is_some() && backend == fe.listen_backend;
    capture_headers(&fe.captures.response, &mut txn.res_caps, out);
    let site = Site {
        shard,
        frontend,
        backend,
        server,
        src: peer,
        dst: local,
    };
    let lists = [
        be.map(|b| &b.http_response[..]).unwrap_or(&[]),
        if own { &[][..] } else { &fe.http_response[..] },
    ];
    for rules in lists {
        let v = ANSWER.with(|a| {
            let mut a = a.borrow_mut();
            let v = run(rules, &site, txn, out, Dir::Res, &mut a, |_| false);
            if matches!(v, Verdict::Answer(_) | Verdict::Tarpit(_)) {
                std::mem::swap(out, &mut a);
            }
            v
        });
        match v {
            Verdict::Continue => {}
            Verdict::Close { silent } => return Err(Early::Close { silent }),
            Verdict::Service(s) => return Err(Early::Service(s)),
            Verdict::Answer(st) | Verdict::Tarpit(st) => {
                after_local(&site, txn, out, st);
                return Err(Early::Answer(st));
            }
        }
    }
    let mut scratch = Vec::new();
    let after = [
        be.map(|b| &b.http_after_response[..]).unwrap_or(&[]),
        if own {
            &[][..]
        } else {
            &fe.http_after_response[..]
        },
    ];
    for rules in after {
        let _ = run(rules, &site, txn, out, Dir::Res, &mut scratch, |_| false);
    }
    Ok(())
}

/// `capture request|response header NAME len N`: the last occurrence, cut to N.
fn capture_headers(
    slots: &[crate::config::CaptureSlot],
    caps: &mut [crate::rules::Capture],
    head: &[u8],
) {
    for (slot, cap) in slots.iter().zip(caps.iter_mut()) {
        let Some(name) = &slot.header else { continue };
        if let Some(v) = Head::new(head).named(name.as_bytes()).last() {
            cap.set = true;
            cap.bytes.clear();
            cap.bytes
                .extend_from_slice(&v.value[..v.value.len().min(slot.len)]);
        }
    }
}

/// `option forwardfor` (frontend's, else the backend's), after the rules as HAProxy
/// adds it: `if-none` looks at the head as the rules left it.
fn forward_for(
    shard: &Shard,
    fe: &crate::config::Frontend,
    backend: Option<usize>,
    client: std::net::IpAddr,
    out: &mut Vec<u8>,
) {
    let ff = fe
        .forward_for
        .as_ref()
        .or_else(|| backend.and_then(|b| shard.config.backends[b].forward_for.as_ref()));
    let Some(ff) = ff.filter(|f| f.applies_to(client)) else {
        return;
    };
    if ff.if_none && Head::new(out).named(ff.header.as_bytes()).next().is_some() {
        return;
    }
    with_work(|w| {
        w.val.clear();
        crate::rules::sample::write_ip(&mut w.val, client);
        edit::add_header(out, &ff.header, &w.val);
    });
}
