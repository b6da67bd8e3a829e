//! Converters (configuration manual 7.3.1): names, argument checks and types
//! (`build`), and their evaluation. String results are written into the scratch
//! buffers (`Scratch`), or are slices of their input when they can be (`field`,
//! `word`, `bytes`, trims): nothing is allocated for them per request.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use base64::Engine;

use super::parse::{int_arg, Env};
use super::pattern::{Map, MapOut, Method, PatternFile};
use super::sample::{read_int64, write_int, Data, Scratch, Smp, Type};
use super::stick::{self, ScOp};
use super::vars::VarId;
use super::Ctx;

/// An integer argument or a variable holding one (`add(3)`, `add(txn.n)`).
#[derive(Debug, Clone)]
pub enum IntArg {
    Const(i64),
    Var(VarId, Box<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFn {
    Crc32,
    Crc32c,
    Djb2,
    Sdbm,
    Wt6,
}

#[derive(Debug, Clone)]
pub enum Conv {
    Lower,
    Upper,
    Base64 {
        url: bool,
    },
    B64Dec {
        url: bool,
    },
    Hex,
    Hex2i,
    Json {
        utf8: bool,
    },
    UrlDec {
        form: bool,
    },
    UrlEnc,
    Map(Arc<Map>, Option<Box<[u8]>>),
    Regsub {
        re: regex::bytes::Regex,
        subst: Box<[u8]>,
        global: bool,
    },
    Field {
        index: i64,
        delims: Box<[u8]>,
        count: i64,
    },
    Word {
        index: i64,
        delims: Box<[u8]>,
        count: i64,
    },
    Ipmask(Ipv4Addr, Option<Ipv6Addr>),
    Bytes {
        offset: usize,
        len: Option<usize>,
    },
    Length,
    Concat {
        start: Box<[u8]>,
        var: Option<(VarId, Box<str>)>,
        end: Box<[u8]>,
    },
    AddItem {
        delim: Box<[u8]>,
        var: Option<(VarId, Box<str>)>,
        suffix: Box<[u8]>,
    },
    Arith(ArithOp, IntArg),
    Neg,
    Cpl,
    Bool,
    Not,
    Odd,
    Even,
    Ltrim(Box<[u8]>),
    Rtrim(Box<[u8]>),
    HostOnly,
    PortOnly,
    Iif(Box<[u8]>, Box<[u8]>),
    Strcmp(VarId, Box<str>),
    Hash(HashFn, bool),
    Xxh3(u64),
    HttpDate {
        offset: i64,
        unit: u8,
    },
    Strftime {
        format: CString,
        local: bool,
        offset: i64,
    },
    Be2Dec {
        sep: Box<[u8]>,
        chunk: usize,
        truncate: bool,
    },
    Be2Hex {
        sep: Box<[u8]>,
        chunk: usize,
        truncate: bool,
    },
    CutCrlf,
    Debug,
    SetVar(VarId, Box<str>),
    UnsetVar(VarId, Box<str>),
    Nbsrv,
    SrvQueue,
    InTable(u32),
    Table(u32, ScOp),
}

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
    /// The type the converter takes (its input is cast to it first).
    pub fn input(&self) -> Type {
        use Conv::*;
        match self {
            Lower
            | Upper
            | Hex2i
            | Json { .. }
            | UrlDec { .. }
            | UrlEnc
            | Regsub { .. }
            | Field { .. }
            | Word { .. }
            | Length
            | Concat { .. }
            | AddItem { .. }
            | Ltrim(_)
            | Rtrim(_)
            | HostOnly
            | PortOnly
            | Strcmp(..)
            | CutCrlf
            | B64Dec { .. }
            | Nbsrv
            | SrvQueue => Type::Str,
            Base64 { .. }
            | Hex
            | Bytes { .. }
            | Hash(..)
            | Xxh3(_)
            | Be2Dec { .. }
            | Be2Hex { .. } => Type::Bin,
            Map(m, _) => m.keys.method.expect(),
            Ipmask(..) => Type::Ip,
            Arith(..) | Neg | Cpl | Bool | Not | Odd | Even | HttpDate { .. } | Strftime { .. } => {
                Type::Int
            }
            Iif(..) => Type::Bool,
            Debug | SetVar(..) | UnsetVar(..) | InTable(_) | Table(..) => Type::Any,
        }
    }

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
                    let pf = PatternFile::cached(env.files, file, true)
                        .map_err(|e| format!("converter '{other}' : {e}"))?;
                    let map = Map::load(&pf, method, out)
                        .map_err(|e| format!("converter '{other}' : {e}"))?;
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
                    (Conv::Map(Arc::new(map), default), t)
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

    /// Applies the converter to a sample already cast to `self.input()`.
    pub fn eval<'a>(&'a self, smp: Smp<'a>, ctx: &Ctx<'a>, s: &mut Scratch) -> Option<Smp<'a>> {
        use Conv::*;
        match self {
            Lower | Upper => {
                let up = matches!(self, Upper);
                match smp {
                    Smp::Str(Data::Ref(r)) => {
                        s.tmp.clear();
                        s.tmp.extend_from_slice(r);
                        s.swap();
                    }
                    Smp::Str(Data::Buf) => {}
                    _ => return None,
                }
                if up {
                    s.cur.make_ascii_uppercase();
                } else {
                    s.cur.make_ascii_lowercase();
                }
                Some(Smp::Str(Data::Buf))
            }
            Base64 { url } => transform(smp, s, |b, out| {
                let e = if *url {
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD
                } else {
                    &base64::engine::general_purpose::STANDARD
                };
                let start = out.len();
                out.resize(start + base64::encoded_len(b.len(), !*url).unwrap_or(0), 0);
                let n = e.encode_slice(b, &mut out[start..]).unwrap_or(0);
                out.truncate(start + n);
                true
            }),
            B64Dec { url } => {
                let r = transform(smp, s, |b, out| {
                    let e = if *url {
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    } else {
                        &base64::engine::general_purpose::STANDARD
                    };
                    let start = out.len();
                    out.resize(start + b.len() * 3 / 4 + 3, 0);
                    match e.decode_slice(b, &mut out[start..]) {
                        Ok(n) => {
                            out.truncate(start + n);
                            true
                        }
                        Err(_) => false,
                    }
                })?;
                Some(Smp::Bin(match r {
                    Smp::Str(d) | Smp::Bin(d) => d,
                    _ => Data::Buf,
                }))
            }
            Hex => transform(smp, s, |b, out| {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                for &c in b {
                    out.push(HEX[(c >> 4) as usize]);
                    out.push(HEX[(c & 15) as usize]);
                }
                true
            }),
            Hex2i => {
                let b = smp.bytes(&s.cur)?;
                let mut v: i64 = 0;
                for &c in b {
                    let d = (c as char).to_digit(16)?;
                    v = v.wrapping_mul(16).wrapping_add(i64::from(d));
                }
                Some(Smp::Int(v))
            }
            Json { utf8 } => transform(smp, s, |b, out| json_escape(b, *utf8, out)),
            UrlDec { form } => transform(smp, s, |b, out| url_decode(b, *form, out)),
            UrlEnc => transform(smp, s, |b, out| {
                for &c in b {
                    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                        out.push(c);
                    } else {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.extend_from_slice(&[
                            b'%',
                            HEX[(c >> 4) as usize],
                            HEX[(c & 15) as usize],
                        ]);
                    }
                }
                true
            }),
            Map(map, default) => match map.lookup(&smp, &s.cur) {
                Some(v) => Some(v.smp()),
                None => {
                    let d = default.as_deref()?;
                    Some(match map.out {
                        MapOut::Str => Smp::Str(Data::Ref(d)),
                        MapOut::Int => Smp::Int(read_int64(d)),
                        MapOut::Ip => Smp::Ip(super::sample::parse_ip(d)?),
                    })
                }
            },
            Regsub { re, subst, global } => transform(smp, s, |b, out| {
                regsub(re, subst, *global, b, out);
                true
            }),
            Field {
                index,
                delims,
                count,
            } => slice(smp, s, |b| field(b, *index, delims, *count)),
            Word {
                index,
                delims,
                count,
            } => slice(smp, s, |b| {
                Some(word(b, *index, delims, *count).unwrap_or((0, 0)))
            }),
            Ipmask(m4, m6) => match smp {
                Smp::Ip(IpAddr::V4(a)) => Some(Smp::Ip(IpAddr::V4(Ipv4Addr::from(
                    u32::from(a) & u32::from(*m4),
                )))),
                Smp::Ip(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                    Some(v4) => Some(Smp::Ip(IpAddr::V4(Ipv4Addr::from(
                        u32::from(v4) & u32::from(*m4),
                    )))),
                    None => Some(Smp::Ip(IpAddr::V6(Ipv6Addr::from(
                        u128::from(a) & u128::from((*m6)?),
                    )))),
                },
                _ => None,
            },
            Bytes { offset, len } => {
                let r = slice(smp, s, |b| {
                    if *offset >= b.len() {
                        return None;
                    }
                    let l = len.map_or(b.len() - offset, |l| l.min(b.len() - offset));
                    Some((*offset, l))
                })?;
                Some(Smp::Bin(match r {
                    Smp::Str(d) | Smp::Bin(d) => d,
                    _ => Data::Buf,
                }))
            }
            Length => Some(Smp::Int(smp.bytes(&s.cur)?.len() as i64)),
            Concat { start, var, end } => {
                let v = var.as_ref().and_then(|(id, _)| ctx.txn.vars.get(*id));
                append(smp, s, |out, cur| {
                    out.extend_from_slice(start);
                    if let Some(v) = &v {
                        v.write_str(cur, out);
                    }
                    out.extend_from_slice(end);
                })
            }
            AddItem { delim, var, suffix } => {
                let v = var.as_ref().and_then(|(id, _)| ctx.txn.vars.get(*id));
                let empty_in = smp.bytes(&s.cur).is_none_or(|b| b.is_empty());
                // A variable's string form is empty only for an empty string.
                let var_empty = match &v {
                    None => true,
                    Some(Smp::Str(_) | Smp::Bin(_)) => v
                        .as_ref()
                        .and_then(|v| v.bytes(&[]))
                        .is_none_or(|b| b.is_empty()),
                    Some(_) => false,
                };
                append(smp, s, |out, cur| {
                    if !empty_in && (!var_empty || !suffix.is_empty()) {
                        out.extend_from_slice(delim);
                    }
                    if let Some(v) = &v {
                        v.write_str(cur, out);
                    }
                    out.extend_from_slice(suffix);
                })
            }
            Arith(op, a) => {
                let x = smp.as_int(&s.cur)?;
                let y = match a {
                    IntArg::Const(c) => *c,
                    IntArg::Var(id, _) => ctx.txn.vars.get(*id)?.as_int(&[])?,
                };
                Some(Smp::Int(match op {
                    ArithOp::Add => x.saturating_add(y),
                    ArithOp::Sub => x.saturating_sub(y),
                    ArithOp::Mul => x.saturating_mul(y),
                    ArithOp::Div => {
                        if y == 0 {
                            i64::MAX
                        } else {
                            x.checked_div(y).unwrap_or(i64::MAX)
                        }
                    }
                    ArithOp::Mod => {
                        if y == 0 {
                            0
                        } else {
                            x.checked_rem(y).unwrap_or(0)
                        }
                    }
                    ArithOp::And => x & y,
                    ArithOp::Or => x | y,
                    ArithOp::Xor => x ^ y,
                }))
            }
            Neg => Some(Smp::Int(
                smp.as_int(&s.cur)?.checked_neg().unwrap_or(i64::MAX),
            )),
            Cpl => Some(Smp::Int(!smp.as_int(&s.cur)?)),
            Bool => Some(Smp::Bool(smp.as_int(&s.cur)? != 0)),
            Not => Some(Smp::Bool(smp.as_int(&s.cur)? == 0)),
            Odd => Some(Smp::Bool(smp.as_int(&s.cur)? & 1 == 1)),
            Even => Some(Smp::Bool(smp.as_int(&s.cur)? & 1 == 0)),
            Ltrim(chars) => slice(smp, s, |b| {
                let n = b.iter().take_while(|c| chars.contains(c)).count();
                Some((n, b.len() - n))
            }),
            Rtrim(chars) => slice(smp, s, |b| {
                let n = b.iter().rev().take_while(|c| chars.contains(c)).count();
                Some((0, b.len() - n))
            }),
            HostOnly => {
                // The host in lower case, without its port (`host:port`, `[v6]:port`).
                let r = slice(smp, s, |b| Some((0, host_port(b).0.len())))?;
                if let Smp::Str(Data::Ref(b)) = r {
                    s.tmp.clear();
                    s.tmp.extend_from_slice(b);
                    s.swap();
                }
                s.cur.make_ascii_lowercase();
                Some(Smp::Str(Data::Buf))
            }
            PortOnly => {
                let b = smp.bytes(&s.cur)?;
                Some(Smp::Int(host_port(b).1.map_or(0, read_int64)))
            }
            Iif(t, f) => Some(Smp::Str(Data::Ref(if smp.as_bool(&s.cur)? {
                t
            } else {
                f
            }))),
            Strcmp(id, _) => {
                let a = smp.bytes(&s.cur)?;
                let v = ctx.txn.vars.get(*id)?;
                let b = match &v {
                    Smp::Str(Data::Ref(b)) | Smp::Bin(Data::Ref(b)) => *b,
                    _ => return None,
                };
                let n = a.len().min(b.len());
                let ord = match a[..n].cmp(&b[..n]) {
                    std::cmp::Ordering::Equal => a.len() as i64 - b.len() as i64,
                    std::cmp::Ordering::Less => -1,
                    std::cmp::Ordering::Greater => 1,
                };
                Some(Smp::Int(ord.signum()))
            }
            Hash(h, avalanche) => {
                let b = smp.bytes(&s.cur)?;
                let v = match h {
                    HashFn::Crc32 => crc32(b, 0xedb8_8320),
                    HashFn::Crc32c => crc32(b, 0x82f6_3b78),
                    HashFn::Djb2 => b.iter().fold(5381u32, |h, &c| {
                        h.wrapping_shl(5).wrapping_add(h).wrapping_add(u32::from(c))
                    }),
                    HashFn::Sdbm => b.iter().fold(0u32, |h, &c| {
                        u32::from(c)
                            .wrapping_add(h << 6)
                            .wrapping_add(h << 16)
                            .wrapping_sub(h)
                    }),
                    HashFn::Wt6 => wt6(b),
                };
                Some(Smp::Int(i64::from(if *avalanche {
                    full_hash(v)
                } else {
                    v
                })))
            }
            Xxh3(seed) => {
                let b = smp.bytes(&s.cur)?;
                Some(Smp::Int(
                    xxhash_rust::xxh3::xxh3_64_with_seed(b, *seed) as i64
                ))
            }
            HttpDate { offset, unit } => {
                let mut v = smp.as_int(&s.cur)?.saturating_add(*offset);
                let frac = match unit {
                    1 => {
                        let f = v % 1000;
                        v /= 1000;
                        Some(f)
                    }
                    2 => {
                        let f = v % 1_000_000;
                        v /= 1_000_000;
                        Some(f)
                    }
                    _ => None,
                };
                s.tmp.clear();
                super::logformat::http_date(&mut s.tmp, v & 0x007f_ffff_ffff_ffff, frac);
                s.swap();
                Some(Smp::Str(Data::Buf))
            }
            Strftime {
                format,
                local,
                offset,
            } => {
                let t = smp.as_int(&s.cur)?.saturating_add(*offset);
                s.tmp.clear();
                strftime(&mut s.tmp, format, t, *local)?;
                s.swap();
                Some(Smp::Str(Data::Buf))
            }
            Be2Dec {
                sep,
                chunk,
                truncate,
            } => transform(smp, s, |b, out| {
                let mut first = true;
                for part in b.chunks(*chunk) {
                    if *truncate && part.len() < *chunk {
                        break;
                    }
                    if !first {
                        out.extend_from_slice(sep);
                    }
                    first = false;
                    let v = part.iter().fold(0u64, |v, &c| (v << 8) | u64::from(c));
                    let mut tmp = Vec::new();
                    write_int(&mut tmp, v as i64);
                    if v > i64::MAX as u64 {
                        tmp.clear();
                        tmp.extend_from_slice(v.to_string().as_bytes());
                    }
                    out.extend_from_slice(&tmp);
                }
                true
            }),
            Be2Hex {
                sep,
                chunk,
                truncate,
            } => transform(smp, s, |b, out| {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                let mut first = true;
                for part in b.chunks(*chunk) {
                    if *truncate && part.len() < *chunk {
                        break;
                    }
                    if !first {
                        out.extend_from_slice(sep);
                    }
                    first = false;
                    for &c in part {
                        out.push(HEX[(c >> 4) as usize]);
                        out.push(HEX[(c & 15) as usize]);
                    }
                }
                true
            }),
            CutCrlf => slice(smp, s, |b| {
                Some((
                    0,
                    b.iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(b.len()),
                ))
            }),
            Debug => Some(smp),
            // Variables are written by the rule that evaluates the expression (the
            // context is read-only here): see `actions::apply_conv_vars`.
            SetVar(..) | UnsetVar(..) => Some(smp),
            Nbsrv | SrvQueue => {
                let name = smp.bytes(&s.cur)?;
                let shard = ctx.shard?;
                let cfg = ctx.cfg?;
                let name = std::str::from_utf8(name).ok()?;
                if matches!(self, Nbsrv) {
                    let b = cfg.backend_index(name)?;
                    let (a, bk) = shard.upstreams.backends[b].usable_counts();
                    Some(Smp::Int(if a > 0 { a } else { bk } as i64))
                } else {
                    let (b, sv) = match name.split_once('/') {
                        Some((b, sv)) => (cfg.backend_index(b)?, sv),
                        None => (ctx.backend?, name),
                    };
                    let _ = cfg.backends[b].servers.iter().position(|x| x.name == sv)?;
                    Some(Smp::Int(0))
                }
            }
            InTable(t) => {
                let kt = ctx.cfg?.tables.get(*t as usize)?.key;
                let key = super::table_key(kt, &smp, &s.cur)?;
                let shard = ctx.shard?;
                Some(Smp::Bool(shard.cluster.sc_has(*t, key)))
            }
            Table(t, op) => {
                let kt = ctx.cfg?.tables.get(*t as usize)?.key;
                let key = super::table_key(kt, &smp, &s.cur)?;
                let shard = ctx.shard?;
                let e = super::Tracked { table: *t, key };
                Some(Smp::Int(shard.cluster.sc_op(e, *op).unwrap_or(0)))
            }
        }
    }
}

/// Runs `f(input bytes, output)` into `tmp` and makes it current.
fn transform<'a>(
    smp: Smp<'a>,
    s: &mut Scratch,
    f: impl FnOnce(&[u8], &mut Vec<u8>) -> bool,
) -> Option<Smp<'a>> {
    let mut tmp = std::mem::take(&mut s.tmp);
    tmp.clear();
    let ok = match smp {
        Smp::Str(Data::Ref(r)) | Smp::Bin(Data::Ref(r)) => f(r, &mut tmp),
        Smp::Str(Data::Buf) | Smp::Bin(Data::Buf) => f(&s.cur, &mut tmp),
        _ => false,
    };
    s.tmp = tmp;
    if !ok {
        return None;
    }
    s.swap();
    Some(Smp::Str(Data::Buf))
}

/// Appends to the string form of the sample.
fn append<'a>(
    smp: Smp<'a>,
    s: &mut Scratch,
    f: impl FnOnce(&mut Vec<u8>, &[u8]),
) -> Option<Smp<'a>> {
    let mut tmp = std::mem::take(&mut s.tmp);
    tmp.clear();
    smp.write_str(&s.cur, &mut tmp);
    f(&mut tmp, &s.cur);
    s.tmp = tmp;
    s.swap();
    Some(Smp::Str(Data::Buf))
}

/// A sub-slice of the input (`(start, len)` from `f`), borrowed when the input is.
fn slice<'a>(
    smp: Smp<'a>,
    s: &mut Scratch,
    f: impl FnOnce(&[u8]) -> Option<(usize, usize)>,
) -> Option<Smp<'a>> {
    match smp {
        Smp::Str(Data::Ref(r)) | Smp::Bin(Data::Ref(r)) => {
            let (a, l) = f(r)?;
            Some(Smp::Str(Data::Ref(&r[a..a + l])))
        }
        Smp::Str(Data::Buf) | Smp::Bin(Data::Buf) => {
            let (a, l) = f(&s.cur)?;
            s.cur.copy_within(a..a + l, 0);
            s.cur.truncate(l);
            Some(Smp::Str(Data::Buf))
        }
        _ => None,
    }
}

/// `field(index, delims, count)`: (start, len) of the fields, empty ones counted.
fn field(b: &[u8], index: i64, delims: &[u8], count: i64) -> Option<(usize, usize)> {
    let is_d = |c: u8| delims.contains(&c);
    let mut count = count;
    if index > 0 {
        let (mut f, mut start) = (1i64, 0usize);
        for (end, &c) in b.iter().enumerate() {
            if is_d(c) {
                if f == index {
                    if count == 1 {
                        return Some((start, end - start));
                    } else if count > 1 {
                        count -= 1;
                    }
                } else {
                    start = end + 1;
                    f += 1;
                }
            }
        }
        (f == index).then_some((start, b.len() - start))
    } else {
        let (mut f, mut end) = (-1i64, b.len());
        let mut start = b.len();
        while start > 0 {
            if is_d(b[start - 1]) {
                if f == index {
                    if count == 1 {
                        return Some((start, end - start));
                    } else if count > 1 {
                        count -= 1;
                    }
                } else {
                    end = start - 1;
                    f -= 1;
                }
            }
            start -= 1;
        }
        (f == index).then_some((0, end))
    }
}

/// `word(index, delims, count)`: like `field`, runs of delimiters count as one.
fn word(b: &[u8], index: i64, delims: &[u8], count: i64) -> Option<(usize, usize)> {
    let is_d = |c: u8| delims.contains(&c);
    let mut count = count;
    let mut w = 0i64;
    let mut inword = false;
    if index > 0 {
        let (mut start, mut end) = (0usize, 0usize);
        while end < b.len() {
            let sep = is_d(b[end]);
            if !inword {
                if !sep {
                    if w != index {
                        w += 1;
                        start = end;
                    }
                    inword = true;
                }
            } else if sep {
                if w == index {
                    if count == 1 {
                        return Some((start, end - start));
                    } else if count > 1 {
                        count -= 1;
                    }
                }
                inword = false;
            }
            end += 1;
        }
        (w == index).then_some((start, end - start))
    } else {
        let (mut start, mut end) = (b.len(), b.len());
        while start > 0 {
            let sep = is_d(b[start - 1]);
            if !inword {
                if !sep {
                    if w != index {
                        w -= 1;
                        end = start;
                    }
                    inword = true;
                }
            } else if sep {
                if w == index {
                    if count == 1 {
                        return Some((start, end - start));
                    } else if count > 1 {
                        count -= 1;
                    }
                }
                inword = false;
            }
            start -= 1;
        }
        (w == index).then_some((start, end - start))
    }
}

/// `host:port` → (host, port); `[v6]:port` too: the port follows the last `:` that
/// is not inside brackets (HAProxy's `host_only` / `port_only`).
fn host_port(b: &[u8]) -> (&[u8], Option<&[u8]>) {
    match b.iter().rposition(|&c| c == b':' || c == b']') {
        Some(i) if b[i] == b':' => (&b[..i], Some(&b[i + 1..])),
        _ => (b, None),
    }
}

fn json_escape(b: &[u8], utf8: bool, out: &mut Vec<u8>) -> bool {
    let mut push_u = |out: &mut Vec<u8>, c: u32| {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(b"\\u");
        for sh in [12, 8, 4, 0] {
            out.push(HEX[((c >> sh) & 15) as usize]);
        }
    };
    let one = |out: &mut Vec<u8>, c: u32, push_u: &mut dyn FnMut(&mut Vec<u8>, u32)| match c {
        0x22 => out.extend_from_slice(b"\\\""),
        0x5c => out.extend_from_slice(b"\\\\"),
        0x2f => out.extend_from_slice(b"\\/"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x0d => out.extend_from_slice(b"\\r"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x09 => out.extend_from_slice(b"\\t"),
        c if c > 0xff || !(0x20..0x7f).contains(&c) => push_u(out, c),
        c => out.push(c as u8),
    };
    if utf8 {
        let Ok(text) = std::str::from_utf8(b) else {
            return false;
        };
        for ch in text.chars() {
            let c = ch as u32;
            if c > 0xffff {
                return false;
            }
            one(out, c, &mut push_u);
        }
    } else {
        for &c in b {
            one(out, u32::from(c), &mut push_u);
        }
    }
    true
}

/// `url_dec`: `%XX` decoded; `+` becomes a space in a form, or after a `?`.
fn url_decode(b: &[u8], form: bool, out: &mut Vec<u8>) -> bool {
    let mut in_query = form;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'?' => {
                in_query = true;
                out.push(b'?');
            }
            b'+' if in_query => out.push(b' '),
            b'%' => {
                let h = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|&c| h(c)),
                    b.get(i + 2).and_then(|&c| h(c)),
                ) {
                    (Some(a), Some(c)) => {
                        out.push((a * 16 + c) as u8);
                        i += 2;
                    }
                    _ => return false,
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    true
}

/// `regsub`: the first (or every) match replaced; `\N` in `subst` is group N.
fn regsub(re: &regex::bytes::Regex, subst: &[u8], global: bool, b: &[u8], out: &mut Vec<u8>) {
    let mut last = 0;
    for caps in re.captures_iter(b) {
        let Some(m) = caps.get(0) else { break };
        out.extend_from_slice(&b[last..m.start()]);
        let mut i = 0;
        while i < subst.len() {
            let c = subst[i];
            if c == b'\\' && i + 1 < subst.len() {
                let n = subst[i + 1];
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
        last = m.end();
        if !global {
            break;
        }
    }
    out.extend_from_slice(&b[last..]);
}

fn crc32(b: &[u8], poly: u32) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
        }
    }
    !c
}

/// HAProxy's `hash_wt6`.
fn wt6(b: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c965au32, 0x5ca6953au32);
    let mut step0 = 6u32;
    let mut step1 = 18u32;
    for &c in b {
        let t = u32::from(c);
        h0 = !(h0 ^ t);
        h1 = !(h1.wrapping_add(t));
        let t = h1.rotate_left(step0);
        h1 = h0.rotate_left(step1);
        h0 = t;
        let t = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = t & 0x1f;
        step1 = t >> 11;
    }
    h0 ^ h1
}

/// HAProxy's `full_hash` (the avalanche of `hash-type ... avalanche`).
pub fn full_hash(a: u32) -> u32 {
    let mut a = a;
    a = a.wrapping_add(0x7ed55d16).wrapping_add(a << 12);
    a = (a ^ 0xc761c23c) ^ (a >> 19);
    a = a.wrapping_add(0x165667b1).wrapping_add(a << 5);
    a = a.wrapping_add(0xd3a2646c) ^ (a << 9);
    a = a.wrapping_add(0xfd7046c5).wrapping_add(a << 3);
    a = (a ^ 0xb55a4f09) ^ (a >> 16);
    // Spread over the whole range: a large prime close to 3/4 of it.
    a.wrapping_mul(3221225473)
}

/// `utime` / `ltime`: strftime(3) on the epoch seconds `t`.
fn strftime(out: &mut Vec<u8>, format: &CString, t: i64, local: bool) -> Option<()> {
    let tt = t as libc::time_t;
    // SAFETY: `tm` is plain data that gmtime_r/localtime_r fill; `buf` is a stack
    // buffer whose length strftime is told; the format is NUL-terminated.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let ok = if local {
            libc::localtime_r(&tt, &mut tm)
        } else {
            libc::gmtime_r(&tt, &mut tm)
        };
        if ok.is_null() {
            return None;
        }
        let mut buf = [0u8; 256];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm);
        if n == 0 && !format.as_bytes().is_empty() {
            return None;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_words() {
        let s = b"f1_f2_f3__f5";
        let get = |r: Option<(usize, usize)>| {
            r.map(|(a, l)| std::str::from_utf8(&s[a..a + l]).unwrap().to_string())
        };
        assert_eq!(get(field(s, 5, b"_", 1)).as_deref(), Some("f5"));
        assert_eq!(get(field(s, 2, b"_", 0)).as_deref(), Some("f2_f3__f5"));
        assert_eq!(get(field(s, 2, b"_", 2)).as_deref(), Some("f2_f3"));
        assert_eq!(get(field(s, -2, b"_", 3)).as_deref(), Some("f2_f3_"));
        assert_eq!(get(field(s, -3, b"_", 0)).as_deref(), Some("f1_f2_f3"));
        assert_eq!(get(field(s, 9, b"_", 1)), None);
        assert_eq!(get(word(s, 4, b"_", 1)).as_deref(), Some("f5"));
        assert_eq!(get(word(s, 2, b"_", 0)).as_deref(), Some("f2_f3__f5"));
        assert_eq!(get(word(s, 3, b"_", 2)).as_deref(), Some("f3__f5"));
        assert_eq!(get(word(s, -2, b"_", 3)).as_deref(), Some("f1_f2_f3"));
        assert_eq!(get(word(s, -3, b"_", 0)).as_deref(), Some("f1_f2"));
        let p = b"/f1/f2/f3/f4";
        let (a, l) = word(p, 1, b"/", 1).unwrap();
        assert_eq!(&p[a..a + l], b"f1");
    }

    #[test]
    fn escapes_and_hashes() {
        let mut out = Vec::new();
        assert!(json_escape(b"a\"b/\n\x01\xe9", false, &mut out));
        assert_eq!(out, b"a\\\"b\\/\\n\\u0001\\u00e9");
        out.clear();
        assert!(url_decode(b"/a%20b?x=1+2", false, &mut out));
        assert_eq!(out, b"/a b?x=1 2");
        out.clear();
        assert!(!url_decode(b"%zz", false, &mut out));
        out.clear();
        regsub(
            &regex::bytes::Regex::new("/+").unwrap(),
            b"/",
            true,
            b"//a///b",
            &mut out,
        );
        assert_eq!(out, b"/a/b");
        out.clear();
        regsub(
            &regex::bytes::Regex::new("(a)(b)").unwrap(),
            b"\\2\\1",
            false,
            b"xabab",
            &mut out,
        );
        assert_eq!(out, b"xbaab");
        // Known vectors: CRC32("123456789") = 0xCBF43926, CRC32C = 0xE3069283.
        assert_eq!(crc32(b"123456789", 0xedb8_8320), 0xcbf4_3926);
        assert_eq!(crc32(b"123456789", 0x82f6_3b78), 0xe306_9283);
        assert_eq!(
            host_port(b"example.com:8080"),
            (&b"example.com"[..], Some(&b"8080"[..]))
        );
        assert_eq!(host_port(b"[::1]:80"), (&b"[::1]"[..], Some(&b"80"[..])));
    }
}
