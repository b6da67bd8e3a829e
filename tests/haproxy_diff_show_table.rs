//! `show table` on the rule language's tables (`stick-table` with `track-scN`),
//! against HAProxy 2.6 on the same haproxy.cfg and the same requests: the listing, the
//! real keys (an IP table and a string table), every stored data type in HAProxy's
//! order with its value, `data.X OP V` filters, `key K`, and `clear table`. Pointer
//! columns and the milliseconds left (`exp=`) differ by nature and are masked, and so
//! are rates' values: HAProxy's rate windows start at its own clock's epoch, ringlb's
//! on the wall clock, so a request near a boundary counts in different windows (the
//! rates themselves are compared in haproxy_diff_stick.rs).

use crate::common;

use std::time::{Duration, Instant};

use common::twins::{ask, get, Srv, Twins};

const BODY: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    http-request track-sc0 src table st
    http-request track-sc1 req.hdr(host) table hosts
    http-request sc-inc-gpc0(0) if { path_beg /inc }
    http-request deny if { path_beg /deny }
    default_backend app

backend st
    stick-table type ip size 1k expire 60s store conn_cur,conn_cnt,conn_rate(10s),http_req_rate(10s),http_req_cnt,gpc0,http_err_rate(10s),http_err_cnt

backend hosts
    stick-table type string len 32 size 100 expire 30s store http_req_cnt,gpc0_rate(5s),http_req_rate(10s)

backend app
    server app1 "${APP1}"
"#;

/// The answer with the pointer column and `exp=` masked.
fn masked(text: &str) -> String {
    text.lines()
        .map(|l| {
            l.split(' ')
                .map(|w| {
                    if w.starts_with("0x") && w.ends_with(':') {
                        "PTR:".to_string()
                    } else if w.contains("_rate(") {
                        format!("{}=R", w.split('=').next().unwrap())
                    } else if let Some(v) = w.strip_prefix("exp=") {
                        assert!(v.parse::<u64>().is_ok(), "exp= is a number: {l}");
                        "exp=N".to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same masked answer from both, waiting (at most 5 s) for connection ends to be
/// counted on both sides.
fn same_answer(t: &Twins, cmd: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (hx, lb) = t.both(|s| masked(&s.cli(cmd)));
        if hx == lb {
            return lb;
        }
        if Instant::now() > deadline {
            panic!("`{cmd}` differs\nHAProxy:\n{hx}\nringlb:\n{lb}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn show_table_lists_keys_and_data_as_haproxy() {
    let t = Twins::start(BODY, &[("web", "PORT")], &[("APP1", Srv::Up("app1"))]);
    let requests = [
        get("www.example.com", "/"),
        get("www.example.com", "/inc"),
        get("Api.Example.com", "/inc/2"),
        get("api.example.com", "/deny"),
        get("a-very-long-host-name-that-is-cut.example.com", "/"),
    ];
    for r in &requests {
        t.same(r, |s| ask(s.addr("web"), r).0);
    }
    for cmd in [
        "show table st",
        "show table hosts",
        "show table st data.gpc0 gt 1",
        "show table st data.gpc0 gt 5",
        "show table st data.http_req_cnt eq 4",
        "show table st data.server_id gt 0",
        "show table st data.bogus gt 0",
        "show table hosts data.http_req_cnt ge 2",
        "show table st key 127.0.0.1",
        "show table st key 127.0.0.2",
        "show table hosts key api.example.com",
        "show table hosts key Api.Example.com",
    ] {
        let answer = same_answer(&t, cmd);
        if cmd == "show table st" {
            assert!(answer.contains("key=127.0.0.1 use=0"), "{answer}");
        }
    }
    // Each table listed once, with its size and entry count.
    let list = t.lb.cli("show table");
    for name in [
        "# table: st, type: ip, size:1024, used:1",
        "# table: hosts, type: string, size:100, used:4",
    ] {
        assert!(list.contains(name), "{list}");
        assert!(t.hx.cli("show table").contains(name));
    }
    same_answer(&t, "clear table hosts key api.example.com");
    same_answer(&t, "show table hosts");
    same_answer(&t, "clear table st");
    same_answer(&t, "show table st");
    ask(t.lb.addr("web"), &get("x", "/"));
    ask(t.hx.addr("web"), &get("x", "/"));
    same_answer(&t, "show table st");
}
