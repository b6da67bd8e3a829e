//! Large Content-Length bodies are spliced socket → pipe → socket. What can go wrong
//! there: a server that stops half-way (the client's connection is cut, the server's is
//! never pooled) and a client that stops reading (the server timeout does not apply,
//! the client timeout does, and the shard keeps serving).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const ANNOUNCED: usize = 4 << 20;
const SENT: usize = 1 << 20;

/// A server that announces 4 MiB, sends 1 MiB and closes; counts its connections.
fn cutting_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let counted = accepts.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {ANNOUNCED}\r\n\r\n").as_bytes(),
                );
                let _ = s.write_all(&vec![b'x'; SENT]);
            });
        }
    });
    (addr, accepts)
}

#[test]
fn a_server_cut_short_cuts_the_client_and_is_not_pooled() {
    let (cut, cut_accepts) = cutting_server();
    let good = TestBackend::start("good");
    let lb = RingLb::start(&format!(
        "[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"cut\"\n[[frontend.web.route]]\npath_prefix = \"/good\"\nbackend = \"good\"\n[backend.cut]\n[[backend.cut.server]]\naddr = \"{cut}\"\n[backend.good]\n[[backend.good.server]]\naddr = \"{}\"\n",
        good.addr()
    ));
    let addr = lb.addr("web");
    for round in 1..=3 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got);
        assert!(r.is_ok(), "the client is cut, not left waiting: {r:?}");
        let text = String::from_utf8_lossy(&got[..got.len().min(200)]).to_string();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            got.len() < ANNOUNCED,
            "the client did not get a body the server never sent"
        );
        // A cut connection is never reused: each request opened a new one.
        assert_eq!(cut_accepts.load(Ordering::SeqCst), round);
    }
    // The shard goes on serving.
    assert_eq!(http_get(addr, "/good").status, 200);
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_client_timeout() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&format!(
        "[timeout]\nclient = \"1s\"\nserver = \"30s\"\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
        b.addr()
    ));
    let addr = lb.addr("web");
    let mut s = TcpStream::connect(addr).unwrap();
    // 64 MB is far more than the kernel's socket buffers absorb.
    s.write_all(b"GET /bytes/64000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    let first_n = s.read(&mut first).unwrap();
    // Stop reading; meanwhile other clients are served.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http_get(addr, "/").status, 200);
    // After the client timeout ringlb gives up: reading now reaches the end quickly.
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut sink = [0u8; 65536];
    let mut total = 0usize;
    loop {
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("the stalled client was not dropped: {e} after {total} bytes"),
        }
    }
    // Head and body in full would be more than 64,000,000 bytes.
    assert!(total + first_n < 64_000_000, "the body was cut");
    assert_eq!(http_get(addr, "/").status, 200);
}
