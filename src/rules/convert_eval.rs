//! Evaluation of the converters (`Conv::eval`): results are written into the
//! scratch buffers, or are slices of their input when they can be.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;

use super::convert::{ArithOp, Conv, HashFn, IntArg};
use super::pattern::MapOut;
use super::sample::{read_int64, write_int, Data, Scratch, Smp};
use super::strfn::{
    crc32, field, full_hash, host_port, json_escape, regsub, strftime, url_decode, word, wt6,
};
use super::Ctx;

impl Conv {
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
            // An integer is hexed as HAProxy casts it to binary: 8 bytes, big endian.
            Hex if matches!(smp, Smp::Int(_) | Smp::Bool(_)) => {
                let v = smp.as_int(&s.cur)?;
                let mut tmp = std::mem::take(&mut s.tmp);
                tmp.clear();
                for &c in &v.to_be_bytes() {
                    tmp.push(HEX_DIGITS[(c >> 4) as usize]);
                    tmp.push(HEX_DIGITS[(c & 15) as usize]);
                }
                s.tmp = tmp;
                s.swap();
                Some(Smp::Str(Data::Buf))
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
            Map(map, live, default) => {
                // A shard's runtime copy (after `add map` & co.) answers first; a
                // value it found is in the scratch buffer.
                let found = match ctx.world.and_then(|w| w.pat_value(*live, &smp, s)) {
                    Some(v) => v,
                    None => map.lookup(&smp, &s.cur).map(|v| v.smp()),
                };
                found.or_else(|| {
                    let d = default.as_deref()?;
                    Some(match map.out {
                        MapOut::Str => Smp::Str(Data::Ref(d)),
                        MapOut::Int => Smp::Int(read_int64(d)),
                        MapOut::Ip => Smp::Ip(super::sample::parse_ip(d)?),
                    })
                })
            }
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
                    HashFn::Djb2 => crate::hash::djb2(b),
                    HashFn::Sdbm => crate::hash::sdbm(b),
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
                let w = ctx.world?;
                let name = std::str::from_utf8(name).ok()?;
                if matches!(self, Nbsrv) {
                    let (a, bk) = w.usable_counts(w.backend_index(name)?)?;
                    Some(Smp::Int(if a > 0 { a } else { bk } as i64))
                } else {
                    let (b, sv) = match name.split_once('/') {
                        Some((b, sv)) => (w.backend_index(b)?, sv),
                        None => (ctx.backend?, name),
                    };
                    let _ = w.server_index(b, sv)?;
                    Some(Smp::Int(0))
                }
            }
            InTable(t) => {
                let w = ctx.world?;
                let key = super::table_key(w.table_key(*t)?, &smp, &s.cur)?;
                Some(Smp::Bool(w.sc_has(*t, key)?))
            }
            Table(t, op) => {
                let w = ctx.world?;
                let key = super::table_key(w.table_key(*t)?, &smp, &s.cur)?;
                let e = super::Tracked { table: *t, key };
                Some(Smp::Int(w.sc_value(e, *op)?))
            }
        }
    }
}

/// Runs `f(input bytes, output)` into `tmp` and makes it current.
const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

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
