//! Running out of file descriptors (issue 23): without a global maxconn, ringlb
//! derives one from its open-file limit, as HAProxy does, and logs it; beyond it new
//! connections wait in the kernel's backlog, so every accepted request is answered
//! (never a 503 for want of a server socket). A configured maxconn that cannot fit is
//! warned about, and failed accepts are logged at most once a second per shard.

use crate::common;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const NOFILE: u64 = 256;

fn config(backend: std::net::SocketAddr, runtime: &str) -> String {
    format!(
        "[runtime]\nshards = 2\n{runtime}\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{backend}\"\n"
    )
}

/// The figure of the `global maxconn set to N` line.
fn derived_maxconn(lb: &RingLb) -> usize {
    let log = lb.stderr();
    let at = log
        .find("global maxconn set to ")
        .unwrap_or_else(|| panic!("no derived maxconn in the log:\n{log}"));
    log[at + "global maxconn set to ".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

/// The warning and error lines in ringlb's log so far.
fn warnings(lb: &RingLb) -> Vec<String> {
    lb.stderr()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_string)
        .collect()
}

#[test]
fn more_clients_than_descriptors_wait_in_the_backlog_and_all_are_answered() {
    const CLIENTS: usize = 400;
    let b = TestBackend::start("a");
    let lb = RingLb::start_with_fd_limit(&config(b.addr(), ""), NOFILE);
    let addr = lb.addr("web");
    let pid = lb.pid();
    let maxconn = derived_maxconn(&lb);
    assert!(
        maxconn * 2 < NOFILE as usize && maxconn >= 50,
        "maxconn {maxconn} for {NOFILE} descriptors"
    );
    let idle = fd_count(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(fd_count(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let answered = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                let mut c = HttpClient::connect(addr);
                c.set_timeout(Duration::from_secs(60));
                let r = c
                    .try_request(get_request("/"))
                    .unwrap_or_else(|e| panic!("client {i}: {e}"));
                answered.fetch_add(1, Ordering::SeqCst);
                // Hold the connection a while, so that more clients than slots are
                // connected at once, then leave.
                std::thread::sleep(Duration::from_millis(100));
                r.status
            })
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let took = began.elapsed();
    let failed: Vec<_> = statuses.iter().filter(|&&s| s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} clients got an error: {failed:?}\n{}",
        failed.len(),
        lb.stderr()
    );
    assert_eq!(answered.load(Ordering::SeqCst), CLIENTS);
    // Never more than maxconn clients and as many server connections at once: the
    // others waited in the backlog.
    assert!(
        peak <= idle + 2 * maxconn + 4 && peak < NOFILE as usize,
        "peak {peak} descriptors (idle {idle}, maxconn {maxconn})"
    );
    let w = warnings(&lb);
    assert!(
        w.len() <= 2 + 2 * took.as_secs() as usize,
        "{} warnings in {took:?}: {w:#?}",
        w.len()
    );
    assert!(
        !lb.stderr().contains("Too many open files"),
        "{}",
        lb.stderr()
    );
    // And the balancer goes on serving.
    assert_eq!(http_get(addr, "/").status, 200);
}

#[test]
fn a_maxconn_beyond_the_fd_limit_is_warned_and_failed_accepts_are_rate_limited() {
    const CLIENTS: usize = 300;
    const HOLD: Duration = Duration::from_secs(3);
    let b = TestBackend::start("a");
    let lb = RingLb::start_with_fd_limit(&config(b.addr(), "maxconn = 10000"), NOFILE);
    let addr = lb.addr("web");
    assert!(
        lb.stderr().contains("does not fit in the open-file limit"),
        "{}",
        lb.stderr()
    );
    // More connections than the process has descriptors, held open: accepts fail.
    let held: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(addr).expect("the kernel completes the handshake"))
        .collect();
    wait_for("accepts to fail", Duration::from_secs(10), || {
        lb.stderr().contains("accept failed")
    });
    let began = Instant::now();
    std::thread::sleep(HOLD);
    let lines = lb.stderr().matches("accept failed").count();
    let secs = began.elapsed().as_secs() as usize + 2;
    assert!(
        lines <= 2 * secs,
        "{lines} accept failure lines from 2 shards in about {secs} s"
    );
    let counted = lb.stderr().contains("failures=");
    assert!(counted, "the failures are counted: {}", lb.stderr());
    drop(held);
    // Once the clients leave, service resumes.
    wait_for("service to resume", Duration::from_secs(10), || {
        HttpClient::try_connect(addr)
            .and_then(|mut c| c.try_request(get_request("/")))
            .is_ok_and(|r| r.status == 200)
    });
}
