//! Choosing a backend for a request: the frontend's `use_backend` rules (conditions of
//! the rule language, names static or built per request), then its default; and the
//! request hash for `hash` backends.

use std::net::IpAddr;

use crate::config::{Config, Frontend, HashKey, RouteTarget};
use crate::rules::{Ctx, Head, Scratch};
use crate::upstream::balance::{hash_key, source_hash};

/// The first rule whose condition holds, else the default backend. A dynamic name
/// that is no backend gives the default backend (HAProxy tries no later rule).
pub fn route(
    fe: &Frontend,
    cfg: &Config,
    ctx: &Ctx<'_>,
    s: &mut Scratch,
    val: &mut Vec<u8>,
) -> Option<usize> {
    for r in &fe.routes {
        if !r.cond.holds(ctx, s) {
            continue;
        }
        return match &r.target {
            RouteTarget::Backend(b) => Some(*b),
            RouteTarget::Dynamic(f) => {
                val.clear();
                f.eval(ctx, None, s, val);
                cfg.backends
                    .iter()
                    .position(|b| b.name.as_bytes() == &val[..])
                    .or(fe.default_backend)
            }
        };
    }
    fe.default_backend
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
