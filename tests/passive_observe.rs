//! Passive health in haproxy.cfg, as HAProxy 2.6: failed requests count against a
//! server only with `observe`; `error-limit` of them in a row then act as `on-error`
//! says (`fail-check`, the default, counts one failed health check; `sudden-death`
//! leaves the server one failed check from down; `mark-down` marks it down at once).
//! The server's address refuses connections while its health checks (`port`) pass,
//! and the checks are far apart (`inter 60s fastinter 60s`), so only the passive
//! failures move the server's state.

use crate::common;

use std::time::Duration;

use common::haproxy::ringlb_cfg;
use common::tcp::ReservedPort;
use common::*;

/// The balancer, the health-check server, the server of `app`, and the refusing
/// address of `flaky/s1` (held for the test: a port bound and closed could be taken by
/// another test's server meanwhile, which then answers the "failing" requests).
struct Setup {
    lb: RingLb,
    _check: TestBackend,
    _live: TestBackend,
    _dead: ReservedPort,
}

fn start(server_opts: &str, fall: u32) -> Setup {
    let check = TestBackend::start("check");
    let live = TestBackend::start("live");
    let reserved = ReservedPort::new();
    let dead = reserved.addr();
    let text = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    \
         timeout server 5s\n    retries 0\n\
         frontend web\n    bind 127.0.0.1:0\n    use_backend flaky if {{ path_beg /flaky }}\n    \
         default_backend app\n\
         backend flaky\n    option httpchk GET /health\n    \
         server s1 {dead} check port {} inter 60s fastinter 60s rise 1 fall {fall} {server_opts}\n\
         backend app\n    server live {}\n",
        check.addr().port(),
        live.addr()
    );
    let lb = ringlb_cfg(&text);
    // The first check passed: s1 is up (it starts up, as in HAProxy, and its check
    // answers).
    wait_for("the first check", Duration::from_secs(10), || {
        check.health_checks() > 0
    });
    Setup {
        lb,
        _check: check,
        _live: live,
        _dead: reserved,
    }
}

/// Sends `n` requests to the refusing server; each fails (503: no retry).
fn fail(lb: &RingLb, n: usize) {
    for _ in 0..n {
        let r = http_get(lb.addr("web"), "/flaky");
        assert!(r.status >= 500, "{r:?}");
    }
}

fn marked_down(lb: &RingLb) -> bool {
    lb.stderr().contains("flaky/s1 is DOWN")
}

/// Passive reports reach the health thread within its tick; give them time.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn without_observe_failures_do_not_mark_the_server_down() {
    let setup = start("", 1);
    let lb = &setup.lb;
    fail(lb, 25);
    settle();
    assert!(!marked_down(lb), "{}", lb.stderr());
}

#[test]
fn mark_down_acts_at_the_error_limit() {
    let setup = start("observe layer4 error-limit 3 on-error mark-down", 3);
    let lb = &setup.lb;
    fail(lb, 2);
    settle();
    assert!(!marked_down(lb), "2 of 3: {}", lb.stderr());
    fail(lb, 1);
    wait_for("mark-down", Duration::from_secs(5), || marked_down(lb));
    assert!(lb.stderr().contains("Passive check: 3 consecutive errors"));
}

#[test]
fn fail_check_is_one_failed_check_and_the_default() {
    // fall 2: the first limit reached is one failed check, the second marks it down.
    let setup = start("observe layer4 error-limit 2", 2);
    let lb = &setup.lb;
    fail(lb, 2);
    settle();
    assert!(!marked_down(lb), "one failed check of 2: {}", lb.stderr());
    fail(lb, 2);
    wait_for("two failed checks", Duration::from_secs(5), || {
        marked_down(lb)
    });
}

#[test]
fn sudden_death_leaves_one_check_to_go() {
    // fall 3: sudden-death leaves the server at fall - 1 failed checks, so the next
    // limit reached marks it down (fail-check would need three).
    let setup = start("observe layer4 error-limit 2 on-error sudden-death", 3);
    let lb = &setup.lb;
    fail(lb, 2);
    settle();
    assert!(!marked_down(lb), "pre-fatal: {}", lb.stderr());
    fail(lb, 2);
    wait_for("sudden death", Duration::from_secs(5), || marked_down(lb));
}

#[test]
fn fastinter_only_hurries_the_check() {
    let setup = start("observe layer4 error-limit 2 on-error fastinter", 1);
    let lb = &setup.lb;
    fail(lb, 6);
    settle();
    assert!(!marked_down(lb), "{}", lb.stderr());
}

#[test]
fn bad_values_are_refused_with_their_line() {
    for (opt, says) in [
        ("observe layer5", "'observe' expects one of"),
        ("on-error explode", "'on-error' expects one of"),
    ] {
        let cfg = common::haproxy::write_cfg(&format!(
            "defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\n\
             backend app\n    server s1 127.0.0.1:1 {opt}\n"
        ));
        let out = common::haproxy::ringlb_check(cfg.path(), &[]);
        assert_eq!(out.code(), Some(1), "{opt}: {}", out.stderr);
        assert!(
            out.stderr.contains(":7:") && out.stderr.contains(says),
            "{opt}: {}",
            out.stderr
        );
    }
}
