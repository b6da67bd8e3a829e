//! Syslog datagrams as the tests read them from a unix socket they bind: HAProxy's RFC
//! 3164 framing split into its fields, and state messages made comparable across
//! HAProxy and ringlb.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// A syslog datagram, split: (PRI, the timestamp, tag, pid, the message).
#[derive(Debug)]
pub struct Syslog {
    pub pri: u32,
    pub stamp: String,
    pub tag: String,
    pub message: String,
}

pub fn parse(d: &str) -> Option<Syslog> {
    let rest = d.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    // RFC 3164 timestamp: "Mmm dd hh:mm:ss" (the day padded with a space), 15 bytes.
    let stamp = rest.get(..15)?.to_string();
    let rest = rest.get(15..)?.strip_prefix(' ')?;
    let (tag, rest) = rest.split_once('[')?;
    let (pid, message) = rest.split_once("]: ")?;
    pid.parse::<u32>().ok()?;
    Some(Syslog {
        pri: pri.parse().ok()?,
        stamp,
        tag: tag.to_string(),
        message: message.to_string(),
    })
}

/// A datagram socket at `path`, reads giving up after 200ms.
pub fn bind(path: &Path) -> UnixDatagram {
    let sock = UnixDatagram::bind(path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    sock
}

/// A server state message as both proxies can be compared on: without HAProxy's
/// trailer (sessions active, requeued, in queue: its own), check durations (the
/// machine's) as `N`.
pub fn comparable(message: &str) -> String {
    let msg = message.trim_end();
    let msg = match msg.find(" 0 sessions") {
        Some(i) => &msg[..i],
        None => msg,
    };
    match msg.split_once("check duration: ") {
        Some((a, b)) => {
            let rest = b.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{a}check duration: Nms{}", rest.trim_start_matches("ms"))
        }
        None => msg.to_string(),
    }
}
