//! Choosing a backend for a request: the frontend's `use_backend` rules (conditions of
//! the rule language, names static or built per request), then its default; and the
//! request hash for `hash` backends.

use std::net::IpAddr;

use crate::config::{Config, Frontend, HashKey, RouteTarget};
use crate::route_index::{RouteIndex, Undecided};
use crate::rules::{Ctx, Head, Scratch, Type};
use crate::upstream::balance::{hash_key, source_hash};

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

/// The hash a `hash` balancer uses for this request; `None` when the key is absent
/// (the balancer then falls back to round robin, as HAProxy does).
pub fn request_hash(key: &HashKey, head: Head<'_>, peer: IpAddr) -> Option<u64> {
    match key {
        HashKey::Source => Some(source_hash(peer)),
        HashKey::Uri => Some(hash_key(head.path_and_query())),
        HashKey::Path => Some(hash_key(head.path())),
        HashKey::Header(name) => head
            .named(name.as_bytes())
            .next()
            .map(|f| hash_key(f.value)),
        HashKey::UrlParam(name) => {
            let query = head.query()?;
            crate::rules::head::params(query, b'?')
                .find(|(k, _)| *k == name.as_bytes())
                .map(|(_, v)| hash_key(v))
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
#[path = "route_tests.rs"]
mod tests;
