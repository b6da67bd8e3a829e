//! Pattern matching (configuration manual 7.1): the match methods (`-m str|beg|end|
//! sub|dir|dom|reg|len|int|ip|bin|bool|found`), pattern lists from the config line and
//! from `-f` files, and maps (`map_*` converters, `-M`): a key file whose entries carry
//! a value. Exact strings are looked up in a hash table; prefix and IP maps return the
//! longest match, as HAProxy's trees do; the other methods try entries in file order.
//!
//! Regular expressions use the `regex` crate (Rust syntax, close to PCRE without
//! look-around and back-references); a pattern it refuses is a config error.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::sample::{Smp, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Found,
    Bool,
    Int,
    Ip,
    Bin,
    Len,
    Str,
    Beg,
    Sub,
    Dir,
    Dom,
    End,
    Reg,
}

impl Method {
    pub fn parse(name: &str) -> Option<Method> {
        use Method::*;
        Some(match name {
            "found" => Found,
            "bool" => Bool,
            "int" => Int,
            "ip" => Ip,
            "bin" => Bin,
            "len" => Len,
            "str" => Str,
            "beg" => Beg,
            "sub" => Sub,
            "dir" => Dir,
            "dom" => Dom,
            "end" => End,
            "reg" => Reg,
            _ => return None,
        })
    }

    /// The type a sample is cast to before matching (HAProxy's `pat_match_types`).
    pub fn expect(self) -> Type {
        use Method::*;
        match self {
            Found | Bool | Int => Type::Int,
            Ip => Type::Ip,
            Bin => Type::Bin,
            Len | Str | Beg | Sub | Dir | Dom | End | Reg => Type::Str,
        }
    }

    /// The default method for a sample type (none for binary).
    pub fn default_for(t: Type) -> Option<Method> {
        match t {
            Type::Bool => Some(Method::Bool),
            Type::Int => Some(Method::Int),
            Type::Ip => Some(Method::Ip),
            Type::Str => Some(Method::Str),
            Type::Bin | Type::Any => None,
        }
    }
}

/// An IP network: address and prefix length (IPv4 kept as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl Net {
    /// Whether `ip` is inside. IPv4 patterns match IPv4-mapped (`::ffff:a.b.c.d`),
    /// IPv4-compatible (`::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`) clients; IPv6
    /// patterns see IPv4 clients as `::ffff:a.b.c.d` (manual 7.1.6).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => v4_in(n, self.len, a),
            (IpAddr::V4(n), IpAddr::V6(a)) => {
                let o = a.octets();
                let v4 = if let Some(m) = a.to_ipv4_mapped() {
                    Some(m)
                } else if o[..12].iter().all(|&b| b == 0) {
                    Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
                } else if o[0] == 0x20 && o[1] == 0x02 {
                    Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
                } else {
                    None
                };
                v4.is_some_and(|v| v4_in(n, self.len, v))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => v6_in(n, self.len, a),
            (IpAddr::V6(n), IpAddr::V4(a)) => v6_in(n, self.len, a.to_ipv6_mapped()),
        }
    }
}

fn v4_in(n: Ipv4Addr, len: u8, a: Ipv4Addr) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(n) & mask == u32::from(a) & mask
}

fn v6_in(n: Ipv6Addr, len: u8, a: Ipv6Addr) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    u128::from(n) & mask == u128::from(a) & mask
}

/// HAProxy's `str2net`/`str62net`: `a.b.c.d`, abbreviated `10.12` (= 10.12.0.0),
/// `/len` or a dotted mask; IPv6 with `/len`.
pub fn parse_net(text: &str) -> Result<Net, String> {
    let bad = || format!("'{text}' is not a valid IPv4 or IPv6 address");
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (text, None),
    };
    if let Some(v4) = parse_v4_lenient(ip) {
        let len = match len {
            None => 32,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 32 => n,
                _ => {
                    let mask = parse_v4_lenient(l).ok_or_else(bad)?;
                    let m = u32::from(mask);
                    if m.leading_ones() != m.count_ones() {
                        return Err(bad());
                    }
                    m.count_ones() as u8
                }
            },
        };
        return Ok(Net {
            addr: IpAddr::V4(v4),
            len,
        });
    }
    let v6: Ipv6Addr = ip.parse().map_err(|_| bad())?;
    let len = match len {
        None => 128,
        Some(l) => l.parse::<u8>().ok().filter(|&n| n <= 128).ok_or_else(bad)?,
    };
    Ok(Net {
        addr: IpAddr::V6(v6),
        len,
    })
}

/// `inet_aton`'s forms, as HAProxy reads addresses: `a.b.c.d`, `a.b.c` (the last part
/// fills 16 bits: 192.168.1 = 192.168.0.1), `a.b` (24 bits: 127.1 = 127.0.0.1), `a`.
fn parse_v4_lenient(s: &str) -> Option<Ipv4Addr> {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(a);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nums.push(p.parse::<u64>().ok()?);
    }
    let last = *nums.last()?;
    let head = &nums[..nums.len() - 1];
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if rest_bits < 64 && last >= 1u64 << rest_bits {
        return None;
    }
    let mut v: u32 = 0;
    for (i, &n) in head.iter().enumerate() {
        v |= (n as u32) << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(v | last as u32))
}

/// `48656c6c6f` → bytes.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(format!("'{text}' must have an even number of hex digits"));
    }
    let nib = |c: u8| -> Result<u8, String> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("'{text}' is not a hex string"))
    };
    b.chunks(2)
        .map(|p| Ok(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

/// An integer pattern: a value or a range (`1024:65535`, `:1023`, `5:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        let bad = || format!("'{text}' is not a valid number range");
        let num = |s: &str| -> Result<i64, String> {
            s.parse::<i64>()
                .map_err(|_| format!("'{text}' is not a number"))
        };
        if text.is_empty() {
            return Err(bad());
        }
        // The separator is the first ':' or '-' (so negative values need ranges).
        match text.find([':', '-']) {
            None => {
                let v = num(text)?;
                Ok(Range {
                    min: Some(v),
                    max: Some(v),
                })
            }
            Some(0) if text.len() > 1 => Ok(Range {
                min: None,
                max: Some(num(&text[1..]).map_err(|_| bad())?),
            }),
            Some(i) if i == text.len() - 1 => Ok(Range {
                min: Some(num(&text[..i]).map_err(|_| bad())?),
                max: None,
            }),
            Some(i) => {
                let (a, b) = (
                    num(&text[..i]).map_err(|_| bad())?,
                    num(&text[i + 1..]).map_err(|_| bad())?,
                );
                if a > b {
                    return Err(bad());
                }
                Ok(Range {
                    min: Some(a),
                    max: Some(b),
                })
            }
        }
    }

    pub fn contains(&self, v: i64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

/// xxh3 for the exact-string tables (SipHash costs more than the rest of a lookup).
#[derive(Default)]
pub struct XxHasher(u64);

impl std::hash::Hasher for XxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(5) ^ n as u64;
    }
}

/// A list of patterns of one match method.
#[derive(Debug, Clone)]
pub struct Patterns {
    pub method: Method,
    pub icase: bool,
    strs: Vec<Box<[u8]>>,
    /// Exact strings (lower-cased when `icase`), to the index of their first entry.
    exact: HashMap<Box<[u8]>, usize, std::hash::BuildHasherDefault<XxHasher>>,
    ints: Vec<Range>,
    nets: Vec<Net>,
    regs: Vec<regex::bytes::Regex>,
    /// Number of entries (their values, for a map, are indexed the same way).
    count: usize,
    /// The `method` ACL: a request with a well-known method matches only that method
    /// spelled exactly (HAProxy compares the parsed method, so `-i get` never matches
    /// GET); other methods compare as strings.
    pub meth: bool,
}

impl Patterns {
    pub fn new(method: Method, icase: bool) -> Patterns {
        Patterns {
            method,
            icase,
            strs: Vec::new(),
            exact: HashMap::default(),
            ints: Vec::new(),
            nets: Vec::new(),
            regs: Vec::new(),
            count: 0,
            meth: false,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The exact strings of a `str` list, as stored (lower-cased when `icase`): what
    /// `find` looks a sample up in (the routing index keys rules by them).
    pub fn exact_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.exact.keys().map(|k| &**k)
    }

    /// Adds one pattern (as written on the ACL line or a file line).
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        use Method::*;
        match self.method {
            Found | Bool => {}
            Int | Len => self.ints.push(Range::parse(text)?),
            Ip => self.nets.push(parse_net(text)?),
            Bin => self.strs.push(parse_hex(text)?.into()),
            Reg => self.regs.push(
                regex::bytes::RegexBuilder::new(text)
                    .case_insensitive(self.icase)
                    .build()
                    .map_err(|e| format!("invalid regex '{text}': {e}"))?,
            ),
            Str => {
                if self.meth {
                    self.strs.push(text.as_bytes().into());
                }
                let key: Box<[u8]> = if self.icase {
                    text.as_bytes().to_ascii_lowercase().into()
                } else {
                    text.as_bytes().into()
                };
                self.exact.entry(key).or_insert(self.count);
            }
            Beg | Sub | End | Dir | Dom => self.strs.push(text.as_bytes().into()),
        }
        self.count += 1;
        Ok(())
    }

    /// The index of the entry a sample matches (the longest prefix or network for
    /// `beg` and `ip`, the first in order for the others). `smp` is already cast to
    /// `method.expect()`.
    pub fn find(&self, smp: &Smp<'_>, cur: &[u8]) -> Option<usize> {
        use Method::*;
        match self.method {
            Found => Some(0),
            Bool => smp.as_bool(cur).filter(|&b| b).map(|_| 0),
            Int => {
                let v = smp.as_int(cur)?;
                self.ints.iter().position(|r| r.contains(v))
            }
            Len => {
                let v = smp.bytes(cur)?.len() as i64;
                self.ints.iter().position(|r| r.contains(v))
            }
            Ip => {
                let ip = smp.as_ip(cur)?;
                let mut best: Option<(usize, u8)> = None;
                for (i, n) in self.nets.iter().enumerate() {
                    if n.contains(ip) && best.is_none_or(|(_, l)| n.len > l) {
                        best = Some((i, n.len));
                    }
                }
                best.map(|(i, _)| i)
            }
            Bin => {
                let b = smp.bytes(cur)?;
                self.strs.iter().position(|p| **p == *b)
            }
            Str => {
                let b = smp.bytes(cur)?;
                const KNOWN: [&[u8]; 8] = [
                    b"OPTIONS", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"TRACE", b"CONNECT",
                ];
                if self.meth && KNOWN.contains(&b) {
                    return self.strs.iter().position(|p| **p == *b);
                }
                if self.icase {
                    if b.len() > 256 {
                        return self
                            .exact
                            .iter()
                            .filter(|(k, _)| k.eq_ignore_ascii_case(b))
                            .map(|(_, &i)| i)
                            .min();
                    }
                    let mut low = [0u8; 256];
                    for (d, s) in low.iter_mut().zip(b) {
                        *d = s.to_ascii_lowercase();
                    }
                    self.exact.get(&low[..b.len()]).copied()
                } else {
                    self.exact.get(b).copied()
                }
            }
            Reg => {
                let b = smp.bytes(cur)?;
                self.regs.iter().position(|r| r.is_match(b))
            }
            Beg => {
                let b = smp.bytes(cur)?;
                let mut best: Option<(usize, usize)> = None;
                for (i, p) in self.strs.iter().enumerate() {
                    if b.len() >= p.len()
                        && eq(&b[..p.len()], p, self.icase)
                        && best.is_none_or(|(_, l)| p.len() > l)
                    {
                        best = Some((i, p.len()));
                    }
                }
                best.map(|(i, _)| i)
            }
            End => {
                let b = smp.bytes(cur)?;
                self.strs
                    .iter()
                    .position(|p| b.len() >= p.len() && eq(&b[b.len() - p.len()..], p, self.icase))
            }
            Sub => {
                let b = smp.bytes(cur)?;
                self.strs.iter().position(|p| contains(b, p, self.icase))
            }
            Dir => {
                let b = smp.bytes(cur)?;
                self.strs
                    .iter()
                    .position(|p| match_word(b, p, self.icase, b"/?"))
            }
            Dom => {
                let b = smp.bytes(cur)?;
                self.strs
                    .iter()
                    .position(|p| match_word(b, p, self.icase, b"/?.:"))
            }
        }
    }
}

fn eq(a: &[u8], b: &[u8], icase: bool) -> bool {
    if icase {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

fn contains(hay: &[u8], p: &[u8], icase: bool) -> bool {
    if p.is_empty() {
        return true;
    }
    if p.len() > hay.len() {
        return false;
    }
    hay.windows(p.len()).any(|w| eq(w, p, icase))
}

/// HAProxy's `match_word()`: `p` (its own delimiters at both ends ignored) appears in
/// `s` starting right after a delimiter or at the start, and ending at a delimiter or
/// the end.
fn match_word(s: &[u8], p: &[u8], icase: bool, delims: &[u8]) -> bool {
    let is_delim = |c: u8| delims.contains(&c);
    let mut p = p;
    while let [c, rest @ ..] = p {
        if !is_delim(*c) {
            break;
        }
        p = rest;
    }
    while let [rest @ .., c] = p {
        if !is_delim(*c) {
            break;
        }
        p = rest;
    }
    // Only delimiters: HAProxy compares against the byte after the sample and never
    // matches in practice.
    if p.is_empty() || p.len() > s.len() {
        return false;
    }
    let mut may_match = true;
    for i in 0..=s.len() - p.len() {
        let c = s[i];
        if is_delim(c) {
            may_match = true;
            continue;
        }
        if !may_match {
            continue;
        }
        if eq(&s[i..i + p.len()], p, icase) && (i + p.len() == s.len() || is_delim(s[i + p.len()]))
        {
            return true;
        }
        may_match = false;
    }
    false
}

pub use super::map::{Map, MapOut, MapValue, PatternFile};

#[cfg(test)]
mod tests;
