//! HAProxy's rule language, built once and used by every rule kind: typed sample
//! expressions (`fetch(args),converter(args),...`), ACLs and conditions, maps and
//! pattern files, variables, and log-format strings. Configuration time turns text
//! into these types (`parse`); the data path evaluates them against a `Ctx`, the
//! per-request view it provides, without allocating in the common cases.
//!
//! | file | owns |
//! | --- | --- |
//! | `sample` | sample types, casts, the scratch buffers |
//! | `head` | the view of a request or response head fetches read |
//! | `parse` | expression syntax: words → [`Expr`] |
//! | `fetch` | sample fetches (request, response, connection, state, TLS) |
//! | `payload` | layer-6 fetches on buffered bytes (TLS ClientHello, RDP cookie) |
//! | `convert` | converters |
//! | `pattern` | match methods, pattern lists and files, maps |
//! | `acl` | ACLs, conditions (`if`/`unless`), predefined ACLs |
//! | `vars` | variables and their scopes |
//! | `logformat` | log-format strings (header values, redirects, `log-format`) |
//! | `stick` | stick-table data types and the `sc_*` fetches' model |
//! | `action` | rule actions and the local replies they send |
//! | `world` | what evaluation reads of the config in force and the shard |

pub mod acl;
pub mod action;
pub mod auth;
pub mod convert;
mod convert_build;
mod convert_eval;
pub mod fetch;
mod fetch_build;
mod fetch_eval;
pub mod head;
mod lf_eval;
pub use lf_eval::hostname;
pub mod logformat;
pub mod map;

pub mod parse;
pub mod pattern;
pub mod payload;
pub mod sample;
pub mod stick;
mod strfn;
pub mod unique_id;
pub(crate) use strfn::expand;
pub mod vars;
pub mod world;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;

pub use acl::{Acl, AclTest, Condition, Tri};
pub use head::Head;
pub use logformat::LogFormat;
pub use parse::{Env, Expr, Names};
pub use sample::{Data, Scratch, Smp, Type};
pub use world::World;

/// Which message a rule looks at: fetches that exist on both sides (`hdr`, `cookie`)
/// follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Req,
    Res,
}

/// What the TLS layer learnt about a client connection (filled by the TLS front end;
/// `None` on a plain TCP connection, where every `ssl_*` fetch fails as in HAProxy).
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    pub sni: Option<Box<str>>,
    /// `TLSv1.2`, `TLSv1.3`.
    pub protocol: Option<&'static str>,
    /// OpenSSL's cipher name, as HAProxy reports it.
    pub cipher: Option<Box<str>>,
    pub alpn: Option<Box<[u8]>>,
    pub resumed: bool,
    pub client_cert: Option<ClientCert>,
}

#[derive(Debug, Clone, Default)]
pub struct ClientCert {
    /// `/C=FR/O=Example/CN=client` (OpenSSL's one-line form, as `ssl_c_s_dn`).
    pub subject_dn: Box<str>,
    pub issuer_dn: Box<str>,
    /// The serial number's bytes.
    pub serial: Box<[u8]>,
    /// The DER encoding.
    pub der: Box<[u8]>,
    /// OpenSSL's verify result (0 = ok).
    pub verify: i64,
}

/// A header captured for the log (`capture request header`, `http-request capture`).
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub set: bool,
    pub bytes: Vec<u8>,
}

/// A stick counter a rule tracks: the table (by index in the config) and the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    pub table: u32,
    pub key: u64,
}

/// What rules keep between the request and its response on one connection:
/// variables, captures, tracked counters. Buffers are reused from request to request.
#[derive(Debug, Default)]
pub struct Txn {
    /// The config generation the variable slots are numbered for.
    cfg_id: usize,
    pub vars: vars::Store,
    pub req_caps: Vec<Capture>,
    pub res_caps: Vec<Capture>,
    /// `track-scN` of this request (http-request, tcp-request content).
    pub track: [Option<Tracked>; 3],
    /// `track-scN` of the connection (tcp-request connection / session).
    pub sess_track: [Option<Tracked>; 3],
    /// `set-log-level` (syslog severity; `silent` = 8).
    pub log_level: Option<u8>,
    /// The request line, kept for `capture.req.method|uri|ver` and the log.
    pub reqline: Vec<u8>,
    /// This request is the connection's first.
    pub first: bool,
    /// `set-status` on the response, for the log and `status`.
    pub status: Option<u16>,
    /// Header-name summaries of the request and response heads being edited
    /// (`head::name_bit`): a header rule skips the scan for a name that is absent.
    pub names: [u64; 2],
    /// What the connection's TLS handshake settled (`None`: plain TCP), set once
    /// after the handshake and kept for the connection's life (a reload's new
    /// session keeps it too): every context over this transaction reads it.
    pub tls: Option<Box<TlsFacts>>,
    /// The request came as an HTTP/2 stream (translated to HTTP/1.1 for the HTTP
    /// path), with this `:scheme`: the log and `capture.req.ver` show `HTTP/2.0`, as
    /// HAProxy's do, and a `proto h2` server gets the client's `:scheme`.
    pub h2: Option<http::uri::Scheme>,
    /// The request's `unique-id-format` id, once computed.
    pub unique_id: unique_id::UniqueId,
    /// The client's address as `http-request set-src` set it, for the rest of the
    /// request (HAProxy 2.6 sets the stream's source: the connection's next request
    /// starts from the socket's address again).
    pub src: Option<SocketAddr>,
}

/// The `sess` variables the streams of one HTTP/2 connection share, as HAProxy's
/// streams share their session's: each stream starts from them (what the connection's
/// `tcp-request connection|session` rules set, and what the streams done before it
/// left), and leaves its own in them when its request is done. Streams that overlap
/// each start from what was there when they began; the last one done is what stays.
#[derive(Debug, Default)]
pub struct SharedVars {
    /// The config generation the slots are numbered for.
    cfg_id: usize,
    store: vars::Store,
}

/// What a transaction needs of the config in force to begin: its identity (a
/// connection that moved to a reloaded config starts its session afresh), the
/// variable slots, and the frontend's capture slots (request, response).
#[derive(Clone, Copy)]
pub struct TxnScope<'a> {
    pub id: usize,
    pub vars: &'a vars::Registry,
    pub captures: (usize, usize),
}

impl Txn {
    /// The connection's variables, for its HTTP/2 streams to share.
    pub fn take_shared_vars(&mut self) -> SharedVars {
        SharedVars {
            cfg_id: self.cfg_id,
            store: std::mem::take(&mut self.vars),
        }
    }

    /// A stream begins from the variables its connection shares (begun on the same
    /// config; after a reload the stream's session starts afresh, as a connection's
    /// does).
    pub fn adopt_shared_vars(&mut self, shared: &SharedVars) {
        if shared.cfg_id == self.cfg_id {
            self.vars.clone_from(&shared.store);
        }
    }

    /// A stream's request is done: its variables are what the next streams start from
    /// (their `txn`, `req` and `res` values are forgotten as each request begins).
    pub fn leave_shared_vars(&self, shared: &mut SharedVars) {
        shared.cfg_id = self.cfg_id;
        shared.store.clone_from(&self.vars);
    }

    /// A new connection: everything is forgotten, session variables too.
    pub fn begin_session(&mut self, scope: TxnScope<'_>) {
        self.cfg_id = scope.id;
        self.vars.reset_all(scope.vars.len());
        self.sess_track = [None; 3];
        self.first = true;
        self.src = None;
    }

    /// A new request: request-scoped state is forgotten. A connection that moved to a
    /// reloaded config starts its session afresh.
    pub fn begin_request(&mut self, scope: TxnScope<'_>) {
        if self.cfg_id != scope.id {
            self.begin_session(scope);
        } else {
            self.vars.reset_txn(scope.vars);
        }
        let (nreq, nres) = scope.captures;
        reset_caps(&mut self.req_caps, nreq);
        reset_caps(&mut self.res_caps, nres);
        self.track = [None; 3];
        self.src = None;
        self.log_level = None;
        self.status = None;
        self.unique_id.reset();
    }

    /// Whether anything here must outlive the request: session variables, counters
    /// tracked for the connection, its TLS facts, an HTTP/2 stream's scheme. Without,
    /// a fresh session (`begin_session`) is the same to the next request.
    pub fn carries_over(&self) -> bool {
        self.tls.is_some()
            || self.h2.is_some()
            || self.sess_track.iter().any(Option::is_some)
            || self.vars.any_set()
    }

    /// A new request of a frontend no rule touches (`Frontend::rule_free`): nothing
    /// set a request-scoped value since the last reset, so only a connection that
    /// moved to another config generation (whose rules may have) needs one.
    pub fn begin_request_rule_free(&mut self, scope: TxnScope<'_>) {
        if self.cfg_id != scope.id {
            self.begin_request(scope);
        }
    }
}

fn reset_caps(caps: &mut Vec<Capture>, n: usize) {
    caps.resize_with(n, Capture::default);
    caps.truncate(n);
    for c in caps.iter_mut() {
        c.set = false;
        c.bytes.clear();
    }
}

/// The per-request view rules evaluate against; the data path fills what it has.
pub struct Ctx<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub dir: Dir,
    /// The request head as rewritten so far (request rules).
    pub req: Option<Head<'a>>,
    /// The response head (response rules, local replies).
    pub res: Option<Head<'a>>,
    /// Client bytes buffered by `tcp-request content` rules.
    pub payload: Option<&'a [u8]>,
    /// No more bytes will come (the inspect delay is over or the client closed): a
    /// payload fetch that lacks bytes fails instead of asking to wait.
    pub payload_final: bool,
    /// Set by a fetch that could answer differently with more bytes.
    pub miss: Cell<bool>,
    pub txn: &'a Txn,
    /// Names from the config in force and the shard's state (`None`: neither).
    pub world: Option<&'a dyn World>,
    pub frontend: usize,
    pub backend: Option<usize>,
    pub server: Option<u32>,
    pub tls: Option<&'a TlsFacts>,
}

impl<'a> Ctx<'a> {
    /// A context with the connection's addresses and TLS facts (tests, `tcp-request
    /// connection`).
    pub fn new(src: SocketAddr, dst: SocketAddr, txn: &'a Txn) -> Ctx<'a> {
        Ctx {
            src: txn.src.unwrap_or(src),
            dst,
            dir: Dir::Req,
            req: None,
            res: None,
            payload: None,
            payload_final: true,
            miss: Cell::new(false),
            txn,
            world: None,
            frontend: 0,
            backend: None,
            server: None,
            tls: txn.tls.as_deref(),
        }
    }

    /// The head `hdr()`, `cookie()` and friends read in this direction.
    pub fn head(&self, res: Option<bool>) -> Option<Head<'a>> {
        match res {
            Some(true) => self.res,
            Some(false) => self.req,
            None => match self.dir {
                Dir::Req => self.req,
                Dir::Res => self.res,
            },
        }
    }
}

/// The 64-bit key of a sample in a stick table of key type `kt` (`None`: the sample
/// cannot be a key of that type). Addresses are hashed as their 4 or 16 bytes (IPv4-
/// mapped IPv6 as IPv4), strings cut to the table's `len`.
pub fn table_key(kt: stick::KeyType, smp: &Smp<'_>, cur: &[u8]) -> Option<u64> {
    use stick::KeyType;
    use xxhash_rust::xxh3::xxh3_64;
    match kt {
        KeyType::Ip | KeyType::Ipv6 => Some(stick::ip_key(smp.as_ip(cur)?)),
        KeyType::Integer => Some(xxh3_64(&smp.as_int(cur)?.to_be_bytes())),
        KeyType::String(len) | KeyType::Binary(len) => {
            let mut buf = [0u8; 64];
            let b: &[u8] = match smp {
                Smp::Str(_) | Smp::Bin(_) => smp.bytes(cur)?,
                Smp::Int(i) => {
                    let mut v = Vec::new();
                    sample::write_int(&mut v, *i);
                    let n = v.len().min(buf.len());
                    buf[..n].copy_from_slice(&v[..n]);
                    &buf[..n]
                }
                other => {
                    let mut v = Vec::new();
                    other.write_str(cur, &mut v);
                    let n = v.len().min(buf.len());
                    buf[..n].copy_from_slice(&v[..n]);
                    &buf[..n]
                }
            };
            if b.is_empty() {
                return None;
            }
            Some(xxh3_64(&b[..b.len().min(len)]))
        }
    }
}

/// The text `show table` prints for a key of type `kt` (`None`: not a key of that type):
/// an address as text, an integer in decimal, a string cut to the table's length, a
/// binary key in hexadecimal. Called when an entry is created, not per request.
pub fn table_key_text(kt: stick::KeyType, smp: &Smp<'_>, cur: &[u8]) -> Option<Box<[u8]>> {
    use stick::KeyType;
    let mut v = Vec::new();
    match kt {
        KeyType::Ip | KeyType::Ipv6 => {
            let ip = match smp.as_ip(cur)? {
                std::net::IpAddr::V6(a) => a
                    .to_ipv4_mapped()
                    .map_or(std::net::IpAddr::V6(a), std::net::IpAddr::V4),
                a => a,
            };
            v.extend_from_slice(ip.to_string().as_bytes());
        }
        KeyType::Integer => sample::write_int(&mut v, smp.as_int(cur)?),
        KeyType::String(len) => {
            match smp {
                Smp::Str(_) | Smp::Bin(_) => v.extend_from_slice(smp.bytes(cur)?),
                other => other.write_str(cur, &mut v),
            }
            v.truncate(len);
        }
        KeyType::Binary(len) => {
            let b = smp.bytes(cur)?;
            for x in &b[..b.len().min(len)] {
                v.extend_from_slice(format!("{x:02x}").as_bytes());
            }
        }
    }
    Some(v.into_boxed_slice())
}

/// A shard's scratch space for rule evaluation (one thread = one shard).
pub struct Work {
    pub s: Scratch,
    pub val: Vec<u8>,
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work {
        s: Scratch::new(),
        val: Vec::with_capacity(1024),
    });
}

/// Runs `f` with this shard's scratch space (not re-entrant: rules never nest).
pub fn with_work<T>(f: impl FnOnce(&mut Work) -> T) -> T {
    WORK.with(|w| f(&mut w.borrow_mut()))
}
