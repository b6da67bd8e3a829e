//! The HTTP phases around a request: what happens to a parsed request before it is
//! sent (captures, `tcp-request content` and `http-request` rules, `use_backend`,
//! `use-server`, X-Forwarded-For), to a local answer, and to a server's response
//! (`http-response` rules), and the request's end (stick counters, logs). The rule
//! lists themselves run in `super::rules`.

use std::cell::RefCell;
use std::net::SocketAddr;

use super::edit;
use super::rules::{run, Site, Verdict};
use crate::config::Service;
use crate::rules::{with_work, Dir, Head, Txn};
use crate::shard::Shard;

/// A request or response that ends in a local answer instead of going on.
#[derive(Debug)]
pub enum Early {
    /// The answer (after-response rules applied) is in the head buffer.
    Answer(u16),
    /// The same, for a `return` or a `redirect` (an intercepted request, `LR`).
    Local(u16),
    Close {
        silent: bool,
    },
    Tarpit(u16),
    Service(Service),
    /// A `monitor-uri` request, answered (in the head buffer) and not logged.
    Monitor(u16),
}

/// Where a request goes once the request rules ran.
#[derive(Debug, Clone, Copy)]
pub struct Routed {
    pub backend: Option<usize>,
    /// A `use-server` rule picked this server (if it can take the request).
    pub server: Option<u32>,
    /// What the persistence cookie decided (its server is `server` too).
    pub persist: super::cookie::Persist,
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
    if fe.rule_free {
        // Nothing to evaluate, nothing to keep for later rules: the default backend.
        txn.begin_request_rule_free(cfg.txn_scope(frontend));
        forward_for(shard, fe, fe.default_backend, peer.ip(), out);
        connection_to_server(shard, fe, fe.default_backend, r.minor_version, out);
        return Ok(Routed {
            backend: fe.default_backend,
            server: None,
            persist: Default::default(),
        });
    }
    txn.begin_request(cfg.txn_scope(frontend));
    txn.names[0] = r.names;
    {
        let line = Head::new(out).first_line();
        let h2 = txn.h2.is_some();
        super::capture_reqline(&mut txn.reqline, line, h2, cfg.runtime.log_uri_len);
    }
    if !fe.captures.request.is_empty() {
        capture_headers(&fe.captures.request, &mut txn.req_caps, out);
    }
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
    if let Some(m) = &fe.monitor {
        if monitor_matches(&m.uri, r.target) {
            return Err(monitor(m, &site, txn, out, r.method == "HEAD"));
        }
    }
    if !fe.http_request.is_empty() {
        let v = ANSWER.with(|a| {
            let mut a = a.borrow_mut();
            let v = run(&fe.http_request, &site, txn, out, Dir::Req, &mut a, rate);
            if matches!(
                v,
                Verdict::Answer(_) | Verdict::Local(_) | Verdict::Tarpit(_)
            ) {
                std::mem::swap(out, &mut a);
            }
            v
        });
        early(v, &site, txn, out, minor)?;
    }
    // use_backend.
    let backend = if fe.routes.is_empty() {
        fe.default_backend
    } else {
        with_work(|w| {
            let ctx = site.ctx(txn, Some(out), Dir::Req);
            super::route::route(fe, cfg, &ctx, &mut w.s, &mut w.val)
        })
    };
    site.backend = backend;
    let mut server = None;
    let mut persist = super::cookie::Persist::default();
    if let Some(b) = backend.filter(|&b| Some(b) != fe.listen_backend) {
        let be = &cfg.backends[b];
        tcp_content(&be.tcp_content, &site, txn, out)?;
        if !be.http_request.is_empty() {
            let v = ANSWER.with(|a| {
                let mut a = a.borrow_mut();
                let v = run(&be.http_request, &site, txn, out, Dir::Req, &mut a, |_| {
                    false
                });
                if matches!(
                    v,
                    Verdict::Answer(_) | Verdict::Local(_) | Verdict::Tarpit(_)
                ) {
                    std::mem::swap(out, &mut a);
                }
                v
            });
            early(v, &site, txn, out, minor)?;
        }
    }
    if let Some(b) = backend {
        let be = &cfg.backends[b];
        // The cookie first (HAProxy's `http_process_request`); `use-server` rules run
        // only for a request it did not assign.
        if let Some(ck) = &be.cookie {
            persist = super::cookie::request(ck, &shard.upstreams.backends[b], out, r.method);
            server = persist.server;
        }
        if server.is_none() && !be.use_server.is_empty() {
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
    if fe.unique_id_format.is_some() {
        unique_id(fe, &site, txn, out);
    }
    // `set-src` changed the client X-Forwarded-For names.
    let client = txn.src.map_or(client, |a| a.ip());
    forward_for(shard, fe, backend, client, out);
    connection_to_server(shard, fe, backend, minor, out);
    Ok(Routed {
        backend,
        server,
        persist,
    })
}

/// The request's unique id, computed now unless a rule already asked for it, and
/// sent in `unique-id-header` (after the rules, before X-Forwarded-For, as HAProxy's
/// `http_process_request`).
#[inline(never)]
fn unique_id(fe: &crate::config::Frontend, site: &Site<'_>, txn: &Txn, out: &mut Vec<u8>) {
    with_work(|w| {
        w.val.clear();
        let computed = {
            let ctx = site.ctx(txn, Some(out), Dir::Req);
            crate::rules::unique_id::UniqueId::write(&ctx, &mut w.val)
        };
        if let (true, Some(h)) = (computed, &fe.unique_id_header) {
            edit::add_header(out, h, &w.val);
        }
    });
}

/// HAProxy's answers to a monitor request.
const MONITOR_OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 58\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n";
const MONITOR_FAIL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";

/// The request is for the monitor URI: the whole target, or (a URI starting with
/// `/`) the target's path and query, as HAProxy compares them.
fn monitor_matches(uri: &str, target: &str) -> bool {
    if target == uri {
        return true;
    }
    if !uri.starts_with('/') {
        return false;
    }
    // An absolute-form target: its path starts after `scheme://authority`.
    let path = match target.find("://") {
        Some(s) => target[s + 3..]
            .find('/')
            .map_or("", |p| &target[s + 3 + p..]),
        None => return false,
    };
    path == uri
}

/// A monitor request's answer, in `out`: 503 when a `monitor fail` condition holds,
/// else 200 (the body dropped for HEAD); it is not logged (HAProxy's `SF_MONITOR`).
fn monitor(
    m: &crate::config::Monitor,
    site: &Site<'_>,
    txn: &mut Txn,
    out: &mut Vec<u8>,
    head: bool,
) -> Early {
    let fail = !m.fail.is_empty()
        && with_work(|w| {
            let ctx = site.ctx(txn, Some(out), Dir::Req);
            m.fail.iter().any(|c| c.holds(&ctx, &mut w.s))
        });
    let (status, answer) = if fail {
        (503, MONITOR_FAIL)
    } else {
        (200, MONITOR_OK)
    };
    out.clear();
    out.extend_from_slice(answer);
    if head {
        if let Some(end) = out.windows(4).position(|x| x == b"\r\n\r\n") {
            out.truncate(end + 4);
        }
    }
    after_local(site, txn, out, status);
    txn.log_level = Some(8);
    Early::Monitor(status)
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
        Verdict::Answer(st) | Verdict::Local(st) | Verdict::Tarpit(st) => {
            after_local(site, txn, out, st);
            let _ = minor;
            Err(match v {
                Verdict::Tarpit(_) => Early::Tarpit(st),
                Verdict::Local(_) => Early::Local(st),
                _ => Early::Answer(st),
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
            if matches!(
                v,
                Verdict::Answer(_) | Verdict::Local(_) | Verdict::Tarpit(_)
            ) {
                std::mem::swap(out, &mut a);
            }
            v
        });
        match v {
            Verdict::Continue => {}
            Verdict::Close { silent } => return Err(Early::Close { silent }),
            Verdict::Service(s) => return Err(Early::Service(s)),
            Verdict::Answer(st) | Verdict::Local(st) | Verdict::Tarpit(st) => {
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
/// adds it: `if-none` looks at the head as the rules left it. The test for none is
/// inlined: most requests pay only that.
#[inline]
/// What the server is told of its connection, as HAProxy's H1 side writes it after
/// the other headers: `close` under `option http-server-close` or `httpclose`
/// (frontend or backend: the server connection ends with this response); else
/// `keep-alive` for an HTTP/1.0 request (whose default is to close), so that the
/// server connection stays for the next request.
fn connection_to_server(
    shard: &Shard,
    fe: &crate::config::Frontend,
    backend: Option<usize>,
    minor: u8,
    out: &mut Vec<u8>,
) {
    if fe.server_close || backend.is_some_and(|b| shard.config.backends[b].server_close) {
        edit::add_header(out, "connection", b"close");
    } else if minor == 0 {
        edit::add_header(out, "connection", b"keep-alive");
    }
}

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
    if let Some(ff) = ff {
        add_forward_for(ff, client, out);
    }
}

#[inline(never)]
fn add_forward_for(ff: &crate::config::ForwardFor, client: std::net::IpAddr, out: &mut Vec<u8>) {
    if !ff.applies_to(client)
        || (ff.if_none && Head::new(out).named(ff.header.as_bytes()).next().is_some())
    {
        return;
    }
    with_work(|w| {
        w.val.clear();
        crate::rules::sample::write_ip(&mut w.val, client);
        edit::add_header(out, &ff.header, &w.val);
    });
}
