//! Byte-string functions behind the converters: HAProxy's `field` and `word`
//! positions, `host_only`/`port_only` splitting, JSON and URL escapes, `regsub`,
//! the CRC and `wt6`/`full_hash` hashes, and `strftime` for `utime`/`ltime`.

use std::ffi::CString;

/// `field(index, delims, count)`: (start, len) of the fields, empty ones counted.
pub(super) fn field(b: &[u8], index: i64, delims: &[u8], count: i64) -> Option<(usize, usize)> {
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
pub(super) fn word(b: &[u8], index: i64, delims: &[u8], count: i64) -> Option<(usize, usize)> {
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
pub(super) fn host_port(b: &[u8]) -> (&[u8], Option<&[u8]>) {
    match b.iter().rposition(|&c| c == b':' || c == b']') {
        Some(i) if b[i] == b':' => (&b[..i], Some(&b[i + 1..])),
        _ => (b, None),
    }
}

pub(super) fn json_escape(b: &[u8], utf8: bool, out: &mut Vec<u8>) -> bool {
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
pub(super) fn url_decode(b: &[u8], form: bool, out: &mut Vec<u8>) -> bool {
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
pub(super) fn regsub(
    re: &regex::bytes::Regex,
    subst: &[u8],
    global: bool,
    b: &[u8],
    out: &mut Vec<u8>,
) {
    let mut last = 0;
    for caps in re.captures_iter(b) {
        let Some(m) = caps.get(0) else { break };
        out.extend_from_slice(&b[last..m.start()]);
        expand(subst, &caps, out);
        last = m.end();
        if !global {
            break;
        }
    }
    out.extend_from_slice(&b[last..]);
}

pub(super) fn crc32(b: &[u8], poly: u32) -> u32 {
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
pub(super) fn wt6(b: &[u8]) -> u32 {
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
pub(super) fn strftime(out: &mut Vec<u8>, format: &CString, t: i64, local: bool) -> Option<()> {
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

/// HAProxy's `exp_replace`: the replacement `rep` with `\N` taken from the match, and
/// `\r`, `\n`, `\t`, `\\` unescaped (`regsub`, `replace-header`, `replace-path`).
pub(crate) fn expand(rep: &[u8], caps: &regex::bytes::Captures<'_>, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < rep.len() {
        let c = rep[i];
        if c == b'\\' && i + 1 < rep.len() {
            let n = rep[i + 1];
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
