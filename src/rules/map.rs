//! Pattern and map files (`-f FILE`, `map_*(FILE)`): read once at load and shared
//! by the shards; a map is a pattern list whose match picks the value.

use std::collections::HashMap;
use std::net::IpAddr;
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
    pub fn load(file: &PatternFile, method: Method, out: MapOut) -> Result<Map, String> {
        let mut keys = Patterns::new(method, false);
        let mut values = Vec::with_capacity(file.entries.len());
        for (k, v) in &file.entries {
            keys.add(k)
                .map_err(|e| format!("file '{}': {e}", file.path))?;
            values.push(MapValue::parse(v, out).map_err(|e| format!("file '{}': {e}", file.path))?);
        }
        Ok(Map {
            keys,
            values,
            out,
            path: file.path.clone(),
        })
    }

    pub fn lookup(&self, smp: &Smp<'_>, cur: &[u8]) -> Option<&MapValue> {
        self.values.get(self.keys.find(smp, cur)?)
    }
}
