//! Rule actions, as the config describes them: `http-request`, `http-response` and
//! `http-after-response` actions (`HttpAction`), `tcp-request` / `tcp-response`
//! actions (`TcpAction`), and the local replies some of them send (`Reply`,
//! `Redirect`), built the way HAProxy 2.6 builds them (its error pages, reason
//! phrases and header sets).

use std::sync::Arc;

use super::acl::Condition;
use super::logformat::LogFormat;
use super::parse::Expr;
use super::pattern::Method;
use super::vars::VarId;
use super::Ctx;

/// A variable an action writes: by slot, or by name for `proc` variables.
#[derive(Debug, Clone)]
pub enum VarTarget {
    Slot(VarId),
    Proc(Box<str>),
}

/// `http-request use-service` and `stats enable`: what ringlb answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// HTML stats page (`;csv` in the URI gives `show stat`).
    Stats {
        /// `Authorization` header values accepted (`Basic base64(user:pass)`); empty = open.
        auth: Vec<String>,
        realm: String,
        /// Seconds between page refreshes (`stats refresh`).
        refresh: Option<u64>,
        /// `stats admin if COND`: requests meeting it may change servers' states
        /// from the page.
        admin: Option<AdminCond>,
        /// `stats scope`: the only proxies shown (by name); empty = all of them.
        scope: Vec<String>,
    },
    Prometheus,
}

/// The condition of `stats admin` (compared by identity: it comes from one config).
#[derive(Debug, Clone)]
pub struct AdminCond(pub std::sync::Arc<Condition>);

impl PartialEq for AdminCond {
    fn eq(&self, o: &AdminCond) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for AdminCond {}

/// `http-request ACTION [if|unless COND]` (and the response rule kinds).
#[derive(Debug, Clone)]
pub struct HttpRule {
    pub cond: Condition,
    pub action: HttpAction,
    /// The config line, for messages.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum HttpAction {
    SetHeader(Box<str>, LogFormat),
    AddHeader(Box<str>, LogFormat),
    /// `del-header NAME [-m str|beg|end|sub|reg]`.
    DelHeader(Box<str>, Method, Option<regex::bytes::Regex>),
    /// `replace-header` (whole values) / `replace-value` (each comma-separated one).
    ReplaceHeader {
        name: Box<str>,
        re: regex::bytes::Regex,
        fmt: LogFormat,
        each_value: bool,
    },
    SetPath(LogFormat),
    SetPathQ(LogFormat),
    SetUri(LogFormat),
    SetQuery(LogFormat),
    SetMethod(LogFormat),
    /// `replace-path` (`pathq`: `replace-pathq`), `replace-uri`.
    ReplacePath {
        re: regex::bytes::Regex,
        fmt: LogFormat,
        with_query: bool,
    },
    ReplaceUri(regex::bytes::Regex, LogFormat),
    SetVar(VarTarget, Expr),
    SetVarFmt(VarTarget, LogFormat),
    UnsetVar(VarTarget),
    /// `set-src EXPR`: the client's address for the rest of the request (`src`, the
    /// log, X-Forwarded-For, `balance source`), its port kept; a value that is no
    /// address changes nothing.
    SetSrc(Expr),
    Allow,
    Deny(Arc<Reply>),
    Tarpit(Arc<Reply>),
    Return(Arc<Reply>),
    Redirect(Arc<Redirect>),
    /// `capture EXPR len N` (a new slot) or `capture EXPR id N`.
    Capture {
        expr: Expr,
        slot: usize,
        len: usize,
    },
    TrackSc {
        counter: u8,
        key: Expr,
        table: u32,
    },
    /// `sc-inc-gpc0(N)` / `sc-inc-gpc1(N)`.
    ScIncGpc {
        counter: u8,
        gpc: u8,
    },
    ScSetGpt0 {
        counter: u8,
        expr: Expr,
    },
    SetLogLevel(u8),
    SetStatus(u16, Option<Box<str>>),
    /// Answer from the admin side: the stats page or Prometheus metrics.
    Service(Service),
    /// The request-rate limit of the frontend (N: its index), with its answer.
    RateLimit {
        limiter: usize,
        status: u16,
        bytes: Vec<u8>,
    },
    /// `http-request auth [realm R]`: 401 (the proxy's page for it) with
    /// `WWW-Authenticate: Basic realm="R"`.
    Auth {
        realm: Box<str>,
        /// HAProxy's 401 page, used when the proxy has no custom one.
        page: Arc<Reply>,
    },
    /// `reject` (close) or `silent-drop` (reset): no answer.
    Reject {
        silent: bool,
    },
    /// Accepted and meaningless here (`disable-l7-retry`, `set-nice`, ...).
    Nothing,
}

/// `tcp-request connection|session|content` and `tcp-response content` rules.
#[derive(Debug, Clone)]
pub struct TcpRule {
    pub cond: Condition,
    pub action: TcpAction,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum TcpAction {
    Accept,
    Reject,
    SilentDrop,
    TrackSc {
        counter: u8,
        key: Expr,
        table: u32,
    },
    ScIncGpc {
        counter: u8,
        gpc: u8,
    },
    ScSetGpt0 {
        counter: u8,
        expr: Expr,
    },
    SetVar(VarTarget, Expr),
    SetVarFmt(VarTarget, LogFormat),
    UnsetVar(VarTarget),
    /// `capture EXPR len N` (content rules, logged as a request capture).
    Capture {
        expr: Expr,
        slot: usize,
        len: usize,
    },
    SetLogLevel(u8),
    /// `expect-proxy layer4`: a PROXY header follows.
    ExpectProxy,
    Nothing,
}

/// What a local reply carries (`deny`, `return`, `tarpit`, errors).
#[derive(Debug, Clone)]
pub enum Body {
    /// No body (`content-length: 0`, or none for 204/304).
    Empty,
    Bytes(Box<[u8]>),
    Lf(LogFormat),
}

/// A local reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<Box<str>>,
    pub body: Body,
    pub headers: Vec<(Box<str>, LogFormat)>,
    /// HAProxy's error page (its own header set: content-length, cache-control,
    /// content-type).
    pub error_page: bool,
    /// The whole answer, when nothing in it depends on the request.
    pub canned: Option<Box<[u8]>>,
}

/// The error pages HAProxy ships (the status codes `deny_status` may name).
pub const ERROR_STATUSES: &[u16] = &[
    200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 421, 422, 425, 429, 500, 501, 502, 503, 504,
];

/// HAProxy's built-in error page body for a status.
pub fn error_body(status: u16) -> Option<&'static str> {
    Some(match status {
        200 => "<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n",
        400 => "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n",
        401 => "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n",
        403 => "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n",
        404 => "<html><body><h1>404 Not Found</h1>\nThe resource could not be found.\n</body></html>\n",
        405 => "<html><body><h1>405 Method Not Allowed</h1>\nA request was made of a resource using a request method not supported by that resource\n</body></html>\n",
        407 => "<html><body><h1>407 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n",
        408 => "<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n",
        410 => "<html><body><h1>410 Gone</h1>\nThe resource is no longer available and will not be available again.\n</body></html>\n",
        413 => "<html><body><h1>413 Payload Too Large</h1>\nThe request entity exceeds the maximum allowed.\n</body></html>\n",
        421 => "<html><body><h1>421 Misdirected Request</h1>\nRequest sent to a non-authoritative server.\n</body></html>\n",
        422 => "<html><body><h1>422 Unprocessable Content</h1>\nThe server cannot process the contained instructions.\n</body></html>\n",
        425 => "<html><body><h1>425 Too Early</h1>\nYour browser sent early data.\n</body></html>\n",
        429 => "<html><body><h1>429 Too Many Requests</h1>\nYou have sent too many requests in a given amount of time.\n</body></html>\n",
        500 => "<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n</body></html>\n",
        501 => "<html><body><h1>501 Not Implemented</h1>\n.The server does not support the functionality required to fulfill the request.\n</body></html>\n",
        502 => "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n",
        503 => "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
        504 => "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n",
        _ => return None,
    })
}

/// The status line text of an error page (it differs from `reason()` for some).
fn error_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        413 => "Payload Too Large",
        502 => "Bad Gateway",
        504 => "Gateway Time-out",
        s => reason(s),
    }
}

/// HAProxy's `http_get_reason()`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        210 => "Content Different",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        310 => "Too many Redirects",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested range unsatisfiable",
        417 => "Expectation failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Method failure",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        449 => "Retry With",
        450 => "Blocked by Windows Parental Controls",
        451 => "Unavailable For Legal Reasons",
        456 => "Unrecoverable Error",
        499 => "client has closed connection",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway or Proxy Error",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version not supported",
        506 => "Variant also negotiate",
        507 => "Insufficient storage",
        508 => "Loop detected",
        509 => "Bandwidth Limit Exceeded",
        510 => "Not extended",
        511 => "Network authentication required",
        520 => "Web server is returning an unknown error",
        s if (100..200).contains(&s) => "Informational",
        s if (200..300).contains(&s) => "Success",
        s if (300..400).contains(&s) => "Redirection",
        s if (400..500).contains(&s) => "Client Error",
        s if (500..600).contains(&s) => "Server Error",
        _ => "Other",
    }
}

impl Reply {
    /// HAProxy's error page for `status` (`deny`, `deny_status N`, errors).
    pub fn error_page(status: u16) -> Reply {
        let mut r = Reply {
            status,
            content_type: Some("text/html".into()),
            body: Body::Bytes(error_body(status).unwrap_or("").as_bytes().into()),
            headers: Vec::new(),
            error_page: true,
            canned: None,
        };
        r.prebuild();
        r
    }

    /// Builds `canned` when nothing depends on the request.
    pub fn prebuild(&mut self) {
        let dynamic = matches!(self.body, Body::Lf(ref f) if !f.is_constant())
            || self.headers.iter().any(|(_, f)| !f.is_constant());
        if dynamic {
            self.canned = None;
            return;
        }
        let txn = super::Txn::default();
        let addr: std::net::SocketAddr = ([0, 0, 0, 0], 0).into();
        let ctx = Ctx::new(addr, addr, &txn);
        let mut s = super::Scratch::default();
        let mut out = Vec::new();
        self.write(&ctx, &mut s, &mut out);
        self.canned = Some(out.into());
    }

    /// Writes the whole answer (head and body) into `out`, without the connection
    /// header (the caller decides whether the connection stays open).
    pub fn write(&self, ctx: &Ctx<'_>, s: &mut super::Scratch, out: &mut Vec<u8>) {
        if let Some(c) = &self.canned {
            out.extend_from_slice(c);
            return;
        }
        let head_start = out.len();
        out.extend_from_slice(b"HTTP/1.1 ");
        super::sample::write_int(out, i64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(
            if self.error_page {
                error_reason(self.status)
            } else {
                reason(self.status)
            }
            .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        for (name, fmt) in &self.headers {
            let start = out.len();
            out.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            out.extend_from_slice(b": ");
            let value = out.len();
            fmt.eval(ctx, None, s, out);
            // HAProxy adds no header whose value came out empty.
            if out.len() == value {
                out.truncate(start);
                continue;
            }
            out.extend_from_slice(b"\r\n");
        }
        // The body is written after a placeholder head, then the length is known.
        let mut body = std::mem::take(&mut s.tmp);
        body.clear();
        match &self.body {
            Body::Empty => {}
            Body::Bytes(b) => body.extend_from_slice(b),
            Body::Lf(f) => f.eval(ctx, None, s, &mut body),
        }
        let no_body = self.status == 204 || self.status == 304 || (100..200).contains(&self.status);
        if !no_body {
            out.extend_from_slice(b"content-length: ");
            super::sample::write_int(out, body.len() as i64);
            out.extend_from_slice(b"\r\n");
        }
        if self.error_page {
            out.extend_from_slice(b"cache-control: no-cache\r\n");
        }
        if let (Some(ct), false) = (&self.content_type, body.is_empty() && !self.error_page) {
            out.extend_from_slice(b"content-type: ");
            out.extend_from_slice(ct.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let _ = head_start;
        if !no_body {
            out.extend_from_slice(&body);
        }
        s.tmp = body;
    }
}

/// `redirect location|prefix|scheme TARGET [code N] [drop-query] [append-slash]
/// [set-cookie NAME[=VALUE]] [clear-cookie NAME]`.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub kind: RedirectKind,
    pub target: LogFormat,
    pub code: u16,
    pub drop_query: bool,
    pub append_slash: bool,
    /// `set-cookie` / `clear-cookie`: the Set-Cookie value.
    pub cookie: Option<Box<str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    Location,
    Prefix,
    Scheme,
}

impl Redirect {
    /// The answer, with the location built from the request (`ctx.req`).
    pub fn write(&self, ctx: &Ctx<'_>, s: &mut super::Scratch, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        super::sample::write_int(out, i64::from(self.code));
        out.push(b' ');
        out.extend_from_slice(
            match self.code {
                301 => "Moved Permanently",
                302 => "Found",
                303 => "See Other",
                307 => "Temporary Redirect",
                308 => "Permanent Redirect",
                c => reason(c),
            }
            .as_bytes(),
        );
        out.extend_from_slice(b"\r\ncontent-length: 0\r\nlocation: ");
        let req = ctx.req;
        let target = req.map(|h| h.target()).unwrap_or(b"/");
        let path_q = req.map(|h| h.path_and_query()).unwrap_or(b"/");
        let path_q: &[u8] = if path_q.is_empty() { target } else { path_q };
        let path_end = path_q
            .iter()
            .position(|&c| c == b'?')
            .unwrap_or(path_q.len());
        match self.kind {
            RedirectKind::Location => self.target.eval(ctx, None, s, out),
            RedirectKind::Prefix => {
                let start = out.len();
                self.target.eval(ctx, None, s, out);
                // A prefix of "/" adds nothing before the path.
                if out.len() - start == 1 && out[start] == b'/' {
                    out.truncate(start);
                }
                out.extend_from_slice(if self.drop_query {
                    &path_q[..path_end]
                } else {
                    path_q
                });
            }
            RedirectKind::Scheme => {
                self.target.eval(ctx, None, s, out);
                out.extend_from_slice(b"://");
                if let Some(h) = req.and_then(|h| h.value(b"host", 1, true)) {
                    out.extend_from_slice(h);
                }
                out.extend_from_slice(if self.drop_query {
                    &path_q[..path_end]
                } else {
                    path_q
                });
            }
        }
        if self.append_slash && !out.ends_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(b"\r\n");
        if matches!(self.code, 302 | 303 | 307) {
            out.extend_from_slice(b"cache-control: no-cache\r\n");
        }
        if let Some(c) = &self.cookie {
            out.extend_from_slice(b"set-cookie: ");
            out.extend_from_slice(c.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Syslog severities (`set-log-level`); `silent` is 8.
pub fn log_level(name: &str) -> Option<u8> {
    Some(match name {
        "emerg" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" => 3,
        "warning" => 4,
        "notice" => 5,
        "info" => 6,
        "debug" => 7,
        "silent" => 8,
        _ => return None,
    })
}
