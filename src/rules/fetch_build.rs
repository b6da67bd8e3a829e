//! Fetches by name (`Fetch::build`): HAProxy's names and old aliases, argument
//! checks and output types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::fetch::{Chan, Fetch, HdrAs, TlsFetch};
use super::parse::{int_arg, Env};
use super::sample::Type;
use super::stick::{self, ScFetch, ScWhich};
use super::vars::{Scope, VarId};

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
        "ssl_fc_err" => (FcErr, Type::Int),
        "ssl_c_err" => (CErr, Type::Int),
        "ssl_c_ca_err" => (CCaErr, Type::Int),
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
                let h = super::hostname();
                Ok((Fetch::Str(h.as_bytes().into()), Type::Str, false))
            }
            "unique-id" => one(Type::Str, Fetch::UniqueId),
            "uuid" => {
                max_args(name, args, 1)?;
                match arg(args, 0) {
                    None | Some("4") => Ok((Fetch::Uuid, Type::Str, false)),
                    Some(v) => Err(format!(
                        "fetch method 'uuid' : unsupported UUID version '{v}'"
                    )),
                }
            }
            "http_auth" | "http_auth_group" => {
                max_args(name, args, 1)?;
                let l = need("a userlist name")?;
                let ul = env
                    .names
                    .userlist(l)
                    .ok_or_else(|| {
                        format!("fetch method '{name}' : unable to find userlist '{l}'")
                    })?
                    .clone();
                Ok(if name == "http_auth" {
                    (Fetch::HttpAuth(ul), Type::Bool, false)
                } else {
                    (Fetch::HttpAuthGroup(ul), Type::Str, false)
                })
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
            // The connection's error code (HAProxy's CO_ER_*): a connection that
            // reaches a rule or a log line here had none (a failed TLS handshake or
            // PROXY header ends before either).
            "fc_err" => one(Type::Int, Fetch::Int(0)),
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
