//! SIGUSR1 soft stop (in-flight requests finish without the short grace period, /ready
//! fails meanwhile) and SIGHUP / SIGUSR2 reload checks (a bad file is refused, logged
//! with its path, and nothing else changes).

use crate::common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn config(b: &TestBackend, extra: &str) -> String {
    format!(
        "[runtime]\nshards = 2\n[admin]\nlisten = \"127.0.0.1:0\"\n[timeout]\nshutdown = \"200ms\"\n{extra}\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
        b.addr()
    )
}

#[test]
fn soft_stop_lets_long_requests_finish_and_fails_ready() {
    let b = TestBackend::start("b");
    let mut lb = RingLb::start(&config(&b, ""));
    let admin = lb.admin_addr();
    let addr = lb.addr("web");
    assert_eq!(http_get(admin, "/ready").status, 200);
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let slow = std::thread::spawn(move || {
        let r = http_get(addr, "/sleep/1200");
        flag.store(true, Ordering::SeqCst);
        r
    });
    wait_for(
        "the slow request to reach the backend",
        Duration::from_secs(5),
        || b.in_flight() == 1,
    );
    lb.signal(libc::SIGUSR1);
    wait_for(
        "/ready to fail during the soft stop",
        Duration::from_secs(3),
        || http_get(admin, "/ready").status == 503,
    );
    // Far longer than timeout.shutdown (200 ms): a soft stop has no such limit.
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let status = lb
        .wait_exit(Duration::from_secs(10))
        .expect("exits after its last request");
    assert_eq!(status.code(), Some(0), "{}", lb.stderr());
    assert!(done.load(Ordering::SeqCst));
}

#[test]
fn sigterm_during_a_soft_stop_cuts_it_short() {
    let b = TestBackend::start("b");
    let mut lb = RingLb::start(&config(&b, ""));
    let addr = lb.addr("web");
    let slow = std::thread::spawn(move || {
        HttpClient::connect(addr).try_request(get_request("/sleep/5000"))
    });
    wait_for(
        "the slow request to reach the backend",
        Duration::from_secs(5),
        || b.in_flight() == 1,
    );
    lb.signal(libc::SIGUSR1);
    wait_for("the soft stop to begin", Duration::from_secs(3), || {
        lb.stderr().contains("soft stop")
    });
    lb.signal(libc::SIGTERM);
    let status = lb
        .wait_exit(Duration::from_secs(3))
        .expect("SIGTERM cut the soft stop short");
    assert_eq!(status.code(), Some(0));
    assert!(slow.join().unwrap().is_err(), "the 5 s request was cut off");
}

#[test]
fn hard_stop_after_bounds_a_soft_stop() {
    let b = TestBackend::start("b");
    let mut lb = RingLb::start(&config(&b, "hard_stop_after = \"300ms\""));
    let addr = lb.addr("web");
    let _slow = std::thread::spawn(move || {
        HttpClient::connect(addr).try_request(get_request("/sleep/5000"))
    });
    wait_for(
        "the slow request to reach the backend",
        Duration::from_secs(5),
        || b.in_flight() == 1,
    );
    lb.signal(libc::SIGUSR1);
    let status = lb
        .wait_exit(Duration::from_secs(4))
        .expect("hard_stop_after ended the soft stop");
    assert_eq!(status.code(), Some(0));
}

/// The same from haproxy.cfg: global `hard-stop-after` (once warned "ignored").
#[test]
fn haproxy_hard_stop_after_bounds_a_soft_stop() {
    let b = TestBackend::start("b");
    let cfg = format!(
        "global\n    nbthread 2\n    hard-stop-after 300ms\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    );
    let mut lb = common::haproxy::ringlb_cfg(&cfg);
    assert!(!lb.stderr().contains("hard-stop-after"), "{}", lb.stderr());
    let addr = lb.addr("web");
    let _slow = std::thread::spawn(move || {
        HttpClient::connect(addr).try_request(get_request("/sleep/5000"))
    });
    wait_for(
        "the slow request to reach the backend",
        Duration::from_secs(5),
        || b.in_flight() == 1,
    );
    lb.signal(libc::SIGUSR1);
    let status = lb
        .wait_exit(Duration::from_secs(4))
        .expect("hard-stop-after ended the soft stop");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bad_config_on_reload_is_refused_and_nothing_changes() {
    let b = TestBackend::start("b");
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(config(&b, "").as_bytes()).unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let lb = RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"));
    let addr = lb.addr("web");
    assert_eq!(http_get(addr, "/").status, 200);

    std::fs::write(&path, "[frontend.web]\nbind = \"nope\"\nbogus = 1\n").unwrap();
    for sig in [libc::SIGHUP, libc::SIGUSR2] {
        let before = lb.stderr().matches("reload refused").count();
        lb.signal(sig);
        wait_for("the refusal in the log", Duration::from_secs(5), || {
            lb.stderr().matches("reload refused").count() > before
        });
        assert!(
            lb.stderr().contains(&path),
            "the error names the file: {}",
            lb.stderr()
        );
        let mut c = HttpClient::connect(addr);
        assert_eq!(c.get("/").status, 200, "still serving on the old config");
    }
}
