//! Sample fetches (configuration manual 7.3.2 to 7.3.6): what a fetch is (`Fetch`)
//! and what it reads (`source`). Names, argument checks and output types are in
//! `fetch_build`, the evaluation against a [`Ctx`] in `fetch_eval`. Request fetches
//! read the head as rules rewrote it so far; `hdr`, `cookie` and `status`-like
//! fetches follow the rule's direction.

use std::net::IpAddr;

use super::stick::{ScFetch, ScWhich};
use super::vars::VarId;

/// Which head a header or cookie fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chan {
    Req,
    Res,
    /// `hdr()`, `cookie()`: the rule's direction.
    Auto,
}

impl Chan {
    pub(super) fn res(self) -> Option<bool> {
        match self {
            Chan::Req => Some(false),
            Chan::Res => Some(true),
            Chan::Auto => None,
        }
    }
}

/// How a header value is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HdrAs {
    Str,
    /// `hdr_ip`: an address (IPv4 with an optional port, or IPv6).
    Ip,
    /// `hdr_val`: an integer.
    Int,
}

/// TLS facts of the client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFetch {
    Fc,
    Sni,
    HasSni,
    Protocol,
    Cipher,
    Alpn,
    Resumed,
    /// `ssl_fc_err`, `ssl_c_err`, `ssl_c_ca_err`: 0 on a TLS connection (see
    /// `fetch_eval::tls`), nothing on a plain one.
    FcErr,
    CErr,
    CCaErr,
    CUsed,
    CVerify,
    CSDn,
    CIDn,
    CSerial,
    CDer,
}

#[derive(Debug, Clone)]
pub enum Fetch {
    // Constants and internal state.
    Bool(bool),
    Int(i64),
    Ip(IpAddr),
    Str(Box<[u8]>),
    Bin(Box<[u8]>),
    Var {
        id: VarId,
        /// For `proc` variables, looked up by name.
        name: Box<str>,
        default: Option<Box<[u8]>>,
    },
    Date {
        offset: i64,
        unit: u8,
    },
    Rand(u64),
    Pid,
    Thread,
    Stopping,
    Nbsrv(Option<usize>),
    BeConn(Option<usize>),
    SrvConn(usize, u32),
    SrvIsUp(usize, u32),
    Queue(Option<usize>),
    AvgQueue(Option<usize>),
    Connslots(Option<usize>),
    FeConn(Option<usize>),
    FeName,
    FeId,
    BeName,
    BeId,
    SrvName,
    SrvId,
    // Layer 4.
    Src,
    SrcPort,
    Dst,
    DstPort,
    Sc(ScFetch),
    // Layer 6 (tcp-request content).
    ReqLen,
    ReqPayload {
        offset: usize,
        len: usize,
    },
    ReqSslSni,
    ReqSslAlpn,
    ReqSslHelloType,
    ReqSslVer,
    ReqProtoHttp,
    RdpCookie(Box<[u8]>),
    RdpCookieCnt(Box<[u8]>),
    /// `wait_end`: true once the inspect delay is over.
    WaitEnd,
    // Layer 7.
    Method,
    Path,
    PathQ,
    Query,
    Url,
    Base,
    Base32,
    UrlParam {
        name: Box<[u8]>,
        delim: u8,
        int: bool,
    },
    UrlIp,
    UrlPort,
    Hdr {
        chan: Chan,
        name: Box<[u8]>,
        occ: Option<i64>,
        full: bool,
        r#as: HdrAs,
    },
    HdrCnt {
        chan: Chan,
        name: Box<[u8]>,
        full: bool,
    },
    HdrNames {
        chan: Chan,
        delim: Box<[u8]>,
    },
    Hdrs(Chan),
    Cook {
        chan: Chan,
        name: Box<[u8]>,
        int: bool,
    },
    CookCnt {
        chan: Chan,
        name: Box<[u8]>,
    },
    ReqVer,
    ResVer,
    Status,
    HttpFirstReq,
    CaptureReqHdr(usize),
    CaptureResHdr(usize),
    CaptureReqMethod,
    CaptureReqUri,
    CaptureReqVer,
    /// The requested host without its port (Host, or an absolute-form target): what
    /// the TOML `host` routes match. Not a haproxy.cfg keyword.
    HostName,
    Tls(TlsFetch),
    /// `http_auth(L)`: the request's Basic credentials are valid in userlist L.
    HttpAuth(std::sync::Arc<super::auth::Userlist>),
    /// `http_auth_group(L)`: the user whose credentials are valid in L (ACLs match
    /// its groups: their patterns become the groups' members at load).
    HttpAuthGroup(std::sync::Arc<super::auth::Userlist>),
    /// `unique-id`: the request's `unique-id-format` id.
    UniqueId,
    /// `uuid([4])`: a random (version 4) UUID.
    Uuid,
}

impl Fetch {
    /// What the fetch reads (to refuse it where that is not available).
    pub fn source(&self) -> super::parse::Source {
        use super::parse::Source as S;
        let chan = |c: &Chan| match c {
            Chan::Req => S::RequestHeaders,
            Chan::Res => S::ResponseHeaders,
            Chan::Auto => S::EitherHeaders,
        };
        match self {
            Fetch::Bool(_) | Fetch::Int(_) | Fetch::Ip(_) | Fetch::Str(_) | Fetch::Bin(_) => {
                S::Const
            }
            Fetch::Var { .. } | Fetch::Date { .. } | Fetch::Rand(_) | Fetch::Pid => S::Const,
            Fetch::Thread | Fetch::Stopping | Fetch::WaitEnd => S::Internal,
            Fetch::Nbsrv(_) | Fetch::BeConn(_) | Fetch::SrvConn(..) | Fetch::SrvIsUp(..) => {
                S::Internal
            }
            Fetch::Queue(_) | Fetch::AvgQueue(_) | Fetch::Connslots(_) | Fetch::FeConn(_) => {
                S::Internal
            }
            Fetch::FeName | Fetch::FeId => S::Frontend,
            Fetch::BeName | Fetch::BeId => S::Backend,
            Fetch::SrvName | Fetch::SrvId => S::Server,
            Fetch::Src | Fetch::SrcPort | Fetch::Dst | Fetch::DstPort => S::ClientAddr,
            Fetch::Sc(f) => match f.which {
                ScWhich::Src { .. } => S::ClientAddr,
                ScWhich::Tracked { .. } => S::Track,
            },
            Fetch::ReqLen
            | Fetch::ReqPayload { .. }
            | Fetch::ReqSslSni
            | Fetch::ReqSslAlpn
            | Fetch::ReqSslHelloType
            | Fetch::ReqSslVer
            | Fetch::RdpCookie(_)
            | Fetch::RdpCookieCnt(_) => S::RequestBuffer,
            Fetch::ReqProtoHttp
            | Fetch::Method
            | Fetch::HttpFirstReq
            | Fetch::CaptureReqHdr(_)
            | Fetch::CaptureReqMethod
            | Fetch::CaptureReqUri
            | Fetch::CaptureReqVer => S::Request,
            Fetch::Status | Fetch::CaptureResHdr(_) => S::Response,
            Fetch::Path
            | Fetch::PathQ
            | Fetch::Query
            | Fetch::Url
            | Fetch::Base
            | Fetch::Base32
            | Fetch::UrlParam { .. }
            | Fetch::UrlIp
            | Fetch::UrlPort
            | Fetch::ReqVer
            | Fetch::HostName
            | Fetch::HttpAuth(_)
            | Fetch::HttpAuthGroup(_) => S::RequestHeaders,
            Fetch::UniqueId => S::Request,
            Fetch::Uuid => S::Const,
            Fetch::ResVer => S::ResponseHeaders,
            Fetch::Hdr { chan: c, .. }
            | Fetch::HdrCnt { chan: c, .. }
            | Fetch::HdrNames { chan: c, .. }
            | Fetch::Hdrs(c)
            | Fetch::Cook { chan: c, .. }
            | Fetch::CookCnt { chan: c, .. } => chan(c),
            Fetch::Tls(_) => S::ClientConn,
        }
    }

    /// Reads the bytes a `tcp-request content` rule buffers (or waits for them).
    pub fn is_payload(&self) -> bool {
        matches!(
            self,
            Fetch::ReqLen
                | Fetch::ReqPayload { .. }
                | Fetch::ReqSslSni
                | Fetch::ReqSslAlpn
                | Fetch::ReqSslHelloType
                | Fetch::ReqSslVer
                | Fetch::ReqProtoHttp
                | Fetch::RdpCookie(_)
                | Fetch::RdpCookieCnt(_)
                | Fetch::WaitEnd
        )
    }
}

/// IPv4-mapped IPv6 clients are IPv4 clients (as HAProxy reports them).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
