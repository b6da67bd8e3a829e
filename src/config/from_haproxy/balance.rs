//! haproxy.cfg `balance` and `hash-type`: the algorithm, its key and the hash function.

use super::*;

impl Mapper<'_> {
    /// `hash-type map-based|consistent [sdbm|djb2|wt6|crc32 [avalanche]]`: without a
    /// function, sdbm (with avalanche for `consistent`), as HAProxy 2.6.
    pub(super) fn hash_type(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        let consistent = match a.first().map(String::as_str) {
            Some("consistent") => true,
            Some("map-based") => false,
            _ => {
                return self.err(
                    l.line,
                    "'hash-type' only supports 'consistent' and 'map-based'",
                )
            }
        };
        let function = match a.get(1) {
            None => HashFunction::default_for(consistent),
            Some(f) => {
                let Some(algo) = crate::hash::HashAlgo::parse(f) else {
                    return self.err(
                        l.line,
                        "'hash-type' only supports 'sdbm', 'djb2', 'crc32', or 'wt6' hash functions",
                    );
                };
                let avalanche = match a.get(2).map(String::as_str) {
                    None => false,
                    Some("avalanche") => true,
                    Some(_) => return self.err(
                        l.line,
                        "'hash-type' only supports 'avalanche' as a modifier for hash functions",
                    ),
                };
                if a.len() > 3 {
                    return self.err(l.line, format!("'hash-type': unexpected '{}'", a[3]));
                }
                HashFunction { algo, avalanche }
            }
        };
        s.consistent = consistent;
        s.hash_function = Some(function);
    }

    pub(super) fn balance(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        // `balance` alone is round robin, as HAProxy's backend_parse_balance reads it
        // (it overrides an algorithm from `defaults`).
        let Some(algo) = a.first() else {
            s.balance = BalanceAlgo::RoundRobin;
            return;
        };
        // The hash type and function are `hash-type`'s, filled in at assembly.
        let hash = |key| BalanceAlgo::Hash {
            key,
            consistent: false,
            function: HashFunction::default(),
        };
        s.balance = match algo.as_str() {
            "roundrobin" => BalanceAlgo::RoundRobin,
            "static-rr" => BalanceAlgo::StaticRr,
            "leastconn" => BalanceAlgo::LeastConn,
            "first" => BalanceAlgo::First,
            "source" => hash(HashKey::Source),
            "uri" => {
                let mut key = UriKey::default();
                let mut i = 1;
                while i < a.len() {
                    let count = |what: &str| match a.get(i + 1).map(|v| v.parse::<u32>()) {
                        Some(Ok(n)) if n > 0 => Ok(n),
                        _ => Err(format!("'balance uri': '{what}' expects a positive integer")),
                    };
                    let r = match a[i].as_str() {
                        "len" => count("len").map(|n| key.len = n),
                        "depth" => count("depth").map(|n| key.depth = n),
                        "whole" => {
                            key.whole = true;
                            Ok(())
                        }
                        "path-only" => {
                            key.path_only = true;
                            Ok(())
                        }
                        other => Err(format!("'balance uri' only accepts 'len', 'depth', 'path-only' and 'whole' (got '{other}')")),
                    };
                    if let Err(e) = r {
                        return self.err(l.line, e);
                    }
                    i += if matches!(a[i].as_str(), "len" | "depth") { 2 } else { 1 };
                }
                hash(HashKey::Uri(key))
            }
            "url_param" => match (a.get(1), a.get(2).map(String::as_str)) {
                (Some(name), None) => hash(HashKey::UrlParam(name.clone())),
                (Some(_), Some("check_post")) => {
                    return self.err(
                        l.line,
                        "'balance url_param ... check_post' is not supported (the parameter is looked for in the query string only)",
                    )
                }
                (Some(_), Some(other)) => {
                    return self.err(
                        l.line,
                        format!("'balance url_param' only accepts 'check_post' (got '{other}')"),
                    )
                }
                (None, _) => return self.err(l.line, "'balance url_param' expects a parameter name"),
            },
            a0 if a0.starts_with("hdr(") && a0.ends_with(')') && a0.len() > 5 => {
                let domain_only = match a.get(1).map(String::as_str) {
                    None => false,
                    Some("use_domain_only") => true,
                    Some(other) => {
                        return self.err(
                            l.line,
                            format!("'balance hdr()' only accepts 'use_domain_only' (got '{other}')"),
                        )
                    }
                };
                hash(HashKey::Header {
                    name: a0[4..a0.len() - 1].to_ascii_lowercase(),
                    domain_only,
                })
            }
            a0 if a0 == "random" || a0.starts_with("random(") => {
                let draws = match a0.strip_prefix("random(").and_then(|r| r.strip_suffix(')')) {
                    Some(n) => match n.parse::<u32>() {
                        Ok(d) if (1..=16).contains(&d) => d,
                        _ => {
                            return self.err(
                                l.line,
                                format!("'balance {a0}': draws must be between 1 and 16"),
                            )
                        }
                    },
                    None => 2,
                };
                BalanceAlgo::Random { draws }
            }
            other => return self.err(l.line, format!("unknown balance algorithm '{other}'")),
        };
    }
}
