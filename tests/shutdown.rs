//! SIGTERM/SIGINT: listeners close at once, in-flight requests get `timeout.shutdown`
//! to finish, idle connections do not hold the process up, and the exit code is 0.

use crate::common;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Waits until connecting to `addr` is refused; panics after `timeout`.
fn wait_refused(addr: SocketAddr, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return start.elapsed(),
            _ => {}
        }
        assert!(
            start.elapsed() < timeout,
            "{addr} still accepts connections {timeout:?} after the signal"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn config(b: &TestBackend, shutdown: &str) -> String {
    http_config(
        &[b.addr()],
        &format!("[timeout]\nshutdown = \"{shutdown}\"\n"),
    )
}

#[test]
fn sigterm_lets_in_flight_request_finish() {
    let b = TestBackend::start("a");
    let mut lb = RingLb::start(&config(&b, "5s"));
    let addr = lb.addr("web");

    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let client = thread::spawn(move || {
        let r = http_get(addr, "/sleep/2000");
        flag.store(true, Ordering::SeqCst);
        r
    });
    wait_for(
        "the request to reach the backend",
        Duration::from_secs(5),
        || b.in_flight() == 1,
    );

    lb.signal(libc::SIGTERM);
    wait_refused(addr, Duration::from_secs(2));
    assert!(
        !done.load(Ordering::SeqCst),
        "the in-flight request finished before the listeners closed"
    );

    let r = client.join().expect("client thread");
    assert_eq!(r.status, 200, "in-flight request after SIGTERM: {r:?}");
    assert_eq!(r.body_str(), "slept 2000");

    let status = lb
        .wait_exit(Duration::from_secs(10))
        .expect("ringlb still running 10 s after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}\nstderr:\n{}",
        lb.stderr()
    );
}

#[test]
fn sigint_exits_cleanly() {
    let b = TestBackend::start("a");
    let mut lb = RingLb::start(&config(&b, "5s"));
    assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    lb.signal(libc::SIGINT);
    let status = lb
        .wait_exit(Duration::from_secs(5))
        .expect("ringlb still running 5 s after SIGINT");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}\nstderr:\n{}",
        lb.stderr()
    );
}

#[test]
fn idle_keep_alive_connection_does_not_delay_exit() {
    let b = TestBackend::start("a");
    let mut lb = RingLb::start(&config(&b, "10s"));
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.get("/").status, 200);
    // `c` stays open and idle.
    let t = Instant::now();
    lb.signal(libc::SIGTERM);
    let status = lb
        .wait_exit(Duration::from_secs(5))
        .expect("an idle keep-alive connection held ringlb up for 5 s after SIGTERM (shutdown timeout 10 s)");
    assert_eq!(status.code(), Some(0));
    assert!(
        c.closed_by_peer(Duration::from_secs(1)),
        "idle client connection not closed"
    );
    eprintln!("exit {:?} after SIGTERM", t.elapsed());
}

#[test]
fn shutdown_timeout_bounds_a_stuck_request() {
    let b = TestBackend::start("a");
    let mut lb = RingLb::start(&config(&b, "500ms"));
    let addr = lb.addr("web");
    let client = thread::spawn(move || {
        let mut c = HttpClient::connect(addr);
        c.try_request(get_request("/sleep/20000"))
    });
    wait_for(
        "the request to reach the backend",
        Duration::from_secs(5),
        || b.in_flight() == 1,
    );
    let t = Instant::now();
    lb.signal(libc::SIGTERM);
    let status = lb
        .wait_exit(Duration::from_secs(5))
        .expect("ringlb still running 5 s after SIGTERM with a 500 ms shutdown timeout");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "exited after only {:?}",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(0), "stderr:\n{}", lb.stderr());
    // The abandoned client sees its connection end rather than hang.
    let res = client.join().expect("client thread");
    assert!(
        res.is_err() || res.as_ref().unwrap().status >= 500,
        "{res:?}"
    );
}

/// haproxy.cfg's global `pidfile`: the file holds the process id once ringlb is ready,
/// and is removed when it exits.
#[test]
fn haproxy_cfg_pidfile_holds_the_pid_while_running() {
    let b = TestBackend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("ringlb.pid");
    let mut lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\n    pidfile {}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        pidfile.display(),
        b.addr()
    ));
    let written = std::fs::read_to_string(&pidfile).expect("the pid file exists once ready");
    assert_eq!(written.trim(), lb.pid().to_string());
    lb.signal(libc::SIGTERM);
    assert!(
        lb.wait_exit(Duration::from_secs(10)).is_some(),
        "exits on SIGTERM"
    );
    assert!(!pidfile.exists(), "the pid file is removed at exit");
}
