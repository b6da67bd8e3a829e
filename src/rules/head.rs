//! A read-only view of a message head as ringlb rewrites it (`METHOD SP target SP
//! HTTP/1.x` or `HTTP/1.1 NNN reason`, then `name: value` lines, CRLF line ends, an
//! empty line): what the HTTP fetches read. Rules edit that same head in place, so a
//! rule always sees what the rules before it did, as in HAProxy.

/// A request or response head (the bytes up to and including its empty line).
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub bytes: &'a [u8],
}

/// One header line: its name, its value (trimmed), and where the line is in the head.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    /// Byte range of the whole line, CRLF included.
    pub start: usize,
    pub end: usize,
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn find(hay: &[u8], needle: u8) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// The position of the first `\n` at or after `from`, eight bytes at a time (heads
/// are scanned by every header rule: this is their hot loop).
#[inline]
pub fn find_nl(b: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut i = from;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(w) ^ NL;
        let t = x.wrapping_sub(LO) & !x & HI;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| c == b'\n').map(|p| i + p)
}

impl<'a> Head<'a> {
    pub fn new(bytes: &'a [u8]) -> Head<'a> {
        Head { bytes }
    }

    /// The first line, without its CRLF.
    pub fn first_line(&self) -> &'a [u8] {
        let end = find_nl(self.bytes, 0).unwrap_or(self.bytes.len());
        let line = &self.bytes[..end];
        line.strip_suffix(b"\r").unwrap_or(line)
    }

    /// Length of the first line, CRLF included (where the header lines start).
    pub fn first_line_len(&self) -> usize {
        find_nl(self.bytes, 0).map_or(self.bytes.len(), |e| e + 1)
    }

    fn words(&self) -> (&'a [u8], &'a [u8], &'a [u8]) {
        let l = self.first_line();
        let a = find(l, b' ').unwrap_or(l.len());
        let rest = l.get(a + 1..).unwrap_or(&[]);
        let b = rest.iter().rposition(|&c| c == b' ');
        match b {
            Some(b) => (&l[..a], &rest[..b], &rest[b + 1..]),
            None => (&l[..a], rest, &[]),
        }
    }

    /// Request: the method.
    pub fn method(&self) -> &'a [u8] {
        self.words().0
    }

    /// Request: the target as sent (`/p?q` or `http://h/p?q`).
    pub fn target(&self) -> &'a [u8] {
        self.words().1
    }

    /// Request: `HTTP/1.x`; response: the same from the status line.
    pub fn version(&self) -> &'a [u8] {
        let l = self.first_line();
        if l.starts_with(b"HTTP/") {
            &l[..find(l, b' ').unwrap_or(l.len())]
        } else {
            self.words().2
        }
    }

    /// Response: the status code.
    pub fn status(&self) -> Option<u16> {
        let l = self.first_line();
        let code = l.get(9..12)?;
        std::str::from_utf8(code).ok()?.parse().ok()
    }

    /// Response: the reason phrase.
    pub fn reason(&self) -> &'a [u8] {
        self.first_line().get(13..).unwrap_or(&[])
    }

    /// Request: the path of the target (an absolute-form target's authority removed),
    /// query included. Empty for `*` and authority-form targets.
    pub fn path_and_query(&self) -> &'a [u8] {
        let t = self.target();
        let lower = |n: usize| t.len() >= n && t[..n].eq_ignore_ascii_case(&b"https://"[..n]);
        let rest = if t.len() >= 7 && t[..7].eq_ignore_ascii_case(b"http://") {
            &t[7..]
        } else if lower(8) {
            &t[8..]
        } else if t.starts_with(b"/") {
            return t;
        } else {
            return &[];
        };
        match rest.iter().position(|&c| c == b'/' || c == b'?') {
            Some(i) => &rest[i..],
            None => &[],
        }
    }

    /// HAProxy's `path`: the path without the query string.
    pub fn path(&self) -> &'a [u8] {
        let p = self.path_and_query();
        &p[..find(p, b'?').unwrap_or(p.len())]
    }

    /// HAProxy's `query`: what follows the first `?` (absent without one).
    pub fn query(&self) -> Option<&'a [u8]> {
        let t = self.target();
        find(t, b'?').map(|i| &t[i + 1..])
    }

    /// Every header line, in order.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            bytes: self.bytes,
            pos: self.first_line_len(),
        }
    }

    /// The fields named `name` (case-insensitive; every field when `name` is empty).
    pub fn named<'n>(&self, name: &'n [u8]) -> Named<'a, 'n> {
        Named {
            fields: self.fields(),
            name,
        }
    }

    /// The values of header `name`, each comma-separated element on its own (HAProxy's
    /// `req.hdr`; `full`: whole lines, `req.fhdr`). Occurrence numbers count from 1; a
    /// negative one counts from the last (-1 = the last).
    pub fn value(&self, name: &[u8], occ: i64, full: bool) -> Option<&'a [u8]> {
        if occ > 0 {
            return self.values(name, full).nth((occ - 1) as usize);
        }
        if occ == -1 {
            // The last element of the last field with that name.
            let f = self.named(name).last()?;
            return Split {
                rest: Some(f.value),
                full,
            }
            .last();
        }
        let total = self.values(name, full).count() as i64;
        let want = total + occ + 1;
        if want < 1 {
            return None;
        }
        self.values(name, full).nth((want - 1) as usize)
    }

    /// Every value of header `name` (every header when empty), in order, split on
    /// commas unless `full`.
    pub fn values<'n>(&self, name: &'n [u8], full: bool) -> Values<'a, 'n> {
        Values {
            named: self.named(name),
            full,
            cur: None,
        }
    }
}

/// Fields with a given name.
pub struct Named<'a, 'n> {
    fields: Fields<'a>,
    name: &'n [u8],
}

impl<'a> Iterator for Named<'a, '_> {
    type Item = Field<'a>;
    fn next(&mut self) -> Option<Field<'a>> {
        let name = self.name;
        if name.is_empty() {
            return self.fields.next();
        }
        // Lines whose start is not `name:` are skipped without being split up.
        let bytes = self.fields.bytes;
        loop {
            let start = self.fields.pos;
            let nl = find_nl(bytes, start)?;
            let line = &bytes[start..nl];
            if line.len() > name.len()
                && line[name.len()] == b':'
                && line[..name.len()].eq_ignore_ascii_case(name)
            {
                return self.fields.next();
            }
            if line.is_empty() || line == b"\r" {
                self.fields.pos = bytes.len();
                return None;
            }
            self.fields.pos = nl + 1;
        }
    }
}

/// A 64-bit summary of the header names of a head (a bit per name class), so that a
/// rule removing a header can tell it is absent without scanning the head.
pub fn name_bit(name: &[u8]) -> u64 {
    let (Some(f), Some(l)) = (name.first(), name.last()) else {
        return 1;
    };
    let h = (name.len() as u32)
        .wrapping_mul(31)
        .wrapping_add(u32::from(f.to_ascii_lowercase()) * 7)
        .wrapping_add(u32::from(l.to_ascii_lowercase()));
    1u64 << (h % 64)
}

/// The name summary of every header of `head`.
pub fn names_of(head: &[u8]) -> u64 {
    Head::new(head)
        .fields()
        .fold(0, |m, f| m | name_bit(f.name))
}

/// Header values (comma-split unless `full`).
pub struct Values<'a, 'n> {
    named: Named<'a, 'n>,
    full: bool,
    cur: Option<Split<'a>>,
}

impl<'a> Iterator for Values<'a, '_> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(v) = self.cur.as_mut().and_then(Iterator::next) {
                return Some(v);
            }
            let f = self.named.next()?;
            self.cur = Some(Split {
                rest: Some(f.value),
                full: self.full,
            });
        }
    }
}

/// Splits a header value on commas outside quoted strings (HAProxy's
/// `http_find_header` with `full == 0`).
struct Split<'a> {
    rest: Option<&'a [u8]>,
    full: bool,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let r = self.rest?;
        if self.full {
            self.rest = None;
            return Some(r);
        }
        let mut quoted = false;
        let mut i = 0;
        while i < r.len() {
            match r[i] {
                b'"' => quoted = !quoted,
                b'\\' if quoted => i += 1,
                b',' if !quoted => {
                    self.rest = Some(&r[i + 1..]);
                    return Some(trim(&r[..i]));
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(trim(r))
    }
}

pub struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;
    fn next(&mut self) -> Option<Field<'a>> {
        loop {
            let start = self.pos;
            let nl = find_nl(self.bytes, start)?;
            let end = nl + 1;
            self.pos = end;
            let line = &self.bytes[start..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                self.pos = self.bytes.len();
                return None;
            }
            let Some(colon) = find(line, b':') else {
                continue;
            };
            return Some(Field {
                name: &line[..colon],
                value: trim(&line[colon + 1..]),
                start,
                end,
            });
        }
    }
}

/// Cookies of a `Cookie` header value (`a=1; b=2`): (name, value) pairs.
pub fn cookies(v: &[u8]) -> Cookies<'_> {
    Cookies {
        rest: v,
        done: false,
    }
}

pub struct Cookies<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Iterator for Cookies<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        loop {
            if self.done {
                return None;
            }
            let (kv, rest) = match find(self.rest, b';') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => {
                    self.done = true;
                    (self.rest, &self.rest[self.rest.len()..])
                }
            };
            self.rest = rest;
            let kv = trim(kv);
            if kv.is_empty() {
                continue;
            }
            return Some(match find(kv, b'=') {
                Some(eq) => (trim(&kv[..eq]), trim(&kv[eq + 1..])),
                None => (kv, &kv[kv.len()..]),
            });
        }
    }
}

/// The cookie of a `Set-Cookie` header value: only the first `name=value` counts.
pub fn set_cookie(v: &[u8]) -> Option<(&[u8], &[u8])> {
    cookies(v).next()
}

/// Query-string parameters, each ending at `&`, `;` or `delim`: (name, value) pairs.
pub fn params(q: &[u8], delim: u8) -> Params<'_> {
    Params {
        rest: q,
        delim,
        done: false,
    }
}

pub struct Params<'a> {
    rest: &'a [u8],
    delim: u8,
    done: bool,
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        loop {
            if self.done {
                return None;
            }
            let d = self.delim;
            let (kv, rest) = match self
                .rest
                .iter()
                .position(|&c| c == b'&' || c == b';' || c == d)
            {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => {
                    self.done = true;
                    (self.rest, &self.rest[self.rest.len()..])
                }
            };
            self.rest = rest;
            if kv.is_empty() {
                continue;
            }
            return Some(match find(kv, b'=') {
                Some(eq) => (&kv[..eq], &kv[eq + 1..]),
                None => (kv, &kv[kv.len()..]),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"GET http://Example.com:8080/a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nX-List: a, \"b,c\", d\r\nx-list: e\r\nCookie: s=1; t=2\r\n\r\n";

    #[test]
    fn request_view() {
        let h = Head::new(REQ);
        assert_eq!(h.method(), b"GET");
        assert_eq!(h.target(), b"http://Example.com:8080/a/b?x=1&y=2");
        assert_eq!(h.version(), b"HTTP/1.1");
        assert_eq!(h.path(), b"/a/b");
        assert_eq!(h.path_and_query(), b"/a/b?x=1&y=2");
        assert_eq!(h.query(), Some(&b"x=1&y=2"[..]));
        let v: Vec<&[u8]> = h.values(b"x-list", false).collect();
        assert_eq!(v, vec![&b"a"[..], b"\"b,c\"", b"d", b"e"]);
        assert_eq!(h.value(b"x-list", -1, false), Some(&b"e"[..]));
        assert_eq!(h.value(b"x-list", 2, false), Some(&b"\"b,c\""[..]));
        assert_eq!(h.value(b"x-list", -2, false), Some(&b"d"[..]));
        assert_eq!(h.value(b"x-list", 1, true), Some(&b"a, \"b,c\", d"[..]));
        assert_eq!(h.value(b"x-list", 9, false), None);
        let c: Vec<_> = h.values(b"cookie", true).flat_map(cookies).collect();
        assert_eq!(c, vec![(&b"s"[..], &b"1"[..]), (b"t", b"2")]);
        let p: Vec<_> = params(h.query().unwrap(), b'?').collect();
        assert_eq!(p[1], (&b"y"[..], &b"2"[..]));
        let p: Vec<_> = params(b"a=1;b=2&&c", b'?').collect();
        assert_eq!(p, vec![(&b"a"[..], &b"1"[..]), (b"b", b"2"), (b"c", b"")]);
        assert_eq!(h.values(b"", false).count(), 6);
    }

    #[test]
    fn response_view() {
        let h = Head::new(b"HTTP/1.1 404 Not Found\r\nServer: x\r\n\r\n");
        assert_eq!(h.status(), Some(404));
        assert_eq!(h.reason(), b"Not Found");
        assert_eq!(h.version(), b"HTTP/1.1");
        assert_eq!(h.fields().count(), 1);
    }
}
