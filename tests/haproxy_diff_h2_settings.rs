//! `tune.h2.header-table-size`, `tune.h2.initial-window-size`,
//! `tune.h2.max-frame-size` and `tune.h2.max-concurrent-streams` against HAProxy 2.6:
//! the same haproxy.cfg on both, and the SETTINGS frame each sends a new HTTP/2 client
//! must announce the same values for them (a default is not announced; the frame
//! size is capped at `tune.bufsize`), and an upload larger than the window goes
//! through both (curl over HTTP/2 with prior knowledge).

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::twins::{Side, Srv, Twins};

const BODY: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}" proto h2
    default_backend app

backend app
    server s1 "${APP}"
"#;

/// The values the server's first SETTINGS frame gives for HEADER_TABLE_SIZE (1),
/// MAX_CONCURRENT_STREAMS (3), INITIAL_WINDOW_SIZE (4) and MAX_FRAME_SIZE (5).
fn announced(addr: SocketAddr) -> Vec<(u16, u32)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let mut h = [0u8; 9];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[3], 4, "the first frame is SETTINGS");
    let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    let mut out: Vec<(u16, u32)> = p
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .filter(|(id, _)| matches!(id, 1 | 3 | 4 | 5))
        .collect();
    out.sort();
    out
}

/// POSTs `n` bytes over HTTP/2 and gives back the status and how many bytes the
/// server echoed.
fn upload(s: &Side, n: usize) -> (String, usize) {
    let out = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "--max-time", "20"])
        .args(["-o", "-", "-w", "\n%{http_code}", "--data-binary", "@-"])
        .arg(format!("http://{}/echo", s.addr("web")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&vec![b'x'; n])?;
            c.wait_with_output()
        })
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.len())
}

#[test]
fn announced_settings_match_haproxy() {
    for global in [
        "",
        "    tune.h2.header-table-size 8192\n    tune.h2.initial-window-size 131072\n    tune.h2.max-frame-size 32768\n    tune.h2.max-concurrent-streams 50\n",
        "    tune.bufsize 65536\n    tune.h2.max-frame-size 100000\n",
        "    tune.h2.initial-window-size 1024\n",
    ] {
        let t = Twins::start_with_global(global, BODY, &[("web", "PORT")], &[("APP", Srv::Up("app"))]);
        t.same(&format!("SETTINGS with:\n{global}"), |s| announced(s.addr("web")));
        let (code, len) = t.same(&format!("a 200 KB upload with:\n{global}"), |s| upload(s, 200_000));
        assert_eq!((code.as_str(), len), ("200", 200_000));
    }
}

#[test]
fn bad_values_are_refused_by_both() {
    for line in [
        "tune.h2.header-table-size 70000",
        "tune.h2.initial-window-size 2147483648",
        "tune.h2.max-frame-size 100",
    ] {
        let text = format!(
            "global\n    {line}\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend f\n    bind 127.0.0.1:80\n    default_backend app\n\nbackend app\n    server s1 127.0.0.1:1\n"
        );
        let f = common::haproxy::write_cfg(&text);
        let hx = common::haproxy::haproxy_check(f.path(), &[]);
        let lb = common::haproxy::ringlb_check(f.path(), &[]);
        assert!(!hx.status.success(), "{line}: HAProxy accepted it");
        assert!(!lb.status.success(), "{line}: ringlb accepted it");
        assert!(lb.stderr.contains(":2: '"), "{line}: {}", lb.stderr);
    }
}
