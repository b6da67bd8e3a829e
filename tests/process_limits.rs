//! Limits hold for the whole process, whatever the shard count: a server's `maxconn`
//! is never exceeded across shards, requests queued on different shards are served in
//! the order they arrived, and the process's and a frontend's `maxconn` keep extra
//! connections waiting in the kernel's backlog as HAProxy does (a differential test).

use crate::common;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::haproxy::HaProxy;
use common::*;

/// ringlb on a haproxy.cfg text (written to a file, `-f FILE`).
fn ringlb_haproxy_cfg(text: &str) -> (RingLb, tempfile::NamedTempFile) {
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let lb = RingLb::launch(&["-f", file.path().to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    (lb, file)
}

fn one_limited_server(threads: usize, maxconn: u32, server: SocketAddr) -> String {
    format!(
        "global\n    nbthread {threads}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout queue 30s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {server} maxconn {maxconn}\n"
    )
}

/// `n` clients at once, each one GET on its own connection; their statuses.
fn concurrent(addr: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let path = path.to_string();
            thread::spawn(move || {
                HttpClient::try_connect(addr)
                    .and_then(|mut c| c.try_request(get_request(&path)))
                    .map(|r| r.status)
                    .unwrap_or(0)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn maxconn_1_is_never_exceeded_with_2_or_4_shards() {
    for threads in [2, 4] {
        let b = OrderServer::start();
        let (lb, _f) = ringlb_haproxy_cfg(&one_limited_server(threads, 1, b.addr));
        assert_eq!(lb.shards(), Some(threads));
        let statuses = concurrent(lb.addr("web"), "/sleep/2", 200);
        let served = statuses.iter().filter(|&&s| s == 200).count();
        assert_eq!(served, 200, "{threads} shards: statuses {statuses:?}");
        assert_eq!(
            b.max_concurrent(),
            1,
            "{threads} shards: the server saw two requests at once"
        );
    }
}

#[test]
fn maxconn_3_with_4_shards_peaks_at_exactly_3() {
    let b = OrderServer::start();
    let (lb, _f) = ringlb_haproxy_cfg(&one_limited_server(4, 3, b.addr));
    let statuses = concurrent(lb.addr("web"), "/sleep/50", 40);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(b.max_concurrent(), 3, "peak concurrency with maxconn 3");
}

#[test]
fn a_queue_timeout_is_a_503_whichever_shard_waits() {
    let b = TestBackend::start("s1");
    let cfg =
        one_limited_server(4, 1, b.addr()).replace("timeout queue 30s", "timeout queue 300ms");
    let (lb, _f) = ringlb_haproxy_cfg(&cfg);
    let addr = lb.addr("web");
    let holder = thread::spawn(move || http_get(addr, "/sleep/1500").status);
    wait_for("the holder on the server", Duration::from_secs(5), || {
        b.in_flight() == 1
    });
    // Several waiting at once, on whatever shards the kernel gives them.
    let statuses = concurrent(addr, "/", 8);
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
    assert_eq!(holder.join().unwrap(), 200);
    assert_eq!(b.max_concurrent(), 1);
}

/// A server that answers `GET /sleep/MS...` after MS milliseconds, one request at a
/// time per connection; it notes the order in which request paths arrived, and how
/// many requests it held at once (a request stops counting before its answer leaves,
/// so a balancer that waits for the answer can never be seen overlapping it).
struct OrderServer {
    addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// (now, most at once).
    held: std::sync::Arc<std::sync::Mutex<(usize, usize)>>,
}

impl OrderServer {
    fn max_concurrent(&self) -> usize {
        self.held.lock().unwrap().1
    }

    fn start() -> OrderServer {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
        let log = seen.clone();
        let count = held.clone();
        thread::spawn(move || {
            for c in l.incoming().flatten() {
                let log = log.clone();
                let count = count.clone();
                thread::spawn(move || {
                    let mut w = c.try_clone().unwrap();
                    let mut r = BufReader::new(c);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                        }
                        log.lock().unwrap().push(path.clone());
                        {
                            let mut h = count.lock().unwrap();
                            h.0 += 1;
                            h.1 = h.1.max(h.0);
                        }
                        let ms: u64 = path
                            .strip_prefix("/sleep/")
                            .and_then(|p| p.split('/').next())
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0);
                        thread::sleep(Duration::from_millis(ms));
                        count.lock().unwrap().0 -= 1;
                        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                });
            }
        });
        OrderServer { addr, seen, held }
    }
}

/// Requests queued behind `maxconn 1`, sent about `SPACING` apart on new connections
/// (so the kernel spreads them over the shards), reach the server in the order they
/// were sent. The tolerance: two requests sent less than `SPACING` apart (as measured
/// just before each connects) may swap; from a connection's arrival to its request
/// being queued there is an accept, a read and a parse, well under a millisecond on an
/// idle machine, but a loaded one may delay any thread by tens of milliseconds.
#[test]
fn queued_requests_are_served_in_arrival_order_across_shards() {
    const SPACING: Duration = Duration::from_millis(40);
    const N: usize = 10;
    let server = OrderServer::start();
    let (lb, _f) = ringlb_haproxy_cfg(&one_limited_server(4, 1, server.addr));
    let addr = lb.addr("web");
    let holder = thread::spawn(move || http_get(addr, "/sleep/800/hold").status);
    wait_for("the holder on the server", Duration::from_secs(5), || {
        !server.seen.lock().unwrap().is_empty()
    });
    let mut waiting = Vec::new();
    for i in 0..N {
        waiting.push(thread::spawn(move || {
            let sent = Instant::now();
            (i, sent, http_get(addr, &format!("/sleep/5/{i}")).status)
        }));
        thread::sleep(SPACING);
    }
    assert_eq!(holder.join().unwrap(), 200);
    let sent: Vec<(usize, Instant, u16)> = waiting.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(sent.iter().all(|d| d.2 == 200), "{sent:?}");
    let seen = server.seen.lock().unwrap().clone();
    let rank = |i: usize| {
        seen.iter()
            .position(|p| *p == format!("/sleep/5/{i}"))
            .unwrap_or_else(|| panic!("request {i} never reached the server: {seen:?}"))
    };
    for a in &sent {
        for b in &sent {
            if a.1 + SPACING <= b.1 {
                assert!(
                    rank(a.0) < rank(b.0),
                    "request {} (sent first) reached the server after request {}: {seen:?}",
                    a.0,
                    b.0
                );
            }
        }
    }
}

/// One request on a connection kept open.
fn open(addr: SocketAddr) -> HttpClient {
    let mut c = HttpClient::connect(addr);
    assert_eq!(c.get("/").status, 200);
    c
}

/// With `limit` connections open, one more is accepted by the kernel but not served
/// until one of them closes. Returns whether it waited, then whether it was served.
fn waits_in_the_backlog(addr: SocketAddr, limit: usize) -> (bool, bool) {
    let mut held: Vec<HttpClient> = (0..limit).map(|_| open(addr)).collect();
    let mut extra = HttpClient::connect(addr);
    extra.set_timeout(Duration::from_millis(400));
    extra.send(get_request("/"));
    let waited = extra.try_read_response("GET").is_err();
    held.pop();
    extra.set_timeout(Duration::from_secs(5));
    let served = extra
        .try_read_response("GET")
        .is_ok_and(|r| r.status == 200);
    drop(held);
    (waited, served)
}

#[test]
fn global_and_frontend_maxconn_match_haproxy_with_4_threads() {
    for (section, limit) in [
        ("global", 1),
        ("global", 2),
        ("frontend", 1),
        ("frontend", 2),
    ] {
        let b = TestBackend::start("s1");
        let port = ReservedPort::new();
        let (global, frontend) = if section == "global" {
            (format!("    maxconn {limit}\n"), String::new())
        } else {
            (String::new(), format!("    maxconn {limit}\n"))
        };
        let text = |bind: &str| {
            format!(
                "global\n    nbthread 4\n{global}defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\nfrontend web\n    bind {bind}\n{frontend}    default_backend app\nbackend app\n    server s1 {}\n",
                b.addr()
            )
        };
        let hx = HaProxy::start(&text(&port.addr().to_string()), &[port.addr()], None);
        let hx_answer = waits_in_the_backlog(port.addr(), limit);
        drop(hx);
        let (lb, _f) = ringlb_haproxy_cfg(&text("127.0.0.1:0"));
        let lb_answer = waits_in_the_backlog(lb.addr("web"), limit);
        assert_eq!(
            hx_answer, lb_answer,
            "{section} maxconn {limit}: (waited, served) on HAProxy then ringlb"
        );
        assert_eq!(lb_answer, (true, true), "{section} maxconn {limit}");
    }
}
