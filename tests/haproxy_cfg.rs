//! Running an existing haproxy.cfg unchanged: the fixtures under
//! `tests/fixtures/haproxy/` (modelled on the HAProxy 2.6 configuration manual's
//! examples) pass `ringlb -c` and Debian's `haproxy -c` alike, so they are real HAProxy
//! configs; `errors.cfg` fails both, and ringlb names the line of every mistake; the
//! keywords ringlb ignores are warned about with their line; the fixtures run (the edge
//! config routes by Host and path as its ACLs say); and for small configs around the
//! edges of the grammar, `ringlb -c` and `haproxy -c` give the same verdict.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::haproxy::{
    cli, fixture, fixture_path, haproxy_check, render, ringlb_cfg, ringlb_check,
};
use common::traffic::backend_of;
use common::*;

/// A placeholder value for `-c` runs: nothing needs to listen there.
fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The environment each valid fixture reads (manual, section 2.3).
fn check_env(name: &str) -> Vec<(&'static str, String)> {
    match name {
        "edge-acl-routing.cfg" => vec![
            ("EDGE_PORT", "18081".into()),
            ("APP1_ADDR", addr(19001)),
            ("APP2_ADDR", addr(19002)),
            ("STATIC_ADDR", addr(19003)),
            ("API_ADDR", addr(19004)),
        ],
        "tcp-service.cfg" => vec![
            ("DB_PORT", "18082".into()),
            ("GW_PORT", "18083".into()),
            ("DB1_ADDR", addr(19001)),
            ("DB2_ADDR", addr(19002)),
            ("GW1_ADDR", addr(19003)),
            ("GW2_ADDR", addr(19004)),
        ],
        "listen-stats.cfg" => vec![
            ("STATS_SOCK", "/tmp/ringlb-fixture-check.sock".into()),
            ("STATS_PORT", "18084".into()),
            ("WEB_PORT", "18085".into()),
            ("WEB1_ADDR", addr(19001)),
            ("WEB2_ADDR", addr(19002)),
        ],
        "defaults-inheritance.cfg" => vec![
            ("PUBLIC_PORT", "18086".into()),
            ("WEB1_ADDR", addr(19001)),
            ("API1_ADDR", addr(19002)),
            ("API2_ADDR", addr(19003)),
        ],
        other => panic!("no environment for {other}"),
    }
}

/// The 1-based number of the one line of `text` whose trimmed form starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(start))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(hits.len(), 1, "lines starting with {start:?}: {hits:?}");
    hits[0]
}

/// `haproxy -c` and `ringlb -c` both accept fixture `name` as it is, reading its
/// addresses from the environment; returns ringlb's stderr (its warnings).
fn assert_valid_for_both(name: &str) -> String {
    let path = fixture_path(name);
    let env = check_env(name);
    let hx = haproxy_check(&path, &env);
    assert_eq!(
        hx.code(),
        Some(0),
        "haproxy -c refuses {name}: not a real HAProxy config\n{}{}",
        hx.stdout,
        hx.stderr
    );
    let rl = ringlb_check(&path, &env);
    assert_eq!(
        rl.code(),
        Some(0),
        "ringlb -c refuses {name}\n--- stderr ---\n{}",
        rl.stderr
    );
    assert!(
        rl.stdout.contains("configuration is valid"),
        "{:?}",
        rl.stdout
    );
    // Every line of stderr is a warning naming the file and line.
    let shown = path.display().to_string();
    for l in rl.stderr.lines() {
        let rest = l
            .strip_prefix("warning: ")
            .and_then(|r| r.strip_prefix(shown.as_str()))
            .and_then(|r| r.strip_prefix(':'))
            .unwrap_or_else(|| panic!("not a `warning: FILE:LINE: message` line: {l:?}"));
        let (n, _) = rest.split_once(": ").expect("LINE: message");
        assert!(n.parse::<usize>().is_ok(), "{l:?}");
    }
    rl.stderr
}

/// Asserts a `warning: FILE:LINE: ...` for the line starting with `start`, mentioning
/// `word`.
fn assert_warns(stderr: &str, name: &str, start: &str, word: &str) {
    let n = line_of(&fixture(name), start);
    let prefix = format!("warning: {}:{n}: ", fixture_path(name).display());
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(word)),
        "no warning at {name}:{n} ({start:?}) mentioning {word:?}\n--- stderr ---\n{stderr}"
    );
}

#[test]
fn edge_acl_routing_is_valid_for_both_and_warns_on_nothing() {
    let name = "edge-acl-routing.cfg";
    let err = assert_valid_for_both(name);
    // `daemon` (tests/process_keywords.rs), `log`, `option httplog`, `option
    // dontlognull` (access logs), `maxconn` (global and frontend), `tune.bufsize` (the
    // head size limit) and `ssl-default-bind-options` (TLS binds' defaults) are
    // supported.
    assert_eq!(err.lines().count(), 0, "unexpected warnings:\n{err}");
}

#[test]
fn tcp_service_is_valid_for_both_and_warns_on_ignored_options() {
    let name = "tcp-service.cfg";
    let err = assert_valid_for_both(name);
    assert_warns(&err, name, "option tcp-smart-accept", "tcp-smart-accept");
    assert_warns(&err, name, "option tcp-smart-connect", "tcp-smart-connect");
    // Global `maxconn`, `timeout tunnel` (idle time of a TCP connection) and `timeout
    // client-fin` (tests/haproxy_diff_timeout_fin.rs) are supported.
    assert_eq!(err.lines().count(), 2, "unexpected warnings:\n{err}");
}

#[test]
fn listen_stats_is_valid_for_both_and_warns_on_ignored_stats_lines() {
    let name = "listen-stats.cfg";
    let err = assert_valid_for_both(name);
    assert_warns(&err, name, "stats timeout", "stats timeout");
    // The page itself is served, with its admin actions: no warning for these.
    let text = fixture(name);
    for start in ["stats enable", "stats uri", "stats refresh", "stats admin"] {
        let prefix = format!(
            "warning: {}:{}: ",
            fixture_path(name).display(),
            line_of(&text, start)
        );
        assert!(
            !err.lines().any(|l| l.starts_with(&prefix)),
            "unexpected warning for {start:?}:\n{err}"
        );
    }
}

#[test]
fn defaults_inheritance_is_valid_for_both() {
    let err = assert_valid_for_both("defaults-inheritance.cfg");
    assert!(err.is_empty(), "no keyword here is ignored:\n{err}");
}

/// The mistakes `errors.cfg` holds: (line, a word the message must contain).
const ERRORS: &[(usize, &str)] = &[
    (7, "nbproc"),      // removed in 2.5
    (12, "30x"),        // bad time unit
    (14, "contimeout"), // removed in 2.1
    (18, "site.pem"),   // bind ... ssl crt: the certificate file is missing
    (19, "frobnicate"), // unknown keyword
    (20, "reqadd"),     // removed in 2.1
    (21, "nosuch"),     // unknown backend
    (25, "fastest"),    // bad balance algorithm
];

#[test]
fn errors_fixture_fails_both_with_every_line() {
    let name = "errors.cfg";
    let path = fixture_path(name);
    let text = fixture(name);
    let hx = haproxy_check(&path, &[]);
    assert_ne!(
        hx.code(),
        Some(0),
        "haproxy -c accepts {name}:\n{}",
        hx.stderr
    );
    let rl = ringlb_check(&path, &[]);
    assert_eq!(rl.code(), Some(1), "stderr:\n{}", rl.stderr);
    assert!(!rl.stdout.contains("configuration is valid"));

    let shown = path.display().to_string();
    let errors: Vec<(usize, &str)> = rl
        .stderr
        .lines()
        .filter(|l| !l.starts_with("warning: ") && !l.starts_with("configuration is"))
        .map(|l| {
            let rest = l
                .strip_prefix(shown.as_str())
                .and_then(|r| r.strip_prefix(':'))
                .unwrap_or_else(|| panic!("not a `FILE:LINE: message` line: {l:?}"));
            let (n, msg) = rest.split_once(": ").expect("LINE: message");
            (n.parse().expect("a line number"), msg)
        })
        .collect();
    for &(line, word) in ERRORS {
        let source = text.lines().nth(line - 1).unwrap_or("");
        assert!(
            errors.iter().any(|&(n, m)| n == line && m.contains(word)),
            "no error at {name}:{line} mentioning {word:?} (the line reads {source:?})\n--- stderr ---\n{}",
            rl.stderr
        );
    }
    assert_eq!(
        errors.len(),
        ERRORS.len(),
        "unexpected errors:\n{}",
        rl.stderr
    );
    assert!(
        rl.stderr.contains(&format!(
            "configuration is invalid: {} error(s)",
            ERRORS.len()
        )),
        "{}",
        rl.stderr
    );

    // HAProxy stops before its cross-proxy checks, so it does not name line 21, but
    // every line it names, ringlb names too.
    let hx_lines: Vec<usize> = hx
        .stderr
        .lines()
        .filter_map(|l| l.split_once(&format!("[{shown}:")))
        .filter_map(|(_, r)| r.split_once(']'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    assert!(!hx_lines.is_empty(), "haproxy output:\n{}", hx.stderr);
    for n in hx_lines {
        assert!(
            errors.iter().any(|&(m, _)| m == n),
            "haproxy reports line {n}, ringlb does not\n--- haproxy ---\n{}\n--- ringlb ---\n{}",
            hx.stderr,
            rl.stderr
        );
    }
}

/// The unknown backend alone: HAProxy reports it too once nothing stops it earlier.
#[test]
fn unknown_backend_alone_fails_both_on_its_line() {
    let text = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend www\n    bind 127.0.0.1:18480\n    use_backend nosuch if { path_beg /old/ }\n    default_backend app\n\nbackend app\n    server app1 127.0.0.1:18490\n";
    let cfg = common::haproxy::write_cfg(text);
    let hx = haproxy_check(cfg.path(), &[]);
    assert_ne!(hx.code(), Some(0), "{}", hx.stderr);
    assert!(hx.stderr.contains("nosuch"), "{}", hx.stderr);
    let rl = ringlb_check(cfg.path(), &[]);
    assert_eq!(rl.code(), Some(1), "{}", rl.stderr);
    let want = format!("{}:9: ", cfg.path().display());
    assert!(
        rl.stderr
            .lines()
            .any(|l| l.starts_with(&want) && l.contains("nosuch")),
        "{}",
        rl.stderr
    );
}

#[test]
fn edge_acl_routing_routes_by_host_and_path() {
    let app1 = TestBackend::start("app1");
    let app2 = TestBackend::start("app2");
    let static1 = TestBackend::start("static1");
    let api1 = TestBackend::start("api1");
    let text = render(
        &fixture("edge-acl-routing.cfg"),
        &[
            ("EDGE_PORT", "0".into()),
            ("APP1_ADDR", app1.addr().to_string()),
            ("APP2_ADDR", app2.addr().to_string()),
            ("STATIC_ADDR", static1.addr().to_string()),
            ("API_ADDR", api1.addr().to_string()),
        ],
    );
    let lb = ringlb_cfg(&text);
    let www = lb.addr("www");

    let send = |method: &str, host: &str, path: &str| -> String {
        let r = HttpClient::connect(www).request(format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
        ));
        assert_eq!(r.status, 200, "{method} {host}{path}: {r:?}");
        backend_of(&r)
    };
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("GET", "www.example.com", "/", &["app1", "app2"]),
        ("GET", "static.example.com", "/", &["static1"]),
        ("GET", "STATIC.Example.COM", "/index.html", &["static1"]),
        ("GET", "www.example.com", "/static/site.js", &["static1"]),
        ("GET", "www.example.com", "/images/a.svg", &["static1"]),
        ("GET", "www.example.com", "/logo.PNG", &["static1"]),
        ("GET", "www.example.com", "/staticx", &["app1", "app2"]),
        ("GET", "api.example.com", "/", &["api1"]),
        ("GET", "Api.Example.com", "/v2/x", &["api1"]),
        ("GET", "www.example.com", "/api/v1/users", &["api1"]),
        // From 127.0.0.1 (LOCALHOST): the admin rule does not apply, /api/ does.
        ("GET", "www.example.com", "/api/v1/admin/x", &["api1"]),
        ("POST", "www.example.com", "/rpc/call", &["api1"]),
        ("GET", "www.example.com", "/rpc/call", &["app1", "app2"]),
        ("GET", "www.example.com", "/API/v1", &["app1", "app2"]),
    ];
    for &(method, host, path, want) in cases {
        let got = send(method, host, path);
        assert!(
            want.contains(&got.as_str()),
            "{method} {host}{path}: served by {got}, expected one of {want:?}"
        );
    }
    // Round robin over the two application servers.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        seen.insert(send("GET", "www.example.com", "/"));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // option forwardfor, inherited from defaults.
    let r = http_get_host(www, "www.example.com", "/headers");
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().contains("x-forwarded-for: 127.0.0.1\n")
            || r.body_str().contains("X-Forwarded-For: 127.0.0.1\n"),
        "{}",
        r.body_str()
    );
    // option httpchk: every server is checked at /health.
    for b in [&app1, &app2, &static1, &api1] {
        wait_for(
            &format!("a health check on {}", b.name()),
            Duration::from_secs(10),
            || b.health_checks() > 0,
        );
    }
}

/// HTTP test servers behind the TCP proxies: each answer names the server
/// (`x-backend`), which connection counts could not tell from the TCP checks.
#[test]
fn tcp_service_runs_source_affinity_and_round_robin() {
    let servers: Vec<TestBackend> = ["db1", "db2", "gw1", "gw2"]
        .iter()
        .map(|n| TestBackend::start(n))
        .collect();
    let text = render(
        &fixture("tcp-service.cfg"),
        &[
            ("DB_PORT", "0".into()),
            ("GW_PORT", "0".into()),
            ("DB1_ADDR", servers[0].addr().to_string()),
            ("DB2_ADDR", servers[1].addr().to_string()),
            ("GW1_ADDR", servers[2].addr().to_string()),
            ("GW2_ADDR", servers[3].addr().to_string()),
        ],
    );
    let lb = ringlb_cfg(&text);
    let served = |fe: &str| -> std::collections::BTreeSet<String> {
        (0..6)
            .map(|_| {
                let r = http_get(lb.addr(fe), "/");
                assert_eq!(r.status, 200, "{fe}: {r:?}");
                backend_of(&r)
            })
            .collect()
    };
    // balance source: one client address, one server.
    let db = served("db_in");
    assert_eq!(db.len(), 1, "{db:?}");
    // roundrobin: both.
    let gw = served("gateway");
    assert_eq!(gw.len(), 2, "{gw:?}");
}

/// `http-check send-state` changes what the server reads (a state header): refused
/// with its line until ringlb sends it, never ignored.
#[test]
fn http_check_options_ringlb_lacks_are_refused_with_their_line() {
    let cfg = common::haproxy::write_cfg(
        "defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    option httpchk GET /health\n    http-check send-state\n    \
         server s1 127.0.0.1:1 check\n",
    );
    let out = ringlb_check(cfg.path(), &[]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(":8: ")
            && out
                .stderr
                .contains("'http-check send-state' is not supported yet"),
        "{}",
        out.stderr
    );
}

/// `zero-warning`: a config that warns is refused, its warnings then errors with
/// their line; one that does not warn runs.
#[test]
fn zero_warning_refuses_a_config_that_warns() {
    let base = "global\n    zero-warning\ndefaults\n    mode http\n    timeout connect 1s\n    \
                timeout client 1s\n    timeout server 1s\n\
                frontend web\n    bind 127.0.0.1:0\n    default_backend app\n\
                backend app\n    server s1 127.0.0.1:1\n";
    let clean = common::haproxy::write_cfg(base);
    let out = ringlb_check(clean.path(), &[]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // `option tcp-smart-accept` draws a warning (line 13).
    let warned = common::haproxy::write_cfg(&format!("{base}    option tcp-smart-accept\n"));
    let out = ringlb_check(warned.path(), &[]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains(":13: "), "{}", out.stderr);
    assert!(out.stderr.contains(":2: 'zero-warning'"), "{}", out.stderr);
}

/// `balance` with no algorithm is round robin, as in HAProxy's parser, even over a
/// `balance source` from `defaults` (which would send one client to one server).
#[test]
fn balance_alone_is_round_robin_over_a_defaults_algorithm() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let text = format!(
        "defaults\n    mode http\n    balance source\n    timeout connect 5s\n    \
         timeout client 5s\n    timeout server 5s\n\
         frontend web\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance\n    server a {}\n    server b {}\n",
        a.addr(),
        b.addr()
    );
    let lb = ringlb_cfg(&text);
    let served: std::collections::BTreeSet<String> = (0..6)
        .map(|_| {
            let r = http_get(lb.addr("web"), "/");
            assert_eq!(r.status, 200, "{r:?}");
            backend_of(&r)
        })
        .collect();
    assert_eq!(served.len(), 2, "one client, both servers: {served:?}");
}

#[test]
fn listen_stats_serves_the_page_the_web_service_and_the_runtime_api() {
    let web1 = TestBackend::start("web1");
    let web2 = TestBackend::start("web2");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let text = render(
        &fixture("listen-stats.cfg"),
        &[
            ("STATS_SOCK", sock.display().to_string()),
            ("STATS_PORT", "0".into()),
            ("WEB_PORT", "0".into()),
            ("WEB1_ADDR", web1.addr().to_string()),
            ("WEB2_ADDR", web2.addr().to_string()),
        ],
    );
    let lb = ringlb_cfg(&text);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 200, "{r:?}");
        seen.insert(backend_of(&r));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // `stats uri /`: the page, in HTML and (`;csv`) as `show stat`'s CSV.
    let page = http_get(lb.addr("stats"), "/");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("content-type")
            .unwrap_or("")
            .starts_with("text/html"),
        "{page:?}"
    );
    assert!(page.body_str().contains("web1"), "{}", page.body_str());
    let csv = http_get(lb.addr("stats"), "/;csv");
    assert_eq!(csv.status, 200, "{csv:?}");
    assert!(
        csv.body_str().starts_with("# pxname,svname,"),
        "{}",
        csv.body_str()
    );
    let stat = cli(Path::new(&sock), "show stat");
    for row in ["web,web1,", "web,web2,", "web,BACKEND,", "stats,FRONTEND,"] {
        assert!(
            stat.lines().any(|l| l.starts_with(row)),
            "no {row} row:\n{stat}"
        );
    }
}

#[test]
fn defaults_inheritance_runs_with_each_profile() {
    let web1 = TestBackend::start("web1");
    let api1 = TestBackend::start("api1");
    let api2 = TestBackend::start("api2");
    let text = render(
        &fixture("defaults-inheritance.cfg"),
        &[
            ("PUBLIC_PORT", "0".into()),
            ("WEB1_ADDR", web1.addr().to_string()),
            ("API1_ADDR", api1.addr().to_string()),
            ("API2_ADDR", api2.addr().to_string()),
        ],
    );
    let lb = ringlb_cfg(&text);
    assert_eq!(lb.shards(), Some(2), "nbthread 2");
    let public = lb.addr("public");
    let r = http_get(public, "/headers");
    assert_eq!(backend_of(&r), "web1");
    // option forwardfor, from the frontend's profile "base".
    assert!(
        r.body_str()
            .to_ascii_lowercase()
            .contains("x-forwarded-for: 127.0.0.1\n"),
        "{}",
        r.body_str()
    );
    let mut tally = common::traffic::Tally::default();
    for _ in 0..30 {
        let r = http_get(public, "/api/items");
        assert_eq!(r.status, 200, "{r:?}");
        tally.add(&backend_of(&r));
    }
    // default-server weight 10 from "api", overridden to 20 on api2.
    assert_eq!(tally.total(), 30);
    assert!(
        tally.get("api2") > tally.get("api1") && tally.get("api1") > 0,
        "{tally:?}"
    );
    // option httpchk comes with the "api" profile only: web1 gets TCP checks.
    for b in [&api1, &api2] {
        wait_for(
            &format!("an HTTP check on {}", b.name()),
            Duration::from_secs(10),
            || b.health_checks() > 0,
        );
    }
    assert_eq!(web1.health_checks(), 0);
}

/// A valid config that the snippets of the verdict tests are appended to.
const BASE: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend web\n    bind 127.0.0.1:18480\n    default_backend app\n\nbackend app\n    server s1 127.0.0.1:18490\n\n";

/// `haproxy -c` and `ringlb -c` on `BASE` + each snippet must agree (both accept or
/// both refuse); every disagreement is listed at once as (snippet, haproxy's exit,
/// ringlb's exit).
fn assert_same_verdicts(snippets: &[&str]) {
    let mut diffs = Vec::new();
    for snippet in snippets {
        let cfg = common::haproxy::write_cfg(&format!("{BASE}{snippet}\n"));
        let hx = haproxy_check(cfg.path(), &[]);
        let rl = ringlb_check(cfg.path(), &[]);
        if (hx.code() == Some(0)) != (rl.code() == Some(0)) {
            diffs.push(format!(
                "{snippet:?}\n    haproxy -c: exit {:?} {}\n    ringlb -c:  exit {:?} {}",
                hx.code(),
                hx.stderr
                    .lines()
                    .find(|l| l.contains("ALERT"))
                    .unwrap_or(""),
                rl.code(),
                rl.stderr.lines().next().unwrap_or("")
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "ringlb -c and haproxy -c disagree on {} of {} configs (BASE + snippet):\n{}",
        diffs.len(),
        snippets.len(),
        diffs.join("\n")
    );
}

/// Values on server and proxy lines. Not compared, as documented deviations: a server
/// without a port (from_haproxy.rs: "needs an explicit port"), `10sec` (the grammar
/// module: "parse_time rejects characters after a valid unit"), two proxies binding one
/// address and a maxconn below nbthread (README: errors found at load).
#[test]
fn check_verdicts_on_values_match_haproxy() {
    assert_same_verdicts(&[
        "backend b2\n    server s1 127.0.0.1:1 weight 300",
        "backend b2\n    server s1 127.0.0.1:1 weight 0",
        "backend b2\n    server s1 127.0.0.1:99999",
        "backend b2\n    server s1 127.0.0.1:1 maxconn 0",
        "backend b2\n    server s1 127.0.0.1:1 check inter 500 fall 2 rise 1",
        "backend b2\n    server s1 127.0.0.1:1 check rise 0",
        "backend b2\n    server s1 127.0.0.1:1 check inter 0",
        "backend b2\n    server s1 127.0.0.1:1 check fall 0",
        "backend b2\n    server s1 127.0.0.1:1\n    server s1 127.0.0.1:2",
        "backend b2\n    retries 0\n    server s1 127.0.0.1:1",
        "backend b2\n    retries 101\n    server s1 127.0.0.1:1",
        "backend b2\n    balance random(3)\n    server s1 127.0.0.1:1",
        "backend b2\n    balance\n    server s1 127.0.0.1:1",
        "backend b2\n    balance url_param\n    server s1 127.0.0.1:1",
        "backend b2\n    hash-type sideways\n    server s1 127.0.0.1:1",
        "backend b2\n    timeout server -1s\n    server s1 127.0.0.1:1",
        "backend b2\n    http-check expect status 2xx\n    server s1 127.0.0.1:1",
        "frontend f2\n    bind 127.0.0.1:18481-18483\n    default_backend app",
        "frontend f2\n    bind 127.0.0.1:18485\n    default_backend nosuch",
        "frontend f2\n    bind 127.0.0.1:18485\n    mode ftp\n    default_backend app",
    ]);
}

/// ACL and condition syntax.
#[test]
fn check_verdicts_on_acl_syntax_match_haproxy() {
    assert_same_verdicts(&[
        "frontend f2\n    bind 127.0.0.1:18481\n    use_backend app if !{ hdr(host) -i a }",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl a path_beg /a\n    use_backend app if ! a",
        "frontend f2\n    bind 127.0.0.1:18481\n    use_backend app if { hdr(host) -i a } || { path_beg /x }",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl m method get\n    use_backend app if m",
        "frontend f2\n    bind 127.0.0.1:18481\n    use_backend app if nosuch_acl",
        "frontend f2\n    bind 127.0.0.1:18481\n    use_backend app if { path_beg /x",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl x path_reg ^(unclosed\n    use_backend app if x",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl x src 10.0.0.0/33\n    use_backend app if x",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl x hdr_sub(host) -- -cdn-\n    use_backend app if x",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl x hdr_sub(host) -cdn-\n    use_backend app if x",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl x path_beg /a\n    use_backend app if x or",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl x path_beg /a\n    use_backend app if or x",
        "frontend f2\n    bind 127.0.0.1:18481\n    acl x path_beg /a\n    use_backend app when x",
    ]);
}
