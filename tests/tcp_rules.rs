//! TCP rules on the real binary: SNI routing in `mode tcp` passes the TLS bytes through
//! untouched (the server gets exactly what the client sent, split or not); without a
//! ClientHello the inspect delay ends and the default backend gets the bytes; `reject`
//! closes, `silent-drop` resets; `tcp-request connection` rules see the client's
//! address; `tcp-request content` counters and variables reach HTTP rules.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::haproxy::ringlb_cfg;
use common::*;

/// What each server got, by server name.
type Log = Arc<Mutex<Vec<(&'static str, Vec<u8>)>>>;

/// A server that echoes what it gets, and keeps a copy with its name.
fn echo(name: &'static str, log: Log) -> RawServer {
    RawServer::start(move |mut s| {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        s.set_read_timeout(Some(Duration::from_millis(500))).ok();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let _ = s.write_all(&buf[..n]);
        }
        log.lock().unwrap().push((name, got));
    })
}

/// A TLS 1.2 ClientHello for `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[9u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn send(addr: std::net::SocketAddr, pieces: &[&[u8]], pause: Duration) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        c.write_all(p).unwrap();
    }
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut back = vec![0u8; total];
    let _ = c.read_exact(&mut back);
    back
}

#[test]
fn sni_routing_passes_tls_through_untouched() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let one = echo("one", log.clone());
    let other = echo("other", log.clone());
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 2\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend tls\n    bind 127.0.0.1:0\n    tcp-request inspect-delay 1s\n    tcp-request content accept if {{ req.ssl_hello_type 1 }}\n    use_backend one if {{ req.ssl_sni -i one.example }}\n    default_backend other\nbackend one\n    server o {}\nbackend other\n    server x {}\n",
        one.addr(),
        other.addr()
    ));
    let addr = lb.addr("tls");
    let hello = client_hello("ONE.example");
    // Whole, then split in three writes: the same bytes reach `one`, and come back.
    assert_eq!(send(addr, &[&hello], Duration::ZERO), hello);
    let (a, b) = hello.split_at(7);
    let (b, c) = b.split_at(30);
    assert_eq!(send(addr, &[a, b, c], Duration::from_millis(50)), hello);
    let other_hello = client_hello("two.example");
    assert_eq!(send(addr, &[&other_hello], Duration::ZERO), other_hello);
    wait_for(
        "the servers logged 3 connections",
        Duration::from_secs(5),
        || log.lock().unwrap().len() == 3,
    );
    let mut seen = log.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("one", hello.clone()),
            ("one", hello.clone()),
            ("other", other_hello.clone())
        ]
    );
}

#[test]
fn without_a_client_hello_the_inspect_delay_ends_on_the_default_backend() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let one = echo("one", log.clone());
    let other = echo("other", log.clone());
    let lb = ringlb_cfg(&format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend tls\n    bind 127.0.0.1:0\n    tcp-request inspect-delay 300ms\n    use_backend one if {{ req.ssl_sni -i one.example }}\n    default_backend other\nbackend one\n    server o {}\nbackend other\n    server x {}\n",
        one.addr(),
        other.addr()
    ));
    let started = Instant::now();
    // Plain text: not TLS, decided at once (no match), the default gets it.
    assert_eq!(send(lb.addr("tls"), &[b"hello"], Duration::ZERO), b"hello");
    // Half a ClientHello: the rule waits for the inspect delay, then gives up.
    let hello = client_hello("one.example");
    let mut c = TcpStream::connect(lb.addr("tls")).unwrap();
    c.write_all(&hello[..20]).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut back = [0u8; 20];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back[..], &hello[..20]);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited the delay"
    );
    drop(c);
    wait_for("two connections logged", Duration::from_secs(5), || {
        log.lock().unwrap().len() == 2
    });
    assert!(log.lock().unwrap().iter().all(|(n, _)| *n == "other"));
}

#[test]
fn reject_closes_and_silent_drop_resets() {
    let b = TestBackend::start("b");
    let lb = ringlb_cfg(&format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0\n    tcp-request content reject if {{ req.hdr(x-reject) -m found }}\n    tcp-request content silent-drop if {{ req.hdr(x-drop) -m found }}\n    tcp-request content track-sc0 src\n    tcp-request content set-var(txn.seen) str(yes)\n    stick-table type ip size 10 expire 1m store http_req_cnt\n    http-request set-header X-Seen %[var(txn.seen)]/%[sc0_http_req_cnt]\n    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    ));
    let addr = lb.addr("web");
    let mut c = HttpClient::connect(addr);
    assert!(c
        .try_request("GET / HTTP/1.1\r\nHost: h\r\nX-Reject: 1\r\n\r\n")
        .is_err());
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nX-Drop: 1\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 16];
    let err = c.read(&mut buf).expect_err("a reset, not an orderly close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(b.requests(), 0);
    let r = HttpClient::connect(addr).request("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, 200);
    let seen = b.last_headers();
    assert!(
        seen.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-seen") && v == "yes/1"),
        "{seen:?}"
    );
}

#[test]
fn connection_rules_see_the_client_address() {
    let b = TestBackend::start("b");
    let lb = ringlb_cfg(&format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0\n    tcp-request connection reject if {{ src 127.0.0.7 }}\n    tcp-request connection set-var(sess.from) src\n    http-request set-header X-From %[var(sess.from)]\n    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    ));
    let addr = lb.addr("web");
    let mut refused = HttpClient::connect_from(addr, "127.0.0.7".parse().unwrap());
    assert!(refused
        .try_request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .is_err());
    let mut c = HttpClient::connect_from(addr, "127.0.0.8".parse().unwrap());
    // Both requests of the connection see the session variable.
    for _ in 0..2 {
        assert_eq!(c.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n").status, 200);
        let seen = b.last_headers();
        assert!(
            seen.iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("x-from") && v == "127.0.0.8"),
            "{seen:?}"
        );
    }
}
