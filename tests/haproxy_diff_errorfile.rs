//! Differential test of custom error responses: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg with `errorfile`, `errorfiles` + `http-errors`, `http-error` and
//! `errorloc303`, and must send the same bytes for a 503 (no server up), a 504
//! (server timeout), a 502 (garbage from the server), a 403 from `http-request deny`
//! (the backend's page once the backend was chosen, else the frontend's), a 429 from
//! `deny deny_status 429` (an errorfile with a length: the connection stays open), and
//! HAProxy's built-in 400 for a malformed request (its HTTP/1 layer never uses an
//! errorfile). Bad `errorfile` lines are refused by both, ringlb with their line.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::haproxy::{haproxy_check, ringlb_check, write_cfg};
use common::twins::{Srv, Twins};

/// How long a quiet connection is taken to have stayed open.
const QUIET: Duration = Duration::from_millis(2500);

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn custom_error_pages_match_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f503 = write(d, "503.http", "HTTP/1.0 503 Service Unavailable\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\nX-Custom: Yes\r\n\r\n<html><body><h1>maintenance</h1></body></html>\n");
    let fe403 = write(
        d,
        "fe403.http",
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nfrontend 403\n",
    );
    let be403 = write(
        d,
        "be403.http",
        "HTTP/1.1 403 Forbidden\nContent-Type: text/plain\n\nbackend 403\n",
    );
    let f400 = write(
        d,
        "400.http",
        "HTTP/1.1 400 Bad\r\ncontent-type: text/plain\r\n\r\ncustom 400\n",
    );
    let f429 = write(d, "429.http", "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: 10\r\nContent-Length: 5\r\n\r\nslow\n");
    let f504 = write(
        d,
        "504.http",
        "HTTP/1.1 504 Gateway Time-out\r\ncontent-type: text/plain\r\n\r\nthe server is slow\n",
    );
    let site403 = write(
        d,
        "site403.http",
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nsite 403\n",
    );
    let site503 = write(
        d,
        "site503.http",
        "HTTP/1.1 503 Down\r\nContent-Length: 0\r\n\r\n",
    );
    let body = format!(
        r#"
http-errors pages
    errorfile 403 {site403}
    errorfile 503 {site503}

frontend web
    bind "127.0.0.1:${{PORT}}"
    errorfile 503 {f503}
    errorfile 403 {fe403}
    errorfile 400 {f400}
    errorfile 429 {f429}
    http-request deny if {{ path /fe/deny }}
    http-request deny deny_status 429 if {{ path /fe/rl }}
    use_backend slow if {{ path_beg /sleep }}
    use_backend bad if {{ path_beg /garbage }}
    use_backend site if {{ path_beg /site }}
    use_backend pages if {{ path_beg /pages }}
    default_backend dead
    retries 0

backend dead
    retries 0
    server s1 "${{DEAD}}"

backend slow
    timeout server 300ms
    errorfile 504 {f504}
    errorfile 403 {be403}
    http-request deny if {{ path /sleep/deny }}
    server s1 "${{S1}}"

backend bad
    http-error status 502 content-type text/plain string "bad upstream" hdr x-why %[path]
    server s1 "${{S1}}"

backend site
    retries 0
    errorfiles pages
    errorloc303 503 /maintenance
    http-request deny if {{ path /site/deny }}
    server s1 "${{DEAD2}}"

backend pages
    retries 0
    errorfiles pages 503
    http-request deny if {{ path /pages/deny }}
    server s1 "${{DEAD3}}"
"#
    );
    let t = Twins::start(
        &body,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("DEAD", Srv::Dead),
            ("DEAD2", Srv::Dead),
            ("DEAD3", Srv::Dead),
        ],
    );
    let get = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: h\r\n\r\n");
    let requests = vec![
        // 503, no server up: the frontend's HTTP/1.0 errorfile, as written.
        get("/"),
        // deny in the frontend: its 403 page (no length: connection: close).
        get("/fe/deny"),
        // deny_status 429: a page with a length; the connection stays open.
        format!("{}{}", get("/fe/rl"), get("/fe/rl")),
        // 504 from the backend's page; deny there: the backend's 403 wins.
        get("/sleep/2000"),
        get("/sleep/deny"),
        // 502 with an http-error reply built per request.
        get("/garbage"),
        // errorfiles: the section's 403; errorloc303 overrides its 503.
        get("/site/deny"),
        get("/site/x"),
        // errorfiles NAME 503: only that code (the 403 is the frontend's).
        get("/pages/deny"),
        get("/pages/x"),
        // A malformed request: HAProxy's built-in 400, never the errorfile.
        "GET / HTTP/1.1\r\nHost: h\r\nbad header\r\n\r\n".to_string(),
    ];
    t.same_all_at_once(&requests, |s, raw| {
        common::client::raw_answers(s.addr("web"), raw, QUIET)
    });
}

#[test]
fn bad_errorfile_lines_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = write(d, "ok.http", "HTTP/1.1 503 X\r\nContent-Length: 0\r\n\r\n");
    let badlen = write(
        d,
        "badlen.http",
        "HTTP/1.1 503 X\r\ncontent-length: 10\r\n\r\nabc",
    );
    let garbage = write(d, "garbage.http", "garbage\n");
    let missing = d.join("missing.http").display().to_string();
    for bad in [
        format!("errorfile 503 {missing}"),
        format!("errorfile 503 {badlen}"),
        format!("errorfile 503 {garbage}"),
        format!("errorfile 999 {ok}"),
        format!("errorfile 431 {ok}"),
        "errorfile 503".to_string(),
        "errorfiles nosuchsection".to_string(),
        "errorloc 999 /x".to_string(),
        "http-error status 999 string x content-type text/plain".to_string(),
    ] {
        let text = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend web\n    bind 127.0.0.1:0\n    {bad}\n    default_backend app\nbackend app\n    server s1 127.0.0.1:80\n"
        );
        let cfg = write_cfg(&text);
        assert!(
            !haproxy_check(cfg.path(), &[]).status.success(),
            "HAProxy accepted '{bad}'"
        );
        let lb = ringlb_check(cfg.path(), &[]);
        let said = format!("{}{}", lb.stdout, lb.stderr);
        assert!(!lb.status.success(), "ringlb accepted '{bad}'");
        assert!(said.contains(".cfg:8:"), "'{bad}': no line 8 in {said}");
    }
}
