//! The model of what several nodes share: the Redis connection (`[cluster]`), stick
//! tables (sticky sessions) and request-rate limits, with their TOML validation.

use std::time::Duration;

use super::raw::{RawCluster, RawRateLimit, RawStick};

/// Where shared state lives. Without `redis`, every node keeps it locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `redis://[:PASSWORD@]HOST[:PORT][/DB]` (or `rediss://` where built with TLS).
    pub redis: Option<String>,
    /// Prefix of every Redis key and channel ringlb uses.
    pub prefix: String,
    /// How often counts and records go to Redis.
    pub sync_interval: Duration,
    /// How often the TLS session-ticket keys every node shares are rotated.
    pub ticket_rotation: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            redis: None,
            prefix: "ringlb".into(),
            sync_interval: Duration::from_millis(100),
            ticket_rotation: Duration::from_secs(12 * 3600),
        }
    }
}

/// What identifies a client for a stick table or a rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickKey {
    /// The client's IP address (`src`).
    Src,
    /// A request header's first value (`req.hdr(NAME)`), name lower-cased.
    Header(String),
    /// A request cookie's value (`req.cook(NAME)`).
    Cookie(String),
}

/// A backend's stick table with its `stick on` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickTable {
    pub key: StickKey,
    /// String keys are cut to this many bytes (`len`).
    pub len: usize,
    /// Most entries per shard (`size`).
    pub size: usize,
    /// An entry not used for this long is forgotten (`expire`).
    pub expire: Duration,
}

/// A request-rate limit: more than `limit` requests over `period` from one key get
/// `status` (`http-request track-sc0` + `deny if { sc_http_req_rate(0) gt N }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub key: StickKey,
    pub len: usize,
    pub limit: u32,
    pub period: Duration,
    /// Most keys tracked per shard.
    pub size: usize,
}

/// Parses a TOML key: `"src"`, `"hdr(NAME)"` or `"cookie(NAME)"`.
pub fn parse_key(text: &str) -> Result<StickKey, String> {
    let inner = |p: &str| {
        text.strip_prefix(p)
            .and_then(|r| r.strip_suffix(')'))
            .filter(|n| !n.is_empty())
    };
    if text == "src" {
        Ok(StickKey::Src)
    } else if let Some(n) = inner("hdr(").or_else(|| inner("req.hdr(")) {
        Ok(StickKey::Header(n.to_ascii_lowercase()))
    } else if let Some(n) = inner("cookie(").or_else(|| inner("req.cook(")) {
        Ok(StickKey::Cookie(n.to_string()))
    } else {
        Err(format!(
            "expected \"src\", \"hdr(NAME)\" or \"cookie(NAME)\", got {text:?}"
        ))
    }
}

impl super::validate::Validator {
    pub(super) fn cluster(&mut self, raw: &Option<RawCluster>) -> ClusterSettings {
        let mut c = ClusterSettings::default();
        let Some(r) = raw else { return c };
        if let Some(url) = &r.redis {
            match check_url(url) {
                Ok(()) => c.redis = Some(url.clone()),
                Err(e) => self.err("cluster.redis", e),
            }
        }
        if let Some(p) = &r.prefix {
            if p.is_empty() || p.contains(char::is_whitespace) {
                self.err("cluster.prefix", "must be a non-empty word");
            } else {
                c.prefix = p.clone();
            }
        }
        c.sync_interval = self.duration("cluster.sync_interval", &r.sync_interval, c.sync_interval);
        if c.sync_interval < Duration::from_millis(10) || c.sync_interval > Duration::from_secs(10)
        {
            self.err("cluster.sync_interval", "must be between 10ms and 10s");
        }
        c.ticket_rotation = self.duration(
            "cluster.tls_ticket_rotation",
            &r.tls_ticket_rotation,
            c.ticket_rotation,
        );
        if c.ticket_rotation < Duration::from_secs(1) {
            self.err("cluster.tls_ticket_rotation", "must be at least 1s");
        }
        c
    }

    /// A key: `src`, `hdr(NAME)` or `cookie(NAME)`.
    fn key(&mut self, path: &str, field: &str, text: &str) -> Option<StickKey> {
        parse_key(text)
            .map_err(|e| self.err(format!("{path}.{field}"), e))
            .ok()
    }

    /// How many bytes of a key count (`len`) and how many keys a shard keeps (`size`).
    fn key_limits(&mut self, path: &str, len: Option<i64>, size: Option<i64>) -> (usize, usize) {
        (
            self.positive(&format!("{path}.len"), len, 64, 1024),
            self.positive(&format!("{path}.size"), size, 100_000, 10_000_000),
        )
    }

    pub(super) fn stick(&mut self, path: &str, r: &RawStick) -> Option<StickTable> {
        let key = self.key(path, "on", &r.on)?;
        let expire = self.duration(
            &format!("{path}.expire"),
            &r.expire,
            Duration::from_secs(1800),
        );
        let (len, size) = self.key_limits(path, r.len, r.size);
        Some(StickTable {
            key,
            len,
            size,
            expire,
        })
    }

    pub(super) fn rate_limit(&mut self, path: &str, r: &RawRateLimit) -> Option<(RateLimit, u16)> {
        let text = r.key.as_deref().unwrap_or("src");
        let key = self.key(path, "key", text)?;
        let period = self.duration(
            &format!("{path}.period"),
            &r.period,
            Duration::from_secs(10),
        );
        if period < Duration::from_millis(100) {
            self.err(format!("{path}.period"), "must be at least 100ms");
        }
        let status = match r.status {
            None => 429,
            Some(s) if (200..=599).contains(&s) => s as u16,
            Some(s) => {
                self.err(format!("{path}.status"), format!("invalid status {s}"));
                429
            }
        };
        let limit = match r.limit {
            n if (0..=u32::MAX as i64).contains(&n) => n as u32,
            n => {
                self.err(format!("{path}.limit"), format!("invalid limit {n}"));
                0
            }
        };
        let (len, size) = self.key_limits(path, r.len, r.size);
        Some((
            RateLimit {
                key,
                len,
                limit,
                period,
                size,
            },
            status,
        ))
    }
}

/// Accepts the URL forms the Redis client understands.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("rediss://") && !cfg!(feature = "redis-tls") {
        return Err(format!(
            "{url:?}: rediss:// (TLS) needs ringlb built with the `redis-tls` feature"
        ));
    }
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(format!("{url:?}: expected a redis:// or rediss:// URL"));
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("{url:?}: {e}"))
}
