//! Many clients at once: every response goes back to the client that asked for it.

use crate::common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::*;

const CLIENTS: usize = 100;
const REQUESTS_EACH: usize = 5;

#[test]
fn concurrent_clients_get_their_own_responses() {
    let b1 = TestBackend::start("a");
    let b2 = TestBackend::start("b");
    let lb = RingLb::start(&http_config(&[b1.addr(), b2.addr()], ""));
    let addr = lb.addr("web");
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut c = HttpClient::connect(addr);
                barrier.wait();
                for j in 0..REQUESTS_EACH {
                    let id = format!("client-{i}-req-{j}");
                    let r = c.request(id_request(&id));
                    assert_eq!(r.status, 200, "{id}");
                    assert_eq!(r.body_str(), id, "body of {id}");
                    assert_eq!(r.header("x-id"), Some(id.as_str()), "header of {id}");
                }
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        if t.join().is_err() {
            panic!("client {i} failed\nringlb stderr:\n{}", lb.stderr());
        }
    }
    assert_eq!(b1.requests() + b2.requests(), CLIENTS * REQUESTS_EACH);
    assert!(
        b1.requests() > 0 && b2.requests() > 0,
        "round robin left a server idle: a={} b={}",
        b1.requests(),
        b2.requests()
    );
}

#[test]
fn slow_requests_run_concurrently() {
    // 20 clients each wait 500 ms upstream: served one by one that would take 10 s.
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let addr = lb.addr("web");
    let start = std::time::Instant::now();
    let threads: Vec<_> = (0..20)
        .map(|_| thread::spawn(move || http_get(addr, "/sleep/500")))
        .collect();
    for t in threads {
        let r = t.join().expect("client thread");
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), "slept 500");
    }
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "20 concurrent 500 ms requests took {:?}",
        start.elapsed()
    );
    assert!(
        b.max_concurrent() >= 10,
        "max concurrent upstream requests: {}",
        b.max_concurrent()
    );
}
