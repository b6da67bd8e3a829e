//! `option http-server-close` (a new server connection per request) and `option
//! httpclose` (the client connection closes after each response).

use crate::common;

use std::time::Duration;

use common::*;

fn start(option: &str, b: &TestBackend) -> RingLb {
    let cfg = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    {option}\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    RingLb::launch(&["-f", file.path().to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    })
}

#[test]
fn keep_alive_reuses_and_server_close_does_not() {
    let b = TestBackend::start("b");
    let lb = start("option http-keep-alive", &b);
    let mut c = HttpClient::connect(lb.addr("www"));
    for _ in 0..5 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!(b.accepts(), 1, "one pooled server connection");

    let b = TestBackend::start("b");
    let lb = start("option http-server-close", &b);
    let mut c = HttpClient::connect(lb.addr("www"));
    for _ in 0..5 {
        assert_eq!(c.get("/").status, 200, "the client side stays alive");
    }
    assert_eq!(b.accepts(), 5, "a server connection per request");
}

#[test]
fn httpclose_closes_the_client_side() {
    let b = TestBackend::start("b");
    let lb = start("option httpclose", &b);
    let mut c = HttpClient::connect(lb.addr("www"));
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_by_peer(Duration::from_secs(5)));
}
