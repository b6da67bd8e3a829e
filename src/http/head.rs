//! Request and response heads: parse with httparse from the connection's buffer, check
//! them strictly (RFC 9112: framing, request target, Host), decide framing and
//! persistence, and write the rewritten head (hop-by-hop headers removed,
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

/// Hop-by-hop header fields that never cross the proxy (RFC 9110 §7.6.1).
fn is_hop_by_hop(name: &str) -> bool {
    const NAMES: [&str; 6] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "http2-settings",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The Connection header's tokens: close / keep-alive / upgrade flags and other names
/// to strip.
#[derive(Default)]
struct ConnectionTokens<'a> {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    others: [&'a str; MAX_CONNECTION_TOKENS],
    count: usize,
}

impl<'a> ConnectionTokens<'a> {
    fn collect(headers: &[httparse::Header<'a>]) -> Result<Self, ()> {
        let mut t = ConnectionTokens::default();
        for h in headers {
            if !h.name.eq_ignore_ascii_case("connection") {
                continue;
            }
            let v = std::str::from_utf8(h.value).map_err(|_| ())?;
            for tok in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if tok.eq_ignore_ascii_case("close") {
                    t.close = true;
                } else if tok.eq_ignore_ascii_case("keep-alive") {
                    t.keep_alive = true;
                } else if tok.eq_ignore_ascii_case("upgrade") {
                    t.upgrade = true;
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
}

fn lengths(headers: &[httparse::Header<'_>]) -> Result<Lengths, ()> {
    let mut l = Lengths {
        content_length: None,
        chunked: false,
        transfer_encoding: false,
    };
    let mut codings = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            for part in h.value.split(|&b| b == b',') {
                let part = trim(part);
                if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                    return Err(());
                }
                let n: u64 = std::str::from_utf8(part)
                    .map_err(|_| ())?
                    .parse()
                    .map_err(|_| ())?;
                match l.content_length {
                    Some(prev) if prev != n => return Err(()),
                    _ => l.content_length = Some(n),
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            l.transfer_encoding = true;
            for part in h.value.split(|&b| b == b',') {
                let part = trim(part);
                if part.is_empty() {
                    continue;
                }
                codings += 1;
                l.chunked = codings == 1 && part.eq_ignore_ascii_case(b"chunked");
            }
            if codings == 0 {
                return Err(());
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
    // We answer `100 Continue` ourselves, so the server never waits for a go-ahead.
    let expect_continue = expect_continue && framing != Framing::None;
    // An upgrade is passed on only for a request without a body: the tunnel starts
    // right after the head.
    let upgrade = conn.upgrade && upgrade_header && minor == 1 && framing == Framing::None;

    out.clear();
    // Pushed as bytes: `write!` costs more than the rest of the rewrite together.
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.");
    out.push(b'0' + minor);
    out.extend_from_slice(b"\r\n");
    let mut names = 0u64;
    for h in headers {
        let keep_upgrade = upgrade && h.name.eq_ignore_ascii_case("upgrade");
        if (is_hop_by_hop(h.name) && !keep_upgrade)
            || conn.lists(h.name)
            || (expect_continue && h.name.eq_ignore_ascii_case("expect"))
        {
            continue;
        }
        names |= crate::rules::head::name_bit(h.name.as_bytes());
        push_header(out, h.name, h.value);
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

/// What the connection loop needs to know about a parsed response.
#[derive(Debug)]
pub struct Response {
    pub head_len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The server lets us reuse its connection after this response.
    pub reusable: bool,
    /// A `101 Switching Protocols` to an upgrade request: the connection becomes a
    /// tunnel after this head.
    pub upgrade: bool,
    /// A summary of the header names written to `out` (`rules::head::name_bit`).
    pub names: u64,
}

/// Parses a response head (at most `max_headers` fields, framing as strict as for
/// requests: a malformed one is a 502); on success writes the head for the client into
/// `out`. `client_keep_alive` is lowered when the body is delimited by close.
/// `ask`: what the request asked for, so a 101 (upgrade) or a 2xx to a CONNECT starts
/// a tunnel.
#[allow(clippy::too_many_arguments)]
pub fn parse_response(
    buf: &[u8],
    max_headers: usize,
    request_is_head: bool,
    ask: TunnelAsk,
    client_minor: u8,
    client_keep_alive: &mut bool,
    out: &mut Vec<u8>,
) -> Parsed<Response> {
    let mut slots = header_slots();
    let max_headers = max_headers.min(slots.len());
    let mut res = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut slots[..max_headers],
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Reject(Reply::BadGateway),
    };
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Parsed::Reject(Reply::BadGateway);
    };
    // Three digits from 100: `085` would go out as `85` (found by fuzzing). Codes above
    // 599 are passed on, as HAProxy does (some services answer 999).
    if status < 100 {
        return Parsed::Reject(Reply::BadGateway);
    }
    let headers = &*res.headers;
    let Ok(conn) = ConnectionTokens::collect(headers) else {
        return Parsed::Reject(Reply::BadGateway);
    };
    let Ok(len) = lengths(headers) else {
        return Parsed::Reject(Reply::BadGateway);
    };
    // As strict as for requests: both framings, a coding we cannot delimit, or a
    // Transfer-Encoding on HTTP/1.0 (it would reach the client relabelled HTTP/1.1 and
    // be decoded as chunked while we delimit the body by close: found by fuzzing).
    if len.transfer_encoding && (len.content_length.is_some() || !len.chunked || minor == 0) {
        return Parsed::Reject(Reply::BadGateway);
    }
    // A 101 only answers a request that asked for it, and only on HTTP/1.1.
    let switching = status == 101;
    if switching && !(ask == TunnelAsk::Upgrade && minor == 1 && conn.upgrade) {
        return Parsed::Reject(Reply::BadGateway);
    }
    // A 2xx to a CONNECT has no body: the tunnel starts after its head.
    let connected = ask == TunnelAsk::Connect && (200..300).contains(&status);
    let upgrade = switching || connected;
    let interim = (100..200).contains(&status) && !upgrade;
    let framing = if interim || upgrade || request_is_head || status == 204 || status == 304 {
        Framing::None
    } else if len.transfer_encoding {
        Framing::Chunked
    } else {
        match len.content_length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let server_keep_alive = if minor == 1 {
        !conn.close
    } else {
        conn.keep_alive && !conn.close
    };
    let reusable = server_keep_alive && framing != Framing::UntilClose && !upgrade;
    if framing == Framing::UntilClose {
        *client_keep_alive = false;
    }

    out.clear();
    let reason = res.reason.unwrap_or("");
    // httparse takes exactly three digits, so the status goes out as it came.
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut names = 0u64;
    for h in headers {
        let keep_upgrade = switching && h.name.eq_ignore_ascii_case("upgrade");
        if (is_hop_by_hop(h.name) && !keep_upgrade)
            || conn.lists(h.name)
            || (connected
                && (h.name.eq_ignore_ascii_case("content-length")
                    || h.name.eq_ignore_ascii_case("transfer-encoding")))
        {
            continue;
        }
        // A chunked body to an HTTP/1.0 client cannot be delimited: close instead.
        if client_minor == 0 && h.name.eq_ignore_ascii_case("transfer-encoding") {
            *client_keep_alive = false;
        }
        names |= crate::rules::head::name_bit(h.name.as_bytes());
        push_header(out, h.name, h.value);
    }
    if switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if !interim && !connected {
        if !*client_keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if client_minor == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    // The Connection header written below matters to no rule.
    Parsed::Done(Response {
        head_len,
        status,
        framing,
        reusable,
        upgrade,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str, xff: Option<IpAddr>) -> Result<(String, Framing, bool), Reply> {
        let mut headers = header_slots();
        let mut out = Vec::new();
        let ff = crate::config::ForwardFor::default();
        match parse_request(
            raw.as_bytes(),
            &mut headers,
            &Limits::default(),
            xff.map(|ip| (ip, &ff)),
            &mut out,
        ) {
            Parsed::Done(r) => Ok((String::from_utf8(out).unwrap(), r.framing, r.keep_alive)),
            Parsed::Reject(r) => Err(r),
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn strips_hop_by_hop_and_appends_xff() {
        let (out, framing, ka) = req(
            "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Keep: 2\r\n\r\n",
            Some("10.0.0.1".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(
            out,
            "GET /a HTTP/1.1\r\nHost: x\r\nX-Keep: 2\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
        );
        assert_eq!(framing, Framing::None);
        assert!(!ka);
    }

    #[test]
    fn framing_rules() {
        let cases: &[(&str, Result<Framing, Reply>)] = &[
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", Ok(Framing::Length(5))),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", Ok(Framing::Length(5))),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", Ok(Framing::Chunked)),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Err(Reply::BadRequest)),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", Err(Reply::BadRequest)),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Err(Reply::BadRequest)),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Err(Reply::BadRequest)),
            ("GET / HTTP/1.1\r\n\r\n", Err(Reply::BadRequest)),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Err(Reply::BadRequest)),
            ("GET / HTTP/1.0\r\n\r\n", Ok(Framing::None)),
        ];
        for (raw, want) in cases {
            assert_eq!(req(raw, None).map(|r| r.1), *want, "{raw:?}");
        }
    }

    #[test]
    fn fuzz_findings() {
        // A target starting like `http:` followed by a multi-byte character.
        let raw = b"GET http:'/\xd1\x9e\xd0\x90 HTTP/1.1\r\nHost: ade\t\n\r\n";
        let mut headers = header_slots();
        let mut out = Vec::new();
        let r = parse_request(raw, &mut headers, &Limits::default(), None, &mut out);
        assert!(matches!(r, Parsed::Reject(Reply::BadRequest)));
        // A status below 100 (`085`); Transfer-Encoding on an HTTP/1.0 response.
        for raw in [
            &b"HTTP/1.1 085 Sw\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        ] {
            let mut ka = true;
            let r = parse_response(raw, 101, false, TunnelAsk::No, 0, &mut ka, &mut out);
            assert!(matches!(r, Parsed::Reject(Reply::BadGateway)));
        }
    }

    #[test]
    fn response_framing_and_persistence() {
        let mut out = Vec::new();
        let mut ka = true;
        let r = match parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            101,
            false,
            TunnelAsk::No,
            1,
            &mut ka,
            &mut out,
        ) {
            Parsed::Done(r) => r,
            _ => panic!(),
        };
        assert_eq!(
            (r.status, r.framing, r.reusable, ka),
            (200, Framing::Length(3), true, true)
        );
        let r = match parse_response(
            b"HTTP/1.1 200 OK\r\n\r\nabc",
            101,
            false,
            TunnelAsk::No,
            1,
            &mut ka,
            &mut out,
        ) {
            Parsed::Done(r) => r,
            _ => panic!(),
        };
        assert_eq!(
            (r.framing, r.reusable, ka),
            (Framing::UntilClose, false, false)
        );
        assert!(String::from_utf8_lossy(&out).contains("Connection: close"));
        let mut ka = true;
        let r = match parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            101,
            true,
            TunnelAsk::No,
            1,
            &mut ka,
            &mut out,
        ) {
            Parsed::Done(r) => r,
            _ => panic!(),
        };
        assert_eq!(r.framing, Framing::None);
    }
}
