//! Request and response heads: parse with httparse from the connection's buffer, check
//! them strictly (RFC 9112: framing, request target, Host), decide framing and
//! persistence, and write the rewritten head (hop-by-hop headers removed, framing
//! written as decided: one `Content-Length: N` or `Transfer-Encoding: chunked`,
//! X-Forwarded-For appended) into the outgoing buffer.

use std::io::Write;
use std::mem::MaybeUninit;
use std::net::IpAddr;

use super::framing::Framing;
use super::reply::Reply;
use crate::config::{Limits, MAX_HEADERS_CAP};

/// Most extra hop-by-hop names a Connection header may list.
const MAX_CONNECTION_TOKENS: usize = 16;

/// Header slots for one parse, left uninitialised (httparse fills what it uses), so a
/// large `limits.max_headers` costs nothing per request.
pub type HeaderSlots<'a> = [MaybeUninit<httparse::Header<'a>>; MAX_HEADERS_CAP];

pub fn header_slots<'a>() -> HeaderSlots<'a> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP]
}

/// What the connection loop needs to know about a parsed request.
#[derive(Debug)]
pub struct Request<'a> {
    pub head_len: usize,
    pub method: &'a str,
    /// The request target as sent.
    pub target: &'a str,
    /// The path (from an absolute-form target too), query included.
    pub path: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    /// Host without port, as sent (compare case-insensitively).
    pub host: Option<&'a str>,
    pub minor_version: u8,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header (WebSocket): the server may answer
    /// 101 and the connection becomes a tunnel.
    pub upgrade: bool,
    /// A CONNECT to an authority-form target: a 2xx answer makes a tunnel (served only
    /// where the frontend allows it).
    pub connect: bool,
    /// A summary of the header names written to `out` (`rules::head::name_bit`).
    pub names: u64,
}

/// What a request asked for that may turn its connection into a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelAsk {
    No,
    /// `Connection: upgrade`: a 101 answers it.
    Upgrade,
    /// CONNECT: a 2xx answers it.
    Connect,
}

pub enum Parsed<T> {
    Partial,
    Done(T),
    Reject(Reply),
}

/// What a field is to the rewrite of a head.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Content-Length or Transfer-Encoding: replaced by the framing as decided.
    Framing,
    /// A hop-by-hop field that never crosses the proxy (RFC 9110 §7.6.1).
    HopByHop,
    /// `Upgrade`: hop-by-hop, but kept for an upgrade that is passed on.
    Upgrade,
    Other,
}

/// What field `i` of a head is: by the masks `lengths` and `ConnectionTokens` made for
/// the first 64 fields, then by its name's length first (one comparison at most for
/// most names).
fn field(i: usize, name: &str, len: &Lengths, conn: &ConnectionTokens) -> Field {
    if len.fields & bit(i) != 0 {
        return Field::Framing;
    }
    if conn.fields & bit(i) != 0 {
        return Field::HopByHop;
    }
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match name.len() {
        14 if is("content-length") => Field::Framing,
        17 if is("transfer-encoding") => Field::Framing,
        10 if is("connection") || is("keep-alive") => Field::HopByHop,
        16 if is("proxy-connection") => Field::HopByHop,
        14 if is("http2-settings") => Field::HopByHop,
        2 if is("te") => Field::HopByHop,
        7 if is("upgrade") => Field::Upgrade,
        _ => Field::Other,
    }
}

/// Fields the balancer frames or routes a message by. A `Connection` header that
/// names one of them is not obeyed for it (HAProxy ignores such tokens too): removing
/// the field after deciding by it would let the server frame or route the message
/// differently (a body with no length in front of it is a second request).
fn decides_by(name: &str) -> bool {
    const NAMES: [&str; 4] = ["content-length", "transfer-encoding", "host", "expect"];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The Connection header's tokens: close / keep-alive / upgrade flags and other names
/// to strip (never one the balancer decides by).
#[derive(Default)]
struct ConnectionTokens<'a> {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    others: [&'a str; MAX_CONNECTION_TOKENS],
    count: usize,
    /// Which of the first 64 fields are `Connection` fields (the rewrite drops them
    /// without comparing their names again).
    fields: u64,
}

impl<'a> ConnectionTokens<'a> {
    fn collect(headers: &[httparse::Header<'a>]) -> Result<Self, ()> {
        let mut t = ConnectionTokens::default();
        for (i, h) in headers.iter().enumerate() {
            if !h.name.eq_ignore_ascii_case("connection") {
                continue;
            }
            t.fields |= bit(i);
            let v = std::str::from_utf8(h.value).map_err(|_| ())?;
            for tok in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if tok.eq_ignore_ascii_case("close") {
                    t.close = true;
                } else if tok.eq_ignore_ascii_case("keep-alive") {
                    t.keep_alive = true;
                } else if tok.eq_ignore_ascii_case("upgrade") {
                    t.upgrade = true;
                } else if decides_by(tok) {
                    continue;
                } else if t.count < MAX_CONNECTION_TOKENS {
                    t.others[t.count] = tok;
                    t.count += 1;
                } else {
                    return Err(());
                }
            }
        }
        Ok(t)
    }

    fn lists(&self, name: &str) -> bool {
        self.others[..self.count]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// Content-Length and Transfer-Encoding of one message.
struct Lengths {
    content_length: Option<u64>,
    /// Transfer-Encoding is present and is exactly one `chunked` (all its fields and
    /// list elements together): the only coding we can delimit.
    chunked: bool,
    transfer_encoding: bool,
    /// Which of the first 64 fields are Content-Length or Transfer-Encoding.
    fields: u64,
}

/// Field `i`'s bit in a mask of the first 64 fields (none for the others).
fn bit(i: usize) -> u64 {
    1u64.checked_shl(i as u32).unwrap_or(0)
}

fn lengths(headers: &[httparse::Header<'_>]) -> Result<Lengths, ()> {
    let mut l = Lengths {
        content_length: None,
        chunked: false,
        transfer_encoding: false,
        fields: 0,
    };
    let mut codings = 0;
    for (i, h) in headers.iter().enumerate() {
        if h.name.eq_ignore_ascii_case("content-length") {
            l.fields |= bit(i);
            for part in h.value.split(|&b| b == b',') {
                let part = trim(part);
                if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                    return Err(());
                }
                let n: u64 = std::str::from_utf8(part)
                    .map_err(|_| ())?
                    .parse()
                    .map_err(|_| ())?;
                // Lengths are signed 64-bit numbers to HAProxy and most servers.
                if n > i64::MAX as u64 {
                    return Err(());
                }
                match l.content_length {
                    Some(prev) if prev != n => return Err(()),
                    _ => l.content_length = Some(n),
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            l.fields |= bit(i);
            l.transfer_encoding = true;
            for part in h.value.split(|&b| b == b',') {
                let part = trim(part);
                // `, chunked`: an empty list element is refused (HAProxy: 422), not
                // skipped, so no recipient can read the list differently.
                if part.is_empty() {
                    return Err(());
                }
                codings += 1;
                l.chunked = codings == 1 && part.eq_ignore_ascii_case(b"chunked");
            }
        }
    }
    if codings > 1 {
        l.chunked = false;
    }
    Ok(l)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Who wrote a response head the HTTP path reads: an HTTP/1 server, or `h2map` from
/// an HTTP/2 server's response. The fields the balancer writes itself (framing,
/// `Connection`) follow HAProxy 2.6 for the latter: in lower case, as HTTP/2 names
/// are, and `transfer-encoding: chunked` last, after `connection`, where its HTTP/1
/// writer adds it to a message that came without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Http1,
    Http2,
}

/// Writes the framing the balancer decided on, in place of every Content-Length and
/// Transfer-Encoding field of the message (a repeated or listed length becomes one),
/// its name in the case `origin` writes it. One copy into `out`: this is on every
/// request and response. Returns the written name's bit (`rules::head::name_bit`), 0
/// if none was.
fn push_framing(out: &mut Vec<u8>, len: &Lengths, origin: Origin) -> u64 {
    let lower = origin == Origin::Http2;
    if len.chunked {
        out.extend_from_slice(match lower {
            false => b"Transfer-Encoding: chunked\r\n",
            true => b"transfer-encoding: chunked\r\n",
        });
        crate::rules::head::name_bit(b"Transfer-Encoding")
    } else if let Some(mut n) = len.content_length {
        let name: &[u8; 16] = match lower {
            false => b"Content-Length: ",
            true => b"content-length: ",
        };
        // The name, at most 20 digits, CRLF.
        let mut line = [0u8; 16 + 20 + 2];
        let mut i = line.len() - 2;
        line[i..].copy_from_slice(b"\r\n");
        loop {
            i -= 1;
            line[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        i -= name.len();
        line[i..i + name.len()].copy_from_slice(name);
        out.extend_from_slice(&line[i..]);
        crate::rules::head::name_bit(b"Content-Length")
    } else {
        0
    }
}

/// An `Upgrade` field value that offers `h2c` (HTTP/2 over cleartext, RFC 7540 §3.2).
fn offers_h2c(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|p| trim(p).eq_ignore_ascii_case(b"h2c"))
}

/// An authority (`host[:port]`) made of the characters RFC 3986 allows in a reg-name,
/// an IP literal and a port: no userinfo, path, space or control byte.
fn valid_authority(a: &str) -> bool {
    a.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

/// `host` and `port` of an authority; `default_port` when it has none.
fn host_port(a: &str, default_port: u16) -> Option<(&str, u16)> {
    let host = strip_port(a);
    let rest = &a[host.len()..];
    let port = match rest.strip_prefix(':') {
        None if rest.is_empty() => default_port,
        Some("") => default_port,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        _ => return None,
    };
    Some((host, port))
}

/// Parses a request head at the start of `buf` (at most `limits.max_headers` fields);
/// on success writes the head to send upstream into `out` (cleared first).
pub fn parse_request<'a>(
    buf: &'a [u8],
    headers: &'a mut [MaybeUninit<httparse::Header<'a>>],
    limits: &Limits,
    forward_for: Option<(IpAddr, &crate::config::ForwardFor)>,
    out: &mut Vec<u8>,
) -> Parsed<Request<'a>> {
    let max_headers = limits.max_headers.min(headers.len());
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers[..max_headers]) {
        Ok(httparse::Status::Complete(n)) => n,
        // A request line longer than the limit: say so before the head is whole, and
        // rather than "malformed" when a space inside it broke the parse.
        _ if buf.len() > limits.max_request_line + 2
            && !buf[..limits.max_request_line + 2].contains(&b'\n') =>
        {
            return Parsed::Reject(Reply::UriTooLong)
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(Reply::HeaderTooLarge),
        Err(_) => return Parsed::Reject(Reply::BadRequest),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Reject(Reply::BadRequest);
    };
    // "METHOD SP target SP HTTP/1.x": the line's length without its CRLF.
    if method.len() + target.len() + 10 > limits.max_request_line {
        return Parsed::Reject(Reply::UriTooLong);
    }
    let headers: &'a [httparse::Header<'a>] = req.headers;
    let Ok(conn) = ConnectionTokens::collect(headers) else {
        return Parsed::Reject(Reply::BadRequest);
    };
    let Ok(len) = lengths(headers) else {
        return Parsed::Reject(Reply::BadRequest);
    };
    // Both framings at once is the classic smuggling vector: refuse it (RFC 9112 §6.1
    // allows it), as we do a coding we cannot delimit and TE on HTTP/1.0.
    if len.transfer_encoding && (len.content_length.is_some() || !len.chunked || minor == 0) {
        return Parsed::Reject(Reply::BadRequest);
    }
    let framing = if len.chunked {
        Framing::Chunked
    } else {
        match len.content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    let mut host_header = None;
    let mut hosts = 0;
    let mut expect_continue = false;
    let mut upgrade_header = false;
    let mut h2c = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host_header = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| valid_authority(v));
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade_header = !h.value.is_empty();
            h2c |= offers_h2c(h.value);
        }
    }
    if (minor == 1 && hosts != 1) || hosts > 1 || (hosts == 1 && host_header.is_none()) {
        return Parsed::Reject(Reply::BadRequest);
    }
    // The request target's form (RFC 9112 §3.2): origin-form, absolute-form, `*` for
    // OPTIONS, authority-form `host:port` for CONNECT only (with a matching Host and no
    // body).
    let connect = method == "CONNECT";
    let (path, target_host) = split_target(target);
    match target_host {
        None if connect => {
            let Some((th, port)) = host_port(target, 0).filter(|&(h, p)| {
                p != 0 && !h.is_empty() && valid_authority(target) && target.contains(':')
            }) else {
                return Parsed::Reject(Reply::BadRequest);
            };
            if framing != Framing::None || len.transfer_encoding {
                return Parsed::Reject(Reply::BadRequest);
            }
            if let Some(hh) = host_header {
                match host_port(hh, port) {
                    Some((h, p)) if h.eq_ignore_ascii_case(th) && p == port => {}
                    _ => return Parsed::Reject(Reply::BadRequest),
                }
            }
        }
        None if target.starts_with('/') => {}
        None if target == "*" && method == "OPTIONS" => {}
        None => return Parsed::Reject(Reply::BadRequest),
        Some(_) if connect => return Parsed::Reject(Reply::BadRequest),
        Some(th) => {
            if th.is_empty() || !valid_authority(th) {
                return Parsed::Reject(Reply::BadRequest);
            }
            // An absolute-form target and a Host that name different servers.
            let default_port = if target.as_bytes()[4] == b's' || target.as_bytes()[4] == b'S' {
                443
            } else {
                80
            };
            if let Some(hh) = host_header {
                match (host_port(th, default_port), host_port(hh, default_port)) {
                    (Some((a, p)), Some((b, q))) if a.eq_ignore_ascii_case(b) && p == q => {}
                    _ => return Parsed::Reject(Reply::BadRequest),
                }
            }
        }
    }
    let host = if connect {
        Some(strip_port(target))
    } else {
        target_host.or(host_header).map(strip_port)
    };

    let keep_alive = if minor == 1 {
        !conn.close
    } else {
        conn.keep_alive && !conn.close
    };
    // `Expect: 100-continue` goes to the server, which answers it (HTTP/1.0 has no
    // 1xx: there the expectation is ignored, RFC 9110 §10.1.1).
    let expect_continue = expect_continue && minor == 1;
    // An upgrade is passed on only for a request without a body: the tunnel starts
    // right after the head. An `h2c` upgrade is not: its HTTP/2 streams would pass
    // the balancer unseen (no rule, no routing, no log), so the request goes on as
    // plain HTTP/1.1 without `Upgrade` and `HTTP2-Settings`, and the server answers it
    // as such (RFC 7540 §3.2 lets a server ignore the upgrade).
    let upgrade = conn.upgrade && upgrade_header && !h2c && minor == 1 && framing == Framing::None;

    out.clear();
    // Pushed as bytes: `write!` costs more than the rest of the rewrite together.
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.");
    out.push(b'0' + minor);
    out.extend_from_slice(b"\r\n");
    let mut framing_written = false;
    let mut names = 0u64;
    for (i, h) in headers.iter().enumerate() {
        match field(i, h.name, &len, &conn) {
            Field::Framing => {
                if !std::mem::replace(&mut framing_written, true) {
                    names |= push_framing(out, &len, Origin::Http1);
                }
            }
            Field::HopByHop => {}
            Field::Upgrade if !upgrade => {}
            _ if conn.lists(h.name) => {}
            _ => {
                names |= crate::rules::head::name_bit(h.name.as_bytes());
                push_header(out, h.name, h.value);
            }
        }
    }
    if upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    }
    if let Some((ip, ff)) = forward_for {
        let present = ff.if_none
            && headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(&ff.header));
        if !present {
            let _ = write!(out, "{}: {ip}\r\n", ff.header);
        }
    }
    out.extend_from_slice(b"\r\n");
    Parsed::Done(Request {
        head_len,
        method,
        target,
        path,
        headers,
        host,
        minor_version: minor,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
        connect,
        names,
    })
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Splits an absolute-form target into (path, host); origin-form passes through.
fn split_target(target: &str) -> (&str, Option<&str>) {
    // Compare bytes: the target may hold non-ASCII bytes, and a str slice inside a
    // character would panic (found by fuzzing).
    let t = target.as_bytes();
    let rest = if t.len() >= 7 && t[..7].eq_ignore_ascii_case(b"http://") {
        &target[7..]
    } else if t.len() >= 8 && t[..8].eq_ignore_ascii_case(b"https://") {
        &target[8..]
    } else {
        return (target, None);
    };
    match rest.find(['/', '?']) {
        Some(i) => (&rest[i..], Some(&rest[..i])),
        None => ("/", Some(rest)),
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

mod response;
pub use response::{parse_response, Response};

#[cfg(test)]
mod tests;
