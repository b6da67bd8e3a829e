//! HTTP compression settings of a proxy (haproxy.cfg `compression algo|type|offload`,
//! TOML `[frontend.NAME.compression]` / `[backend.NAME.compression]`), as HAProxy 2.6
//! keeps them: lists in which the last configured entry comes first.

/// A `compression algo` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// No coding: the response is re-framed (chunked, `Vary`) but not compressed.
    Identity,
    /// zlib format (RFC 1950), `Content-Encoding: deflate`.
    Deflate,
    /// Raw deflate (RFC 1951), also announced as `deflate` (for clients that took
    /// the name literally).
    RawDeflate,
    /// gzip format (RFC 1952).
    Gzip,
}

impl Algo {
    /// The algorithm named `name` in `compression algo` (HAProxy's names, exactly).
    pub fn parse(name: &str) -> Option<Algo> {
        Some(match name {
            "identity" => Algo::Identity,
            "deflate" => Algo::Deflate,
            "raw-deflate" => Algo::RawDeflate,
            "gzip" => Algo::Gzip,
            _ => return None,
        })
    }

    /// The content-coding it is matched against in `Accept-Encoding` and announced in
    /// `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Algo::Identity => "identity",
            Algo::Deflate | Algo::RawDeflate => "deflate",
            Algo::Gzip => "gzip",
        }
    }
}

/// One proxy's compression settings. A proxy inherits `defaults`' algorithms and
/// types (its own come before them), not `offload`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compression {
    /// In HAProxy's order: the last configured first (`Accept-Encoding: *` takes the
    /// first). Empty: the other side's (frontend or backend) are used.
    pub algos: Vec<Algo>,
    /// `compression type` prefixes (case-insensitive), last configured first.
    /// Empty: every type but `multipart/*`.
    pub types: Vec<Box<str>>,
    /// `compression offload`: `Accept-Encoding` is removed from requests that will be
    /// compressed, so that the server does not compress.
    pub offload: bool,
}

impl Compression {
    /// Settings from lines in config order (`algo` and `type` lists as written).
    pub fn from_lines(algos: &[Algo], types: &[String], offload: bool) -> Compression {
        Compression {
            algos: algos.iter().rev().copied().collect(),
            types: types.iter().rev().map(|t| t.as_str().into()).collect(),
            offload,
        }
    }
}

/// `tune.comp.maxlevel`'s default: HAProxy's (the fastest level).
pub const DEFAULT_LEVEL: u32 = 1;

/// TOML `[frontend.NAME.compression]` / `[backend.NAME.compression]`: the same three
/// settings as haproxy.cfg's lines (`algo` and `type` lists as a `compression algo` /
/// `compression type` line writes them).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    #[serde(default)]
    pub algo: Vec<String>,
    #[serde(default, rename = "type")]
    pub types: Vec<String>,
    #[serde(default)]
    pub offload: bool,
}

impl RawCompression {
    /// The settings, or the first bad value: (field, message).
    pub fn validate(&self) -> Result<Compression, (&'static str, String)> {
        let mut algos = Vec::with_capacity(self.algo.len());
        for a in &self.algo {
            match Algo::parse(a) {
                Some(x) => algos.push(x),
                None => {
                    return Err((
                        "algo",
                        format!(
                        "{a:?} is not a supported algorithm (identity, deflate, raw-deflate, gzip)"
                    ),
                    ))
                }
            }
        }
        if let Some(t) = self.types.iter().find(|t| t.is_empty()) {
            return Err(("type", format!("empty type {t:?}")));
        }
        Ok(Compression::from_lines(&algos, &self.types, self.offload))
    }
}
