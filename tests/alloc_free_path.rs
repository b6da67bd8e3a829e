//! The steady keep-alive request path allocates nothing: the shard runs in this process
//! under a counting global allocator, a client and a server that never allocate exchange
//! thousands of requests through it, and the count does not move.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

/// Reads one message: a head, then `body` bytes. Returns false at EOF.
fn read_message(s: &mut TcpStream, buf: &mut [u8; 4096], body: usize) -> bool {
    let mut have = 0;
    loop {
        if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            if have >= end + 4 + body {
                return true;
            }
        }
        match s.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => have += n,
        }
    }
}

#[test]
fn keep_alive_requests_do_not_allocate() {
    // A server that answers every request with the same bytes.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in server.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while read_message(&mut s, &mut buf, 0) {
                    if s.write_all(RESPONSE).is_err() {
                        return;
                    }
                }
            });
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringlb.toml");
    std::fs::write(
        &path,
        format!(
            "[runtime]\nshards = 1\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{server_addr}\"\n"
        ),
    )
    .unwrap();
    let cfg = ringlb::config::Config::load(&path).unwrap();
    let running = ringlb::start(cfg).unwrap();
    let (_, addr) = running.listening[0];

    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let request = b"GET /item?id=7 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
    let mut buf = [0u8; 4096];
    let mut exchange = |n: usize| {
        for _ in 0..n {
            c.write_all(request).unwrap();
            assert!(read_message(&mut c, &mut buf, 5), "response");
        }
    };
    // Warm up: buffers, the pool, the op and timer slabs reach their working size.
    exchange(2_000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(5_000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    // Other threads (health, admin, the shard's 20 ms control tick) may allocate now
    // and then; a per-request allocation would show as thousands.
    assert!(
        after - before <= 10,
        "{} allocations during 5,000 keep-alive requests",
        after - before
    );
    drop(c);
    running.stop();
}
