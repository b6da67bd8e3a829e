//! Routes: host and path-prefix rules, first match wins, the default backend catches
//! the rest; hosts compare case-insensitively and without their port.

use crate::common;

use common::*;

struct Setup {
    _backends: Vec<TestBackend>,
    lb: RingLb,
}

fn setup() -> Setup {
    let names = ["api_v1", "api", "static", "fallback"];
    let backends: Vec<TestBackend> = names.iter().map(|n| TestBackend::start(n)).collect();
    let mut cfg = String::from(
        r#"
[runtime]
shards = 2

[frontend.web]
bind = "127.0.0.1:0"
default_backend = "fallback"

[[frontend.web.route]]
host = "api.example.com"
path_prefix = "/api/"
backend = "api_v1"

[[frontend.web.route]]
host = "api.example.com"
backend = "api"

[[frontend.web.route]]
path_prefix = "/static/"
backend = "static"

[[frontend.web.route]]
path_prefix = "/api/"
backend = "api_v1"
"#,
    );
    for (n, b) in names.iter().zip(&backends) {
        cfg.push_str(&format!(
            "\n[backend.{n}]\n{}",
            servers_toml(n, &[b.addr()])
        ));
    }
    Setup {
        lb: RingLb::start(&cfg),
        _backends: backends,
    }
}

fn route(s: &Setup, host: &str, path: &str) -> String {
    let r = http_get_host(s.lb.addr("web"), host, path);
    assert_eq!(r.status, 200, "Host {host} {path}: {r:?}");
    r.header("x-backend").unwrap_or("").to_string()
}

#[test]
fn host_and_path_rule() {
    let s = setup();
    assert_eq!(route(&s, "api.example.com", "/api/users"), "api_v1");
}

#[test]
fn host_rule() {
    let s = setup();
    assert_eq!(route(&s, "api.example.com", "/"), "api");
    assert_eq!(route(&s, "api.example.com", "/apiary"), "api");
}

#[test]
fn path_prefix_rule() {
    let s = setup();
    assert_eq!(route(&s, "www.example.com", "/static/app.js"), "static");
    assert_eq!(route(&s, "www.example.com", "/static/"), "static");
    assert_eq!(route(&s, "www.example.com", "/api/x"), "api_v1");
}

#[test]
fn path_prefix_is_a_prefix_not_a_substring() {
    let s = setup();
    assert_eq!(route(&s, "www.example.com", "/static"), "fallback");
    assert_eq!(route(&s, "www.example.com", "/staticx/a"), "fallback");
    assert_eq!(route(&s, "www.example.com", "/x/static/a"), "fallback");
}

#[test]
fn first_matching_route_wins() {
    let s = setup();
    // Matches the host rule (2nd) and the /static/ rule (3rd): the earlier one wins.
    assert_eq!(route(&s, "api.example.com", "/static/a"), "api");
    // Matches rules 1, 2 and 4: rule 1 wins.
    assert_eq!(route(&s, "api.example.com", "/api/a"), "api_v1");
}

#[test]
fn default_backend_catches_the_rest() {
    let s = setup();
    assert_eq!(route(&s, "www.example.com", "/"), "fallback");
    assert_eq!(route(&s, "example.com", "/index.html"), "fallback");
}

#[test]
fn host_is_case_insensitive() {
    let s = setup();
    assert_eq!(route(&s, "API.Example.COM", "/"), "api");
    assert_eq!(route(&s, "API.EXAMPLE.COM", "/api/x"), "api_v1");
}

#[test]
fn port_in_host_is_ignored() {
    let s = setup();
    assert_eq!(route(&s, "api.example.com:8080", "/"), "api");
    assert_eq!(route(&s, "Api.Example.Com:443", "/api/v"), "api_v1");
}

#[test]
fn routes_apply_per_request_on_one_connection() {
    let s = setup();
    let mut c = HttpClient::connect(s.lb.addr("web"));
    let cases = [
        ("api.example.com", "/", "api"),
        ("www.example.com", "/static/a", "static"),
        ("api.example.com", "/api/a", "api_v1"),
        ("www.example.com", "/", "fallback"),
        ("api.example.com", "/", "api"),
    ];
    for (host, path, want) in cases {
        let r = c.get_host(host, path);
        assert_eq!(r.header("x-backend"), Some(want), "Host {host} {path}");
    }
}

#[test]
fn request_without_host_uses_path_rules_and_default() {
    let s = setup();
    for (path, want) in [("/static/x", "static"), ("/", "fallback")] {
        let r =
            HttpClient::connect(s.lb.addr("web")).request(format!("GET {path} HTTP/1.0\r\n\r\n"));
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("x-backend"), Some(want), "{path} without Host");
    }
}
