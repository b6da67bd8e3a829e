//! Differential test of `option httplog` lines for what the proxy answers itself and
//! for clients that leave before sending a request: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg, log to one UDP syslog listener of the test (told apart by tag), and
//! each connection's line must say the same: the backend/server field, the status, the
//! termination state (`LR` for `return`, `redirect` and the stats page, `PR` for
//! `deny`, `CR` for a client gone before its request was whole), whether a request
//! time was measured (`%TR` of -1 or not), and the request (`<BADREQ>` when none).

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::twins::{Side, Srv, Twins};

/// A line's fields: (backend/server, TR measured, status, term, request).
type Line = (String, bool, String, String, String);

fn line_of(log: &UdpSocket, tag: &str, client: std::net::SocketAddr) -> Option<Line> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    let from = client.to_string();
    while Instant::now() < deadline {
        let Ok(n) = log.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        // <PRI>Mmm dd hh:mm:ss TAG[PID]: CLIENT [DATE] FRONTEND BACKEND/SERVER
        // TR/Tw/Tc/Tr/Ta STATUS BYTES CC CS TERM ... "REQUEST"
        let Some((head, rest)) = text.split_once("]: ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if !head.contains(&format!(" {tag}[")) || f.len() < 12 || f[0] != from {
            continue;
        }
        let request = rest.split_once('"').map_or("", |(_, r)| r.trim_end());
        return Some((
            f[3].to_string(),
            !f[4].starts_with("-1/"),
            f[5].to_string(),
            f[9].to_string(),
            request.trim_end_matches('"').to_string(),
        ));
    }
    None
}

/// What a connection that got no line shows (so that every difference is listed).
fn no_line() -> Line {
    (
        "NO LINE".into(),
        false,
        String::new(),
        String::new(),
        String::new(),
    )
}

fn tag(s: &Side) -> &'static str {
    if s.who == "haproxy" {
        "haproxy"
    } else {
        "ringlb"
    }
}

/// Sends `raw` on a fresh connection, reads until the proxy closes (or, with
/// `leave`, closes at once), and returns the connection's log line.
fn exchange(s: &Side, log: &UdpSocket, raw: &[u8], leave: bool) -> Line {
    let mut c = TcpStream::connect(s.addr("fe")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let client = c.local_addr().unwrap();
    c.write_all(raw).unwrap();
    if !leave {
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
    }
    drop(c);
    line_of(log, tag(s), client).unwrap_or_else(no_line)
}

#[test]
fn local_answers_and_early_leavers_are_logged_as_haproxy_logs_them() {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let body = format!(
        r#"
global
    log {} local0

frontend fe
    bind "127.0.0.1:${{PORT}}"
    log global
    option httplog
    stats uri /stats
    http-request return status 200 content-type text/plain string ok if {{ path /return }}
    http-request redirect location /elsewhere if {{ path /redirect }}
    http-request deny if {{ path /deny }}
    http-request deny deny_status 429 if {{ path /limited }}
    default_backend app

backend app
    server s1 "${{S1}}"
"#,
        log.local_addr().unwrap()
    );
    let t = Twins::start(&body, &[("fe", "PORT")], &[("S1", Srv::Up("s1"))]);
    let ask = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let cases: Vec<(String, Vec<u8>, bool)> = vec![
        ("served".into(), ask("/served").into_bytes(), false),
        ("return".into(), ask("/return").into_bytes(), false),
        ("redirect".into(), ask("/redirect").into_bytes(), false),
        ("deny".into(), ask("/deny").into_bytes(), false),
        ("deny 429".into(), ask("/limited").into_bytes(), false),
        ("stats page".into(), ask("/stats").into_bytes(), false),
        ("nothing sent".into(), Vec::new(), true),
        ("half a request line".into(), b"GE".to_vec(), true),
    ];
    t.same_all(&cases, |s, (_, raw, leave)| {
        // A client that leaves: give the proxy a moment to see the bytes first.
        if *leave && !raw.is_empty() {
            let mut c = TcpStream::connect(s.addr("fe")).unwrap();
            let client = c.local_addr().unwrap();
            c.write_all(raw).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            drop(c);
            return line_of(&log, tag(s), client).unwrap_or_else(no_line);
        }
        exchange(s, &log, raw, *leave)
    });
}
