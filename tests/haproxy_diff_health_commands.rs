//! `disable health` / `enable health` on the runtime API against HAProxy 2.6: the same
//! haproxy.cfg (a server up, one whose port refuses, one without checks) on both; the
//! answers, and `show stat`'s status and check status after each command, must be the
//! same; a server whose checks are off is not checked, and its state stays as it was.

use crate::common;

use std::time::Duration;

use common::twins::{stat_view, Side, Srv, Twins};

const WAIT: Duration = Duration::from_secs(10);

/// (status, check_status) of s1, s2, s3.
fn states(s: &Side) -> Vec<(String, Vec<String>)> {
    stat_view(s, &["status", "check_status"])
        .into_iter()
        .filter(|r| r.0 == "app" && r.1.starts_with('s'))
        .map(|r| (r.1, r.2))
        .collect()
}

#[test]
fn health_checks_are_switched_off_and_on_as_haproxy() {
    let t = Twins::start(
        r#"
backend app
    option httpchk GET /health
    default-server inter 100ms fall 1 rise 1
    server s1 "${S1}" check
    server s2 "${S2}" check
    server s3 "${S3}"

frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app
"#,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Dead),
            ("S3", Srv::Up("s3")),
        ],
    );
    t.wait_both("s1 UP, s2 DOWN", WAIT, |s| {
        let v = states(s);
        v.len() == 3 && v[0].1 == ["UP", "L7OK"] && v[1].1 == ["DOWN", "L4CON"]
    });
    for cmd in [
        "disable health app/s2",
        "disable health app/s3",
        "disable health app/s1",
        "disable health app/nope",
        "disable health",
    ] {
        t.same(cmd, |s| s.cli(cmd));
    }
    t.same("after disable health", states);
    // No more checks reach s1 while they are off.
    let before = t.both(|s| s.backend("s1").health_checks());
    std::thread::sleep(Duration::from_millis(500));
    let after = t.both(|s| s.backend("s1").health_checks());
    assert!(
        after.0 <= before.0 + 1 && after.1 <= before.1 + 1,
        "{before:?} -> {after:?}"
    );

    t.same("enable health app/s2", |s| s.cli("enable health app/s2"));
    t.wait_both("s2 checked again", WAIT, |s| {
        states(s)[1].1 == ["DOWN", "L4CON"]
    });
    t.same("after enable health", states);
}

/// `set server B/S health up|stopping|down` forces a state (a server without checks
/// keeps it) and answers as HAProxy 2.6; `show stat` shows the same status after each.
#[test]
fn a_forced_health_is_shown_and_answered_as_haproxy() {
    let t = Twins::start(
        r#"
backend app
    server s3 "${S3}"
    server s4 "${S4}"

frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app
"#,
        &[("web", "PORT")],
        &[("S3", Srv::Up("s3")), ("S4", Srv::Up("s4"))],
    );
    for cmd in [
        "set server app/s3 health down",
        "set server app/s3 health stopping",
        "set server app/s3 health up",
        "set server app/s4 health stopping",
        "set server app/s3 health bogus",
        "set server app/s3 health",
        "set server app/nope health up",
        "enable agent app/s3",
        "disable agent app/s3",
        "enable agent app/nope",
        "disable agent",
        "set server app/s3 agent up",
        "set server app/s3 agent-send x",
    ] {
        t.same(cmd, |s| s.cli(cmd));
        t.same(&format!("show stat after {cmd}"), states);
    }
}
