//! Choosing a backend for a request: the frontend's `use_backend` rules (conditions of
//! the rule language, names static or built per request), then its default; and the
//! request hash for `hash` backends.

use std::net::IpAddr;

use crate::config::{Config, Frontend, HashFunction, HashKey, RouteTarget, UriKey};
use crate::route_index::{RouteIndex, Undecided};
use crate::rules::{Ctx, Head, Scratch, Type};
use crate::upstream::balance::source_hash;

/// The first rule whose condition holds, else the default backend. A dynamic name
/// that is no backend gives the default backend (HAProxy tries no later rule). With a
/// host index, the request's host is looked up and only the rules not indexed before
/// the hit are evaluated (the same first match).
pub fn route(
    fe: &Frontend,
    cfg: &Config,
    ctx: &Ctx<'_>,
    s: &mut Scratch,
    val: &mut Vec<u8>,
) -> Option<usize> {
    let ix = fe.route_index.as_deref();
    // Patterns the runtime API changed on this shard are not the index's keys.
    let usable = |ix: &&RouteIndex| {
        ix.has_hosts()
            && !ctx
                .world
                .is_some_and(|w| w.pat_changed() && ix.stale(|e| w.pat_live(e)))
    };
    let first = match ix.filter(usable).map(|ix| indexed(ix, fe, ctx, s)) {
        Some(Ok(first)) => first,
        _ => fe.routes.iter().position(|r| r.cond.holds(ctx, s)),
    };
    let Some(first) = first else {
        return fe.default_backend;
    };
    let r = &fe.routes[first];
    match &r.target {
        RouteTarget::Backend(b) => Some(*b),
        RouteTarget::Dynamic(f) => {
            val.clear();
            f.eval(ctx, None, s, val);
            let found = match ix.and_then(|ix| ix.backend(val)) {
                Some(found) => found,
                None => cfg
                    .backends
                    .iter()
                    .position(|b| b.name.as_bytes() == &val[..]),
            };
            found.or(fe.default_backend)
        }
    }
}

/// The first rule that holds, by the host index: every value of each indexed fetch
/// (as the ACLs iterate them) looked up, then the rules not indexed before the hit.
fn indexed(
    ix: &RouteIndex,
    fe: &Frontend,
    ctx: &Ctx<'_>,
    s: &mut Scratch,
) -> Result<Option<usize>, Undecided> {
    let mut hit = None;
    for src in ix.sources() {
        let e = &src.expr;
        let mut n = 0;
        loop {
            let smp = if e.multi {
                e.eval_nth(ctx, s, n)
            } else if n == 0 {
                e.eval(ctx, s)
            } else {
                None
            };
            let Some(smp) = smp else { break };
            if let Some(v) = smp.cast(Type::Str, s) {
                if let Some(b) = v.bytes(&s.cur) {
                    hit = crate::route_index::min(hit, src.find(b)?);
                }
            }
            n += 1;
            if !e.multi {
                break;
            }
        }
    }
    Ok(ix.first(hit, |i| fe.routes[i].cond.holds(ctx, s)))
}

/// The hash a `hash` balancer uses for this request, as HAProxy 2.6 computes it;
/// `None` when the key is absent (the balancer then falls back to round robin, as
/// HAProxy does).
pub fn request_hash(
    key: &HashKey,
    function: HashFunction,
    head: Head<'_>,
    peer: IpAddr,
) -> Option<u32> {
    let bytes = match key {
        HashKey::Source => return Some(function.finish(source_hash(peer))),
        HashKey::Uri(u) => uri_key(u, head),
        HashKey::Header { name, domain_only } => {
            let v = head.values(name.as_bytes(), false).next()?;
            if v.is_empty() {
                return None;
            }
            if *domain_only {
                domain_of(v)
            } else {
                v
            }
        }
        HashKey::UrlParam(name) => url_param(head.target(), name.as_bytes())?,
    };
    Some(function.hash(bytes))
}

/// `balance uri`: the target as sent (its path only with `path-only`), cut at the
/// `?` unless `whole`, after `len` characters, and before the slash that would open
/// directory `depth + 1`.
fn uri_key<'a>(u: &UriKey, head: Head<'a>) -> &'a [u8] {
    let target = if u.path_only {
        head.path_and_query()
    } else {
        head.target()
    };
    let max = if u.len > 0 {
        target.len().min(u.len as usize)
    } else {
        target.len()
    };
    let mut slashes = 0u32;
    let end = target[..max]
        .iter()
        .position(|&c| match c {
            b'/' => {
                slashes += 1;
                u.depth > 0 && slashes == u.depth + 1
            }
            b'?' => !u.whole,
            _ => false,
        })
        .unwrap_or(max);
    &target[..end]
}

/// `hdr(name) use_domain_only`: the label before the last dot (`example` of
/// `www.example.com`); the whole value when it has no dot.
fn domain_of(v: &[u8]) -> &[u8] {
    let Some(last_dot) = v.iter().rposition(|&c| c == b'.') else {
        return v;
    };
    let start = v[..last_dot]
        .iter()
        .rposition(|&c| c == b'.')
        .map_or(0, |i| i + 1);
    &v[start..last_dot]
}

/// `balance url_param`: the value of the first `name=` parameter of the query (only
/// `&` separates parameters, as in HAProxy), up to the next `&`.
fn url_param<'a>(target: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let q = target.iter().position(|&c| c == b'?')?;
    let mut params = &target[q + 1..];
    let n = name.len();
    while params.len() > n {
        if params[n] == b'=' && &params[..n] == name {
            let v = &params[n + 1..];
            let end = v.iter().position(|&c| c == b'&').unwrap_or(v.len());
            return Some(&v[..end]);
        }
        let amp = params.iter().position(|&c| c == b'&')?;
        params = &params[amp + 1..];
    }
    None
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
