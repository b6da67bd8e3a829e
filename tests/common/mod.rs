//! The integration-test harness, shared by every file under `tests/` (declared once in
//! `tests/suite.rs`, and in each binary of its own): the real `ringlb` binary as a
//! child process, real HTTP and TCP backends on `127.0.0.1:0`, and a small blocking
//! HTTP client. Everything waits with a deadline; nothing sleeps for readiness.

// Each test binary uses only part of the harness.
#![allow(dead_code, unused_imports)]

pub mod backend;
pub mod client;
pub mod dns;
pub mod early;
pub mod faulty;
pub mod grpc;
pub mod h2;
pub mod haproxy;
pub mod proc;
pub mod raw;
pub mod redis;
pub mod seen;
pub mod server_state;
pub mod syslog;
pub mod tcp;
pub mod traffic;
pub mod twins;
pub mod wire;

use std::thread;
use std::time::{Duration, Instant};

pub use backend::TestBackend;
pub use client::{
    get_request, get_with, http_get, http_get_host, id_request, post_chunked_request, post_request,
    HttpClient, Response,
};
pub use proc::{
    check_config, check_config_file, fd_count, raise_fd_limit, rss_kib, run, settled_rss,
    socket_count, Output, RingLb,
};
pub use raw::{RawServer, Recorded, Recorder};
pub use redis::RedisServer;
pub use tcp::{EchoServer, ReservedPort};
pub use wire::{pattern, pattern_mismatch, pattern_sha256};

/// The value of one Prometheus series (`name{labels}`) in a `/metrics` answer.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Polls `cond` every few milliseconds until it holds; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A TOML server list: `[[backend.NAME.server]]` tables for `addrs`.
pub fn servers_toml(backend: &str, addrs: &[std::net::SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| format!("[[backend.{backend}.server]]\naddr = \"{a}\"\n"))
        .collect::<Vec<_>>()
        .join("")
}

/// The usual test config: frontend `web` (http, on 127.0.0.1:0, 2 shards) whose default
/// backend `app` holds `addrs`; `extra` is appended (more tables, such as `[timeout]`).
pub fn http_config(addrs: &[std::net::SocketAddr], extra: &str) -> String {
    http_config_shards(2, addrs, extra)
}

/// `http_config` with `runtime.shards = shards`.
pub fn http_config_shards(shards: usize, addrs: &[std::net::SocketAddr], extra: &str) -> String {
    format!(
        "[runtime]\nshards = {shards}\n\n[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"http\"\ndefault_backend = \"app\"\n\n[backend.app]\n{}\n{extra}\n",
        servers_toml("app", addrs)
    )
}

/// One runtime API round trip on the stats socket: send a line, read until the server
/// closes (as `echo LINE | socat stdio unix-connect:SOCK` does).
pub fn cli(sock: &std::path::Path, line: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("connect to the stats socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the answer");
    out
}
