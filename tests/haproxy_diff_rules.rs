//! Differential tests of every rule kind: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg (`common::twins`) and must answer alike, and their servers must see the
//! same requests: `http-request` header, URI and variable rules; local answers
//! (`deny`, `return`, `redirect`, `allow`), and the connection staying open after them;
//! `http-response` and `http-after-response` rules (also on local replies);
//! backend rules, backend ACLs, `use-server`, `use_backend %[...]`; `tcp-request
//! connection|content` rules; SNI routing in `mode tcp`; `log-format` lines.
//!
//! Header names are compared in lower case (HAProxy sends them lower-cased).

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::twins::{Side, Srv, Twins};
use common::HttpClient;

/// What a server saw of the last request: method, target, and the chosen headers.
fn seen(s: &Side, server: &str, names: &[&str]) -> (String, String, BTreeMap<String, Vec<String>>) {
    let Some(r) = s.backend(server).last_request() else {
        return ("-".into(), "-".into(), BTreeMap::new());
    };
    let mut h: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &r.headers {
        let k = k.to_ascii_lowercase();
        if names.contains(&k.as_str()) {
            h.entry(k).or_default().push(v.clone());
        }
    }
    (r.method, r.target, h)
}

/// A client-visible answer: status, chosen headers (lower-case names), body.
fn answer(r: &common::Response, names: &[&str]) -> (u16, Vec<(String, String)>, String) {
    let mut h: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| names.contains(&k.as_str()))
        .collect();
    h.sort();
    (r.status, h, r.body_str())
}

#[test]
fn http_request_header_uri_and_variable_rules() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    http-request set-header X-Src %[src]
    http-request set-header X-Host %[req.hdr(host),lower]
    http-request add-header X-Tag one
    http-request add-header X-Tag "two %[path]"
    http-request del-header X-Secret
    http-request del-header x-drop- -m beg
    http-request replace-header X-Agent (.*)/(.*) \2-\1
    http-request replace-value X-List ^b(.*) B\1
    http-request set-var(txn.orig) path
    http-request set-var(txn.n) req.hdr_cnt(x-list)
    http-request set-path /rewritten%[path] if { path_beg /p/ }
    http-request replace-path /r/(.*) /replaced/\1
    http-request set-query q=%[urlp(a)] if { path_beg /q }
    http-request set-query %[urlp(none)] if { path_beg /noq }
    http-request set-uri /uri-set?z=1 if { path /u }
    http-request set-method PUT if { path /m }
    http-request set-header X-Orig "%[var(txn.orig)] n=%[var(txn.n)]"
    http-request set-header X-Cond yes if { req.hdr(x-tag) -m sub two }
    http-request unset-var(txn.orig) if { path /m }
    http-request set-header X-After-Unset "[%[var(txn.orig)]]"
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let names = [
        "x-src",
        "x-host",
        "x-tag",
        "x-secret",
        "x-drop-a",
        "x-drop-b",
        "x-keep",
        "x-agent",
        "x-list",
        "x-orig",
        "x-cond",
        "x-after-unset",
    ];
    let requests = [
        "GET /p/a?x=1 HTTP/1.1\r\nHost: WWW.Ex.com\r\nX-Secret: s\r\nX-Drop-A: 1\r\nX-Drop-B: 2\r\nX-Keep: 3\r\nX-Agent: curl/8.0\r\nX-List: a, bee, b2\r\n\r\n",
        "GET /r/deep/path?k=v HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /q?a=first&b=2 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /noq?a=1 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /u?x=2 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /m HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /plain HTTP/1.1\r\nHost: h\r\nX-Tag: zero\r\n\r\n",
    ];
    t.same_all(&requests, |s, raw| {
        let r = HttpClient::connect(s.addr("web")).request(raw);
        (r.status, seen(s, "s1", &names))
    });
}

#[test]
fn local_answers_and_the_connection_after_them() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    http-request allow if { path /allowed }
    http-request deny if { path_beg /deny }
    http-request deny deny_status 404 if { path /d404 }
    http-request deny status 429 content-type text/plain string "slow down" hdr Retry-After 10 if { path /d429 }
    http-request return status 200 content-type text/plain string pong if { path /ping }
    http-request return status 201 content-type text/plain lf-string "src=%[src] p=%[path]" hdr X-A "v %[req.hdr(host)]" if { path /lf }
    http-request return status 204 if { path /empty }
    http-request redirect location https://example.com/new code 301 if { path /old }
    http-request redirect location "/dyn?h=%[req.hdr(host)]" if { path /dyn }
    http-request redirect prefix https://pre.example.com if { path_beg /pre }
    http-request redirect prefix /p drop-query if { path_beg /dq }
    http-request redirect prefix /p append-slash if { path_beg /as }
    http-request redirect scheme https code 308 if { path_beg /sch }
    http-request redirect location /c set-cookie A=1 code 303 if { path /cook }
    http-request deny if { path /allowed }
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let names = [
        "location",
        "content-type",
        "content-length",
        "cache-control",
        "set-cookie",
        "x-a",
        "retry-after",
    ];
    let paths = [
        "/deny",
        "/deny/x",
        "/d404",
        "/d429",
        "/ping",
        "/lf",
        "/empty",
        "/old",
        "/dyn",
        "/pre/x?a=1",
        "/dq/x?a=1",
        "/as/x",
        "/sch/y?b=2",
        "/cook",
        "/allowed",
        "/other",
    ];
    t.same_all(&paths, |s, path| {
        // Two requests on one connection: the second is answered when the first
        // left the connection open.
        let mut c = HttpClient::connect(s.addr("web"));
        c.send(format!(
            "GET {path} HTTP/1.1\r\nHost: h.example\r\n\r\nGET /ping HTTP/1.1\r\nHost: h\r\n\r\n"
        ));
        let first = c.read_response();
        let second = c.try_read_response("GET").map(|r| r.status).ok();
        (answer(&first, &names), second)
    });
}

#[test]
fn response_and_after_response_rules() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    declare capture response len 20
    http-request set-var(txn.path) path
    http-request deny if { path /denied }
    http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains"
    http-response del-header x-backend
    http-response set-header X-Len "%[res.hdr(content-length)] %[status]"
    http-response set-status 201 if { status 200 } { var(txn.path) -m str /created }
    http-response set-status 299 reason "Custom" if { var(txn.path) -m str /reason }
    http-response deny if { var(txn.path) -m str /rdeny }
    http-response return status 200 content-type text/plain string replaced if { var(txn.path) -m str /rreturn }
    http-response redirect location /elsewhere if { var(txn.path) -m str /rredir }
    http-response capture res.hdr(content-length) id 0
    http-response set-header X-Was-404 yes if { status 404 }
    http-after-response set-header X-After "%[status]"
    http-after-response set-header X-Cap "[%[capture.res.hdr(0)]]"
    default_backend app

backend app
    http-response set-header X-Backend-Rule %[var(txn.path)]
    server s1 "${S1}"

frontend nosrv
    bind "127.0.0.1:${PORT2}"
    http-after-response set-header X-After "%[status]"
    default_backend empty

backend empty
    server dead "${DEAD}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT"), ("nosrv", "PORT2")],
        &[("S1", Srv::Up("s1")), ("DEAD", Srv::Dead)],
    );
    let names = [
        "strict-transport-security",
        "x-backend",
        "x-len",
        "x-after",
        "x-cap",
        "x-was-404",
        "x-backend-rule",
        "location",
        "content-type",
    ];
    let paths = [
        "/",
        "/created",
        "/reason",
        "/status/404",
        "/rdeny",
        "/rreturn",
        "/rredir",
        "/denied",
    ];
    t.same_all(&paths, |s, path| {
        let r = HttpClient::connect(s.addr("web"))
            .request(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n"));
        (answer(&r, &names), r.reason.clone())
    });
    t.same("a 503 of a backend without a live server", |s| {
        let r = HttpClient::connect(s.addr("nosrv")).request("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        answer(&r, &["x-after"])
    });
}

#[test]
fn backend_rules_acls_use_server_and_dynamic_backends() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    http-request set-header X-Fe 1
    use_backend %[req.hdr(x-be),lower] if { req.hdr(x-be) -m found }
    use_backend api if { path_beg /api }
    default_backend app

backend app
    acl is_admin path_beg /admin
    http-request set-header X-Be-App 1
    http-request set-header X-Admin yes if is_admin
    http-request deny if { path /app-deny }
    use-server s2 if { req.hdr(x-srv) -m str two }
    use-server s1 if { req.hdr(x-srv) -m str one }
    server s1 "${S1}"
    server s2 "${S2}"

backend api
    acl v2 path_beg /api/v2
    http-request set-path /v2-rewritten if v2
    http-request set-header X-Be-Api 1
    server a1 "${A1}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("A1", Srv::Up("a1")),
        ],
    );
    let requests = [
        ("/", ""),
        ("/admin/x", ""),
        ("/app-deny", ""),
        ("/", "X-Srv: two\r\n"),
        ("/", "X-Srv: one\r\n"),
        ("/api/v1", ""),
        ("/api/v2/x", ""),
        ("/", "X-Be: API\r\n"),
        ("/", "X-Be: nosuch\r\n"),
    ];
    t.same_all(&requests, |s, (path, extra)| {
        let r = HttpClient::connect(s.addr("web"))
            .request(format!("GET {path} HTTP/1.1\r\nHost: h\r\n{extra}\r\n"));
        let who = r.header("x-backend").unwrap_or("-").to_string();
        let server = if who == "-" {
            "s1".to_string()
        } else {
            who.clone()
        };
        (
            r.status,
            who,
            seen(s, &server, &["x-fe", "x-be-app", "x-admin", "x-be-api"]),
        )
    });
}

#[test]
fn tcp_request_connection_and_content_rules() {
    let body = r#"
frontend closed
    bind "127.0.0.1:${PORT}"
    tcp-request connection reject
    default_backend app

frontend content
    bind "127.0.0.1:${PORT2}"
    tcp-request content reject if { req.hdr(x-bad) -m found }
    tcp-request content set-var(txn.t) str(tcp)
    http-request set-header X-T %[var(txn.t)]
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(
        body,
        &[("closed", "PORT"), ("content", "PORT2")],
        &[("S1", Srv::Up("s1"))],
    );
    t.same(
        "a connection 'tcp-request connection reject' refuses",
        |s| match HttpClient::try_connect(s.addr("closed")) {
            Ok(mut c) => c
                .try_request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                .map(|r| r.status)
                .is_err(),
            Err(_) => true,
        },
    );
    t.same(
        "a request 'tcp-request content reject' refuses, and one it lets by",
        |s| {
            let bad = HttpClient::connect(s.addr("content"))
                .try_request("GET / HTTP/1.1\r\nHost: h\r\nX-Bad: 1\r\n\r\n")
                .map(|r| r.status)
                .ok();
            let good =
                HttpClient::connect(s.addr("content")).request("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
            (bad, good.status, seen(s, "s1", &["x-t"]))
        },
    );
}

/// A TLS 1.2 ClientHello for `sni` (no ALPN).
fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn sni_routing_in_tcp_mode_passes_tls_through() {
    let body = r#"
frontend tls
    mode tcp
    bind "127.0.0.1:${PORT}"
    tcp-request inspect-delay 2s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend one if { req.ssl_sni -i one.example.com }
    use_backend two if { req.ssl_sni -m end .two.example.com }
    default_backend other

backend one
    mode tcp
    server o1 "${O1}"

backend two
    mode tcp
    server t1 "${T1}"

backend other
    mode tcp
    server x1 "${X1}"
"#;
    let t = Twins::start(
        body,
        &[("tls", "PORT")],
        &[
            ("O1", Srv::Up("o1")),
            ("T1", Srv::Up("t1")),
            ("X1", Srv::Up("x1")),
        ],
    );
    // The start-up probes (a connect and a close) may still be on their way to the
    // default backend (HAProxy connects it for a client that left during the inspect
    // delay; ringlb does not): wait until the servers' counts stop moving.
    let counts = || -> Vec<usize> {
        ["o1", "t1", "x1"]
            .iter()
            .flat_map(|n| [t.hx.backend(n).accepts(), t.lb.backend(n).accepts()])
            .collect()
    };
    let mut last = counts();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        let now = counts();
        if now == last {
            break;
        }
        last = now;
    }
    let cases = [
        ("ONE.example.com", 0usize),
        ("a.two.example.com", 0),
        ("nobody.example.com", 0),
        // The ClientHello in two writes: the rule waits for the rest.
        ("one.example.com", 10),
    ];
    t.same_all(&cases, |s, (sni, split)| {
        let before: Vec<usize> = ["o1", "t1", "x1"]
            .iter()
            .map(|n| s.backend(n).accepts())
            .collect();
        let hello = client_hello(sni);
        let mut c = TcpStream::connect(s.addr("tls")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if *split > 0 {
            c.write_all(&hello[..*split]).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            c.write_all(&hello[*split..]).unwrap();
        } else {
            c.write_all(&hello).unwrap();
        }
        // Which server the connection reached (the test servers wait for an HTTP head
        // that never comes; the connection is dropped once one of them has it).
        let count = || -> Vec<usize> {
            ["o1", "t1", "x1"]
                .iter()
                .map(|n| s.backend(n).accepts())
                .collect()
        };
        common::wait_for(
            "a server to get the connection",
            Duration::from_secs(5),
            || count() != before,
        );
        drop(c);
        let after = count();
        let chosen: Vec<&str> = ["o1", "t1", "x1"]
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| a > b)
            .map(|(n, _)| *n)
            .collect();
        chosen
    });
}

#[test]
fn log_format_lines() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    log global
    option dontlognull
    capture request header User-Agent len 8
    capture response header Content-Type len 10
    http-request set-var(txn.v) str(val)
    log-format "%ci %ST %b/%s %[capture.req.hdr(0)] %hr %hs %{+Q}r %[var(txn.v)] %{+Q}[var(txn.none)] %HM %HP %HQ %HV %ft %f %tsc"
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start_with_global(
        "    log stdout format raw local0\n",
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1"))],
    );
    for s in [&t.hx, &t.lb] {
        let mut c = HttpClient::connect(s.addr("web"));
        c.request("GET /a?b=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: agent/1.2.3\r\n\r\n");
        c.request("GET /status/404 HTTP/1.1\r\nHost: h\r\n\r\n");
    }
    let pick = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.starts_with("127.0.0.1 "))
            .map(|l| l.trim_end().to_string())
            .collect()
    };
    common::wait_for(
        "both log lines on each side",
        Duration::from_secs(5),
        || {
            pick(t.haproxy_output().lines().map(str::to_string).collect()).len() >= 2
                && pick(t.ringlb_stdout()).len() >= 2
        },
    );
    let hx = pick(t.haproxy_output().lines().map(str::to_string).collect());
    let lb = pick(t.ringlb_stdout());
    assert_eq!(hx, lb, "log lines differ");
}
