//! Misbehaving servers (see `common::faulty`): for each fault the client gets the right
//! answer, clients of a healthy backend are unaffected meanwhile, and after
//! `RINGLB_FAULT_EXCHANGES` (default 10,000) such exchanges the balancer's fds are back
//! to idle, its memory has not grown, and it still serves.

use crate::common;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::faulty::{deaf_server, faulty_server};
use common::{fd_count, rss_kib, wait_for, HttpClient, RawServer, Response, RingLb, TestBackend};

fn exchanges() -> usize {
    std::env::var("RINGLB_FAULT_EXCHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

struct Setup {
    faulty: RawServer,
    _deaf: RawServer,
    good: TestBackend,
    lb: RingLb,
}

/// Frontend `web`: `/ok...` to a healthy TestBackend, `/deaf...` to a server that never
/// reads, everything else to the faulty server. 2 shards, `timeout.server` =
/// `server_timeout` (short for the stall tests, so that 10,000 stalls take seconds;
/// 5 s for the others, which answer at once: a CI machine under load once starved
/// the faulty server for 2 s, and its reset read as a server timeout).
fn setup(server_timeout: &str) -> Setup {
    let faulty = faulty_server();
    let deaf = deaf_server();
    let good = TestBackend::start("good");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n\n[timeout]\nserver = \"{server_timeout}\"\n\n[pool]\nidle_timeout = \"300ms\"\n\n\
         [frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"bad\"\n\
         [[frontend.web.route]]\npath_prefix = \"/ok\"\nbackend = \"good\"\n\
         [[frontend.web.route]]\npath_prefix = \"/deaf\"\nbackend = \"deaf\"\n\n\
         [backend.bad]\nerror_limit = 0\n[[backend.bad.server]]\naddr = \"{}\"\ncheck = false\n\
         [backend.deaf]\nerror_limit = 0\n[[backend.deaf.server]]\naddr = \"{}\"\ncheck = false\n\
         [backend.good]\n[[backend.good.server]]\naddr = \"{}\"\n",
        faulty.addr(),
        deaf.addr(),
        good.addr()
    ));
    Setup {
        faulty,
        _deaf: deaf,
        good,
        lb,
    }
}

/// Runs `n` exchanges of `one` on `threads` threads while another thread checks that
/// the healthy backend keeps answering; then checks fds, memory and service.
fn soak_fault(
    what: &str,
    threads: usize,
    server_timeout: &str,
    one: impl Fn(SocketAddr) -> Result<(), String> + Send + Sync + 'static,
) {
    let s = setup(server_timeout);
    let addr = s.lb.addr("web");
    let pid = s.lb.pid();
    // Warm up both paths, then take the idle figures.
    assert_eq!(HttpClient::connect(addr).get("/ok").status, 200);
    one(addr).unwrap_or_else(|e| panic!("{what}: {e}"));
    wait_for("idle fds", Duration::from_secs(10), || fd_count(pid) <= 30);
    let (fds_idle, rss_idle) = (fd_count(pid), rss_kib(pid));

    let n = exchanges();
    let next = Arc::new(AtomicUsize::new(0));
    let one = Arc::new(one);
    let stop = Arc::new(AtomicBool::new(false));
    let healthy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = HttpClient::connect(addr);
            let (mut served, mut timed_out) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let r = c.get("/ok");
                // `timeout.server` (global in TOML, 100 ms in the stall tests) also
                // bounds these: a starved CPU may make one late (at most 1 %).
                // Anything else is a failure.
                if r.status == 504 {
                    timed_out += 1;
                    c = HttpClient::connect(addr);
                    continue;
                }
                assert_eq!((r.status, r.body_str()), (200, "backend=good".into()));
                served += 1;
            }
            (served, timed_out)
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, one) = (next.clone(), one.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    if let Err(e) = one(addr) {
                        failures.push(e);
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    let (served, timed_out) = healthy.join().unwrap();
    assert!(
        timed_out * 100 <= served,
        "{what}: {timed_out} healthy requests timed out against {served} served"
    );
    assert!(
        failures.is_empty(),
        "{what}: {} of {n} exchanges wrong, first: {}",
        failures.len(),
        failures[0]
    );
    assert!(served > 0, "{what}: the healthy backend was starved");
    // Nothing leaked: fds back to idle once pooled connections aged out, memory flat.
    wait_for(
        &format!("{what}: fds back to idle ({fds_idle})"),
        Duration::from_secs(10),
        || fd_count(pid) <= fds_idle + 10,
    );
    let rss = rss_kib(pid);
    assert!(
        rss < rss_idle + 20 * 1024,
        "{what}: RSS {rss_idle} KiB -> {rss} KiB after {n} exchanges"
    );
    // The shards keep serving, both backends.
    for _ in 0..4 {
        assert_eq!(HttpClient::connect(addr).get("/ok").status, 200);
        assert_eq!(HttpClient::connect(addr).get("/fine").status, 200);
    }
    eprintln!(
        "{what}: {n} exchanges, healthy requests meanwhile {served} ({timed_out} over timeout.server), fds {fds_idle} -> {}, RSS {rss_idle} -> {rss} KiB, faulty server accepted {}",
        fd_count(pid),
        s.faulty.accepts()
    );
    drop(s.good);
}

fn expect_status(addr: SocketAddr, path: &str, status: u16) -> Result<(), String> {
    let mut c = HttpClient::connect(addr);
    c.set_timeout(Duration::from_secs(10));
    match c.try_request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")) {
        Ok(r) if r.status == status => Ok(()),
        Ok(r) => Err(format!("{path}: status {} {:?}", r.status, r.body_str())),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

fn response(addr: SocketAddr, path: &str) -> io::Result<Response> {
    let mut c = HttpClient::connect(addr);
    c.set_timeout(Duration::from_secs(10));
    c.try_request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"))
}

#[test]
fn reset_mid_response_cuts_the_client_short() {
    // The head (200) already left: the client sees the body cut short and a close.
    soak_fault("reset mid-response", 8, "5s", |addr| {
        match response(addr, "/reset-mid") {
            Err(_) => Ok(()),
            Ok(r) => Err(format!(
                "a whole response: {} ({} bytes)",
                r.status,
                r.body.len()
            )),
        }
    });
}

#[test]
fn reset_before_any_response_byte_is_a_502() {
    soak_fault("reset before the response", 8, "5s", |addr| {
        expect_status(addr, "/reset-early", 502)
    });
}

#[test]
fn garbage_is_a_502() {
    soak_fault("garbage", 8, "5s", |addr| {
        expect_status(addr, "/garbage", 502)
    });
}

#[test]
fn bytes_beyond_content_length_never_answer_a_request() {
    // Two requests per client: the second must get its own answer, never the extra
    // bytes of the first.
    soak_fault("more bytes than Content-Length", 8, "5s", |addr| {
        let mut c = HttpClient::connect(addr);
        c.set_timeout(Duration::from_secs(10));
        let r = c
            .try_request("GET /over-cl HTTP/1.1\r\nHost: t\r\n\r\n")
            .map_err(|e| e.to_string())?;
        if r.body_str() != "hello" {
            return Err(format!("first: {:?}", r.body_str()));
        }
        let r = c
            .try_request("GET /fine HTTP/1.1\r\nHost: t\r\n\r\n")
            .map_err(|e| e.to_string())?;
        if r.body_str() != "good" {
            return Err(format!("second: {:?}", r.body_str()));
        }
        Ok(())
    });
}

#[test]
fn stalled_server_is_a_504() {
    soak_fault("server stalls", 64, "100ms", |addr| {
        expect_status(addr, "/stall", 504)
    });
}

#[test]
fn server_that_never_reads_is_a_504() {
    soak_fault("server never reads", 64, "100ms", |addr| {
        expect_status(addr, "/deaf", 504)
    });
}

#[test]
fn pooled_connection_closed_under_a_get_is_retried() {
    // The server closes a pooled connection as the next request arrives on it: a GET
    // is sent again on a fresh connection, and the client never notices.
    soak_fault(
        "pooled connection closed under a request",
        8,
        "5s",
        |addr| {
            let mut c = HttpClient::connect(addr);
            c.set_timeout(Duration::from_secs(10));
            for i in 0..2 {
                let r = c
                    .try_request("GET /close-next HTTP/1.1\r\nHost: t\r\n\r\n")
                    .map_err(|e| format!("request {i}: {e}"))?;
                if (r.status, r.body_str().as_str()) != (200, "good") {
                    return Err(format!("request {i}: {} {:?}", r.status, r.body_str()));
                }
            }
            Ok(())
        },
    );
}

#[test]
fn pooled_connection_closed_under_a_post_is_a_502_not_a_resend() {
    let s = setup("2s");
    let addr = s.lb.addr("web");
    // One shard would make the pooled connection certain; with two, repeat until a
    // POST met one.
    let mut c = HttpClient::connect(addr);
    let mut saw_502 = false;
    for _ in 0..20 {
        let r = c.request("GET /close-next HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200);
        let r = c.request("POST /close-next HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody");
        if r.status == 502 {
            saw_502 = true;
            break;
        }
        assert_eq!(r.status, 200);
    }
    assert!(
        saw_502,
        "a POST on a closed pooled connection was never refused"
    );
}
