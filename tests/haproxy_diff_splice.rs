//! Differential test of `option splice-auto` in TCP mode: HAProxy 2.6 and ringlb run
//! the same haproxy.cfg, and the same exchanges through it (a large upload echoed
//! back, a large close-delimited download, small keep-alive requests before a large
//! response) give the same bytes, byte for byte, and the same byte counters in `show
//! stat`, while ringlb splices the bulk (`TotalSplicdedBytesOut`).

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::twins::{stat_view, Side, Srv, Twins};
use common::wire::{hex, pattern};
use sha2::{Digest, Sha256};

const BODY: &str = r#"
listen tcp
    mode tcp
    option splice-auto
    # HAProxy keeps one session open until a timeout here: a short one.
    timeout client 3s
    timeout server 3s
    bind "127.0.0.1:${FE}"
    server a "${A}"
"#;

/// Sends `request` on a fresh connection (writing and reading at once), reads to EOF:
/// (bytes, sha256 of them, the first line).
fn exchange(addr: SocketAddr, request: &[u8]) -> (usize, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let req = request.to_vec();
    let writer = thread::spawn(move || w.write_all(&req).expect("send the request"));
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to EOF");
    writer.join().unwrap();
    let first = got.split(|&b| b == b'\n').next().unwrap_or_default();
    (
        got.len(),
        hex(&Sha256::digest(&got)),
        String::from_utf8_lossy(first).trim_end().to_string(),
    )
}

fn spliced(s: &Side) -> u64 {
    let info = s.cli("show info");
    info.lines()
        .find_map(|l| l.strip_prefix("TotalSplicdedBytesOut: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: no TotalSplicdedBytesOut in {info}", s.who))
}

#[test]
fn splice_auto_gives_the_same_bytes_and_counters_as_haproxy() {
    let t = Twins::start(BODY, &[("tcp", "FE")], &[("A", Srv::Up("a"))]);
    const N: usize = 8 << 20;
    let mut upload = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {N}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    upload.extend_from_slice(&pattern(N));
    let chat_then_bulk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /id HTTP/1.1\r\nHost: x\r\nx-id: 7\r\n\r\nGET /bytes/3000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
    let requests: Vec<(&str, Vec<u8>)> = vec![
        ("an 8 MiB upload echoed", upload),
        (
            "an 8 MB close-delimited download",
            b"GET /bytes-close/8000000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("small requests, then 3 MB", chat_then_bulk),
    ];
    for (what, req) in &requests {
        let (n, sum, first) = t.same(what, |s| exchange(s.addr("tcp"), req));
        assert!(
            n > 1_000_000 && first.starts_with("HTTP/1.1 200"),
            "{what}: {n} {first} {sum}"
        );
    }
    t.wait_both("every connection closed", Duration::from_secs(10), |s| {
        stat_view(s, &["scur"]).iter().all(|(_, _, v)| v[0] == "0")
    });
    // (Not `stot`: HAProxy's start probe is a session of its own.)
    t.same("bytes in and out", |s| stat_view(s, &["bin", "bout"]));
    // ringlb spliced the bulk. HAProxy 2.6's own figure is not compared: it stays at 0
    // here (whether its heuristics never engaged or the counter misses TCP mode was
    // not looked into); what matters is that both give the same bytes.
    assert!(spliced(&t.lb) > 8 << 20, "ringlb spliced the bulk");
}
