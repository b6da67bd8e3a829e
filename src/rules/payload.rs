//! Layer-6 fetches on the bytes a `tcp-request content` rule buffered (HAProxy 2.6's
//! `payload.c`): the TLS ClientHello's SNI, ALPN, handshake type and version, and RDP
//! cookies. Each answers `Found`, `NotFound`, or `TooShort` when more bytes could
//! change the answer (the rule then waits, up to `tcp-request inspect-delay`).

/// The answer of a payload fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look<T> {
    Found(T),
    NotFound,
    /// Not enough bytes yet (HAProxy's `SMP_F_MAY_CHANGE`).
    TooShort,
}

impl<T> Look<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Look<U> {
        match self {
            Look::Found(v) => Look::Found(f(v)),
            Look::NotFound => Look::NotFound,
            Look::TooShort => Look::TooShort,
        }
    }
}

fn u16at(d: &[u8], i: usize) -> usize {
    (usize::from(d[i]) << 8) | usize::from(d[i + 1])
}

/// The extensions block of a complete ClientHello at the start of `data`.
fn hello_extensions(data: &[u8]) -> Look<&[u8]> {
    use Look::*;
    let d = data;
    if d.is_empty() {
        return TooShort;
    }
    if d[0] != 0x16 {
        return NotFound;
    }
    if d.len() < 3 {
        return TooShort;
    }
    if d[1] < 0x03 {
        return NotFound;
    }
    if d.len() < 5 {
        return TooShort;
    }
    if u16at(d, 3) < 1 + 3 + 2 + 32 + 1 + 2 + 2 + 1 + 1 + 2 + 2 {
        return NotFound;
    }
    let d = &d[5..];
    if d.is_empty() {
        return TooShort;
    }
    if d[0] != 0x01 {
        return NotFound;
    }
    if d.len() < 4 {
        return TooShort;
    }
    let hs_len = (usize::from(d[1]) << 16) | u16at(d, 2);
    if hs_len < 2 + 32 + 1 + 2 + 2 + 1 + 1 + 2 + 2 {
        return NotFound;
    }
    // The whole handshake, even when it spans several records' worth of bytes.
    let Some(body) = d.get(4..4 + hs_len) else {
        return TooShort;
    };
    if body[0] < 0x03 || body[1] < 0x01 {
        return NotFound;
    }
    let walk = || -> Option<&[u8]> {
        let sid = usize::from(*body.get(34)?);
        if sid > 32 {
            return None;
        }
        let rest = body.get(35 + sid..)?;
        let ciphers = u16at(rest.get(..2)?, 0);
        if ciphers < 2 {
            return None;
        }
        let rest = rest.get(2 + ciphers..)?;
        let comp = usize::from(*rest.first()?);
        if comp < 1 {
            return None;
        }
        let rest = rest.get(1 + comp..)?;
        let ext_len = u16at(rest.get(..2)?, 0);
        rest.get(2..2 + ext_len)
    };
    match walk() {
        Some(e) => Found(e),
        None => NotFound,
    }
}

/// Walks the extensions; `f(type, body)` returns `Some` to stop.
fn find_ext<'a, T>(
    data: &'a [u8],
    mut f: impl FnMut(usize, &'a [u8]) -> Option<Look<T>>,
) -> Look<T> {
    let mut d = match hello_extensions(data) {
        Look::Found(d) => d,
        Look::NotFound => return Look::NotFound,
        Look::TooShort => return Look::TooShort,
    };
    while d.len() >= 4 {
        let typ = u16at(d, 0);
        let len = u16at(d, 2);
        if len > d.len() - 4 {
            return Look::NotFound;
        }
        if let Some(r) = f(typ, &d[4..4 + len]) {
            return r;
        }
        d = &d[4 + len..];
    }
    Look::NotFound
}

/// `req.ssl_sni`: the host name of the ClientHello's server_name extension.
pub fn ssl_sni(data: &[u8]) -> Look<&[u8]> {
    find_ext(data, |typ, body| {
        if typ != 0 {
            return None;
        }
        if body.len() < 2 {
            return Some(Look::NotFound);
        }
        let list = u16at(body, 0);
        if list < 4 || body.len() < 5 || list > body.len() - 2 {
            return Some(Look::NotFound);
        }
        if body[2] != 0 {
            return Some(Look::NotFound);
        }
        let n = u16at(body, 3);
        Some(match body.get(5..5 + n) {
            Some(name) => Look::Found(name),
            None => Look::NotFound,
        })
    })
}

/// `req.ssl_alpn`: the first protocol of the ALPN extension.
pub fn ssl_alpn(data: &[u8]) -> Look<&[u8]> {
    find_ext(data, |typ, body| {
        if typ != 16 {
            return None;
        }
        if body.len() < 3 {
            return Some(Look::NotFound);
        }
        let n = usize::from(body[2]);
        Some(match body.get(3..3 + n) {
            Some(p) if n > 0 => Look::Found(p),
            _ => Look::NotFound,
        })
    })
}

/// `req.ssl_hello_type`: the handshake type of a complete first SSLv3+ record.
pub fn ssl_hello_type(data: &[u8]) -> Look<i64> {
    if data.is_empty() {
        return Look::TooShort;
    }
    if !((0x14..=0x17).contains(&data[0]) || data[0] == 0xff) {
        return Look::NotFound;
    }
    if data.len() < 9 {
        return Look::TooShort;
    }
    if (usize::from(data[1]) << 16) + usize::from(data[2]) < 0x30000 {
        return Look::NotFound;
    }
    if u16at(data, 3) < 4 {
        return Look::NotFound;
    }
    let hs_len = (usize::from(data[6]) << 16) | u16at(data, 7);
    if data.len() < 9 + hs_len {
        return Look::TooShort;
    }
    Look::Found(i64::from(data[5]))
}

/// `req.ssl_ver`: the ClientHello's version as `major << 16 | minor` (SSLv3 format).
pub fn ssl_ver(data: &[u8]) -> Look<i64> {
    if data.is_empty() {
        return Look::TooShort;
    }
    if !((0x14..=0x17).contains(&data[0]) || data[0] == 0xff) {
        return Look::NotFound;
    }
    if data.len() < 11 {
        return Look::TooShort;
    }
    let version = (usize::from(data[1]) << 16) + usize::from(data[2]);
    let msg_len = u16at(data, 3);
    if version < 0x30000 || !(6..=(1 << 14) + 2048).contains(&msg_len) {
        return Look::NotFound;
    }
    Look::Found(((i64::from(data[9])) << 16) + i64::from(data[10]))
}

/// `req.rdp_cookie([name])`: the value of the `Cookie: mstshash=VALUE` line an RDP
/// client sends first (any name when `name` is empty).
pub fn rdp_cookie<'a>(data: &'a [u8], name: &[u8]) -> Look<&'a [u8]> {
    // "\x03\x00" TPKT, 11 bytes of X.224, then "Cookie: NAME=VALUE\r\n".
    if data.len() < 11 {
        return Look::TooShort;
    }
    let rest = &data[11..];
    let Some(body) = rest.strip_prefix(b"Cookie:") else {
        return if b"Cookie:".starts_with(&rest[..rest.len().min(7)]) {
            Look::TooShort
        } else {
            Look::NotFound
        };
    };
    let body = super::head::trim(body);
    let Some(eq) = body.iter().position(|&b| b == b'=') else {
        return Look::TooShort;
    };
    if !name.is_empty() && !body[..eq].eq_ignore_ascii_case(name) {
        return Look::NotFound;
    }
    let val = &body[eq + 1..];
    match val.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Look::Found(&val[..end]),
        None => Look::TooShort,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal TLS 1.2 ClientHello for `sni` (with an ALPN extension for `h2`).
    pub fn client_hello(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        // server_name
        let name = sni.as_bytes();
        ext.extend_from_slice(&[0, 0]);
        ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
        ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
        ext.extend_from_slice(name);
        // ALPN: h2
        ext.extend_from_slice(&[0, 16, 0, 5, 0, 3, 2, b'h', b'2']);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn hello() {
        let h = client_hello("www.example.com");
        assert_eq!(ssl_sni(&h), Look::Found(&b"www.example.com"[..]));
        assert_eq!(ssl_alpn(&h), Look::Found(&b"h2"[..]));
        assert_eq!(ssl_hello_type(&h), Look::Found(1));
        assert_eq!(ssl_ver(&h), Look::Found(0x30003));
        for cut in [0, 1, 4, 10, h.len() - 1] {
            assert_eq!(ssl_sni(&h[..cut]), Look::TooShort, "cut at {cut}");
        }
        assert_eq!(ssl_sni(b"GET / HTTP/1.1\r\n\r\n"), Look::NotFound);
        assert_eq!(ssl_hello_type(b"GET /"), Look::NotFound);
    }

    #[test]
    fn rdp() {
        let mut d = vec![3, 0, 0, 0x2a, 0x25, 0xe0, 0, 0, 0, 0, 0];
        d.extend_from_slice(b"Cookie: mstshash=alice\r\n");
        assert_eq!(rdp_cookie(&d, b"mstshash"), Look::Found(&b"alice"[..]));
        assert_eq!(rdp_cookie(&d, b""), Look::Found(&b"alice"[..]));
        assert_eq!(rdp_cookie(&d[..20], b""), Look::TooShort);
        assert_eq!(rdp_cookie(&d, b"other"), Look::NotFound);
    }
}
