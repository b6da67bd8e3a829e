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

/// The count is process-wide: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

/// A server that answers every request with the same bytes; its address.
fn fixed_server() -> std::net::SocketAddr {
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
    server_addr
}

/// Header rules with literal and `%[src]`-like values, an ACL on a map, a variable and
/// an HSTS response header allocate nothing per request either (the rule language
/// evaluates in reused scratch buffers).
#[test]
fn keep_alive_requests_with_header_rules_do_not_allocate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server_addr = fixed_server();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("hosts.map");
    std::fs::write(&map, "example.com app\nother.com other\n").unwrap();
    let path = dir.path().join("ringlb.cfg");
    std::fs::write(
        &path,
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\nfrontend web\n    bind 127.0.0.1:{port}\n    acl known req.hdr(host),lower,map_str({}) -m found\n    http-request set-header X-Real-IP %[src]\n    http-request set-header X-Host %[req.hdr(host),lower]\n    http-request set-header X-Path %[path]\n    http-request add-header X-Proto http\n    http-request set-var(txn.host) req.hdr(host)\n    http-request deny if !known\n    http-response set-header Strict-Transport-Security \"max-age=31536000\"\n    http-response del-header Server\n    default_backend app\nbackend app\n    server s1 {server_addr}\n",
            map.display()
        ),
    )
    .unwrap();
    let cfg = ringlb::config::Config::load(&path).unwrap();
    let running = ringlb::start(cfg).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_nodelay(true).unwrap();
    let request = b"GET /item?id=7 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
    let mut buf = [0u8; 4096];
    let mut exchange = |n: usize| {
        for _ in 0..n {
            c.write_all(request).unwrap();
            assert!(read_message(&mut c, &mut buf, 5), "response");
        }
    };
    exchange(2_000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(5_000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        after - before <= 10,
        "{} allocations during 5,000 keep-alive requests with header rules",
        after - before
    );
    drop(c);
    running.stop();
}

#[test]
fn keep_alive_requests_do_not_allocate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

/// Cookie persistence allocates nothing per request either: the request's cookie is
/// read, stripped (`insert indirect`) and the `Set-Cookie` written straight into the
/// head buffers.
#[test]
fn keep_alive_requests_with_cookie_persistence_do_not_allocate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server_addr = fixed_server();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringlb.cfg");
    std::fs::write(
        &path,
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\nfrontend web\n    bind 127.0.0.1:{port}\n    default_backend app\nbackend app\n    cookie SRV insert indirect nocache httponly maxidle 30m\n    server s1 {server_addr} cookie a\n"
        ),
    )
    .unwrap();
    let cfg = ringlb::config::Config::load(&path).unwrap();
    let running = ringlb::start(cfg).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_nodelay(true).unwrap();
    let requests: [&[u8]; 2] = [
        b"GET / HTTP/1.1\r\nHost: example.com\r\nCookie: app=1; SRV=a; x=2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    ];
    let mut buf = [0u8; 4096];
    let mut exchange = |n: usize| {
        for i in 0..n {
            c.write_all(requests[i % 2]).unwrap();
            assert!(read_message(&mut c, &mut buf, 5), "response");
        }
    };
    exchange(2_000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(5_000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        after - before <= 10,
        "{} allocations during 5,000 keep-alive requests with cookie persistence",
        after - before
    );
    drop(c);
    running.stop();
}

/// A frontend with `compression` allocates nothing for the requests it does not
/// compress (no Accept-Encoding, or none it offers): the choice reads the head in
/// place, and the deflate state is only made for a response that is compressed.
#[test]
fn keep_alive_requests_not_compressed_do_not_allocate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server_addr = fixed_server();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringlb.cfg");
    std::fs::write(
        &path,
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\nfrontend web\n    bind 127.0.0.1:{port}\n    compression algo gzip deflate\n    compression offload\n    default_backend app\nbackend app\n    server s1 {server_addr}\n"
        ),
    )
    .unwrap();
    let cfg = ringlb::config::Config::load(&path).unwrap();
    let running = ringlb::start(cfg).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_nodelay(true).unwrap();
    let requests: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: br, zstd\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: gzip;q=0\r\n\r\n",
    ];
    let mut buf = [0u8; 4096];
    let mut exchange = |n: usize| {
        for i in 0..n {
            c.write_all(requests[i % 3]).unwrap();
            assert!(read_message(&mut c, &mut buf, 5), "response");
        }
    };
    exchange(2_000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(5_000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        after - before <= 10,
        "{} allocations during 5,000 keep-alive requests not compressed",
        after - before
    );
    drop(c);
    running.stop();
}

/// Routing through the host index (40 `hdr(host) -i` rules, a rule not indexed before
/// them, and the last host asked) allocates nothing per request either: the host is
/// lower-cased on the stack.
#[test]
fn keep_alive_requests_routed_by_the_host_index_do_not_allocate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server_addr = fixed_server();
    let mut text = String::from(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\nfrontend web\n    bind 127.0.0.1:0\n    use_backend b0 if { path_beg /never/ }\n",
    );
    for i in 0..40 {
        text += &format!("    use_backend b{i} if {{ hdr(host) -i h{i}.example }}\n");
    }
    for i in 0..40 {
        text += &format!("backend b{i}\n    server s1 {server_addr}\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringlb.cfg");
    std::fs::write(&path, text).unwrap();
    let cfg = ringlb::config::Config::load(&path).unwrap();
    assert!(
        cfg.frontends[0].route_index.is_some(),
        "the rules are indexed"
    );
    let running = ringlb::start(cfg).unwrap();
    let (_, addr) = running.listening[0];
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let request = b"GET /item?id=7 HTTP/1.1\r\nHost: H39.Example\r\nUser-Agent: t\r\n\r\n";
    let mut buf = [0u8; 4096];
    let mut exchange = |n: usize| {
        for _ in 0..n {
            c.write_all(request).unwrap();
            assert!(read_message(&mut c, &mut buf, 5), "response");
        }
    };
    exchange(2_000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(5_000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        after - before <= 10,
        "{} allocations during 5,000 keep-alive requests routed by the host index",
        after - before
    );
    drop(c);
    running.stop();
}

/// `option http-buffer-request` holds the body in the connection's request buffer:
/// POSTs whose body comes after the head (a second write) allocate nothing either.
#[test]
fn keep_alive_posts_with_http_buffer_request_do_not_allocate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A server that reads each request with its 5-byte body and answers.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in server.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while read_message(&mut s, &mut buf, 5) {
                    if s.write_all(RESPONSE).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringlb.cfg");
    std::fs::write(
        &path,
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\nfrontend web\n    bind 127.0.0.1:{port}\n    option http-buffer-request\n    default_backend app\nbackend app\n    server s1 {server_addr}\n"
        ),
    )
    .unwrap();
    let cfg = ringlb::config::Config::load(&path).unwrap();
    let running = ringlb::start(cfg).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_nodelay(true).unwrap();
    let head = b"POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\n";
    let mut buf = [0u8; 4096];
    let mut exchange = |n: usize| {
        for _ in 0..n {
            c.write_all(head).unwrap();
            c.write_all(b"hello").unwrap();
            assert!(read_message(&mut c, &mut buf, 5), "response");
        }
    };
    exchange(2_000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(5_000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        after - before <= 10,
        "{} allocations during 5,000 keep-alive POSTs under http-buffer-request",
        after - before
    );
    drop(c);
    running.stop();
}

/// TCP mode copies each exchange without allocating: on io_uring the multishot
/// receives are armed once per connection and direction and their buffers come from
/// the shard's ring; on the legacy driver each direction reuses its one buffer.
#[test]
fn tcp_mode_exchanges_do_not_allocate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server_addr = fixed_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringlb.toml");
    std::fs::write(
        &path,
        format!(
            "[runtime]\nshards = 1\n[frontend.tcp]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{server_addr}\"\n"
        ),
    )
    .unwrap();
    let cfg = ringlb::config::Config::load(&path).unwrap();
    let running = ringlb::start(cfg).unwrap();
    let (_, addr) = running.listening[0];
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let request = b"GET /item?id=7 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let mut buf = [0u8; 4096];
    let mut exchange = |n: usize| {
        for _ in 0..n {
            c.write_all(request).unwrap();
            assert!(read_message(&mut c, &mut buf, 5), "response");
        }
    };
    exchange(2_000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(5_000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        after - before <= 10,
        "{} allocations during 5,000 exchanges in TCP mode",
        after - before
    );
    drop(c);
    running.stop();
}
