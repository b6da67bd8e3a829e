//! Differential tests of stick counters: HAProxy 2.6 and ringlb (one thread each) run
//! the same haproxy.cfg and must count alike: `track-scN` on any sample (`src`, a
//! header, a converted header) in `http-request` and `tcp-request connection`, the
//! `sc_*`, `scN_*` and `src_*` fetches (`http_req_rate`, `http_err_cnt`, `conn_cur`,
//! `conn_cnt`, `gpc0`, `gpc0_rate`, `gpc1`, `gpt0`, `sess_cnt`, `http_fail_cnt`,
//! `trackers`), `sc-inc-gpc0/1`, `sc-set-gpt0`, the `sc_inc_gpc0` and `sc_clr_gpc0`
//! fetches, the `table_*` and `in_table` converters, and conditions over them.

use crate::common;

use common::twins::{Srv, Twins};
use common::HttpClient;
use std::time::Duration;

#[test]
fn http_counters_on_any_key() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    stick-table type string len 16 size 1k expire 1m store http_req_rate(10s),http_req_cnt,http_err_cnt,http_err_rate(10s),gpc0,gpc0_rate(10s),conn_cur,conn_cnt
    http-request track-sc1 req.hdr(x-user),lower
    http-request sc-inc-gpc0(1) if { path /inc }
    http-request deny deny_status 429 if { sc_http_req_rate(1) gt 6 }
    http-request set-header X-Rate %[sc_http_req_rate(1)]
    http-request set-header X-Cnt %[sc1_http_req_cnt]
    http-request set-header X-Err %[sc1_http_err_cnt]
    http-request set-header X-Gpc %[sc1_get_gpc0]/%[sc_gpc0_rate(1)]
    http-request set-header X-Cur %[sc1_conn_cur]/%[sc1_conn_cnt]
    http-request set-header X-Tracked %[sc_tracked(1)]/%[sc_tracked(2)]
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let steps = [
        ("/", "Alice"),
        ("/", "ALICE"),
        ("/status/404", "alice"),
        ("/inc", "alice"),
        ("/inc", "bob"),
        ("/", "alice"),
        ("/", "alice"),
        ("/", "alice"),
        ("/", "alice"),
        ("/", "bob"),
        ("/", "carol-without-header"),
    ];
    t.same("a sequence of requests from three users", |s| {
        let mut out = Vec::new();
        for (path, user) in steps {
            let hdr = if user.starts_with("carol") {
                String::new()
            } else {
                format!("X-User: {user}\r\n")
            };
            let r = HttpClient::connect(s.addr("web"))
                .request(format!("GET {path} HTTP/1.1\r\nHost: h\r\n{hdr}\r\n"));
            let seen = s.backend("s1").last_request().map(|req| {
                ["x-rate", "x-cnt", "x-err", "x-gpc", "x-cur", "x-tracked"]
                    .iter()
                    .map(|n| {
                        req.headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(n))
                            .map_or("-".to_string(), |(_, v)| v.clone())
                    })
                    .collect::<Vec<_>>()
            });
            out.push((r.status, if r.status == 429 { None } else { seen }));
        }
        out
    });
}

#[test]
fn connection_counters_limit_concurrent_connections() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    stick-table type ip size 1k expire 1m store conn_cur,conn_cnt,conn_rate(10s)
    tcp-request connection track-sc0 src
    tcp-request connection reject if { sc0_conn_cur gt 2 }
    http-request set-header X-Conn %[sc0_conn_cur]/%[sc0_conn_cnt]/%[sc0_conn_rate]/%[src_conn_cnt]
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    t.same(
        "three connections open at once, then a fourth after one closed",
        |s| {
            let mut open: Vec<HttpClient> = Vec::new();
            let mut out = Vec::new();
            let ask = |c: &mut Option<HttpClient>| -> String {
                let Some(c) = c else {
                    return "refused".to_string();
                };
                match c.try_request("GET / HTTP/1.1\r\nHost: h\r\n\r\n") {
                    Ok(r) => {
                        let seen = s.backend("s1").last_request().and_then(|req| {
                            req.headers
                                .iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case("x-conn"))
                                .map(|(_, v)| v.clone())
                        });
                        format!("{} {}", r.status, seen.unwrap_or_default())
                    }
                    Err(_) => "refused".to_string(),
                }
            };
            // From another loopback address: the harness's readiness probes (from
            // 127.0.0.1) have their own entry.
            let open_one = || {
                let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .ok()?;
                sock.bind(&std::net::SocketAddr::from(([127, 0, 0, 9], 0)).into())
                    .ok()?;
                sock.connect(&s.addr("web").into()).ok()?;
                let stream: std::net::TcpStream = sock.into();
                HttpClient::from_stream(stream, s.addr("web")).ok()
            };
            for _ in 0..3 {
                let mut c = open_one();
                out.push(ask(&mut c));
                open.extend(c);
            }
            drop(open.pop());
            // The close reaches the balancer before the next connection is counted.
            std::thread::sleep(std::time::Duration::from_millis(200));
            let mut c = open_one();
            out.push(ask(&mut c));
            out
        },
    );
}

#[test]
fn general_purpose_counters_tags_and_table_lookups() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    stick-table type string len 16 size 1k expire 1m store gpc0,gpc1,gpt0,sess_cnt,http_req_cnt,http_fail_cnt,http_req_rate(10s)
    tcp-request session track-sc2 str(all)
    http-request track-sc0 req.hdr(x-user)
    http-request sc-inc-gpc1(0) if { path_beg /inc1 }
    http-request sc-set-gpt0(0) 7 if { path_beg /tag }
    http-request set-var(txn.clr) sc0_clr_gpc0 if { path_beg /clr }
    http-request set-var(txn.inc) sc_inc_gpc0(0) if { path_beg /inc0 }
    http-request set-header X-Gpc %[sc0_get_gpc0]/%[sc_get_gpc1(0)]/%[sc0_get_gpt0]/%[var(txn.clr)]/%[var(txn.inc)]
    http-request set-header X-Sess %[sc2_sess_cnt]/%[sc0_trackers]/%[sc2_trackers]/%[sc0_http_fail_cnt]
    http-request set-header X-Table %[str(alice),table_gpc0(web)]/%[str(alice),table_http_req_cnt(web)]/%[str(nobody),in_table(web)]/%[req.hdr(x-user),in_table(web)]/%[src_get_gpc0(web)]
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let steps = [
        ("/", "alice"),
        ("/inc0", "alice"),
        ("/inc0", "alice"),
        ("/inc1", "alice"),
        ("/tag", "bob"),
        ("/status/503", "bob"),
        ("/clr", "alice"),
        ("/", "alice"),
        ("/", "bob"),
    ];
    t.same("gpc0/gpc1/gpt0 and table lookups over a sequence", |s| {
        let mut out = Vec::new();
        for (path, user) in steps {
            // Each step's session ends before the next begins (the proxy closes, and
            // the client waits for that): a client that only dropped its socket left
            // the proxy to see the EOF after the next connection arrived, now and then,
            // and `sc2_trackers` read 2 (a loaded machine, CI).
            let mut c = HttpClient::connect(s.addr("web"));
            let r = c.request(format!(
                "GET {path} HTTP/1.1\r\nHost: h\r\nX-User: {user}\r\nConnection: close\r\n\r\n"
            ));
            assert!(
                c.closed_by_peer(Duration::from_secs(10)),
                "{path}: not closed"
            );
            let seen = s.backend("s1").last_request().map(|req| {
                ["x-gpc", "x-sess", "x-table"]
                    .iter()
                    .map(|n| {
                        req.headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(n))
                            .map_or("-".to_string(), |(_, v)| v.clone())
                    })
                    .collect::<Vec<_>>()
            });
            out.push((r.status, seen));
        }
        // The sessions the start-up probes opened count too, and the two harnesses
        // probe differently: compare sess_cnt from the first request on.
        let first: i64 = out[0].1.as_ref().map_or(0, |v| {
            v[1].split('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        });
        for (_, seen) in out.iter_mut() {
            if let Some(v) = seen {
                let mut parts: Vec<String> = v[1].split('/').map(str::to_string).collect();
                if let Ok(n) = parts[0].parse::<i64>() {
                    parts[0] = (n - first).to_string();
                }
                v[1] = parts.join("/");
            }
        }
        out
    });
}
