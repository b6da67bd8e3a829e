//! `add server` / `del server` against HAProxy 2.6 on the same haproxy.cfg: the same
//! lines get the same answers (good ones, and HAProxy's errors), and `show servers
//! state` has the same rows after each (ids, state, admin flags, weights, port);
//! traffic reaches the added server on both once it is enabled.

mod common;

use common::server_state::state_rows;
use common::twins::{ask, get, Side, Srv, Twins};

fn rows(s: &Side) -> Vec<Vec<String>> {
    // The address too: both see the same test server's (each side its own port).
    state_rows(&s.cli("show servers state"))
        .into_iter()
        .map(|mut r| {
            r.truncate(9);
            r
        })
        .collect()
}

#[test]
fn add_and_del_server_answer_and_list_as_haproxy() {
    let t = Twins::start(
        r#"
backend app
    balance roundrobin
    server s1 "${S1}"
    server s2 "${S2}" id 5

backend chash
    balance uri
    hash-type consistent
    server c1 "${S1}"

backend fixed
    balance static-rr
    server f1 "${S1}"

backend mapped
    balance source
    server m1 "${S1}"

frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app
"#,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("S3", Srv::Up("s3")),
        ],
    );
    t.same("show servers state at start", rows);
    let s3 = |s: &Side| s.backend("s3").addr().to_string();
    let add = |line: &'static str| move |s: &Side| s.cli(&line.replace("S3", &s3(s)));
    for line in [
        "add server app/s3 S3",
        "add server app/s3 S3",
        "add server app/s4 S3 weight 7 maxconn 10",
        "add server app/s6 S3 id 9",
        "add server app/s7 S3 backup",
        "add server chash/c2 S3",
        "add server fixed/f2 S3",
        "add server mapped/m2 S3",
        "add server nope/x S3",
        "add server app",
        "add server app/x",
        "add server app/x S3 cookie abc",
        "add server app/x S3 redir http://x",
        "add server app/x S3 weight 300",
    ] {
        t.same(line, add(line));
        t.same(&format!("show servers state after {line}"), rows);
    }
    for line in [
        "enable server app/s3",
        "del server app/s3",
        "set server app/s3 state maint",
        "del server app/s3",
        "del server app/s3",
        "del server app/nope",
        "del server nope/s1",
        "del server app",
        "del server app/s1",
        "disable server app/s1",
        "del server app/s1",
        "enable server app/s4",
        "enable server app/s7",
    ] {
        t.same(line, |s| s.cli(line));
        t.same(&format!("show servers state after {line}"), rows);
    }
    // A name that went can come back: its id is the lowest free one on both.
    t.same("add server app/s1 again", add("add server app/s1 S3"));
    t.same("show servers state after s1 came back", rows);
    // Only s4 (and s2) are ready now: s4 takes its weight's share on both.
    let served = |s: &Side| {
        let mut n = std::collections::BTreeMap::new();
        for _ in 0..16 {
            let (status, who) = ask(s.addr("web"), &get("x", "/"));
            assert_eq!(status, 200, "{}", s.who);
            *n.entry(who).or_insert(0) += 1;
        }
        n
    };
    let (hx, lb) = t.both(served);
    assert_eq!(hx.keys().collect::<Vec<_>>(), lb.keys().collect::<Vec<_>>());
    assert!(lb.get("s3").copied().unwrap_or(0) >= 8, "{lb:?}");
}

/// (status, check_status) of every server of `app` in `show stat`.
fn checks(s: &Side) -> Vec<(String, Vec<String>)> {
    common::twins::stat_view(s, &["status", "check_status"])
        .into_iter()
        .filter(|r| r.0 == "app" && r.1 != "BACKEND" && r.1 != "FRONTEND")
        .map(|r| (r.1, r.2))
        .collect()
}

/// A dynamic server with `check` is not checked until `enable health` (as HAProxy
/// 2.6); `disable health` on another server stays through the `add server`.
#[test]
fn a_dynamic_servers_checks_wait_for_enable_health() {
    let t = Twins::start(
        r#"
backend app
    option httpchk GET /health
    # Generous: a check that times out on a busy machine would flap a server.
    timeout check 2s
    server s1 "${S1}" check inter 200ms rise 1 fall 1
    server s2 "${S2}" check inter 200ms rise 1 fall 1

frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app
"#,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("S3", Srv::Up("s3")),
        ],
    );
    t.wait_both("s1, s2 UP", std::time::Duration::from_secs(10), |s| {
        checks(s).iter().all(|c| c.1 == ["UP", "L7OK"])
    });
    t.same("disable health app/s2", |s| s.cli("disable health app/s2"));
    // The dead address: the test server list has none, so each side reserves one.
    let held = std::cell::RefCell::new(Vec::new());
    let dead = |s: &Side| {
        let r = common::ReservedPort::new();
        let answer = s.cli(&format!("add server app/d {} check", r.addr()));
        held.borrow_mut().push(r);
        answer
    };
    t.same("add server app/d DEAD check", dead);
    let s3 = |s: &Side| {
        s.cli(&format!(
            "add server app/s3 {} check",
            s.backend("s3").addr()
        ))
    };
    t.same("add server app/s3 S3 check", s3);
    t.same("show stat after add", checks);
    t.same("enable server app/d", |s| s.cli("enable server app/d"));
    t.same("enable server app/s3", |s| s.cli("enable server app/s3"));
    t.same("show stat after enable server", checks);
    t.same("show servers state after enable server", rows);
    t.same("enable health app/d", |s| s.cli("enable health app/d"));
    t.same("enable health app/s3", |s| s.cli("enable health app/s3"));
    // HAProxy checks a dynamic server with its own defaults (inter 2s, rise 2, fall
    // 3: `UP 0/3` on the way), ringlb with the backend's: both end up the same.
    t.wait_both("d DOWN, s3 UP", std::time::Duration::from_secs(20), |s| {
        let c = checks(s);
        c.iter().any(|x| x.0 == "d" && x.1[0] == "DOWN")
            && c.iter().any(|x| x.0 == "s3" && x.1 == ["UP", "L7OK"])
    });
    t.same("show stat after enable health", checks);
    t.same("show servers state after enable health", rows);
}
