//! Sample fetches (configuration manual 7.3.2 to 7.3.6): their names, argument
//! checks and output types (`build`), and their evaluation against a [`Ctx`]
//! (`eval`). Request fetches read the head as rules rewrote it so far; `hdr`,
//! `cookie` and `status`-like fetches follow the rule's direction.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::head::{cookies, params, set_cookie, Head};
use super::parse::{int_arg, Env};
use super::payload::{self, Look};
use super::sample::{Data, Scratch, Smp, Type};
use super::stick::{self, ScFetch, ScWhich};
use super::vars::{Scope, VarId};
use super::Ctx;

/// Which head a header or cookie fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chan {
    Req,
    Res,
    /// `hdr()`, `cookie()`: the rule's direction.
    Auto,
}

impl Chan {
    fn res(self) -> Option<bool> {
        match self {
            Chan::Req => Some(false),
            Chan::Res => Some(true),
            Chan::Auto => None,
        }
    }
}

/// How a header value is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HdrAs {
    Str,
    /// `hdr_ip`: an address (IPv4 with an optional port, or IPv6).
    Ip,
    /// `hdr_val`: an integer.
    Int,
}

/// TLS facts of the client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFetch {
    Fc,
    Sni,
    HasSni,
    Protocol,
    Cipher,
    Alpn,
    Resumed,
    CUsed,
    CVerify,
    CSDn,
    CIDn,
    CSerial,
    CDer,
}

#[derive(Debug, Clone)]
pub enum Fetch {
    // Constants and internal state.
    Bool(bool),
    Int(i64),
    Ip(IpAddr),
    Str(Box<[u8]>),
    Bin(Box<[u8]>),
    Var {
        id: VarId,
        /// For `proc` variables, looked up by name.
        name: Box<str>,
        default: Option<Box<[u8]>>,
    },
    Date {
        offset: i64,
        unit: u8,
    },
    Rand(u64),
    Pid,
    Thread,
    Stopping,
    Nbsrv(Option<usize>),
    BeConn(Option<usize>),
    SrvConn(usize, u32),
    SrvIsUp(usize, u32),
    Queue(Option<usize>),
    AvgQueue(Option<usize>),
    Connslots(Option<usize>),
    FeConn(Option<usize>),
    FeName,
    FeId,
    BeName,
    BeId,
    SrvName,
    SrvId,
    // Layer 4.
    Src,
    SrcPort,
    Dst,
    DstPort,
    Sc(ScFetch),
    // Layer 6 (tcp-request content).
    ReqLen,
    ReqPayload {
        offset: usize,
        len: usize,
    },
    ReqSslSni,
    ReqSslAlpn,
    ReqSslHelloType,
    ReqSslVer,
    ReqProtoHttp,
    RdpCookie(Box<[u8]>),
    RdpCookieCnt(Box<[u8]>),
    /// `wait_end`: true once the inspect delay is over.
    WaitEnd,
    // Layer 7.
    Method,
    Path,
    PathQ,
    Query,
    Url,
    Base,
    Base32,
    UrlParam {
        name: Box<[u8]>,
        delim: u8,
        int: bool,
    },
    UrlIp,
    UrlPort,
    Hdr {
        chan: Chan,
        name: Box<[u8]>,
        occ: Option<i64>,
        full: bool,
        r#as: HdrAs,
    },
    HdrCnt {
        chan: Chan,
        name: Box<[u8]>,
        full: bool,
    },
    HdrNames {
        chan: Chan,
        delim: Box<[u8]>,
    },
    Hdrs(Chan),
    Cook {
        chan: Chan,
        name: Box<[u8]>,
        int: bool,
    },
    CookCnt {
        chan: Chan,
        name: Box<[u8]>,
    },
    ReqVer,
    ResVer,
    Status,
    HttpFirstReq,
    CaptureReqHdr(usize),
    CaptureResHdr(usize),
    CaptureReqMethod,
    CaptureReqUri,
    CaptureReqVer,
    /// The requested host without its port (Host, or an absolute-form target): what
    /// the TOML `host` routes match. Not a haproxy.cfg keyword.
    HostName,
    Tls(TlsFetch),
}

/// The HAProxy names of the TLS fetches ringlb knows.
fn tls_fetch(name: &str) -> Option<(TlsFetch, Type)> {
    use TlsFetch::*;
    Some(match name {
        "ssl_fc" => (Fc, Type::Bool),
        "ssl_fc_sni" => (Sni, Type::Str),
        "ssl_fc_has_sni" => (HasSni, Type::Bool),
        "ssl_fc_protocol" => (Protocol, Type::Str),
        "ssl_fc_cipher" => (Cipher, Type::Str),
        "ssl_fc_alpn" => (Alpn, Type::Str),
        "ssl_fc_is_resumed" => (Resumed, Type::Bool),
        "ssl_c_used" | "ssl_fc_has_crt" => (CUsed, Type::Bool),
        "ssl_c_verify" => (CVerify, Type::Int),
        "ssl_c_s_dn" => (CSDn, Type::Str),
        "ssl_c_i_dn" => (CIDn, Type::Str),
        "ssl_c_serial" => (CSerial, Type::Bin),
        "ssl_c_der" => (CDer, Type::Bin),
        _ => return None,
    })
}

fn no_args(name: &str, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| !a.is_empty()) || args.len() > 1 {
        return Err(format!("fetch method '{name}' does not support any args"));
    }
    Ok(())
}

fn max_args(name: &str, args: &[String], n: usize) -> Result<(), String> {
    if args.len() > n {
        return Err(format!(
            "fetch method '{name}' : expected at most {n} argument(s), got {}",
            args.len()
        ));
    }
    Ok(())
}

fn arg(args: &[String], i: usize) -> Option<&str> {
    args.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

fn backend_arg(name: &str, args: &[String], env: &Env<'_>) -> Result<Option<usize>, String> {
    max_args(name, args, 1)?;
    match arg(args, 0) {
        None => Ok(env.backend),
        Some(b) => env
            .names
            .backend(b)
            .map(Some)
            .ok_or_else(|| format!("fetch method '{name}' : no such backend '{b}'")),
    }
}

fn server_arg(name: &str, args: &[String], env: &Env<'_>) -> Result<(usize, u32), String> {
    let Some(a) = arg(args, 0) else {
        return Err(format!(
            "fetch method '{name}' : expects [<backend>/]<server>"
        ));
    };
    let (b, s) = match a.split_once('/') {
        Some((b, s)) => (
            env.names
                .backend(b)
                .ok_or_else(|| format!("fetch method '{name}' : no such backend '{b}'"))?,
            s,
        ),
        None => (
            env.backend
                .ok_or_else(|| format!("fetch method '{name}' : expects <backend>/<server>"))?,
            a,
        ),
    };
    let servers = &env.names.backends[b].1;
    let i = servers
        .iter()
        .position(|x| x == s)
        .ok_or_else(|| format!("fetch method '{name}' : no such server '{a}'"))?;
    Ok((b, i as u32))
}

/// Header and cookie fetches: (fetch, type, multi).
fn http_fetch(name: &str, args: &[String]) -> Result<Option<(Fetch, Type, bool)>, String> {
    let chan = |p: &str| match p {
        "req" => Chan::Req,
        "res" => Chan::Res,
        _ => Chan::Auto,
    };
    let (prefix, base) = match name.split_once('.') {
        Some((p @ ("req" | "res"), b)) => (p, b),
        _ => ("", name),
    };
    // Old names: shdr (res.hdr), scook (res.cook), cookie (either side).
    let (prefix, base) = match (prefix, base) {
        ("", b) if b.starts_with("shdr") => ("res", &b[1..]),
        ("", b) if b.starts_with("scook") => ("res", &b[1..]),
        ("", "cookie") => ("", "cook"),
        ("", b) if b.starts_with("hdr") || b.starts_with("cook") => {
            // hdr() follows the direction; the hdr_* forms and cook* are request-side.
            let p = if b == "hdr" { "" } else { "req" };
            (p, b)
        }
        other => other,
    };
    let c = chan(prefix);
    let name_arg = || arg(args, 0).unwrap_or("").as_bytes().to_ascii_lowercase();
    let occ = |i: usize| -> Result<Option<i64>, String> {
        match arg(args, i) {
            None => Ok(None),
            Some(o) => int_arg(&format!("fetch method '{name}' occurrence"), o).map(Some),
        }
    };
    Ok(Some(match base {
        "hdr" | "fhdr" | "hdr_ip" | "hdr_val" => {
            max_args(name, args, 2)?;
            let occ = occ(1)?;
            let r#as = match base {
                "hdr_ip" => HdrAs::Ip,
                "hdr_val" => HdrAs::Int,
                _ => HdrAs::Str,
            };
            let typ = match r#as {
                HdrAs::Ip => Type::Ip,
                HdrAs::Int => Type::Int,
                HdrAs::Str => Type::Str,
            };
            (
                Fetch::Hdr {
                    chan: c,
                    name: name_arg().into(),
                    occ,
                    full: base == "fhdr",
                    r#as,
                },
                typ,
                occ.is_none(),
            )
        }
        "hdr_cnt" | "fhdr_cnt" => {
            max_args(name, args, 1)?;
            (
                Fetch::HdrCnt {
                    chan: c,
                    name: name_arg().into(),
                    full: base == "fhdr_cnt",
                },
                Type::Int,
                false,
            )
        }
        "hdr_names" => {
            max_args(name, args, 1)?;
            let delim = arg(args, 0).unwrap_or(",").as_bytes().into();
            (Fetch::HdrNames { chan: c, delim }, Type::Str, false)
        }
        "hdrs" => {
            no_args(name, args)?;
            (Fetch::Hdrs(c), Type::Bin, false)
        }
        "cook" | "cook_val" => {
            max_args(name, args, 1)?;
            let int = base == "cook_val";
            (
                Fetch::Cook {
                    chan: c,
                    name: arg(args, 0).unwrap_or("").as_bytes().into(),
                    int,
                },
                if int { Type::Int } else { Type::Str },
                true,
            )
        }
        "cook_cnt" => {
            max_args(name, args, 1)?;
            (
                Fetch::CookCnt {
                    chan: c,
                    name: arg(args, 0).unwrap_or("").as_bytes().into(),
                },
                Type::Int,
                false,
            )
        }
        _ => return Ok(None),
    }))
}

impl Fetch {
    /// What the fetch reads (to refuse it where that is not available).
    pub fn source(&self) -> super::parse::Source {
        use super::parse::Source as S;
        let chan = |c: &Chan| match c {
            Chan::Req => S::RequestHeaders,
            Chan::Res => S::ResponseHeaders,
            Chan::Auto => S::EitherHeaders,
        };
        match self {
            Fetch::Bool(_) | Fetch::Int(_) | Fetch::Ip(_) | Fetch::Str(_) | Fetch::Bin(_) => {
                S::Const
            }
            Fetch::Var { .. } | Fetch::Date { .. } | Fetch::Rand(_) | Fetch::Pid => S::Const,
            Fetch::Thread | Fetch::Stopping | Fetch::WaitEnd => S::Internal,
            Fetch::Nbsrv(_) | Fetch::BeConn(_) | Fetch::SrvConn(..) | Fetch::SrvIsUp(..) => {
                S::Internal
            }
            Fetch::Queue(_) | Fetch::AvgQueue(_) | Fetch::Connslots(_) | Fetch::FeConn(_) => {
                S::Internal
            }
            Fetch::FeName | Fetch::FeId => S::Frontend,
            Fetch::BeName | Fetch::BeId => S::Backend,
            Fetch::SrvName | Fetch::SrvId => S::Server,
            Fetch::Src | Fetch::SrcPort | Fetch::Dst | Fetch::DstPort => S::ClientAddr,
            Fetch::Sc(f) => match f.which {
                ScWhich::Src { .. } => S::ClientAddr,
                ScWhich::Tracked { .. } => S::Track,
            },
            Fetch::ReqLen
            | Fetch::ReqPayload { .. }
            | Fetch::ReqSslSni
            | Fetch::ReqSslAlpn
            | Fetch::ReqSslHelloType
            | Fetch::ReqSslVer
            | Fetch::RdpCookie(_)
            | Fetch::RdpCookieCnt(_) => S::RequestBuffer,
            Fetch::ReqProtoHttp
            | Fetch::Method
            | Fetch::HttpFirstReq
            | Fetch::CaptureReqHdr(_)
            | Fetch::CaptureReqMethod
            | Fetch::CaptureReqUri
            | Fetch::CaptureReqVer => S::Request,
            Fetch::Status | Fetch::CaptureResHdr(_) => S::Response,
            Fetch::Path
            | Fetch::PathQ
            | Fetch::Query
            | Fetch::Url
            | Fetch::Base
            | Fetch::Base32
            | Fetch::UrlParam { .. }
            | Fetch::UrlIp
            | Fetch::UrlPort
            | Fetch::ReqVer
            | Fetch::HostName => S::RequestHeaders,
            Fetch::ResVer => S::ResponseHeaders,
            Fetch::Hdr { chan: c, .. }
            | Fetch::HdrCnt { chan: c, .. }
            | Fetch::HdrNames { chan: c, .. }
            | Fetch::Hdrs(c)
            | Fetch::Cook { chan: c, .. }
            | Fetch::CookCnt { chan: c, .. } => chan(c),
            Fetch::Tls(_) => S::ClientConn,
        }
    }

    /// Reads the bytes a `tcp-request content` rule buffers (or waits for them).
    pub fn is_payload(&self) -> bool {
        matches!(
            self,
            Fetch::ReqLen
                | Fetch::ReqPayload { .. }
                | Fetch::ReqSslSni
                | Fetch::ReqSslAlpn
                | Fetch::ReqSslHelloType
                | Fetch::ReqSslVer
                | Fetch::ReqProtoHttp
                | Fetch::RdpCookie(_)
                | Fetch::RdpCookieCnt(_)
                | Fetch::WaitEnd
        )
    }

    /// A fetch by name: (fetch, output type, multi-valued in ACLs).
    pub fn build(
        name: &str,
        args: &[String],
        _parens: bool,
        env: &mut Env<'_>,
    ) -> Result<(Fetch, Type, bool), String> {
        if let Some(f) = http_fetch(name, args)? {
            return Ok(f);
        }
        if let Some((t, typ)) = tls_fetch(name) {
            if !matches!(t, TlsFetch::CSDn | TlsFetch::CIDn) {
                no_args(name, args)?;
            }
            return Ok((Fetch::Tls(t), typ, false));
        }
        if let Some(f) = sc_fetch(name, args, env)? {
            return Ok((Fetch::Sc(f), sc_type(f), false));
        }
        let one = |t: Type, f: Fetch| -> Result<(Fetch, Type, bool), String> {
            no_args(name, args)?;
            Ok((f, t, false))
        };
        let need = |what: &str| -> Result<&str, String> {
            arg(args, 0).ok_or_else(|| format!("fetch method '{name}' : missing {what}"))
        };
        match name {
            "always_true" => one(Type::Bool, Fetch::Bool(true)),
            "always_false" => one(Type::Bool, Fetch::Bool(false)),
            "bool" => {
                let v = need("a boolean")?;
                let b = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("fetch method 'bool' : invalid value '{v}'")),
                };
                Ok((Fetch::Bool(b), Type::Bool, false))
            }
            "int" => Ok((
                Fetch::Int(int_arg("int", need("an integer")?)?),
                Type::Int,
                false,
            )),
            "str" => Ok((
                Fetch::Str(args.first().map_or(&b""[..], |a| a.as_bytes()).into()),
                Type::Str,
                false,
            )),
            "ipv4" => need("an address")?
                .parse::<Ipv4Addr>()
                .map(|a| (Fetch::Ip(IpAddr::V4(a)), Type::Ip, false))
                .map_err(|_| "fetch method 'ipv4' : invalid IPv4 address".into()),
            "ipv6" => need("an address")?
                .parse::<Ipv6Addr>()
                .map(|a| (Fetch::Ip(IpAddr::V6(a)), Type::Ip, false))
                .map_err(|_| "fetch method 'ipv6' : invalid IPv6 address".into()),
            "bin" => super::pattern::parse_hex(need("hex digits")?)
                .map(|b| (Fetch::Bin(b.into()), Type::Bin, false))
                .map_err(|e| format!("fetch method 'bin' : {e}")),
            "meth" => Ok((
                Fetch::Str(need("a method")?.as_bytes().into()),
                Type::Str,
                false,
            )),
            "env" => {
                let v = (env.env)(need("a variable name")?).unwrap_or_default();
                // An unset variable: the fetch fails at run time, as HAProxy's.
                match (env.env)(&args[0]) {
                    Some(_) => Ok((Fetch::Str(v.into_bytes().into()), Type::Str, false)),
                    None => Ok((
                        Fetch::Var {
                            id: VarId {
                                scope: Scope::Proc,
                                index: u16::MAX,
                            },
                            name: "\0unset-env".into(),
                            default: None,
                        },
                        Type::Str,
                        false,
                    )),
                }
            }
            "var" => {
                max_args(name, args, 2)?;
                let full = need("a variable name")?;
                let id = env.vars.id(full)?;
                let name = full.split_once('.').map_or("", |(_, n)| n);
                Ok((
                    Fetch::Var {
                        id,
                        name: name.into(),
                        default: arg(args, 1).map(|d| d.as_bytes().into()),
                    },
                    Type::Any,
                    false,
                ))
            }
            "date" => {
                max_args(name, args, 2)?;
                let offset = match arg(args, 0) {
                    Some(o) => int_arg("date offset", o)?,
                    None => 0,
                };
                let unit = match arg(args, 1) {
                    None | Some("s") => 0,
                    Some("ms") => 1,
                    Some("us") => 2,
                    Some(u) => return Err(format!("fetch method 'date' : invalid unit '{u}'")),
                };
                Ok((Fetch::Date { offset, unit }, Type::Int, false))
            }
            "date_us" => one(Type::Int, Fetch::Date { offset: 0, unit: 3 }),
            "rand" => {
                max_args(name, args, 1)?;
                let range = match arg(args, 0) {
                    Some(r) => int_arg("rand range", r)?.max(0) as u64,
                    None => 0,
                };
                Ok((Fetch::Rand(range), Type::Int, false))
            }
            "pid" => one(Type::Int, Fetch::Pid),
            "proc" | "nbproc" => one(Type::Int, Fetch::Int(1)),
            "thread" => one(Type::Int, Fetch::Thread),
            "stopping" => one(Type::Bool, Fetch::Stopping),
            "hostname" => {
                no_args(name, args)?;
                let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                Ok((Fetch::Str(h.trim().as_bytes().into()), Type::Str, false))
            }
            "nbsrv" => Ok((
                Fetch::Nbsrv(backend_arg(name, args, env)?),
                Type::Int,
                false,
            )),
            "be_conn" => Ok((
                Fetch::BeConn(backend_arg(name, args, env)?),
                Type::Int,
                false,
            )),
            "queue" => Ok((
                Fetch::Queue(backend_arg(name, args, env)?),
                Type::Int,
                false,
            )),
            "avg_queue" => Ok((
                Fetch::AvgQueue(backend_arg(name, args, env)?),
                Type::Int,
                false,
            )),
            "connslots" => Ok((
                Fetch::Connslots(backend_arg(name, args, env)?),
                Type::Int,
                false,
            )),
            "fe_conn" => {
                max_args(name, args, 1)?;
                let f = match arg(args, 0) {
                    None => None,
                    Some(f) => Some(env.names.frontends.iter().position(|n| n == f).ok_or_else(
                        || format!("fetch method 'fe_conn' : no such frontend '{f}'"),
                    )?),
                };
                Ok((Fetch::FeConn(f), Type::Int, false))
            }
            "srv_conn" => {
                let (b, s) = server_arg(name, args, env)?;
                Ok((Fetch::SrvConn(b, s), Type::Int, false))
            }
            "srv_is_up" => {
                let (b, s) = server_arg(name, args, env)?;
                Ok((Fetch::SrvIsUp(b, s), Type::Bool, false))
            }
            "fe_name" => one(Type::Str, Fetch::FeName),
            "fe_id" => one(Type::Int, Fetch::FeId),
            "be_name" => one(Type::Str, Fetch::BeName),
            "be_id" => one(Type::Int, Fetch::BeId),
            "srv_name" => one(Type::Str, Fetch::SrvName),
            "srv_id" => one(Type::Int, Fetch::SrvId),
            "src" => one(Type::Ip, Fetch::Src),
            "src_port" => one(Type::Int, Fetch::SrcPort),
            "dst" => one(Type::Ip, Fetch::Dst),
            "dst_port" => one(Type::Int, Fetch::DstPort),
            "req.len" | "req_len" => one(Type::Int, Fetch::ReqLen),
            "req.payload" | "payload" => {
                if args.len() != 2 {
                    return Err(format!("fetch method '{name}' : expects <offset>,<length>"));
                }
                let offset = int_arg("payload offset", &args[0])?.max(0) as usize;
                let len = int_arg("payload length", &args[1])?.max(0) as usize;
                Ok((Fetch::ReqPayload { offset, len }, Type::Bin, false))
            }
            "req.ssl_sni" | "req_ssl_sni" => one(Type::Str, Fetch::ReqSslSni),
            "req.ssl_alpn" => one(Type::Str, Fetch::ReqSslAlpn),
            "req.ssl_hello_type" | "req_ssl_hello_type" => one(Type::Int, Fetch::ReqSslHelloType),
            "req.ssl_ver" | "req_ssl_ver" => one(Type::Int, Fetch::ReqSslVer),
            "req.proto_http" | "req_proto_http" => one(Type::Bool, Fetch::ReqProtoHttp),
            "req.rdp_cookie" | "rdp_cookie" | "req_rdp_cookie" => {
                max_args(name, args, 1)?;
                Ok((
                    Fetch::RdpCookie(arg(args, 0).unwrap_or("").as_bytes().into()),
                    Type::Str,
                    false,
                ))
            }
            "req.rdp_cookie_cnt" | "rdp_cookie_cnt" | "req_rdp_cookie_cnt" => {
                max_args(name, args, 1)?;
                Ok((
                    Fetch::RdpCookieCnt(arg(args, 0).unwrap_or("").as_bytes().into()),
                    Type::Int,
                    false,
                ))
            }
            "wait_end" => one(Type::Bool, Fetch::WaitEnd),
            "method" => one(Type::Str, Fetch::Method),
            "path" => one(Type::Str, Fetch::Path),
            "pathq" => one(Type::Str, Fetch::PathQ),
            "query" => one(Type::Str, Fetch::Query),
            "url" => one(Type::Str, Fetch::Url),
            "base" => one(Type::Str, Fetch::Base),
            "base32" => one(Type::Int, Fetch::Base32),
            "url_ip" => one(Type::Ip, Fetch::UrlIp),
            "url_port" => one(Type::Int, Fetch::UrlPort),
            "url_param" | "urlp" | "urlp_val" => {
                max_args(name, args, 2)?;
                let int = name == "urlp_val";
                Ok((
                    Fetch::UrlParam {
                        name: arg(args, 0).unwrap_or("").as_bytes().into(),
                        delim: arg(args, 1).map_or(b'?', |d| d.as_bytes()[0]),
                        int,
                    },
                    if int { Type::Int } else { Type::Str },
                    true,
                ))
            }
            "req.ver" | "req_ver" => one(Type::Str, Fetch::ReqVer),
            "res.ver" | "resp_ver" => one(Type::Str, Fetch::ResVer),
            "status" => one(Type::Int, Fetch::Status),
            "http_first_req" => one(Type::Bool, Fetch::HttpFirstReq),
            "capture.req.hdr" | "capture.res.hdr" => {
                let i = int_arg(name, need("a capture slot")?)?;
                let (max, res) = if name == "capture.req.hdr" {
                    (env.captures.0, false)
                } else {
                    (env.captures.1, true)
                };
                if i < 0 || i as usize >= max {
                    return Err(format!(
                        "fetch method '{name}' : no capture slot {i} (declared: {max})"
                    ));
                }
                let i = i as usize;
                Ok((
                    if res {
                        Fetch::CaptureResHdr(i)
                    } else {
                        Fetch::CaptureReqHdr(i)
                    },
                    Type::Str,
                    false,
                ))
            }
            "capture.req.method" => one(Type::Str, Fetch::CaptureReqMethod),
            "capture.req.uri" => one(Type::Str, Fetch::CaptureReqUri),
            "capture.req.ver" => one(Type::Str, Fetch::CaptureReqVer),
            other => Err(format!("unknown fetch method '{other}'")),
        }
    }

    /// One value (`nth`: the n-th occurrence of a multi-valued fetch, for ACLs).
    pub fn eval<'a>(
        &'a self,
        ctx: &Ctx<'a>,
        s: &mut Scratch,
        nth: Option<usize>,
    ) -> Option<Smp<'a>> {
        let single = |v: Option<Smp<'a>>| match nth {
            None | Some(0) => v,
            Some(_) => None,
        };
        let str_ref = |b: &'a [u8]| Smp::Str(Data::Ref(b));
        match self {
            Fetch::Hdr {
                chan,
                name,
                occ,
                full,
                r#as,
            } => {
                let head = ctx.head(chan.res())?;
                let v = match (occ, nth) {
                    (Some(o), None | Some(0)) => head_value(head, name, *o, *full),
                    (Some(_), Some(_)) => None,
                    (None, None) => head_value(head, name, -1, *full),
                    (None, Some(n)) => head_values(head, name, *full).nth(n),
                }?;
                match r#as {
                    HdrAs::Str => Some(str_ref(v)),
                    HdrAs::Int => Some(Smp::Int(super::sample::read_int64(v))),
                    HdrAs::Ip => hdr_ip(v).map(Smp::Ip),
                }
            }
            Fetch::Cook { chan, name, int } => {
                let head = ctx.head(chan.res())?;
                let is_res = match chan {
                    Chan::Res => true,
                    Chan::Req => false,
                    Chan::Auto => ctx.dir == super::Dir::Res,
                };
                let mut all = cookie_values(head, name, is_res);
                let v = match nth {
                    Some(n) => all.nth(n),
                    // Without a name, the first cookie; with one, the last occurrence.
                    None if name.is_empty() => all.next(),
                    None => all.last(),
                }?;
                Some(if *int {
                    Smp::Int(super::sample::read_int64(v))
                } else {
                    str_ref(v)
                })
            }
            Fetch::UrlParam { name, delim, int } => {
                let t = ctx.req?.target();
                let start = t.iter().position(|&c| c == b'?' || c == *delim)?;
                let mut all = params(&t[start + 1..], *delim)
                    .filter(|(k, _)| name.is_empty() || *k == &name[..])
                    .map(|(_, v)| v);
                let v = match nth {
                    Some(n) => all.nth(n),
                    None => all.next(),
                }?;
                Some(if *int {
                    Smp::Int(super::sample::read_int64(v))
                } else {
                    str_ref(v)
                })
            }
            other => single(other.eval_one(ctx, s)),
        }
    }

    fn eval_one<'a>(&'a self, ctx: &Ctx<'a>, s: &mut Scratch) -> Option<Smp<'a>> {
        let str_ref = |b: &'a [u8]| Smp::Str(Data::Ref(b));
        let shard = || ctx.shard;
        let be_or = |b: &Option<usize>| b.or(ctx.backend);
        Some(match self {
            Fetch::Bool(b) => Smp::Bool(*b),
            Fetch::Int(i) => Smp::Int(*i),
            Fetch::Ip(a) => Smp::Ip(*a),
            Fetch::Str(b) => str_ref(b),
            Fetch::Bin(b) => Smp::Bin(Data::Ref(b)),
            Fetch::Var { id, name, default } => {
                let found = if id.scope == Scope::Proc {
                    super::vars::proc_get(name, &mut s.cur)
                } else {
                    ctx.txn.vars.get(*id)
                };
                match (found, default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => str_ref(d),
                    (None, None) => return None,
                }
            }
            Fetch::Date { offset, unit } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                Smp::Int(match unit {
                    0 => now.as_secs() as i64 + offset,
                    1 => now.as_millis() as i64 + offset,
                    2 => now.as_micros() as i64 + offset,
                    _ => now.subsec_micros() as i64,
                })
            }
            Fetch::Rand(range) => {
                let r = u64::from(fastrand::u32(..));
                Smp::Int(if *range > 0 {
                    ((r * range) >> 32) as i64
                } else {
                    r as i64
                })
            }
            Fetch::Pid => Smp::Int(i64::from(std::process::id())),
            Fetch::Thread => Smp::Int(shard().map_or(0, |s| s.id as i64)),
            Fetch::Stopping => Smp::Bool(shard().is_some_and(|s| s.draining.get())),
            Fetch::Nbsrv(b) => {
                let be = &shard()?.upstreams.backends[be_or(b)?];
                let (active, backup) = be.usable_counts();
                Smp::Int(if active > 0 { active } else { backup } as i64)
            }
            Fetch::BeConn(b) => Smp::Int(shard()?.stats.backends[be_or(b)?].scur.get() as i64),
            Fetch::SrvConn(b, sv) => {
                Smp::Int(shard()?.stats.servers[*b][*sv as usize].scur.get() as i64)
            }
            Fetch::SrvIsUp(b, sv) => {
                Smp::Bool(shard()?.upstreams.backends[*b].servers[*sv as usize].usable())
            }
            Fetch::Queue(b) => Smp::Int(shard()?.upstreams.backends[be_or(b)?].queued() as i64),
            Fetch::AvgQueue(b) => {
                let be = &shard()?.upstreams.backends[be_or(b)?];
                let (active, backup) = be.usable_counts();
                let n = if active > 0 { active } else { backup };
                let q = be.queued() as i64;
                Smp::Int(if n == 0 { q } else { q / n as i64 })
            }
            Fetch::Connslots(b) => {
                let sh = shard()?;
                let bi = be_or(b)?;
                let be = &sh.upstreams.backends[bi];
                let mut free = 0i64;
                for (i, sv) in be.servers.iter().enumerate() {
                    if !sv.usable() {
                        continue;
                    }
                    let limit = sv.limit.get();
                    if limit == u32::MAX {
                        return Some(Smp::Int(-1));
                    }
                    free += i64::from(limit) - be.active[i].get() as i64;
                }
                Smp::Int(free + be.queued() as i64)
            }
            Fetch::FeConn(f) => Smp::Int(
                shard()?.stats.frontends[f.unwrap_or(ctx.frontend)]
                    .scur
                    .get() as i64,
            ),
            Fetch::FeName => str_ref(ctx.cfg?.frontends.get(ctx.frontend)?.name.as_bytes()),
            Fetch::FeId => Smp::Int(proxy_id(ctx, Some(ctx.frontend), None)?),
            Fetch::BeName => str_ref(ctx.cfg?.backends.get(ctx.backend?)?.name.as_bytes()),
            Fetch::BeId => Smp::Int(proxy_id(ctx, None, ctx.backend)?),
            Fetch::SrvName => str_ref(
                ctx.cfg?
                    .backends
                    .get(ctx.backend?)?
                    .servers
                    .get(ctx.server? as usize)?
                    .name
                    .as_bytes(),
            ),
            Fetch::SrvId => Smp::Int(i64::from(ctx.server?) + 1),
            Fetch::Src => Smp::Ip(canonical(ctx.src.ip())),
            Fetch::SrcPort => Smp::Int(i64::from(ctx.src.port())),
            Fetch::Dst => Smp::Ip(canonical(ctx.dst.ip())),
            Fetch::DstPort => Smp::Int(i64::from(ctx.dst.port())),
            Fetch::Sc(f) => return stick::eval(f, ctx),
            Fetch::ReqLen => Smp::Int(ctx.payload.map_or(0, |p| p.len()) as i64),
            Fetch::ReqPayload { offset, len } => {
                let p = ctx.payload?;
                let end = if *len == 0 { p.len() } else { offset + len };
                match p.get(*offset..end) {
                    Some(b) if *offset <= p.len() => Smp::Bin(Data::Ref(b)),
                    _ => return miss(ctx),
                }
            }
            Fetch::ReqSslSni => return look(ctx, payload::ssl_sni(ctx.payload?).map(str_ref)),
            Fetch::ReqSslAlpn => return look(ctx, payload::ssl_alpn(ctx.payload?).map(str_ref)),
            Fetch::ReqSslHelloType => {
                return look(ctx, payload::ssl_hello_type(ctx.payload?).map(Smp::Int))
            }
            Fetch::ReqSslVer => return look(ctx, payload::ssl_ver(ctx.payload?).map(Smp::Int)),
            Fetch::ReqProtoHttp => match ctx.req {
                Some(_) => Smp::Bool(true),
                None => return proto_http(ctx),
            },
            Fetch::RdpCookie(name) => {
                return look(ctx, payload::rdp_cookie(ctx.payload?, name).map(str_ref))
            }
            Fetch::RdpCookieCnt(name) => {
                return match payload::rdp_cookie(ctx.payload?, name) {
                    Look::Found(_) => Some(Smp::Int(1)),
                    Look::NotFound => Some(Smp::Int(0)),
                    Look::TooShort => miss(ctx).or(Some(Smp::Int(0))),
                }
            }
            Fetch::WaitEnd => {
                if ctx.payload_final {
                    Smp::Bool(true)
                } else {
                    return miss(ctx);
                }
            }
            Fetch::Method => str_ref(ctx.req?.method()),
            Fetch::Path => str_ref(ctx.req?.path()),
            Fetch::PathQ => str_ref(ctx.req?.path_and_query()),
            Fetch::Query => str_ref(ctx.req?.query()?),
            Fetch::Url => str_ref(ctx.req?.target()),
            Fetch::Base => {
                let r = ctx.req?;
                s.tmp.clear();
                if let Some(h) = head_value(r, b"host", 1, false) {
                    s.tmp.extend_from_slice(h);
                }
                s.tmp.extend_from_slice(r.path());
                s.swap();
                Smp::Str(Data::Buf)
            }
            Fetch::Base32 => {
                let r = ctx.req?;
                let mut h: u32 = 0;
                let mut feed = |b: &[u8]| {
                    for &c in b {
                        h = u32::from(c)
                            .wrapping_add(h << 6)
                            .wrapping_add(h << 16)
                            .wrapping_sub(h);
                    }
                };
                if let Some(host) = head_value(r, b"host", 1, false) {
                    feed(host);
                }
                let p = r.path();
                if p.starts_with(b"/") {
                    feed(p);
                }
                Smp::Int(i64::from(super::convert::full_hash(h)))
            }
            Fetch::UrlIp | Fetch::UrlPort => {
                let t = ctx.req?.target();
                let rest = t
                    .strip_prefix(b"http://")
                    .or_else(|| t.strip_prefix(b"HTTP://"))?;
                let auth = &rest[..rest.iter().position(|&c| c == b'/').unwrap_or(rest.len())];
                let (host, port) = match auth.iter().rposition(|&c| c == b':') {
                    Some(i) => (&auth[..i], &auth[i + 1..]),
                    None => (auth, &b"80"[..]),
                };
                if matches!(self, Fetch::UrlPort) {
                    Smp::Int(super::sample::read_int64(port))
                } else {
                    Smp::Ip(IpAddr::V4(std::str::from_utf8(host).ok()?.parse().ok()?))
                }
            }
            Fetch::HdrCnt { chan, name, full } => {
                let head = ctx.head(chan.res())?;
                Smp::Int(if name.is_empty() {
                    head.fields().count()
                } else {
                    head.values(name, *full).count()
                } as i64)
            }
            Fetch::HdrNames { chan, delim } => {
                let head = ctx.head(chan.res())?;
                s.tmp.clear();
                // Names as HAProxy holds them: in lower case.
                for (i, f) in head.fields().enumerate() {
                    if i > 0 {
                        s.tmp.extend_from_slice(delim);
                    }
                    let start = s.tmp.len();
                    s.tmp.extend_from_slice(f.name);
                    s.tmp[start..].make_ascii_lowercase();
                }
                s.swap();
                Smp::Str(Data::Buf)
            }
            Fetch::Hdrs(chan) => {
                let head = ctx.head(chan.res())?;
                Smp::Bin(Data::Ref(&head.bytes[head.first_line_len()..]))
            }
            Fetch::CookCnt { chan, name } => {
                let head = ctx.head(chan.res())?;
                let is_res = matches!(chan, Chan::Res)
                    || (matches!(chan, Chan::Auto) && ctx.dir == super::Dir::Res);
                Smp::Int(cookie_values(head, name, is_res).count() as i64)
            }
            Fetch::ReqVer => str_ref(version_digits(ctx.req?.version())),
            Fetch::ResVer => str_ref(version_digits(ctx.res?.version())),
            Fetch::Status => match ctx.txn.status {
                Some(st) if ctx.res.is_some() => Smp::Int(i64::from(st)),
                _ => Smp::Int(i64::from(ctx.res?.status()?)),
            },
            Fetch::HttpFirstReq => Smp::Bool(ctx.txn.first),
            Fetch::CaptureReqHdr(i) => cap(ctx.txn.req_caps.get(*i))?,
            Fetch::CaptureResHdr(i) => cap(ctx.txn.res_caps.get(*i))?,
            Fetch::CaptureReqMethod | Fetch::CaptureReqUri | Fetch::CaptureReqVer => {
                let line = &ctx.txn.reqline;
                if line.is_empty() {
                    return None;
                }
                let h = Head::new(line);
                match self {
                    Fetch::CaptureReqMethod => str_ref(h.method()),
                    Fetch::CaptureReqUri => str_ref(h.target()),
                    _ => str_ref(h.version()),
                }
            }
            Fetch::HostName => {
                let r = ctx.req?;
                let t = r.target();
                let host = if t.len() > 8
                    && (t[..7].eq_ignore_ascii_case(b"http://")
                        || t[..8].eq_ignore_ascii_case(b"https://"))
                {
                    let rest = &t[if t[4] == b':' { 7 } else { 8 }..];
                    &rest[..rest
                        .iter()
                        .position(|&c| c == b'/' || c == b'?')
                        .unwrap_or(rest.len())]
                } else {
                    head_value(r, b"host", 1, true)?
                };
                str_ref(strip_port(host))
            }
            Fetch::Tls(t) => return tls(*t, ctx, s),
            Fetch::Hdr { .. } | Fetch::Cook { .. } | Fetch::UrlParam { .. } => return None,
        })
    }
}

fn cap<'a>(c: Option<&'a super::Capture>) -> Option<Smp<'a>> {
    let c = c?;
    c.set.then_some(Smp::Str(Data::Ref(&c.bytes)))
}

/// IPv4-mapped IPv6 clients are IPv4 clients (as HAProxy reports them).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn proxy_id(ctx: &Ctx<'_>, fe: Option<usize>, be: Option<usize>) -> Option<i64> {
    let cfg = ctx.cfg?;
    cfg.proxy_order
        .iter()
        .position(|p| (fe.is_some() && p.frontend == fe) || (be.is_some() && p.backend == be))
        .map(|i| i as i64 + 1)
}

/// `HTTP/1.1` → `1.1`.
fn version_digits(v: &[u8]) -> &[u8] {
    v.strip_prefix(b"HTTP/").unwrap_or(v)
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.starts_with(b"[") {
        return match host.iter().position(|&c| c == b']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.iter().rposition(|&c| c == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// `req.hdr(name,occ)`: `occ` > 0 from the first, < 0 from the last. An empty name
/// means every header.
fn head_value<'a>(head: Head<'a>, name: &[u8], occ: i64, full: bool) -> Option<&'a [u8]> {
    head.value(name, if occ == 0 { -1 } else { occ }, full)
}

fn head_values<'a, 'n>(head: Head<'a>, name: &'n [u8], full: bool) -> super::head::Values<'a, 'n> {
    head.values(name, full)
}

/// Cookie values named `name` (any when empty) in `Cookie` (request) or
/// `Set-Cookie` (response) headers.
fn cookie_values<'a, 'n>(head: Head<'a>, name: &'n [u8], res: bool) -> CookieValues<'a, 'n> {
    let hname: &'static [u8] = if res { b"set-cookie" } else { b"cookie" };
    CookieValues {
        named: head.named(hname),
        name,
        res,
        cur: None,
    }
}

struct CookieValues<'a, 'n> {
    named: super::head::Named<'a, 'static>,
    name: &'n [u8],
    res: bool,
    cur: Option<super::head::Cookies<'a>>,
}

impl<'a> Iterator for CookieValues<'a, '_> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(c) = self.cur.as_mut() {
                match c.next() {
                    Some((k, v)) if self.name.is_empty() || k == self.name => return Some(v),
                    Some(_) => continue,
                    None => self.cur = None,
                }
            }
            let f = self.named.next()?;
            if self.res {
                if let Some((k, v)) = set_cookie(f.value) {
                    if self.name.is_empty() || k == self.name {
                        return Some(v);
                    }
                }
            } else {
                self.cur = Some(cookies(f.value));
            }
        }
    }
}

/// `hdr_ip`: an IPv4 address (optionally `:port`), or an IPv6 address.
fn hdr_ip(v: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(v).ok()?;
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(a));
    }
    if let Some((a, p)) = s.rsplit_once(':') {
        if let (Ok(a), Ok(_)) = (a.parse::<Ipv4Addr>(), p.parse::<u16>()) {
            return Some(IpAddr::V4(a));
        }
    }
    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// A payload fetch's answer: `TooShort` marks the context as missing data (the rule
/// waits) unless no more data can come.
fn look<'a>(ctx: &Ctx<'_>, l: Look<Smp<'a>>) -> Option<Smp<'a>> {
    match l {
        Look::Found(v) => Some(v),
        Look::NotFound => None,
        Look::TooShort => miss(ctx),
    }
}

fn miss<'a>(ctx: &Ctx<'_>) -> Option<Smp<'a>> {
    if !ctx.payload_final {
        ctx.miss.set(true);
    }
    None
}

/// `req.proto_http` on buffered bytes: a complete HTTP/1 request line and head.
fn proto_http<'a>(ctx: &Ctx<'_>) -> Option<Smp<'a>> {
    let p = ctx.payload?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(p) {
        Ok(httparse::Status::Complete(_)) => Some(Smp::Bool(true)),
        Ok(httparse::Status::Partial) => miss(ctx).or(Some(Smp::Bool(false))),
        Err(_) => Some(Smp::Bool(false)),
    }
}

fn tls<'a>(t: TlsFetch, ctx: &Ctx<'a>, s: &mut Scratch) -> Option<Smp<'a>> {
    use TlsFetch::*;
    let _ = s;
    let f = match (t, ctx.tls) {
        (Fc, f) => return Some(Smp::Bool(f.is_some())),
        (HasSni, f) => return Some(Smp::Bool(f.is_some_and(|f| f.sni.is_some()))),
        (CUsed, f) => return Some(Smp::Bool(f.is_some_and(|f| f.client_cert.is_some()))),
        (_, f) => f?,
    };
    let st = |b: &'a [u8]| Some(Smp::Str(Data::Ref(b)));
    match t {
        Sni => st(f.sni.as_deref()?.as_bytes()),
        Protocol => st(f.protocol?.as_bytes()),
        Cipher => st(f.cipher.as_deref()?.as_bytes()),
        Alpn => st(f.alpn.as_deref()?),
        Resumed => Some(Smp::Bool(f.resumed)),
        CVerify => Some(Smp::Int(f.client_cert.as_ref().map_or(0, |c| c.verify))),
        CSDn => st(f.client_cert.as_ref()?.subject_dn.as_bytes()),
        CIDn => st(f.client_cert.as_ref()?.issuer_dn.as_bytes()),
        CSerial => Some(Smp::Bin(Data::Ref(&f.client_cert.as_ref()?.serial))),
        CDer => Some(Smp::Bin(Data::Ref(&f.client_cert.as_ref()?.der))),
        Fc | HasSni | CUsed => None,
    }
}

/// `sc_http_req_rate(0)`, `sc0_conn_cur`, `src_gpc0`, `sc_inc_gpc0(1,t)`, ...
fn sc_fetch(name: &str, args: &[String], env: &Env<'_>) -> Result<Option<ScFetch>, String> {
    let table_arg = |a: Option<&str>| -> Result<Option<u32>, String> {
        match a {
            None => Ok(None),
            Some(t) => env
                .names
                .table(t)
                .map(|i| Some(i as u32))
                .ok_or_else(|| format!("fetch method '{name}' : no stick-table named '{t}'")),
        }
    };
    let (which, rest) = if let Some(rest) = name.strip_prefix("sc_") {
        let n = match arg(args, 0) {
            Some(n) => int_arg(name, n)?,
            None => {
                return Err(format!(
                    "fetch method '{name}' : missing the counter number"
                ))
            }
        };
        if !(0..3).contains(&n) {
            return Err(format!("fetch method '{name}' : counter {n} out of 0..2"));
        }
        max_args(name, args, 2)?;
        (
            ScWhich::Tracked {
                counter: n as u8,
                table: table_arg(arg(args, 1))?,
            },
            rest,
        )
    } else if let Some((n, rest)) = name
        .strip_prefix("sc")
        .and_then(|r| r.split_once('_'))
        .filter(|(n, _)| matches!(*n, "0" | "1" | "2"))
    {
        max_args(name, args, 1)?;
        (
            ScWhich::Tracked {
                counter: n.parse().unwrap_or(0),
                table: table_arg(arg(args, 0))?,
            },
            rest,
        )
    } else if let Some(rest) = name.strip_prefix("src_") {
        max_args(name, args, 1)?;
        let table = match table_arg(arg(args, 0))? {
            Some(t) => t,
            None => match env.table {
                Some(t) => t as u32,
                None => {
                    return Err(format!(
                        "fetch method '{name}' : no stick-table in this proxy and none named"
                    ))
                }
            },
        };
        if rest == "tracked" {
            return Ok(None);
        }
        (ScWhich::Src { table }, rest)
    } else {
        return Ok(None);
    };
    let rest = rest
        .strip_prefix("get_")
        .filter(|r| r.starts_with("gp"))
        .map_or(rest, |_| rest);
    let Some(op) = stick::parse_op(rest) else {
        return Err(format!("unknown fetch method '{name}'"));
    };
    if matches!(op, stick::ScOp::Tracked) && matches!(which, ScWhich::Src { .. }) {
        return Err(format!("unknown fetch method '{name}'"));
    }
    Ok(Some(ScFetch { which, op }))
}

fn sc_type(f: ScFetch) -> Type {
    match f.op {
        stick::ScOp::Tracked => Type::Bool,
        _ => Type::Int,
    }
}
