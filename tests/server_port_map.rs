//! Servers without a port (`server s1 ADDR`, `ADDR:+N`, `ADDR:-N`): the connection
//! goes to the port the client connected to (plus N), as in HAProxy; two binds on
//! different ports reach two different server ports through the same server line, and
//! a pooled connection to one port never serves a request for the other. `check`
//! without a `port` is refused with its line, as HAProxy refuses it.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

use common::haproxy::{ringlb_cfg, ringlb_check, write_cfg};
use common::HttpClient;

/// A keep-alive HTTP server on `l` answering `port=PORT` (its own port).
fn port_server(l: TcpListener) {
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let body = format!("port={port}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
}

/// Serves `port=PORT` on 127.0.0.2:`port` (ringlb binds 127.0.0.1 only, so the same
/// port is free there unless someone else took it on 127.0.0.2).
fn serve_on_2(port: u16) {
    port_server(TcpListener::bind(("127.0.0.2", port)).unwrap());
}

fn body_at(addr: SocketAddr, c: &mut Option<HttpClient>) -> String {
    let c = c.get_or_insert_with(|| HttpClient::connect(addr));
    c.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n").body_str()
}

#[test]
fn a_server_without_port_uses_the_clients_destination_port() {
    // ringlb binds 127.0.0.1:0 (twice); then the servers listen on 127.0.0.2 at the
    // ports ringlb got (one of them 7 below: `127.0.0.2:-7`).
    let head = "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n";
    let lb = ringlb_cfg(&format!(
        "{head}frontend same\n    bind 127.0.0.1:0\n    default_backend plain\n\
         frontend shifted\n    bind 127.0.0.1:0\n    default_backend minus\n\
         backend plain\n    server s1 127.0.0.2\n\
         backend minus\n    server s1 127.0.0.2:-7 check port 1 inter 1h\n"
    ));
    let (same, shifted) = (lb.addr("same"), lb.addr("shifted"));
    serve_on_2(same.port());
    serve_on_2(shifted.port() - 7);
    let mut c1 = None;
    let mut c2 = None;
    for _ in 0..3 {
        assert_eq!(body_at(same, &mut c1), format!("port={}", same.port()));
        assert_eq!(
            body_at(shifted, &mut c2),
            format!("port={}", shifted.port() - 7)
        );
    }
    drop(lb);

    // One backend behind two binds: each request goes to its own port, pooled
    // connections included (keep-alive clients, alternating, and new ones).
    let lb = ringlb_cfg(&format!(
        "{head}frontend both\n    bind 127.0.0.1:0\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 127.0.0.2\n"
    ));
    let addrs = lb.addrs("both");
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let (ax, ay) = (addrs[0], addrs[1]);
    serve_on_2(ax.port());
    serve_on_2(ay.port());
    let mut x = None;
    let mut y = None;
    for _ in 0..4 {
        assert_eq!(body_at(ax, &mut x), format!("port={}", ax.port()));
        assert_eq!(body_at(ay, &mut y), format!("port={}", ay.port()));
        let mut fresh = None;
        assert_eq!(body_at(ay, &mut fresh), format!("port={}", ay.port()));
    }
}

#[test]
fn check_without_any_port_is_refused_with_its_line() {
    for (line, ok) in [
        ("server s1 127.0.0.2 check", false),
        ("server s1 127.0.0.2:-3 check", false),
        ("server s1 127.0.0.2:+x", false),
        ("server s1 127.0.0.2 check port 80", true),
        ("server s1 127.0.0.2:+1", true),
    ] {
        let text = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend f\n    bind 127.0.0.1:0\n    default_backend b\nbackend b\n    {line}\n"
        );
        let cfg = write_cfg(&text);
        let out = ringlb_check(cfg.path(), &[]);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.status.success(), ok, "{line}: {said}");
        if !ok {
            assert!(said.contains(":10:"), "{line}: no line 10 in {said}");
        }
    }
}

/// `server s1 *:PORT` is 0.0.0.0:PORT for HAProxy: the address the client connected
/// to (127.0.0.1 here; tests/haproxy_diff_server_any_addr.rs covers another).
#[test]
fn a_star_server_address_is_the_clients_destination() {
    let s1 = common::TestBackend::start("s1");
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
         frontend web\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 *:{}\n",
        s1.addr().port()
    ));
    let mut c = None;
    assert_eq!(body_at(lb.addr("web"), &mut c), "backend=s1");
}
