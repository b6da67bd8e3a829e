//! Access logs: each frontend's log-format line (`option httplog`, `tcplog`, `clf`
//! or its own `log-format`, all evaluated by `rules::logformat`). A shard formats
//! each line into its own buffer (no allocation per line once it has grown) and hands
//! the whole buffer to the log thread once per control tick; only the log thread
//! writes to stdout, stderr, a file or the syslog socket (UDP, or a local unix
//! datagram socket such as `/dev/log`).

use std::cell::RefCell;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use crate::config::{LogSink, LogTarget};
use crate::rules::logformat::{Facts, LogFormat};
use crate::rules::Ctx;

/// Starts the log thread; shards send it buffers of complete lines.
pub fn spawn(target: LogTarget) -> std::io::Result<Sender<Vec<u8>>> {
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    // Opened now, so that a file we cannot write to stops the start.
    let file = match &target.sink {
        LogSink::File(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("log file {}: {e}", p.display()))
                })?,
        ),
        _ => None,
    };
    std::thread::Builder::new()
        .name("ringlb-log".into())
        .spawn(move || write_loop(target, rx, file))?;
    Ok(tx)
}

fn write_loop(target: LogTarget, rx: Receiver<Vec<u8>>, mut file: Option<std::fs::File>) {
    let udp = match &target.sink {
        LogSink::Udp(addr) => {
            let bind: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            UdpSocket::bind(bind).ok()
        }
        _ => None,
    };
    // Unbound, addressed per datagram: a syslog daemon that restarts (and recreates
    // its socket) is found again by the next line, as HAProxy's sender does.
    let unix = match &target.sink {
        LogSink::Unix(_) => UnixDatagram::unbound().ok(),
        _ => None,
    };
    let pid = std::process::id();
    let mut datagram = Vec::with_capacity(1024);
    let mut text = Vec::with_capacity(16 * 1024);
    for buf in rx {
        match &target.sink {
            LogSink::Stdout | LogSink::Stderr | LogSink::File(_) => {
                text.clear();
                for (_, line) in lines(&target, &buf) {
                    text.extend_from_slice(cut(line, target.max_len - 1));
                    text.push(b'\n');
                }
                let _ = match &target.sink {
                    LogSink::Stdout => std::io::stdout().lock().write_all(&text),
                    LogSink::Stderr => std::io::stderr().lock().write_all(&text),
                    _ => match &mut file {
                        Some(f) => f.write_all(&text),
                        None => Ok(()),
                    },
                };
            }
            LogSink::Udp(addr) => {
                let Some(sock) = &udp else { continue };
                for (level, line) in lines(&target, &buf) {
                    syslog_datagram(&target, pid, level, line, &mut datagram);
                    let _ = sock.send_to(&datagram, addr);
                }
            }
            LogSink::Unix(path) => {
                let Some(sock) = &unix else { continue };
                for (level, line) in lines(&target, &buf) {
                    syslog_datagram(&target, pid, level, line, &mut datagram);
                    // No daemon listening (ENOENT, ECONNREFUSED) or a full queue
                    // (EAGAIN): the line is lost, as with UDP; the proxy goes on.
                    let _ = sock.send_to(&datagram, path);
                }
            }
        }
    }
}

/// The lines of a shard's buffer the target takes, each with its severity (the
/// line's first byte), as HAProxy's sender: a line less severe than the target's
/// level is not sent, and one more severe than its minimum level is sent at it.
fn lines<'a>(target: &LogTarget, buf: &'a [u8]) -> impl Iterator<Item = (u8, &'a [u8])> {
    let (max, min) = (target.level, target.min_level);
    buf.split(|&b| b == b'\n')
        .filter_map(|l| Some((*l.first()?, &l[1..])))
        .filter(move |(level, _)| *level <= max)
        .map(move |(level, l)| (level.max(min), l))
}

/// One syslog message: RFC 3164 `<PRI>Mmm dd hh:mm:ss TAG[PID]: ` (the line's severity)
/// before the line, unless the target is `format raw`, and a newline after it (as
/// HAProxy ends every datagram).
fn syslog_datagram(target: &LogTarget, pid: u32, level: u8, line: &[u8], datagram: &mut Vec<u8>) {
    datagram.clear();
    if !target.raw {
        let pri = u32::from(target.facility) * 8 + u32::from(level);
        let _ = write!(datagram, "<{pri}>{} ", syslog_time(SystemTime::now()));
        if let Some(host) = &target.hostname {
            let _ = write!(datagram, "{host} ");
        }
        let _ = write!(datagram, "{}[{pid}]: ", target.tag);
    }
    // `len`: the whole message, newline included, as HAProxy cuts it.
    let room = target.max_len.saturating_sub(datagram.len() + 1);
    datagram.extend_from_slice(cut(line, room));
    datagram.push(b'\n');
}

/// `line` cut to at most `max` bytes.
fn cut(line: &[u8], max: usize) -> &[u8] {
    &line[..line.len().min(max)]
}

/// One shard's pending log lines.
pub struct ShardLog {
    tx: Sender<Vec<u8>>,
    buf: RefCell<Vec<u8>>,
    /// Rung when the first line waits: the shard's control loop flushes soon after.
    bell: std::rc::Rc<crate::io::LocalBell>,
}

impl ShardLog {
    pub fn new(tx: Sender<Vec<u8>>, bell: std::rc::Rc<crate::io::LocalBell>) -> Self {
        ShardLog {
            tx,
            bell,
            buf: RefCell::new(Vec::with_capacity(16 * 1024)),
        }
    }

    /// Appends one line in `format` (`option httplog`, `tcplog`, `clf` or a
    /// `log-format`) for the request or connection `ctx` and `facts` describe.
    /// `level`: the line's syslog severity (`info`, `err`, or what `set-log-level`
    /// said), carried to the log thread as the line's first byte.
    pub fn line(&self, format: &LogFormat, ctx: &Ctx<'_>, facts: &Facts<'_>, level: u8) {
        let mut b = self.buf.borrow_mut();
        if b.is_empty() {
            self.bell.ring();
        }
        b.push(level);
        crate::rules::with_work(|w| format.eval(ctx, Some(facts), &mut w.s, &mut b));
        b.push(b'\n');
    }

    /// Lines wait for the next flush.
    pub fn pending(&self) -> bool {
        !self.buf.borrow().is_empty()
    }

    /// Hands the buffered lines to the log thread (from the control tick).
    pub fn flush(&self) {
        let mut b = self.buf.borrow_mut();
        if !b.is_empty() {
            let full = std::mem::replace(&mut *b, Vec::with_capacity(16 * 1024));
            let _ = self.tx.send(full);
        }
    }
}

/// Milliseconds as a log timer.
pub fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn syslog_time(t: SystemTime) -> String {
    let (_, m, d, hh, mm, ss, _) = civil(t);
    format!("{} {d:2} {hh:02}:{mm:02}:{ss:02}", MONTHS[(m - 1) as usize])
}

use crate::rules::logformat::civil;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn facts() -> Facts<'static> {
        Facts {
            accepted: Some(UNIX_EPOCH + Duration::from_millis(1_795_438_800_123)),
            request: Some(UNIX_EPOCH + Duration::from_millis(1_795_438_800_123)),
            backend: "app",
            server: "s1",
            tr_head: 0,
            tw: 0,
            tc: 1,
            tr_server: 2,
            ta: 3,
            tt: 3,
            status: 200,
            bytes_out: 150,
            term: "----",
            conns: [1, 1, 0, 0],
            queues: [0, 0],
            request_line: Some(b"GET /a\"b HTTP/1.1"),
            ..Facts::default()
        }
    }

    #[test]
    fn http_line_format() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let log = ShardLog::new(tx, Default::default());
        let cfg = crate::config::from_haproxy_str(
            "frontend www\n bind :0\n mode http\n default_backend app\nbackend app\n",
            &|_| None,
        )
        .unwrap()
        .0;
        let txn = crate::rules::Txn::default();
        let mut ctx = Ctx::new(
            "10.0.0.1:4321".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            &txn,
        );
        ctx.world = Some(&cfg);
        log.line(&crate::config::LogFormat::Http.builtin(), &ctx, &facts(), 6);
        log.line(&crate::config::LogFormat::Tcp.builtin(), &ctx, &facts(), 6);
        log.line(&crate::config::LogFormat::Clf.builtin(), &ctx, &facts(), 6);
        log.flush();
        let out = String::from_utf8(rx.try_recv().unwrap()).unwrap();
        // Each line starts with its severity (info).
        assert!(out.lines().all(|l| l.starts_with('\u{6}')), "{out:?}");
        let lines: Vec<&str> = out.lines().map(|l| &l[1..]).collect();
        assert_eq!(
            lines[0],
            "10.0.0.1:4321 [23/Nov/2026:13:00:00.123] www app/s1 0/0/1/2/3 200 150 - - ---- 1/1/0/0/0 0/0 \"GET /a#22b HTTP/1.1\""
        );
        assert_eq!(
            lines[1],
            "10.0.0.1:4321 [23/Nov/2026:13:00:00.123] www app/s1 0/1/3 150 -- 1/1/0/0/0 0/0"
        );
        assert_eq!(
            lines[2],
            "10.0.0.1 - - [23/Nov/2026:13:00:00 +0000] \"GET /a#22b HTTP/1.1\" 200 150 \"\" \"\" 4321 123 \"www\" \"app\" \"s1\" 0 0 1 2 3 ---- 1 1 0 0 0 0 0 \"\" \"\" "
        );
    }
}
