//! Memory per idle TLS client connection (issue 16): a TLS connection waiting for its
//! next request holds no ciphertext buffer and no HTTP buffer, only rustls' own state
//! (keys, deframer), so it costs no more than an idle HAProxy `bind ssl` connection
//! (15.4 KiB measured by `benches/tls_compare.py --scenarios idle10k`). Measured on the
//! real binary: RSS with 1,500 idle TLS connections (handshake done, then one request
//! or none) against RSS before them; each connection is still served afterwards.

use crate::common;
use crate::tls_util;

use common::haproxy::ringlb_cfg;
use common::*;
use tls_util::https::Https;
use tls_util::*;

const CONNS: usize = 1500;

/// HAProxy 2.6's figure for the same connection (OpenSSL 3, released buffers).
const BOUND: u64 = 15 * 1024;

/// The tests run one at a time: each opens 1,500 connections and reads RSS.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn an_idle_tls_keep_alive_connection_costs_no_more_than_haproxys() {
    let per = per_connection_bytes(true);
    assert!(per <= BOUND, "{per} bytes of RSS per idle TLS connection");
}

#[test]
fn a_tls_connection_waiting_for_its_first_request_costs_no_more_than_haproxys() {
    let per = per_connection_bytes(false);
    assert!(
        per <= BOUND,
        "{per} bytes of RSS per new silent TLS connection"
    );
}

/// RSS per connection (bytes) with `CONNS` TLS connections open, each after one
/// request (`request`) or none.
fn per_connection_bytes(request: bool) -> u64 {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    raise_fd_limit(3 * CONNS as u64);
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let app = TestBackend::start("app");
    let cfg = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 10s\n    timeout http-request 60s\n    timeout http-keep-alive 60s\nfrontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        app.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addr = lb.addr("fe");
    let client = client_config(&pki.ca_der(), ClientOpts::default());
    let open = |n: usize| -> Vec<Https> {
        (0..n)
            .map(|i| {
                let mut c = Https::connect(addr, client.clone(), "a.test")
                    .unwrap_or_else(|e| panic!("connection {i}: {e}"));
                if request {
                    let a = c
                        .get("a.test", "/")
                        .unwrap_or_else(|e| panic!("request {i}: {e}"));
                    assert_eq!(a.status, 200, "request {i}");
                }
                c
            })
            .collect()
    };
    drop(open(20));
    let before = settled_rss(lb.pid());
    let conns = open(CONNS);
    // The connections give their buffers back once they were quiet for the grace
    // (100 ms) and the shard's free lists are trimmed (once a second).
    let after = settled_rss(lb.pid());
    let per = after.saturating_sub(before) * 1024 / CONNS as u64;
    eprintln!("{per} bytes of RSS per idle TLS connection ({before} -> {after} KiB)");
    // Each connection still answers: its state survived the wait.
    let mut conns = conns;
    for (i, c) in conns.iter_mut().enumerate().step_by(100) {
        let a = c
            .get("a.test", "/")
            .unwrap_or_else(|e| panic!("request {i} after the wait: {e}"));
        assert_eq!(a.status, 200);
    }
    drop(conns);
    per
}
