//! An index of a frontend's exact host matches, so that a large routing table costs
//! about the same for its last host as for its first. Built once per config (shared
//! by every shard) from the ordered rules; consulted before the ordered evaluation and
//! giving the same answer as first-match order.
//!
//! A rule is indexed when its condition is only exact host names: tests `hdr(host)` /
//! `req.hdr(host)` with `-m str` (the default for `hdr`) or a TOML route's `host`,
//! case-insensitive or not, alone or ORed (`||`, several patterns, an ACL of several
//! such tests). Any other rule stays in the ordered list (`rest`). For a request the
//! index gives the first indexed rule whose host matches (a hash lookup per host
//! value); the rules of `rest` that come before it are then evaluated in order, as
//! before; the first that holds wins, else the indexed one. So mixing indexed and other
//! rules keeps HAProxy's first-match order exactly.
//!
//! Lookups allocate nothing: a case-insensitive key is lower-cased into a stack
//! buffer. The index is built only for a frontend with at least `MIN_INDEXED` such
//! rules (a short list is as fast evaluated in order).

use std::collections::HashMap;

use crate::config::{AclTest, Condition, Fetch, MatchMethod};
use crate::http::head::Request;

/// Fewer indexable rules than this: no index.
const MIN_INDEXED: usize = 8;

/// Longest host name a key may be (a longer pattern keeps its rule in the ordered
/// list; a longer request value then cannot equal any key).
const MAX_KEY: usize = 255;

/// Where the host is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Every value of the Host headers (comma-separated lists split, trimmed), as
    /// `hdr(host)` reads it.
    Header,
    /// The host without its port (Host header or absolute-form target), as TOML
    /// routes read it.
    HostName,
}

/// The first rule matching each host, per source and case handling.
#[derive(Debug, Clone, Default)]
pub struct HostIndex {
    /// [Header folded, Header exact, HostName folded, HostName exact]: key → rule.
    maps: [HashMap<Box<str>, u32>; 4],
    /// Rules not indexed, in order.
    rest: Box<[u32]>,
}

fn slot(source: Source, ignore_case: bool) -> usize {
    match (source, ignore_case) {
        (Source::Header, true) => 0,
        (Source::Header, false) => 1,
        (Source::HostName, true) => 2,
        (Source::HostName, false) => 3,
    }
}

/// The (slot, key) pairs of a condition made only of exact host matches, else `None`.
fn host_keys(c: &Condition, out: &mut Vec<(usize, String)>) -> Option<()> {
    match c {
        Condition::Acl(acl) if !acl.tests.is_empty() => {
            for t in &acl.tests {
                test_keys(t, out)?;
            }
            Some(())
        }
        Condition::Any(cs) if !cs.is_empty() => {
            for c in cs {
                host_keys(c, out)?;
            }
            Some(())
        }
        Condition::All(cs) if cs.len() == 1 => host_keys(&cs[0], out),
        _ => None,
    }
}

fn test_keys(t: &AclTest, out: &mut Vec<(usize, String)>) -> Option<()> {
    let source = match &t.fetch {
        Fetch::Header(name) if name.eq_ignore_ascii_case("host") => Source::Header,
        Fetch::HostName => Source::HostName,
        _ => return None,
    };
    if t.method != MatchMethod::Str || t.patterns.is_empty() {
        return None;
    }
    for p in &t.patterns {
        if p.len() > MAX_KEY {
            return None;
        }
        let key = if t.ignore_case {
            p.to_ascii_lowercase()
        } else {
            p.clone()
        };
        out.push((slot(source, t.ignore_case), key));
    }
    Some(())
}

/// The index of a frontend's routes (`None`: evaluate them in order).
pub fn for_routes(routes: &[crate::config::Route]) -> Option<std::sync::Arc<HostIndex>> {
    HostIndex::build(routes.iter().map(|r| &r.cond)).map(std::sync::Arc::new)
}

impl HostIndex {
    /// The index of rules `conds` (in order), or `None` when too few are indexable.
    pub fn build<'c>(conds: impl IntoIterator<Item = &'c Condition>) -> Option<HostIndex> {
        let mut ix = HostIndex::default();
        let mut rest = Vec::new();
        let mut keys = Vec::new();
        let mut indexed = 0;
        for (i, c) in conds.into_iter().enumerate() {
            let i = u32::try_from(i).ok()?;
            keys.clear();
            if host_keys(c, &mut keys).is_none() {
                rest.push(i);
                continue;
            }
            indexed += 1;
            for (slot, key) in keys.drain(..) {
                // The first rule with a host wins: later ones never see it.
                ix.maps[slot].entry(key.into_boxed_str()).or_insert(i);
            }
        }
        if indexed < MIN_INDEXED {
            return None;
        }
        for m in &mut ix.maps {
            m.shrink_to_fit();
        }
        ix.rest = rest.into_boxed_slice();
        Some(ix)
    }

    /// The first rule whose condition holds: the first indexed rule matching the
    /// request's host, unless a rule of the ordered rest before it holds
    /// (`holds(i)` evaluates rule `i`).
    pub fn first(&self, req: &Request<'_>, mut holds: impl FnMut(usize) -> bool) -> Option<usize> {
        let hit = self.lookup(req);
        for &i in self.rest.iter() {
            if hit.is_some_and(|h| h < i) {
                break;
            }
            if holds(i as usize) {
                return Some(i as usize);
            }
        }
        hit.map(|h| h as usize)
    }

    /// The first indexed rule matching the request's host.
    fn lookup(&self, req: &Request<'_>) -> Option<u32> {
        let mut best: Option<u32> = None;
        let mut see = |slot: usize, value: &str, buf: &mut [u8; MAX_KEY]| {
            let (folded, exact) = (&self.maps[slot], &self.maps[slot + 1]);
            let mut found = exact.get(value).copied();
            if !folded.is_empty() && value.len() <= MAX_KEY {
                let lower = &mut buf[..value.len()];
                lower.copy_from_slice(value.as_bytes());
                lower.make_ascii_lowercase();
                // ASCII lower-casing keeps UTF-8 valid.
                if let Ok(k) = std::str::from_utf8(lower) {
                    found = min(found, folded.get(k).copied());
                }
            }
            best = min(best, found);
        };
        let mut buf = [0u8; MAX_KEY];
        if !self.maps[0].is_empty() || !self.maps[1].is_empty() {
            // As `hdr(host)` reads values: every Host header, lists split, trimmed.
            for h in req.headers {
                if !h.name.eq_ignore_ascii_case("host") {
                    continue;
                }
                let Ok(v) = std::str::from_utf8(h.value) else {
                    continue;
                };
                for value in v.split(',') {
                    see(0, value.trim(), &mut buf);
                }
            }
        }
        if !self.maps[2].is_empty() || !self.maps[3].is_empty() {
            if let Some(host) = req.host {
                see(2, host, &mut buf);
            }
        }
        best
    }
}

fn min(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
#[path = "host_index_tests.rs"]
mod tests;
