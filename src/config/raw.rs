//! The TOML schema exactly as written by the operator: every table rejects unknown
//! keys, and nothing here is checked beyond its type. `validate.rs` turns it into the model.

use indexmap::IndexMap;
use serde::Deserialize;

/// A duration written as a string with a unit (`"5s"`) or as milliseconds (`5000`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Millis(u64),
    Text(String),
}

/// One bind: an address, or a table with its options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawBindEntry {
    Addr(String),
    Full(RawBind),
}

/// `{ addr = "IP:PORT", tls = false, accept_proxy = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBind {
    pub addr: String,
    /// Whether the frontend's `[tls]` applies here (default: when the frontend has one).
    pub tls: Option<bool>,
    pub accept_proxy: Option<bool>,
    /// `"h2"`: HTTP/2 with prior knowledge (cleartext) on this bind.
    pub proto: Option<String>,
}

/// One bind or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawBinds {
    One(RawBindEntry),
    Many(Vec<RawBindEntry>),
}

impl RawBinds {
    pub fn to_vec(&self) -> Vec<RawBindEntry> {
        match self {
            RawBinds::One(b) => vec![b.clone()],
            RawBinds::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub timeout: RawTimeouts,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub pool: RawPool,
    #[serde(default)]
    pub admin: RawAdmin,
    pub log: Option<RawLog>,
    pub cluster: Option<RawCluster>,
    #[serde(default)]
    pub frontend: IndexMap<String, RawFrontend>,
    #[serde(default)]
    pub backend: IndexMap<String, RawBackend>,
    /// `[resolvers.NAME]`: DNS servers that servers with `resolvers = "NAME"` follow.
    #[serde(default)]
    pub resolvers: IndexMap<String, RawResolvers>,
}

/// `[resolvers.NAME]`, haproxy.cfg's `resolvers` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolvers {
    /// `IP:PORT` (UDP, and TCP for a truncated answer) or `tcp@IP:PORT`; named
    /// ns1, ns2, ... in order.
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub parse_resolv_conf: bool,
    pub accepted_payload_size: Option<i64>,
    pub resolve_retries: Option<i64>,
    pub timeout_resolve: Option<RawDuration>,
    pub timeout_retry: Option<RawDuration>,
    #[serde(default)]
    pub hold: RawHold,
}

/// `[resolvers.NAME.hold]`: how long an answer of each status holds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHold {
    pub valid: Option<RawDuration>,
    pub nx: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub refused: Option<RawDuration>,
    pub obsolete: Option<RawDuration>,
    pub other: Option<RawDuration>,
}

/// A server entry's `slots`: `N` (1..N) or `"LOW-HIGH"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSlots {
    Count(i64),
    Range(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub shards: Option<i64>,
    pub driver: Option<String>,
    pub cpus: Option<Vec<i64>>,
    pub pidfile: Option<String>,
    pub maxconn: Option<i64>,
    /// New TLS connections per second, all shards together (HAProxy's `maxsslrate`).
    pub maxsslrate: Option<i64>,
    /// Handshakes one shard computes at once (default 4).
    pub tls_handshakes_per_shard: Option<i64>,
    /// The deflate level of HTTP compression, 1 to 9 (HAProxy's `tune.comp.maxlevel`).
    pub comp_maxlevel: Option<i64>,
    /// The server-state file that backends with `load_server_state` read at load
    /// (HAProxy's `server-state-file`).
    pub server_state_file: Option<String>,
    /// `false`: no splicing at all (haproxy.cfg's global `nosplice`).
    pub splice: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<RawDuration>,
    pub client: Option<RawDuration>,
    pub server: Option<RawDuration>,
    pub http_request: Option<RawDuration>,
    pub http_keep_alive: Option<RawDuration>,
    pub queue: Option<RawDuration>,
    pub shutdown: Option<RawDuration>,
    pub hard_stop_after: Option<RawDuration>,
    pub tunnel: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_header_bytes: Option<i64>,
    pub max_headers: Option<i64>,
    pub max_request_line: Option<i64>,
    pub max_chunks: Option<i64>,
    pub h2_max_concurrent_streams: Option<i64>,
    pub h2_header_table_size: Option<i64>,
    pub h2_initial_window_size: Option<i64>,
    pub h2_max_frame_size: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub target: String,
    pub facility: Option<String>,
    pub raw: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub stats_socket: Option<String>,
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub max_idle_per_server: Option<i64>,
    pub idle_timeout: Option<RawDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFrontend {
    pub bind: Option<RawBinds>,
    /// TLS termination on the binds (`[frontend.NAME.tls]`).
    pub tls: Option<super::tls::RawTls>,
    pub mode: Option<String>,
    pub default_backend: Option<String>,
    #[serde(default)]
    pub forward_for: bool,
    #[serde(default)]
    pub accept_proxy: bool,
    #[serde(default)]
    pub allow_connect: bool,
    pub log: Option<String>,
    #[serde(default)]
    pub dont_log_null: bool,
    /// `option http-buffer-request`.
    #[serde(default)]
    pub buffer_request: bool,
    /// `option splice-auto` (`false`: `no option splice-auto`), `option
    /// splice-request`, `option splice-response` (see `config::splice`).
    pub splice_auto: Option<bool>,
    pub splice_request: Option<bool>,
    pub splice_response: Option<bool>,
    pub stats_uri: Option<String>,
    pub metrics_path: Option<String>,
    pub maxconn: Option<i64>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub rate_limit: Vec<RawRateLimit>,
    /// HTTP compression of this frontend's responses.
    pub compression: Option<super::compression::RawCompression>,
}

/// `[cluster]`: shared state in Redis.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub redis: Option<String>,
    pub prefix: Option<String>,
    pub sync_interval: Option<RawDuration>,
    /// Rotation of the session-ticket keys the nodes share (default 12h).
    pub tls_ticket_rotation: Option<RawDuration>,
}

/// `[backend.NAME.stick]`: sticky sessions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStick {
    pub on: String,
    pub expire: Option<RawDuration>,
    pub size: Option<i64>,
    pub len: Option<i64>,
}

/// `[[frontend.NAME.rate_limit]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub key: Option<String>,
    pub limit: i64,
    pub period: Option<RawDuration>,
    pub status: Option<i64>,
    pub size: Option<i64>,
    pub len: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub backend: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub balance: Option<String>,
    pub hash_key: Option<String>,
    pub hash_type: Option<String>,
    pub random_draws: Option<i64>,
    pub all_backups: Option<bool>,
    pub retries: Option<i64>,
    pub redispatch: Option<bool>,
    /// `option http-buffer-request`.
    pub buffer_request: Option<bool>,
    /// `option abortonclose`.
    pub abort_on_close: Option<bool>,
    /// `option splice-auto` (`false`: `no option splice-auto`), `option
    /// splice-request`, `option splice-response` (see `config::splice`).
    pub splice_auto: Option<bool>,
    pub splice_request: Option<bool>,
    pub splice_response: Option<bool>,
    pub maxqueue: Option<i64>,
    pub error_limit: Option<i64>,
    pub health: Option<RawHealth>,
    pub stick: Option<RawStick>,
    #[serde(default)]
    pub server: Vec<RawServer>,
    /// HTTP compression of this backend's responses.
    pub compression: Option<super::compression::RawCompression>,
    /// Start its servers where `runtime.server_state_file` says they were.
    pub load_server_state: Option<bool>,
}

/// An expected status: a list of codes, or a range written `"200-399"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawStatusMatch {
    List(Vec<i64>),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub interval: Option<RawDuration>,
    pub fast_interval: Option<RawDuration>,
    pub down_interval: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub expect_status: Option<RawStatusMatch>,
    /// A 404 from a running server puts it in NOLB (HAProxy's `disable-on-404`).
    pub disable_on_404: Option<bool>,
    pub port: Option<i64>,
    pub addr: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub name: Option<String>,
    /// HAProxy's server id (places the server on a consistent-hash ring).
    pub id: Option<i64>,
    pub addr: String,
    pub weight: Option<i64>,
    pub backup: Option<bool>,
    pub maxconn: Option<i64>,
    pub slowstart: Option<RawDuration>,
    pub check: Option<bool>,
    pub disabled: Option<bool>,
    pub send_proxy: Option<String>,
    pub check_send_proxy: Option<bool>,
    /// TLS to the server.
    pub tls: Option<super::tls::RawServerTls>,
    /// The protocol spoken to it: "h1" (the default) or "h2".
    pub proto: Option<String>,
    /// What its health checks speak: "h1", "h2" or "none" (by default: `proto`).
    pub check_proto: Option<String>,
    /// DNS discovery: the `[resolvers.NAME]` that keeps the address current.
    pub resolvers: Option<String>,
    /// `"ipv4"` or `"ipv6"` (the default, as HAProxy).
    pub resolve_prefer: Option<String>,
    /// Networks whose addresses are preferred (`"10.0.0.0/8"`).
    pub resolve_net: Option<Vec<String>>,
    /// Where the address comes from at load, in order: `"last"`, `"libc"`,
    /// `"none"`, an IP (default `["last", "libc"]`).
    pub init_addr: Option<Vec<String>>,
    /// A server template: this entry is `slots` servers, `NAME1`, `NAME2`, ...,
    /// filled from the DNS answers (haproxy.cfg's `server-template`).
    pub slots: Option<RawSlots>,
}
