//! Samples: the typed values fetches produce and converters transform (HAProxy's
//! `struct sample`), the casts between their types (`sample_casts` of HAProxy 2.6's
//! `sample.c`), and the scratch buffers that hold transformed strings.
//!
//! Nothing here allocates per request: a string sample is either borrowed from what the
//! request already holds (its head, a variable, the config) or lives in the scratch
//! buffer `Scratch::cur`, whose capacity is kept from one request to the next. A
//! converter that builds a new string writes it into `Scratch::tmp` and swaps the two.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A sample's type, as HAProxy names them (`SMP_T_*`; IPv4 and IPv6 are one type here,
/// `METH` is a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int,
    Ip,
    Str,
    Bin,
    /// Converters that take anything (`SMP_T_ANY`).
    Any,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Bool => "boolean",
            Type::Int => "integer",
            Type::Ip => "ip",
            Type::Str => "string",
            Type::Bin => "binary",
            Type::Any => "any",
        }
    }

    /// Whether a sample of type `self` can be cast to `to` (HAProxy refuses a converter
    /// whose input cannot be reached at config time).
    pub fn casts_to(self, to: Type) -> bool {
        use Type::*;
        match (self, to) {
            (_, Any) | (Any, _) => true,
            (a, b) if a == b => true,
            (Bool, Int) | (Bool, Str) | (Bool, Bin) => true,
            (Int, Bool) | (Int, Ip) | (Int, Str) | (Int, Bin) => true,
            (Ip, Int) | (Ip, Str) | (Ip, Bin) => true,
            (Str, Bool) | (Str, Int) | (Str, Ip) | (Str, Bin) => true,
            (Bin, Str) => true,
            _ => false,
        }
    }
}

/// Where a string or binary sample's bytes are.
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    /// Borrowed from the request, a variable or the config.
    Ref(&'a [u8]),
    /// The contents of `Scratch::cur`.
    Buf,
}

/// One sample.
#[derive(Debug, Clone, Copy)]
pub enum Smp<'a> {
    Bool(bool),
    Int(i64),
    Ip(IpAddr),
    Str(Data<'a>),
    Bin(Data<'a>),
}

/// The two buffers string converters work in; one per shard, reused by every request.
#[derive(Default)]
pub struct Scratch {
    pub cur: Vec<u8>,
    pub tmp: Vec<u8>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            cur: Vec::with_capacity(4096),
            tmp: Vec::with_capacity(4096),
        }
    }

    /// Makes `tmp` the current buffer (after a converter wrote its output there).
    pub fn swap(&mut self) {
        std::mem::swap(&mut self.cur, &mut self.tmp);
    }
}

impl<'a> Smp<'a> {
    pub fn typ(&self) -> Type {
        match self {
            Smp::Bool(_) => Type::Bool,
            Smp::Int(_) => Type::Int,
            Smp::Ip(_) => Type::Ip,
            Smp::Str(_) => Type::Str,
            Smp::Bin(_) => Type::Bin,
        }
    }

    /// The bytes of a string or binary sample (`cur`: the scratch buffer).
    pub fn bytes<'s>(&'s self, cur: &'s [u8]) -> Option<&'s [u8]> {
        match self {
            Smp::Str(d) | Smp::Bin(d) => Some(match d {
                Data::Ref(r) => r,
                Data::Buf => cur,
            }),
            _ => None,
        }
    }

    /// Integer view: booleans are 0/1, strings are read as HAProxy's `read_int64`
    /// (optional sign, leading digits; an empty string fails).
    pub fn as_int(&self, cur: &[u8]) -> Option<i64> {
        match self {
            Smp::Bool(b) => Some(i64::from(*b)),
            Smp::Int(i) => Some(*i),
            Smp::Ip(IpAddr::V4(a)) => Some(i64::from(u32::from(*a))),
            Smp::Ip(IpAddr::V6(_)) => None,
            Smp::Str(_) => {
                let b = self.bytes(cur)?;
                if b.is_empty() {
                    return None;
                }
                Some(read_int64(b))
            }
            Smp::Bin(_) => None,
        }
    }

    /// Boolean view (`bool` cast): an integer is true when non-zero.
    pub fn as_bool(&self, cur: &[u8]) -> Option<bool> {
        match self {
            Smp::Bool(b) => Some(*b),
            Smp::Int(i) => Some(*i != 0),
            Smp::Str(_) => self.as_int(cur).map(|i| i != 0),
            _ => None,
        }
    }

    /// Address view: strings are parsed (IPv4, then IPv6), integers are IPv4 addresses.
    pub fn as_ip(&self, cur: &[u8]) -> Option<IpAddr> {
        match self {
            Smp::Ip(a) => Some(*a),
            Smp::Int(i) => Some(IpAddr::V4(Ipv4Addr::from(*i as u32))),
            Smp::Str(_) | Smp::Bin(_) => parse_ip(self.bytes(cur)?),
            Smp::Bool(_) => None,
        }
    }

    /// Appends the string form of the sample (the `str` cast: binary stops at its first
    /// NUL, as HAProxy's `c_bin2str`).
    pub fn write_str(&self, cur: &[u8], out: &mut Vec<u8>) {
        match self {
            Smp::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
            Smp::Int(i) => write_int(out, *i),
            Smp::Ip(a) => write_ip(out, *a),
            Smp::Str(_) => out.extend_from_slice(self.bytes(cur).unwrap_or(&[])),
            Smp::Bin(_) => {
                let b = self.bytes(cur).unwrap_or(&[]);
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                out.extend_from_slice(&b[..end]);
            }
        }
    }

    /// Appends the binary form: IPs as their 4 or 16 bytes, integers as 8 big-endian
    /// bytes, strings as they are.
    pub fn write_bin(&self, cur: &[u8], out: &mut Vec<u8>) {
        match self {
            Smp::Bool(b) => out.extend_from_slice(&i64::from(*b).to_be_bytes()),
            Smp::Int(i) => out.extend_from_slice(&i.to_be_bytes()),
            Smp::Ip(IpAddr::V4(a)) => out.extend_from_slice(&a.octets()),
            Smp::Ip(IpAddr::V6(a)) => out.extend_from_slice(&a.octets()),
            Smp::Str(_) | Smp::Bin(_) => out.extend_from_slice(self.bytes(cur).unwrap_or(&[])),
        }
    }

    /// The sample as a string sample: strings stay where they are, other types are
    /// written into `cur`.
    pub fn into_str(self, s: &mut Scratch) -> Smp<'a> {
        match self {
            Smp::Str(_) => self,
            Smp::Bin(Data::Ref(r)) => {
                let end = r.iter().position(|&c| c == 0).unwrap_or(r.len());
                Smp::Str(Data::Ref(&r[..end]))
            }
            Smp::Bin(Data::Buf) => {
                if let Some(end) = s.cur.iter().position(|&c| c == 0) {
                    s.cur.truncate(end);
                }
                Smp::Str(Data::Buf)
            }
            other => {
                s.tmp.clear();
                other.write_str(&[], &mut s.tmp);
                s.swap();
                Smp::Str(Data::Buf)
            }
        }
    }

    /// The sample as a binary sample.
    pub fn into_bin(self, s: &mut Scratch) -> Smp<'a> {
        match self {
            Smp::Str(d) | Smp::Bin(d) => Smp::Bin(d),
            other => {
                s.tmp.clear();
                other.write_bin(&[], &mut s.tmp);
                s.swap();
                Smp::Bin(Data::Buf)
            }
        }
    }

    /// Casts to `to` (a converter's input type); `None` where HAProxy's cast fails.
    pub fn cast(self, to: Type, s: &mut Scratch) -> Option<Smp<'a>> {
        Some(match to {
            Type::Any => self,
            Type::Bool => match self {
                Smp::Bool(_) => self,
                _ => Smp::Bool(self.as_bool(&s.cur)?),
            },
            Type::Int => match self {
                Smp::Int(_) => self,
                _ => Smp::Int(self.as_int(&s.cur)?),
            },
            Type::Ip => Smp::Ip(self.as_ip(&s.cur)?),
            Type::Str => self.into_str(s),
            Type::Bin => self.into_bin(s),
        })
    }
}

/// HAProxy's `read_int64`: an optional sign then decimal digits, stopping at the first
/// other byte (saturating).
pub fn read_int64(b: &[u8]) -> i64 {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.saturating_mul(10).saturating_add(i64::from(c - b'0'));
    }
    if neg {
        -v
    } else {
        v
    }
}

/// An IPv4 address in HAProxy's lenient form (`10.1` = 10.0.0.1 is NOT accepted for
/// samples: `inet_pton`), or an IPv6 one.
pub fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(b).ok()?;
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(a));
    }
    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Decimal digits of `i`, without allocating.
pub fn write_int(out: &mut Vec<u8>, i: i64) {
    let mut buf = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[pos..]);
}

/// The text form of an address (IPv4-mapped IPv6 stays IPv6, as `inet_ntop` prints it).
pub fn write_ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_int(out, i64::from(*o));
            }
        }
        IpAddr::V6(v6) => {
            // std's formatting writes through a stack buffer: no allocation.
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts() {
        let mut s = Scratch::new();
        let cases: &[(Smp, Type, &str)] = &[
            (Smp::Int(-42), Type::Str, "-42"),
            (Smp::Bool(true), Type::Str, "1"),
            (Smp::Ip("10.0.0.1".parse().unwrap()), Type::Str, "10.0.0.1"),
            (Smp::Ip("::1".parse().unwrap()), Type::Str, "::1"),
            (Smp::Str(Data::Ref(b"12abc")), Type::Int, "12"),
            (Smp::Str(Data::Ref(b"-7")), Type::Int, "-7"),
            (Smp::Str(Data::Ref(b"abc")), Type::Int, "0"),
            (Smp::Str(Data::Ref(b"3")), Type::Bool, "1"),
            (Smp::Int(0x0a000001), Type::Ip, "10.0.0.1"),
            (Smp::Str(Data::Ref(b"192.168.0.1")), Type::Ip, "192.168.0.1"),
            (Smp::Bin(Data::Ref(b"ab\0cd")), Type::Str, "ab"),
        ];
        for (smp, to, want) in cases {
            let got = smp.cast(*to, &mut s).unwrap();
            let mut out = Vec::new();
            got.write_str(&s.cur, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), *want, "{smp:?} -> {to:?}");
        }
        assert!(Smp::Str(Data::Ref(b"")).cast(Type::Int, &mut s).is_none());
        assert!(Smp::Str(Data::Ref(b"x")).cast(Type::Ip, &mut s).is_none());
        let bin = Smp::Int(1).cast(Type::Bin, &mut s).unwrap();
        assert_eq!(bin.bytes(&s.cur).unwrap(), &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(!Type::Ip.casts_to(Type::Bool));
        assert!(Type::Str.casts_to(Type::Int));
        assert!(!Type::Bin.casts_to(Type::Int));
    }

    #[test]
    fn integers() {
        for i in [0, 7, -1, i64::MAX, i64::MIN, 1234567890] {
            let mut out = Vec::new();
            write_int(&mut out, i);
            assert_eq!(String::from_utf8(out).unwrap(), i.to_string());
        }
        assert_eq!(read_int64(b"+15x"), 15);
        assert_eq!(read_int64(b"99999999999999999999999"), i64::MAX);
    }
}
