//! TCP mode splices bulk transfers (socket → pipe → socket) and copies interactive
//! traffic, as HAProxy's `option splice-auto`, by default: 64 MiB each way arrive
//! intact with their half-closes, through a pipe (`show info` counts the spliced
//! bytes); a direction whose traffic turns interactive copies again, and splices again
//! when bulk comes back; `splice-response` splices from the first byte; `no option
//! splice-auto` and global `nosplice` (and their TOML keys) splice nothing, HTTP bodies
//! neither. Byte counters and the tcplog line, timeouts, `tcp-request content`
//! inspection and the PROXY protocol work the same on spliced connections.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use common::haproxy::ringlb_cfg;
use common::raw::RawServer;
use common::twins::stat_rows;
use common::wire::{hex, pattern_sha256, write_pattern};
use common::*;
use sha2::{Digest, Sha256};

const BULK: u64 = 64 << 20;

/// A `listen` section in TCP mode towards `server` (` send-proxy` and the like after
/// it in `server_opts`), with `extra` lines in it and `global` lines, and a stats
/// socket at `sock`.
fn config(sock: &Path, global: &str, extra: &str, server: SocketAddr, server_opts: &str) -> String {
    format!(
        "global\n    nbthread 1\n    stats socket \"{}\" level admin\n{global}\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\nlisten tcp\n    bind 127.0.0.1:0\n{extra}\n    server s {server}{server_opts}\n",
        sock.display()
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads `s` to its end: (bytes, hex sha256).
fn hash_to_eof(s: &mut impl Read) -> (u64, String) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read after {n} bytes: {e}"),
        }
    }
    (n, hex(&h.finalize()))
}

/// A server that sends `BULK` pattern bytes and half-closes while it reads what it is
/// sent to the end, then reports (bytes, sha256) of that; `proxy_line` first reads a
/// PROXY v1 line and reports it instead of counting it.
fn bulk_server(proxy_line: bool) -> (RawServer, mpsc::Receiver<(Option<String>, u64, String)>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = RawServer::start(move |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let proxy = proxy_line.then(|| {
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while !line.ends_with(b"\r\n") && s.read_exact(&mut b).is_ok() {
                line.push(b[0]);
            }
            String::from_utf8_lossy(&line).to_string()
        });
        let mut w = s.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let _ = write_pattern(&mut w, BULK);
            let _ = w.shutdown(Shutdown::Write);
        });
        let (n, sum) = hash_to_eof(&mut s);
        let _ = writer.join();
        let _ = tx.lock().unwrap().send((proxy, n, sum));
    });
    (server, rx)
}

/// `BULK` bytes each way at once through `addr`, the client half-closing when done:
/// both ends get every byte (checked by sha256) and see the other's end; returns the
/// server's report.
fn bulk_both_ways(
    addr: SocketAddr,
    rx: &mpsc::Receiver<(Option<String>, u64, String)>,
) -> Option<String> {
    let mut s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        write_pattern(&mut w, BULK).expect("write to the balancer");
        w.shutdown(Shutdown::Write).unwrap();
    });
    let (n, sum) = hash_to_eof(&mut s);
    writer.join().unwrap();
    let want = pattern_sha256(BULK);
    assert_eq!((n, sum.as_str()), (BULK, want.as_str()), "server → client");
    let (proxy, n, sum) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server's report");
    assert_eq!((n, sum.as_str()), (BULK, want.as_str()), "client → server");
    proxy
}

/// `show info`'s TotalSplicdedBytesOut (HAProxy's spelling).
fn spliced(sock: &Path) -> u64 {
    let info = cli(sock, "show info");
    info.lines()
        .find_map(|l| l.strip_prefix("TotalSplicdedBytesOut: "))
        .unwrap_or_else(|| panic!("no TotalSplicdedBytesOut in {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// Sends `n` messages of `len` bytes to an echo behind `s`, each read back before the
/// next (an interactive exchange).
fn ping_pong(s: &mut TcpStream, n: usize, len: usize) {
    let mut back = vec![0u8; len];
    for i in 0..n {
        let msg = vec![b'a' + (i % 26) as u8; len];
        s.write_all(&msg).unwrap();
        s.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("echo {i}: {e}"));
        assert_eq!(back, msg, "echo {i}");
    }
}

/// `n` bytes each way at once through an echo behind `s`, intact.
fn echo_bulk(s: &mut TcpStream, n: u64) {
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || write_pattern(&mut w, n).expect("write"));
    let mut got = vec![0u8; n as usize];
    s.read_exact(&mut got).expect("read the echo");
    writer.join().unwrap();
    assert_eq!(pattern_mismatch(&got, 0), None, "echoed bytes differ");
}

#[test]
fn bulk_both_ways_is_spliced_intact_with_half_closes_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let (server, rx) = bulk_server(false);
    let lb = ringlb_cfg(&config(
        &sock,
        "    log stdout format raw local0",
        "    log global\n    option tcplog",
        server.addr(),
        "",
    ));
    assert_eq!(spliced(&sock), 0);
    bulk_both_ways(lb.addr("tcp"), &rx);
    // Nearly all of it went through pipes: only the reads before a direction was
    // seen to be bulk, or while it looked interactive, were copied.
    let through_pipes = spliced(&sock);
    assert!(
        (BULK..=2 * BULK).contains(&through_pipes),
        "spliced {through_pipes} of {} bytes",
        2 * BULK
    );
    // The byte counters hold every byte, spliced or copied.
    wait_for("the connection accounted", Duration::from_secs(10), || {
        let rows = stat_rows(&cli(&sock, "show stat"));
        let fe = rows
            .iter()
            .find(|r| r["pxname"] == "tcp" && r["svname"] == "FRONTEND")
            .unwrap();
        fe["bin"] == BULK.to_string() && fe["bout"] == BULK.to_string()
    });
    // And so does the log line (bytes sent to the client).
    let bytes = format!(" {BULK} ");
    wait_for("the tcplog line", Duration::from_secs(10), || {
        lb.stdout_lines()
            .iter()
            .any(|l| l.contains(" tcp tcp/s ") && l.contains(&bytes))
    });
}

#[test]
fn interactive_traffic_is_copied_and_bulk_spliced_again() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let echo = EchoServer::start();
    let lb = ringlb_cfg(&config(&sock, "", "", echo.addr(), ""));
    let mut s = connect(lb.addr("tcp"));
    // Interactive from the start: copied.
    ping_pong(&mut s, 20, 100);
    assert_eq!(spliced(&sock), 0, "small messages are copied");
    echo_bulk(&mut s, 8 << 20);
    let after_bulk = spliced(&sock);
    assert!(after_bulk > 8 << 20, "bulk is spliced: {after_bulk}");
    // Interactive again: at most a few messages each way go through a pipe before the
    // directions copy again (3 each: `pipe::SMALL_SPLICES`).
    ping_pong(&mut s, 100, 100);
    let during_chat = spliced(&sock) - after_bulk;
    assert!(
        during_chat <= 2 * 3 * 100,
        "{during_chat} of 20000 interactive bytes spliced"
    );
    echo_bulk(&mut s, 8 << 20);
    assert!(
        spliced(&sock) - after_bulk > 8 << 20,
        "bulk after the chat is spliced again: {} after {after_bulk}",
        spliced(&sock)
    );
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn splice_response_splices_from_the_first_byte_and_only_that_way() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let echo = EchoServer::start();
    let lb = ringlb_cfg(&config(
        &sock,
        "",
        "    no option splice-auto\n    option splice-response",
        echo.addr(),
        "",
    ));
    let mut s = connect(lb.addr("tcp"));
    // More small splices than a counter of them holds without saturating.
    ping_pong(&mut s, 300, 10);
    // The 3,000 bytes back, none of the 3,000 sent.
    assert_eq!(spliced(&sock), 3000);
}

/// 16 MiB each way through an echo behind the ringlb `start` runs (given its stats
/// socket and the echo's address): all copied, none spliced.
fn copies_everything(what: &str, start: impl FnOnce(&Path, SocketAddr) -> RingLb) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let echo = EchoServer::start();
    let lb = start(&sock, echo.addr());
    let mut s = connect(lb.addr("tcp"));
    echo_bulk(&mut s, 16 << 20);
    assert_eq!(spliced(&sock), 0, "{what}: nothing spliced");
}

#[test]
fn nosplice_and_no_option_splice_auto_copy_everything() {
    for (global, extra) in [("    nosplice", ""), ("", "    no option splice-auto")] {
        copies_everything(&format!("{global}{extra}"), |sock, echo| {
            ringlb_cfg(&config(sock, global, extra, echo, ""))
        });
    }
}

#[test]
fn nosplice_copies_http_bodies_too() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let b = TestBackend::start("b");
    let cfg = |global: &str| config(&sock, global, "    mode http", b.addr(), "");
    for (global, spliced_body) in [("", true), ("    nosplice", false)] {
        let lb = ringlb_cfg(&cfg(global));
        let r = http_get(lb.addr("tcp"), "/bytes/1000000");
        assert_eq!((r.status, r.body.len()), (200, 1_000_000));
        assert_eq!(spliced(&sock) > 0, spliced_body, "{global:?}");
        drop(lb);
    }
}

#[test]
fn timeouts_end_an_idle_spliced_connection() {
    // (The defaults' client and server timeouts are 30 s: the client's read would fail
    // before they end the connection.)
    for timeouts in [
        "    timeout client 1s\n    timeout server 1s",
        "    timeout tunnel 1s",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let echo = EchoServer::start();
        let lb = ringlb_cfg(&config(&sock, "", timeouts, echo.addr(), ""));
        let mut s = connect(lb.addr("tcp"));
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        echo_bulk(&mut s, 8 << 20);
        assert!(spliced(&sock) > 0);
        // Both directions wait spliced; the timeout still ends the connection.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
            .unwrap_or_else(|e| panic!("{timeouts}: not closed by the balancer: {e}"));
        assert!(rest.is_empty());
    }
}

#[test]
fn inspected_and_proxy_protocol_connections_are_spliced_intact() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let (server, rx) = bulk_server(true);
    let lb = ringlb_cfg(&config(
        &sock,
        "",
        "    tcp-request inspect-delay 2s\n    tcp-request content accept if { req.len gt 0 }",
        server.addr(),
        " send-proxy",
    ));
    let proxy = bulk_both_ways(lb.addr("tcp"), &rx).expect("a PROXY line");
    assert!(
        proxy.starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 "),
        "{proxy:?}"
    );
    assert!(spliced(&sock) >= BULK);
}

#[test]
fn toml_keys_turn_splicing_off() {
    for (runtime, frontend) in [("splice = false", ""), ("", "splice_auto = false")] {
        copies_everything(&format!("{runtime}{frontend}"), |sock, echo| {
            RingLb::start(&format!(
                "[runtime]\nshards = 1\n{runtime}\n[admin]\nstats_socket = \"{}\"\n[frontend.tcp]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"echo\"\n{frontend}\n[backend.echo]\n{}",
                sock.display(),
                servers_toml("echo", &[echo])
            ))
        });
    }
}
