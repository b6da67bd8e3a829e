//! Slow and abusive clients: 1,000 slowloris connections are all closed within
//! `timeout.http_request` while normal clients keep being answered; a body that stops
//! arriving ends at `timeout.client`; a client that stops reading a large response
//! neither grows the balancer's memory nor holds the connection past `timeout.client`.

use crate::common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http_config, raise_fd_limit, rss_kib, wait_for, HttpClient, RingLb, TestBackend};

const SLOW: usize = 1_000;

#[test]
fn slowloris_connections_are_closed_while_others_are_served() {
    // 1,000 sockets here and as many in the balancer, plus the backend's.
    let limit = raise_fd_limit(2 * SLOW as u64 + 1_000);
    assert!(limit >= 2 * SLOW as u64 + 200, "fd limit {limit} too low");
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(
        &[b.addr()],
        "[timeout]\nhttp_request = \"2s\"\nclient = \"30s\"\n",
    ));
    let addr = lb.addr("web");

    // Normal clients: a fresh connection per request, all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let normal = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut served, mut slowest) = (0, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let mut c = HttpClient::connect(addr);
                let r = c.get("/");
                assert_eq!(r.status, 200);
                slowest = slowest.max(began.elapsed());
                served += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (served, slowest)
        })
    };

    let began = Instant::now();
    let mut slow: Vec<Option<TcpStream>> = (0..SLOW)
        .map(|i| {
            let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("slow connect {i}: {e}"));
            s.set_nonblocking(true).unwrap();
            Some(s)
        })
        .collect();
    // One byte a second on each: never idle, never a whole head.
    let head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let deadline = began + Duration::from_secs(2) + Duration::from_secs(6);
    let mut tick = 0;
    let mut buf = [0u8; 1024];
    while slow.iter().any(Option::is_some) {
        assert!(
            Instant::now() < deadline,
            "{} slow connections still open after {:?}",
            slow.iter().filter(|s| s.is_some()).count(),
            began.elapsed()
        );
        for entry in slow.iter_mut() {
            let Some(s) = entry else { continue };
            // Closed by the balancer (a 408, then EOF, or a reset)?
            let closed = loop {
                match s.read(&mut buf) {
                    Ok(0) => break true,
                    // The 408 (the backend never answers a slow head: see below).
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
            };
            if closed {
                *entry = None;
                continue;
            }
            let _ = s.write(&head[tick.min(head.len() - 1)..][..1]);
        }
        tick += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let all_closed = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (served, slowest) = normal.join().unwrap();
    assert!(served > 20, "only {served} normal requests served");
    assert!(
        slowest < Duration::from_secs(2),
        "a normal request took {slowest:?}"
    );
    assert_eq!(b.requests(), served, "a slow head reached the backend");
    eprintln!(
        "{SLOW} slowloris connections closed within {all_closed:?}; {served} normal requests, slowest {slowest:?}"
    );
}

#[test]
fn body_that_stops_arriving_ends_at_timeout_client() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], "[timeout]\nclient = \"500ms\"\n"));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789");
    let began = Instant::now();
    assert!(c.closed_by_peer(Duration::from_secs(10)), "still open");
    assert!(began.elapsed() >= Duration::from_millis(400));
    // The server side of the half-sent request is closed too.
    wait_for("the backend request to end", Duration::from_secs(5), || {
        b.in_flight() == 0
    });
}

#[test]
fn client_that_stops_reading_costs_no_memory_and_is_closed() {
    // A 256 MiB response to a client that reads nothing: the balancer holds a fixed
    // buffer (backpressure reaches the server), and gives up after `timeout.client`.
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], "[timeout]\nclient = \"2s\"\n"));
    let pid = lb.pid();
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.get("/").status, 200);
    let before = rss_kib(pid);
    let mut s = TcpStream::connect(lb.addr("web")).unwrap();
    s.write_all(format!("GET /bytes/{} HTTP/1.1\r\nHost: t\r\n\r\n", 256 << 20).as_bytes())
        .unwrap();
    let began = Instant::now();
    let mut peak = before;
    while began.elapsed() < Duration::from_secs(1) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        peak.saturating_sub(before) < 8 * 1024,
        "RSS grew by {} KiB for a client that reads nothing",
        peak - before
    );
    // After timeout.client the balancer drops both sides: the server's write fails.
    wait_for("the backend to give up", Duration::from_secs(10), || {
        b.in_flight() == 0
    });
    // What the client can still read is a cut-short response, then the end.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 256 << 20, "the whole response arrived");
}
