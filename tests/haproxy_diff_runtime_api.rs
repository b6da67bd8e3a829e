//! Differential tests of the runtime API: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg (`common::twins`) with a server in each state `show stat` tells apart,
//! and their stats sockets must answer alike: the `show stat` header, the pxname /
//! svname rows in the same order with the same `status`, the `show servers state`
//! header and rows, the error lines, and the answers to state and weight changes.

use crate::common;

use std::time::Duration;

use common::twins::{stat_view, status_of, Srv, Twins};

/// Servers in every state: UP (checked), DOWN (its check fails), `no check`, MAINT
/// set by the operator, MAINT from `disabled`; and a second backend.
const STATES: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    default-server inter 100ms fall 1 rise 1
    server up1 "${UP1}" check
    server dead1 "${D1}" check
    server nochk "${UP2}"
    server maint1 "${UP3}" check
    server off1 "${UP4}" disabled

backend other
    balance leastconn
    server o1 "${UP5}"
"#;

/// Both balancers on `STATES`, once dead1 is DOWN and maint1 in MAINT.
fn states() -> Twins {
    let t = Twins::start(
        STATES,
        &[("web", "PORT")],
        &[
            ("UP1", Srv::Up("up1")),
            ("D1", Srv::Dead),
            ("UP2", Srv::Up("nochk")),
            ("UP3", Srv::Up("maint1")),
            ("UP4", Srv::Up("off1")),
            ("UP5", Srv::Up("o1")),
        ],
    );
    t.same("set server app/maint1 state maint", |s| {
        s.cli("set server app/maint1 state maint")
    });
    t.wait_both(
        "dead1 DOWN and maint1 MAINT",
        Duration::from_secs(10),
        |s| status_of(s, "app", "dead1") == "DOWN" && status_of(s, "app", "maint1") == "MAINT",
    );
    t
}

#[test]
fn show_stat_header_rows_and_status() {
    let t = states();
    t.same("the `show stat` header line", |s| {
        s.cli("show stat").lines().next().unwrap_or("").to_string()
    });
    t.same(
        "show stat: pxname, svname and status of every row, in order",
        |s| stat_view(s, &["status"]),
    );
}

/// HAProxy lists each proxy in config order with its FRONTEND, servers and BACKEND
/// rows together; here a backend comes before the frontends, and a listen section
/// holds both halves.
#[test]
fn show_stat_row_order_follows_the_config() {
    let body = r#"
backend first
    server f1 "${F1}"

frontend web
    bind "127.0.0.1:${PORT}"
    default_backend first

listen lst
    bind "127.0.0.1:${PORT2}"
    server l1 "${L1}" check inter 100ms
    server l2 "${L2}" backup
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT"), ("lst", "PORT2")],
        &[
            ("F1", Srv::Up("f1")),
            ("L1", Srv::Up("l1")),
            ("L2", Srv::Up("l2")),
        ],
    );
    // HAProxy shows `UP 1/3` until the first check passed.
    t.wait_both("l1 checked", Duration::from_secs(10), |s| {
        status_of(s, "lst", "l1") == "UP"
    });
    t.same(
        "show stat: pxname, svname and status of every row, in order",
        |s| stat_view(s, &["status"]),
    );
}

#[test]
fn show_servers_state_header() {
    let t = states();
    t.same("the `show servers state` header (first two lines)", |s| {
        s.cli("show servers state")
            .lines()
            .take(2)
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
}

#[test]
fn show_servers_state_rows() {
    let t = states();
    t.same(
        "show servers state: be_name srv_name srv_op_state srv_admin_state srv_uweight srv_iweight",
        |s| {
            s.cli("show servers state")
                .lines()
                .skip(2)
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let w: Vec<&str> = l.split(' ').collect();
                    [1, 3, 5, 6, 7, 8]
                        .iter()
                        .map(|&i| w.get(i).copied().unwrap_or("?"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
        },
    );
}

#[test]
fn error_lines() {
    let t = states();
    let commands = [
        "set server app/zz state ready",
        "set server nope/up1 state ready",
        "set server app/up1 state foo",
        "set server app/up1 weight 300",
        "set server app/up1 weight -1",
        "set weight app/up1",
        "set weight app/zz 10",
        "get weight app/zz",
        "get weight nope/up1",
        "set maxconn server app/up1 x",
        "set maxconn server app/zz 10",
        "show servers state nope",
        "disable server app/zz",
        "enable server nope/x",
    ];
    t.same_all(&commands, |s, cmd| s.cli(cmd));
}

#[test]
fn state_and_weight_changes() {
    let t = states();
    let commands = [
        "set server app/maint1 state ready",
        "set server app/up1 state drain",
        "get weight app/up1",
        "set weight app/nochk 0",
        "get weight app/nochk",
        "set weight app/nochk 100%",
        "get weight app/nochk",
        "disable server app/nochk",
        "enable server app/nochk",
        "set server app/off1 state ready",
        "set maxconn server app/up1 10",
    ];
    t.same_all(&commands, |s, cmd| s.cli(cmd));
    t.wait_both("maint1 and off1 UP", Duration::from_secs(10), |s| {
        status_of(s, "app", "maint1") == "UP" && status_of(s, "app", "off1") == "no check"
    });
    t.same("show stat status and weight after the changes", |s| {
        stat_view(s, &["status", "weight"])
    });
}

/// `set weight B/S N%` is relative to the initial weight; HAProxy rounds down, so 50%
/// of the default weight 1 is 0.
#[test]
fn weight_percentages_round_like_haproxy() {
    let t = states();
    let commands = [
        "set server app/up1 weight 50%",
        "get weight app/up1",
        "set weight app/nochk 150%",
        "get weight app/nochk",
    ];
    t.same_all(&commands, |s, cmd| s.cli(cmd));
}

/// The stats page of a `listen` section (`stats uri`): its CSV form (`;csv`) has
/// `show stat`'s header and rows.
#[test]
fn stats_page_csv() {
    let body = r#"
listen stats
    bind "127.0.0.1:${PORT}"
    stats enable
    stats uri /admin?stats
    stats refresh 10s

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("stats", "PORT")], &[("S1", Srv::Up("s1"))]);
    t.same(
        "GET /admin?stats;csv: status, content type, header line, rows",
        |s| {
            let r = common::http_get(s.addr("stats"), "/admin?stats;csv");
            let body = r.body_str();
            let rows: Vec<String> = body
                .lines()
                .skip(1)
                .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
                .collect();
            (
                r.status,
                r.header("content-type").unwrap_or("").to_string(),
                body.lines().next().unwrap_or("").to_string(),
                rows,
            )
        },
    );
}
