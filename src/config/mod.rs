//! The validated configuration model. Both front doors (TOML today, haproxy.cfg later)
//! end here; the data path only ever sees these types.

pub mod acl;
mod admin;
mod cluster;
pub mod compression;
pub mod cookie;
pub mod dns;
mod duration;
pub mod error_pages;
pub mod fd_budget;
mod from_haproxy;
mod frontend;
pub mod haproxy;
mod log;
mod raw;
pub mod splice;
pub mod state_file;
pub mod tcpcheck;
pub mod tls;
mod validate;
mod world;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use crate::rules::action::{
    AdminCond, HttpAction, HttpRule, Reply, Service, TcpAction, TcpRule,
};
pub use crate::rules::stick::TableSpec;
pub use crate::rules::{Acl, AclTest, Condition};
pub use admin::{Admin, Monitor};
pub use cluster::{check_url, parse_key, ClusterSettings, RateLimit, StickKey, StickTable};
pub use duration::parse_duration;
pub use from_haproxy::{dynamic_checks, dynamic_server, from_haproxy_str, DEFAULT_BALANCE};
pub use frontend::{
    Bind, BindRef, CaptureSlot, Captures, CaseAdjust, CasePair, ForwardFor, Frontend, ListenOpts,
    Route, RouteTarget, TcpKeepalive,
};
pub use log::{
    syslog_facility, syslog_level, LogFormat, LogSink, LogTarget, LOG_LEVEL_ERR, LOG_LEVEL_INFO,
};
pub use splice::{Splice, SpliceMode, SpliceOpts};
pub use validate::from_toml_str;

/// Which io driver a shard runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring, falling back to epoll where the kernel refuses it.
    Auto,
    IoUring,
    Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Http,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalanceAlgo {
    /// Smooth weighted round robin; weights may change at runtime.
    RoundRobin,
    /// Weighted round robin with the weights fixed at load.
    StaticRr,
    /// Fewest active requests on this shard (relative to weight), ties round robin.
    LeastConn,
    /// Weighted random, best of `draws` choices by active requests.
    Random { draws: u32 },
    /// The first server, by id, with a free slot.
    First,
    /// HAProxy's hash balancing: the key's 32-bit hash picks a slot of the weighted
    /// map (`consistent: false`, `hash-type map-based`) or the closest point of the
    /// ring (`hash-type consistent`), placed exactly as HAProxy 2.6 places them.
    Hash {
        key: HashKey,
        consistent: bool,
        function: HashFunction,
    },
}

/// `hash-type ... [sdbm|djb2|wt6|crc32] [avalanche]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashFunction {
    pub algo: crate::hash::HashAlgo,
    /// Pass the function's result through `full_hash`.
    pub avalanche: bool,
}

impl HashFunction {
    /// HAProxy's default for a hash type: sdbm, with avalanche for `consistent`.
    pub fn default_for(consistent: bool) -> HashFunction {
        HashFunction {
            algo: crate::hash::HashAlgo::Sdbm,
            avalanche: consistent,
        }
    }

    /// The 32-bit hash of a key.
    pub fn hash(self, b: &[u8]) -> u32 {
        self.finish(self.algo.hash(b))
    }

    /// Applies the modifier to a value already hashed (a source address).
    pub fn finish(self, h: u32) -> u32 {
        if self.avalanche {
            crate::hash::full_hash(h)
        } else {
            h
        }
    }
}

/// What a `hash` balancer hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address (`balance source`).
    Source,
    /// The request target (`balance uri`).
    Uri(UriKey),
    /// A request header's value (`balance hdr(name)`; name lower-cased).
    Header { name: String, domain_only: bool },
    /// A query-string parameter's value (`balance url_param`).
    UrlParam(String),
}

/// `balance uri [whole] [path-only] [len N] [depth N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UriKey {
    /// Hash past the `?` too.
    pub whole: bool,
    /// Only the path of an absolute-form target (no scheme and authority).
    pub path_only: bool,
    /// At most this many characters (0: no limit).
    pub len: u32,
    /// At most this many directories: stop before the (depth+1)th `/` (0: no limit).
    pub depth: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP request whose status must match.
    Http {
        method: String,
        path: String,
        host: Option<String>,
        expect: StatusMatch,
        /// `http-check disable-on-404`: a 404 from a running server puts it in NOLB
        /// (no new load-balanced traffic, persistence still honoured).
        disable_on_404: bool,
    },
    /// A `tcp-check` rule sequence (`option tcp-check`, `redis-check`, ...).
    TcpCheck(Arc<tcpcheck::TcpCheck>),
    /// `option external-check`: a program run per check; exit status 0 passes.
    External(Arc<ExternalCheck>),
}

/// `external-check command|path`, and what HAProxy tells the program about its proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalCheck {
    pub command: String,
    /// `PATH` for the program (HAProxy's default: empty).
    pub path: String,
    /// HAProxy's proxy id (`iid`), and the first bind of a `listen` (a backend has
    /// none: `NOT_USED`).
    pub proxy_id: usize,
    pub bind: Option<SocketAddr>,
    /// `HAPROXY_SERVER_PROTO`: `h1` in `mode http`, else `tcp`.
    pub proto: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusMatch {
    /// 2xx and 3xx pass (HAProxy's default).
    Default,
    List(Vec<u16>),
    Range(u16, u16),
    /// `http-check expect rstatus REGEX`: the status code, as text, matches.
    Regex(String),
    /// `http-check expect string TEXT`: the response body contains TEXT (any status).
    Body(String),
}

impl StatusMatch {
    pub fn matches(&self, status: u16) -> bool {
        match self {
            StatusMatch::Default => (200..400).contains(&status),
            StatusMatch::List(l) => l.contains(&status),
            StatusMatch::Range(lo, hi) => (*lo..=*hi).contains(&status),
            StatusMatch::Regex(re) => {
                regex::Regex::new(re).is_ok_and(|r| r.is_match(&status.to_string()))
            }
            // Decided on the body, by the check itself.
            StatusMatch::Body(_) => true,
        }
    }
}

/// Active health checking of a backend's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// Between checks of a server in a stable state (HAProxy's `inter`).
    pub interval: Duration,
    /// While a server is changing state (`fastinter`).
    pub fast_interval: Duration,
    /// While a server is down (`downinter`).
    pub down_interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Check another port / address than the server's.
    pub port: Option<u16>,
    pub addr: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub runtime: Runtime,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub pool: PoolSettings,
    pub admin: Admin,
    /// Where access logs go; `None` = no access logs.
    pub log: Option<LogTarget>,
    /// Shared state across nodes (Redis), or local.
    pub cluster: ClusterSettings,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    /// Proxies in the order the file declared them (a `listen` is both halves), for
    /// `show stat` and proxy ids.
    pub proxy_order: Vec<ProxyRef>,
    /// Every variable name rules mention, numbered.
    pub vars: crate::rules::vars::Registry,
    /// Stick tables of the rule language (`track-scN`, `sc_*`), by index.
    pub tables: Vec<TableSpec>,
    /// Map and pattern files and ACL patterns, numbered as the runtime API names them.
    pub patterns: crate::rules::map::PatRefs,
    /// haproxy.cfg `resolvers` sections (servers name them by index).
    pub resolvers: Vec<dns::Resolvers>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRef {
    pub frontend: Option<usize>,
    pub backend: Option<usize>,
    /// HAProxy's proxy id (`id N`, else numbered as HAProxy numbers them: see
    /// `number_proxies`): `iid` in `show stat`, `fe_id`/`be_id`.
    pub id: u32,
}

#[derive(Debug, Clone)]
pub struct Runtime {
    pub shards: usize,
    pub driver: DriverChoice,
    /// Core for each shard, by shard index; `None` = the usable cores in order.
    pub cpus: Option<Vec<usize>>,
    /// Where to write the process id.
    pub pidfile: Option<std::path::PathBuf>,
    /// Most client connections at once, all shards together (split like server
    /// maxconn); beyond it, new connections wait in the kernel's backlog.
    pub maxconn: Option<u32>,
    /// New connections per second on TLS listeners, all shards together (HAProxy's
    /// `maxsslrate`); beyond it, TLS listeners stop accepting for a moment.
    pub maxsslrate: Option<u32>,
    /// Handshakes a shard computes at once; others wait their turn (`tls::gate`).
    pub tls_handshakes: usize,
    /// The deflate level of HTTP compression (`tune.comp.maxlevel`, 1 to 9).
    pub comp_level: u32,
    /// Bytes of the request line the log captures (`tune.http.logurilen N` keeps N;
    /// 1023 by default, as HAProxy; no limit from TOML).
    pub log_uri_len: usize,
    /// How the process runs around its shards (the `process` module applies it).
    pub process: ProcessSettings,
    /// The global server-state file (`server-state-file` under `server-state-base`).
    pub server_state_file: Option<std::path::PathBuf>,
    /// Splicing allowed at all (false under global `nosplice`, TOML `splice = false`).
    pub splice: bool,
}

/// haproxy.cfg `global`: `daemon`, `ulimit-n`, `chroot`, `user`/`uid`, `group`/`gid`.
/// Fixed for the life of the process (a reload that changes them is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// Fork into the background once the config is read (`-db` overrides it).
    pub daemon: bool,
    /// The open-file limit to raise to (never lowered), before maxconn is derived.
    pub ulimit_n: Option<u64>,
    /// The directory to chroot into once every socket is open.
    pub chroot: Option<std::path::PathBuf>,
    /// The user and group ids to serve as, set once every socket is open.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub client: Duration,
    pub server: Duration,
    pub http_request: Duration,
    pub http_keep_alive: Duration,
    /// Waiting in a backend's queue for a free server slot (503 after).
    pub queue: Duration,
    pub shutdown: Duration,
    /// Longest a soft stop (SIGUSR1) waits for in-flight requests; `None` = no limit.
    pub hard_stop_after: Option<Duration>,
    /// Inactivity in both directions of a tunnel (after a `101 Switching Protocols`);
    /// `None`: `client`.
    pub tunnel: Option<Duration>,
    /// How long `http-request tarpit` holds a client (`None`: `connect`, as HAProxy).
    pub tarpit: Option<Duration>,
    /// `timeout client-fin`: the client's inactivity limit once ringlb passed it a
    /// half-close (TCP mode and tunnels; `None`: `client` or `tunnel`).
    pub client_fin: Option<Duration>,
    /// `timeout server-fin`: the same for the server, once it was passed one.
    pub server_fin: Option<Duration>,
}

/// Message limits (HAProxy: `tune.bufsize`, `tune.http.maxhdr`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (431 above) and response head (502 above).
    pub max_header_bytes: usize,
    /// Most header fields in one head (431 / 502 above).
    pub max_headers: usize,
    /// Longest request line (414 above).
    pub max_request_line: usize,
    /// Most chunks in one chunked body (400 / connection closed above).
    pub max_chunks: u32,
    /// Most concurrent streams of one HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`,
    /// `tune.h2.max-concurrent-streams`).
    pub h2_max_concurrent_streams: u32,
    /// HPACK dynamic table size announced (`SETTINGS_HEADER_TABLE_SIZE`,
    /// `tune.h2.header-table-size`; 4096, the protocol's default, is not announced).
    pub h2_header_table_size: u32,
    /// Initial stream window announced (`SETTINGS_INITIAL_WINDOW_SIZE`,
    /// `tune.h2.initial-window-size`; 65535, the protocol's default).
    pub h2_initial_window_size: u32,
    /// Largest frame a client may send (`SETTINGS_MAX_FRAME_SIZE`,
    /// `tune.h2.max-frame-size`, at most the buffer size as HAProxy; 16384 default).
    pub h2_max_frame_size: u32,
}

/// Idle upstream connections kept per server and shard unless configured: enough that
/// a shard never closes a connection it needs again a moment later (HAProxy keeps them
/// without limit); `pool.idle_timeout` closes the ones left unused.
pub const DEFAULT_POOL_MAX_IDLE: usize = 10_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 101,
            max_request_line: 8 * 1024,
            max_chunks: 1_000_000,
            h2_max_concurrent_streams: 100,
            h2_header_table_size: 4096,
            h2_initial_window_size: 65_535,
            h2_max_frame_size: 16_384,
        }
    }
}

/// Highest `limits.max_headers` (the size of the parser's header array).
pub const MAX_HEADERS_CAP: usize = 1024;

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_idle_per_server: usize,
    pub idle_timeout: Duration,
}

/// `use-server SERVER if CONDITION` (backends).
#[derive(Debug, Clone)]
pub struct UseServer {
    pub cond: Condition,
    pub server: u32,
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    /// Its servers' state changes go to the log target too (`log global` or a target
    /// in the backend, as HAProxy's `send_log` on the backend).
    pub logs: bool,
    /// Each check that changes a server's status or health is logged too (`option
    /// log-health-checks`).
    pub log_health_checks: bool,
    /// TCP keep-alive probes on server sockets (`option srvtcpka`).
    pub tcpka: Option<TcpKeepalive>,
    /// Header names re-cased in the request heads sent to servers (`option
    /// h1-case-adjust-bogus-server` with the global `h1-case-adjust` map).
    pub h1_case: Option<CaseAdjust>,
    /// `disabled`: the backend is stopped; requests routed to it get a 503.
    pub disabled: bool,
    pub balance: BalanceAlgo,
    pub servers: Vec<Server>,
    /// Where its servers' state is read from at load (`load-server-state-from-file`).
    pub state_from: state_file::StateFrom,
    /// Use every available backup server when no primary is, not only the first.
    pub all_backups: bool,
    /// `option prefer-last-server` with `http-reuse never` (where HAProxy 2.6 honours
    /// it): a keep-alive client's next request goes to the server that answered its
    /// previous one while it can take it (not for hashes).
    pub prefer_last_server: bool,
    /// `option http-buffer-request` (TOML `buffer_request`): a request's body is in
    /// (whole, or a full buffer) before a server is connected.
    pub buffer_request: bool,
    /// `option abortonclose` (TOML `abort_on_close`): in TCP mode, a client that closes
    /// while its connection waits in the queue or for the connect is dropped at once.
    pub abort_on_close: bool,
    /// `option splice-auto|splice-request|splice-response` (see `splice`).
    pub splice: SpliceOpts,
    /// Further attempts after a failed connect (or a failed idempotent request).
    pub retries: u32,
    /// Retries may go to another server.
    pub redispatch: bool,
    /// Which retries do (`option redispatch N`; see `dispatch::verdict`): 1 = every
    /// one (the TOML `redispatch`), -1 = the last (haproxy.cfg's default), 0 = none
    /// unless the server is down or any round-robin server will do.
    pub redispatch_after: i32,
    /// Most requests waiting for a slot, per shard; `None` = unbounded.
    pub maxqueue: Option<usize>,
    pub health: Option<HealthCheck>,
    /// Server-side timeouts (`connect`, `server`, `queue`) apply here.
    pub timeouts: Timeouts,
    /// Add X-Forwarded-For to requests for this backend (`option forwardfor` in a
    /// backend section: either side asking is enough, as in HAProxy).
    pub forward_for: Option<ForwardFor>,
    /// Close server connections after each response (`option http-server-close`).
    pub server_close: bool,
    /// Sticky sessions (`stick-table` + `stick on`).
    pub stick: Option<StickTable>,
    /// `http-request` rules, after the frontend's (once this backend was chosen).
    pub http_request: Vec<HttpRule>,
    /// `http-response` rules, before the frontend's.
    pub http_response: Vec<HttpRule>,
    /// `http-after-response` rules, before the frontend's.
    pub http_after_response: Vec<HttpRule>,
    /// `tcp-request content` rules of the backend, after the frontend's.
    pub tcp_content: Vec<TcpRule>,
    /// `tcp-response content` rules, with `tcp-response inspect-delay`.
    pub tcp_response: Vec<TcpRule>,
    pub response_inspect_delay: Option<Duration>,
    /// `use-server` rules, in order.
    pub use_server: Vec<UseServer>,
    /// Cookie persistence (`cookie NAME ...`).
    pub cookie: Option<Arc<cookie::Persistence>>,
    /// HTTP compression (`compression ...`): its algorithms and types come before the
    /// frontend's.
    pub compression: Option<Arc<compression::Compression>>,
    /// `errorfile`, `http-error`, ...: custom error responses (before the frontend's).
    pub error_pages: error_pages::ErrorPages,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    /// HAProxy's server id (`id N`, else numbered as HAProxy numbers them: see
    /// `number_servers`); it places the server's points on a consistent-hash ring.
    pub id: u32,
    pub addr: SocketAddr,
    pub weight: u32,
    pub backup: bool,
    /// Concurrent requests (connections in tcp mode) to this server, all shards together.
    pub maxconn: Option<u32>,
    /// Ramp-up of the effective weight after the server comes back up.
    pub slowstart: Duration,
    /// Take part in the backend's active health checks.
    pub check: bool,
    /// Starts in maintenance (HAProxy's `disabled`); the runtime API enables it.
    pub disabled: bool,
    /// Send a PROXY protocol header on every new connection to this server.
    pub send_proxy: Option<crate::proxy_protocol::Version>,
    /// Send one on health checks too (by default: when `send_proxy` is set and the
    /// check uses the server's own address and port, as HAProxy does).
    pub check_send_proxy: bool,
    /// haproxy.cfg `pool-purge-delay`: how long this server's idle connections are
    /// kept, instead of `pool.idle_timeout` (zero: none is kept).
    pub pool_purge_delay: Option<Duration>,
    /// TLS to this server (`ssl`), its client config built and checked at load.
    pub tls: Option<std::sync::Arc<crate::tls::UpstreamTls>>,
    /// `proto h2` (TOML `proto = "h2"`): requests go to it over HTTP/2, streams of one
    /// multiplexed connection per shard (`upstream::h2`), cleartext or TLS.
    pub h2: bool,
    /// `check-proto` (TOML `check_proto`): what its health checks speak, whatever
    /// `proto` says (see `check_h2`).
    pub check_proto: Option<CheckProto>,
    /// haproxy.cfg `server NAME ADDR` without a port (or `ADDR:+N`, `ADDR:-N`): the
    /// port is the one the client connected to, plus this offset (`addr`'s port is 0).
    pub port_offset: Option<i32>,
    /// This server's check port and address (`port`, `addr`), over the backend's.
    pub check_port: Option<u16>,
    pub check_addr: Option<std::net::IpAddr>,
    /// `on-marked-down shutdown-sessions`: its sessions end when checks mark it down.
    pub shutdown_on_down: bool,
    /// `on-marked-up shutdown-backup-sessions`: the backups' sessions end when it
    /// comes up.
    pub shutdown_backups_on_up: bool,
    /// Passive health: what consecutive failed requests do to the server (`observe`,
    /// `error-limit`, `on-error`); `None`: nothing, as HAProxy without `observe`.
    pub passive: Option<Passive>,
    /// Its address comes from DNS (`resolvers`, `server-template`).
    pub dns: Option<dns::ServerDns>,
    /// No address at load (`init-addr none`, an empty template slot): in
    /// maintenance until DNS gives one (`addr` holds only the port).
    pub no_addr: bool,
    /// How `init-addr last` takes the address the server-state file has.
    pub last_addr: state_file::LastAddr,
    /// What the server-state file gave it (operator state, weight, up or down).
    pub saved: Option<state_file::Saved>,
    /// Added at run time (`add server`): not in the file, so a reload drops it (as
    /// HAProxy 2.6); its checks start off (`enable health` turns them on).
    pub dynamic: bool,
}

impl Server {
    /// The weight it starts with: the operator's from the server-state file, else the
    /// config's.
    pub fn start_weight(&self) -> u32 {
        self.saved.and_then(|v| v.weight).unwrap_or(self.weight)
    }

    /// Its HTTP checks go over HTTP/2: `check-proto h2`, or `proto h2` without a
    /// `check-proto` (HAProxy 2.6's checks follow the server's protocol).
    pub fn check_h2(&self) -> bool {
        match self.check_proto {
            Some(p) => p == CheckProto::H2,
            None => self.h2,
        }
    }
}

/// HAProxy's `check-proto NAME`: the multiplexer of a server's health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckProto {
    H1,
    H2,
    /// No multiplexer: a TCP check (`none`).
    None,
}

impl CheckProto {
    /// `h1`, `h2` or `none`, as HAProxy 2.6 spells them (`fcgi` it has, ringlb not).
    pub fn parse(name: &str) -> Result<CheckProto, String> {
        match name {
            "h1" => Ok(CheckProto::H1),
            "h2" => Ok(CheckProto::H2),
            "none" => Ok(CheckProto::None),
            "fcgi" => Err("'check-proto fcgi' is not supported (ringlb has no FastCGI; it checks with 'h1', 'h2' or 'none')".into()),
            other => Err(format!("unknown MUX protocol '{other}' ('h1', 'h2' or 'none')")),
        }
    }

    /// What it carries, for the error that says it does not fit.
    pub fn carries(self) -> &'static str {
        match self {
            CheckProto::H1 => {
                "'h1' carries HTTP checks only ('option httpchk', TOML type = \"http\")"
            }
            CheckProto::H2 => {
                "'h2' carries HTTP checks only ('option httpchk', TOML type = \"http\")"
            }
            CheckProto::None => "'none' carries TCP checks only, not HTTP ones",
        }
    }

    /// It can carry checks of `kind`, as HAProxy 2.6 requires (else: "uses an
    /// incompatible MUX protocol for the selected check type"): `h1` and `h2` HTTP
    /// checks, `none` the others. An external check makes no connection.
    pub fn fits(self, kind: &CheckKind) -> bool {
        match kind {
            CheckKind::External(_) => true,
            CheckKind::Http { .. } => self != CheckProto::None,
            _ => self == CheckProto::None,
        }
    }
}

/// HAProxy's `observe layer4|layer7` with `error-limit N` and `on-error MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passive {
    /// `layer7` also counts 5xx answers (but 501 and 505) and broken responses;
    /// `layer4`, failed connections only.
    pub layer7: bool,
    /// Consecutive failures, all shards together, that trigger `on_error`.
    pub limit: u32,
    pub on_error: OnError,
}

/// `on-error`: what `error-limit` consecutive failures do (HAProxy's default:
/// `fail-check`). Each also checks the server again at `fastinter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Nothing but the sooner check.
    FastInter,
    /// Counts as one failed health check.
    FailCheck,
    /// Leaves the server one failed check from down, then counts one.
    SuddenDeath,
    /// Marks the server down at once.
    MarkDown,
}

/// HAProxy's server ids: explicit ones kept; the others numbered in config order, each
/// taking the first id not yet used from a counter that every server line (explicit
/// or not) advances by one. `explicit[i]` is server i's `id`, if it has one; a
/// duplicate explicit id is the error returned (the two positions).
pub fn number_servers(explicit: &[Option<u32>]) -> Result<Vec<u32>, (usize, usize)> {
    let mut used = std::collections::BTreeSet::new();
    for (i, id) in explicit.iter().enumerate() {
        if let Some(id) = id {
            if !used.insert(*id) {
                let first = explicit[..i].iter().position(|x| x == &Some(*id));
                return Err((first.unwrap_or(i), i));
            }
        }
    }
    let mut next = 1u32;
    let mut out = Vec::with_capacity(explicit.len());
    for id in explicit {
        let id = match id {
            Some(id) => *id,
            None => {
                while used.contains(&next) {
                    next += 1;
                }
                used.insert(next);
                next
            }
        };
        out.push(id);
        next += 1;
    }
    Ok(out)
}

/// HAProxy's proxy ids for proxies in config order, `explicit` being each one's `id N`:
/// as servers are numbered (`number_servers`), after the CLI proxy (`GLOBAL`, id 1)
/// that HAProxy adds for a `stats socket`. Err: the positions of a duplicate (`None`
/// for the CLI proxy's).
pub fn number_proxies(
    cli: bool,
    explicit: &[Option<u32>],
) -> Result<Vec<u32>, (Option<usize>, usize)> {
    let with_cli: Vec<Option<u32>> = cli
        .then_some(Some(1))
        .into_iter()
        .chain(explicit.iter().copied())
        .collect();
    let skip = usize::from(cli);
    match number_servers(&with_cli) {
        Ok(ids) => Ok(ids[skip..].to_vec()),
        Err((first, second)) => Err((first.checked_sub(skip), second - skip)),
    }
}

/// Every problem found in a config file, each with its path or line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Positions of `items` by name (for matching a reload's proxies and servers with the
/// previous config's without a quadratic search).
pub fn by_name<T>(
    items: &[T],
    name: impl Fn(&T) -> &String,
) -> std::collections::HashMap<&str, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, x)| (name(x).as_str(), i))
        .collect()
}

/// Builds each frontend's routing index (`crate::route_index`): both syntaxes, once
/// the backends are known.
pub(crate) fn index_routes(frontends: &mut [Frontend], backends: &[Backend]) {
    for f in frontends {
        let dynamic = f
            .routes
            .iter()
            .any(|r| matches!(r.target, RouteTarget::Dynamic(_)));
        f.route_index = crate::route_index::RouteIndex::build(
            f.routes.iter().map(|r| &r.cond),
            dynamic,
            backends.iter().map(|b| b.name.as_str()),
        )
        .map(Arc::new);
    }
}

impl Config {
    /// How a connection of `frontend` to `backend` splices, each direction.
    pub fn splice(&self, frontend: usize, backend: usize) -> Splice {
        Splice::resolve(
            self.frontends[frontend].splice,
            self.backends[backend].splice,
            self.runtime.splice,
        )
    }

    /// HAProxy's id of frontend (`frontend`) or backend `index` (a listen has one).
    pub fn proxy_uid(&self, frontend: bool, index: usize) -> Option<u32> {
        self.proxy_order
            .iter()
            .find(|p| {
                if frontend {
                    p.frontend == Some(index)
                } else {
                    p.backend == Some(index)
                }
            })
            .map(|p| p.id)
    }

    /// Reads a config file; the syntax is chosen by its name (`.toml` = native).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_with_warnings(path).map(|(c, _)| c)
    }

    /// Like `load`, with the warnings (ignored haproxy.cfg keywords), each naming the
    /// file and line: `FILE:LINE: message`.
    pub fn load_with_warnings(path: &Path) -> Result<(Config, Vec<String>), ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: cannot read: {e}", path.display())]))?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        let located = |msgs: Vec<String>| -> Vec<String> {
            msgs.into_iter()
                .map(
                    |m| match m.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
                        Some((n, rest)) if !is_toml && n.parse::<usize>().is_ok() => {
                            format!("{}:{n}: {rest}", path.display())
                        }
                        _ => format!("{}: {m}", path.display()),
                    },
                )
                .collect()
        };
        let result = if is_toml {
            from_toml_str(&text).map(|c| (c, Vec::new()))
        } else {
            from_haproxy_str(&text, &|name| std::env::var(name).ok())
        };
        let result = result.and_then(|(mut c, mut w)| {
            // Both syntaxes: where servers were, from the server-state file.
            w.extend(state_file::apply(&mut c).map_err(ConfigErrors)?);
            // Both syntaxes: the environment may name the Redis server.
            if let (None, Ok(url)) = (&c.cluster.redis, std::env::var("RINGLB_REDIS_URL")) {
                check_url(&url)
                    .map_err(|e| ConfigErrors(vec![format!("RINGLB_REDIS_URL: {e}")]))?;
                c.cluster.redis = Some(url);
            }
            c.patterns.source = path.display().to_string();
            Ok((c, w))
        });
        match result {
            Ok((c, warnings)) => Ok((c, located(warnings))),
            Err(ConfigErrors(errs)) => Err(ConfigErrors(located(errs))),
        }
    }

    /// What a rule transaction on `frontend` needs to begin (see `rules::TxnScope`).
    pub fn txn_scope(&self, frontend: usize) -> crate::rules::TxnScope<'_> {
        crate::rules::TxnScope {
            id: self as *const Config as usize,
            vars: &self.vars,
            captures: self.frontends.get(frontend).map_or((0, 0), |f| {
                (f.captures.request.len(), f.captures.response.len())
            }),
        }
    }

    pub fn backend_index(&self, name: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.name == name)
    }
}

/// HAProxy's defaults where it has them, ringlb's where it does not.
pub fn default_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        client: Duration::from_secs(30),
        server: Duration::from_secs(30),
        http_request: Duration::from_secs(10),
        http_keep_alive: Duration::from_secs(10),
        queue: Duration::from_secs(5),
        shutdown: Duration::from_secs(5),
        hard_stop_after: None,
        tunnel: None,
        tarpit: None,
        client_fin: None,
        server_fin: None,
    }
}

/// The number of cores this process may run on.
pub fn usable_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
