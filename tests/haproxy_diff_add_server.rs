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
