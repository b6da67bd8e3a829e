//! Memory per request in flight: a request waiting for its server's answer holds its
//! connection's buffers and the state of its exchange, no more. The exchange's future
//! once kept the request parser's header slots (32 KiB) across the wait for a
//! buffered body, so every request in flight, HTTP/1 or HTTP/2 stream, carried them.

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{raise_fd_limit, settled_rss, RingLb, TestBackend};

const REQUESTS: usize = 400;

/// The bound per request in flight, client and server side together (the buffers
/// of both connections, the exchange's state). This debug build held 47.6 KiB of RSS
/// per request before the fix, 15.2 KiB after.
const BOUND: u64 = 28 * 1024;

#[test]
fn a_request_in_flight_holds_no_parser_scratch_space() {
    raise_fd_limit(4 * REQUESTS as u64);
    let b = TestBackend::start("a");
    let lb = RingLb::start(&common::http_config_shards(
        1,
        &[b.addr()],
        "[timeout]\nclient = \"60s\"\nserver = \"60s\"\nhttp_request = \"60s\"\n",
    ));
    // One request first: what every shard holds whatever its load is in `before`.
    drop(common::http_get(lb.addr("web"), "/"));
    let round = |n: usize| -> Vec<TcpStream> {
        let conns: Vec<TcpStream> = (0..n)
            .map(|_| {
                let mut s = TcpStream::connect(lb.addr("web")).expect("connect");
                s.write_all(b"GET /sleep/30000 HTTP/1.1\r\nHost: t\r\n\r\n")
                    .unwrap();
                s
            })
            .collect();
        common::wait_for(
            "every request to reach the server",
            Duration::from_secs(30),
            || b.in_flight() >= n,
        );
        conns
    };
    let before = settled_rss(lb.pid());
    let conns = round(REQUESTS);
    let during = settled_rss(lb.pid());
    drop(conns);
    let per = during.saturating_sub(before) * 1024 / REQUESTS as u64;
    eprintln!("{per} bytes of RSS per request in flight ({before} -> {during} KiB)");
    assert!(per <= BOUND, "{per} bytes of RSS per request in flight");
}
