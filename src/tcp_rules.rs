//! TCP rules on the data path: `tcp-request connection` (at accept, before a PROXY
//! header), `tcp-request session` (after it), `tcp-request content` (on the bytes the
//! client sent, waiting up to `tcp-request inspect-delay` for the ones a condition
//! needs) and `use_backend` in `mode tcp` (SNI routing on a buffered ClientHello; the
//! bytes then go to the server untouched).
//!
//! A condition that cannot be decided yet (`req.ssl_sni` on half a ClientHello) makes
//! the list wait at that rule: the rules before it already acted and do not run
//! again, as in HAProxy. Reads while waiting are cancelable, so the bytes a read
//! completes as the delay ends are kept, not lost with a dropped operation.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::time::Instant;

use crate::config::{RouteTarget, TcpAction, TcpRule};
use crate::rules::action::VarTarget;
use crate::rules::parse::detach;
use crate::rules::with_work;
use crate::rules::{Ctx, Dir, Head, Smp, Tracked, Tri, Txn};
use crate::shard::Shard;

/// How a rule list ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every rule ran, or `accept` stopped the list.
    Go,
    Reject,
    /// Close without a FIN-ACK exchange the client can rely on (ringlb resets).
    SilentDrop,
    /// A condition needs more bytes: resume at this rule.
    Wait(usize),
}

/// Where a connection is, for TCP rules.
pub struct Site<'s> {
    pub shard: &'s Shard,
    pub frontend: usize,
    pub backend: Option<usize>,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl Site<'_> {
    fn ctx<'a>(
        &'a self,
        txn: &'a Txn,
        req: Option<&'a [u8]>,
        payload: Option<&'a [u8]>,
        last: bool,
    ) -> Ctx<'a> {
        let mut c = Ctx::new(self.src, self.dst, txn);
        c.dir = Dir::Req;
        c.req = req.map(Head::new);
        c.payload = payload;
        c.payload_final = last;
        c.world = Some(self.shard);
        c.frontend = self.frontend;
        c.backend = self.backend;
        c
    }
}

/// Runs `rules` from rule `from`. `sess`: tracked counters belong to the connection
/// (connection and session rules), not to the current request. `last`: no more bytes
/// will come, so conditions are decided on what is there.
#[allow(clippy::too_many_arguments)]
pub fn run(
    rules: &[TcpRule],
    from: usize,
    site: &Site<'_>,
    txn: &mut Txn,
    req: Option<&[u8]>,
    payload: Option<&[u8]>,
    last: bool,
    sess: bool,
) -> Verdict {
    if rules.len() <= from {
        return Verdict::Go;
    }
    with_work(|w| {
        for (i, rule) in rules.iter().enumerate().skip(from) {
            let tri = {
                let ctx = site.ctx(txn, req, payload, last);
                rule.cond.eval(&ctx, &mut w.s)
            };
            match tri {
                Tri::Fail => continue,
                Tri::Miss => return Verdict::Wait(i),
                Tri::Pass => {}
            }
            match &rule.action {
                TcpAction::Accept => return Verdict::Go,
                TcpAction::Reject => return Verdict::Reject,
                TcpAction::SilentDrop => return Verdict::SilentDrop,
                TcpAction::ExpectProxy | TcpAction::Nothing => {}
                TcpAction::TrackSc {
                    counter,
                    key,
                    table,
                } => {
                    let c = *counter as usize;
                    if txn.track[c].is_some() || txn.sess_track[c].is_some() {
                        continue;
                    }
                    let from = if sess {
                        crate::tables::TrackFrom::Connection
                    } else {
                        crate::tables::TrackFrom::Content
                    };
                    let e = {
                        let ctx = site.ctx(txn, req, payload, last);
                        key.eval(&ctx, &mut w.s).and_then(|v| {
                            site.shard.cluster.sc_track(
                                &site.shard.config,
                                *table,
                                &v,
                                &w.s.cur,
                                from,
                            )
                        })
                    };
                    if e.is_some() {
                        if sess {
                            txn.sess_track[c] = e;
                        } else {
                            txn.track[c] = e;
                        }
                    }
                }
                TcpAction::ScIncGpc { counter, gpc } => {
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
                TcpAction::ScSetGpt0 { counter, expr } => {
                    let c = *counter as usize;
                    if let Some(e) = txn.track[c].or(txn.sess_track[c]) {
                        let v = {
                            let ctx = site.ctx(txn, req, payload, last);
                            expr.eval(&ctx, &mut w.s).and_then(|v| v.as_int(&w.s.cur))
                        };
                        if let Some(v) = v {
                            site.shard.cluster.sc_set_gpt0(e, v);
                        }
                    }
                }
                TcpAction::SetVar(t, expr) => {
                    let v = {
                        let ctx = site.ctx(txn, req, payload, last);
                        expr.eval(&ctx, &mut w.s).map(|v| detach(v, &mut w.s))
                    };
                    if let Some(v) = v {
                        set_var(txn, t, &v, &w.s.cur);
                    }
                }
                TcpAction::SetVarFmt(t, fmt) => {
                    w.val.clear();
                    {
                        let ctx = site.ctx(txn, req, payload, last);
                        fmt.eval(&ctx, None, &mut w.s, &mut w.val);
                    }
                    set_var(txn, t, &Smp::Str(crate::rules::Data::Buf), &w.val);
                }
                TcpAction::UnsetVar(t) => match t {
                    VarTarget::Slot(id) => {
                        if let Some(s) = txn.vars.slot(*id) {
                            s.unset();
                        }
                    }
                    VarTarget::Proc(n) => crate::rules::vars::proc_unset(n),
                },
                TcpAction::Capture { expr, slot, len } => {
                    w.val.clear();
                    let got = {
                        let ctx = site.ctx(txn, req, payload, last);
                        expr.write_str(&ctx, &mut w.s, &mut w.val)
                    };
                    if let (true, Some(c)) = (got, txn.req_caps.get_mut(*slot)) {
                        c.set = true;
                        c.bytes.clear();
                        c.bytes.extend_from_slice(&w.val[..w.val.len().min(*len)]);
                    }
                }
                TcpAction::SetLogLevel(l) => txn.log_level = Some(*l),
            }
        }
        Verdict::Go
    })
}

fn set_var(txn: &mut Txn, t: &VarTarget, v: &Smp<'_>, cur: &[u8]) {
    let b = v.bytes(cur).unwrap_or(&[]);
    match t {
        VarTarget::Slot(id) => {
            if let Some(s) = txn.vars.slot(*id) {
                s.set(v, b);
            }
        }
        VarTarget::Proc(n) => crate::rules::vars::proc_set(n, v, b),
    }
}

/// Closes a connection the rules refused: `silent-drop` resets it (no FIN), as
/// HAProxy's does for the client's point of view.
pub fn drop_connection<S: crate::io::Stream>(stream: S, silent: bool) {
    if let Some(socket) = stream.socket().filter(|_| silent) {
        reset_on_close(socket);
    }
    drop(stream);
}

/// SO_LINGER 0: closing sends a reset instead of a FIN.
fn reset_on_close(stream: &impl std::os::fd::AsRawFd) {
    use std::os::fd::BorrowedFd;
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let _ = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO));
}

/// `mode tcp`: runs the frontend's content rules and `use_backend` rules on what the
/// client sends, waiting up to the inspect delay. Returns the stream, the bytes read
/// (to send to the server first) and the backend; `None`: the connection was refused
/// or closed (and is dropped).
pub async fn inspect<C: crate::io::Stream>(
    shard: &Shard,
    frontend: usize,
    mut client: C,
    peer: SocketAddr,
    local: SocketAddr,
    mut buf: Vec<u8>,
    txn: &mut Txn,
) -> Option<(C, Vec<u8>, Option<usize>)> {
    let fe = &shard.config.frontends[frontend];
    let needs_routes = fe
        .routes
        .iter()
        .any(|r| !matches!(r.cond, crate::rules::Condition::Always));
    if fe.tcp_content.is_empty() && !needs_routes {
        let b = route(shard, frontend, peer, local, txn, &buf, true);
        return Some((client, buf, b));
    }
    let delay = fe.inspect_delay.unwrap_or(Duration::ZERO);
    let deadline = Instant::now() + delay;
    let cap = shard.config.limits.max_header_bytes.max(16 * 1024);
    if buf.capacity() < cap {
        buf.reserve(cap - buf.len());
    }
    let site = Site {
        shard,
        frontend,
        backend: None,
        src: peer,
        dst: local,
    };
    let mut from = 0;
    let mut eof = false;
    loop {
        let last = eof || buf.len() >= cap || Instant::now() >= deadline;
        let verdict = run(
            &fe.tcp_content,
            from,
            &site,
            txn,
            None,
            Some(&buf),
            last,
            false,
        );
        // `use_backend` conditions may need bytes too.
        let wait_routes = matches!(verdict, Verdict::Go)
            && !last
            && route_waits(shard, frontend, peer, local, txn, &buf);
        if matches!(verdict, Verdict::Reject | Verdict::SilentDrop) {
            // A connection content rules refuse is a denied request for HAProxy.
            crate::stats::Counters::inc(&shard.stats.frontends[frontend].denied);
        }
        match verdict {
            Verdict::Reject => {
                drop_connection(client, false);
                return None;
            }
            Verdict::SilentDrop => {
                drop_connection(client, true);
                return None;
            }
            Verdict::Go if !wait_routes => {
                let b = route(shard, frontend, peer, local, txn, &buf, true);
                return Some((client, buf, b));
            }
            Verdict::Wait(i) => from = i,
            Verdict::Go => from = fe.tcp_content.len(),
        }
        // Read more, at most until the deadline (over TLS too: nothing is lost).
        let (res, b) = client.read_until(buf, deadline).await;
        buf = b;
        match res {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if Instant::now() >= deadline => {}
            Err(_) => return None,
        }
    }
}

/// Whether a `use_backend` condition still waits for bytes.
fn route_waits(
    shard: &Shard,
    frontend: usize,
    peer: SocketAddr,
    local: SocketAddr,
    txn: &Txn,
    buf: &[u8],
) -> bool {
    let fe = &shard.config.frontends[frontend];
    let site = Site {
        shard,
        frontend,
        backend: None,
        src: peer,
        dst: local,
    };
    with_work(|w| {
        let ctx = site.ctx(txn, None, Some(buf), false);
        for r in &fe.routes {
            match r.cond.eval(&ctx, &mut w.s) {
                Tri::Pass => return false,
                Tri::Miss => return true,
                Tri::Fail => {}
            }
        }
        false
    })
}

/// The backend of a `mode tcp` connection: the first `use_backend` whose condition
/// holds on the buffered bytes, else the default.
fn route(
    shard: &Shard,
    frontend: usize,
    peer: SocketAddr,
    local: SocketAddr,
    txn: &Txn,
    buf: &[u8],
    last: bool,
) -> Option<usize> {
    let fe = &shard.config.frontends[frontend];
    let site = Site {
        shard,
        frontend,
        backend: None,
        src: peer,
        dst: local,
    };
    with_work(|w| {
        let ctx = site.ctx(txn, None, Some(buf), last);
        for r in &fe.routes {
            if r.cond.eval(&ctx, &mut w.s) != Tri::Pass {
                continue;
            }
            return match &r.target {
                RouteTarget::Backend(b) => Some(*b),
                RouteTarget::Dynamic(f) => {
                    w.val.clear();
                    f.eval(&ctx, None, &mut w.s, &mut w.val);
                    shard
                        .config
                        .backends
                        .iter()
                        .position(|b| b.name.as_bytes() == &w.val[..])
                        .or(fe.default_backend)
                }
            };
        }
        fe.default_backend
    })
}

/// Stops a connection's tracked counters (`tcp-request connection|session
/// track-scN`) when it is dropped.
pub struct SessionTrack<'s> {
    shard: &'s Shard,
    tracked: [Option<Tracked>; 3],
}

impl<'s> SessionTrack<'s> {
    pub fn new(shard: &'s Shard, tracked: [Option<Tracked>; 3]) -> Self {
        SessionTrack { shard, tracked }
    }

    /// More rules tracked more counters.
    pub fn set(&mut self, tracked: [Option<Tracked>; 3]) {
        self.tracked = tracked;
    }
}

impl Drop for SessionTrack<'_> {
    fn drop(&mut self) {
        for e in self.tracked.iter().flatten() {
            self.shard
                .cluster
                .sc_event(*e, crate::tables::counters::Event::Stop);
        }
    }
}

/// `tcp-request connection` then (after a PROXY header, in the caller) `session`
/// rules: `false` when the connection must close.
pub fn at_accept(
    shard: &Shard,
    frontend: usize,
    stream: &impl std::os::fd::AsRawFd,
    peer: SocketAddr,
    local: SocketAddr,
    txn: &mut Txn,
    session: bool,
) -> bool {
    let fe = &shard.config.frontends[frontend];
    let rules = if session {
        &fe.tcp_session
    } else {
        &fe.tcp_connection
    };
    if rules.is_empty() {
        return true;
    }
    let site = Site {
        shard,
        frontend,
        backend: None,
        src: peer,
        dst: local,
    };
    let fs = &shard.stats.frontends[frontend];
    let refused = if session { &fs.dses } else { &fs.dcon };
    match run(rules, 0, &site, txn, None, None, true, true) {
        Verdict::Go | Verdict::Wait(_) => true,
        Verdict::Reject => {
            crate::stats::Counters::inc(refused);
            false
        }
        Verdict::SilentDrop => {
            crate::stats::Counters::inc(refused);
            reset_on_close(stream);
            false
        }
    }
}
