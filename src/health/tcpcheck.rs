//! Runs one `tcp-check` sequence against a server, on fresh connections, the way
//! HAProxy 2.6 evaluates it (src/tcpcheck.c): the input is kept from a send (or a
//! connect) to the next; an expect reads once, then waits for more while its pattern
//! does not match yet (unless `min-recv` says the bytes are enough); a run of
//! consecutive expects is evaluated again from its first rule when more data comes.
//! The outcome carries HAProxy's status, code and texts (`TCPCHK got ...`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::time::Instant;

use super::probe::{CheckTls, Outcome};
use super::protocols::{self, Verdict};
use crate::config::tcpcheck::{Action, Connect, Expect, Pattern, Proto, TcpCheck};
use crate::proxy_protocol::Version;

/// HAProxy's `tune.bufsize`: a check reads at most this much.
const BUFSIZE: usize = 16384;

/// Where and how a server's check connects.
#[derive(Clone)]
pub struct Target {
    pub server: SocketAddr,
    /// The server's `port` / `addr` check options.
    pub check_port: Option<u16>,
    pub check_addr: Option<std::net::IpAddr>,
    /// What a `default` (or the implicit) connect sends and speaks.
    pub default_proxy: Option<Version>,
    pub default_tls: Option<CheckTls>,
    /// `send-proxy` on a connect: the server's version (v1 if it has none).
    pub proxy_version: Version,
    /// `ssl` on a connect: the server's TLS settings.
    pub tls: Option<Arc<crate::tls::UpstreamTls>>,
}

/// A sequence with its regexes compiled, once per server.
pub struct Prepared {
    check: Arc<TcpCheck>,
    regexes: Vec<Option<regex::bytes::Regex>>,
}

impl Prepared {
    pub fn new(check: Arc<TcpCheck>) -> Prepared {
        let regexes = check
            .rules
            .iter()
            .map(|r| match &r.action {
                Action::Expect(Expect {
                    pattern: Pattern::Regex(p) | Pattern::BinaryRegex(p),
                    ..
                }) => regex::bytes::Regex::new(p).ok(),
                _ => None,
            })
            .collect();
        Prepared { check, regexes }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<crate::tls::ClientTls<TcpStream>>),
}

impl Conn {
    async fn write_all(&mut self, data: Vec<u8>) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(data).await.0.map(|_| ()),
            Conn::Tls(s) => s.write_all(data).await.0.map(|_| ()),
        }
    }

    /// Reads more into `buf` (up to BUFSIZE); Ok(0) at the end of the stream.
    async fn read(&mut self, buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
        let len = buf.len();
        let (res, b) = match self {
            Conn::Plain(s) => s.read(buf.slice_mut(len..BUFSIZE)).await,
            Conn::Tls(s) => s.read(buf.slice_mut(len..BUFSIZE)).await,
        };
        (res, b.into_inner())
    }
}

/// A failed check: status, code, info text.
struct Fail(&'static str, String);

/// Runs the sequence once.
pub async fn run(p: &Prepared, t: &Target, timeout: Duration) -> Outcome {
    let tc = &*p.check;
    let mut conn: Option<Conn> = None;
    let mut bi: Vec<u8> = Vec::new();
    let mut eos = false;
    let mut must_read = true;
    let mut deadline = Instant::now() + timeout;
    let mut code: Option<u16> = None;
    let mut i = 0;
    while i < tc.rules.len() {
        let rule = &tc.rules[i];
        code = None;
        match &rule.action {
            Action::Connect(c) => {
                // The previous connection closes first, as in HAProxy.
                drop(conn.take());
                bi = Vec::with_capacity(BUFSIZE);
                eos = false;
                match connect(c, t, timeout).await {
                    Ok(s) => conn = Some(s),
                    Err(Fail(status, text)) => {
                        let info = format!("{text}{}", where_(tc, i));
                        return fail(status, None, info);
                    }
                }
                deadline = Instant::now() + timeout;
                must_read = true;
            }
            Action::Send(data) => {
                bi.clear();
                let Some(s) = conn.as_mut() else { break };
                match monoio::time::timeout_at(deadline, s.write_all(data.clone())).await {
                    Err(_) => return timed_out(tc, i),
                    Ok(Err(e)) => {
                        return fail("SOCKERR", None, format!("{}{}", os_text(&e), where_(tc, i)))
                    }
                    Ok(Ok(())) => {}
                }
                must_read = true;
            }
            Action::Expect(e) => {
                let Some(s) = conn.as_mut() else { break };
                if must_read {
                    match recv(s, &mut bi, &mut eos, deadline).await {
                        Ok(()) => {}
                        Err(Recv::Timeout) => return timed_out(tc, i),
                        Err(Recv::Error(err)) => {
                            return fail(
                                "SOCKERR",
                                None,
                                format!("{}{}", os_text(&err), where_(tc, i)),
                            )
                        }
                        Err(Recv::Empty) => {
                            let mut text =
                                format!("TCPCHK got an empty response at step {}", rule.step);
                            if let Some(c) = &rule.comment {
                                text.push_str(&format!(" comment: '{c}'"));
                            }
                            return fail(e.err_status.unwrap_or("L7RSP"), None, text);
                        }
                    }
                    must_read = false;
                }
                let last_read = eos || bi.len() >= BUFSIZE;
                match evaluate(tc, p.regexes[i].as_ref(), e, &bi, last_read) {
                    Step::Next(c) => code = c,
                    Step::Fail(status, c, info) => {
                        let mut text = match info {
                            Some(info) => info,
                            None => error_text(tc, e, &bi, rule.step),
                        };
                        if let Some(c) = &rule.comment {
                            text.push_str(&format!(" comment: {c}"));
                        }
                        return fail(status, c, text);
                    }
                    Step::Wait => {
                        match recv(s, &mut bi, &mut eos, deadline).await {
                            Ok(()) | Err(Recv::Empty) => {}
                            Err(Recv::Timeout) => return timed_out(tc, i),
                            Err(Recv::Error(_)) => eos = true,
                        }
                        i = e.head;
                        continue;
                    }
                }
            }
        }
        i += 1;
    }
    // Every rule passed: the last one says how.
    let last = tc.rules.last();
    match last.map(|r| &r.action) {
        Some(Action::Expect(e)) => {
            let info = match &e.on_success {
                Some(m) => protocols::render(m, &bi),
                None if tc.proto == Proto::Tcp => "(tcp-check)".into(),
                None => String::new(),
            };
            pass(e.ok_status.unwrap_or("L7OK"), Some(code.unwrap_or(0)), info)
        }
        Some(Action::Connect(c)) => {
            let status = if matches!(conn, Some(Conn::Tls(_))) {
                "L6OK"
            } else {
                "L4OK"
            };
            let info = if c.implicit { "" } else { "(tcp-check)" };
            pass(status, None, info.into())
        }
        _ => pass("L7OK", Some(0), "(tcp-check)".into()),
    }
}

enum Step {
    Next(Option<u16>),
    Wait,
    Fail(&'static str, Option<u16>, Option<String>),
}

fn evaluate(
    tc: &TcpCheck,
    re: Option<&regex::bytes::Regex>,
    e: &Expect,
    bi: &[u8],
    last_read: bool,
) -> Step {
    if !last_read {
        if let Pattern::Bytes { data, .. } = &e.pattern {
            if bi.len() < data.len() {
                return Step::Wait;
            }
        }
        if e.min_recv > 0 && (bi.len() as i64) < e.min_recv {
            return Step::Wait;
        }
    }
    let err_status = e.err_status.unwrap_or("L7RSP");
    let matched = match &e.pattern {
        Pattern::Bytes { data, .. } => {
            data.is_empty() || bi.windows(data.len()).any(|w| w == &data[..])
        }
        Pattern::Regex(_) => re.is_some_and(|r| r.is_match(bi)),
        Pattern::BinaryRegex(_) => {
            let hex: String = bi.iter().map(|b| format!("{b:02X}")).collect();
            re.is_some_and(|r| r.is_match(hex.as_bytes()))
        }
        Pattern::Custom(kind) => {
            return match protocols::custom(*kind, bi, last_read) {
                Verdict::Pass => Step::Next(None),
                Verdict::Wait => Step::Wait,
                Verdict::Fail { status, code, info } => {
                    let status = if status == "L7RSP" {
                        err_status
                    } else {
                        status
                    };
                    Step::Fail(status, code, info)
                }
            }
        }
    };
    if !matched && !last_read && e.min_recv == -1 {
        return Step::Wait;
    }
    let code = e.code_from_payload.then(|| payload_code(bi)).flatten();
    if matched != e.inverse {
        return Step::Next(code);
    }
    let _ = tc;
    Step::Fail(err_status, code, None)
}

/// `status-code res.payload(0,3)`: the first three bytes as a number.
fn payload_code(bi: &[u8]) -> Option<u16> {
    std::str::from_utf8(bi.get(..3)?).ok()?.parse().ok()
}

/// HAProxy's text for a failed expect (`tcpcheck_expect_onerror_message`).
fn error_text(tc: &TcpCheck, e: &Expect, bi: &[u8], step: u32) -> String {
    if let Some(m) = &e.on_error {
        return protocols::render(m, bi);
    }
    if tc.proto != Proto::Tcp {
        return String::new();
    }
    // An inverse rule that failed matched what it did not want.
    let head = if e.inverse {
        "TCPCHK matched unwanted content"
    } else {
        "TCPCHK did not match content"
    };
    match &e.pattern {
        Pattern::Bytes {
            data,
            binary: false,
        } => {
            format!("{head} '{}' at step {step}", String::from_utf8_lossy(data))
        }
        Pattern::Bytes { binary: true, .. } => format!("{head} (binary) at step {step}"),
        Pattern::Regex(_) => format!("{head} (regex) at step {step}"),
        Pattern::BinaryRegex(_) => format!("{head} (binary regex) at step {step}"),
        Pattern::Custom(_) => format!("{head} (custom function) at step {step}"),
    }
}

/// Where in a plain tcp-check a connection problem happened (HAProxy adds this only
/// to `option tcp-check` sequences, not to the protocol checks).
fn where_(tc: &TcpCheck, i: usize) -> String {
    if tc.proto != Proto::Tcp {
        return String::new();
    }
    let rule = &tc.rules[i];
    if rule.step == 0 {
        return " at initial connection step of tcp-check".into();
    }
    let mut s = format!(" at step {} of tcp-check", rule.step);
    match &rule.action {
        Action::Connect(c) => match c.port {
            Some(p) => s.push_str(&format!(" (connect port {p})")),
            None => s.push_str(" (connect)"),
        },
        Action::Expect(e) => s.push_str(&match &e.pattern {
            Pattern::Bytes { data, binary } => format!(
                " (expect {} '{}')",
                if *binary { "binary" } else { "string" },
                String::from_utf8_lossy(data)
            ),
            Pattern::Regex(_) => " (expect regex)".into(),
            Pattern::BinaryRegex(_) => " (expect binary regex)".into(),
            Pattern::Custom(_) => " (expect custom function)".into(),
        }),
        Action::Send(_) => s.push_str(" (send)"),
    }
    if let Some(c) = &rule.comment {
        s.push_str(&format!(" comment: '{c}'"));
    }
    s
}

fn timed_out(tc: &TcpCheck, i: usize) -> Outcome {
    let status = match &tc.rules[i].action {
        Action::Expect(e) => e.tout_status.unwrap_or("L7TOUT"),
        _ => "L7TOUT",
    };
    fail(status, None, where_(tc, i))
}

enum Recv {
    Timeout,
    Error(std::io::Error),
    /// The stream ended with nothing received.
    Empty,
}

/// One read: appends what arrived, or marks the end of the stream.
async fn recv(
    s: &mut Conn,
    bi: &mut Vec<u8>,
    eos: &mut bool,
    deadline: Instant,
) -> Result<(), Recv> {
    if *eos || bi.len() >= BUFSIZE {
        return if bi.is_empty() {
            Err(Recv::Empty)
        } else {
            Ok(())
        };
    }
    let buf = std::mem::take(bi);
    match monoio::time::timeout_at(deadline, s.read(buf)).await {
        Err(_) => Err(Recv::Timeout),
        Ok((res, buf)) => {
            *bi = buf;
            match res {
                Ok(0) => {
                    *eos = true;
                    if bi.is_empty() {
                        Err(Recv::Empty)
                    } else {
                        Ok(())
                    }
                }
                Ok(_) => Ok(()),
                Err(e) if bi.is_empty() => Err(Recv::Error(e)),
                Err(_) => {
                    *eos = true;
                    Ok(())
                }
            }
        }
    }
}

async fn connect(c: &Connect, t: &Target, timeout: Duration) -> Result<Conn, Fail> {
    // As HAProxy: the rule's address, else the server's check address, else its own;
    // the rule's port, its address's, the check port, else the server's.
    let ip = c
        .addr
        .map(|a| a.ip())
        .or(t.check_addr)
        .unwrap_or(t.server.ip());
    let port = c
        .port
        .or(c.addr.map(|a| a.port()).filter(|&p| p != 0))
        .or(t.check_port)
        .unwrap_or(t.server.port());
    let addr = SocketAddr::new(ip, port);
    let mut stream = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Err(_) => return Err(Fail("L4TOUT", String::new())),
        Ok(Err(e)) => return Err(Fail("L4CON", os_text(&e))),
        Ok(Ok(s)) => s,
    };
    let proxy = if c.send_proxy {
        Some(t.proxy_version)
    } else if c.default {
        t.default_proxy
    } else {
        None
    };
    if let Some(v) = proxy {
        let mut hdr = Vec::with_capacity(64);
        let local = stream.local_addr().unwrap_or(addr);
        crate::proxy_protocol::write_local(v, local, addr, &mut hdr);
        if let Err(e) = stream.write_all(hdr).await.0 {
            return Err(Fail("L4CON", os_text(&e)));
        }
    }
    let tls = if c.ssl {
        t.tls.as_ref().map(|u| CheckTls {
            config: u.config.clone(),
            name: u
                .settings
                .server_name(c.sni.as_deref().or(u.settings.check_sni.as_deref()), ip),
        })
    } else if c.default {
        t.default_tls.clone().map(|mut d| {
            if let (Some(sni), Some(u)) = (&c.sni, &t.tls) {
                d.name = u.settings.server_name(Some(sni), ip);
            }
            d
        })
    } else {
        None
    };
    let Some(tls) = tls else {
        return Ok(Conn::Plain(stream));
    };
    let deadline = Instant::now() + timeout;
    match crate::tls::connect(stream, tls.config.clone(), tls.name.clone(), deadline).await {
        Ok(s) => Ok(Conn::Tls(Box::new(s))),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(Fail("L6TOUT", String::new())),
        Err(e) => Err(Fail("L6RSP", format!("SSL handshake failure ({e})"))),
    }
}

/// strerror's text, without the number Rust appends.
fn os_text(e: &std::io::Error) -> String {
    let t = e.to_string();
    match t.find(" (os error") {
        Some(j) => t[..j].to_string(),
        None => t,
    }
}

fn description(status: &str) -> &'static str {
    match status {
        "L4OK" => "Layer4 check passed",
        "L4TOUT" => "Layer4 timeout",
        "L4CON" => "Layer4 connection problem",
        "L6OK" => "Layer6 check passed",
        "L6TOUT" => "Layer6 timeout",
        "L6RSP" => "Layer6 invalid response",
        "L7TOUT" => "Layer7 timeout",
        "L7RSP" => "Layer7 invalid response",
        "L7OK" => "Layer7 check passed",
        "L7STS" => "Layer7 wrong status",
        _ => "Socket error",
    }
}

/// HAProxy's reason text: description, the code for L7 statuses that have one, the
/// info.
fn outcome(passed: bool, status: &'static str, code: Option<u16>, mut info: String) -> Outcome {
    // HAProxy keeps the text as a C string.
    if let Some(nul) = info.find('\0') {
        info.truncate(nul);
    }
    let code = if matches!(status, "L7OK" | "L7STS") {
        Some(code.unwrap_or(0))
    } else {
        None
    };
    let mut reason = description(status).to_string();
    if let Some(c) = code {
        reason.push_str(&format!(", code: {c}"));
    }
    if !info.is_empty() {
        reason.push_str(&format!(", info: \"{info}\""));
    }
    Outcome {
        passed,
        status,
        code,
        reason,
        info: Some(info),
        nolb: false,
    }
}

fn pass(status: &'static str, code: Option<u16>, info: String) -> Outcome {
    outcome(true, status, code, info)
}

fn fail(status: &'static str, code: Option<u16>, info: String) -> Outcome {
    outcome(false, status, code, info)
}
