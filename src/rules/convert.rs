//! Converters (configuration manual 7.3.1): what they are and their output types;
//! built by name in `convert_build`. Their evaluation is in `convert_eval`: string
//! results are written into the scratch buffers (`Scratch`), or are slices of their
//! input when they can be (`field`, `word`, `bytes`, trims): nothing is allocated for
//! them per request.

use std::ffi::CString;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::pattern::Map;
use super::sample::Type;
use super::stick::ScOp;
use super::vars::VarId;

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
    /// The map as loaded, its number among the config's pattern expressions (a
    /// shard that holds a runtime copy of it looks up there), the default value.
    Map(Arc<Map>, u32, Option<Box<[u8]>>),
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
            Map(m, ..) => m.keys.method.expect(),
            Ipmask(..) => Type::Ip,
            Arith(..) | Neg | Cpl | Bool | Not | Odd | Even | HttpDate { .. } | Strftime { .. } => {
                Type::Int
            }
            Iif(..) => Type::Bool,
            Debug | SetVar(..) | UnsetVar(..) | InTable(_) | Table(..) => Type::Any,
        }
    }
}
