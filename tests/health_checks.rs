//! Active health checks: an HTTP check takes a failing server out of rotation after
//! `fall` failures (logged the HAProxy way) and back in after `rise` passes; a TCP check
//! notices a server that stopped listening; `expect_status` as a list and as a range
//! replaces the default 2xx/3xx rule; `port`, `method`, `path` and `host` say where and
//! how the check is sent.

use crate::common;

use std::time::{Duration, Instant};

use common::traffic::*;
use common::*;

/// Generous bound for a flip that should take interval × fall (or rise) + one interval.
const FLIP_BOUND: Duration = Duration::from_secs(3);

fn http_check(extra: &str) -> String {
    format!(
        "[backend.app.health]\ntype = \"http\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 3\npath = \"/health\"\n{extra}\n"
    )
}

fn two_servers_lb(health: &str, b1: &TestBackend, b2: &TestBackend) -> RingLb {
    RingLb::start(&app_config(
        2,
        "",
        &format!("balance = \"round_robin\"\n{health}"),
        &[server("s1", b1.addr(), ""), server("s2", b2.addr(), "")],
    ))
}

#[test]
fn failing_http_check_takes_the_server_out_and_back_in() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    let lb = two_servers_lb(&http_check(""), &b1, &b2);
    let addr = lb.addr("web");
    let t = tally_fresh(addr, "/", 40);
    assert!(
        t.get("s1") > 0 && t.get("s2") > 0,
        "both up at first: {t:?}"
    );

    b1.set_health_status(500);
    let failing_since = Instant::now();
    wait_for_log(
        &lb,
        "Server app/s1 is DOWN, reason: Layer7 wrong status, code: 500",
        FLIP_BOUND,
    );
    let fails = b1.health_answers().iter().filter(|&&s| s == 500).count();
    assert!(fails >= 3, "DOWN after {fails} failed checks, fall = 3");
    assert!(
        lb.stderr().contains("1 active and 0 backup servers left."),
        "{}",
        lb.stderr()
    );
    until_in_a_row(addr, "/", 20, FLIP_BOUND, "avoiding s1", |s| s != "s1");
    assert!(
        failing_since.elapsed() < FLIP_BOUND,
        "s1 still had traffic {:?} after its check started failing",
        failing_since.elapsed()
    );
    let before = b1.requests_to("/");
    let t = tally_fresh(addr, "/", 60);
    assert_eq!(t.get("s2"), 60, "traffic while s1 is down: {t:?}");
    assert_eq!(b1.requests_to("/"), before, "s1 got traffic while down");

    let answered = b1.health_answers().len();
    b1.set_health_status(200);
    let passing_since = Instant::now();
    wait_for_log(
        &lb,
        "Server app/s1 is UP, reason: Layer7 check passed",
        FLIP_BOUND,
    );
    let passes = b1.health_answers()[answered..]
        .iter()
        .filter(|&&s| s == 200)
        .count();
    assert!(passes >= 2, "UP after {passes} passed checks, rise = 2");
    until_in_a_row(addr, "/", 1, FLIP_BOUND, "reaching s1", |s| s == "s1");
    assert!(
        passing_since.elapsed() < FLIP_BOUND,
        "s1 had no traffic {:?} after its check passed again",
        passing_since.elapsed()
    );
    let t = tally_fresh(addr, "/", 60);
    t.assert_share("s1", 0.5, 0.3);
}

#[test]
fn tcp_check_marks_a_stopped_server_down() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    let lb = two_servers_lb(
        "[backend.app.health]\ntype = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nfall = 2\nrise = 2\n",
        &b1,
        &b2,
    );
    let addr = lb.addr("web");
    let t = tally_fresh(addr, "/", 20);
    assert!(t.get("s1") > 0, "{t:?}");
    // A TCP check sends nothing: no request reaches the backends.
    assert_eq!(b1.health_checks() + b2.health_checks(), 0);

    b1.stop();
    wait_for_log(
        &lb,
        "Server app/s1 is DOWN, reason: Layer4 connection problem",
        FLIP_BOUND,
    );
    assert!(
        lb.stderr().contains("1 active and 0 backup servers left."),
        "{}",
        lb.stderr()
    );
    until_in_a_row(addr, "/", 20, FLIP_BOUND, "avoiding s1", |s| s != "s1");
    let t = tally_fresh(addr, "/", 40);
    assert_eq!(t.get("s2"), 40, "{t:?}");
    assert!(!lb.stderr().contains("app/s2 is DOWN"), "{}", lb.stderr());
}

/// Waits until `b` has answered `n` more checks than it had when called.
fn wait_more_checks(b: &TestBackend, n: usize) {
    let base = b.health_answers().len();
    wait_for(
        &format!("{n} more checks of {}", b.name()),
        FLIP_BOUND,
        || b.health_answers().len() >= base + n,
    );
}

#[test]
fn expect_status_list_replaces_the_default() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    // 404 is not a success by default, 200 is: the list turns both around.
    b1.set_health_status(404);
    let lb = two_servers_lb(&http_check("expect_status = [204, 404]"), &b1, &b2);
    wait_for_log(
        &lb,
        "Server app/s2 is DOWN, reason: Layer7 wrong status, code: 200",
        FLIP_BOUND,
    );
    // s1 answered 404 more than `fall` times and is still up.
    wait_more_checks(&b1, 4);
    assert!(!lb.stderr().contains("app/s1 is DOWN"), "{}", lb.stderr());
    let addr = lb.addr("web");
    until_in_a_row(addr, "/", 20, FLIP_BOUND, "on s1", |s| s == "s1");

    b2.set_health_status(204);
    wait_for_log(
        &lb,
        "Server app/s2 is UP, reason: Layer7 check passed, code: 204",
        FLIP_BOUND,
    );
    until_in_a_row(addr, "/", 1, FLIP_BOUND, "on s2", |s| s == "s2");
}

#[test]
fn expect_status_range_is_inclusive() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    b1.set_health_status(302);
    let lb = two_servers_lb(&http_check("expect_status = \"300-399\""), &b1, &b2);
    wait_for_log(
        &lb,
        "Server app/s2 is DOWN, reason: Layer7 wrong status, code: 200",
        FLIP_BOUND,
    );
    wait_more_checks(&b1, 4);
    assert!(!lb.stderr().contains("app/s1 is DOWN"), "{}", lb.stderr());

    // Both ends: 399 is in, 400 is out.
    b2.set_health_status(399);
    wait_for_log(
        &lb,
        "Server app/s2 is UP, reason: Layer7 check passed, code: 399",
        FLIP_BOUND,
    );
    b1.set_health_status(400);
    wait_for_log(
        &lb,
        "Server app/s1 is DOWN, reason: Layer7 wrong status, code: 400",
        FLIP_BOUND,
    );
    until_in_a_row(lb.addr("web"), "/", 20, FLIP_BOUND, "on s2", |s| s == "s2");
}

#[test]
fn check_port_method_path_and_host() {
    let t1 = TestBackend::start("s1");
    let t2 = TestBackend::start("s2");
    // s1's checks go to another port, served by `checker`; s2 is not checked.
    let checker = TestBackend::start("checker");
    let health = format!(
        "[backend.app.health]\ntype = \"http\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 3\nmethod = \"HEAD\"\npath = \"/health\"\nhost = \"health.example\"\nport = {}\naddr = \"127.0.0.1\"\n",
        checker.addr().port()
    );
    let lb = RingLb::start(&app_config(
        2,
        "",
        &format!("balance = \"round_robin\"\n{health}"),
        &[
            server("s1", t1.addr(), ""),
            server("s2", t2.addr(), "check = false"),
        ],
    ));
    wait_for("two checks on the check port", FLIP_BOUND, || {
        checker.health_checks() >= 2
    });
    assert_eq!(t1.health_checks(), 0, "s1 checked on its traffic port");
    assert_eq!(t2.health_checks(), 0, "s2 checked though check = false");
    let last = checker.last_request().unwrap();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("HEAD", "/health")
    );
    assert_eq!(
        wire::header(&last.headers, "host"),
        Some("health.example"),
        "{:?}",
        last.headers
    );

    // The check port fails while s1's own /health still says 200: s1 goes down.
    checker.set_health_status(500);
    wait_for_log(
        &lb,
        "Server app/s1 is DOWN, reason: Layer7 wrong status, code: 500",
        FLIP_BOUND,
    );
    until_in_a_row(lb.addr("web"), "/", 20, FLIP_BOUND, "on s2", |s| s == "s2");
    assert!(!lb.stderr().contains("app/s2 is"), "{}", lb.stderr());
}

#[test]
fn default_check_counts_3xx_as_passing_and_host_is_the_server_address() {
    let b1 = TestBackend::start("s1");
    let b2 = TestBackend::start("s2");
    b1.set_health_status(301);
    let lb = two_servers_lb(&http_check(""), &b1, &b2);
    wait_more_checks(&b1, 4);
    let host = wire::header(&b1.last_request().unwrap().headers, "host")
        .unwrap_or("")
        .to_string();
    assert_eq!(host, b1.addr().to_string(), "default Host of a check");
    b1.set_health_status(404);
    wait_for_log(
        &lb,
        "Server app/s1 is DOWN, reason: Layer7 wrong status, code: 404",
        FLIP_BOUND,
    );
    assert!(!lb.stderr().contains("app/s2 is DOWN"), "{}", lb.stderr());
}

/// haproxy.cfg `timeout check`: the check's read timeout. The check path answers after
/// 500 ms; with `timeout check 100ms` the server fails its check and goes down, while
/// the same server in a backend without it (the check then has `inter`, 1 s) stays up.
#[test]
fn haproxy_cfg_timeout_check_fails_a_silent_server() {
    let b = TestBackend::start("b");
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0\n    use_backend short if {{ path_beg /short }}\n    default_backend long\nbackend short\n    option httpchk GET /sleep/500\n    timeout check 100ms\n    server s1 {0} check inter 1s fall 1 rise 1\nbackend long\n    option httpchk GET /sleep/500\n    server s1 {0} check inter 1s fall 1 rise 1\n",
        b.addr()
    ));
    wait_for_log(&lb, "Server short/s1 is DOWN", Duration::from_secs(10));
    assert_eq!(http_get(lb.addr("web"), "/short/x").status, 503);
    assert!(!lb.stderr().contains("long/s1 is DOWN"), "{}", lb.stderr());
    assert_eq!(http_get(lb.addr("web"), "/long").status, 200);
}

/// haproxy.cfg server `port`: the checks go to that port (served by `checker`), not to
/// the server's own; a failing check there takes the server down.
#[test]
fn haproxy_cfg_check_port_and_addr_go_elsewhere() {
    let t1 = TestBackend::start("s1");
    let checker = TestBackend::start("checker");
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    option httpchk GET /health\n    server s1 {} check port {} addr 127.0.0.1 inter 200ms fall 1 rise 1\n",
        t1.addr(),
        checker.addr().port()
    ));
    wait_for("two checks on the check port", FLIP_BOUND, || {
        checker.health_checks() >= 2
    });
    assert_eq!(t1.health_checks(), 0, "s1 checked on its traffic port");
    checker.set_health_status(500);
    wait_for_log(&lb, "Server app/s1 is DOWN", FLIP_BOUND);
    assert_eq!(http_get(lb.addr("web"), "/").status, 503);
}

/// haproxy.cfg `fastinter` and `downinter`: with `inter 10s`, a failing server is
/// checked again after `fastinter` (100 ms) until `fall` takes it down, then every
/// `downinter` (100 ms). Were either ignored, the next check would wait 10 s: no DOWN
/// within the bound, or no stream of checks after it.
#[test]
fn haproxy_cfg_fastinter_and_downinter_set_the_check_pace() {
    let b = TestBackend::start("b");
    b.set_health_status(500);
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    option httpchk GET /health\n    server s1 {} check inter 10s fastinter 100ms downinter 100ms fall 2 rise 2\n",
        b.addr()
    ));
    wait_for_log(&lb, "Server app/s1 is DOWN", Duration::from_secs(5));
    let seen = b.health_checks();
    wait_for("5 more checks while down", Duration::from_secs(5), || {
        b.health_checks() >= seen + 5
    });
}
