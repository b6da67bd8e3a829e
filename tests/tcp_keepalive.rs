//! `option tcpka` / `clitcpka` / `srvtcpka` and their `-idle|-intvl|-cnt` values: the
//! kernel's keep-alive timer runs on ringlb's client and server sockets, with the
//! configured idle time, and not without the option. Read with `ss -o`, which shows
//! `timer:(keepalive,1min39sec,0)` for a socket whose probes are armed.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// The keep-alive timer (seconds left) on the socket `local` → `peer`, if armed.
fn keepalive_timer(local: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.windows(2)
            .any(|w| w[0] == local.to_string() && w[1] == peer.to_string())
    })?;
    let t = line.split("timer:(keepalive,").nth(1)?.split(',').next()?;
    // `1min39sec`, `99sec`, `850ms`.
    let mut secs = 0;
    let mut rest = t;
    if let Some((m, r)) = rest.split_once("min") {
        secs += m.parse::<u64>().ok()? * 60;
        rest = r;
    }
    if let Some(s) = rest.strip_suffix("sec") {
        secs += s.parse::<u64>().unwrap_or(0);
    }
    Some(secs)
}

fn start(options: &str, backend: &TestBackend) -> RingLb {
    let cfg = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n{options}frontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        backend.addr()
    );
    common::haproxy::ringlb_cfg(&cfg)
}

/// ringlb's socket to the backend: the one whose peer is the backend (the backend's own
/// sockets have the backend's address as their local one).
fn server_side_timer(backend: SocketAddr) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let i = cols.iter().position(|c| *c == backend.to_string())?;
        // Local address first, then the peer: the backend as peer means ringlb's side.
        let local: SocketAddr = cols.get(i.checked_sub(1)?)?.parse().ok()?;
        keepalive_timer(local, backend)
    })
}

#[test]
fn tcpka_arms_keepalive_probes_on_both_sides_with_the_configured_idle_time() {
    let b = TestBackend::start("b");
    let lb = start(
        "    option tcpka\n    clitcpka-idle 100s\n    srvtcpka-idle 200s\n    srvtcpka-intvl 10s\n    srvtcpka-cnt 3\n",
        &b,
    );
    let addr = lb.addr("web");
    let mut c = HttpClient::connect(addr);
    assert_eq!(c.get("/").status, 200);
    let client =
        keepalive_timer(addr, c.local_addr()).expect("keep-alive armed on the client socket");
    assert!(
        (90..=100).contains(&client),
        "client side timer {client} s, idle 100 s"
    );
    let server = server_side_timer(b.addr()).expect("keep-alive armed on the server socket");
    assert!(
        (190..=200).contains(&server),
        "server side timer {server} s, idle 200 s"
    );
}

#[test]
fn clitcpka_alone_arms_only_the_client_side_and_no_option_arms_none() {
    let b = TestBackend::start("b");
    let lb = start("    option clitcpka\n", &b);
    let addr = lb.addr("web");
    let mut c = HttpClient::connect(addr);
    assert_eq!(c.get("/").status, 200);
    assert!(
        keepalive_timer(addr, c.local_addr()).is_some(),
        "client side armed"
    );
    assert_eq!(server_side_timer(b.addr()), None, "server side not armed");
    drop(lb);

    let b = TestBackend::start("b");
    let lb = start("", &b);
    let addr = lb.addr("web");
    let mut c = HttpClient::connect(addr);
    assert_eq!(c.get("/").status, 200);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        keepalive_timer(addr, c.local_addr()),
        None,
        "no option: not armed"
    );
    assert_eq!(server_side_timer(b.addr()), None);
}

#[test]
fn bad_tcpka_values_are_refused_with_their_line() {
    let cfg =
        "defaults\n    mode http\n    clitcpka-idle soon\nfrontend web\n    bind 127.0.0.1:0\n";
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringlb"))
        .args(["-c", "-f", file.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3: 'clitcpka-idle' expects a time"), "{err}");
}
