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

use std::net::SocketAddr;
use std::time::SystemTime;

use super::parse::{Env, Expr};
use super::sample::{Scratch, Smp};
use super::Ctx;

pub use super::lf_eval::{civil, gmt_date, http_date, log_date};
use super::lf_eval::{http_encode, text};

/// HAProxy's `option httplog` line.
pub const HTTP_LOG: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";
/// HAProxy 2.6's `option httpslog` line: `option httplog`'s and the connection's
/// TLS facts (errors, resumption, SNI, version, cipher).
pub const HTTPS_LOG: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_fc_is_resumed] %[ssl_fc_sni]/%sslv/%sslc";
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
    pub(super) mode: Mode,
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
    /// A retry went to another server: `%rc` shows `+N`, as HAProxy writes it.
    pub redispatched: bool,
    /// %sq %bq.
    pub queues: [u64; 2],
    /// The request line (`None`: `<BADREQ>`).
    pub request_line: Option<&'a [u8]>,
    pub counter: u64,
}

impl LogFormat {
    /// Whether the format evaluates a sample expression (`%[...]`): one may read what
    /// rules keep for a request (variables, `capture.req.*`).
    pub fn reads_samples(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n, Node::Expr(..)))
    }

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

/// The line of a built-in access log format: [`HTTP_LOG`], [`HTTPS_LOG`], [`TCP_LOG`]
/// or [`CLF_LOG`] (the config's `LogFormat::builtin` picks one).
pub fn builtin(text: &str) -> std::sync::Arc<LogFormat> {
    let mut vars = super::vars::Registry::default();
    let names = super::Names::default();
    let mut patterns = super::map::PatRefs::default();
    let mut env = Env {
        vars: &mut vars,
        names: &names,
        patterns: &mut patterns,
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
