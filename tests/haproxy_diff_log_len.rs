//! How long a log line and its request line may be, against HAProxy 2.6: a target's
//! `len` (1024 bytes by default, the newline included) cuts the whole line, and
//! `tune.http.logurilen` (1023 bytes kept by default) cuts the captured request line
//! before `%r` quotes it. The same haproxy.cfg runs on both with a 2,000-byte URI;
//! the line's length and its quoted request's must be the same (the rest of a line,
//! dates and ports, differs by nature).

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::haproxy::{ringlb_cfg, HaProxy};
use common::*;

fn config(port: u16, log: &str, global: &str) -> String {
    format!(
        "global\n    nbthread 1\n    log stdout {log} format raw local0\n{global}\ndefaults\n    log global\n    mode http\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend fe\n    bind 127.0.0.1:{port}\n    http-request return status 200 content-type text/plain string ok\n"
    )
}

/// (the line's length, its quoted request's) for a GET of a 2,000-byte path.
fn measure(addr: SocketAddr, output: &dyn Fn() -> String) -> (usize, usize) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let path = "a".repeat(2000);
    write!(
        c,
        "GET /{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = output().lines().find(|l| l.contains("\"GET /aaa")) {
            let quoted = &line[line.find('"').unwrap()..];
            return (line.len(), quoted.len());
        }
        assert!(Instant::now() < deadline, "no log line:\n{}", output());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lines_and_request_lines_are_cut_as_haproxy_cuts_them() {
    for (log, global) in [
        ("", ""),
        ("len 200", ""),
        ("len 4000", ""),
        ("len 4000", "    tune.http.logurilen 50\n"),
    ] {
        let held = ReservedPort::new();
        let port = held.port();
        drop(held);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let hx = HaProxy::start(&config(port, log, global), &[addr], None);
        let hx_seen = measure(addr, &|| hx.output());
        drop(hx);
        let lb = ringlb_cfg(&config(0, log, global));
        let lb_seen = measure(lb.addr("fe"), &|| lb.stdout_lines().join("\n"));
        if log == "len 4000" {
            // Whole lines: the quoted request's length is the capture's.
            assert_eq!(
                hx_seen.1, lb_seen.1,
                "{global:?}: quoted request, HAProxy vs ringlb"
            );
        } else {
            // Cut lines: where the cut falls in the request depends on the ports'
            // digits; the line's length must be the same.
            assert_eq!(hx_seen.0, lb_seen.0, "{log:?}: line, HAProxy vs ringlb");
        }
    }
}

#[test]
fn bad_log_options_are_refused_on_their_line() {
    for (opt, why) in [
        (
            "len 10 format raw",
            "'len' expects a length between 80 and 65535",
        ),
        ("sample 1:2 format raw", "'log ... sample'"),
        (
            "format rfc5424",
            "'log ... format rfc5424' is not supported by ringlb",
        ),
    ] {
        let text = format!(
            "global\n    log stdout {opt} local0\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend f\n    bind 127.0.0.1:80\n    http-request return status 200\n"
        );
        let f = common::haproxy::write_cfg(&text);
        let out = common::haproxy::ringlb_check(f.path(), &[]);
        assert!(!out.status.success(), "{opt}: accepted");
        assert!(
            out.stderr.contains(":2: ") && out.stderr.contains(why),
            "{opt}: {}",
            out.stderr
        );
    }
}
