//! An HTTP/2 client that sends its streams in batches (h2load `-m 10`, a browser loading
//! a page) leaves its connection idle between them, and an idle connection frees its
//! write buffer (patches/h2, change 1). The freed buffer must serve the next batch
//! (change 3): before, every batch allocated a new 16 KiB block, which the allocator
//! maps and unmaps (with page faults), about 5 % of the proxy's CPU under h2load.
//!
//! The shard runs in this process under a global allocator that counts blocks of
//! 16 KiB and more; 200 batches of 10 streams go through one h2c connection.

#[path = "common/h2.rs"]
mod h2frames;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use h2frames::{block, frame, END_HEADERS, END_STREAM, PREFACE};

struct CountingLarge;

static LARGE: AtomicUsize = AtomicUsize::new(0);
const LARGE_SIZE: usize = 16 * 1024;

unsafe impl GlobalAlloc for CountingLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE_SIZE {
            LARGE.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= LARGE_SIZE {
            LARGE.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingLarge = CountingLarge;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

/// A server answering every request (a head, no body) with `RESPONSE`; its address.
fn fixed_server() -> std::net::SocketAddr {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in server.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut have = 0;
                loop {
                    match s.read(&mut buf[have..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                    while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.copy_within(end + 4..have, 0);
                        have -= end + 4;
                        if s.write_all(RESPONSE).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Reads frames until `streams` responses ended (END_STREAM on HEADERS or DATA); panics
/// on GOAWAY or RST_STREAM.
fn read_responses(s: &mut TcpStream, mut streams: usize, payload: &mut Vec<u8>) {
    while streams > 0 {
        let mut h = [0u8; 9];
        s.read_exact(&mut h).expect("a frame before the timeout");
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        payload.resize(len, 0);
        s.read_exact(payload).unwrap();
        assert!(h[3] != 7 && h[3] != 3, "GOAWAY or RST_STREAM: {payload:?}");
        if (h[3] == 0 || h[3] == 1) && h[4] & END_STREAM != 0 {
            streams -= 1;
        }
    }
}

#[test]
fn batches_of_streams_reuse_the_write_buffer() {
    let server = fixed_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringlb.toml");
    std::fs::write(
        &path,
        format!(
            "[runtime]\nshards = 1\n[frontend.web]\nbind = {{ addr = \"127.0.0.1:0\", proto = \"h2\" }}\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{server}\"\n"
        ),
    )
    .unwrap();
    let cfg = ringlb::config::Config::load(&path).unwrap();
    let running = ringlb::start(cfg).unwrap();
    let (_, addr) = running.listening[0];

    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(PREFACE).unwrap();
    c.write_all(&frame(4, 0, 0, &[])).unwrap();
    // The server's SETTINGS, acknowledged.
    let mut payload = Vec::with_capacity(1024);
    loop {
        let mut h = [0u8; 9];
        c.read_exact(&mut h).unwrap();
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        payload.resize(len, 0);
        c.read_exact(&mut payload).unwrap();
        if h[3] == 4 && h[4] & 1 == 0 {
            break;
        }
    }
    c.write_all(&frame(4, 1, 0, &[])).unwrap();

    let head = block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "t.test"),
    ]);
    let mut next_id = 1u32;
    let mut batches = |n: usize, c: &mut TcpStream, payload: &mut Vec<u8>| {
        let mut out = Vec::with_capacity(10 * (9 + head.len()));
        for _ in 0..n {
            out.clear();
            for _ in 0..10 {
                out.extend_from_slice(&frame(1, END_STREAM | END_HEADERS, next_id, &head));
                next_id += 2;
            }
            c.write_all(&out).unwrap();
            read_responses(c, 10, payload);
        }
    };
    // Warm up: the shard's buffer lists and slabs reach their working size.
    batches(50, &mut c, &mut payload);
    let before = LARGE.load(Ordering::Relaxed);
    batches(200, &mut c, &mut payload);
    let after = LARGE.load(Ordering::Relaxed);
    // Other threads may allocate now and then; a block per batch would show as 200.
    assert!(
        after - before <= 10,
        "{} blocks of 16 KiB or more allocated over 200 batches of 10 streams",
        after - before
    );
    drop(c);
    running.stop();
}
