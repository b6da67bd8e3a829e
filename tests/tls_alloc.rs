//! Allocations per keep-alive exchange (one small request read, one small response
//! written) on an established TLS stream, counted on the server's thread only: none,
//! as on plain TCP (tests/alloc_free_path.rs). rustls runs the handshake; the records
//! after it are sealed and opened in place by ringlb's own record layer
//! (`tls::records`), and the ciphertext buffers come from the shard's free list.

mod tls_util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use ringlb::tls::{self, ServerSet};
use tls_util::*;

struct Counting;

thread_local! {
    static COUNT: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNT.try_with(|c| c.get()).unwrap_or(false) {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNT.try_with(|c| c.get()).unwrap_or(false) {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const EXCHANGES: u64 = 500;

#[test]
fn allocations_per_keep_alive_exchange_over_tls() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let bind = load_bind(&spec_with(&[&pki.path("a.pem")]));
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let cfg = client_config(&ca, ClientOpts::default());
            let client = std::thread::spawn(move || {
                use std::io::{Read, Write};
                let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
                let conn = rustls::ClientConnection::new(cfg, name).unwrap();
                let mut s =
                    rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr).unwrap());
                let mut buf = [0u8; 256];
                for _ in 0..EXCHANGES + 100 {
                    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
                        .unwrap();
                    let mut got = 0;
                    while got < 40 {
                        got += s.read(&mut buf[got..]).unwrap();
                    }
                }
            });
            let set = ServerSet::new(&bind).unwrap();
            let (sock, _) = l.accept().await.unwrap();
            let deadline = monoio::time::Instant::now() + Duration::from_secs(5);
            let (mut s, _) = tls::accept(sock, &set, deadline, tls::Acceptor::default(), None)
                .await
                .unwrap();
            let mut req = Vec::with_capacity(4096);
            let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
            let mut counted = 0;
            for i in 0..EXCHANGES + 100 {
                if i == 100 {
                    ALLOCS.with(|a| a.set(0));
                    COUNT.with(|c| c.set(true));
                }
                req.clear();
                let mut got = 0;
                while got < 32 {
                    let (r, b) = s.read(req).await;
                    req = b;
                    got += r.unwrap();
                }
                let (r, b) = s.write_all(resp).await;
                resp = b;
                r.unwrap();
                counted = i;
            }
            COUNT.with(|c| c.set(false));
            let allocs = ALLOCS.with(|a| a.get());
            let per = allocs as f64 / (counted + 1 - 100) as f64;
            eprintln!("allocations per exchange over TLS: {per:.2} ({allocs} in {EXCHANGES})");
            assert_eq!(allocs, 0, "{per} allocations per exchange");
            while !client.is_finished() {
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            client.join().unwrap();
        }
    });
}
