//! A new HTTP connection's first bytes (io_uring): one receive into a buffer of the
//! shard's provided-buffer ring, taken only when they arrive, with no readiness wait
//! before it (`http::idle::first_bytes_until`). A ring with fewer buffers than new
//! connections whose requests arrive at once runs dry: those receives end with ENOBUFS
//! and the connections wait for readability and read as before, so none is lost or
//! stalls. The legacy driver has no ring and must answer the same.

mod common;

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;

fn start(backend: std::net::SocketAddr, ring: &str) -> RingLb {
    let cfg = common::proc::write_config(&http_config_shards(1, &[backend], ""));
    let path = cfg.path().to_str().unwrap().to_string();
    RingLb::launch_env(
        &["-f", &path],
        Some(cfg),
        &[("RINGLB_RECV_RING", ring.to_string())],
        |line| line.starts_with("ready"),
    )
}

/// 48 new connections send their request at the same moment, three times over, with
/// a ring of 2 buffers; then a request bigger than the first receive (a 200 KB body
/// sent with its head) and a head that comes in two pieces.
#[test]
fn first_requests_through_a_dry_ring_are_all_answered() {
    let b = TestBackend::start("a");
    let lb = start(b.addr(), "2");
    let addr = lb.addr("web");
    for round in 0..3 {
        let go = Arc::new(Barrier::new(48));
        let clients: Vec<_> = (0..48)
            .map(|i| {
                let go = go.clone();
                std::thread::spawn(move || {
                    let mut c = HttpClient::connect(addr);
                    let id = format!("r{round}-c{i}");
                    go.wait();
                    assert_eq!(c.request(id_request(&id)).body_str(), id, "{id}");
                })
            })
            .collect();
        for c in clients {
            c.join().expect("every first request answered");
        }
    }
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let mut c = HttpClient::connect(addr);
    let r = c.request(&req);
    assert_eq!(r.status, 200);
    assert!(r.body == body, "the echoed body differs");

    let mut c = HttpClient::connect(addr);
    c.send("GET /id HTTP/1.1\r\nHost: t\r\n");
    std::thread::sleep(Duration::from_millis(50));
    c.send("x-id: halves\r\n\r\n");
    assert_eq!(c.read_response().body_str(), "halves");
    assert_eq!(b.requests(), 3 * 48 + 2);
}

/// A client that connects and leaves without a byte, and one that sends half a head
/// and leaves, end their connections; the shard goes on answering.
#[test]
fn clients_that_leave_before_their_request_end_only_their_connection() {
    let b = TestBackend::start("a");
    let lb = start(b.addr(), "128");
    let addr = lb.addr("web");
    for _ in 0..20 {
        drop(std::net::TcpStream::connect(addr).unwrap());
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        drop(s);
    }
    assert_eq!(http_get(addr, "/").status, 200);
    assert_eq!(b.requests(), 1);
}
