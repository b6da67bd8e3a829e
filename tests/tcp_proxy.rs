//! L4 (`mode = "tcp"`) passthrough: bytes both ways intact, a client's half-close
//! passed on, a failed connect retried on another server, the idle timeout.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::wire::write_pattern;
use common::*;

fn tcp_config(addrs: &[SocketAddr], extra: &str) -> String {
    format!(
        "[runtime]\nshards = 2\n\n[frontend.tcp]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"echo\"\n\n[backend.echo]\n{}\n{extra}\n",
        servers_toml("echo", addrs)
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .expect("connect to the tcp frontend");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until EOF; panics on error or timeout.
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("read until EOF: {e} (after {} bytes)", out.len()));
    out
}

#[test]
fn echo_4mib_both_ways() {
    const N: usize = 4 * 1024 * 1024;
    let echo = EchoServer::start();
    let lb = RingLb::start(&tcp_config(&[echo.addr()], ""));
    let mut s = connect(lb.addr("tcp"));
    let mut w = s.try_clone().unwrap();
    // Write and read at the same time, or both sides' buffers fill up.
    let writer = thread::spawn(move || write_pattern(&mut w, N as u64).expect("write 4 MiB"));
    let mut got = vec![0u8; N];
    s.read_exact(&mut got).expect("read 4 MiB back");
    writer.join().unwrap();
    assert_eq!(pattern_mismatch(&got, 0), None, "echoed bytes differ");
}

#[test]
fn half_close_is_passed_on() {
    const N: usize = 1024 * 1024;
    let echo = EchoServer::start();
    let lb = RingLb::start(&tcp_config(&[echo.addr()], ""));
    let mut s = connect(lb.addr("tcp"));
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        write_pattern(&mut w, N as u64).expect("write 1 MiB");
        // Done sending: the echo server sees EOF only if the balancer passes this on.
        w.shutdown(Shutdown::Write).expect("shutdown write");
    });
    let got = read_to_eof(&mut s);
    writer.join().unwrap();
    assert_eq!(got.len(), N, "bytes back before EOF");
    assert_eq!(pattern_mismatch(&got, 0), None);
}

#[test]
fn half_close_with_nothing_sent() {
    let echo = EchoServer::start();
    let lb = RingLb::start(&tcp_config(&[echo.addr()], ""));
    let mut s = connect(lb.addr("tcp"));
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
}

#[test]
fn failed_connect_is_retried_on_another_server() {
    let echo = EchoServer::start();
    let dead = ReservedPort::new();
    let lb = RingLb::start(&tcp_config(
        &[dead.addr(), echo.addr()],
        "[timeout]\nconnect = \"1s\"\n",
    ));
    for i in 0..20 {
        let mut s = connect(lb.addr("tcp"));
        let msg = format!("ping {i}");
        s.write_all(msg.as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&read_to_eof(&mut s)),
            msg,
            "connection {i}"
        );
    }
    assert_eq!(echo.accepts(), 20);
}

#[test]
fn no_server_reachable_closes_the_client() {
    let (d1, d2) = (ReservedPort::new(), ReservedPort::new());
    let lb = RingLb::start(&tcp_config(
        &[d1.addr(), d2.addr()],
        "[timeout]\nconnect = \"1s\"\n",
    ));
    let mut s = connect(lb.addr("tcp"));
    let _ = s.write_all(b"hello?");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {n} bytes from nowhere"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("client connection still open 5 s after every connect failed")
        }
        Err(_) => {} // reset: closed as well
    }
}

#[test]
fn idle_tcp_connection_is_closed() {
    let echo = EchoServer::start();
    let lb = RingLb::start(&tcp_config(
        &[echo.addr()],
        "[timeout]\nclient = \"300ms\"\n",
    ));
    let mut s = connect(lb.addr("tcp"));
    s.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    s.read_exact(&mut one).unwrap();
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected {n} bytes"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("idle connection still open after 5 s with a 300 ms idle timeout")
        }
        Err(_) => {} // reset: closed as well
    }
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "closed after only {:?}",
        t.elapsed()
    );
}

#[test]
fn many_parallel_tcp_connections() {
    let echo = EchoServer::start();
    let lb = RingLb::start(&tcp_config(&[echo.addr()], ""));
    let addr = lb.addr("tcp");
    let threads: Vec<_> = (0..50)
        .map(|i| {
            thread::spawn(move || {
                let mut s = connect(addr);
                let msg = format!("connection {i} says hello").repeat(100);
                s.write_all(msg.as_bytes()).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                assert_eq!(String::from_utf8_lossy(&read_to_eof(&mut s)), msg);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn server_close_reaches_the_client() {
    // The server answers and closes on its own: the client gets every byte, then EOF.
    let b = TestBackend::start("l4");
    let lb = RingLb::start(&tcp_config(&[b.addr()], ""));
    let mut s = connect(lb.addr("tcp"));
    s.write_all(b"GET /bytes-close/300000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let all = read_to_eof(&mut s);
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head through the tcp frontend")
        + 4;
    assert!(
        all.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&all[..head_end])
    );
    let body = &all[head_end..];
    assert_eq!(body.len(), 300_000);
    assert_eq!(pattern_mismatch(body, 0), None);
}
