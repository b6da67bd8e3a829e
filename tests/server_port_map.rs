//! Servers without a port (`server s1 ADDR`, `ADDR:+N`, `ADDR:-N`): the connection
//! goes to the port the client connected to (plus N), as in HAProxy; two binds on
//! different ports reach two different server ports through the same server line, and
//! a pooled connection to one port never serves a request for the other. `check`
//! without a `port` is refused with its line, as HAProxy refuses it.

mod common;

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

/// A listener on 127.0.0.2 whose port, plus `shift`, is a valid port.
fn listener_on_2(shift: u16) -> TcpListener {
    loop {
        let l = TcpListener::bind("127.0.0.2:0").unwrap();
        if l.local_addr().unwrap().port().checked_add(shift).is_some() {
            return l;
        }
    }
}

fn body_at(addr: SocketAddr, c: &mut Option<HttpClient>) -> String {
    let c = c.get_or_insert_with(|| HttpClient::connect(addr));
    c.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n").body_str()
}

#[test]
fn a_server_without_port_uses_the_clients_destination_port() {
    // The servers listen on 127.0.0.2:A and 127.0.0.2:B; ringlb binds 127.0.0.1:A and
    // 127.0.0.1:B+7, with one server `127.0.0.2` and one `127.0.0.2:-7`.
    let a = listener_on_2(0);
    let b = listener_on_2(7);
    let (pa, pb) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
    port_server(a);
    port_server(b);
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
         frontend same\n    bind 127.0.0.1:{pa}\n    default_backend plain\n\
         frontend shifted\n    bind 127.0.0.1:{}\n    default_backend minus\n\
         backend plain\n    server s1 127.0.0.2\n\
         backend minus\n    server s1 127.0.0.2:-7 check port {pb}\n",
        pb + 7,
    ));
    let mut c1 = None;
    let mut c2 = None;
    for _ in 0..3 {
        assert_eq!(body_at(lb.addr("same"), &mut c1), format!("port={pa}"));
        assert_eq!(body_at(lb.addr("shifted"), &mut c2), format!("port={pb}"));
    }
    drop(lb);

    // One backend behind two binds: each request goes to its own port, pooled
    // connections included (keep-alive clients, alternating).
    let a2 = listener_on_2(0);
    let pa2 = a2.local_addr().unwrap().port();
    port_server(a2);
    let text = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
         frontend both\n    bind 127.0.0.1:{pa2}\n    bind 127.0.0.1:{pb}\n    default_backend app\n\
         backend app\n    server s1 127.0.0.2\n"
    );
    let lb = ringlb_cfg(&text);
    let mut x = None;
    let mut y = None;
    let ax: SocketAddr = format!("127.0.0.1:{pa2}").parse().unwrap();
    let ay: SocketAddr = format!("127.0.0.1:{pb}").parse().unwrap();
    for _ in 0..4 {
        assert_eq!(body_at(ax, &mut x), format!("port={pa2}"));
        assert_eq!(body_at(ay, &mut y), format!("port={pb}"));
        // New client connections too: the server side is pooled.
        let mut fresh = None;
        assert_eq!(body_at(ay, &mut fresh), format!("port={pb}"));
    }
    drop(lb);
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
