//! `show sess` (every client connection the shards serve) and `show errors` (the
//! last invalid request each frontend refused, in HAProxy's hex-dump layout), read
//! from the shards when asked.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Core;
use crate::stats::Capture;

/// `show sess [id]`: one line per client connection, as HAProxy lists its streams.
/// The id is the shard in the high bits and the connection's descriptor below.
pub fn show_sess(core: &Core, w: &[&str]) -> String {
    let cfg = core.cfg();
    let only = match w.first() {
        Some(&"all") | None => None,
        Some(id) => match u64::from_str_radix(id.trim_start_matches("0x"), 16) {
            Ok(n) => Some(n),
            Err(_) => return "Session not found.\n".into(),
        },
    };
    let mut out = String::new();
    let mut found = false;
    for shard in core.inspect() {
        for s in shard.sessions {
            let id = ((shard.shard as u64) << 32) | (s.fd as u32 as u64);
            if only.is_some_and(|o| o != id) {
                continue;
            }
            found = true;
            let fe = cfg.frontends.get(s.frontend);
            let be = fe
                .and_then(|f| f.default_backend)
                .and_then(|b| cfg.backends.get(b))
                .map_or("<NONE>", |b| b.name.as_str());
            let proto = if s.peer.is_ipv4() { "tcpv4" } else { "tcpv6" };
            let _ = writeln!(
                out,
                "0x{id:x}: proto={proto} src={} fe={} be={be} srv=<none> ts=00 epoch=0 age={} calls=0 rate=0 cpu=0 lat=0 rq[f=0h,i=0,an=00h,rx=,wx=,ax=] rp[f=0h,i=0,an=00h,rx=,wx=,ax=] scf=[8,0h,fd={}] scb=[8,0h,fd=-1] exp= rc=0 c_exp= thr={}",
                s.peer,
                fe.map_or("<NONE>", |f| f.name.as_str()),
                age(s.age.as_secs()),
                s.fd,
                shard.shard
            );
        }
    }
    if only.is_some() && !found {
        return "Session not found.\n".into();
    }
    out
}

/// HAProxy's short age: `12s`, `3m`, `2h`, `1d`.
fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `[05/Dec/2026:12:00:06.650]`, in UTC.
fn date(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "[{day:02}/{}/{year}:{:02}:{:02}:{:02}.{:03}]",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Where a request head first breaks HTTP/1 syntax: the start of the first header
/// line without a colon, or with a space before it (0 if none is found).
fn error_at(b: &[u8]) -> usize {
    let mut pos = 0;
    for (i, line) in b.split(|&c| c == b'\n').enumerate() {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if i > 0 && !l.is_empty() {
            match l.iter().position(|&c| c == b':') {
                Some(c) if !l[..c].contains(&b' ') && c > 0 => {}
                _ => return pos,
            }
        }
        if l.is_empty() && i > 0 {
            break;
        }
        pos += line.len() + 1;
    }
    0
}

/// HAProxy's dump of a captured buffer: an offset, then the bytes with `\r`, `\n`,
/// `\t` and non-printable ones escaped, a line per `\n`.
fn dump(bytes: &[u8], out: &mut String) {
    let mut off = 0;
    for line in bytes.split_inclusive(|&c| c == b'\n') {
        let _ = write!(out, "  {off:05}  ");
        for &c in line {
            match c {
                b'\r' => out.push_str("\\r"),
                b'\n' => out.push_str("\\n"),
                b'\t' => out.push_str("\\t"),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(c as char),
                _ => {
                    let _ = write!(out, "\\x{c:02x}");
                }
            }
        }
        out.push('\n');
        off += line.len();
    }
}

/// `show errors [<px>] [request|response]`.
pub fn show_errors(core: &Core, w: &[&str]) -> String {
    let cfg = core.cfg();
    let only = match w.first().copied() {
        None | Some("request") | Some("response") => None,
        Some("-1") => None,
        Some(px) => match cfg.frontends.iter().position(|f| f.name == px) {
            Some(i) => Some(i),
            None if cfg.backends.iter().any(|b| b.name == px) => Some(usize::MAX),
            None => return "No such proxy.\n".into(),
        },
    };
    let responses_only = w.contains(&"response");
    let shards = core.inspect();
    let total: u64 = shards.iter().map(|s| s.events).sum();
    let mut caps: Vec<(usize, &Capture)> = shards
        .iter()
        .flat_map(|s| s.captures.iter().map(move |c| (s.shard, c)))
        .filter(|(_, c)| only.is_none_or(|o| o == c.frontend) && !responses_only)
        .collect();
    caps.sort_by_key(|(_, c)| c.when);
    let mut out = format!(
        "Total events captured on {} : {total}\n",
        date(SystemTime::now())
    );
    for (shard, c) in caps {
        let Some(f) = cfg.frontends.get(c.frontend) else {
            continue;
        };
        let iid = super::csv::proxy_id(&cfg, true, c.frontend);
        let len = c.bytes.len();
        let _ = write!(
            out,
            " \n{} frontend {} (#{iid}): invalid request\n  backend <NONE> (#-1), server <NONE> (#-1), event #{}, src {}\n  buffer starts at 0 (including 0 out), {} free,\n  len {len}, wraps at {}, error at position {}\n  shard {shard}\n  \n",
            date(c.when),
            f.name,
            c.event,
            c.peer,
            cfg.limits.max_header_bytes.saturating_sub(len),
            cfg.limits.max_header_bytes,
            error_at(&c.bytes),
        );
        dump(&c.bytes, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_errors_and_dumps_read_as_haproxy_writes_them() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_471_900_123);
        assert_eq!(super::date(t), "[05/Dec/2026:11:58:20.123]");
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n";
        assert_eq!(super::error_at(head), 25);
        let mut out = String::new();
        super::dump(head, &mut out);
        assert!(
            out.starts_with("  00000  GET / HTTP/1.1\\r\\n\n  00016  Host: a\\r\\n\n"),
            "{out}"
        );
    }
}
