//! Where the balancer sent requests. Every `TestBackend` answer names its server in
//! `x-backend`, so the client side tallies the servers; configs for one backend `app`
//! with named servers; waiting for a line in ringlb's log. Used by the balancing,
//! health, backup, failover and queueing tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::{get_request, HttpClient, Response};
use super::proc::RingLb;

/// A `[[backend.app.server]]` table named `name` at `addr`, plus `extra` keys
/// (`"weight = 3\nbackup = true"`).
pub fn server(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!("[[backend.app.server]]\nname = \"{name}\"\naddr = \"{addr}\"\n{extra}\n")
}

/// Frontend `web` (`mode = "http"` on 127.0.0.1:0) in front of backend `app`.
/// `top` holds top-level tables (`[timeout]` ...), `backend` the keys of
/// `[backend.app]` and optionally a `[backend.app.health]` table, `servers` the
/// tables made by `server`.
pub fn app_config(shards: usize, top: &str, backend: &str, servers: &[String]) -> String {
    app_config_mode("http", shards, top, backend, servers)
}

/// `app_config` with the frontend's `mode` (`"http"` or `"tcp"`).
pub fn app_config_mode(
    mode: &str,
    shards: usize,
    top: &str,
    backend: &str,
    servers: &[String],
) -> String {
    format!(
        "[runtime]\nshards = {shards}\n\n{top}\n\n[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"{mode}\"\ndefault_backend = \"app\"\n\n[backend.app]\n{backend}\n\n{}",
        servers.join("\n")
    )
}

/// The server that answered `r` (its `x-backend` header).
pub fn backend_of(r: &Response) -> String {
    r.header("x-backend")
        .unwrap_or_else(|| {
            panic!(
                "response without x-backend: {} {:?}",
                r.status,
                r.body_str()
            )
        })
        .to_string()
}

/// How many requests each server answered.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    counts: BTreeMap<String, usize>,
    total: usize,
}

impl Tally {
    pub fn add(&mut self, name: &str) {
        *self.counts.entry(name.to_string()).or_default() += 1;
        self.total += 1;
    }

    pub fn get(&self, name: &str) -> usize {
        self.counts.get(name).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// The servers that answered at least once, by name.
    pub fn names(&self) -> Vec<&str> {
        self.counts.keys().map(|s| s.as_str()).collect()
    }

    /// Panics unless `name` answered `expected` (a fraction of all requests), give or
    /// take `tolerance` of that share (0.15 = ±15 %).
    pub fn assert_share(&self, name: &str, expected: f64, tolerance: f64) {
        let want = expected * self.total as f64;
        let got = self.get(name) as f64;
        assert!(
            (got - want).abs() <= tolerance * want,
            "{name} answered {got} of {} requests, expected {want:.0} ± {:.0}%; tally {:?}",
            self.total,
            tolerance * 100.0,
            self.counts
        );
    }
}

/// `n` GETs of `path` on one keep-alive connection (so on one shard); each must be 200.
pub fn tally_keepalive(addr: SocketAddr, path: &str, n: usize) -> Tally {
    let mut c = HttpClient::connect(addr);
    let mut t = Tally::default();
    for i in 0..n {
        let r = c.get(path);
        assert_eq!(
            r.status,
            200,
            "request {i} of {n} to {path}: {:?}",
            r.body_str()
        );
        t.add(&backend_of(&r));
    }
    t
}

/// `n` GETs of `path`, each on a new connection (spread over the shards by the
/// kernel); each must be 200.
pub fn tally_fresh(addr: SocketAddr, path: &str, n: usize) -> Tally {
    let mut t = Tally::default();
    for _ in 0..n {
        t.add(&served_by(addr, path));
    }
    t
}

/// One GET of `path` on a new connection: the server that answered (200 required).
pub fn served_by(addr: SocketAddr, path: &str) -> String {
    let r = HttpClient::connect(addr).request(get_request(path));
    assert_eq!(r.status, 200, "GET {path}: {:?}", r.body_str());
    backend_of(&r)
}

/// Sends GETs of `path`, each on a new connection, until `n` in a row were answered by
/// servers for which `pred` holds; panics after `timeout`. Returns how long it took.
pub fn until_in_a_row(
    addr: SocketAddr,
    path: &str,
    n: usize,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut streak = 0;
    let mut seen = Tally::default();
    while streak < n {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {n} requests in a row {what}; answered so far: {seen:?}"
        );
        let name = served_by(addr, path);
        seen.add(&name);
        if pred(&name) {
            streak += 1;
        } else {
            streak = 0;
        }
    }
    start.elapsed()
}

/// Waits up to `timeout` for `needle` in ringlb's stderr.
pub fn wait_for_log(lb: &RingLb, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !lb.stderr().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in ringlb's stderr after {timeout:?}; stderr:\n{}",
            lb.stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How many times `needle` occurs in ringlb's stderr so far.
pub fn log_count(lb: &RingLb, needle: &str) -> usize {
    lb.stderr().matches(needle).count()
}
