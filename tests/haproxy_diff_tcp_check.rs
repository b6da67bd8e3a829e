//! Differential test of `option tcp-check` with `tcp-check` sequences and of the
//! protocol checks built on it (`redis-check`, `mysql-check`, `pgsql-check`,
//! `smtpchk`, `ldap-check`): HAProxy 2.6 and ringlb check the same small protocol
//! servers written here (each speaks just enough of its protocol: a Redis `+PONG`, a
//! MySQL handshake and OK or error packet, a PostgreSQL AuthenticationOk or error, an
//! SMTP `220`/`250` or `554`, an LDAP bind response) and must agree, server by server,
//! on UP/DOWN and on `show stat`'s `check_status`, `check_code` and `last_chk`.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::haproxy::{cli, render, ringlb_cfg, HaProxy};
use common::raw::RawServer;
use common::tcp::ReservedPort;
use common::twins::stat_rows;

/// Reads one chunk (what the check sent), with a bound.
fn read_some(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

/// A server that reads the check's bytes, answers `reply` and closes.
fn answering(reply: &'static [u8]) -> RawServer {
    RawServer::start(move |mut s| {
        let _ = read_some(&mut s);
        let _ = s.write_all(reply);
    })
}

/// A server that speaks first (`greeting`), then answers each chunk it reads with
/// the next of `replies`, and closes once the check closed or replies ran out.
fn greeting(greeting: Vec<u8>, replies: Vec<Vec<u8>>) -> RawServer {
    RawServer::start(move |mut s| {
        let _ = s.write_all(&greeting);
        for r in &replies {
            if read_some(&mut s).is_empty() {
                return;
            }
            let _ = s.write_all(r);
        }
        // Let the check read everything before the close.
        let _ = read_some(&mut s);
    })
}

/// A MySQL initial handshake packet (protocol 10, server version `v`).
fn mysql_handshake(v: &str) -> Vec<u8> {
    let mut body = vec![10];
    body.extend_from_slice(v.as_bytes());
    body.push(0);
    body.extend_from_slice(&[1, 0, 0, 0]);
    body.extend_from_slice(b"abcdefgh\0");
    body.extend_from_slice(&[0xff, 0xf7, 0x21, 0x02, 0x00, 0xff, 0x81, 0x15]);
    body.extend_from_slice(&[0; 10]);
    body.extend_from_slice(b"ijklmnopqrst\0");
    let mut p = vec![body.len() as u8, 0, 0, 0];
    p.extend(body);
    p
}

fn mysql_error(seq: u8) -> Vec<u8> {
    let mut body = vec![0xff, 0x15, 0x04];
    body.extend_from_slice(b"#28000Access denied for user 'haproxy'");
    let mut p = vec![body.len() as u8, 0, 0, seq];
    p.extend(body);
    p
}

const MYSQL_OK: &[u8] = &[7, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0];

const CONFIG: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 2s
    default-server inter 150ms rise 1 fall 1

frontend fe
    bind "${FE}"
    default_backend seq

backend seq
    option tcp-check
    tcp-check comment "ping it"
    tcp-check send PING\r\n
    tcp-check expect string +PONG
    server ok "${PONG}" check
    server err "${ERR}" check
    server closed "${CLOSED}" check
    server refused "${DEAD}" check

backend plain
    option tcp-check
    server ok "${PONG}" check
    server refused "${DEAD}" check

backend steps
    option tcp-check
    tcp-check connect port ${PONG_PORT}
    tcp-check send-binary 50494e470d0a
    tcp-check expect rstring ^\+P[O]NG comment "pong"
    tcp-check send PING\r\n
    tcp-check expect ! string ERR
    server via-port "${DEAD}" check
    server err "${ERR}" check port ${ERR_PORT}

backend binary
    option tcp-check
    tcp-check send PING\r\n
    tcp-check expect min-recv 3 binary 2b504f on-success "pong seen" error-status L7STS
    server ok "${PONG}" check
    server err "${ERR}" check

backend redis
    option redis-check
    server ok "${PONG}" check
    server err "${ERR}" check

backend mysql
    option mysql-check
    server ok "${MYSQL}" check
    server denied "${MYSQL_DENIED}" check

backend mysqlu
    option mysql-check user haproxy
    server ok "${MYSQL_USER}" check
    server denied "${MYSQL_USER_DENIED}" check

backend pgsql
    option pgsql-check user postgres
    server ok "${PG}" check
    server denied "${PG_DENIED}" check

backend smtp
    option smtpchk EHLO checker.example
    server ok "${SMTP}" check
    server busy "${SMTP_BUSY}" check

backend ldap
    option ldap-check
    server ok "${LDAP}" check
    server denied "${LDAP_DENIED}" check
"#;

/// (backend, server) → the columns compared.
type View = Vec<(String, String, Vec<String>)>;

const COLUMNS: [&str; 4] = ["status", "check_status", "check_code", "last_chk"];

fn view(sock: &Path) -> Option<View> {
    let rows = stat_rows(&cli(sock, "show stat"));
    let mut out = Vec::new();
    for r in rows {
        let sv = r.get("svname").cloned().unwrap_or_default();
        if sv == "FRONTEND" || sv == "BACKEND" {
            continue;
        }
        let cols: Vec<String> = COLUMNS
            .iter()
            .map(|c| r.get(*c).cloned().unwrap_or_default())
            .collect();
        // A check in progress (HAProxy's `* `) or none done yet: not settled.
        if cols[1].is_empty() || cols[1].starts_with("* ") {
            return None;
        }
        out.push((r["pxname"].clone(), sv, cols));
    }
    Some(out)
}

#[test]
fn tcp_check_sequences_and_protocol_checks_match_haproxy() {
    let pong = RawServer::start(|mut s| {
        let got = read_some(&mut s);
        if got.windows(4).any(|w| w == b"PING") {
            let _ = s.write_all(b"+PONG\r\n");
        }
        // A second PING (the `steps` backend) gets a second answer.
        let got = read_some(&mut s);
        if got.windows(4).any(|w| w == b"PING") {
            let _ = s.write_all(b"+PONG\r\n");
        }
    });
    let err = answering(b"-ERR unknown command\r\n");
    let closed = RawServer::start(drop);
    let dead = ReservedPort::new();
    let mysql = greeting(mysql_handshake("8.0.36-ringlb"), vec![]);
    let mysql_denied = greeting(mysql_error(0), vec![]);
    let mysql_user = greeting(mysql_handshake("8.0.36-ringlb"), vec![MYSQL_OK.to_vec()]);
    let mysql_user_denied = greeting(mysql_handshake("8.0.36-ringlb"), vec![mysql_error(2)]);
    // AuthenticationOk; then an ErrorResponse.
    let pg = answering(b"R\x00\x00\x00\x08\x00\x00\x00\x00Z\x00\x00\x00\x05I");
    let pg_denied =
        answering(b"E\x00\x00\x00\x2aSFATAL\x00C28000\x00Mno such role postgres\x00\x00");
    let smtp = greeting(
        b"220 mail.example ESMTP ready\r\n".to_vec(),
        vec![
            b"250-mail.example hello\r\n250 SIZE 1000\r\n".to_vec(),
            b"221 2.0.0 bye\r\n".to_vec(),
        ],
    );
    let smtp_busy = greeting(b"554 mail.example no service here\r\n".to_vec(), vec![]);
    let ldap = answering(&[
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
    ]);
    let ldap_denied = answering(&[
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x31, 0x04, 0x00, 0x04, 0x00,
    ]);

    let a = |s: &RawServer| s.addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let vars = |sock: &Path, fe: String| {
        vec![
            ("SOCK", sock.display().to_string()),
            ("FE", fe),
            ("PONG", a(&pong)),
            ("PONG_PORT", pong.addr().port().to_string()),
            ("ERR", a(&err)),
            ("ERR_PORT", err.addr().port().to_string()),
            ("CLOSED", a(&closed)),
            ("DEAD", dead.addr().to_string()),
            ("MYSQL", a(&mysql)),
            ("MYSQL_DENIED", a(&mysql_denied)),
            ("MYSQL_USER", a(&mysql_user)),
            ("MYSQL_USER_DENIED", a(&mysql_user_denied)),
            ("PG", a(&pg)),
            ("PG_DENIED", a(&pg_denied)),
            ("SMTP", a(&smtp)),
            ("SMTP_BUSY", a(&smtp_busy)),
            ("LDAP", a(&ldap)),
            ("LDAP_DENIED", a(&ldap_denied)),
        ]
    };
    let hx_sock = dir.path().join("hx.sock");
    let lb_sock = dir.path().join("lb.sock");
    let hx_fe = ReservedPort::new();
    let hx_cfg = render(CONFIG, &vars(&hx_sock, hx_fe.addr().to_string()));
    let lb_cfg = render(CONFIG, &vars(&lb_sock, "127.0.0.1:0".into()));
    let _hx = HaProxy::start(&hx_cfg, &[hx_fe.addr()], Some(&hx_sock));
    let _lb = ringlb_cfg(&lb_cfg);

    // Both settle on the same verdicts; a difference that lasts is a failure.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut hx, mut lb) = (None, None);
    loop {
        if let Some(v) = view(&hx_sock) {
            hx = Some(v);
        }
        if let Some(v) = view(&lb_sock) {
            lb = Some(v);
        }
        if hx.is_some() && hx == lb {
            break;
        }
        if Instant::now() >= deadline {
            let show = |v: &Option<View>| {
                v.as_ref()
                    .map(|v| {
                        v.iter()
                            .map(|(b, s, c)| format!("{b}/{s}: {c:?}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            };
            panic!(
                "HAProxy and ringlb disagree on {COLUMNS:?}\n--- haproxy ---\n{}\n--- ringlb ---\n{}",
                show(&hx),
                show(&lb)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // What was agreed on is what each server deserves.
    let v = hx.unwrap();
    let status = |b: &str, s: &str| {
        v.iter()
            .find(|(pb, ps, _)| pb == b && ps == s)
            .map(|(_, _, c)| c[0].clone())
            .unwrap_or_else(|| panic!("no {b}/{s}"))
    };
    for (b, s, up) in [
        ("seq", "ok", true),
        ("seq", "err", false),
        ("seq", "closed", false),
        ("seq", "refused", false),
        ("plain", "ok", true),
        ("plain", "refused", false),
        ("steps", "via-port", true),
        ("steps", "err", true),
        ("binary", "ok", true),
        ("binary", "err", false),
        ("redis", "ok", true),
        ("redis", "err", false),
        ("mysql", "ok", true),
        ("mysql", "denied", false),
        ("mysqlu", "ok", true),
        ("mysqlu", "denied", false),
        ("pgsql", "ok", true),
        ("pgsql", "denied", false),
        ("smtp", "ok", true),
        ("smtp", "busy", false),
        ("ldap", "ok", true),
        ("ldap", "denied", false),
    ] {
        assert_eq!(status(b, s) == "UP", up, "{b}/{s}: {:?}", status(b, s));
    }
}
