//! A mixed soak: normal keep-alive traffic (each response checked against its request),
//! every fault of `common::faulty`, malformed requests and slowloris connections, all
//! at once for `RINGLB_SOAK_SECS` (default 60). It ends with zero mixed-up responses,
//! every normal request answered, and the balancer's fds back to idle.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::faulty::{deaf_server, faulty_server};
use common::{fd_count, id_request, raise_fd_limit, wait_for, HttpClient, RingLb, TestBackend};

fn soak_secs() -> u64 {
    std::env::var("RINGLB_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// Runs `f` in a loop on its own thread until `stop`; returns its count.
fn looping(stop: &Arc<AtomicBool>, mut f: impl FnMut(u64) + Send + 'static) -> JoinHandle<u64> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            f(i);
            i += 1;
        }
        i
    })
}

#[test]
fn mixed_soak_has_no_mixed_up_responses_and_no_leaks() {
    raise_fd_limit(4096);
    let faulty = faulty_server();
    let deaf = deaf_server();
    let good = TestBackend::start("good");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n\n[timeout]\nserver = \"2s\"\nhttp_request = \"1s\"\n\n[pool]\nidle_timeout = \"300ms\"\n\n\
         [frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"bad\"\n\
         [[frontend.web.route]]\npath_prefix = \"/id\"\nbackend = \"good\"\n\
         [[frontend.web.route]]\npath_prefix = \"/deaf\"\nbackend = \"deaf\"\n\n\
         [backend.bad]\nerror_limit = 0\n[[backend.bad.server]]\naddr = \"{}\"\ncheck = false\n\
         [backend.deaf]\nerror_limit = 0\n[[backend.deaf.server]]\naddr = \"{}\"\ncheck = false\n\
         [backend.good]\n[[backend.good.server]]\naddr = \"{}\"\n",
        faulty.addr(),
        deaf.addr(),
        good.addr()
    ));
    let addr = lb.addr("web");
    let pid = lb.pid();
    assert_eq!(HttpClient::connect(addr).get("/id").status, 200);
    wait_for("idle fds", Duration::from_secs(10), || fd_count(pid) <= 30);
    let fds_idle = fd_count(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let mixed_up = Arc::new(AtomicUsize::new(0));
    let unanswered = Arc::new(AtomicUsize::new(0));
    let mut normal = Vec::new();
    // Normal traffic: keep-alive clients, each response must carry its request's id.
    for t in 0..4 {
        let (mixed_up, unanswered) = (mixed_up.clone(), unanswered.clone());
        let mut c = HttpClient::connect(addr);
        normal.push(looping(&stop, move |i| {
            let id = format!("{t}-{i}");
            match c.try_request(id_request(&id)) {
                Ok(r) if r.status == 200 => {
                    if r.body_str() != id || r.header("x-id") != Some(id.as_str()) {
                        mixed_up.fetch_add(1, Ordering::Relaxed);
                        eprintln!("mixed up: sent {id}, got {:?}", r.body_str());
                    }
                }
                other => {
                    unanswered.fetch_add(1, Ordering::Relaxed);
                    eprintln!("unanswered: {id}: {:?}", other.map(|r| r.status));
                    c = HttpClient::connect(addr);
                }
            }
        }));
    }
    // Every fault, round robin, from two threads.
    let faults: &[(&str, Option<u16>)] = &[
        ("/reset-mid", None),
        ("/reset-early", Some(502)),
        ("/garbage", Some(502)),
        ("/over-cl", Some(200)),
        ("/stall", Some(504)),
        ("/deaf", Some(504)),
        ("/close-next", Some(200)),
    ];
    let mut others = Vec::new();
    for t in 0..2 {
        let mixed_up = mixed_up.clone();
        others.push(looping(&stop, move |i| {
            let (path, want) = faults[(i as usize + t) % faults.len()];
            let mut c = HttpClient::connect(addr);
            c.set_timeout(Duration::from_secs(10));
            let got = c
                .try_request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"))
                .map(|r| r.status)
                .ok();
            if want.is_some() && got != want {
                mixed_up.fetch_add(1, Ordering::Relaxed);
                eprintln!("{path}: got {got:?}, want {want:?}");
            }
        }));
    }
    // Malformed requests.
    others.push(looping(&stop, move |_| {
        let mut c = HttpClient::connect(addr);
        c.set_timeout(Duration::from_secs(10));
        let _ = c.try_send(
            "POST /id HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /id HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        if let Ok(r) = c.try_read_response("GET") {
            assert_eq!(r.status, 400);
        }
    }));
    // Slowloris: batches of 100 connections trickling a byte every 200 ms until closed.
    others.push(looping(&stop, move |_| {
        let mut slow: Vec<TcpStream> = (0..100)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        for s in &slow {
            s.set_nonblocking(true).unwrap();
        }
        let began = Instant::now();
        while !slow.is_empty() && began.elapsed() < Duration::from_secs(10) {
            slow.retain_mut(|s| {
                let _ = s.write(b"G");
                still_open(s)
            });
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            slow.is_empty(),
            "{} slowloris connections outlived http_request",
            slow.len()
        );
    }));

    std::thread::sleep(Duration::from_secs(soak_secs()));
    stop.store(true, Ordering::Relaxed);
    let served: u64 = normal.into_iter().map(|h| h.join().unwrap()).sum();
    let other: u64 = others.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(mixed_up.load(Ordering::Relaxed), 0, "mixed-up responses");
    assert_eq!(
        unanswered.load(Ordering::Relaxed),
        0,
        "normal requests without a 200"
    );
    assert!(served > 100, "only {served} normal requests");
    wait_for(
        &format!("fds back to idle ({fds_idle})"),
        Duration::from_secs(15),
        || fd_count(pid) <= fds_idle + 10,
    );
    eprintln!(
        "soak {} s: {served} normal requests, {other} fault/malformed/slowloris rounds, fds {fds_idle} -> {}",
        soak_secs(),
        fd_count(pid)
    );
    drop((faulty, deaf, good));
}

/// Reads what a non-blocking socket has (a 408); false once the peer closed it.
fn still_open(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
