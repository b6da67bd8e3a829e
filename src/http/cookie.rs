//! Cookie persistence on the request path, as HAProxy 2.6 does it
//! (`http_manage_client_side_cookies`, `http_manage_server_side_cookies` and the
//! insertion in `http_process_res_common`): the request's cookie chooses the server
//! before balancing (and is stripped or unprefixed for the server), the response's
//! cookie is deleted, rewritten or prefixed, and a `Set-Cookie` is inserted (with
//! `cache-control: private` under `nocache`). It also gives the 3rd and 4th characters
//! of the termination state for the log.
//!
//! Owns: the request's persistence facts (`Persist`). Edits heads in place; the only
//! buffer it uses is a per-thread scratch line kept across requests (nothing is
//! allocated per request once it has grown).

use std::cell::RefCell;

use crate::config::cookie::{CookieMode, Persistence};
use crate::upstream::BackendState;

/// What the request's cookie decided, carried to the response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Persist {
    /// The server the cookie designates and that may take the request (HAProxy's
    /// `SF_DIRECT`), possibly down under `option persist`.
    pub server: Option<u32>,
    /// `%tsc` 3rd and 4th characters (0 while unset: `N`; the backend has no cookie
    /// that HAProxy reports: `-`).
    req: u8,
    res: u8,
    logged: bool,
    /// Dates the client's cookie carried (seconds since the epoch, 0 = none).
    last_date: u32,
    first_date: u32,
    post: bool,
    /// GET, HEAD, OPTIONS or TRACE: a response to it may be cached.
    safe: bool,
}

impl Persist {
    /// The two characters for the termination state.
    pub fn log_chars(&self) -> [u8; 2] {
        if !self.logged {
            return *b"--";
        }
        let c = |b: u8| if b == 0 { b'N' } else { b };
        [c(self.req), c(self.res)]
    }
}

thread_local! {
    /// The rebuilt `Cookie` value of a request (kept across requests).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Seconds since the epoch.
fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// HAProxy's `b64tos30`: five base64 characters into a 30-bit value (`None` if any
/// is not base64).
fn b64_to_s30(s: &[u8]) -> Option<u32> {
    let mut out = 0u32;
    for &c in s.get(..5)? {
        let v = B64.iter().position(|&b| b == c)? as u32;
        out = (out << 6) | v;
    }
    Some(out)
}

/// HAProxy's `s30tob64`.
fn s30_to_b64(v: u32, out: &mut Vec<u8>) {
    for i in (0..5).rev() {
        out.push(B64[((v >> (6 * i)) & 0x3f) as usize]);
    }
}

/// The `(start, end)` of each `Cookie:` header line's value in `head`, first to
/// last, found one at a time from `from`.
fn next_header(head: &[u8], from: usize, name: &[u8]) -> Option<(usize, usize, usize)> {
    let mut pos = from;
    while pos < head.len() {
        let end = crate::rules::head::find_nl(head, pos).map_or(head.len(), |p| p + 1);
        let line = &head[pos..end];
        if line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name)
        {
            let mut vs = pos + name.len() + 1;
            while vs < end && (head[vs] == b' ' || head[vs] == b'\t') {
                vs += 1;
            }
            let mut ve = end;
            while ve > vs && matches!(head[ve - 1], b'\r' | b'\n' | b' ' | b'\t') {
                ve -= 1;
            }
            return Some((pos, vs, ve));
        }
        pos = end;
    }
    None
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let b = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(a, |p| p + 1);
    &s[a..b]
}

/// The request side: reads the persistence cookie from the `Cookie` lines of `head`
/// (the head for the server, after the request rules), chooses the server it names,
/// and strips it (`insert indirect`) or its prefix (`prefix`).
pub fn request(conf: &Persistence, be: &BackendState, head: &mut Vec<u8>, method: &str) -> Persist {
    let mut p = Persist {
        logged: conf.logs_state(),
        post: method == "POST",
        safe: matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE"),
        ..Persist::default()
    };
    let strip = conf.mode == CookieMode::Insert && conf.indirect;
    let prefix = conf.mode == CookieMode::Prefix;
    let name = conf.name.as_bytes();
    let mut now = 0;
    let first_line = crate::rules::head::Head::new(head).first_line_len();
    let mut from = first_line;
    while let Some((line, vs, ve)) = next_header(head, from, b"cookie") {
        let mut changed = false;
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.clear();
            for part in head[vs..ve].split(|&b| b == b';') {
                let part = trim(part);
                if part.is_empty() {
                    continue;
                }
                let (att, val) = match part.iter().position(|&b| b == b'=') {
                    Some(e) => (trim(&part[..e]), trim(&part[e + 1..])),
                    None => (part, &part[part.len()..]),
                };
                let mut keep: &[u8] = part;
                let mut keep_val: Option<&[u8]> = None;
                if att == name {
                    let delim = if prefix {
                        val.iter().position(|&b| b == b'~').unwrap_or(val.len())
                    } else {
                        match val.iter().position(|&b| b == b'|') {
                            Some(bar) => {
                                let rest = &val[bar + 1..];
                                if let Some(v) = b64_to_s30(rest).filter(|&v| v > 0) {
                                    p.last_date = v << 2;
                                }
                                if let Some(bar2) = rest.iter().position(|&b| b == b'|') {
                                    if rest.len() - bar2 > 5 {
                                        if let Some(v) =
                                            b64_to_s30(&rest[bar2 + 1..]).filter(|&v| v > 0)
                                        {
                                            p.first_date = v << 2;
                                        }
                                    }
                                }
                                bar
                            }
                            None => val.len(),
                        }
                    };
                    let mut server_part = &val[..delim];
                    if (p.first_date != 0 && conf.maxlife != 0)
                        || (p.last_date != 0 && conf.maxidle != 0)
                    {
                        if now == 0 {
                            now = now_secs();
                        }
                        let (n, f, l) = (now as i64, p.first_date as i64, p.last_date as i64);
                        let old = p.first_date != 0
                            && conf.maxlife != 0
                            && (n - f > conf.maxlife as i64 || f - n > 86400);
                        let idle = !old
                            && p.last_date != 0
                            && conf.maxidle != 0
                            && (n - l > conf.maxidle as i64 || l - n > 86400);
                        if old || idle {
                            p.req = if old { b'O' } else { b'E' };
                            server_part = &[];
                            p.first_date = 0;
                            p.last_date = 0;
                        }
                    }
                    choose(conf, be, server_part, &mut p);
                    if prefix && delim != val.len() {
                        keep_val = Some(&val[delim + 1..]);
                        changed = true;
                    } else if strip {
                        keep = &[];
                        changed = true;
                    }
                }
                if keep.is_empty() {
                    continue;
                }
                if !s.is_empty() {
                    s.extend_from_slice(b"; ");
                }
                match keep_val {
                    Some(v) => {
                        s.extend_from_slice(att);
                        s.push(b'=');
                        s.extend_from_slice(v);
                    }
                    None => s.extend_from_slice(keep),
                }
            }
            if changed {
                if s.is_empty() {
                    let end = crate::rules::head::find_nl(head, line).map_or(head.len(), |x| x + 1);
                    super::edit::splice(head, line..end, b"");
                    from = line;
                } else {
                    super::edit::splice(head, vs..ve, &s);
                    from = vs + s.len();
                }
            } else {
                from = ve;
            }
        });
    }
    p
}

/// The server a cookie value names: the first whose value it is and that is up (or
/// any, under `option persist`); state `V`, `D` (down), or `I` (no such server).
fn choose(conf: &Persistence, be: &BackendState, value: &[u8], p: &mut Persist) {
    if p.server.is_some() {
        // One cookie chose already: the others go unused (HAProxy's `SF_ASSIGNED`).
        p.req = b'U';
        return;
    }
    if !value.is_empty() {
        for (i, v) in conf.values.iter().enumerate() {
            if v.as_deref().map(str::as_bytes) != Some(value) {
                continue;
            }
            let st = &be.servers[i];
            let stopped = !st.up.get() || st.admin.get() == crate::control::AdminState::Maint;
            if !stopped || conf.persist {
                p.req = if stopped { b'D' } else { b'V' };
                p.server = Some(i as u32);
                return;
            }
            p.req = b'D';
        }
    }
    if !matches!(p.req, b'D' | b'E' | b'O') {
        p.req = b'I';
    }
}

/// The response side, on the head for the client in `out`: the server's own
/// persistence cookie deleted, rewritten or prefixed, then the proxy's `Set-Cookie`
/// (and `cache-control: private`) added as HAProxy adds them. `server`: the one that
/// answered.
pub fn response(conf: &Persistence, p: &mut Persist, server: u32, status: u16, out: &mut Vec<u8>) {
    if status < 200 && status != 101 {
        return;
    }
    let value = conf.values.get(server as usize).and_then(|v| v.as_deref());
    let direct = p.server == Some(server);
    let name = conf.name.as_bytes();
    let mut found = false;
    let first_line = crate::rules::head::Head::new(out).first_line_len();
    let mut from = first_line;
    while let Some((line, vs, ve)) = next_header(out, from, b"set-cookie") {
        let v = &out[vs..ve];
        let pair_end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
        let pair = &v[..pair_end];
        let eq = pair.iter().position(|&b| b == b'=');
        let att = trim(&pair[..eq.unwrap_or(pair.len())]);
        if att != name || eq.is_none() {
            from = ve;
            continue;
        }
        let eq = eq.unwrap_or(0);
        let val_start = vs + eq + 1 + (pair[eq + 1..].len() - trim_start_len(&pair[eq + 1..]));
        let val_end = vs + trim_end_pos(pair);
        found = true;
        p.res = b'P';
        if conf.preserve {
            from = ve;
        } else if conf.mode == CookieMode::Insert || (direct && conf.indirect) {
            let end = crate::rules::head::find_nl(out, line).map_or(out.len(), |x| x + 1);
            super::edit::splice(out, line..end, b"");
            p.res = b'D';
            from = line;
        } else if let (Some(sv), CookieMode::Rewrite) = (value, conf.mode) {
            super::edit::splice(out, val_start..val_end.max(val_start), sv.as_bytes());
            p.res = b'R';
            from = val_start + sv.len();
        } else if let (Some(sv), CookieMode::Prefix) = (value, conf.mode) {
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                s.clear();
                s.extend_from_slice(sv.as_bytes());
                s.push(b'~');
                super::edit::splice(out, val_start..val_start, &s);
                from = ve + s.len();
            });
            p.res = b'R';
        } else {
            from = ve;
        }
    }
    if conf.mode != CookieMode::Insert || (found && conf.preserve) {
        return;
    }
    let dated = conf.maxidle != 0 || conf.maxlife != 0;
    let now = if dated || p.last_date != 0 || p.first_date != 0 {
        now_secs()
    } else {
        0
    };
    let insert = (!direct
        || ((conf.maxidle != 0 || p.last_date != 0)
            && (p.last_date == 0 || (p.last_date as i64) < now as i64))
        || (conf.maxlife != 0 && p.first_date == 0)
        || (conf.maxlife == 0 && p.first_date != 0))
        && (!conf.postonly || p.post);
    if !insert {
        return;
    }
    let cacheable = conf.nocache && cacheable(status, p.safe, out);
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        s.extend_from_slice(name);
        s.push(b'=');
        match value {
            None => s.extend_from_slice(b"; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"),
            Some(v) => {
                s.extend_from_slice(v.as_bytes());
                if dated {
                    s.push(b'|');
                    s30_to_b64((now + 3) >> 2, &mut s);
                    if conf.maxlife != 0 {
                        s.push(b'|');
                        let first = if p.first_date != 0 {
                            p.first_date >> 2
                        } else {
                            (now + 3) >> 2
                        };
                        s30_to_b64(first, &mut s);
                    }
                }
                s.extend_from_slice(b"; path=/");
            }
        }
        for d in &conf.domains {
            s.extend_from_slice(b"; domain=");
            s.extend_from_slice(d.as_bytes());
        }
        if conf.httponly {
            s.extend_from_slice(b"; HttpOnly");
        }
        if conf.secure {
            s.extend_from_slice(b"; Secure");
        }
        for a in &conf.attrs {
            s.extend_from_slice(b"; ");
            s.extend_from_slice(a.as_bytes());
        }
        super::edit::add_header(out, "set-cookie", &s);
    });
    p.res = if value.is_some() && direct {
        b'U'
    } else {
        b'I'
    };
    if cacheable {
        super::edit::add_header(out, "cache-control", b"private");
    }
}

fn trim_start_len(s: &[u8]) -> usize {
    s.len()
        - s.iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(s.len())
}

fn trim_end_pos(s: &[u8]) -> usize {
    s.iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1)
}

/// HAProxy's `TX_CACHEABLE` for the response in `out`: a safe method, a status
/// cacheable by default, no `Pragma: no-cache`, and a `Cache-Control` that does not
/// say otherwise (the last of `public` / `private`, `no-cache`... wins, as HAProxy
/// reads them in order).
fn cacheable(status: u16, method_cacheable: bool, out: &[u8]) -> bool {
    if !method_cacheable
        || !matches!(
            status,
            200 | 203 | 204 | 206 | 300 | 301 | 404 | 405 | 410 | 414 | 501
        )
    {
        return false;
    }
    let first = crate::rules::head::Head::new(out).first_line_len();
    let mut from = first;
    while let Some((_, vs, ve)) = next_header(out, from, b"pragma") {
        if out[vs..ve].eq_ignore_ascii_case(b"no-cache") {
            return false;
        }
        from = ve;
    }
    let mut ok = true;
    let mut fresh = false;
    let mut from = first;
    while let Some((_, vs, ve)) = next_header(out, from, b"cache-control") {
        for v in out[vs..ve].split(|&b| b == b',') {
            let v = trim(v);
            let starts = |p: &[u8]| v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p);
            if v.eq_ignore_ascii_case(b"public") {
                ok = true;
            } else if [
                &b"private"[..],
                b"no-cache",
                b"no-store",
                b"max-age=0",
                b"s-maxage=0",
            ]
            .iter()
            .any(|x| v.eq_ignore_ascii_case(x))
            {
                ok = false;
            } else if starts(b"no-cache=\"set-cookie") {
            } else if starts(b"s-maxage") || starts(b"max-age") {
                fresh = true;
            }
        }
        from = ve;
    }
    // HAProxy 2.6 holds a response that has neither an expiry (`max-age`,
    // `Expires`) nor a validator (`ETag`, `Last-Modified`) as not cacheable.
    let has = |n: &[u8]| next_header(out, first, n).is_some();
    ok && (fresh || has(b"expires") || has(b"etag") || has(b"last-modified"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_base64() {
        let mut out = Vec::new();
        s30_to_b64(0x1234_5678 & 0x3fff_ffff, &mut out);
        assert_eq!(out.len(), 5);
        assert_eq!(b64_to_s30(&out), Some(0x1234_5678 & 0x3fff_ffff));
        assert_eq!(b64_to_s30(b"ab*de"), None);
        assert_eq!(b64_to_s30(b"abc"), None);
    }

    #[test]
    fn cacheability_follows_status_method_and_cache_control() {
        let h = |extra: &str| format!("HTTP/1.1 200 OK\r\n{extra}\r\n").into_bytes();
        assert!(!cacheable(200, true, &h("")));
        assert!(cacheable(200, true, &h("ETag: \"x\"\r\n")));
        assert!(cacheable(200, true, &h("Cache-Control: max-age=60\r\n")));
        assert!(!cacheable(200, true, &h("Cache-Control: max-age=0\r\n")));
        assert!(!cacheable(200, false, &h("Expires: 0\r\n")));
        assert!(!cacheable(302, true, &h("Expires: 0\r\n")));
        assert!(!cacheable(200, true, &h("Cache-Control: no-cache, x\r\n")));
        assert!(!cacheable(200, true, &h("Pragma: no-cache\r\n")));
        assert!(cacheable(
            200,
            true,
            &h("Cache-Control: private, public\r\nLast-Modified: x\r\n")
        ));
    }
}
