//! `http-check expect rstatus REGEX`, `expect string TEXT`, `expect status N`, and `http-check send`.

use crate::common;

use std::time::Duration;

use common::*;

fn start(expect: &str, b: &TestBackend) -> RingLb {
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\n\nbackend app\n    option httpchk GET /\n    http-check expect {expect}\n    server s1 {} check inter 100 fall 1 rise 1\n",
        b.addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    RingLb::launch(&["-f", file.path().to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    })
}

fn goes_down(lb: &RingLb) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if lb.stderr().contains("Server app/s1 is DOWN") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn body_string() {
    let b = TestBackend::start("alpha");
    let lb = start("string backend=alpha", &b);
    wait_for("a few checks", Duration::from_secs(5), || b.requests() >= 3);
    assert!(!lb.stderr().contains("is DOWN"), "{}", lb.stderr());
    assert_eq!(http_get(lb.addr("www"), "/").status, 200);

    let b2 = TestBackend::start("beta");
    let lb2 = start("string backend=alpha", &b2);
    assert!(goes_down(&lb2), "{}", lb2.stderr());
    assert!(
        lb2.stderr().contains("string not found"),
        "{}",
        lb2.stderr()
    );
}

#[test]
fn status_regex() {
    let b = TestBackend::start("s");
    let ok = start("rstatus ^2[0-9]{2}$", &b);
    wait_for("a few checks", Duration::from_secs(5), || b.requests() >= 3);
    assert!(!ok.stderr().contains("is DOWN"), "{}", ok.stderr());
    let bad = start("rstatus ^5", &b);
    assert!(goes_down(&bad), "{}", bad.stderr());
}

/// `http-check send meth M uri U hdr NAME VALUE` shapes the check request, and
/// `http-check expect status 200` is stricter than the default (2xx and 3xx pass): a
/// check answered 204 takes the server down.
#[test]
fn send_shapes_the_request_and_expect_status_is_exact() {
    let b = TestBackend::start("s");
    let cfg = |expect: &str| {
        format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    option httpchk\n    http-check send meth HEAD uri /health hdr Host check.example\n{expect}    server s1 {} check inter 100 fall 1 rise 1\n",
            b.addr()
        )
    };
    let lb = common::haproxy::ringlb_cfg(&cfg(""));
    wait_for("a check", Duration::from_secs(5), || b.health_checks() >= 1);
    let last = b.last_request().expect("the check request");
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("HEAD", "/health")
    );
    assert_eq!(
        wire::header(&last.headers, "host"),
        Some("check.example"),
        "{:?}",
        last.headers
    );
    drop(lb);
    b.set_health_status(204);
    let relaxed = common::haproxy::ringlb_cfg(&cfg(""));
    let seen = b.health_checks();
    wait_for("two checks answered 204", Duration::from_secs(5), || {
        b.health_checks() >= seen + 2
    });
    assert!(
        !relaxed.stderr().contains("is DOWN"),
        "{}",
        relaxed.stderr()
    );
    let strict = common::haproxy::ringlb_cfg(&cfg("    http-check expect status 200\n"));
    assert!(goes_down(&strict), "{}", strict.stderr());
}
