//! Fetches evaluated against a [`Ctx`] (`Fetch::eval`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::fetch::{canonical, Chan, Fetch, HdrAs, TlsFetch};
use super::head::{cookies, params, set_cookie, Head};
use super::payload::{self, Look};
use super::sample::{Data, Scratch, Smp};
use super::stick;
use super::vars::Scope;
use super::Ctx;

impl Fetch {
    /// One value (`nth`: the n-th occurrence of a multi-valued fetch, for ACLs).
    pub fn eval<'a>(
        &'a self,
        ctx: &Ctx<'a>,
        s: &mut Scratch,
        nth: Option<usize>,
    ) -> Option<Smp<'a>> {
        let single = |v: Option<Smp<'a>>| match nth {
            None | Some(0) => v,
            Some(_) => None,
        };
        let str_ref = |b: &'a [u8]| Smp::Str(Data::Ref(b));
        match self {
            Fetch::Hdr {
                chan,
                name,
                occ,
                full,
                r#as,
            } => {
                let head = ctx.head(chan.res())?;
                let v = match (occ, nth) {
                    (Some(o), None | Some(0)) => head_value(head, name, *o, *full),
                    (Some(_), Some(_)) => None,
                    (None, None) => head_value(head, name, -1, *full),
                    (None, Some(n)) => head_values(head, name, *full).nth(n),
                }?;
                match r#as {
                    HdrAs::Str => Some(str_ref(v)),
                    HdrAs::Int => Some(Smp::Int(super::sample::read_int64(v))),
                    HdrAs::Ip => hdr_ip(v).map(Smp::Ip),
                }
            }
            Fetch::Cook { chan, name, int } => {
                let head = ctx.head(chan.res())?;
                let is_res = match chan {
                    Chan::Res => true,
                    Chan::Req => false,
                    Chan::Auto => ctx.dir == super::Dir::Res,
                };
                let mut all = cookie_values(head, name, is_res);
                let v = match nth {
                    Some(n) => all.nth(n),
                    // Without a name, the first cookie; with one, the last occurrence.
                    None if name.is_empty() => all.next(),
                    None => all.last(),
                }?;
                Some(if *int {
                    Smp::Int(super::sample::read_int64(v))
                } else {
                    str_ref(v)
                })
            }
            Fetch::UrlParam { name, delim, int } => {
                let t = ctx.req?.target();
                let start = t.iter().position(|&c| c == b'?' || c == *delim)?;
                let mut all = params(&t[start + 1..], *delim)
                    .filter(|(k, _)| name.is_empty() || *k == &name[..])
                    .map(|(_, v)| v);
                let v = match nth {
                    Some(n) => all.nth(n),
                    None => all.next(),
                }?;
                Some(if *int {
                    Smp::Int(super::sample::read_int64(v))
                } else {
                    str_ref(v)
                })
            }
            other => single(other.eval_one(ctx, s)),
        }
    }

    fn eval_one<'a>(&'a self, ctx: &Ctx<'a>, s: &mut Scratch) -> Option<Smp<'a>> {
        let str_ref = |b: &'a [u8]| Smp::Str(Data::Ref(b));
        let world = || ctx.world;
        let be_or = |b: &Option<usize>| b.or(ctx.backend);
        Some(match self {
            Fetch::Bool(b) => Smp::Bool(*b),
            Fetch::Int(i) => Smp::Int(*i),
            Fetch::Ip(a) => Smp::Ip(*a),
            Fetch::Str(b) => str_ref(b),
            Fetch::Bin(b) => Smp::Bin(Data::Ref(b)),
            Fetch::Var { id, name, default } => {
                let found = if id.scope == Scope::Proc {
                    super::vars::proc_get(name, &mut s.cur)
                } else {
                    ctx.txn.vars.get(*id)
                };
                match (found, default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => str_ref(d),
                    (None, None) => return None,
                }
            }
            Fetch::Date { offset, unit } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                Smp::Int(match unit {
                    0 => now.as_secs() as i64 + offset,
                    1 => now.as_millis() as i64 + offset,
                    2 => now.as_micros() as i64 + offset,
                    _ => now.subsec_micros() as i64,
                })
            }
            Fetch::Rand(range) => {
                let r = u64::from(fastrand::u32(..));
                Smp::Int(if *range > 0 {
                    ((r * range) >> 32) as i64
                } else {
                    r as i64
                })
            }
            Fetch::Pid => Smp::Int(i64::from(std::process::id())),
            Fetch::Thread => Smp::Int(world().and_then(|w| w.thread()).unwrap_or(0) as i64),
            Fetch::Stopping => Smp::Bool(world().is_some_and(|w| w.stopping())),
            Fetch::Nbsrv(b) => {
                let (active, backup) = world()?.usable_counts(be_or(b)?)?;
                Smp::Int(if active > 0 { active } else { backup } as i64)
            }
            Fetch::BeConn(b) => Smp::Int(world()?.be_conn(be_or(b)?)?),
            Fetch::SrvConn(b, sv) => Smp::Int(world()?.srv_conn(*b, *sv as usize)?),
            Fetch::SrvIsUp(b, sv) => Smp::Bool(world()?.srv_is_up(*b, *sv as usize)?),
            Fetch::Queue(b) => Smp::Int(world()?.queue(be_or(b)?)?),
            Fetch::AvgQueue(b) => {
                let w = world()?;
                let be = be_or(b)?;
                let (active, backup) = w.usable_counts(be)?;
                let n = if active > 0 { active } else { backup };
                let q = w.queue(be)?;
                Smp::Int(if n == 0 { q } else { q / n as i64 })
            }
            Fetch::Connslots(b) => Smp::Int(world()?.connslots(be_or(b)?)?),
            Fetch::FeConn(f) => Smp::Int(world()?.fe_conn(f.unwrap_or(ctx.frontend))?),
            Fetch::FeName => str_ref(world()?.frontend_name(ctx.frontend)?.as_bytes()),
            Fetch::FeId => Smp::Int(world()?.proxy_id(Some(ctx.frontend), None)?),
            Fetch::BeName => str_ref(world()?.backend_name(ctx.backend?)?.as_bytes()),
            Fetch::BeId => Smp::Int(world()?.proxy_id(None, ctx.backend)?),
            Fetch::SrvName => str_ref(
                world()?
                    .server_name(ctx.backend?, ctx.server? as usize)?
                    .as_bytes(),
            ),
            Fetch::SrvId => Smp::Int(world()?.server_id(ctx.backend?, ctx.server? as usize)?),
            Fetch::Src => Smp::Ip(canonical(ctx.src.ip())),
            Fetch::SrcPort => Smp::Int(i64::from(ctx.src.port())),
            Fetch::Dst => Smp::Ip(canonical(ctx.dst.ip())),
            Fetch::DstPort => Smp::Int(i64::from(ctx.dst.port())),
            Fetch::Sc(f) => return stick::eval(f, ctx),
            Fetch::ReqLen => Smp::Int(ctx.payload.map_or(0, |p| p.len()) as i64),
            Fetch::ReqPayload { offset, len } => {
                let p = ctx.payload?;
                let end = if *len == 0 { p.len() } else { offset + len };
                match p.get(*offset..end) {
                    Some(b) if *offset <= p.len() => Smp::Bin(Data::Ref(b)),
                    _ => return miss(ctx),
                }
            }
            Fetch::ReqSslSni => return look(ctx, payload::ssl_sni(ctx.payload?).map(str_ref)),
            Fetch::ReqSslAlpn => return look(ctx, payload::ssl_alpn(ctx.payload?).map(str_ref)),
            Fetch::ReqSslHelloType => {
                return look(ctx, payload::ssl_hello_type(ctx.payload?).map(Smp::Int))
            }
            Fetch::ReqSslVer => return look(ctx, payload::ssl_ver(ctx.payload?).map(Smp::Int)),
            Fetch::ReqProtoHttp => match ctx.req {
                Some(_) => Smp::Bool(true),
                None => return proto_http(ctx),
            },
            Fetch::RdpCookie(name) => {
                return look(ctx, payload::rdp_cookie(ctx.payload?, name).map(str_ref))
            }
            Fetch::RdpCookieCnt(name) => {
                return match payload::rdp_cookie(ctx.payload?, name) {
                    Look::Found(_) => Some(Smp::Int(1)),
                    Look::NotFound => Some(Smp::Int(0)),
                    Look::TooShort => miss(ctx).or(Some(Smp::Int(0))),
                }
            }
            Fetch::WaitEnd => {
                if ctx.payload_final {
                    Smp::Bool(true)
                } else {
                    return miss(ctx);
                }
            }
            Fetch::Method => str_ref(ctx.req?.method()),
            Fetch::Path => str_ref(ctx.req?.path()),
            Fetch::PathQ => str_ref(ctx.req?.path_and_query()),
            Fetch::Query => str_ref(ctx.req?.query()?),
            Fetch::Url => str_ref(ctx.req?.target()),
            Fetch::Base => {
                let r = ctx.req?;
                s.tmp.clear();
                if let Some(h) = head_value(r, b"host", 1, false) {
                    s.tmp.extend_from_slice(h);
                }
                s.tmp.extend_from_slice(r.path());
                s.swap();
                Smp::Str(Data::Buf)
            }
            Fetch::Base32 => {
                let r = ctx.req?;
                let mut h: u32 = 0;
                let mut feed = |b: &[u8]| {
                    for &c in b {
                        h = u32::from(c)
                            .wrapping_add(h << 6)
                            .wrapping_add(h << 16)
                            .wrapping_sub(h);
                    }
                };
                if let Some(host) = head_value(r, b"host", 1, false) {
                    feed(host);
                }
                let p = r.path();
                if p.starts_with(b"/") {
                    feed(p);
                }
                Smp::Int(i64::from(super::strfn::full_hash(h)))
            }
            Fetch::UrlIp | Fetch::UrlPort => {
                let t = ctx.req?.target();
                let rest = t
                    .strip_prefix(b"http://")
                    .or_else(|| t.strip_prefix(b"HTTP://"))?;
                let auth = &rest[..rest.iter().position(|&c| c == b'/').unwrap_or(rest.len())];
                let (host, port) = match auth.iter().rposition(|&c| c == b':') {
                    Some(i) => (&auth[..i], &auth[i + 1..]),
                    None => (auth, &b"80"[..]),
                };
                if matches!(self, Fetch::UrlPort) {
                    Smp::Int(super::sample::read_int64(port))
                } else {
                    Smp::Ip(IpAddr::V4(std::str::from_utf8(host).ok()?.parse().ok()?))
                }
            }
            Fetch::HdrCnt { chan, name, full } => {
                let head = ctx.head(chan.res())?;
                Smp::Int(if name.is_empty() {
                    head.fields().count()
                } else {
                    head.values(name, *full).count()
                } as i64)
            }
            Fetch::HdrNames { chan, delim } => {
                let head = ctx.head(chan.res())?;
                s.tmp.clear();
                // Names as HAProxy holds them: in lower case.
                for (i, f) in head.fields().enumerate() {
                    if i > 0 {
                        s.tmp.extend_from_slice(delim);
                    }
                    let start = s.tmp.len();
                    s.tmp.extend_from_slice(f.name);
                    s.tmp[start..].make_ascii_lowercase();
                }
                s.swap();
                Smp::Str(Data::Buf)
            }
            Fetch::Uuid => {
                // HAProxy's `ha_generate_uuid`: 122 random bits, version 4, RFC 4122
                // variant, in lower-case hex.
                let (a, b) = (fastrand::u64(..), fastrand::u64(..));
                let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
                let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
                s.tmp.clear();
                let hex = |s: &mut Vec<u8>, v: u64, digits: u32| {
                    for i in (0..digits).rev() {
                        s.push(b"0123456789abcdef"[((v >> (i * 4)) & 0xf) as usize]);
                    }
                };
                hex(&mut s.tmp, a >> 32, 8);
                s.tmp.push(b'-');
                hex(&mut s.tmp, (a >> 16) & 0xffff, 4);
                s.tmp.push(b'-');
                hex(&mut s.tmp, a & 0xffff, 4);
                s.tmp.push(b'-');
                hex(&mut s.tmp, b >> 48, 4);
                s.tmp.push(b'-');
                hex(&mut s.tmp, b & 0xffff_ffff_ffff, 12);
                s.swap();
                Smp::Str(Data::Buf)
            }
            Fetch::UniqueId => {
                s.tmp.clear();
                if !super::unique_id::UniqueId::write(ctx, &mut s.tmp) {
                    return None;
                }
                s.swap();
                Smp::Str(Data::Buf)
            }
            Fetch::HttpAuth(ul) => {
                let head = ctx.head(Some(false))?;
                let v = head.named(b"authorization").next().map(|f| f.value);
                Smp::Bool(v.is_some_and(|v| ul.authenticate(v).is_some()))
            }
            Fetch::HttpAuthGroup(ul) => {
                let head = ctx.head(Some(false))?;
                let v = head.named(b"authorization").next()?.value;
                str_ref(ul.authenticate(v)?.name.as_bytes())
            }
            Fetch::Hdrs(chan) => {
                let head = ctx.head(chan.res())?;
                Smp::Bin(Data::Ref(&head.bytes[head.first_line_len()..]))
            }
            Fetch::CookCnt { chan, name } => {
                let head = ctx.head(chan.res())?;
                let is_res = matches!(chan, Chan::Res)
                    || (matches!(chan, Chan::Auto) && ctx.dir == super::Dir::Res);
                Smp::Int(cookie_values(head, name, is_res).count() as i64)
            }
            // An HTTP/2 stream's head was translated to HTTP/1.1: its version is 2.0.
            Fetch::ReqVer if ctx.txn.h2.is_some() && ctx.req.is_some() => str_ref(b"2.0"),
            Fetch::ReqVer => str_ref(version_digits(ctx.req?.version())),
            Fetch::ResVer => str_ref(version_digits(ctx.res?.version())),
            Fetch::Status => match ctx.txn.status {
                Some(st) if ctx.res.is_some() => Smp::Int(i64::from(st)),
                _ => Smp::Int(i64::from(ctx.res?.status()?)),
            },
            Fetch::HttpFirstReq => Smp::Bool(ctx.txn.first),
            Fetch::CaptureReqHdr(i) => cap(ctx.txn.req_caps.get(*i))?,
            Fetch::CaptureResHdr(i) => cap(ctx.txn.res_caps.get(*i))?,
            Fetch::CaptureReqMethod | Fetch::CaptureReqUri | Fetch::CaptureReqVer => {
                let line = &ctx.txn.reqline;
                if line.is_empty() {
                    return None;
                }
                let h = Head::new(line);
                match self {
                    Fetch::CaptureReqMethod => str_ref(h.method()),
                    Fetch::CaptureReqUri => str_ref(h.target()),
                    _ => str_ref(h.version()),
                }
            }
            Fetch::HostName => {
                let r = ctx.req?;
                let t = r.target();
                let host = if t.len() > 8
                    && (t[..7].eq_ignore_ascii_case(b"http://")
                        || t[..8].eq_ignore_ascii_case(b"https://"))
                {
                    let rest = &t[if t[4] == b':' { 7 } else { 8 }..];
                    &rest[..rest
                        .iter()
                        .position(|&c| c == b'/' || c == b'?')
                        .unwrap_or(rest.len())]
                } else {
                    head_value(r, b"host", 1, true)?
                };
                str_ref(strip_port(host))
            }
            Fetch::Tls(t) => return tls(*t, ctx, s),
            Fetch::Hdr { .. } | Fetch::Cook { .. } | Fetch::UrlParam { .. } => return None,
        })
    }
}

fn cap<'a>(c: Option<&'a super::Capture>) -> Option<Smp<'a>> {
    let c = c?;
    c.set.then_some(Smp::Str(Data::Ref(&c.bytes)))
}

/// `HTTP/1.1` → `1.1`.
fn version_digits(v: &[u8]) -> &[u8] {
    v.strip_prefix(b"HTTP/").unwrap_or(v)
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.starts_with(b"[") {
        return match host.iter().position(|&c| c == b']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.iter().rposition(|&c| c == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// `req.hdr(name,occ)`: `occ` > 0 from the first, < 0 from the last. An empty name
/// means every header.
fn head_value<'a>(head: Head<'a>, name: &[u8], occ: i64, full: bool) -> Option<&'a [u8]> {
    head.value(name, if occ == 0 { -1 } else { occ }, full)
}

fn head_values<'a, 'n>(head: Head<'a>, name: &'n [u8], full: bool) -> super::head::Values<'a, 'n> {
    head.values(name, full)
}

/// Cookie values named `name` (any when empty) in `Cookie` (request) or
/// `Set-Cookie` (response) headers.
fn cookie_values<'a, 'n>(head: Head<'a>, name: &'n [u8], res: bool) -> CookieValues<'a, 'n> {
    let hname: &'static [u8] = if res { b"set-cookie" } else { b"cookie" };
    CookieValues {
        named: head.named(hname),
        name,
        res,
        cur: None,
    }
}

struct CookieValues<'a, 'n> {
    named: super::head::Named<'a, 'static>,
    name: &'n [u8],
    res: bool,
    cur: Option<super::head::Cookies<'a>>,
}

impl<'a> Iterator for CookieValues<'a, '_> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(c) = self.cur.as_mut() {
                match c.next() {
                    Some((k, v)) if self.name.is_empty() || k == self.name => return Some(v),
                    Some(_) => continue,
                    None => self.cur = None,
                }
            }
            let f = self.named.next()?;
            if self.res {
                if let Some((k, v)) = set_cookie(f.value) {
                    if self.name.is_empty() || k == self.name {
                        return Some(v);
                    }
                }
            } else {
                self.cur = Some(cookies(f.value));
            }
        }
    }
}

/// `hdr_ip`: an IPv4 address (optionally `:port`), or an IPv6 address.
fn hdr_ip(v: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(v).ok()?;
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(a));
    }
    if let Some((a, p)) = s.rsplit_once(':') {
        if let (Ok(a), Ok(_)) = (a.parse::<Ipv4Addr>(), p.parse::<u16>()) {
            return Some(IpAddr::V4(a));
        }
    }
    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// A payload fetch's answer: `TooShort` marks the context as missing data (the rule
/// waits) unless no more data can come.
fn look<'a>(ctx: &Ctx<'_>, l: Look<Smp<'a>>) -> Option<Smp<'a>> {
    match l {
        Look::Found(v) => Some(v),
        Look::NotFound => None,
        Look::TooShort => miss(ctx),
    }
}

fn miss<'a>(ctx: &Ctx<'_>) -> Option<Smp<'a>> {
    if !ctx.payload_final {
        ctx.miss.set(true);
    }
    None
}

/// `req.proto_http` on buffered bytes: a complete HTTP/1 request line and head.
fn proto_http<'a>(ctx: &Ctx<'_>) -> Option<Smp<'a>> {
    let p = ctx.payload?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(p) {
        Ok(httparse::Status::Complete(_)) => Some(Smp::Bool(true)),
        Ok(httparse::Status::Partial) => miss(ctx).or(Some(Smp::Bool(false))),
        Err(_) => Some(Smp::Bool(false)),
    }
}

fn tls<'a>(t: TlsFetch, ctx: &Ctx<'a>, s: &mut Scratch) -> Option<Smp<'a>> {
    use TlsFetch::*;
    let _ = s;
    let f = match (t, ctx.tls) {
        (Fc, f) => return Some(Smp::Bool(f.is_some())),
        (HasSni, f) => return Some(Smp::Bool(f.is_some_and(|f| f.sni.is_some()))),
        (CUsed, f) => return Some(Smp::Bool(f.is_some_and(|f| f.client_cert.is_some()))),
        // HAProxy answers 0 on a plain connection too.
        (Resumed, f) => return Some(Smp::Bool(f.is_some_and(|f| f.resumed))),
        (_, f) => f?,
    };
    let st = |b: &'a [u8]| Some(Smp::Str(Data::Ref(b)));
    match t {
        Sni => st(f.sni.as_deref()?.as_bytes()),
        Protocol => st(f.protocol?.as_bytes()),
        Cipher => st(f.cipher.as_deref()?.as_bytes()),
        Alpn => st(f.alpn.as_deref()?),
        // An established TLS connection had no handshake error: rustls ends a
        // handshake at its first error, and a client certificate that does not
        // verify fails it (ringlb has no `crt-ignore-err`/`ca-ignore-err`), so the
        // OpenSSL error codes HAProxy reports here are 0 on every connection a
        // rule or a log line sees.
        FcErr | CErr | CCaErr => Some(Smp::Int(0)),
        CVerify => Some(Smp::Int(f.client_cert.as_ref().map_or(0, |c| c.verify))),
        CSDn => st(f.client_cert.as_ref()?.subject_dn.as_bytes()),
        CIDn => st(f.client_cert.as_ref()?.issuer_dn.as_bytes()),
        CSerial => Some(Smp::Bin(Data::Ref(&f.client_cert.as_ref()?.serial))),
        CDer => Some(Smp::Bin(Data::Ref(&f.client_cert.as_ref()?.der))),
        Fc | HasSni | CUsed | Resumed => None,
    }
}
