//! The runtime API's map and ACL commands (`show map`, `add map`, `del acl`, ...),
//! in HAProxy 2.6's words: a reference is named by `#<id>` or its file, an entry by
//! its key or its `#0x...` reference. A change is in force on every shard when
//! answered (`Core::pat_change`).

use std::fmt::Write as _;
use std::sync::Arc;

use super::Core;
use crate::config::Config;
use crate::control::Changed;
use crate::rules::map::{Entry, MapValue, RefKind};
use crate::rules::pattern::Method;
use crate::rules::{Data, Smp};

const UNKNOWN_MAP: &str = "Unknown map identifier. Please use #<id> or <file>.\n";
const UNKNOWN_ACL: &str = "Unknown ACL identifier. Please use #<id> or <file>.\n";

/// `show map` / `show acl` without an argument: the references.
fn list(core: &Core, cfg: &Arc<Config>, map: bool) -> String {
    let mut out = String::from("# id (file) description\n");
    let src = &cfg.patterns.source;
    for (i, r) in cfg.patterns.refs.iter().enumerate() {
        if (map && !r.map) || (!map && !r.acl) {
            continue;
        }
        let n = cfg.patterns.entry_count(i, core.pat_entries(cfg, i).len());
        match &r.file {
            Some(f) => {
                let _ = write!(out, "{} ({f}) pattern loaded from file '{f}' used by", r.id);
                for (k, (kind, line)) in r.used_by.iter().enumerate() {
                    let sep = if k == 0 { "" } else { ", by" };
                    let _ = write!(out, "{sep} {kind} at file '{src}' line {line}");
                }
            }
            None => {
                let line = r.used_by.first().map_or(0, |u| u.1);
                let _ = write!(
                    out,
                    "{} () acl '{}' file '{src}' line {line}",
                    r.id, r.keyword
                );
            }
        }
        let _ = writeln!(out, ". curr_ver=0 next_ver=0 entry_cnt={n}");
    }
    out
}

/// `show map [REF]`, `show acl [REF]`.
pub fn show(core: &Core, w: &[&str], map: bool) -> String {
    let cfg = core.cfg();
    let Some(name) = w.first() else {
        return list(core, &cfg, map);
    };
    let Some(r) = cfg
        .patterns
        .lookup(name, if map { RefKind::Map } else { RefKind::Acl })
    else {
        return (if map { UNKNOWN_MAP } else { UNKNOWN_ACL }).into();
    };
    let mut out = String::new();
    for e in core.pat_entries(&cfg, r).iter() {
        // `show acl` prints a value too when an entry has one (added by `add map`).
        if map || !e.value.is_empty() {
            let _ = writeln!(out, "{} {} {}", e.reference(), e.key, e.value);
        } else {
            let _ = writeln!(out, "{} {}", e.reference(), e.key);
        }
    }
    out
}

/// `add map REF KEY VALUE`, `add acl REF PATTERN`, or either with a payload of
/// `KEY VALUE` (`PATTERN`) lines.
pub fn add(core: &Core, w: &[&str], payload: Option<&str>, map: bool) -> String {
    let cfg = core.cfg();
    let mut new: Vec<(String, String)> = Vec::new();
    let name = match (w, payload, map) {
        ([name, key, value, ..], None, true) => {
            new.push((key.to_string(), value.to_string()));
            name
        }
        ([name, key, ..], None, false) => {
            new.push((key.to_string(), String::new()));
            name
        }
        ([name], Some(p), _) => {
            for line in p.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let (k, v) = match line.split_once([' ', '\t']) {
                    Some((k, v)) if map => (k, v.trim()),
                    _ => (line, ""),
                };
                new.push((k.to_string(), v.to_string()));
            }
            name
        }
        _ if map => return "'add map' expects three parameters (map identifier, key and value) or one parameter (map identifier) and a payload\n".into(),
        _ => return "'add acl' expects two parameters: ACL identifier and pattern.\n".into(),
    };
    // HAProxy's `add map` finds any reference; `add acl` refuses a map's.
    let Some(r) = cfg.patterns.lookup(name, RefKind::Any) else {
        return (if map { UNKNOWN_MAP } else { UNKNOWN_ACL }).into();
    };
    if !map && cfg.patterns.refs[r].map {
        return "This ACL is shared with a map containing samples. You must use the command 'add map' to add values.\n".into();
    }
    for (k, v) in &new {
        if let Err(e) = check(&cfg, r, k, map.then_some(v.as_str())) {
            return e;
        }
    }
    answer(core.pat_change(&cfg, r, false, |entries| {
        let n = entries.len();
        entries.extend(new.iter().map(|(k, v)| Entry::new(k, v)));
        Ok((Changed::Added(n), ()))
    }))
}

/// HAProxy's error line for a key or value an expression of reference `r` refuses.
fn check(cfg: &Config, r: usize, key: &str, value: Option<&str>) -> Result<(), String> {
    cfg.patterns.check(r, key, value).map_err(|e| {
        if e.contains(" is not an integer") || e.contains(" is not an address") {
            format!("unable to parse '{}'.\n", value.unwrap_or(""))
        } else {
            format!("{e}.\n")
        }
    })
}

/// Whether entry `e` is the one `what` names (`#0x...` or a key).
fn names(e: &Entry, what: &str) -> bool {
    match what.strip_prefix('#') {
        Some(r) => {
            e.reference() == r
                || u64::from_str_radix(r.trim_start_matches("0x"), 16).ok() == Some(e.id)
        }
        None => &*e.key == what,
    }
}

/// `set map REF KEY|#REF VALUE`: every entry with that key takes the value.
pub fn set(core: &Core, w: &[&str]) -> String {
    let [name, what, value, ..] = w else {
        return "'set map' expects three parameters: map identifier, key and value.\n".into();
    };
    let cfg = core.cfg();
    let Some(r) = cfg.patterns.lookup(name, RefKind::Any) else {
        return UNKNOWN_MAP.into();
    };
    if let Err(e) = cfg
        .patterns
        .check_value(r, value)
        .map_err(|_| format!("unable to parse '{value}'.\n"))
    {
        return e;
    }
    answer(core.pat_change(&cfg, r, false, |entries| {
        let mut hit = false;
        for e in entries.iter_mut().filter(|e| names(e, what)) {
            e.value = (*value).into();
            hit = true;
        }
        if hit {
            Ok((Changed::Other, ()))
        } else {
            Err("entry not found.\n".into())
        }
    }))
}

/// `del map REF KEY|#REF`, `del acl REF KEY|#REF`: every entry with that key.
pub fn del(core: &Core, w: &[&str], map: bool) -> String {
    let [name, what, ..] = w else {
        return format!(
            "This command expects two parameters: {} identifier and key.\n",
            if map { "map" } else { "ACL" }
        );
    };
    let cfg = core.cfg();
    // HAProxy says "map" here for both.
    let Some(r) = cfg
        .patterns
        .lookup(name, if map { RefKind::Map } else { RefKind::Acl })
    else {
        return UNKNOWN_MAP.into();
    };
    answer(core.pat_change(&cfg, r, false, |entries| {
        let n = entries.len();
        entries.retain(|e| !names(e, what));
        if entries.len() < n {
            Ok((Changed::Other, ()))
        } else {
            Err("Key not found.\n".into())
        }
    }))
}

/// `clear map REF`, `clear acl REF`: no entries left.
pub fn clear(core: &Core, w: &[&str], map: bool) -> String {
    let Some(name) = w.first() else {
        return (if map {
            "Missing map identifier.\n"
        } else {
            "Missing ACL identifier.\n"
        })
        .into();
    };
    let cfg = core.cfg();
    let Some(r) = cfg
        .patterns
        .lookup(name, if map { RefKind::Map } else { RefKind::Acl })
    else {
        return (if map { UNKNOWN_MAP } else { UNKNOWN_ACL }).into();
    };
    answer(core.pat_change(&cfg, r, false, |entries| {
        if entries.is_empty() {
            return Ok((Changed::Nothing, ()));
        }
        entries.clear();
        Ok((Changed::Other, ()))
    }))
}

/// `get map REF VALUE`, `get acl REF VALUE`: what each expression using the reference
/// makes of a sample, as HAProxy prints it.
pub fn get(core: &Core, w: &[&str], map: bool) -> String {
    let [name, sample, ..] = w else {
        return (if map {
            "Missing map identifier and/or key.\n"
        } else {
            "Missing ACL identifier and/or key.\n"
        })
        .into();
    };
    let cfg = core.cfg();
    let Some(r) = cfg.patterns.lookup(name, RefKind::Any) else {
        return (if map { UNKNOWN_MAP } else { UNKNOWN_ACL }).into();
    };
    let pr = &cfg.patterns;
    let current = |i: usize| core.pat_entries(&cfg, i);
    let mut out = String::new();
    for &e in &pr.refs[r].exprs {
        let d = &pr.exprs[e as usize];
        let live = pr.build(e as usize, &current);
        let _ = write!(
            out,
            "type={}, case={}",
            method_name(d.method),
            if d.icase { "insensitive" } else { "sensitive" }
        );
        let found = match sample_for(d.method, sample) {
            Some(smp) => match smp {
                Sample::Str(b) => live.pats.find(&Smp::Str(Data::Ref(b)), &[]),
                Sample::Int(i) => live.pats.find(&Smp::Int(i), &[]),
                Sample::Ip(a) => live.pats.find(&Smp::Ip(a), &[]),
            },
            None => None,
        };
        let word = if map { "found" } else { "match" };
        let Some(i) = found else {
            let _ = writeln!(out, ", {word}=no");
            continue;
        };
        let idx = if matches!(d.method, Method::Str | Method::Beg | Method::Ip) {
            "tree"
        } else {
            "list"
        };
        let key = pattern_text(&d.refs, &current, i);
        if !map {
            let _ = writeln!(out, ", {word}=yes, idx={idx}, pattern=\"{key}\"");
            continue;
        }
        let _ = write!(out, ", {word}=yes, idx={idx}, key=\"{key}\", value=");
        match live.values.get(i) {
            Some(v) => {
                let (text, t) = match v {
                    MapValue::Str(b) => (String::from_utf8_lossy(b).into_owned(), "str"),
                    MapValue::Int(n) => (n.to_string(), "sint"),
                    MapValue::Ip(a) => (a.to_string(), if a.is_ipv4() { "ipv4" } else { "ipv6" }),
                };
                let _ = writeln!(out, "\"{text}\", type=\"{t}\"");
            }
            None => out.push_str("none\n"),
        }
    }
    out
}

enum Sample<'a> {
    Str(&'a [u8]),
    Int(i64),
    Ip(std::net::IpAddr),
}

fn sample_for(m: Method, text: &str) -> Option<Sample<'_>> {
    match m.expect() {
        crate::rules::Type::Int => text.trim().parse().ok().map(Sample::Int),
        crate::rules::Type::Ip => crate::rules::sample::parse_ip(text.as_bytes()).map(Sample::Ip),
        _ => Some(Sample::Str(text.as_bytes())),
    }
}

fn method_name(m: Method) -> &'static str {
    use Method::*;
    match m {
        Found => "found",
        Bool => "bool",
        Int => "int",
        Ip => "ip",
        Bin => "bin",
        Len => "len",
        Str => "str",
        Beg => "beg",
        Sub => "sub",
        Dir => "dir",
        Dom => "dom",
        End => "end",
        Reg => "reg",
    }
}

/// The text of the `i`th pattern of an expression over `refs`.
fn pattern_text(
    refs: &[(u32, bool)],
    current: &dyn Fn(usize) -> Arc<Vec<Entry>>,
    mut i: usize,
) -> String {
    for &(r, _) in refs {
        let e = current(r as usize);
        if i < e.len() {
            return e[i].key.to_string();
        }
        i -= e.len();
    }
    String::new()
}

fn answer(r: Result<(), String>) -> String {
    r.err().unwrap_or_default()
}
