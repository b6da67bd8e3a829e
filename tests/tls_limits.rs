//! Handshake hygiene on the real binary: clients that send half a ClientHello are
//! closed at the handshake deadline (`timeout http-request` in HTTP mode) while others
//! are served; thousands of aborted handshakes leave no descriptor behind; a storm of
//! ClientHellos does not starve a keep-alive client on the same shard (handshakes take
//! turns); `maxsslrate` spaces TLS connections out.

use crate::common;
use crate::tls_util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::haproxy::ringlb_cfg;
use common::*;
use tls_util::*;

/// A real ClientHello record for `a.test`.
fn client_hello() -> Vec<u8> {
    let cfg = any_cert_client(&["http/1.1"], None);
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let mut c = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut out = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut out).unwrap();
    }
    out
}

fn frontend(
    pki: &Pki,
    app: &TestBackend,
    shards: usize,
    extra_global: &str,
    timeout: &str,
) -> String {
    format!(
        "global\n    nbthread {shards}\n{extra_global}defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n    timeout http-request {timeout}\nfrontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        app.addr()
    )
}

/// Whether the peer closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn half_client_hellos_are_closed_at_the_deadline_while_others_are_served() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let app = TestBackend::start("app");
    let lb = ringlb_cfg(&frontend(&pki, &app, 2, "", "2s"));
    let addr = lb.addr("fe");
    let hello = client_hello();
    let half = &hello[..hello.len() / 2];
    let started = Instant::now();
    let mut stuck: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(half).unwrap();
            s
        })
        .collect();
    // Others are served meanwhile, on both shards.
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    for _ in 0..20 {
        let (a, _) = https_get(addr, cfg.clone(), "a.test", "/").unwrap();
        assert_eq!(a.status, 200);
    }
    // The half-finished ones are still waiting: closed by their deadline, not before.
    let served = started.elapsed();
    if served < Duration::from_millis(1500) {
        assert!(!closed_within(&mut stuck[0], Duration::from_millis(100)));
    }
    for (i, s) in stuck.iter_mut().enumerate() {
        let left = Duration::from_secs(12).saturating_sub(started.elapsed());
        assert!(
            closed_within(s, left.max(Duration::from_millis(1))),
            "client #{i} still open"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "closed before the deadline"
    );
}

#[test]
fn descriptors_return_to_idle_after_2000_aborted_handshakes() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let app = TestBackend::start("app");
    let lb = ringlb_cfg(&frontend(&pki, &app, 2, "", "1s"));
    let addr = lb.addr("fe");
    let pid = lb.pid();
    // One served request first: the pooled server connection is part of "idle".
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    assert_eq!(https_get(addr, cfg, "a.test", "/").unwrap().0.status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let idle = fd_count(pid);
    let hello = client_hello();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let hello = hello.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    match (t + i) % 5 {
                        // Connect and go.
                        0 => {}
                        // Half a ClientHello, then go.
                        1 => drop(s.write_all(&hello[..hello.len() / 2])),
                        // A whole one, then go before the answer is read.
                        2 => drop(s.write_all(&hello)),
                        // Not TLS at all.
                        3 => drop(s.write_all(b"GET / HTTP/1.1\r\n\r\n")),
                        // A whole one, read the server's flight, then reset.
                        _ => {
                            let _ = s.write_all(&hello);
                            let mut b = [0u8; 1024];
                            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                            let _ = s.read(&mut b);
                            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wait_for("descriptors back to idle", Duration::from_secs(15), || {
        fd_count(pid) <= idle
    });
    // And it still serves.
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    assert_eq!(https_get(addr, cfg, "a.test", "/").unwrap().0.status, 200);
}

#[test]
fn a_storm_of_client_hellos_does_not_starve_a_keep_alive_client() {
    let pki = Pki::new("Test CA");
    // RSA-2048: the costliest handshake.
    pki.server("a.pem", &["a.test"], "a.test", Alg::Rsa, false);
    let app = TestBackend::start("app");
    let lb = ringlb_cfg(&frontend(&pki, &app, 1, "", "5s"));
    let addr = lb.addr("fe");
    let mut kept = Https::connect(
        addr,
        client_config(&pki.ca_der(), ClientOpts::default()),
        "a.test",
    )
    .unwrap();
    assert_eq!(kept.get("a.test", "/").unwrap().status, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let hellos = Arc::new(AtomicUsize::new(0));
    let hello = client_hello();
    // 6 threads, each keeping 50 connections' ClientHellos in flight.
    let storm: Vec<_> = (0..6)
        .map(|_| {
            let (stop, hellos, hello) = (stop.clone(), hellos.clone(), hello.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<TcpStream> = (0..50)
                        .filter_map(|_| {
                            let mut s = TcpStream::connect(addr).ok()?;
                            s.write_all(&hello).ok()?;
                            Some(s)
                        })
                        .collect();
                    for mut s in batch {
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut b = [0u8; 64];
                        if matches!(s.read(&mut b), Ok(n) if n > 0) {
                            hellos.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    wait_for("the storm under way", Duration::from_secs(10), || {
        hellos.load(Ordering::Relaxed) > 200
    });
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    let mut done = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        assert_eq!(kept.get("a.test", "/").unwrap().status, 200);
        slowest = slowest.max(t.elapsed());
        done += 1;
    }
    let during = hellos.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in storm {
        t.join().unwrap();
    }
    eprintln!(
        "storm: {done} keep-alive requests, {during} handshakes answered, slowest {slowest:?}"
    );
    // Not starved: every keep-alive request ends within a generous bound while the
    // shard answers thousands of handshakes. Measured on a loaded 2-core machine:
    // release build 1,200-2,300 requests in the 3 s on either driver (slowest 10-220
    // ms); debug build (rustls ~10 x slower, so the shard is saturated) 900-1,700 on
    // io_uring, 12-225 on epoll (slowest ~500 ms; 2.4 s once at load average 25; 4
    // requests, slowest 1.8 s, with two other test binaries running beside it). A
    // starved client waits for the whole storm: the bound is 5 s. The count only says
    // the client got more than one turn.
    assert!(
        done >= 2,
        "{done} keep-alive requests against {during} handshakes answered in 3 s of storm"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "the slowest keep-alive request took {slowest:?} ({done} done, {during} handshakes answered)"
    );
}

#[test]
fn maxsslrate_spaces_tls_connections_out() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let app = TestBackend::start("app");
    let lb = ringlb_cfg(&frontend(&pki, &app, 2, "    maxsslrate 40\n", "10s"));
    let addr: SocketAddr = lb.addr("fe");
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                for _ in 0..30 {
                    let (a, _) = https_get(addr, cfg.clone(), "a.test", "/").unwrap();
                    assert_eq!(a.status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // 120 connections at 40 a second: the first 40 at once, then about 40 a second.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "120 TLS connections in {took:?}"
    );
}
