//! Access logs in HAProxy's `option httplog` / `option tcplog` formats. A shard
//! formats each line into its own buffer (no allocation per line once it has grown)
//! and hands the whole buffer to the log thread once per control tick; only the log
//! thread writes to stdout, stderr or the syslog socket.

use std::cell::RefCell;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

use crate::config::{LogSink, LogTarget};

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
    let pid = std::process::id();
    let mut datagram = Vec::with_capacity(1024);
    for buf in rx {
        match &target.sink {
            LogSink::Stdout => {
                let _ = std::io::stdout().lock().write_all(&buf);
            }
            LogSink::Stderr => {
                let _ = std::io::stderr().lock().write_all(&buf);
            }
            LogSink::File(_) => {
                if let Some(f) = &mut file {
                    let _ = f.write_all(&buf);
                }
            }
            LogSink::Udp(addr) => {
                let Some(sock) = &udp else { continue };
                for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    datagram.clear();
                    if !target.raw {
                        // RFC 3164: <PRI>Mmm dd hh:mm:ss TAG[PID]: ; severity info (6).
                        let pri = u32::from(target.facility) * 8 + 6;
                        let _ = write!(
                            datagram,
                            "<{pri}>{} ringlb[{pid}]: ",
                            syslog_time(SystemTime::now())
                        );
                    }
                    datagram.extend_from_slice(line);
                    let _ = sock.send_to(&datagram, addr);
                }
            }
        }
    }
}

/// One shard's pending log lines.
pub struct ShardLog {
    tx: Sender<Vec<u8>>,
    buf: RefCell<Vec<u8>>,
    /// Rung when the first line waits: the shard's control loop flushes soon after.
    bell: std::rc::Rc<crate::io::LocalBell>,
}

/// The figures of one HTTP request's log line.
pub struct HttpEntry<'a> {
    pub client: SocketAddr,
    pub accepted: SystemTime,
    pub frontend: &'a str,
    pub backend: &'a str,
    pub server: &'a str,
    /// %TR/%Tw/%Tc/%Tr/%Ta in milliseconds; -1 = did not happen.
    pub timers: [i64; 5],
    pub status: u16,
    pub bytes: u64,
    pub termination: &'a str,
    /// %ac/%fc/%bc/%sc/%rc.
    pub conns: [u64; 5],
    /// A retry went to another server: `%rc` shows `+N`.
    pub redispatched: bool,
    pub queues: [u64; 2],
    pub request_line: &'a [u8],
}

/// The figures of one TCP connection's log line.
pub struct TcpEntry<'a> {
    pub client: SocketAddr,
    pub accepted: SystemTime,
    pub frontend: &'a str,
    pub backend: &'a str,
    pub server: &'a str,
    /// %Tw/%Tc/%Tt in milliseconds.
    pub timers: [i64; 3],
    pub bytes: u64,
    pub termination: &'a str,
    pub conns: [u64; 5],
    pub redispatched: bool,
    pub queues: [u64; 2],
}

impl ShardLog {
    pub fn new(tx: Sender<Vec<u8>>, bell: std::rc::Rc<crate::io::LocalBell>) -> Self {
        ShardLog {
            tx,
            bell,
            buf: RefCell::new(Vec::with_capacity(16 * 1024)),
        }
    }

    /// `option httplog`:
    /// `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r`
    pub fn http(&self, e: &HttpEntry<'_>) {
        let mut b = self.buf.borrow_mut();
        if b.is_empty() {
            self.bell.ring();
        }
        let [tr, tw, tc, trr, ta] = e.timers;
        let [ac, fc, bc, sc, rc] = e.conns;
        let _ = write!(
            b,
            "{}:{} [{}] {} {}/{} {tr}/{tw}/{tc}/{trr}/{ta} {} {} - - {} {ac}/{fc}/{bc}/{sc}/{}{rc} {}/{} \"",
            e.client.ip(),
            e.client.port(),
            LogDate(e.accepted),
            e.frontend,
            e.backend,
            e.server,
            e.status,
            e.bytes,
            e.termination,
            if e.redispatched { "+" } else { "" },
            e.queues[0],
            e.queues[1],
        );
        // Quoted like HAProxy: control bytes and quotes escaped as #XX.
        for &c in e.request_line {
            if c < 0x20 || c == b'"' || c == b'#' || c >= 0x7f {
                let _ = write!(b, "#{c:02X}");
            } else {
                b.push(c);
            }
        }
        b.extend_from_slice(b"\"\n");
    }

    /// `option tcplog`:
    /// `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`
    pub fn tcp(&self, e: &TcpEntry<'_>) {
        let mut b = self.buf.borrow_mut();
        if b.is_empty() {
            self.bell.ring();
        }
        let [tw, tc, tt] = e.timers;
        let [ac, fc, bc, sc, rc] = e.conns;
        let _ = writeln!(
            b,
            "{}:{} [{}] {} {}/{} {tw}/{tc}/{tt} {} {} {ac}/{fc}/{bc}/{sc}/{}{rc} {}/{}",
            e.client.ip(),
            e.client.port(),
            LogDate(e.accepted),
            e.frontend,
            e.backend,
            e.server,
            e.bytes,
            &e.termination[..2],
            if e.redispatched { "+" } else { "" },
            e.queues[0],
            e.queues[1],
        );
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

/// HAProxy's `%tr` date: `23/Nov/2026:13:00:00.123` (UTC).
struct LogDate(SystemTime);

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl std::fmt::Display for LogDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d, hh, mm, ss, ms) = civil(self.0);
        write!(
            f,
            "{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02}.{ms:03}",
            MONTHS[(m - 1) as usize]
        )
    }
}

fn syslog_time(t: SystemTime) -> String {
    let (_, m, d, hh, mm, ss, _) = civil(t);
    format!("{} {d:2} {hh:02}:{mm:02}:{ss:02}", MONTHS[(m - 1) as usize])
}

/// (year, month, day, hour, minute, second, millisecond) in UTC, from the days-to-civil
/// algorithm (proleptic Gregorian).
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_438_800_123); // 2026-11-23T13:00:00.123Z
        assert_eq!(LogDate(t).to_string(), "23/Nov/2026:13:00:00.123");
        assert_eq!(LogDate(UNIX_EPOCH).to_string(), "01/Jan/1970:00:00:00.000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(LogDate(leap).to_string(), "29/Feb/2000:00:00:00.000");
    }

    #[test]
    fn http_line_format() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let log = ShardLog::new(tx, Default::default());
        log.http(&HttpEntry {
            client: "10.0.0.1:4321".parse().unwrap(),
            accepted: UNIX_EPOCH + Duration::from_millis(1_795_438_800_123),
            frontend: "www",
            backend: "app",
            server: "s1",
            timers: [0, 0, 1, 2, 3],
            status: 200,
            bytes: 150,
            termination: "----",
            conns: [1, 1, 0, 0, 0],
            redispatched: false,
            queues: [0, 0],
            request_line: b"GET /a\"b HTTP/1.1",
        });
        log.flush();
        let line = String::from_utf8(rx.try_recv().unwrap()).unwrap();
        assert_eq!(
            line,
            "10.0.0.1:4321 [23/Nov/2026:13:00:00.123] www app/s1 0/0/1/2/3 200 150 - - ---- 1/1/0/0/0 0/0 \"GET /a#22b HTTP/1.1\"\n"
        );
    }
}
