//! Log-format strings (configuration manual 8.2.6): literal text, `%[expr]` sample
//! expressions and `%xx` aliases (`%ci`, `%ST`, `%Ta`, `%hr`, `%{+Q}r`...), with the
//! `+Q` (quote), `+X` (hex) and `+E` (escape) flags. The same type serves header
//! values, redirect locations, `return lf-string` bodies, dynamic `use_backend`
//! names and the access log line, where `option httplog`, `option tcplog` and
//! `option httplog clf` are these very strings (HAProxy's `default_http_log_format`
//! and friends).
//!
//! As in HAProxy, spaces in a log line are separators that collapse when a field
//! prints nothing, an empty field prints `-` in a log line and nothing in a header,
//! and control characters in a header value are %-encoded.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use super::parse::{Env, Expr};
use super::sample::{write_int, Scratch, Smp};
use super::{Capture, Ctx};

/// HAProxy's `option httplog` line.
pub const HTTP_LOG: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";
/// `option httplog clf`.
pub const CLF_LOG: &str = "%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl";
/// `option tcplog`.
pub const TCP_LOG: &str = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq";

/// Where a format is used: it decides separators, empty fields and encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A log line: spaces collapse, empty fields print `-`.
    Log,
    /// A header value, redirect or body: control characters in samples are %-encoded.
    Http,
    /// `set-var-fmt` and the like: verbatim.
    Plain,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub quote: bool,
    pub hex: bool,
    pub esc: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    ClientIp,
    ClientPort,
    FrontendIp,
    FrontendPort,
    BackendIp,
    BackendPort,
    ServerIp,
    ServerPort,
    Frontend,
    FrontendXprt,
    Backend,
    Server,
    Hostname,
    Pid,
    UniqueId,
    Status,
    Bytes,
    BytesUp,
    CookieClient,
    CookieServer,
    TermState,
    TermStateCk,
    ActConn,
    FeConn,
    BeConn,
    SrvConn,
    Retries,
    SrvQueue,
    BeQueue,
    Th,
    Ti,
    TR,
    Tq,
    Tw,
    Tc,
    Tr,
    Td,
    Ta,
    Tt,
    Tu,
    /// `%t`: accept date; `%tr`: request date (both `dd/Mmm/yyyy:HH:MM:SS.mmm`).
    Date,
    ReqDate,
    /// `%T`, `%trg`: GMT dates; `%Tl`, `%trl`: local.
    DateGmt,
    ReqDateGmt,
    DateLocal,
    ReqDateLocal,
    Ts,
    Ms,
    HdrReq,
    HdrReqList,
    HdrRes,
    HdrResList,
    Request,
    HttpMethod,
    HttpUri,
    HttpPath,
    HttpPathOnly,
    HttpQuery,
    HttpVersion,
    ReqCounter,
    LogCounter,
    SslCipher,
    SslVersion,
}

fn alias(name: &str) -> Option<Alias> {
    use Alias::*;
    Some(match name {
        "ci" => ClientIp,
        "cp" => ClientPort,
        "fi" => FrontendIp,
        "fp" => FrontendPort,
        "bi" => BackendIp,
        "bp" => BackendPort,
        "si" => ServerIp,
        "sp" => ServerPort,
        "f" => Frontend,
        "ft" => FrontendXprt,
        "b" => Backend,
        "s" => Server,
        "H" => Hostname,
        "pid" => Pid,
        "ID" => UniqueId,
        "ST" => Status,
        "B" => Bytes,
        "U" => BytesUp,
        "CC" => CookieClient,
        "CS" => CookieServer,
        "ts" => TermState,
        "tsc" => TermStateCk,
        "ac" => ActConn,
        "fc" => FeConn,
        "bc" => BeConn,
        "sc" => SrvConn,
        "rc" => Retries,
        "sq" => SrvQueue,
        "bq" => BeQueue,
        "Th" => Th,
        "Ti" => Ti,
        "TR" => TR,
        "Tq" => Tq,
        "Tw" => Tw,
        "Tc" => Tc,
        "Tr" => Tr,
        "Td" => Td,
        "Ta" => Ta,
        "Tt" => Tt,
        "Tu" => Tu,
        "t" => Date,
        "tr" => ReqDate,
        "T" => DateGmt,
        "trg" => ReqDateGmt,
        "Tl" => DateLocal,
        "trl" => ReqDateLocal,
        "Ts" => Ts,
        "ms" => Ms,
        "hr" => HdrReq,
        "hrl" => HdrReqList,
        "hs" => HdrRes,
        "hsl" => HdrResList,
        "r" => Request,
        "HM" => HttpMethod,
        "HU" => HttpUri,
        "HP" => HttpPath,
        "HPO" => HttpPathOnly,
        "HQ" => HttpQuery,
        "HV" => HttpVersion,
        "rt" => ReqCounter,
        "lc" => LogCounter,
        "sslc" => SslCipher,
        "sslv" => SslVersion,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
enum Node {
    Text(Box<[u8]>),
    Sep,
    Alias(Alias, Flags),
    Expr(Box<Expr>, Flags),
}

/// A parsed log-format string.
#[derive(Debug, Clone)]
pub struct LogFormat {
    nodes: Vec<Node>,
    mode: Mode,
    /// Only literal text: the value is known at load.
    pub constant: Option<Box<[u8]>>,
    pub text: String,
}

/// What an access log line reports about a finished request or connection (timers in
/// milliseconds, -1 where the step did not happen).
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub accepted: Option<SystemTime>,
    pub request: Option<SystemTime>,
    pub backend: &'a str,
    pub server: &'a str,
    pub server_addr: Option<SocketAddr>,
    pub th: i64,
    pub ti: i64,
    pub tr_head: i64,
    pub tw: i64,
    pub tc: i64,
    pub tr_server: i64,
    pub ta: i64,
    pub tt: i64,
    pub status: u16,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub term: &'a str,
    /// %ac %fc %bc %sc.
    pub conns: [u64; 4],
    pub retries: u32,
    /// %sq %bq.
    pub queues: [u64; 2],
    /// The request line (`None`: `<BADREQ>`).
    pub request_line: Option<&'a [u8]>,
    pub counter: u64,
}

impl LogFormat {
    /// Parses `fmt` for `mode` (HAProxy's `parse_logformat_string`).
    pub fn parse(fmt: &str, mode: Mode, env: &mut Env<'_>) -> Result<LogFormat, String> {
        let b = fmt.as_bytes();
        let mut nodes: Vec<Node> = Vec::new();
        let mut text: Vec<u8> = Vec::new();
        let mut global = Flags::default();
        let flush = |text: &mut Vec<u8>, nodes: &mut Vec<Node>| {
            if !text.is_empty() {
                nodes.push(Node::Text(std::mem::take(text).into()));
            }
        };
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b' ' && mode == Mode::Log {
                flush(&mut text, &mut nodes);
                if !matches!(nodes.last(), Some(Node::Sep)) {
                    nodes.push(Node::Sep);
                }
                i += 1;
                continue;
            }
            if c != b'%' {
                text.push(c);
                i += 1;
                continue;
            }
            // A '%'.
            i += 1;
            let Some(&n) = b.get(i) else {
                return Err("truncated line after '%'".into());
            };
            if n == b'%' {
                text.push(b'%');
                i += 1;
                continue;
            }
            if n.is_ascii_digit() || n == b' ' || n == b'\t' {
                return Err(format!("unexpected variable name near '{}' at position {}. Maybe you want to write a single '%', use the syntax '%%'", n as char, i));
            }
            let mut flags = global;
            let mut has_arg = false;
            if n == b'{' {
                let Some(end) = fmt[i..].find('}') else {
                    return Err(format!("truncated line after '%{}'", &fmt[i + 1..]));
                };
                parse_flags(&fmt[i + 1..i + end], &mut flags)?;
                i += end + 1;
                has_arg = true;
            }
            match b.get(i) {
                Some(b'[') => {
                    let (e, used) = Expr::parse_prefix(&fmt[i + 1..], env).map_err(|e| {
                        format!(
                            "failed to parse sample expression <{}> : {e}",
                            &fmt[i + 1..]
                        )
                    })?;
                    let end = i + 1 + used;
                    match b.get(end) {
                        Some(b']') => {}
                        Some(&c) => {
                            return Err(format!(
                                "expected ']' after '{}', but found '{}'",
                                &fmt[i + 1..end],
                                c as char
                            ))
                        }
                        None => return Err(format!("missing ']' after '{}'", &fmt[i + 1..end])),
                    }
                    flush(&mut text, &mut nodes);
                    nodes.push(Node::Expr(Box::new(e), flags));
                    i = end + 1;
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    let start = i;
                    while i < b.len() && b[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                    let name = &fmt[start..i];
                    if name == "o" {
                        // `%{+Q}o`: the flags apply to every following field.
                        global = flags;
                        continue;
                    }
                    let a = alias(name)
                        .ok_or_else(|| format!("no such format variable '{name}'. If you wanted to emit the '%' character verbatim, you need to use '%%'"))?;
                    flush(&mut text, &mut nodes);
                    nodes.push(Node::Alias(a, flags));
                }
                _ if has_arg => {
                    return Err(format!(
                        "parse argument modifier without variable name near '%{}'",
                        &fmt[..i]
                    ))
                }
                _ => {
                    // A lone '%' followed by other text stays literal.
                    text.push(b'%');
                }
            }
        }
        flush(&mut text, &mut nodes);
        let constant = if nodes.iter().all(|n| matches!(n, Node::Text(_))) {
            let mut v = Vec::new();
            for n in &nodes {
                if let Node::Text(t) = n {
                    v.extend_from_slice(t);
                }
            }
            Some(v.into())
        } else {
            None
        };
        Ok(LogFormat {
            nodes,
            mode,
            constant,
            text: fmt.to_string(),
        })
    }

    /// A literal (no `%`).
    pub fn literal(text: &str) -> LogFormat {
        LogFormat {
            nodes: vec![Node::Text(text.as_bytes().into())],
            mode: Mode::Http,
            constant: Some(text.as_bytes().into()),
            text: text.to_string(),
        }
    }

    /// Whether any field reads the request or response (rules must evaluate it per
    /// request).
    pub fn is_constant(&self) -> bool {
        self.constant.is_some()
    }

    /// The expressions of the format (to check what they may read).
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Expr(e, _) => Some(&**e),
            _ => None,
        })
    }

    /// Appends the formatted value to `out`.
    pub fn eval(
        &self,
        ctx: &Ctx<'_>,
        facts: Option<&Facts<'_>>,
        s: &mut Scratch,
        out: &mut Vec<u8>,
    ) {
        if let Some(c) = &self.constant {
            out.extend_from_slice(c);
            return;
        }
        let log = self.mode == Mode::Log;
        let mut last_space = true;
        for n in &self.nodes {
            let before = out.len();
            match n {
                Node::Text(t) => out.extend_from_slice(t),
                Node::Sep => {
                    if !last_space {
                        out.push(b' ');
                        last_space = true;
                    }
                    continue;
                }
                Node::Expr(e, f) => {
                    let got = e.eval(ctx, s);
                    match got {
                        Some(smp) if self.mode == Mode::Http => {
                            if f.quote {
                                out.push(b'"');
                            }
                            let start = out.len();
                            smp.write_str(&s.cur, out);
                            // Only strings can hold control characters.
                            if matches!(smp, Smp::Str(_) | Smp::Bin(_)) {
                                http_encode(out, start);
                            }
                            if f.quote {
                                out.push(b'"');
                            }
                        }
                        Some(smp) => {
                            let mut tmp = std::mem::take(&mut s.tmp);
                            tmp.clear();
                            smp.write_str(&s.cur, &mut tmp);
                            text(out, Some(&tmp), *f, log);
                            s.tmp = tmp;
                        }
                        None if self.mode == Mode::Http => {}
                        None => text(out, None, *f, log),
                    }
                }
                Node::Alias(a, f) => {
                    self.alias(*a, *f, ctx, facts, out);
                    // As HAProxy: a field counts as printed even when empty, except
                    // the capture fields of a frontend without captures.
                    let caps_absent = match a {
                        Alias::HdrReq | Alias::HdrReqList => ctx.txn.req_caps.is_empty(),
                        Alias::HdrRes | Alias::HdrResList => ctx.txn.res_caps.is_empty(),
                        _ => false,
                    };
                    if !caps_absent {
                        last_space = false;
                    }
                    continue;
                }
            }
            let _ = before;
            last_space = false;
        }
    }

    fn alias(
        &self,
        a: Alias,
        f: Flags,
        ctx: &Ctx<'_>,
        facts: Option<&Facts<'_>>,
        out: &mut Vec<u8>,
    ) {
        use Alias::*;
        let log = self.mode == Mode::Log;
        let cfg = ctx.cfg;
        let num = |out: &mut Vec<u8>, v: i64| {
            if f.hex {
                let _ = write!(out, "{:X}", v);
            } else {
                write_int(out, v);
            }
        };
        let plus = |out: &mut Vec<u8>| {
            // HAProxy marks values it could not complete with '+' under `option
            // logasap`; ringlb logs at the end, so never.
            let _ = out;
        };
        let fx = facts;
        match a {
            ClientIp => ip(out, Some(super::fetch::canonical(ctx.src.ip())), f, log),
            ClientPort => port(out, Some(ctx.src.port()), f, log),
            FrontendIp => ip(out, Some(super::fetch::canonical(ctx.dst.ip())), f, log),
            FrontendPort => port(out, Some(ctx.dst.port()), f, log),
            BackendIp | BackendPort => text(out, None, f, log),
            ServerIp => ip(out, fx.and_then(|x| x.server_addr).map(|a| a.ip()), f, log),
            ServerPort => port(
                out,
                fx.and_then(|x| x.server_addr).map(|a| a.port()),
                f,
                log,
            ),
            Frontend | FrontendXprt => {
                let name = cfg
                    .and_then(|c| c.frontends.get(ctx.frontend))
                    .map(|fe| fe.name.as_bytes());
                if f.quote {
                    out.push(b'"');
                }
                out.extend_from_slice(name.unwrap_or(b"-"));
                if a == FrontendXprt && ctx.tls.is_some() {
                    out.push(b'~');
                }
                if f.quote {
                    out.push(b'"');
                }
            }
            Backend => {
                let name = match fx {
                    Some(x) if !x.backend.is_empty() => Some(x.backend.as_bytes()),
                    _ => ctx
                        .backend
                        .and_then(|b| cfg?.backends.get(b))
                        .map(|b| b.name.as_bytes())
                        .or_else(|| {
                            cfg.and_then(|c| c.frontends.get(ctx.frontend))
                                .map(|fe| fe.name.as_bytes())
                        }),
                };
                text(out, name, f, log)
            }
            Server => {
                let name = match fx {
                    Some(x) if !x.server.is_empty() => Some(x.server.as_bytes()),
                    _ => ctx
                        .server
                        .zip(ctx.backend)
                        .and_then(|(s, b)| cfg?.backends.get(b)?.servers.get(s as usize))
                        .map(|s| s.name.as_bytes())
                        .or(Some(&b"<NOSRV>"[..])),
                };
                text(out, name, f, log)
            }
            Hostname => {
                let h = hostname();
                text(out, Some(h.as_bytes()), f, log)
            }
            Pid => num(out, i64::from(std::process::id())),
            UniqueId => text(out, None, f, log),
            Status => num(out, fx.map_or(0, |x| i64::from(x.status))),
            Bytes => {
                plus(out);
                num(out, fx.map_or(0, |x| x.bytes_out as i64))
            }
            BytesUp => num(out, fx.map_or(0, |x| x.bytes_in as i64)),
            CookieClient | CookieServer => text(out, None, f, log),
            TermState | TermStateCk => {
                let t = fx.map_or("----", |x| if x.term.len() == 4 { x.term } else { "----" });
                let n = if a == TermState { 2 } else { 4 };
                out.extend_from_slice(&t.as_bytes()[..n]);
            }
            ActConn => num(out, fx.map_or(0, |x| x.conns[0] as i64)),
            FeConn => num(out, fx.map_or(0, |x| x.conns[1] as i64)),
            BeConn => num(out, fx.map_or(0, |x| x.conns[2] as i64)),
            SrvConn => num(out, fx.map_or(0, |x| x.conns[3] as i64)),
            Retries => num(out, fx.map_or(0, |x| i64::from(x.retries))),
            SrvQueue => num(out, fx.map_or(0, |x| x.queues[0] as i64)),
            BeQueue => num(out, fx.map_or(0, |x| x.queues[1] as i64)),
            Th => num(out, fx.map_or(0, |x| x.th)),
            Ti => num(out, fx.map_or(0, |x| x.ti)),
            TR => num(out, fx.map_or(-1, |x| x.tr_head)),
            Tq => num(
                out,
                fx.map_or(-1, |x| {
                    if x.tr_head < 0 {
                        -1
                    } else {
                        x.th + x.ti + x.tr_head
                    }
                }),
            ),
            Tw => num(out, fx.map_or(-1, |x| x.tw)),
            Tc => num(out, fx.map_or(-1, |x| x.tc)),
            Tr => num(out, fx.map_or(-1, |x| x.tr_server)),
            Td => num(
                out,
                fx.map_or(-1, |x| {
                    if x.tr_server < 0 {
                        -1
                    } else {
                        (x.tt
                            - x.th
                            - x.ti
                            - x.tr_head.max(0)
                            - x.tw.max(0)
                            - x.tc.max(0)
                            - x.tr_server)
                            .max(0)
                    }
                }),
            ),
            Ta => num(out, fx.map_or(0, |x| x.ta)),
            Tt => num(out, fx.map_or(0, |x| x.tt)),
            Tu => num(out, fx.map_or(0, |x| x.tt - x.ti)),
            Date | ReqDate | DateGmt | ReqDateGmt | DateLocal | ReqDateLocal | Ts | Ms => {
                let accepted = fx.and_then(|x| x.accepted).unwrap_or_else(SystemTime::now);
                let when = if matches!(a, ReqDate | ReqDateGmt | ReqDateLocal) {
                    fx.and_then(|x| x.request).unwrap_or(accepted)
                } else {
                    accepted
                };
                match a {
                    Date | ReqDate => log_date(out, when),
                    DateGmt | ReqDateGmt | DateLocal | ReqDateLocal => gmt_date(out, when),
                    Ts => num(out, secs(when) as i64),
                    _ => {
                        let ms = when
                            .duration_since(UNIX_EPOCH)
                            .unwrap_or_default()
                            .subsec_millis();
                        if f.hex {
                            let _ = write!(out, "{ms:02X}");
                        } else {
                            let _ = write!(out, "{ms:03}");
                        }
                    }
                }
            }
            HdrReq | HdrRes | HdrReqList | HdrResList => {
                let caps: &[Capture] = if matches!(a, HdrReq | HdrReqList) {
                    &ctx.txn.req_caps
                } else {
                    &ctx.txn.res_caps
                };
                if caps.is_empty() {
                    return;
                }
                if matches!(a, HdrReq | HdrRes) {
                    if f.quote {
                        out.push(b'"');
                    }
                    out.push(b'{');
                    for (i, c) in caps.iter().enumerate() {
                        if i > 0 {
                            out.push(b'|');
                        }
                        if c.set {
                            encode(out, &c.bytes, b"\"#{|}");
                        }
                    }
                    out.push(b'}');
                    if f.quote {
                        out.push(b'"');
                    }
                } else {
                    for (i, c) in caps.iter().enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        if f.quote {
                            out.push(b'"');
                        }
                        if c.set {
                            encode(out, &c.bytes, b"\"#{|}");
                        } else if !f.quote {
                            out.push(b'-');
                        }
                        if f.quote {
                            out.push(b'"');
                        }
                    }
                }
            }
            Request | HttpMethod | HttpUri | HttpPath | HttpPathOnly | HttpQuery | HttpVersion => {
                let line: &[u8] = match fx {
                    Some(x) => x.request_line.unwrap_or(b"<BADREQ>"),
                    None if !ctx.txn.reqline.is_empty() => &ctx.txn.reqline,
                    None => b"<BADREQ>",
                };
                let h = super::head::Head::new(line);
                let target = h.target();
                let part: &[u8] = match a {
                    Request => line,
                    HttpMethod => h.method(),
                    HttpUri => target,
                    // %HP stops at the query; %HPO also drops an absolute URI's host.
                    HttpPath => {
                        &target[..target
                            .iter()
                            .position(|&c| c == b'?')
                            .unwrap_or(target.len())]
                    }
                    HttpPathOnly => h.path(),
                    // %HQ includes the '?'.
                    HttpQuery => match h.query() {
                        Some(q) => &target[target.len() - q.len() - 1..],
                        None => b"",
                    },
                    _ => h.version(),
                };
                if f.quote {
                    out.push(b'"');
                }
                encode(out, part, b"\"#");
                if f.quote {
                    out.push(b'"');
                }
            }
            ReqCounter => num(out, fx.map_or(0, |x| x.counter as i64)),
            LogCounter => num(out, 0),
            SslCipher => text(
                out,
                ctx.tls.and_then(|t| t.cipher.as_deref()).map(str::as_bytes),
                f,
                log,
            ),
            SslVersion => text(
                out,
                ctx.tls.and_then(|t| t.protocol).map(str::as_bytes),
                f,
                log,
            ),
        }
    }
}

fn parse_flags(spec: &str, f: &mut Flags) -> Result<(), String> {
    for item in spec.split(',') {
        let (on, name) = match item.as_bytes().first() {
            Some(b'+') => (true, &item[1..]),
            Some(b'-') => (false, &item[1..]),
            _ => (true, item),
        };
        match name {
            "Q" => f.quote = on,
            "X" => f.hex = on,
            "E" => f.esc = on,
            // `%{+M}` (mandatory) and `%{+Cxx}` options have no effect here.
            "M" | "" => {}
            _ => {}
        }
    }
    Ok(())
}

/// HAProxy's `lf_text_len`: quoted if `+Q`, escaped if `+E`, `-` when empty in a log.
fn text(out: &mut Vec<u8>, src: Option<&[u8]>, f: Flags, log: bool) {
    if f.quote {
        out.push(b'"');
    }
    match src {
        Some(s) if !s.is_empty() => {
            if f.esc {
                for &c in s {
                    if matches!(c, b'"' | b'\\' | b']') {
                        out.push(b'\\');
                    }
                    out.push(c);
                }
            } else {
                out.extend_from_slice(s);
            }
        }
        _ if log && !f.quote => out.push(b'-'),
        _ => {}
    }
    if f.quote {
        out.push(b'"');
    }
}

fn ip(out: &mut Vec<u8>, a: Option<IpAddr>, f: Flags, log: bool) {
    match a {
        Some(IpAddr::V4(v4)) if f.hex => {
            for o in v4.octets() {
                let _ = write!(out, "{o:02X}");
            }
        }
        Some(IpAddr::V6(v6)) if f.hex => {
            for o in v6.octets() {
                let _ = write!(out, "{o:02X}");
            }
        }
        Some(a) => {
            if f.quote {
                out.push(b'"');
            }
            super::sample::write_ip(out, a);
            if f.quote {
                out.push(b'"');
            }
        }
        None => text(out, None, f, log),
    }
}

/// Ports are never quoted (HAProxy's `lf_port`).
fn port(out: &mut Vec<u8>, p: Option<u16>, f: Flags, log: bool) {
    match p {
        Some(p) if f.hex => {
            let _ = write!(out, "{p:04X}");
        }
        Some(p) => write_int(out, i64::from(p)),
        None => text(out, None, f, log),
    }
}

/// `#XX` for control bytes, bytes above 126 and `extra`.
fn encode(out: &mut Vec<u8>, s: &[u8], extra: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s {
        if !(0x20..0x7f).contains(&c) || extra.contains(&c) {
            out.extend_from_slice(&[b'#', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

/// %-encodes, in place from `start`, what may not appear in a header value (control
/// characters other than HTAB, and DEL).
fn http_encode(out: &mut Vec<u8>, start: usize) {
    let bad = |c: u8| (c < 0x20 && c != b'\t') || c == 0x7f;
    if !out[start..].iter().any(|&c| bad(c)) {
        return;
    }
    let tail: Vec<u8> = out.split_off(start);
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for c in tail {
        if bad(c) {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// HAProxy's log date (`%t`, `%tr`): `23/Nov/2026:13:00:00.123` (UTC).
pub fn log_date(out: &mut Vec<u8>, t: SystemTime) {
    let (y, m, d, hh, mm, ss, ms) = civil(t);
    let _ = write!(
        out,
        "{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02}.{ms:03}",
        MONTHS[(m - 1) as usize]
    );
}

/// `%T`, `%trg`: `23/Nov/2026:13:00:00 +0000`.
pub fn gmt_date(out: &mut Vec<u8>, t: SystemTime) {
    let (y, m, d, hh, mm, ss, _) = civil(t);
    let _ = write!(
        out,
        "{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02} +0000",
        MONTHS[(m - 1) as usize]
    );
}

/// RFC 7231 date (`http_date` converter): `Mon, 23 Nov 2026 13:00:00 GMT`, with a
/// fraction when asked (`.123`).
pub fn http_date(out: &mut Vec<u8>, secs: i64, frac: Option<i64>) {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let (y, m, d, hh, mm, ss, _) = civil(t);
    let wday = DAYS[(secs.max(0) / 86_400 % 7) as usize];
    let _ = write!(
        out,
        "{wday}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02}",
        MONTHS[(m - 1) as usize]
    );
    if let Some(f) = frac {
        let _ = write!(out, ".{f}");
    }
    out.extend_from_slice(b" GMT");
}

/// (year, month, day, hour, minute, second, millisecond) in UTC (days-to-civil).
pub fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis(),
    )
}

/// The line of a built-in access log format (`option httplog`, `tcplog`, `clf`).
pub fn builtin(kind: crate::config::LogFormat) -> std::sync::Arc<LogFormat> {
    let text = match kind {
        crate::config::LogFormat::Tcp => TCP_LOG,
        crate::config::LogFormat::Clf => CLF_LOG,
        _ => HTTP_LOG,
    };
    let mut vars = super::vars::Registry::default();
    let names = super::Names::default();
    let mut files = std::collections::HashMap::new();
    let mut env = Env {
        vars: &mut vars,
        names: &names,
        files: &mut files,
        env: &|_| None,
        table: None,
        backend: None,
        captures: (0, 0),
        phase: None,
    };
    std::sync::Arc::new(
        LogFormat::parse(text, Mode::Log, &mut env).expect("the built-in log formats parse"),
    )
}

/// The `Smp` of a log-format evaluated as a string, for `use_backend %[...]` and
/// `set-var-fmt`: the bytes land in `s.cur`.
pub fn eval_to_scratch(f: &LogFormat, ctx: &Ctx<'_>, s: &mut Scratch) -> Smp<'static> {
    let mut out = std::mem::take(&mut s.tmp);
    out.clear();
    f.eval(ctx, None, s, &mut out);
    s.cur.clear();
    s.cur.extend_from_slice(&out);
    s.tmp = out;
    Smp::Str(super::sample::Data::Buf)
}
