//! Global and frontend `maxconn`: beyond the limit, new connections wait in the
//! kernel's backlog (accept is paused) and are served as soon as room frees.

use crate::common;

use std::time::Duration;

use common::*;

fn assert_limit(lb: &RingLb, frontend: &str) {
    let addr = lb.addr(frontend);
    let mut a = HttpClient::connect(addr);
    let mut b = HttpClient::connect(addr);
    assert_eq!(a.get("/").status, 200);
    assert_eq!(b.get("/").status, 200);
    // A third connection is accepted by the kernel but not by ringlb yet.
    let mut c = HttpClient::connect(addr);
    c.set_timeout(Duration::from_millis(400));
    c.send(get_request("/"));
    assert!(
        c.try_read_response("GET").is_err(),
        "the third connection waits"
    );
    drop(a);
    c.set_timeout(Duration::from_secs(5));
    let r = c.read_response();
    assert_eq!(r.status, 200, "served once a connection closed");
    assert_eq!(b.get("/").status, 200);
}

#[test]
fn frontend_maxconn_pauses_accept() {
    let s = TestBackend::start("s");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 1\n[frontend.web]\nbind = \"127.0.0.1:0\"\nmaxconn = 2\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
        s.addr()
    ));
    assert_limit(&lb, "web");
}

/// `maxconn` in `defaults` is the limit of each frontend that follows, as in HAProxy
/// (it was once warned "not enforced").
#[test]
fn defaults_maxconn_limits_each_frontend() {
    let s = TestBackend::start("s");
    let cfg = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    maxconn 2\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nfrontend other\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        s.addr()
    );
    let lb = common::haproxy::ringlb_cfg(&cfg);
    assert_limit(&lb, "www");
    assert_limit(&lb, "other");
}

#[test]
fn global_maxconn_from_haproxy_cfg() {
    let s = TestBackend::start("s");
    let cfg = format!(
        "global\n    nbthread 1\n    maxconn 2\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        s.addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let lb = RingLb::launch(&["-f", file.path().to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    assert_limit(&lb, "www");
}

#[test]
fn global_maxconn_below_the_shard_count_holds_for_the_process() {
    // maxconn 1 with 2 shards: one connection at a time in all (the limit is the
    // process's, not split over shards).
    let s = TestBackend::start("s");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\nmaxconn = 1\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
        s.addr()
    ));
    let addr = lb.addr("web");
    let mut a = HttpClient::connect(addr);
    assert_eq!(a.get("/").status, 200);
    for _ in 0..4 {
        // Whichever shard the kernel gives it, a second connection waits.
        let mut c = HttpClient::connect(addr);
        c.set_timeout(Duration::from_millis(300));
        c.send(get_request("/"));
        assert!(
            c.try_read_response("GET").is_err(),
            "a second connection waits"
        );
    }
    drop(a);
    assert_eq!(http_get(addr, "/").status, 200);
}
