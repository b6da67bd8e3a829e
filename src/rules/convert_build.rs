//! Converters by name (`Conv::build`): HAProxy's names, argument checks and output
//! types, and the converters refused with a reason.

use std::ffi::CString;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::convert::{ArithOp, Conv, HashFn, IntArg};
use super::map::PatExpr;
use super::parse::{int_arg, Env};
use super::pattern::{Map, MapOut, Method};
use super::sample::Type;
use super::stick::{self, ScOp};
use super::vars::VarId;

fn arg(args: &[String], i: usize) -> Option<&str> {
    args.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

fn var_arg(env: &mut Env<'_>, full: &str) -> Result<(VarId, Box<str>), String> {
    let id = env.vars.id(full)?;
    Ok((id, full.split_once('.').map_or("", |(_, n)| n).into()))
}

fn int_or_var(env: &mut Env<'_>, name: &str, text: Option<&str>) -> Result<IntArg, String> {
    let t = text.ok_or_else(|| format!("converter '{name}' : missing argument"))?;
    let first = t.as_bytes()[0];
    if first.is_ascii_digit() || first == b'-' || first == b'+' {
        return int_arg(&format!("converter '{name}'"), t).map(IntArg::Const);
    }
    let (id, n) = var_arg(env, t)?;
    Ok(IntArg::Var(id, n))
}

/// `map_<match>[_<output>]` → (method, input type, output).
fn map_kind(name: &str) -> Option<(Method, Type, MapOut)> {
    let rest = name.strip_prefix("map")?;
    let (m, out) = match rest {
        "" => ("str", "str"),
        r => {
            let r = r.strip_prefix('_')?;
            match r.split_once('_') {
                Some((m, o)) => (m, o),
                None => match r {
                    "int" | "ip" if false => (r, "str"),
                    _ => (r, "str"),
                },
            }
        }
    };
    let method = match m {
        "str" => Method::Str,
        "beg" => Method::Beg,
        "sub" => Method::Sub,
        "dir" => Method::Dir,
        "dom" => Method::Dom,
        "end" => Method::End,
        "reg" => Method::Reg,
        "int" => Method::Int,
        "ip" => Method::Ip,
        _ => return None,
    };
    let out = match out {
        "str" => MapOut::Str,
        "int" => MapOut::Int,
        "ip" => MapOut::Ip,
        _ => return None,
    };
    let input = match method {
        Method::Int => Type::Int,
        Method::Ip => Type::Ip,
        _ => Type::Str,
    };
    Some((method, input, out))
}

/// The converters HAProxy 2.6 has and ringlb does not (a config error that says so).
const UNSUPPORTED: &[&str] = &[
    "51d.single",
    "aes_gcm_dec",
    "da-csv-conv",
    "digest",
    "fix_is_valid",
    "fix_tag_value",
    "hmac",
    "jwt_header_query",
    "jwt_payload_query",
    "jwt_verify",
    "language",
    "mqtt_field_value",
    "mqtt_is_valid",
    "protobuf",
    "secure_memcmp",
    "sha1",
    "sha2",
    "ungrpc",
    "wurfl-get",
    "json_query",
    "capture-req",
    "capture-res",
    "xxh32",
    "xxh64",
    "table_gpt",
    "table_gpc",
    "table_gpc_rate",
    "table_expire",
    "table_idle",
];

impl Conv {
    /// A converter by name, applied to a sample of type `prev`: (converter, output).
    pub fn build(
        name: &str,
        args: &[String],
        prev: Type,
        env: &mut Env<'_>,
    ) -> Result<(Conv, Type), String> {
        let no_args = |c: Conv, out: Type| -> Result<(Conv, Type), String> {
            if !args.is_empty() {
                return Err(format!("converter '{name}' does not support any args"));
            }
            Ok((c, out))
        };
        let need = |i: usize, what: &str| -> Result<&str, String> {
            arg(args, i).ok_or_else(|| format!("converter '{name}' : missing {what}"))
        };
        let (conv, out) = match name {
            "lower" => no_args(Conv::Lower, Type::Str)?,
            "upper" => no_args(Conv::Upper, Type::Str)?,
            "base64" => no_args(Conv::Base64 { url: false }, Type::Str)?,
            "ub64enc" => no_args(Conv::Base64 { url: true }, Type::Str)?,
            "b64dec" => no_args(Conv::B64Dec { url: false }, Type::Bin)?,
            "ub64dec" => no_args(Conv::B64Dec { url: true }, Type::Bin)?,
            "hex" => no_args(Conv::Hex, Type::Str)?,
            "hex2i" => no_args(Conv::Hex2i, Type::Int)?,
            "json" => {
                let utf8 = match arg(args, 0) {
                    None | Some("ascii") => false,
                    Some("utf8" | "utf8s" | "utf8p" | "utf8ps") => true,
                    Some(o) => return Err(format!("converter 'json' : unknown input code '{o}'")),
                };
                (Conv::Json { utf8 }, Type::Str)
            }
            "url_dec" => {
                let form = match arg(args, 0) {
                    Some(f) => int_arg("url_dec", f)? != 0,
                    None => false,
                };
                (Conv::UrlDec { form }, Type::Str)
            }
            "url_enc" => {
                match arg(args, 0) {
                    None | Some("query") => {}
                    Some(o) => return Err(format!("converter 'url_enc' : unknown type '{o}'")),
                }
                (Conv::UrlEnc, Type::Str)
            }
            "regsub" => {
                let re = need(0, "a regex")?;
                let subst = args.get(1).map_or(&b""[..], |s| s.as_bytes());
                let flags = arg(args, 2).unwrap_or("");
                if let Some(bad) = flags.chars().find(|c| !matches!(c, 'g' | 'i')) {
                    return Err(format!("converter 'regsub' : unknown flag '{bad}'"));
                }
                let re = regex::bytes::RegexBuilder::new(re)
                    .case_insensitive(flags.contains('i'))
                    .build()
                    .map_err(|e| format!("converter 'regsub' : invalid regex: {e}"))?;
                (
                    Conv::Regsub {
                        re,
                        subst: subst.into(),
                        global: flags.contains('g'),
                    },
                    Type::Str,
                )
            }
            "field" | "word" => {
                let index = int_arg(name, need(0, "an index")?)?;
                let delims: Box<[u8]> = need(1, "delimiters")?.as_bytes().into();
                let count = match arg(args, 2) {
                    Some(c) => int_arg(name, c)?,
                    None => 1,
                };
                if index == 0 {
                    return Err(format!("converter '{name}' : index must not be 0"));
                }
                if count < 0 {
                    return Err(format!("converter '{name}' : count must not be negative"));
                }
                let c = if name == "field" {
                    Conv::Field {
                        index,
                        delims,
                        count,
                    }
                } else {
                    Conv::Word {
                        index,
                        delims,
                        count,
                    }
                };
                (c, Type::Str)
            }
            "ipmask" => {
                let m4 = need(0, "an IPv4 mask")?;
                let mask4 = match m4.parse::<u8>() {
                    Ok(n) if n <= 32 => {
                        Ipv4Addr::from(if n == 0 { 0 } else { u32::MAX << (32 - n) })
                    }
                    _ => m4
                        .parse::<Ipv4Addr>()
                        .map_err(|_| format!("converter 'ipmask' : invalid mask '{m4}'"))?,
                };
                let mask6 = match arg(args, 1) {
                    None => None,
                    Some(m6) => Some(match m6.parse::<u8>() {
                        Ok(n) if n <= 128 => {
                            Ipv6Addr::from(if n == 0 { 0 } else { u128::MAX << (128 - n) })
                        }
                        _ => m6
                            .parse::<Ipv6Addr>()
                            .map_err(|_| format!("converter 'ipmask' : invalid mask '{m6}'"))?,
                    }),
                };
                (Conv::Ipmask(mask4, mask6), Type::Ip)
            }
            "bytes" => {
                let offset = int_arg("bytes", need(0, "an offset")?)?;
                let len = match arg(args, 1) {
                    Some(l) => Some(int_arg("bytes", l)?),
                    None => None,
                };
                if offset < 0 || len.is_some_and(|l| l < 0) {
                    return Err("converter 'bytes' : negative offset or length".into());
                }
                (
                    Conv::Bytes {
                        offset: offset as usize,
                        len: len.map(|l| l as usize),
                    },
                    Type::Bin,
                )
            }
            "length" => no_args(Conv::Length, Type::Int)?,
            "concat" | "add_item" => {
                let first: Box<[u8]> = args.first().map_or(&b""[..], |s| s.as_bytes()).into();
                let var = match arg(args, 1) {
                    Some(v) => Some(var_arg(env, v)?),
                    None => None,
                };
                let last: Box<[u8]> = args.get(2).map_or(&b""[..], |s| s.as_bytes()).into();
                if args.len() > 3 {
                    return Err(format!("converter '{name}' : too many arguments"));
                }
                if name == "concat" {
                    (
                        Conv::Concat {
                            start: first,
                            var,
                            end: last,
                        },
                        Type::Str,
                    )
                } else {
                    if var.is_none() && last.is_empty() {
                        return Err("converter 'add_item' : expects a variable or a suffix".into());
                    }
                    (
                        Conv::AddItem {
                            delim: first,
                            var,
                            suffix: last,
                        },
                        Type::Str,
                    )
                }
            }
            "add" | "sub" | "mul" | "div" | "mod" | "and" | "or" | "xor" => {
                let op = match name {
                    "add" => ArithOp::Add,
                    "sub" => ArithOp::Sub,
                    "mul" => ArithOp::Mul,
                    "div" => ArithOp::Div,
                    "mod" => ArithOp::Mod,
                    "and" => ArithOp::And,
                    "or" => ArithOp::Or,
                    _ => ArithOp::Xor,
                };
                (
                    Conv::Arith(op, int_or_var(env, name, arg(args, 0))?),
                    Type::Int,
                )
            }
            "neg" => no_args(Conv::Neg, Type::Int)?,
            "cpl" => no_args(Conv::Cpl, Type::Int)?,
            "bool" => no_args(Conv::Bool, Type::Bool)?,
            "not" => no_args(Conv::Not, Type::Bool)?,
            "odd" => no_args(Conv::Odd, Type::Bool)?,
            "even" => no_args(Conv::Even, Type::Bool)?,
            "ltrim" | "rtrim" => {
                let chars: Box<[u8]> = need(0, "characters")?.as_bytes().into();
                (
                    if name == "ltrim" {
                        Conv::Ltrim(chars)
                    } else {
                        Conv::Rtrim(chars)
                    },
                    Type::Str,
                )
            }
            "host_only" => no_args(Conv::HostOnly, Type::Str)?,
            "port_only" => no_args(Conv::PortOnly, Type::Int)?,
            "iif" => {
                if args.len() != 2 {
                    return Err("converter 'iif' : expects <true>,<false>".into());
                }
                (
                    Conv::Iif(args[0].as_bytes().into(), args[1].as_bytes().into()),
                    Type::Str,
                )
            }
            "strcmp" => {
                let (id, n) = var_arg(env, need(0, "a variable")?)?;
                (Conv::Strcmp(id, n), Type::Int)
            }
            "crc32" | "crc32c" | "djb2" | "sdbm" | "wt6" => {
                let h = match name {
                    "crc32" => HashFn::Crc32,
                    "crc32c" => HashFn::Crc32c,
                    "djb2" => HashFn::Djb2,
                    "sdbm" => HashFn::Sdbm,
                    _ => HashFn::Wt6,
                };
                let avalanche = match arg(args, 0) {
                    Some(a) => int_arg(name, a)? != 0,
                    None => false,
                };
                (Conv::Hash(h, avalanche), Type::Int)
            }
            "xxh3" => {
                let seed = match arg(args, 0) {
                    Some(s) => int_arg("xxh3", s)? as u64,
                    None => 0,
                };
                (Conv::Xxh3(seed), Type::Int)
            }
            "http_date" => {
                let offset = match arg(args, 0) {
                    Some(o) => int_arg("http_date", o)?,
                    None => 0,
                };
                let unit = match arg(args, 1) {
                    None | Some("s") => 0,
                    Some("ms") => 1,
                    Some("us") => 2,
                    Some(u) => return Err(format!("converter 'http_date' : invalid unit '{u}'")),
                };
                (Conv::HttpDate { offset, unit }, Type::Str)
            }
            "utime" | "ltime" => {
                let f = need(0, "a format")?;
                let format =
                    CString::new(f).map_err(|_| format!("converter '{name}' : NUL in format"))?;
                let offset = match arg(args, 1) {
                    Some(o) => int_arg(name, o)?,
                    None => 0,
                };
                (
                    Conv::Strftime {
                        format,
                        local: name == "ltime",
                        offset,
                    },
                    Type::Str,
                )
            }
            "be2dec" | "be2hex" => {
                let sep: Box<[u8]> = args.first().map_or(&b""[..], |s| s.as_bytes()).into();
                let chunk = match arg(args, 1) {
                    Some(c) => int_arg(name, c)?,
                    None if name == "be2dec" => {
                        return Err("converter 'be2dec' : missing chunk size".into())
                    }
                    None => 1,
                };
                if !(1..=8).contains(&chunk) && name == "be2dec" || chunk < 1 {
                    return Err(format!("converter '{name}' : invalid chunk size"));
                }
                let truncate = match arg(args, 2) {
                    Some(t) => int_arg(name, t)? != 0,
                    None => false,
                };
                let chunk = chunk as usize;
                (
                    if name == "be2dec" {
                        Conv::Be2Dec {
                            sep,
                            chunk,
                            truncate,
                        }
                    } else {
                        Conv::Be2Hex {
                            sep,
                            chunk,
                            truncate,
                        }
                    },
                    Type::Str,
                )
            }
            "cut_crlf" => no_args(Conv::CutCrlf, Type::Str)?,
            "debug" => (Conv::Debug, prev),
            "set-var" | "unset-var" => {
                let full = need(0, "a variable name")?;
                let (id, n) = var_arg(env, full)?;
                (
                    if name == "set-var" {
                        Conv::SetVar(id, n)
                    } else {
                        Conv::UnsetVar(id, n)
                    },
                    prev,
                )
            }
            "nbsrv" => no_args(Conv::Nbsrv, Type::Int)?,
            "srv_queue" => no_args(Conv::SrvQueue, Type::Int)?,
            "in_table" => {
                let t = need(0, "a table")?;
                let i = env
                    .names
                    .table(t)
                    .ok_or_else(|| format!("converter 'in_table' : no stick-table named '{t}'"))?;
                (Conv::InTable(i as u32), Type::Bool)
            }
            other if other.starts_with("table_") && !UNSUPPORTED.contains(&other) => {
                let op = stick::parse_op(&other["table_".len()..])
                    .filter(|o| !matches!(o, ScOp::Tracked | ScOp::Inc(_) | ScOp::Clr(_)))
                    .ok_or_else(|| format!("unknown converter '{other}'"))?;
                let t = need(0, "a table")?;
                let i = env
                    .names
                    .table(t)
                    .ok_or_else(|| format!("converter '{other}' : no stick-table named '{t}'"))?;
                (Conv::Table(i as u32, op), Type::Int)
            }
            other => {
                if let Some((method, _input, out)) = map_kind(other) {
                    let file = need(0, "a map file")?;
                    let default: Option<Box<[u8]>> = args.get(1).map(|d| d.as_bytes().into());
                    let r = env
                        .patterns
                        .file(file, true, false)
                        .map_err(|e| format!("converter '{other}' : {e}"))?;
                    let map = Map::load(&env.patterns.refs[r].entries, file, method, out)
                        .map_err(|e| format!("converter '{other}' : {e}"))?;
                    let live = env.patterns.expr(PatExpr {
                        refs: vec![(r as u32, false)],
                        method,
                        icase: false,
                        meth: false,
                        out: Some(out),
                    });
                    if let (MapOut::Int, Some(d)) = (out, &default) {
                        let d: &[u8] = d;
                        if std::str::from_utf8(d)
                            .ok()
                            .and_then(|s| s.trim().parse::<i64>().ok())
                            .is_none()
                        {
                            return Err(format!(
                                "converter '{other}' : default value is not an integer"
                            ));
                        }
                    }
                    let t = match out {
                        MapOut::Str => Type::Str,
                        MapOut::Int => Type::Int,
                        MapOut::Ip => Type::Ip,
                    };
                    (Conv::Map(Arc::new(map), live, default), t)
                } else if UNSUPPORTED.contains(&other) {
                    return Err(format!("converter '{other}' is not supported by ringlb"));
                } else {
                    return Err(format!("unknown converter '{other}'"));
                }
            }
        };
        if !prev.casts_to(conv.input()) {
            return Err(format!(
                "converter '{name}' cannot be applied (it takes {} and gets {})",
                conv.input().name(),
                prev.name()
            ));
        }
        Ok((conv, out))
    }
}
