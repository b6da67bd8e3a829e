//! Differential tests of routing: Debian's HAProxy 2.6 and ringlb run the same
//! haproxy.cfg (`common::twins`), get the same requests, and must send each to the same
//! server (`x-backend`) with the same status: `use_backend` rules over ACLs on the Host
//! and other headers, the path and URL, the method and the source; anonymous ACLs,
//! `!`, `||`, predefined ACLs; no rule and no default; a listen section with a
//! `default_backend`. Balancing, health, retries, X-Forwarded-For and local replies
//! are compared in `haproxy_diff.rs`.

use crate::common;

use common::twins::{ask, get, Srv, Twins};

#[test]
fn acl_routing_on_host_path_url_method_and_headers() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    acl host_static  hdr(host) -i static.example.com
    acl host_api     hdr_beg(host) -i api.
    acl host_int     hdr_end(host) -i .internal
    acl host_reg     hdr_reg(host) ^img[0-9]+\.
    acl host_sub     hdr_sub(host) -i -- -cdn-
    acl path_static  path_beg /static/ /images/
    acl path_img     path_end -i .png .jpg
    acl path_api     path_beg /api/
    acl path_exact   path /exact
    acl path_sub     path_sub /sub/
    acl path_ver     path_reg ^/v[0-9]+/
    acl url_debug    url_sub debug=1
    acl url_u        url_beg /u/
    acl tag_canary   hdr(x-tag) -i canary
    acl tag_beta     hdr_beg(x-tag) beta
    acl is_post      method POST
    acl from_lo      src 127.0.0.0/8
    use_backend static if host_static || path_static
    use_backend static if path_img
    use_backend api    if host_api or path_api
    use_backend api    if is_post { path_beg /rpc }
    use_backend exact  if path_exact || path_sub || path_ver
    use_backend canary if tag_canary || tag_beta
    use_backend canary if url_debug
    use_backend exact  if url_u !is_post
    use_backend other  if host_int || host_reg || host_sub
    use_backend other  if METH_DELETE
    use_backend api    unless from_lo
    use_backend other  if { path -m beg /m/ } { hdr(x-b) -m found }
    default_backend app

backend app
    server app1 "${APP1}"

backend static
    server static1 "${STATIC1}"

backend api
    server api1 "${API1}"

backend exact
    server exact1 "${EXACT1}"

backend canary
    server canary1 "${CANARY1}"

backend other
    server other1 "${OTHER1}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[
            ("APP1", Srv::Up("app1")),
            ("STATIC1", Srv::Up("static1")),
            ("API1", Srv::Up("api1")),
            ("EXACT1", Srv::Up("exact1")),
            ("CANARY1", Srv::Up("canary1")),
            ("OTHER1", Srv::Up("other1")),
        ],
    );
    let requests: Vec<String> = vec![
        get("www.example.com", "/"),
        get("static.example.com", "/"),
        get("STATIC.Example.COM", "/x"),
        get("static.example.com:80", "/"),
        get("static.example.com.evil", "/"),
        get("api.example.com", "/"),
        get("API.example.com", "/v"),
        get("www.example.com", "/static/app.js"),
        get("www.example.com", "/static/app.js?v=2"),
        get("www.example.com", "/staticx"),
        get("www.example.com", "/images/"),
        get("www.example.com", "/a/b/logo.PNG"),
        get("www.example.com", "/logo.png?size=2"),
        get("www.example.com", "/api/v1/users"),
        get("www.example.com", "/API/v1/users"),
        get("www.example.com", "/exact"),
        get("www.example.com", "/exact/"),
        get("www.example.com", "/exact?q=1"),
        get("www.example.com", "/a/sub/b"),
        get("www.example.com", "/v2/items"),
        get("www.example.com", "/vx/items"),
        get("www.example.com", "/?debug=1"),
        get("www.example.com", "/u/7"),
        get("svc.internal", "/"),
        get("img12.example.com", "/"),
        get("www-cdn-1.example.com", "/"),
        get("www.example.com", "/m/1"),
        "GET /m/1 HTTP/1.1\r\nHost: www.example.com\r\nX-B: \r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Tag: Canary\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Tag: beta-2\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Tag: alpha, canary\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Tag: alpha\r\nX-Tag: canary\r\n\r\n".into(),
        "POST /rpc/call HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 0\r\n\r\n".into(),
        "POST /u/7 HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 0\r\n\r\n".into(),
        "DELETE /thing HTTP/1.1\r\nHost: www.example.com\r\n\r\n".into(),
        "GET /rpc/call HTTP/1.1\r\nHost: www.example.com\r\n\r\n".into(),
        "GET /api/x HTTP/1.0\r\n\r\n".into(),
        "GET / HTTP/1.0\r\nHost: api.example.com\r\n\r\n".into(),
    ];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// HAProxy's `dom` match takes `:` and `?` as delimiters too, so `hdr_dom(host)`
/// matches a Host with a port; and it ignores delimiters at the ends of a pattern.
#[test]
fn acl_hdr_dom_with_a_port_and_a_leading_dot() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    acl dom_org  hdr_dom(host) -i example.org
    acl dom_net  hdr_dom(host) -i .example.net
    use_backend dom if dom_org || dom_net
    default_backend app

backend app
    server app1 "${APP1}"

backend dom
    server dom1 "${DOM1}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("APP1", Srv::Up("app1")), ("DOM1", Srv::Up("dom1"))],
    );
    let requests = vec![
        get("example.org", "/"),
        get("www.example.org", "/"),
        get("example.org.evil.com", "/"),
        get("notexample.org", "/"),
        get("www.example.org:8080", "/"),
        get("example.net", "/"),
        get("www.example.net", "/"),
    ];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// An absolute-form target: `path` is the path part of the URI in HAProxy.
#[test]
fn acl_path_of_an_absolute_uri() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    use_backend api if { path_beg /api/ }
    use_backend exact if { url_beg http://www.example.com/x }
    default_backend app

backend app
    server app1 "${APP1}"

backend api
    server api1 "${API1}"

backend exact
    server exact1 "${EXACT1}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[
            ("APP1", Srv::Up("app1")),
            ("API1", Srv::Up("api1")),
            ("EXACT1", Srv::Up("exact1")),
        ],
    );
    let requests = vec![
        "GET http://www.example.com/api/v1 HTTP/1.1\r\nHost: www.example.com\r\n\r\n".to_string(),
        "GET http://www.example.com/x/1 HTTP/1.1\r\nHost: www.example.com\r\n\r\n".to_string(),
        "GET http://www.example.com HTTP/1.1\r\nHost: www.example.com\r\n\r\n".to_string(),
    ];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// No rule matches and there is no default_backend: 503 from both.
#[test]
fn no_backend_for_a_request_is_503() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    use_backend app if { path_beg /app/ }

backend app
    server app1 "${APP1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("APP1", Srv::Up("app1"))]);
    let requests = vec![get("h", "/app/1"), get("h", "/other")];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// The manual, `use_backend`: "If no default backend is defined, either the servers in
/// the same section are used (in case of a "listen" section) ...": a listen section's
/// own servers come after its `default_backend`.
#[test]
fn listen_section_with_a_default_backend() {
    let body = r#"
listen web
    bind "127.0.0.1:${PORT}"
    use_backend api if { path_beg /api/ }
    default_backend app
    server own1 "${OWN1}"

backend app
    server app1 "${APP1}"

backend api
    server api1 "${API1}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[
            ("OWN1", Srv::Up("own1")),
            ("APP1", Srv::Up("app1")),
            ("API1", Srv::Up("api1")),
        ],
    );
    let requests = vec![get("h", "/"), get("h", "/api/x")];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// `method` patterns: HAProxy knows the standard methods whatever their case in the
/// pattern; other methods match exactly.
#[test]
fn acl_method_patterns() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    acl m_get  method get
    acl m_put  method PUT
    acl m_odd  method PURGE
    use_backend one if m_get
    use_backend two if m_put || m_odd
    default_backend app

backend app
    server app1 "${APP1}"

backend one
    server one1 "${ONE1}"

backend two
    server two1 "${TWO1}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[
            ("APP1", Srv::Up("app1")),
            ("ONE1", Srv::Up("one1")),
            ("TWO1", Srv::Up("two1")),
        ],
    );
    let requests: Vec<String> = ["GET", "HEAD", "PUT", "PURGE", "purge", "POST"]
        .iter()
        .map(|m| format!("{m} / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"))
        .collect();
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// `disabled` on a backend stops it: a request routed there gets HAProxy's 503, others
/// are served. (`disabled` was once warned "ignored" and the backend served.)
#[test]
fn a_disabled_backend_answers_503_as_haproxy() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    use_backend off if { path_beg /off }
    default_backend app

backend app
    server app1 "${APP1}"

backend off
    disabled
    server off1 "${OFF1}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("APP1", Srv::Up("app1")), ("OFF1", Srv::Up("off1"))],
    );
    let requests: Vec<String> = vec![
        get("www.example.com", "/"),
        get("www.example.com", "/off/x"),
    ];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
    let (status, _) = ask(t.lb.addr("web"), &get("www.example.com", "/off/x"));
    assert_eq!(status, 503);
}

/// A `disabled` frontend is not started: its address refuses connections (HAProxy 2.6
/// does the same), while the other frontends serve; `enabled` undoes a `disabled` that
/// came from `defaults`.
#[test]
fn a_disabled_frontend_is_not_bound_and_enabled_undoes_defaults() {
    let b = common::TestBackend::start("b");
    // Held for the test: no other test takes the port; it refuses connections unless
    // something listens on it.
    let held = common::ReservedPort::new();
    let cfg = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    disabled\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend on\n    enabled\n    bind 127.0.0.1:0\n    default_backend app\nfrontend off\n    bind {}\n    default_backend app\nbackend app\n    enabled\n    server s1 {}\n",
        held.addr(),
        b.addr()
    );
    let lb = common::haproxy::ringlb_cfg(&cfg);
    assert_eq!(common::http_get(lb.addr("on"), "/").status, 200);
    assert!(lb.addrs("off").is_empty(), "{:?}", lb.stdout_lines());
    assert!(
        std::net::TcpStream::connect(held.addr()).is_err(),
        "the disabled frontend's address refuses connections"
    );
}

/// A frontend without a `bind` line is accepted with HAProxy's warning and listens
/// nowhere, while the others serve; a config where no frontend binds is refused
/// (HAProxy: "will not start (no listener)").
#[test]
fn a_frontend_without_bind_is_warned_and_listens_nowhere() {
    let b = common::TestBackend::start("b");
    let cfg = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend idle\n    default_backend app\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    );
    let lb = common::haproxy::ringlb_cfg(&cfg);
    assert_eq!(common::http_get(lb.addr("web"), "/").status, 200);
    assert!(lb.addrs("idle").is_empty());
    assert!(
        lb.stderr()
            .contains("frontend 'idle' has no 'bind' directive"),
        "{}",
        lb.stderr()
    );
    let none = "defaults\n    mode http\nfrontend idle\n    default_backend app\nbackend app\n    server s1 127.0.0.1:1\n";
    let file = common::haproxy::write_cfg(none);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringlb"))
        .args(["-c", "-f", file.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("nothing to listen on"), "{text}");
}
