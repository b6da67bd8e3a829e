//! HTTP compression (haproxy.cfg `compression`), as HAProxy 2.6's compression filter
//! decides it: the algorithm from the request's `Accept-Encoding` (`choose`, which
//! also removes that header with `offload`), whether the server's response may be
//! compressed (`response_allows`), the response head as HAProxy rewrites it
//! (`rewrite_head`), then the body compressed as it streams (`stream`, with the
//! deflate state of `encoder`, held only while a response is being compressed).
//!
//! A frontend and backend without `compression` never get here: the connection loop
//! tests two `Option`s per request and nothing else.

mod encoder;
mod stream;

use super::edit;
use super::framing::Framing;
use crate::config::compression::{Algo, Compression};
use crate::rules::head::Head;

/// The algorithm for a request (`None`: its response is left alone), chosen as
/// HAProxy's `select_compression_request_header` does, on the head as the request
/// rules left it in `out`; with `offload`, removes `Accept-Encoding` from it then.
pub(super) fn choose(
    fe: Option<&Compression>,
    be: Option<&Compression>,
    out: &mut Vec<u8>,
) -> Option<Algo> {
    let head = Head::new(out);
    // Old user agents announcing themselves as "Mozilla/4" are not sent compressed
    // responses, unless known good (MSIE 6 with XP SP2, MSIE 7 and later).
    if let Some(ua) = head.value(b"user-agent", 1, true) {
        if ua.len() >= 9
            && ua.starts_with(b"Mozilla/4")
            && (ua.len() < 31
                || &ua[25..30] != b"MSIE "
                || ua[30] < b'6'
                || (ua[30] == b'6' && (ua.len() < 54 || &ua[51..54] != b"SV1")))
        {
            return None;
        }
    }
    // The backend's algorithms have priority over the frontend's.
    let algos: &[Algo] = match (be, fe) {
        (Some(b), _) if !b.algos.is_empty() => &b.algos,
        (_, Some(f)) => &f.algos,
        _ => &[],
    };
    let mut chosen = None;
    let mut best_q = 0;
    for v in head.values(b"accept-encoding", false) {
        let (token, q) = coding(v);
        if q <= best_q {
            continue;
        }
        if let Some(a) = algos
            .iter()
            .find(|a| v.first() == Some(&b'*') || token.eq_ignore_ascii_case(a.token().as_bytes()))
        {
            chosen = Some(*a);
            best_q = q;
        }
    }
    if chosen.is_some() {
        if be.is_some_and(|b| b.offload) || fe.is_some_and(|f| f.offload) {
            edit::del_header(out, "accept-encoding");
        }
        return chosen;
    }
    // identity needs no header.
    algos.iter().copied().find(|&a| a == Algo::Identity)
}

/// One `Accept-Encoding` element: its coding and its q-value in thousandths (1000
/// without one), read as HAProxy reads them.
fn coding(v: &[u8]) -> (&[u8], u32) {
    let toklen = v.iter().take_while(|&&b| is_tchar(b)).count();
    let (token, mut rest) = v.split_at(toklen);
    loop {
        rest = trim_start(rest);
        let Some(after) = rest.strip_prefix(b";") else {
            return (token, 1000);
        };
        rest = trim_start(after);
        if rest.is_empty() {
            return (token, 1000);
        }
        if let Some(q) = rest.strip_prefix(b"q=") {
            return (token, qvalue(q));
        }
        let next = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        rest = &rest[next..];
    }
}

/// HAProxy's `http_parse_qvalue`: `D[.DDD]`, at most 1000; 1000 when it does not
/// start with a digit.
fn qvalue(s: &[u8]) -> u32 {
    let digit = |i: usize| {
        s.get(i)
            .filter(|b| b.is_ascii_digit())
            .map(|b| u32::from(b - b'0'))
    };
    let Some(units) = digit(0) else {
        return 1000;
    };
    let mut q = units * 1000;
    if s.get(1) == Some(&b'.') {
        for (i, scale) in [(2, 100), (3, 10), (4, 1)] {
            match digit(i) {
                Some(d) => q += d * scale,
                None => break,
            }
        }
    }
    q.min(1000)
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// A `tchar` (RFC 9110 §5.6.2): HAProxy's `HTTP_IS_TOKEN`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a response is, besides its head, for `response_allows`.
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) framing: Framing,
    /// HTTP/1.1 on both sides (HAProxy compresses nothing else).
    pub(super) http11: bool,
}

/// Whether a response may be compressed (HAProxy's
/// `select_compression_response_header`): HTTP/1.1 request and response, a 200, 201,
/// 202 or 203 with a body of known length, not already encoded, no
/// `Cache-Control: no-transform`, a valid single ETag if any, and a type listed in
/// `compression type` (backend's first) when one is, never `multipart/*`. The caller
/// has already left HEAD requests out.
pub(super) fn response_allows(
    fe: Option<&Compression>,
    be: Option<&Compression>,
    res: &Response,
    head: &[u8],
) -> bool {
    let head = Head::new(head);
    if !res.http11 || !matches!(res.status, 200..=203) {
        return false;
    }
    if !matches!(res.framing, Framing::Length(_) | Framing::Chunked) {
        return false;
    }
    if head.named(b"content-encoding").next().is_some() {
        return false;
    }
    if head
        .values(b"cache-control", false)
        .any(|v| v.eq_ignore_ascii_case(b"no-transform"))
    {
        return false;
    }
    let mut etags = head.named(b"etag");
    if let Some(e) = etags.next() {
        if !valid_etag(e.value) || etags.next().is_some() {
            return false;
        }
    }
    let types: &[Box<str>] = match (be, fe) {
        (Some(b), _) if !b.types.is_empty() => &b.types,
        (_, Some(f)) => &f.types,
        _ => &[],
    };
    match head.value(b"content-type", 1, true) {
        Some(ct) => {
            if starts_with_ci(ct, b"multipart") {
                return false;
            }
            types.is_empty() || types.iter().any(|t| starts_with_ci(ct, t.as_bytes()))
        }
        None => types.is_empty(),
    }
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `"..."` or `W/"..."` (HAProxy's `http_get_etag_type` not `ETAG_INVALID`).
fn valid_etag(e: &[u8]) -> bool {
    e.len() >= 2 && e.ends_with(b"\"") && (e[0] == b'"' || e.starts_with(b"W/\""))
}

/// Rewrites the response head for a compressed body as HAProxy does: adds
/// `Content-Encoding` (not for identity), replaces `Content-Length` with
/// `Transfer-Encoding: chunked`, makes a strong `ETag` weak, adds
/// `Vary: Accept-Encoding`.
pub(super) fn rewrite_head(out: &mut Vec<u8>, algo: Algo, framing: Framing) {
    if algo != Algo::Identity {
        edit::add_header(out, "Content-Encoding", algo.token().as_bytes());
    }
    if framing != Framing::Chunked {
        edit::del_header(out, "content-length");
        edit::add_header(out, "Transfer-Encoding", b"chunked");
    }
    let strong = Head::new(out)
        .named(b"etag")
        .next()
        .filter(|e| e.value.first() == Some(&b'"'))
        // Where the value starts in the head.
        .map(|e| e.value.as_ptr() as usize - out.as_ptr() as usize);
    if let Some(at) = strong {
        edit::splice(out, at..at, b"W/");
    }
    edit::add_header(out, "Vary", b"Accept-Encoding");
}

#[cfg(test)]
mod tests;
