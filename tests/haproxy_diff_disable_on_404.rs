//! Differential test of `http-check disable-on-404`: HAProxy 2.6 and ringlb run the
//! same haproxy.cfg. A running server whose check answers 404 goes NOLB (check status
//! L7OKC): it gets no new load-balanced request, but a client whose persistence cookie
//! names it still reaches it; a 200 brings it back UP; a stopped server that answers
//! 404 stays DOWN. `show stat` and where each request lands must match at each step.

use crate::common;

use std::time::Duration;

use common::twins::{ask, get, stat_view, status_of, Side, Srv, Twins};

const COLUMNS: &[&str] = &["status", "check_status", "check_code", "weight", "act"];

/// Where six requests without a cookie land (sorted: where a server re-enters
/// HAProxy's round robin is its own), and one whose cookie names s1.
fn traffic(s: &Side) -> (Vec<String>, (u16, String)) {
    let mut plain: Vec<String> = (0..6)
        .map(|_| ask(s.addr("web"), &get("h", "/")).1)
        .collect();
    plain.sort();
    let pinned = ask(
        s.addr("web"),
        "GET / HTTP/1.1\r\nHost: h\r\nCookie: SRV=s1\r\n\r\n",
    );
    (plain, pinned)
}

fn status_is(s: &Side, want: &str) -> bool {
    status_of(s, "app", "s1") == want
}

#[test]
fn disable_on_404_puts_a_running_server_in_nolb_as_haproxy_does() {
    let body = r#"
defaults
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
    timeout check 500ms
    default-server inter 100ms rise 2 fall 2

frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    balance roundrobin
    cookie SRV insert indirect nocache
    option httpchk GET /health
    http-check disable-on-404
    server s1 "${S1}" check cookie s1
    server s2 "${S2}" check cookie s2
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    let wait = Duration::from_secs(10);
    t.wait_both("both servers checked up", wait, |s| {
        stat_view(s, &["status", "check_status"])
            .iter()
            .filter(|r| r.0 == "app" && r.1 != "BACKEND")
            .all(|r| r.2 == ["UP", "L7OK"])
    });
    t.same("show stat, both up", |s| stat_view(s, COLUMNS));

    // A 404: NOLB at once, no new requests, the cookie still honoured.
    t.both(|s| s.backend("s1").set_health_status(404));
    t.wait_both("s1 in NOLB", wait, |s| status_is(s, "NOLB"));
    t.same("show stat, s1 in NOLB", |s| stat_view(s, COLUMNS));
    let (plain, pinned) = t.same("requests while s1 is NOLB", traffic);
    assert!(plain.iter().all(|b| b == "s2"), "{plain:?}");
    assert_eq!(pinned, (200, "s1".to_string()));

    // A 200 again: back UP, in the rotation.
    t.both(|s| s.backend("s1").set_health_status(200));
    t.wait_both("s1 up again", wait, |s| status_is(s, "UP"));
    t.same("show stat, s1 up again", |s| stat_view(s, COLUMNS));
    let (plain, _) = t.same("requests once s1 is up", traffic);
    assert!(plain.iter().any(|b| b == "s1"), "{plain:?}");

    // A stopped server answering 404 stays stopped.
    t.both(|s| s.backend("s1").set_health_status(500));
    t.wait_both("s1 down", wait, |s| status_is(s, "DOWN"));
    t.both(|s| s.backend("s1").set_health_status(404));
    let seen = t.both(|s| s.backend("s1").health_checks());
    t.wait_both("four checks answered 404", wait, |s| {
        let before = if s.who == "haproxy" { seen.0 } else { seen.1 };
        s.backend("s1").health_checks() >= before + 4
    });
    t.same("show stat, a stopped server answering 404", |s| {
        stat_view(s, COLUMNS)
    });
    t.both(|s| assert_eq!(status_of(s, "app", "s1"), "DOWN", "{}", s.who));
}
