//! The `%xx` aliases of log-format strings evaluated (`LogFormat::alias`), their
//! field encodings (`-` when empty in a log line, quotes, %-encoding) and the dates.

use std::io::Write;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::logformat::{Alias, Facts, Flags, LogFormat, Mode};
use super::sample::write_int;
use super::{Capture, Ctx};

impl LogFormat {
    pub(super) fn alias(
        &self,
        a: Alias,
        f: Flags,
        ctx: &Ctx<'_>,
        facts: Option<&Facts<'_>>,
        out: &mut Vec<u8>,
    ) {
        use Alias::*;
        let log = self.mode == Mode::Log;
        let world = ctx.world;
        let num = |out: &mut Vec<u8>, v: i64| {
            if f.hex {
                let _ = write!(out, "{:X}", v);
            } else {
                write_int(out, v);
            }
        };
        let plus = |out: &mut Vec<u8>| {
            // HAProxy marks values it could not complete with '+' under `option
            // logasap`; ringlb logs at the end, so never.
            let _ = out;
        };
        let fx = facts;
        match a {
            ClientIp => ip(out, Some(super::fetch::canonical(ctx.src.ip())), f, log),
            ClientPort => port(out, Some(ctx.src.port()), f, log),
            FrontendIp => ip(out, Some(super::fetch::canonical(ctx.dst.ip())), f, log),
            FrontendPort => port(out, Some(ctx.dst.port()), f, log),
            BackendIp | BackendPort => text(out, None, f, log),
            ServerIp => ip(out, fx.and_then(|x| x.server_addr).map(|a| a.ip()), f, log),
            ServerPort => port(
                out,
                fx.and_then(|x| x.server_addr).map(|a| a.port()),
                f,
                log,
            ),
            Frontend | FrontendXprt => {
                let name = world
                    .and_then(|w| w.frontend_name(ctx.frontend))
                    .map(str::as_bytes);
                if f.quote {
                    out.push(b'"');
                }
                out.extend_from_slice(name.unwrap_or(b"-"));
                if a == FrontendXprt && ctx.tls.is_some() {
                    out.push(b'~');
                }
                if f.quote {
                    out.push(b'"');
                }
            }
            Backend => {
                let name = match fx {
                    Some(x) if !x.backend.is_empty() => Some(x.backend.as_bytes()),
                    _ => ctx
                        .backend
                        .and_then(|b| world?.backend_name(b))
                        .or_else(|| world?.frontend_name(ctx.frontend))
                        .map(str::as_bytes),
                };
                text(out, name, f, log)
            }
            Server => {
                let name = match fx {
                    Some(x) if !x.server.is_empty() => Some(x.server.as_bytes()),
                    _ => ctx
                        .server
                        .zip(ctx.backend)
                        .and_then(|(s, b)| world?.server_name(b, s as usize))
                        .map(str::as_bytes)
                        .or(Some(&b"<NOSRV>"[..])),
                };
                text(out, name, f, log)
            }
            Hostname => {
                let h = hostname();
                text(out, Some(h.as_bytes()), f, log)
            }
            Pid => num(out, i64::from(std::process::id())),
            UniqueId => super::unique_id::UniqueId::with(ctx, |id| text(out, id, f, log)),
            Status => num(out, fx.map_or(0, |x| i64::from(x.status))),
            Bytes => {
                plus(out);
                num(out, fx.map_or(0, |x| x.bytes_out as i64))
            }
            BytesUp => num(out, fx.map_or(0, |x| x.bytes_in as i64)),
            CookieClient | CookieServer => text(out, None, f, log),
            TermState | TermStateCk => {
                let t = fx.map_or("----", |x| if x.term.len() == 4 { x.term } else { "----" });
                let n = if a == TermState { 2 } else { 4 };
                out.extend_from_slice(&t.as_bytes()[..n]);
            }
            ActConn => num(out, fx.map_or(0, |x| x.conns[0] as i64)),
            FeConn => num(out, fx.map_or(0, |x| x.conns[1] as i64)),
            BeConn => num(out, fx.map_or(0, |x| x.conns[2] as i64)),
            SrvConn => num(out, fx.map_or(0, |x| x.conns[3] as i64)),
            Retries => {
                if fx.is_some_and(|x| x.redispatched) {
                    out.push(b'+');
                }
                num(out, fx.map_or(0, |x| i64::from(x.retries)))
            }
            SrvQueue => num(out, fx.map_or(0, |x| x.queues[0] as i64)),
            BeQueue => num(out, fx.map_or(0, |x| x.queues[1] as i64)),
            Th => num(out, fx.map_or(0, |x| x.th)),
            Ti => num(out, fx.map_or(0, |x| x.ti)),
            TR => num(out, fx.map_or(-1, |x| x.tr_head)),
            Tq => num(
                out,
                fx.map_or(-1, |x| {
                    if x.tr_head < 0 {
                        -1
                    } else {
                        x.th + x.ti + x.tr_head
                    }
                }),
            ),
            Tw => num(out, fx.map_or(-1, |x| x.tw)),
            Tc => num(out, fx.map_or(-1, |x| x.tc)),
            Tr => num(out, fx.map_or(-1, |x| x.tr_server)),
            Td => num(
                out,
                fx.map_or(-1, |x| {
                    if x.tr_server < 0 {
                        -1
                    } else {
                        (x.tt
                            - x.th
                            - x.ti
                            - x.tr_head.max(0)
                            - x.tw.max(0)
                            - x.tc.max(0)
                            - x.tr_server)
                            .max(0)
                    }
                }),
            ),
            Ta => num(out, fx.map_or(0, |x| x.ta)),
            Tt => num(out, fx.map_or(0, |x| x.tt)),
            Tu => num(out, fx.map_or(0, |x| x.tt - x.ti)),
            Date | ReqDate | DateGmt | ReqDateGmt | DateLocal | ReqDateLocal | Ts | Ms => {
                let accepted = fx.and_then(|x| x.accepted).unwrap_or_else(SystemTime::now);
                let when = if matches!(a, ReqDate | ReqDateGmt | ReqDateLocal) {
                    fx.and_then(|x| x.request).unwrap_or(accepted)
                } else {
                    accepted
                };
                match a {
                    Date | ReqDate => log_date(out, when),
                    DateGmt | ReqDateGmt | DateLocal | ReqDateLocal => gmt_date(out, when),
                    Ts => num(out, secs(when) as i64),
                    _ => {
                        let ms = when
                            .duration_since(UNIX_EPOCH)
                            .unwrap_or_default()
                            .subsec_millis();
                        if f.hex {
                            let _ = write!(out, "{ms:02X}");
                        } else {
                            let _ = write!(out, "{ms:03}");
                        }
                    }
                }
            }
            HdrReq | HdrRes | HdrReqList | HdrResList => {
                let caps: &[Capture] = if matches!(a, HdrReq | HdrReqList) {
                    &ctx.txn.req_caps
                } else {
                    &ctx.txn.res_caps
                };
                if caps.is_empty() {
                    return;
                }
                if matches!(a, HdrReq | HdrRes) {
                    if f.quote {
                        out.push(b'"');
                    }
                    out.push(b'{');
                    for (i, c) in caps.iter().enumerate() {
                        if i > 0 {
                            out.push(b'|');
                        }
                        if c.set {
                            encode(out, &c.bytes, b"\"#{|}");
                        }
                    }
                    out.push(b'}');
                    if f.quote {
                        out.push(b'"');
                    }
                } else {
                    for (i, c) in caps.iter().enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        if f.quote {
                            out.push(b'"');
                        }
                        if c.set {
                            encode(out, &c.bytes, b"\"#{|}");
                        } else if !f.quote {
                            out.push(b'-');
                        }
                        if f.quote {
                            out.push(b'"');
                        }
                    }
                }
            }
            Request | HttpMethod | HttpUri | HttpPath | HttpPathOnly | HttpQuery | HttpVersion => {
                let line: &[u8] = match fx {
                    Some(x) => x.request_line.unwrap_or(b"<BADREQ>"),
                    None if !ctx.txn.reqline.is_empty() => &ctx.txn.reqline,
                    None => b"<BADREQ>",
                };
                let h = super::head::Head::new(line);
                let target = h.target();
                let part: &[u8] = match a {
                    Request => line,
                    HttpMethod => h.method(),
                    HttpUri => target,
                    // %HP stops at the query; %HPO also drops an absolute URI's host.
                    HttpPath => {
                        &target[..target
                            .iter()
                            .position(|&c| c == b'?')
                            .unwrap_or(target.len())]
                    }
                    HttpPathOnly => h.path(),
                    // %HQ includes the '?'.
                    HttpQuery => match h.query() {
                        Some(q) => &target[target.len() - q.len() - 1..],
                        None => b"",
                    },
                    _ => h.version(),
                };
                if f.quote {
                    out.push(b'"');
                }
                encode(out, part, b"\"#");
                if f.quote {
                    out.push(b'"');
                }
            }
            ReqCounter => num(out, fx.map_or(0, |x| x.counter as i64)),
            LogCounter => num(out, 0),
            SslCipher => text(
                out,
                ctx.tls.and_then(|t| t.cipher.as_deref()).map(str::as_bytes),
                f,
                log,
            ),
            SslVersion => text(
                out,
                ctx.tls.and_then(|t| t.protocol).map(str::as_bytes),
                f,
                log,
            ),
        }
    }
}

/// HAProxy's `lf_text_len`: quoted if `+Q`, escaped if `+E`, `-` when empty in a log.
pub(super) fn text(out: &mut Vec<u8>, src: Option<&[u8]>, f: Flags, log: bool) {
    if f.quote {
        out.push(b'"');
    }
    match src {
        Some(s) if !s.is_empty() => {
            if f.esc {
                for &c in s {
                    if matches!(c, b'"' | b'\\' | b']') {
                        out.push(b'\\');
                    }
                    out.push(c);
                }
            } else {
                out.extend_from_slice(s);
            }
        }
        _ if log && !f.quote => out.push(b'-'),
        _ => {}
    }
    if f.quote {
        out.push(b'"');
    }
}

fn ip(out: &mut Vec<u8>, a: Option<IpAddr>, f: Flags, log: bool) {
    match a {
        Some(IpAddr::V4(v4)) if f.hex => {
            for o in v4.octets() {
                let _ = write!(out, "{o:02X}");
            }
        }
        Some(IpAddr::V6(v6)) if f.hex => {
            for o in v6.octets() {
                let _ = write!(out, "{o:02X}");
            }
        }
        Some(a) => {
            if f.quote {
                out.push(b'"');
            }
            super::sample::write_ip(out, a);
            if f.quote {
                out.push(b'"');
            }
        }
        None => text(out, None, f, log),
    }
}

/// Ports are never quoted (HAProxy's `lf_port`).
fn port(out: &mut Vec<u8>, p: Option<u16>, f: Flags, log: bool) {
    match p {
        Some(p) if f.hex => {
            let _ = write!(out, "{p:04X}");
        }
        Some(p) => write_int(out, i64::from(p)),
        None => text(out, None, f, log),
    }
}

/// `#XX` for control bytes, bytes above 126 and `extra`.
fn encode(out: &mut Vec<u8>, s: &[u8], extra: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s {
        if !(0x20..0x7f).contains(&c) || extra.contains(&c) {
            out.extend_from_slice(&[b'#', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

/// %-encodes, in place from `start`, what may not appear in a header value (control
/// characters other than HTAB, and DEL).
pub(super) fn http_encode(out: &mut Vec<u8>, start: usize) {
    let bad = |c: u8| (c < 0x20 && c != b'\t') || c == 0x7f;
    if !out[start..].iter().any(|&c| bad(c)) {
        return;
    }
    let tail: Vec<u8> = out.split_off(start);
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for c in tail {
        if bad(c) {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

/// The system's host name (`%H`, `hostname`, `show info`'s `node`): gethostname(2),
/// which needs no file (a process in a `chroot` has no /proc).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// HAProxy's log date (`%t`, `%tr`): `23/Nov/2026:13:00:00.123` (UTC).
pub fn log_date(out: &mut Vec<u8>, t: SystemTime) {
    let (y, m, d, hh, mm, ss, ms) = civil(t);
    let _ = write!(
        out,
        "{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02}.{ms:03}",
        MONTHS[(m - 1) as usize]
    );
}

/// `%T`, `%trg`: `23/Nov/2026:13:00:00 +0000`.
pub fn gmt_date(out: &mut Vec<u8>, t: SystemTime) {
    let (y, m, d, hh, mm, ss, _) = civil(t);
    let _ = write!(
        out,
        "{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02} +0000",
        MONTHS[(m - 1) as usize]
    );
}

/// RFC 7231 date (`http_date` converter): `Mon, 23 Nov 2026 13:00:00 GMT`, with a
/// fraction when asked (`.123`).
pub fn http_date(out: &mut Vec<u8>, secs: i64, frac: Option<i64>) {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let (y, m, d, hh, mm, ss, _) = civil(t);
    let wday = DAYS[(secs.max(0) / 86_400 % 7) as usize];
    let _ = write!(
        out,
        "{wday}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02}",
        MONTHS[(m - 1) as usize]
    );
    if let Some(f) = frac {
        let _ = write!(out, ".{f}");
    }
    out.extend_from_slice(b" GMT");
}

/// (year, month, day, hour, minute, second, millisecond) in UTC (days-to-civil).
pub fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis(),
    )
}
