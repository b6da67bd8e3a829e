//! An index of a frontend's `use_backend` rules whose whole condition is exact host
//! names, so that a large routing table costs about the same for its last host as for
//! its first; and a backend-name table for rules that build the backend's name per
//! request (`use_backend %[req.hdr(host),lower,map(FILE)]`). Built once per config from
//! the rule language's model (`rules::Condition`), shared by every shard; it reads no
//! request itself: the router evaluates the indexed fetch and asks the index.
//!
//! A rule is indexed when its condition is only exact-string tests of the host:
//! `hdr(host)` / `req.hdr(host)` (every value of every Host header, as HAProxy's ACL
//! iterates them; no occurrence, no converter) or a TOML route's host name, with
//! `-m str` (the default), `-i` or not, several patterns or files, several tests in a
//! named ACL, `||`. Anything else (`!`, `unless`, an AND of two terms, another fetch or
//! method) stays in the ordered rest. For a request the index gives the first indexed
//! rule whose host matches; the rules of the rest that come before it are evaluated in
//! order and the first that holds wins, else the indexed one: HAProxy's first match.
//!
//! A key is compared as the pattern list compares it (`Patterns::find`): `-i` keys are
//! stored lower-cased and the value is lower-cased into a stack buffer; a value longer
//! than that buffer is compared differently there, so the index declines to answer and
//! the rules are evaluated in order. Once the runtime API changed the patterns of an
//! indexed test on a shard (`add acl`, `del acl`, ...), the keys are no longer the ones
//! in force there, and that shard evaluates the rules in order until the next reload.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::rules::fetch::{Chan, Fetch, HdrAs};
use crate::rules::pattern::{Method, XxHasher};
use crate::rules::{Acl, AclTest, Condition, Expr};

/// Fewer indexable rules than this: no host index (a short list is as fast in order).
pub const MIN_INDEXED: usize = 8;

/// Fewer backends than this: names are found by a scan.
const MIN_NAMES: usize = 16;

/// The longest value `Patterns::find` lower-cases into its buffer (`-i`).
const MAX_FOLDED: usize = 256;

type Map = HashMap<Box<[u8]>, u32, BuildHasherDefault<XxHasher>>;

/// What an indexed test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `hdr(host)`, `req.hdr(host)`.
    HostHeader,
    /// The host name without its port (TOML routes).
    HostName,
}

/// The keys of the rules that read one fetch.
#[derive(Debug, Clone)]
pub struct Source {
    kind: Kind,
    /// The fetch whose values are looked up (that of the first indexed test).
    pub expr: Expr,
    /// Keys of `-i` tests, as stored (lower case): the first rule that has each.
    folded: Map,
    /// Keys of case-sensitive tests.
    exact: Map,
}

/// The index cannot answer for this value: evaluate the rules in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecided;

impl Source {
    /// The first indexed rule that matches value `v`.
    pub fn find(&self, v: &[u8]) -> Result<Option<u32>, Undecided> {
        let mut hit = self.exact.get(v).copied();
        if !self.folded.is_empty() {
            if v.len() > MAX_FOLDED {
                return Err(Undecided);
            }
            let mut low = [0u8; MAX_FOLDED];
            let low = &mut low[..v.len()];
            low.copy_from_slice(v);
            low.make_ascii_lowercase();
            hit = min(hit, self.folded.get(&low[..]).copied());
        }
        Ok(hit)
    }
}

/// A frontend's routing index.
#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    /// One per fetch the indexed rules read (at most two).
    sources: Vec<Source>,
    /// Rules not indexed, in order.
    rest: Box<[u32]>,
    /// The pattern expressions of the indexed tests (`AclTest::live`): the runtime API
    /// may change them, and then the index no longer answers (see `stale`).
    live: Box<[u32]>,
    /// Backend names to their index, for rules naming the backend per request.
    names: Option<Map>,
}

impl RouteIndex {
    /// The index of rules `conds` (in order), with a name table of `backends` when
    /// `dynamic` (some rule builds the backend's name); `None` when neither helps.
    pub fn build<'c, 'b>(
        conds: impl IntoIterator<Item = &'c Condition>,
        dynamic: bool,
        backends: impl IntoIterator<Item = &'b str>,
    ) -> Option<RouteIndex> {
        let mut ix = RouteIndex::default();
        let mut rest = Vec::new();
        let mut live = Vec::new();
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
            for (t, key) in keys.drain(..) {
                if let Some(e) = t.live {
                    live.push(e);
                }
                let src = ix.source(t);
                let map = if t.pats.icase {
                    &mut src.folded
                } else {
                    &mut src.exact
                };
                // The first rule with a key wins: later ones never see it.
                map.entry(key.into()).or_insert(i);
            }
        }
        if indexed < MIN_INDEXED {
            ix.sources.clear();
            ix.rest = Box::new([]);
        } else {
            for s in &mut ix.sources {
                s.folded.shrink_to_fit();
                s.exact.shrink_to_fit();
            }
            ix.rest = rest.into_boxed_slice();
            live.sort_unstable();
            live.dedup();
            ix.live = live.into_boxed_slice();
        }
        if dynamic {
            let mut names = Map::default();
            for (i, b) in backends.into_iter().enumerate() {
                let i = u32::try_from(i).ok()?;
                names.entry(b.as_bytes().into()).or_insert(i);
            }
            if names.len() >= MIN_NAMES {
                ix.names = Some(names);
            }
        }
        (!ix.sources.is_empty() || ix.names.is_some()).then_some(ix)
    }

    fn source(&mut self, t: &AclTest) -> &mut Source {
        let kind = kind(&t.expr).unwrap_or(Kind::HostHeader);
        let at = match self.sources.iter().position(|s| s.kind == kind) {
            Some(at) => at,
            None => {
                self.sources.push(Source {
                    kind,
                    expr: t.expr.clone(),
                    folded: Map::default(),
                    exact: Map::default(),
                });
                self.sources.len() - 1
            }
        };
        &mut self.sources[at]
    }

    /// Whether the rules are indexed (else evaluate them in order).
    pub fn has_hosts(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Whether the runtime API changed the patterns of an indexed test (`is_live(e)`:
    /// expression `e` has a runtime copy): the keys are the config's, so the rules are
    /// then evaluated in order. Only asked once some expression changed.
    pub fn stale(&self, is_live: impl Fn(u32) -> bool) -> bool {
        self.live.iter().any(|&e| is_live(e))
    }

    /// The fetches to look up (each value with `Source::find`).
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The first rule whose condition holds, given `hit`, the first indexed rule that
    /// matched the request: a rule of the rest before it that holds (`holds(i)`
    /// evaluates rule `i`), else `hit`.
    pub fn first(&self, hit: Option<u32>, mut holds: impl FnMut(usize) -> bool) -> Option<usize> {
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

    /// The rules not indexed (tests: `http/route_tests.rs`).
    #[cfg(test)]
    pub fn rest_for_tests(&self) -> &[u32] {
        &self.rest
    }

    /// The backend named `name`: `Some(None)` when there is none, `None` when the
    /// index has no name table.
    pub fn backend(&self, name: &[u8]) -> Option<Option<usize>> {
        let names = self.names.as_ref()?;
        Some(names.get(name).map(|&i| i as usize))
    }
}

/// The smaller rule index of two.
pub fn min(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// What an exact host test reads, or `None` when the test is not one.
fn kind(e: &Expr) -> Option<Kind> {
    if !e.convs.is_empty() {
        return None;
    }
    match &e.fetch {
        Fetch::Hdr {
            chan: Chan::Req | Chan::Auto,
            name,
            occ: None,
            full: false,
            r#as: HdrAs::Str,
        } if name.eq_ignore_ascii_case(b"host") && e.multi => Some(Kind::HostHeader),
        Fetch::HostName => Some(Kind::HostName),
        _ => None,
    }
}

/// The (test, key) pairs of a condition made only of exact host tests, else `None`.
fn host_keys<'c>(c: &'c Condition, out: &mut Vec<(&'c AclTest, &'c [u8])>) -> Option<()> {
    match c {
        Condition::Acl(acl) => acl_keys(acl, out),
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

fn acl_keys<'c>(acl: &'c Acl, out: &mut Vec<(&'c AclTest, &'c [u8])>) -> Option<()> {
    if acl.tests.is_empty() {
        return None;
    }
    for t in &acl.tests {
        kind(&t.expr)?;
        if t.pats.method != Method::Str || t.pats.meth || t.pats.is_empty() {
            return None;
        }
        for k in t.pats.exact_keys() {
            out.push((t, k));
        }
    }
    Some(())
}
