//! TCP mode's multishot receives into the shard's provided-buffer ring (io_uring;
//! the legacy driver reads as before and must give the same bytes). A ring with fewer
//! buffers than readable connections runs dry: each receive the kernel ends with
//! ENOBUFS is read once into the connection's own buffer and armed again, so no
//! connection loses a byte or stalls.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::wire::write_pattern;
use common::*;

fn legacy() -> bool {
    std::env::var("MONOIO_FORCE_LEGACY_DRIVER").is_ok_and(|v| v == "1")
}

fn start(echo: SocketAddr, ring: &str) -> RingLb {
    let toml = format!(
        "[runtime]\nshards = 1\n\n[frontend.tcp]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"echo\"\n\n[backend.echo]\n{}\n",
        servers_toml("echo", &[echo])
    );
    let cfg = common::proc::write_config(&toml);
    let path = cfg.path().to_str().unwrap().to_string();
    RingLb::launch_env(
        &["-f", &path],
        Some(cfg),
        &[("RINGLB_RECV_RING", ring.to_string())],
        |line| line.starts_with("ready"),
    )
}

/// `conns` clients at once each send `n` bytes and read them back through the echo.
fn echo_many(addr: SocketAddr, conns: usize, n: usize) {
    let clients: Vec<_> = (0..conns)
        .map(|i| {
            thread::spawn(move || {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .expect("connect to the tcp frontend");
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut w = s.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    write_pattern(&mut w, n as u64).expect("write the pattern");
                    w.flush().unwrap();
                });
                let mut got = vec![0u8; n];
                s.read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("client {i}: read back {n} bytes: {e}"));
                writer.join().unwrap();
                assert_eq!(
                    pattern_mismatch(&got, 0),
                    None,
                    "client {i}: echoed bytes differ"
                );
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
}

#[test]
fn a_dry_ring_loses_and_stalls_nothing() {
    let echo = EchoServer::start();
    // Two buffers for 24 connections streaming both ways: the ring runs dry all along.
    let lb = start(echo.addr(), "2");
    echo_many(lb.addr("tcp"), 24, 2 * 1024 * 1024);
    let multishot = lb
        .stderr()
        .contains("multishot receives into a ring of 2 buffers");
    assert_eq!(
        multishot,
        !legacy(),
        "io_uring receives through the ring, the legacy driver does not: {}",
        lb.stderr()
    );
    // The shard still serves after all that.
    echo_many(lb.addr("tcp"), 2, 64 * 1024);
}

#[test]
fn receives_without_a_ring_give_the_same_bytes() {
    let echo = EchoServer::start();
    let lb = start(echo.addr(), "0");
    echo_many(lb.addr("tcp"), 8, 1024 * 1024);
    assert!(
        !lb.stderr().contains("multishot receives"),
        "RINGLB_RECV_RING=0 turns the ring off: {}",
        lb.stderr()
    );
}

/// A shard whose runtime died gets a new one on the same thread: its TCP connections
/// then receive through a ring of the new driver (the old one belonged to the dead
/// runtime, whose completions nobody reads any more).
#[test]
fn a_restarted_shard_receives_through_a_new_ring() {
    let echo = EchoServer::start();
    let web = TestBackend::start("web");
    let toml = format!(
        "[runtime]\nshards = 1\n\n[frontend.tcp]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"echo\"\n\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"web\"\n\n[backend.echo]\n{}\n\n[backend.web]\n{}\n",
        servers_toml("echo", &[echo.addr()]),
        servers_toml("web", &[web.addr()])
    );
    let cfg = common::proc::write_config(&toml);
    let path = cfg.path().to_str().unwrap().to_string();
    let lb = RingLb::launch_env(
        &["-f", &path],
        Some(cfg),
        &[("RINGLB_FAULT_PANIC_PATH", "/boom".to_string())],
        |line| line.starts_with("ready"),
    );
    echo_many(lb.addr("tcp"), 4, 256 * 1024);
    let mut kill = HttpClient::connect(lb.addr("web"));
    kill.set_timeout(Duration::from_secs(10));
    let _ = kill.try_request(get_request("/boom/shard"));
    wait_for("the shard to restart", Duration::from_secs(15), || {
        lb.stderr().contains("shard runtime restarted")
    });
    echo_many(lb.addr("tcp"), 4, 256 * 1024);
    let rings = lb
        .stderr()
        .matches("multishot receives into a ring")
        .count();
    assert_eq!(
        rings,
        if legacy() { 0 } else { 2 },
        "one ring per runtime: {}",
        lb.stderr()
    );
}
