//! The runtime API's observability commands against HAProxy 2.6 on the same
//! haproxy.cfg (issue 22): `show stat typed|json`, `show schema json`, the `IID TYPE
//! SID`, `up` and `no-maint` filters, `show info json`, the exporter's `?scope=` and
//! `?no-maint`, `show backend`, `get weight`, `show servers conn`, `show env`,
//! `clear counters [all]`, `show errors`, `show sess`, `show table` / `set table` /
//! `clear table`, and the interactive `prompt` mode. Where ringlb differs on
//! purpose the test says so.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::twins::{ask, get, stat_rows, status_of, Side, Srv, Twins};

const CONFIG: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    http-request use-service prometheus-exporter if { path /metrics }
    default_backend app

backend app
    option httpchk GET /
    default-server inter 200ms fall 1 rise 1
    stick-table type ip size 100 expire 30m
    stick on src
    server s1 "${S1}" check weight 3
    server s2 "${S2}" check
    server dead "${D1}" check
    server m1 "${S3}" check

backend other
    server o1 "${S4}"
"#;

fn start() -> Twins {
    let t = Twins::start(
        CONFIG,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("D1", Srv::Dead),
            ("S3", Srv::Up("m1")),
            ("S4", Srv::Up("o1")),
        ],
    );
    t.same("maint", |s| s.cli("set server app/m1 state maint"));
    t.wait_both("dead DOWN, s1 UP", Duration::from_secs(10), |s| {
        status_of(s, "app", "dead") == "DOWN" && status_of(s, "app", "s1") == "UP"
    });
    t
}

fn rows_of(csv: &str) -> Vec<(String, String)> {
    stat_rows(csv)
        .into_iter()
        .map(|r| (r["pxname"].clone(), r["svname"].clone()))
        .collect()
}

/// (objType, proxyId, id, field, tags, value type) of every field `show stat json`
/// gives, and every row's (objType, proxyId, id).
fn json_shape(text: &str) -> (BTreeSet<String>, Vec<String>) {
    let v: serde_json::Value = serde_json::from_str(text).expect("show stat json parses");
    let mut fields = BTreeSet::new();
    let mut rows = Vec::new();
    for row in v.as_array().expect("an array of rows") {
        let row = row.as_array().expect("a row is an array");
        let f0 = &row[0];
        rows.push(format!("{} {} {}", f0["objType"], f0["proxyId"], f0["id"]));
        for f in row {
            fields.insert(format!(
                "{} {} {} {} {}",
                f["objType"], f["field"]["name"], f["field"]["pos"], f["tags"], f["value"]["type"]
            ));
        }
    }
    (fields, rows)
}

#[test]
fn typed_json_schema_and_filters() {
    let t = start();
    for s in [&t.hx, &t.lb] {
        for _ in 0..4 {
            assert_eq!(ask(s.addr("web"), &get("a", "/")).0, 200);
        }
    }
    // The schema is HAProxy's.
    let (a, b) = t.both(|s| s.cli("show schema json"));
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&a).unwrap(),
        serde_json::from_str(&b).unwrap(),
    );
    assert_eq!(a, b, "show schema json");
    // The JSON rows and the fields both fill carry the same tags and types.
    let ((hf, hr), (lf, lr)) = t.both(|s| json_shape(&s.cli("show stat json")));
    assert_eq!(hr, lr, "the same rows");
    let common: BTreeSet<_> = hf.intersection(&lf).collect();
    let names = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let only_hx: BTreeSet<_> = names(&hf).difference(&names(&lf)).cloned().collect();
    assert!(
        common.len() * 100 >= hf.len() * 95,
        "show stat json: {} of {} fields alike; HAProxy only: {only_hx:?}",
        common.len(),
        hf.len()
    );
    // Filters.
    for filter in [
        "-1 4 -1",
        "-1 1 -1",
        "3 -1 -1",
        "app 4 2",
        "other -1 -1",
        "-1 -1 -1 up",
        "no-maint",
        "-1 6 -1 typed",
    ] {
        let (a, b) = t.both(|s| {
            let out = s.cli(&format!("show stat {filter}"));
            if filter.ends_with("typed") {
                out.lines()
                    .map(|l| l.split('.').take(3).collect::<Vec<_>>().join("."))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
            } else {
                rows_of(&out)
                    .into_iter()
                    .map(|(p, s)| format!("{p}/{s}"))
                    .collect()
            }
        });
        assert_eq!(a, b, "show stat {filter}");
    }
    t.same("an unknown proxy", |s| s.cli("show stat nope 1 1"));
    t.same("backends count their servers with up / no-maint", |s| {
        ["show stat up", "show stat no-maint", "show stat"].map(|c| {
            stat_rows(&s.cli(c))
                .into_iter()
                .filter(|r| r["svname"] == "BACKEND")
                .map(|r| r["status"].clone())
                .collect::<Vec<_>>()
        })
    });
    // show info json: the same fields in the same order, with the same tags.
    let (a, b) = t.both(|s| {
        let v: serde_json::Value = serde_json::from_str(&s.cli("show info json")).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{} {} {}",
                    f["field"]["name"], f["tags"], f["value"]["type"]
                )
            })
            .collect::<Vec<_>>()
    });
    let common: Vec<_> = a.iter().filter(|x| b.contains(x)).collect();
    assert!(common.len() * 100 >= a.len() * 90, "{a:#?}\n{b:#?}");
}

fn scrape(s: &Side, query: &str) -> (u16, BTreeSet<String>, String) {
    let mut c = common::client::HttpClient::connect(s.addr("web"));
    let r = c.request(format!("GET /metrics{query} HTTP/1.1\r\nHost: a\r\n\r\n"));
    let body = r.body_str();
    let fams = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("haproxy_"))
        .map(str::to_string)
        .collect();
    (r.status, fams, body)
}

#[test]
fn exporter_scopes_and_no_maint() {
    let t = start();
    for q in [
        "?scope=server",
        "?scope=backend&scope=frontend",
        "?scope=global",
    ] {
        let (a, b) = t.both(|s| scrape(s, q));
        assert_eq!((a.0, &a.1), (b.0, &b.1), "scope {q}");
        let prefix = |f: &str| f.split('_').nth(1).unwrap_or("").to_string();
        let kinds: BTreeSet<_> = b.1.iter().map(|f| prefix(f)).collect();
        let want: BTreeSet<String> = match q {
            "?scope=server" => ["server"].map(String::from).into(),
            "?scope=global" => ["process"].map(String::from).into(),
            _ => ["backend", "frontend"].map(String::from).into(),
        };
        assert_eq!(kinds, want, "{q}");
    }
    t.same("an unknown scope is a bad request", |s| {
        scrape(s, "?scope=nope").0
    });
    let (a, b) = t.both(|s| {
        let (_, _, body) = scrape(s, "?scope=server&no-maint");
        (
            body.contains("server=\"m1\""),
            body.contains("server=\"s1\""),
        )
    });
    assert_eq!(a, (false, true), "HAProxy leaves the server in MAINT out");
    assert_eq!(a, b);
}

#[test]
fn listing_commands_answer_like_haproxy() {
    let t = start();
    t.same("show backend", |s| s.cli("show backend"));
    t.same("get weight", |s| {
        [
            s.cli("get weight app/s1"),
            s.cli("get weight app/nope"),
            s.cli("get weight app"),
        ]
    });
    t.same("show env PATH", |s| s.cli("show env PATH"));
    t.same("show env of an unknown variable", |s| {
        s.cli("show env RINGLB_NO_SUCH_VARIABLE")
    });
    t.same("show servers conn of an unknown backend", |s| {
        s.cli("show servers conn nope")
    });
    // Same rows and columns up to the per-thread idle counts (one per thread).
    t.same("show servers conn", |s| {
        s.cli("show servers conn app")
            .lines()
            .map(|l| {
                let w: Vec<&str> = l.split(' ').collect();
                // Same columns; the servers' ports differ between the sides.
                (
                    w.len(),
                    w.iter().take(3).copied().collect::<Vec<_>>().join(" "),
                )
            })
            .collect::<Vec<_>>()
    });
    t.same("show version is one line", |s| {
        s.cli("show version").lines().count()
    });
}

#[test]
fn clear_counters_resets_maxima_then_everything() {
    let t = start();
    for s in [&t.hx, &t.lb] {
        for _ in 0..3 {
            assert_eq!(ask(s.addr("web"), &get("a", "/")).0, 200);
        }
    }
    let cols = |s: &Side, cols: &[&str]| -> Vec<String> {
        let rows = stat_rows(&s.cli("show stat"));
        let fe = rows.iter().find(|r| r["svname"] == "FRONTEND").unwrap();
        cols.iter().map(|c| fe[*c].clone()).collect()
    };
    // HAProxy's side also counts the harness's readiness probe: compare each side
    // with itself before and after.
    let before = t.both(|s| cols(s, &["stot", "req_tot"]));
    t.same("clear counters", |s| s.cli("clear counters"));
    t.same("maxima cleared", |s| {
        cols(s, &["smax", "rate_max", "req_rate_max"])
    });
    let after = t.both(|s| cols(s, &["stot", "req_tot"]));
    assert_eq!(before, after, "totals kept");
    t.same("clear counters all", |s| s.cli("clear counters all"));
    t.same("everything cleared", |s| {
        cols(s, &["stot", "req_tot", "bin", "hrsp_2xx", "smax"])
    });
}

#[test]
fn show_errors_captures_the_invalid_request() {
    let t = start();
    let bad = "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n";
    t.same("a bad request", |s| ask(s.addr("web"), bad).0);
    let (a, b) = t.both(|s| s.cli("show errors"));
    let shape = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.starts_with("  0") || l.contains("invalid request") || l.starts_with("Total")
            })
            .map(|l| {
                // Dates and the client's port differ between the two runs.
                l.split(" : ")
                    .last()
                    .unwrap_or(l)
                    .split("] ")
                    .last()
                    .unwrap_or(l)
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        shape(&a),
        shape(&b),
        "--- haproxy ---\n{a}\n--- ringlb ---\n{b}"
    );
    assert!(b.contains("error at position 25"), "{b}");
    t.same("an unknown proxy", |s| s.cli("show errors nope"));
}

#[test]
fn show_sess_lists_an_open_connection() {
    let t = start();
    let (a, b) = t.both(|s| {
        // A request the server takes its time over: its session is listed meanwhile.
        let mut c = std::net::TcpStream::connect(s.addr("web")).unwrap();
        c.write_all(b"GET /sleep/1500 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let port = c.local_addr().unwrap().port();
        let out = s.cli("show sess");
        let line = out
            .lines()
            .find(|l| l.contains(&format!("src=127.0.0.1:{port} ")))
            .unwrap_or_else(|| panic!("{}: no session from port {port}:\n{out}", s.who))
            .to_string();
        drop(c);
        let fields = |l: &str| -> Vec<String> {
            l.split(' ')
                .filter(|w| w.starts_with("proto=") || w.starts_with("fe=") || w.starts_with("be="))
                .map(str::to_string)
                .collect()
        };
        fields(&line)
    });
    assert_eq!(a, b);
    t.same("an unknown session", |s| s.cli("show sess 0xdeadbeef"));
}

/// ringlb's tables keep hashes of their keys: an entry shows `key=#HASH` where
/// HAProxy shows the address (README: Operating it).
#[test]
fn stick_tables_show_set_and_clear() {
    let t = start();
    for s in [&t.hx, &t.lb] {
        assert_eq!(ask(s.addr("web"), &get("a", "/")).0, 200);
    }
    let header = |s: &Side| s.cli("show table").lines().next().unwrap_or("").to_string();
    t.wait_both("the entry recorded", Duration::from_secs(5), |s| {
        header(s).ends_with("used:1")
    });
    t.same("show table", |s| s.cli("show table"));
    t.same("show table app: header", |s| header(s));
    t.same("errors", |s| {
        [
            s.cli("show table nope"),
            s.cli("show table app data.server_id zz 1"),
            s.cli("show table app data.server_id gt x"),
            s.cli("clear table app key"),
        ]
    });
    t.same("set table", |s| {
        s.cli("set table app key 10.0.0.9 data.server_id 2")
    });
    let entry = |s: &Side| {
        s.cli("show table app key 10.0.0.9")
            .lines()
            .nth(1)
            .and_then(|l| l.split(' ').find(|w| w.starts_with("server_id=")))
            .unwrap_or("")
            .to_string()
    };
    t.wait_both("set", Duration::from_secs(5), |s| entry(s) == "server_id=2");
    t.same("filters", |s| {
        let n = |f: &str| s.cli(&format!("show table app {f}")).lines().count();
        [n("data.server_id eq 2"), n("data.server_id gt 5")]
    });
    t.same("clear one key", |s| s.cli("clear table app key 10.0.0.9"));
    t.same("gone", |s| header(s));
    t.same("clear all", |s| s.cli("clear table app"));
    t.same("empty", |s| header(s));
}

/// After `clear table`, a client is stuck to the server it is sent to next, as on
/// HAProxy. ringlb's cluster thread, which passes what one shard learns to the
/// others, kept its own record of the cleared entry: the client's next record (to
/// another server) lost to it, and every shard was told the old server again.
#[test]
fn a_cleared_stick_entry_does_not_come_back() {
    let t = start();
    let header = |s: &Side| s.cli("show table").lines().next().unwrap_or("").to_string();
    let flow = |s: &Side| {
        let web = s.addr("web");
        let (status, first) = ask(web, &get("a", "/"));
        assert_eq!(status, 200, "{}", s.who);
        s.cli("clear table app");
        // The first server in maintenance: the next request goes elsewhere and the
        // client is stuck there.
        s.cli(&format!("set server app/{first} state maint"));
        let (_, second) = ask(web, &get("a", "/"));
        // Time for what a shard learns to reach the others.
        std::thread::sleep(Duration::from_millis(300));
        s.cli(&format!("set server app/{first} state ready"));
        let third: Vec<String> = (0..4).map(|_| ask(web, &get("a", "/")).1).collect();
        (
            first != second,
            third.iter().all(|b| *b == second),
            header(s),
        )
    };
    let got = t.same("clear table, then a new server for the client", flow);
    assert_eq!((got.0, got.1), (true, true), "{got:?}");
}

#[test]
fn interactive_prompt_mode() {
    let t = start();
    let transcript = |s: &Side| {
        let mut c = UnixStream::connect(s_sock(s)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        for line in [
            "prompt",
            "set timeout cli 30",
            "show backend",
            "get weight app/s1",
        ] {
            c.write_all(format!("{line}\n").as_bytes()).unwrap();
            // Each answer ends with the prompt.
            let mut buf = Vec::new();
            let mut byte = [0u8; 1024];
            while !buf.ends_with(b"> ") {
                let n = c.read(&mut byte).unwrap();
                assert!(n > 0, "{}: closed in interactive mode", s.who);
                buf.extend_from_slice(&byte[..n]);
            }
            out.push(String::from_utf8_lossy(&buf).into_owned());
        }
        c.write_all(b"quit\n").unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        out
    };
    t.same("a prompt session", transcript);
}

/// The stats socket of a side (the harness keeps it private; `show` through `cli`).
fn s_sock(s: &Side) -> std::path::PathBuf {
    s.sock_path()
}
