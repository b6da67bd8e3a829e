//! `add server` / `del server` against HAProxy 2.6 on the same haproxy.cfg: the same
//! lines get the same answers (good ones, and HAProxy's errors), and `show servers
//! state` has the same rows after each (ids, state, admin flags, weights, port);
//! traffic reaches the added server on both once it is enabled. An `add server` leaves
//! the other servers' checks on their course, and `del server` waits for a request
//! that began before an earlier `add server`, on both.

use crate::common;

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

/// (status, chkfail, chkdown) of server `sv` of `app` in `show stat`.
fn check_counts(s: &Side, sv: &str) -> Vec<String> {
    common::twins::stat_view(s, &["status", "chkfail", "chkdown"])
        .into_iter()
        .find(|r| r.0 == "app" && r.1 == sv)
        .map(|r| r.2)
        .unwrap_or_else(|| panic!("{}: no app/{sv} in show stat", s.who))
}

/// s1 failed one check of three, then an `add server`: on both it goes DOWN at its
/// third failed check (the change did not start its count again).
#[test]
fn a_server_on_its_way_down_stays_on_its_course_as_in_haproxy() {
    let t = Twins::start(
        r#"
backend app
    option httpchk GET /health
    timeout check 2s
    server s1 "${S1}" check inter 1s fastinter 1s downinter 60s rise 2 fall 3
    server s2 "${S2}" check inter 1s fastinter 1s downinter 60s rise 2 fall 3

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
    let wait = std::time::Duration::from_secs(10);
    t.wait_both("a first check of s1", wait, |s| {
        !s.backend("s1").health_answers().is_empty()
    });
    t.both(|s| s.backend("s1").set_health_status(500));
    t.wait_both("one failed check of s1", wait, |s| {
        check_counts(s, "s1")[1] == "1"
    });
    t.same("s1 after one failure", |s| check_counts(s, "s1"));
    t.same("add server app/s3 S3", |s| {
        s.cli(&format!("add server app/s3 {}", s.backend("s3").addr()))
    });
    t.wait_both("s1 DOWN", wait, |s| check_counts(s, "s1")[0] == "DOWN");
    t.same("s1 once DOWN", |s| check_counts(s, "s1"));
    t.same("s2", |s| check_counts(s, "s2"));
}

/// Both on backend `app` with server s1 (with `opts`); test server s2 for an `add server`.
fn s1_then_s2(opts: &str) -> Twins {
    Twins::start(
        &format!(
            r#"
backend app
    balance roundrobin
    server s1 "${{S1}}" {opts}

frontend web
    bind "127.0.0.1:${{PORT}}"
    default_backend app
"#
        ),
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    )
}

/// `add server app/s2` at the side's test server s2.
fn add_s2(s: &Side) -> String {
    s.cli(&format!("add server app/s2 {}", s.backend("s2").addr()))
}

/// A slow request holds s1; `add server`, then s1 in maintenance: `show stat` counts
/// the request, `del server` is refused on both while it runs, accepted on both after
/// it, and the request gets its response. (HAProxy 2.6 puts the connection the request releases
/// in its idle list, maintenance or not, and refuses until its purge: `pool-purge-delay`
/// keeps that short. ringlb closes it at once: a server in maintenance takes no
/// request to reuse it.)
#[test]
fn del_server_waits_for_a_request_begun_before_an_add_as_haproxy() {
    let t = s1_then_s2("pool-purge-delay 100ms");
    let wait = std::time::Duration::from_secs(10);
    let (hx, lb) = t.both(|s| {
        let addr = s.addr("web");
        std::thread::spawn(move || ask(addr, &get("x", "/sleep/3000")))
    });
    t.wait_both("the slow request at s1", wait, |s| {
        s.backend("s1").in_flight() == 1
    });
    t.same("add server app/s2 S2", add_s2);
    for line in [
        "enable server app/s2",
        "disable server app/s1",
        "del server app/s1",
    ] {
        t.same(line, |s| s.cli(line));
    }
    t.same("s1 still busy", |s| s.backend("s1").in_flight());
    // Counted as the server's and the backend's current sessions on both.
    t.same("show stat scur while the request runs", |s| {
        common::twins::stat_view(s, &["scur"])
            .into_iter()
            .filter(|r| r.0 == "app")
            .collect::<Vec<_>>()
    });
    assert_eq!(hx.join().unwrap(), (200, "s1".to_string()));
    assert_eq!(lb.join().unwrap(), (200, "s1".to_string()));
    t.wait_both("del server app/s1 accepted", wait, |s| {
        let a = s.cli("del server app/s1");
        a == "Server deleted.\n" || a == "No such server.\n"
    });
    t.same("show servers state after del", rows);
}

/// A connection to s1 idles in the pool across an `add server`; maintenance closes it
/// (HAProxy's `srv_cleanup_connections`), so `del server` is accepted at once on both.
#[test]
fn maintenance_closes_idle_connections_before_del_server_as_haproxy() {
    let t = s1_then_s2("");
    let wait = std::time::Duration::from_secs(10);
    t.same("a request", |s| ask(s.addr("web"), &get("x", "/")));
    t.wait_both("an idle connection to s1", wait, |s| {
        let b = s.backend("s1");
        b.open_connections() == 1 && b.in_flight() == 0
    });
    t.same("add server app/s2 S2", add_s2);
    t.same("still idle", |s| s.backend("s1").open_connections());
    for line in ["disable server app/s1", "del server app/s1"] {
        t.same(line, |s| s.cli(line));
    }
    t.wait_both("s1's connection closed", wait, |s| {
        s.backend("s1").open_connections() == 0
    });
}
