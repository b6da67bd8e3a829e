//! Large Content-Length bodies are spliced socket → pipe → socket. What can go wrong
//! there: a server that stops half-way (the client's connection is cut, the server's is
//! never pooled) and a client that stops reading (the server timeout does not apply,
//! the client timeout does, and the shard keeps serving).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::raw::read_head;
use common::*;

const ANNOUNCED: usize = 4 << 20;
const SENT: usize = 1 << 20;

/// A server that announces 4 MiB, sends 1 MiB and closes.
fn cutting_server() -> RawServer {
    RawServer::start(|mut s| {
        if read_head(&mut s).is_some() {
            let _ = s.write_all(
                format!("HTTP/1.1 200 OK\r\ncontent-length: {ANNOUNCED}\r\n\r\n").as_bytes(),
            );
            let _ = s.write_all(&vec![b'x'; SENT]);
        }
    })
}

#[test]
fn a_server_cut_short_cuts_the_client_and_is_not_pooled() {
    let cut_server = cutting_server();
    let cut = cut_server.addr();
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
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(
            got.len() - head_end,
            SENT,
            "the client got what the server sent, and nothing it never sent"
        );
        // A cut connection is never reused: each request opened a new one.
        assert_eq!(cut_server.accepts(), round);
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
