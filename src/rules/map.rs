//! Pattern and map files (`-f FILE`, `map_*(FILE)`): read once at load and shared
//! by the shards; a map is a pattern list whose match picks the value. Each file (and
//! each ACL line's own patterns) is a numbered reference (`PatRefs`), the unit the
//! runtime API changes (`add map`, `del acl`, ...); each ACL test or map converter is
//! an expression over references, rebuilt from their entries when they change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::pattern::{Method, Patterns};
use super::sample::Smp;

/// A pattern or map file as read from disk (lines, or key/value pairs).
#[derive(Debug)]
pub struct PatternFile {
    pub path: String,
    /// (key, value); the value is empty in a pattern file.
    pub entries: Vec<(String, String)>,
}

impl PatternFile {
    /// Reads `path`: one pattern per line (`map`: a key, blanks, then the value to the
    /// end of the line). Lines starting with `#` and empty lines are skipped; leading
    /// blanks are stripped.
    pub fn read(path: &str, map: bool) -> Result<PatternFile, String> {
        let text = std::fs::read(path)
            .map_err(|e| format!("failed to open pattern file <{path}>: {e}"))?;
        let text = String::from_utf8_lossy(&text);
        let mut entries = Vec::new();
        for line in text.split('\n') {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim_start_matches([' ', '\t']);
            let line = line.split(['\r', '\n']).next().unwrap_or("");
            if line.is_empty() {
                continue;
            }
            if map {
                let end = line.find([' ', '\t']).unwrap_or(line.len());
                let value = line[end..]
                    .trim_start_matches([' ', '\t'])
                    .trim_end_matches([' ', '\t']);
                entries.push((line[..end].to_string(), value.to_string()));
            } else {
                entries.push((line.to_string(), String::new()));
            }
        }
        Ok(PatternFile {
            path: path.to_string(),
            entries,
        })
    }

    /// Reads (once per config load) through the cache.
    pub fn cached(
        cache: &mut HashMap<String, Arc<PatternFile>>,
        path: &str,
        map: bool,
    ) -> Result<Arc<PatternFile>, String> {
        let key = format!("{}{path}", if map { "M:" } else { "P:" });
        if let Some(f) = cache.get(&key) {
            return Ok(f.clone());
        }
        let f = Arc::new(PatternFile::read(path, map)?);
        cache.insert(key, f.clone());
        Ok(f)
    }
}

/// What a map's values are turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOut {
    Str,
    Int,
    Ip,
}

/// A map: patterns of one method, each with a value.
#[derive(Debug, Clone)]
pub struct Map {
    pub keys: Patterns,
    pub values: Vec<MapValue>,
    pub out: MapOut,
    pub path: String,
}

#[derive(Debug, Clone)]
pub enum MapValue {
    Str(Box<[u8]>),
    Int(i64),
    Ip(IpAddr),
}

impl MapValue {
    pub fn parse(text: &str, out: MapOut) -> Result<MapValue, String> {
        Ok(match out {
            MapOut::Str => MapValue::Str(text.as_bytes().into()),
            MapOut::Int => MapValue::Int(
                text.trim()
                    .parse()
                    .map_err(|_| format!("'{text}' is not an integer"))?,
            ),
            MapOut::Ip => MapValue::Ip(
                super::sample::parse_ip(text.trim().as_bytes())
                    .ok_or_else(|| format!("'{text}' is not an address"))?,
            ),
        })
    }

    pub fn smp(&self) -> Smp<'_> {
        match self {
            MapValue::Str(b) => Smp::Str(super::sample::Data::Ref(b)),
            MapValue::Int(i) => Smp::Int(*i),
            MapValue::Ip(a) => Smp::Ip(*a),
        }
    }
}

impl Map {
    pub fn load(entries: &[Entry], path: &str, method: Method, out: MapOut) -> Result<Map, String> {
        let mut keys = Patterns::new(method, false);
        let mut values = Vec::with_capacity(entries.len());
        for en in entries {
            keys.add(&en.key)
                .map_err(|e| format!("file '{path}': {e}"))?;
            values
                .push(MapValue::parse(&en.value, out).map_err(|e| format!("file '{path}': {e}"))?);
        }
        Ok(Map {
            keys,
            values,
            out,
            path: path.to_string(),
        })
    }

    pub fn lookup(&self, smp: &Smp<'_>, cur: &[u8]) -> Option<&MapValue> {
        self.values.get(self.keys.find(smp, cur)?)
    }
}

/// One entry of a pattern reference (a map's key and value, or an ACL pattern with
/// an empty value), with the number `show map` prints as its `0x...` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub key: Box<str>,
    pub value: Box<str>,
}

impl Entry {
    pub fn new(key: &str, value: &str) -> Entry {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Entry {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            key: key.into(),
            value: value.into(),
        }
    }

    /// The `0x...` column of `show map` (an entry number, not a pointer: `del map
    /// FILE #0x...` reads it back).
    pub fn reference(&self) -> String {
        format!("0x{:012x}", self.id)
    }
}

/// A pattern reference, as HAProxy numbers them (`show map`, `show acl`, `#<id>`): a
/// file named by `-f`, `-M` or a `map*` converter (shared by everything that names
/// it), or the patterns written on one ACL's line (no file).
#[derive(Debug, Clone)]
pub struct PatRef {
    pub id: u32,
    pub file: Option<String>,
    /// Named by a `map*` converter or an ACL's `-M`: `show map` lists it, and its
    /// entries carry values.
    pub map: bool,
    /// Used by an ACL: `show acl` lists it.
    pub acl: bool,
    /// Who uses a file ("map" or "acl", and the config line); for the patterns of an
    /// ACL line, that ACL's keyword and line.
    pub used_by: Vec<(&'static str, usize)>,
    pub keyword: String,
    /// The entries the config load read (the runtime API's changes live in the
    /// control plane and in each shard, until the next reload).
    pub entries: Arc<Vec<Entry>>,
    /// The compiled expressions that use it (indices into `PatRefs::exprs`).
    pub exprs: Vec<u32>,
}

/// A compiled pattern expression: an ACL test's patterns (its files, then the
/// patterns on its line) or a map converter's keys and values, and how to build it
/// again from its references' entries when they change at run time.
#[derive(Debug, Clone)]
pub struct PatExpr {
    /// (reference index, the `-i` flag in force for it).
    pub refs: Vec<(u32, bool)>,
    pub method: Method,
    pub icase: bool,
    pub meth: bool,
    /// A map's value type (`None`: an ACL's patterns).
    pub out: Option<MapOut>,
}

/// Which references a runtime API command looks among (HAProxy's are not consistent:
/// `add map` and `set map` take any, `del map` only a map's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Any,
    Map,
    Acl,
}

/// Every pattern reference and expression of one config, numbered at load.
#[derive(Debug, Clone, Default)]
pub struct PatRefs {
    files: HashMap<String, Arc<PatternFile>>,
    pub refs: Vec<PatRef>,
    pub exprs: Vec<PatExpr>,
    /// The config line being read (set by the haproxy.cfg reader), and the file's
    /// name as given on the command line (`show map` says where a map is used).
    pub line: usize,
    pub source: String,
}

/// Keys and values of one expression, as a shard holds it after a runtime change.
#[derive(Debug, Clone)]
pub struct Live {
    pub pats: Patterns,
    pub values: Vec<MapValue>,
}

impl PatRefs {
    /// The reference of file `path` (read once per load) as a map (with values) or
    /// a pattern list, used by an ACL or a converter at the current line.
    pub fn file(&mut self, path: &str, map: bool, by_acl: bool) -> Result<usize, String> {
        let pf = PatternFile::cached(&mut self.files, path, map)?;
        let i = match self
            .refs
            .iter()
            .position(|r| r.file.as_deref() == Some(path))
        {
            Some(i) => i,
            None => {
                self.refs.push(PatRef {
                    id: self.refs.len() as u32,
                    file: Some(path.to_string()),
                    map: false,
                    acl: false,
                    used_by: Vec::new(),
                    keyword: String::new(),
                    entries: Arc::new(pf.entries.iter().map(|(k, v)| Entry::new(k, v)).collect()),
                    exprs: Vec::new(),
                });
                self.refs.len() - 1
            }
        };
        let r = &mut self.refs[i];
        r.map |= map;
        r.acl |= by_acl;
        let by = (if map { "map" } else { "acl" }, self.line);
        if !r.used_by.contains(&by) {
            r.used_by.push(by);
        }
        Ok(i)
    }

    /// The reference of the patterns written on an ACL line.
    pub fn inline(&mut self, keyword: &str, patterns: &[String]) -> usize {
        self.refs.push(PatRef {
            id: self.refs.len() as u32,
            file: None,
            map: false,
            acl: true,
            used_by: vec![("acl", self.line)],
            keyword: keyword.to_string(),
            entries: Arc::new(patterns.iter().map(|p| Entry::new(p, "")).collect()),
            exprs: Vec::new(),
        });
        self.refs.len() - 1
    }

    /// Registers an expression over `refs`; its number.
    pub fn expr(&mut self, e: PatExpr) -> u32 {
        let n = self.exprs.len() as u32;
        for &(r, _) in &e.refs {
            self.refs[r as usize].exprs.push(n);
        }
        self.exprs.push(e);
        n
    }

    /// Finds a reference by `#<id>` or file name, among those a map uses, an ACL
    /// uses, or all.
    pub fn lookup(&self, name: &str, kind: RefKind) -> Option<usize> {
        let found = match name.strip_prefix('#') {
            Some(id) => {
                let id: u32 = id.parse().ok()?;
                self.refs.iter().position(|r| r.id == id)
            }
            None => self
                .refs
                .iter()
                .position(|r| r.file.as_deref() == Some(name)),
        }?;
        let r = &self.refs[found];
        match kind {
            RefKind::Any => true,
            RefKind::Map => r.map,
            RefKind::Acl => r.acl,
        }
        .then_some(found)
    }

    /// `entry_cnt` in `show map`: HAProxy 2.6 counts each entry once per expression
    /// that uses the reference.
    pub fn entry_count(&self, r: usize, entries: usize) -> usize {
        entries * self.refs[r].exprs.len().max(1)
    }

    /// Checks that `key` (and `value`, for the maps among them) suits every
    /// expression that uses reference `r`: the runtime API's error line if not.
    pub fn check(&self, r: usize, key: &str, value: Option<&str>) -> Result<(), String> {
        for &e in &self.refs[r].exprs {
            let e = &self.exprs[e as usize];
            Patterns::new(e.method, e.icase).add(key)?;
            if let (Some(out), Some(v)) = (e.out, value) {
                MapValue::parse(v, out)?;
            }
        }
        Ok(())
    }

    /// Checks that `value` suits every map expression that uses reference `r`.
    pub fn check_value(&self, r: usize, value: &str) -> Result<(), String> {
        for &e in &self.refs[r].exprs {
            if let Some(out) = self.exprs[e as usize].out {
                MapValue::parse(value, out)?;
            }
        }
        Ok(())
    }

    /// Builds expression `e` from its references' current entries.
    pub fn build(&self, e: usize, entries: &dyn Fn(usize) -> Arc<Vec<Entry>>) -> Live {
        let d = &self.exprs[e];
        let mut pats = Patterns::new(d.method, d.icase);
        pats.meth = d.meth;
        let mut values = Vec::new();
        for &(r, icase) in &d.refs {
            pats.icase = icase;
            for en in entries(r as usize).iter() {
                // Checked when added (at load or by the runtime API).
                if pats.add(&en.key).is_err() {
                    continue;
                }
                if let Some(out) = d.out {
                    values.push(
                        MapValue::parse(&en.value, out)
                            .unwrap_or_else(|_| MapValue::Str(en.value.as_bytes().into())),
                    );
                }
            }
        }
        pats.icase = d.icase;
        Live { pats, values }
    }
}

impl Live {
    /// Adds entries at the end (`add map`, `add acl`).
    pub fn push(&mut self, d: &PatExpr, new: &[Entry]) {
        for en in new {
            if self.pats.add(&en.key).is_err() {
                continue;
            }
            if let Some(out) = d.out {
                self.values.push(
                    MapValue::parse(&en.value, out)
                        .unwrap_or_else(|_| MapValue::Str(en.value.as_bytes().into())),
                );
            }
        }
    }
}
