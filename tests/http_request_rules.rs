//! `http-request` rules from haproxy.cfg: header edits reach the server, deny / return /
//! redirect answer at once, and conditions choose which requests they apply to.

use crate::common;

use common::*;

fn start(rules: &str, b: &TestBackend) -> RingLb {
    let cfg = format!(
        "global\n    nbthread 2\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n    acl is_admin path_beg /admin\n{rules}    default_backend app\n\nbackend app\n    server s1 {}\n",
        b.addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let check = run(&["-c", "-f", &path], std::time::Duration::from_secs(10));
    assert_eq!(check.code(), Some(0), "{}", check.stderr);
    RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"))
}

#[test]
fn header_edits_reach_the_server() {
    let b = TestBackend::start("b");
    let lb = start(
        "    http-request set-header X-Env prod\n    http-request add-header X-Tag one\n    http-request add-header X-Tag two\n    http-request del-header X-Secret\n    http-request set-header X-Admin yes if is_admin\n",
        &b,
    );
    let mut c = HttpClient::connect(lb.addr("www"));
    let r = c.request("GET /headers HTTP/1.1\r\nHost: x\r\nX-Env: dev\r\nX-Secret: s3cr3t\r\n\r\n");
    let body = r.body_str().to_ascii_lowercase();
    assert!(body.contains("x-env: prod"), "{body}");
    assert!(!body.contains("x-env: dev"), "set-header replaces: {body}");
    assert!(
        body.contains("x-tag: one") && body.contains("x-tag: two"),
        "{body}"
    );
    assert!(!body.contains("x-secret"), "{body}");
    assert!(!body.contains("x-admin"), "condition not met: {body}");
    let r = c.request("GET /admin/headers HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let seen = b.last_headers();
    assert!(
        seen.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-admin") && v == "yes"),
        "{seen:?}"
    );
}

#[test]
fn deny_return_and_redirect_answer_at_once() {
    let b = TestBackend::start("b");
    let lb = start(
        "    http-request deny deny_status 429 if { path_beg /limited }\n    http-request deny if is_admin !{ src 10.0.0.0/8 }\n    http-request return status 200 content-type text/plain string pong if { path /ping }\n    http-request redirect location https://example.com/new code 301 if { path /old }\n",
        &b,
    );
    let addr = lb.addr("www");
    assert_eq!(http_get(addr, "/limited/x").status, 429);
    assert_eq!(http_get(addr, "/admin").status, 403);
    let r = http_get(addr, "/ping");
    assert_eq!((r.status, r.body_str().as_str()), (200, "pong"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = http_get(addr, "/old");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://example.com/new"));
    assert_eq!(b.requests(), 0, "none of these reached the server");
    assert_eq!(http_get(addr, "/other").status, 200);
    assert_eq!(b.requests(), 1);
}

#[test]
fn unsupported_rules_are_clear_errors() {
    let cfg = "defaults\n    mode http\nfrontend www\n    bind 127.0.0.1:0\n    http-request set-header X-Src %[src]\n    http-request auth realm x\n    http-request set-dst hdr(x-real-ip)\n    default_backend app\nbackend app\n    server s1 127.0.0.1:1\n";
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let out = run(
        &["-c", "-f", file.path().to_str().unwrap()],
        std::time::Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(1));
    assert!(
        !out.stderr.contains(":5:"),
        "%[src] is supported: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(":6:"),
        "http-request auth is supported: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(":7: 'http-request set-dst' is not supported"),
        "{}",
        out.stderr
    );
}

/// `timeout tarpit` sets how long `http-request tarpit` holds a request before its 500
/// (HAProxy 2.6 answers 500 there, 403 being `deny`'s). Without it HAProxy (and ringlb)
/// hold it for `timeout connect`, here 20 s: the answer within 10 s shows the 100 ms
/// tarpit timeout was read and used.
#[test]
fn tarpit_holds_the_request_for_timeout_tarpit() {
    let b = TestBackend::start("b");
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 20s\n    timeout client 30s\n    timeout server 30s\n    timeout tarpit 100ms\nfrontend www\n    bind 127.0.0.1:0\n    http-request tarpit if {{ path_beg /trap }}\n    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    ));
    let mut c = HttpClient::connect(lb.addr("www"));
    c.set_timeout(std::time::Duration::from_secs(10));
    let r = c
        .try_request("GET /trap HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("the tarpit answers after timeout tarpit (100ms), not timeout connect (20s)");
    assert_eq!(r.status, 500);
    assert_eq!(
        b.requests(),
        0,
        "a tarpitted request never reaches the server"
    );
    assert_eq!(http_get(lb.addr("www"), "/other").status, 200);
}

/// The `redirect` keyword (not an `http-request` action) answers as HAProxy does:
/// `prefix` keeps the path and, without `drop-query`, the query; `location` replaces the
/// whole target; conditions choose which requests it applies to.
#[test]
fn redirect_keyword_answers_as_http_request_redirect() {
    let b = TestBackend::start("b");
    let lb = start(
        "    redirect prefix https://new.example code 302 if { path_beg /moved }\n    redirect location /login drop-query set-cookie SEEN=1 if is_admin\n",
        &b,
    );
    let addr = lb.addr("www");
    let r = http_get(addr, "/moved/page?x=1");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://new.example/moved/page?x=1")
    );
    let r = http_get(addr, "/admin/panel?y=2");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/login"));
    assert!(
        r.header("set-cookie")
            .is_some_and(|c| c.starts_with("SEEN=1")),
        "{:?}",
        r.header("set-cookie")
    );
    assert_eq!(b.requests(), 0, "redirects never reach the server");
    assert_eq!(http_get(addr, "/other").status, 200);
    assert_eq!(b.requests(), 1);
}
