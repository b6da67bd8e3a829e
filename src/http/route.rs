//! Choosing a backend for a request: the frontend's ordered rules (conditions over
//! ACLs), then its default; and the request hash for `hash` backends.

use std::net::IpAddr;

use super::head::Request;
use crate::config::acl::net_contains;
use crate::config::{AclTest, Condition, Fetch, Frontend, HashKey, MatchMethod};
use crate::upstream::balance::{hash_key, source_hash};

/// What conditions can look at; borrowed from the parsed head, nothing copied.
pub struct View<'r, 'a> {
    pub req: &'r Request<'a>,
    pub src: IpAddr,
}

/// The first rule whose condition holds, else the default backend. A frontend with
/// many host rules has them indexed: the same answer, without evaluating each.
pub fn route(fe: &Frontend, v: &View<'_, '_>) -> Option<usize> {
    let first = match &fe.host_index {
        Some(ix) => ix.first(v.req, |i| eval(&fe.routes[i].cond, v)),
        None => fe.routes.iter().position(|r| eval(&r.cond, v)),
    };
    first.map(|i| fe.routes[i].backend).or(fe.default_backend)
}

pub fn eval(c: &Condition, v: &View<'_, '_>) -> bool {
    match c {
        Condition::Always => true,
        Condition::All(cs) => cs.iter().all(|c| eval(c, v)),
        Condition::Any(cs) => cs.iter().any(|c| eval(c, v)),
        Condition::Not(c) => !eval(c, v),
        Condition::Acl(acl) => acl.tests.iter().any(|t| test(t, v)),
    }
}

fn test(t: &AclTest, v: &View<'_, '_>) -> bool {
    let req = v.req;
    match &t.fetch {
        Fetch::Src => match t.method {
            MatchMethod::Found => true,
            _ => t.nets.iter().any(|&n| net_contains(n, v.src)),
        },
        Fetch::Path => matches(t, req.path.split('?').next().unwrap_or("")),
        Fetch::Url => matches(t, req.target),
        Fetch::Method => matches(t, req.method),
        Fetch::HostName => req.host.is_some_and(|h| matches(t, h)),
        Fetch::Header(name) => req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(|v| v.split(','))
            .any(|value| matches(t, value.trim())),
    }
}

/// Whether one fetched value matches any pattern of the test.
fn matches(t: &AclTest, s: &str) -> bool {
    let ic = t.ignore_case;
    match t.method {
        MatchMethod::Found => true,
        MatchMethod::Reg => t.regexes.iter().any(|r| r.is_match(s)),
        MatchMethod::Ip => s
            .parse()
            .is_ok_and(|ip| t.nets.iter().any(|&n| net_contains(n, ip))),
        MatchMethod::Str => t.patterns.iter().any(|p| eq(s, p, ic)),
        MatchMethod::Beg => t
            .patterns
            .iter()
            .any(|p| s.len() >= p.len() && eq(&s[..p.len()], p, ic)),
        MatchMethod::End => t.patterns.iter().any(|p| {
            s.len() >= p.len()
                && s.is_char_boundary(s.len() - p.len())
                && eq(&s[s.len() - p.len()..], p, ic)
        }),
        MatchMethod::Sub => t.patterns.iter().any(|p| find(s, p, ic, |_, _| true)),
        // HAProxy's delimiters: '/', '?', '.', ':' (patterns are stored trimmed of them).
        MatchMethod::Dom => t.patterns.iter().any(|p| {
            let delim = |c: u8| matches!(c, b'.' | b'/' | b'?' | b':');
            find(s, p, ic, |before, after| {
                before.is_none_or(delim) && after.is_none_or(delim)
            })
        }),
    }
}

fn eq(a: &str, b: &str, ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// Finds `p` in `s` (without allocating) at a place where `ok(byte before, byte after)`.
fn find(s: &str, p: &str, ic: bool, ok: impl Fn(Option<u8>, Option<u8>) -> bool) -> bool {
    let (s, p) = (s.as_bytes(), p.as_bytes());
    if p.len() > s.len() {
        return false;
    }
    (0..=s.len() - p.len()).any(|i| {
        let w = &s[i..i + p.len()];
        let same = if ic {
            w.eq_ignore_ascii_case(p)
        } else {
            w == p
        };
        same && ok(i.checked_sub(1).map(|j| s[j]), s.get(i + p.len()).copied())
    })
}

/// The hash a `hash` balancer uses for this request; `None` when the key is absent
/// (the balancer then falls back to round robin, as HAProxy does).
pub fn request_hash(key: &HashKey, req: &Request<'_>, peer: IpAddr) -> Option<u64> {
    match key {
        HashKey::Source => Some(source_hash(peer)),
        HashKey::Uri => Some(hash_key(req.path.as_bytes())),
        HashKey::Path => Some(hash_key(
            req.path.split('?').next().unwrap_or("").as_bytes(),
        )),
        HashKey::Header(name) => req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| hash_key(h.value)),
        HashKey::UrlParam(name) => {
            let query = req.path.split_once('?')?.1;
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| hash_key(v.as_bytes()))
        }
    }
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::acl::Acl;
    use crate::http::head::{header_slots, parse_request, Parsed};
    use std::sync::Arc;

    fn acl(fetch: Fetch, method: MatchMethod, ic: bool, p: &[&str]) -> Condition {
        Condition::Acl(Arc::new(Acl {
            name: "t".into(),
            tests: vec![AclTest::new(fetch, method, ic, p).unwrap()],
        }))
    }

    fn check(raw: &str, src: &str, c: &Condition) -> bool {
        let mut headers = header_slots();
        let mut out = Vec::new();
        let limits = crate::config::Limits::default();
        let Parsed::Done(req) =
            parse_request(raw.as_bytes(), &mut headers, &limits, None, &mut out)
        else {
            panic!("bad request {raw:?}")
        };
        eval(
            c,
            &View {
                req: &req,
                src: src.parse().unwrap(),
            },
        )
    }

    #[test]
    fn matchers() {
        let r = "GET /api/v1/users?id=3 HTTP/1.1\r\nHost: API.example.com:8080\r\nX-Tags: a, beta\r\n\r\n";
        let ip = "10.1.2.3";
        let cases: &[(Condition, bool)] = &[
            (
                acl(Fetch::Path, MatchMethod::Str, false, &["/api/v1/users"]),
                true,
            ),
            (acl(Fetch::Path, MatchMethod::Beg, false, &["/api/"]), true),
            (acl(Fetch::Path, MatchMethod::Beg, false, &["/API/"]), false),
            (acl(Fetch::Path, MatchMethod::Beg, true, &["/API/"]), true),
            (
                acl(Fetch::Path, MatchMethod::End, false, &["/users", "/x"]),
                true,
            ),
            (acl(Fetch::Path, MatchMethod::Sub, false, &["v1"]), true),
            (
                acl(Fetch::Path, MatchMethod::Reg, false, &["^/api/v[0-9]+/"]),
                true,
            ),
            (acl(Fetch::Url, MatchMethod::End, false, &["id=3"]), true),
            (
                acl(
                    Fetch::HostName,
                    MatchMethod::Str,
                    true,
                    &["api.example.com"],
                ),
                true,
            ),
            (
                // ':' delimits a domain too (HAProxy): the port does not hide it.
                acl(
                    Fetch::Header("host".into()),
                    MatchMethod::Dom,
                    true,
                    &["example.com"],
                ),
                true,
            ),
            (
                acl(
                    Fetch::Header("host".into()),
                    MatchMethod::Beg,
                    true,
                    &["api."],
                ),
                true,
            ),
            (
                acl(
                    Fetch::Header("x-tags".into()),
                    MatchMethod::Str,
                    false,
                    &["beta"],
                ),
                true,
            ),
            (
                acl(
                    Fetch::Header("x-none".into()),
                    MatchMethod::Found,
                    false,
                    &[],
                ),
                false,
            ),
            (
                acl(Fetch::Method, MatchMethod::Str, false, &["GET", "HEAD"]),
                true,
            ),
            (
                acl(Fetch::Src, MatchMethod::Ip, false, &["10.0.0.0/8"]),
                true,
            ),
            (
                acl(Fetch::Src, MatchMethod::Ip, false, &["192.168.0.0/16"]),
                false,
            ),
            (
                Condition::Not(Box::new(acl(
                    Fetch::Method,
                    MatchMethod::Str,
                    false,
                    &["GET"],
                ))),
                false,
            ),
            (
                Condition::Any(vec![
                    acl(Fetch::Method, MatchMethod::Str, false, &["POST"]),
                    acl(Fetch::Path, MatchMethod::Beg, false, &["/api"]),
                ]),
                true,
            ),
            (
                Condition::All(vec![
                    acl(Fetch::Method, MatchMethod::Str, false, &["POST"]),
                    acl(Fetch::Path, MatchMethod::Beg, false, &["/api"]),
                ]),
                false,
            ),
        ];
        for (i, (c, want)) in cases.iter().enumerate() {
            assert_eq!(check(r, ip, c), *want, "case {i}: {c:?}");
        }
        let dom = "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
        assert!(check(
            dom,
            ip,
            &acl(
                Fetch::Header("host".into()),
                MatchMethod::Dom,
                true,
                &["example.com"]
            )
        ));
        assert!(!check(
            dom,
            ip,
            &acl(
                Fetch::Header("host".into()),
                MatchMethod::Dom,
                true,
                &["ample.com"]
            )
        ));
    }
}
