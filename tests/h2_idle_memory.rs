//! Memory per idle HTTP/2 connection (issue 19): a cleartext h2 connection with no
//! stream open holds no read, write or HPACK scratch buffer (the h2 crate's, released
//! while it is idle: patches/h2), so 1,000 of them, new or after a stream, cost at
//! most `BOUND_NEW` or `BOUND_AFTER_STREAM` of RSS each on the real binary. Each
//! connection still serves a stream afterwards: its buffers are taken again.
//! `benches/h2_compare.py --scenarios idleh2` measures the release build over TLS
//! beside HAProxy.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::h2::{block, frame, END_HEADERS, END_STREAM, PREFACE};
use common::haproxy::ringlb_cfg;
use common::*;

const CONNS: usize = 1000;

/// The bounds per connection, new and after a stream. HAProxy 2.6 holds 19 KiB per
/// idle h2 connection over TLS, 4.9 KiB over h2c (README, HTTP/2). In this debug build
/// ringlb held 25.5 KiB per new h2c connection and 30.0 KiB after a stream before the
/// h2 crate released its buffers (and before `h2::serve_io` kept no argument), 8.7 and
/// 13.0 KiB after, 6.3 and 10.8 KiB once the keep-alive wait left monoio's timer and
/// the answered streams became a bitmap, 3.6 and 8.1 KiB once the accept task kept
/// no TLS or rule state and the HTTP/2 entry points no argument.
const BOUND_NEW: u64 = 5 * 1024;
const BOUND_AFTER_STREAM: u64 = 10 * 1024;

const SETTINGS: u8 = 4;
const ACK: u8 = 0x1;

/// The tests run one at a time: each opens 1,000 connections and reads RSS.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Reads frames until one matches `done` (type, flags, stream); panics on GOAWAY.
fn read_until(s: &mut TcpStream, mut done: impl FnMut(u8, u8, u32) -> bool) {
    loop {
        let mut h = [0u8; 9];
        s.read_exact(&mut h).expect("a frame before the timeout");
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).unwrap();
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        assert_ne!(h[3], 7, "GOAWAY: {payload:?}");
        if done(h[3], h[4], stream) {
            return;
        }
    }
}

/// A GET on stream `id`, read to the end of its response.
fn get(s: &mut TcpStream, id: u32) {
    let fields = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "t.test"),
    ];
    s.write_all(&frame(1, END_STREAM | END_HEADERS, id, &block(&fields)))
        .unwrap();
    read_until(s, |kind, flags, stream| {
        stream == id && (kind == 0 || kind == 1) && flags & END_STREAM != 0
    });
}

/// An HTTP/2 connection, SETTINGS exchanged both ways, after one stream (`request`)
/// or none.
fn open(addr: SocketAddr, request: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).unwrap();
    read_until(&mut s, |kind, flags, _| {
        kind == SETTINGS && flags & ACK == 0
    });
    s.write_all(&frame(SETTINGS, ACK, 0, &[])).unwrap();
    if request {
        get(&mut s, 1);
    }
    s
}

/// RSS per connection (bytes) with `CONNS` idle h2c connections open: the first
/// reading at or under its bound within 15 s, or the last one.
fn per_connection_bytes(request: bool) -> u64 {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    raise_fd_limit(3 * CONNS as u64);
    let app = TestBackend::start("app");
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\n    maxconn {}\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 120s\n    timeout server 10s\n    timeout http-request 120s\n    timeout http-keep-alive 120s\n\
frontend web\n    bind 127.0.0.1:0 proto h2\n    default_backend app\n\nbackend app\n    server s1 {}\n",
        CONNS + 100,
        app.addr()
    ));
    let addr = lb.addr("web");
    drop((0..20).map(|_| open(addr, true)).collect::<Vec<_>>());
    let before = settled_rss(lb.pid());
    let base_fds = fd_count(lb.pid());
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| open(addr, request)).collect();
    wait_for(
        "the balancer to hold every connection",
        Duration::from_secs(20),
        || fd_count(lb.pid()) + 4 >= base_fds + CONNS,
    );
    let per = |rss: u64| rss.saturating_sub(before) * 1024 / CONNS as u64;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut rss = rss_kib(lb.pid());
    let bound = if request {
        BOUND_AFTER_STREAM
    } else {
        BOUND_NEW
    };
    while per(rss) > bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        rss = rss_kib(lb.pid());
    }
    eprintln!(
        "{} bytes of RSS per idle h2c connection ({before} -> {rss} KiB)",
        per(rss)
    );
    // Each connection still serves a stream: its buffers are taken again.
    let id = if request { 3 } else { 1 };
    for s in conns.iter_mut().step_by(50) {
        get(s, id);
    }
    per(rss)
}

#[test]
fn an_idle_h2c_connection_after_a_stream_holds_no_buffer() {
    let per = per_connection_bytes(true);
    assert!(
        per <= BOUND_AFTER_STREAM,
        "{per} bytes of RSS per idle h2c connection"
    );
}

#[test]
fn a_new_h2c_connection_without_a_stream_holds_no_buffer() {
    let per = per_connection_bytes(false);
    assert!(
        per <= BOUND_NEW,
        "{per} bytes of RSS per new h2c connection without a stream"
    );
}
