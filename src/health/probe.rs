//! One active check on a fresh connection: a TCP connect (and a TLS handshake with
//! `check-ssl`), or an HTTP request whose status line must match, over TLS with
//! `check-ssl`. Results carry HAProxy-style reasons for the flip log.

use std::net::SocketAddr;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::{CheckKind, HealthCheck};
use crate::proxy_protocol::Version;

pub struct Outcome {
    pub passed: bool,
    /// HAProxy's check status: L4OK, L4CON, L4TOUT, L7OK, L7STS, L7TOUT, L7RSP.
    pub status: &'static str,
    pub code: Option<u16>,
    pub reason: String,
    /// `last_chk` when the check says it (tcp-check); else taken from `reason`.
    pub info: Option<String>,
    /// A 404 under `disable-on-404`: a running server goes NOLB (the health thread
    /// knows whether it runs; a stopped one is judged by `passed`).
    pub nolb: bool,
}

impl Outcome {
    fn pass(status: &'static str, code: Option<u16>, reason: String) -> Self {
        Outcome {
            passed: true,
            status,
            code,
            reason,
            info: None,
            nolb: false,
        }
    }
    fn fail(status: &'static str, code: Option<u16>, reason: String) -> Self {
        Outcome {
            passed: false,
            status,
            code,
            reason,
            info: None,
            nolb: false,
        }
    }
}

/// TLS for a check (`check-ssl`): the server's client config and the name to send.
#[derive(Clone)]
pub struct CheckTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
}

/// Runs one check against `addr` (already adjusted for a separate check port/address).
pub async fn probe(
    addr: SocketAddr,
    check: &HealthCheck,
    proxy: Option<Version>,
    tls: Option<&CheckTls>,
    h2: bool,
) -> Outcome {
    let connect = monoio::time::timeout(check.timeout, TcpStream::connect_addr(addr)).await;
    let stream = match connect {
        Err(_) => return Outcome::fail("L4TOUT", None, "Layer4 timeout".into()),
        Ok(Err(e)) => {
            return Outcome::fail(
                "L4CON",
                None,
                format!("Layer4 connection problem, info: \"{e}\""),
            )
        }
        Ok(Ok(s)) => s,
    };
    let mut stream = stream;
    if let Some(v) = proxy {
        // Our own connection: v2 LOCAL, or v1 with the connection's addresses.
        let mut hdr = Vec::with_capacity(64);
        let local = stream.local_addr().unwrap_or(addr);
        crate::proxy_protocol::write_local(v, local, addr, &mut hdr);
        let (res, _) = stream.write_all(hdr).await;
        if let Err(e) = res {
            return Outcome::fail(
                "L4CON",
                None,
                format!("Layer4 connection problem, info: \"{e}\""),
            );
        }
    }
    // A `proto h2` server's HTTP check goes over HTTP/2, as HAProxy 2.6 sends it.
    if h2 && matches!(check.kind, CheckKind::Http { .. }) {
        return Box::pin(speak_h2(stream, addr, check, tls)).await;
    }
    let Some(tls) = tls else {
        return speak(stream, addr, check, false).await;
    };
    let deadline = monoio::time::Instant::now() + check.timeout;
    match crate::tls::connect(stream, tls.config.clone(), tls.name.clone(), deadline).await {
        Ok(s) => speak(s, addr, check, true).await,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            Outcome::fail("L6TOUT", None, "Layer6 timeout".into())
        }
        Err(e) => Outcome::fail(
            "L6RSP",
            None,
            format!("Layer6 invalid response, info: \"SSL handshake failure ({e})\""),
        ),
    }
}

/// An HTTP check over HTTP/2 (a connection of its own; TLS with the server's client
/// config when `tls`): the request and the status line read as over HTTP/1.1.
async fn speak_h2(
    stream: TcpStream,
    addr: SocketAddr,
    check: &HealthCheck,
    tls: Option<&CheckTls>,
) -> Outcome {
    let layer4 = |e: std::io::Error| {
        Outcome::fail(
            "L4CON",
            None,
            format!("Layer4 connection problem, info: \"{e}\""),
        )
    };
    let io = match stream.try_into_poll_io() {
        Ok(io) => io,
        Err((e, _)) => return layer4(e),
    };
    let deadline = monoio::time::Instant::now() + check.timeout;
    let h2 = match tls {
        None => monoio::time::timeout_at(deadline, crate::h2map::upstream::single(io)).await,
        Some(t) => {
            let connector = tokio_rustls::TlsConnector::from(t.config.clone());
            match monoio::time::timeout_at(deadline, connector.connect(t.name.clone(), io)).await {
                Err(_) => return Outcome::fail("L6TOUT", None, "Layer6 timeout".into()),
                Ok(Err(e)) => {
                    return Outcome::fail(
                        "L6RSP",
                        None,
                        format!("Layer6 invalid response, info: \"SSL handshake failure ({e})\""),
                    )
                }
                Ok(Ok(s)) => {
                    monoio::time::timeout_at(deadline, crate::h2map::upstream::single(s)).await
                }
            }
        }
    };
    match h2 {
        Err(_) => Outcome::fail("L7TOUT", None, "Layer7 timeout".into()),
        Ok(Err(e)) => Outcome::fail(
            "L7RSP",
            None,
            format!("Layer7 invalid response, info: \"{e}\""),
        ),
        Ok(Ok(stream)) => speak(stream, addr, check, tls.is_some()).await,
    }
}

/// The check's own exchange, once connected (and TLS set up, `tls`).
async fn speak<S: AsyncReadRent + AsyncWriteRent>(
    stream: S,
    addr: SocketAddr,
    check: &HealthCheck,
    tls: bool,
) -> Outcome {
    match &check.kind {
        CheckKind::Tcp | CheckKind::TcpCheck(_) | CheckKind::External(_) if tls => {
            Outcome::pass("L6OK", None, "Layer6 check passed".into())
        }
        CheckKind::Tcp | CheckKind::TcpCheck(_) | CheckKind::External(_) => {
            Outcome::pass("L4OK", None, "Layer4 check passed".into())
        }
        CheckKind::Http {
            method,
            path,
            host,
            expect,
            disable_on_404,
        } => {
            let host = host.clone().unwrap_or_else(|| addr.to_string());
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringlb-health-check\r\nConnection: close\r\n\r\n"
            );
            let want_body = match expect {
                crate::config::StatusMatch::Body(text) => Some(text.as_bytes()),
                _ => None,
            };
            let mut outcome = match monoio::time::timeout(
                check.timeout,
                status_line(stream, request, want_body.is_some()),
            )
            .await
            {
                Err(_) => Outcome::fail("L7TOUT", None, "Layer7 timeout".into()),
                Ok(Err(e)) => Outcome::fail(
                    "L7RSP",
                    None,
                    format!("Layer7 invalid response, info: \"{e}\""),
                ),
                Ok(Ok((code, _, body)))
                    if want_body.is_some_and(|t| !body.windows(t.len().max(1)).any(|w| w == t)) =>
                {
                    Outcome::fail(
                        "L7RSP",
                        Some(code),
                        "Layer7 response error, info: \"string not found\"".into(),
                    )
                }
                Ok(Ok((code, _, _))) if expect.matches(code) => Outcome::pass(
                    "L7OK",
                    Some(code),
                    format!("Layer7 check passed, code: {code}"),
                ),
                Ok(Ok((code, text, _))) => Outcome::fail(
                    "L7STS",
                    Some(code),
                    format!("Layer7 wrong status, code: {code}, info: \"{text}\""),
                ),
            };
            outcome.nolb = *disable_on_404 && outcome.code == Some(404);
            outcome
        }
    }
}

/// Sends the request and reads the status line: (code, reason phrase, and with
/// `body` everything after the head up to 64 KiB or the server's close).
async fn status_line<S: AsyncReadRent + AsyncWriteRent>(
    mut stream: S,
    request: String,
    body: bool,
) -> Result<(u16, String, Vec<u8>), String> {
    let (res, _) = stream.write_all(request.into_bytes()).await;
    res.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            if !body {
                let (code, text) = parse_status_line(&buf[..end])?;
                return Ok((code, text, Vec::new()));
            }
            let (code, text) = parse_status_line(&buf[..end])?;
            return read_body(stream, buf, end).await.map(|b| (code, text, b));
        }
        if buf.len() >= 1024 {
            return Err("status line too long".into());
        }
        let len = buf.len();
        let (res, b) = stream.read(buf.slice_mut(len..1024)).await;
        buf = b.into_inner();
        match res {
            Ok(0) => return Err("connection closed before the status line".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Reads the rest of a check response (until close, at most 64 KiB) and returns what
/// follows the head.
async fn read_body<S: AsyncReadRent>(
    mut stream: S,
    mut buf: Vec<u8>,
    _status_end: usize,
) -> Result<Vec<u8>, String> {
    const MAX: usize = 64 * 1024;
    buf.reserve(MAX.saturating_sub(buf.len()));
    while buf.len() < MAX {
        let len = buf.len();
        let (res, b) = stream.read(buf.slice_mut(len..MAX)).await;
        buf = b.into_inner();
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => buf[i + 4..].to_vec(),
        None => Vec::new(),
    })
}

fn parse_status_line(line: &[u8]) -> Result<(u16, String), String> {
    let text = std::str::from_utf8(line).map_err(|_| "status line is not text".to_string())?;
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!("not an HTTP status line: {text:?}"));
    }
    let code: u16 = code
        .parse()
        .map_err(|_| format!("bad status code in {text:?}"))?;
    Ok((code, parts.next().unwrap_or("").to_string()))
}

/// The address a server is checked on.
pub fn check_addr(server: SocketAddr, check: &HealthCheck) -> SocketAddr {
    SocketAddr::new(
        check.addr.unwrap_or(server.ip()),
        check.port.unwrap_or(server.port()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 OK").unwrap(),
            (200, "OK".into())
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable")
                .unwrap()
                .0,
            503
        );
        assert!(parse_status_line(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_status_line(b"HTTP/1.1 2000 X").is_err());
    }
}
