//! The model of a frontend: its binds and their socket options, its routes, header
//! captures, and what it adds to connections and requests (TCP keep-alive,
//! X-Forwarded-For).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Which bind of which frontend a listening socket serves (indices into `Config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BindRef {
    pub frontend: usize,
    pub bind: usize,
}

/// One listening address of a frontend, with its options.
#[derive(Debug, Clone)]
pub struct Bind {
    pub addr: SocketAddr,
    /// Clients first send a PROXY protocol header (v1 or v2) carrying the real client
    /// (on a TLS bind, before the ClientHello).
    pub accept_proxy: bool,
    /// TLS termination (`ssl`): certificates and contexts, loaded and checked.
    pub tls: Option<std::sync::Arc<crate::tls::BindTls>>,
    /// Socket options of the listening sockets.
    pub sock: ListenOpts,
    /// `proto h2`: clients speak HTTP/2 from their first byte (prior knowledge): the
    /// connection goes to `h2::serve`; on a TLS bind, after the handshake, whatever
    /// ALPN settled (HAProxy forces its HTTP/2 multiplexer the same way).
    pub h2: bool,
}

/// A bind's socket options (haproxy.cfg bind keywords), set on every listening socket
/// of the address before it listens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenOpts {
    /// `defer-accept`: a connection is accepted once it has data (TCP_DEFER_ACCEPT).
    pub defer_accept: bool,
    /// `tfo`: TCP Fast Open (data in the SYN is accepted).
    pub tfo: bool,
    /// `transparent`: may bind a non-local address (IP_TRANSPARENT, for TPROXY).
    pub transparent: bool,
    /// `v4v6`: an IPv6 address also accepts IPv4 clients (by default it does not).
    pub v4v6: bool,
    /// `mss N`: the TCP maximum segment size announced to clients.
    pub mss: Option<u32>,
}

impl Bind {
    pub fn plain(addr: SocketAddr) -> Bind {
        Bind {
            addr,
            accept_proxy: false,
            h2: false,
            tls: None,
            sock: ListenOpts::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Frontend {
    pub name: String,
    pub binds: Vec<Bind>,
    pub mode: Mode,
    pub routes: Vec<Route>,
    /// The index of `routes` by exact host (and of backend names, for routes that
    /// name theirs per request): `index_routes` builds it once the backends are known.
    pub route_index: Option<Arc<crate::route_index::RouteIndex>>,
    /// Index into `Config::backends`.
    pub default_backend: Option<usize>,
    /// A `listen` section's own backend: its rules run once, as the frontend's.
    pub listen_backend: Option<usize>,
    /// Add the client's address to requests (`option forwardfor`).
    pub forward_for: Option<ForwardFor>,
    /// Close the server connection after each response (`option http-server-close`).
    pub server_close: bool,
    /// Close the client connection after each response (`option httpclose`).
    pub client_close: bool,
    /// Forward CONNECT requests; a 2xx answer turns the connection into a tunnel.
    pub allow_connect: bool,
    /// Access log format of this frontend's traffic (`None` = not logged).
    pub log: Option<LogFormat>,
    /// Do not log connections that carried no data (`option dontlognull`).
    pub dont_log_null: bool,
    /// Log only errors (`option dontlog-normal`), and errors at `err` rather than
    /// `info` (`option log-separate-errors`).
    pub dont_log_normal: bool,
    pub log_errors_as_err: bool,
    /// Client-side timeouts (`client`, `http_request`, `http_keep_alive`) apply here.
    pub timeouts: Timeouts,
    /// The access log line of this frontend (`log` chooses it; `None`: not logged).
    pub log_line: Option<Arc<crate::rules::LogFormat>>,
    /// `http-request` rules, in order.
    pub http_request: Vec<HttpRule>,
    /// `http-response` rules, in order (after the backend's).
    pub http_response: Vec<HttpRule>,
    /// `http-after-response` rules (after the backend's), also on local replies.
    pub http_after_response: Vec<HttpRule>,
    /// `tcp-request connection` rules: at accept.
    pub tcp_connection: Vec<TcpRule>,
    /// `tcp-request session` rules: after the handshake (PROXY header, TLS).
    pub tcp_session: Vec<TcpRule>,
    /// `tcp-request content` rules, with `tcp-request inspect-delay`.
    pub tcp_content: Vec<TcpRule>,
    pub inspect_delay: Option<Duration>,
    /// `capture request|response header` and `declare capture` slots.
    pub captures: Captures,
    /// Most connections to this frontend at once, all shards together.
    pub maxconn: Option<u32>,
    /// TCP keep-alive probes on client sockets (`option clitcpka`).
    pub tcpka: Option<TcpKeepalive>,
    /// Header names re-cased in the response heads sent to clients (`option
    /// h1-case-adjust-bogus-client` with the global `h1-case-adjust` map).
    pub h1_case: Option<CaseAdjust>,
    /// `disabled`: the frontend is not started (its addresses are not bound).
    pub disabled: bool,
    /// `option http-buffer-request` (TOML `buffer_request`): a request's body is in
    /// (whole, or a full buffer) before the rules run and a server is connected.
    pub buffer_request: bool,
    /// `option splice-auto|splice-request|splice-response` (see `config::splice`).
    pub splice: super::SpliceOpts,
    /// Request-rate limits (`HttpAction::RateLimit` rules refer to them by index).
    pub rate_limits: Vec<RateLimit>,
    /// No rule touches this frontend's requests: it has no rule of any kind
    /// (`tcp-request`, `http-request|response|after-response`, `use_backend`,
    /// captures, `monitor-uri`), nor has its default backend (nor cookie
    /// persistence), and its log line reads no sample. Set once the config is
    /// assembled (`validate::mark_rule_free`; `false` until then): the request path
    /// then skips the rule machinery altogether.
    pub rule_free: bool,
    /// `monitor-uri` and its `monitor fail` conditions.
    pub monitor: Option<Monitor>,
    /// HTTP compression (`compression ...`; the backend's algorithms and types first).
    pub compression: Option<Arc<super::compression::Compression>>,
    /// `unique-id-format`: the request's id (`unique-id`, `%ID`).
    pub unique_id_format: Option<Arc<crate::rules::LogFormat>>,
    /// `unique-id-header NAME`: the id is sent to the server in this header.
    pub unique_id_header: Option<Box<str>>,
    /// `errorfile`, `http-error`, ...: custom error responses (after the backend's).
    pub error_pages: super::error_pages::ErrorPages,
}

/// Header capture slots, in declaration order (a slot's index is its `id`).
#[derive(Debug, Clone, Default)]
pub struct Captures {
    pub request: Vec<CaptureSlot>,
    pub response: Vec<CaptureSlot>,
}

#[derive(Debug, Clone)]
pub struct CaptureSlot {
    /// `capture request header NAME`: the header (lower case) captured at parse time;
    /// `None` for `declare capture` slots that rules fill.
    pub header: Option<Box<str>>,
    pub len: usize,
}

/// `h1-case-adjust FROM TO` pairs: a header name equal to FROM but for case is written
/// TO (the same letters), on heads sent over HTTP/1.
pub type CaseAdjust = Arc<[CasePair]>;

/// One `h1-case-adjust` pair: FROM (lower-cased), TO.
pub type CasePair = (Box<[u8]>, Box<[u8]>);

/// `option clitcpka` / `srvtcpka` (or `tcpka`, both): TCP keep-alive probes on the
/// client or server sockets, so that NAT and firewalls keep long idle connections.
/// `clitcpka-idle|intvl|cnt` (`srvtcpka-*`) set them; unset, the system's values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub idle: Option<Duration>,
    pub intvl: Option<Duration>,
    pub cnt: Option<u32>,
}

impl TcpKeepalive {
    /// Turns keep-alive probes on `sock` on with these values (`Some`), or off. Set on
    /// a listener, the sockets it accepts inherit them.
    pub fn apply(ka: Option<&TcpKeepalive>, sock: socket2::SockRef<'_>) -> std::io::Result<()> {
        let Some(ka) = ka else {
            return sock.set_keepalive(false);
        };
        let mut k = socket2::TcpKeepalive::new();
        if let Some(t) = ka.idle {
            k = k.with_time(t);
        }
        if let Some(t) = ka.intvl {
            k = k.with_interval(t);
        }
        if let Some(n) = ka.cnt {
            k = k.with_retries(n);
        }
        sock.set_tcp_keepalive(&k)?;
        sock.set_keepalive(true)
    }
}

/// `option forwardfor [except NET] [header NAME] [if-none]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardFor {
    /// The header to add (`X-Forwarded-For` by default).
    pub header: String,
    /// Clients in this network get no header.
    pub except: Option<(std::net::IpAddr, u8)>,
    /// Only when the request has no such header yet.
    pub if_none: bool,
}

impl Default for ForwardFor {
    fn default() -> Self {
        ForwardFor {
            header: "X-Forwarded-For".into(),
            except: None,
            if_none: false,
        }
    }
}

impl ForwardFor {
    /// The header to add for a request from `client`, if any.
    pub fn applies_to(&self, client: std::net::IpAddr) -> bool {
        self.except.is_none_or(|n| !acl::net_contains(n, client))
    }
}

/// `use_backend BACKEND if CONDITION`: the first route whose condition holds wins.
#[derive(Debug, Clone)]
pub struct Route {
    pub cond: Condition,
    pub target: RouteTarget,
}

#[derive(Debug, Clone)]
pub enum RouteTarget {
    Backend(usize),
    /// `use_backend %[...]`: the name is built per request; a name that is no backend
    /// sends the request to the default backend (no later rule is tried).
    Dynamic(Arc<crate::rules::LogFormat>),
}
