//! Differential tests of cookie persistence: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg (`cookie NAME insert indirect nocache httponly`, `rewrite`, `prefix`,
//! `dynamic` with `dynamic-cookie-key`, a server in maintenance) and the same requests
//! (no cookie, a valid one, one for a server that is down, a stale one, a POST, a
//! redirect, a server that sets the cookie itself) must reach the same server, give
//! the client the same `Set-Cookie` / `Cache-Control` headers, show the server the
//! same `Cookie`, and log the same termination state (`%tsc`, its cookie characters).

use crate::common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::twins::{Side, Srv, Twins};
use common::HttpClient;

/// What one request gave: status, server, the client's Set-Cookie and Cache-Control
/// values, and the Cookie header the server saw.
type Seen = (u16, String, Vec<String>, Vec<String>, Option<String>);

fn ask(s: &Side, fe: &str, method: &str, path: &str, extra: &str) -> Seen {
    let r = HttpClient::connect(s.addr(fe)).request(format!(
        "{method} {path} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n{extra}\r\n"
    ));
    let server = r.header("x-backend").unwrap_or("-").to_string();
    let cookie_seen = (server != "-")
        .then(|| s.backend(&server).last_request())
        .flatten()
        .and_then(|req| {
            req.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("cookie"))
                .map(|(_, v)| v.clone())
        });
    let vals = |n: &str| r.header_values(n).iter().map(|v| v.to_string()).collect();
    (
        r.status,
        server,
        vals("set-cookie"),
        vals("cache-control"),
        cookie_seen,
    )
}

/// The `%tsc` of each request line (`"GET /path HTTP/1.1"`) that `tag` logged.
fn log_states(log: &UdpSocket, tag: &str, paths: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    let mut found: Vec<Option<String>> = vec![None; paths.len()];
    while found.iter().any(Option::is_none) && Instant::now() < deadline {
        let Ok(n) = log.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let Some((head, rest)) = text.split_once("]: ") else {
            continue;
        };
        if !head.contains(&format!(" {tag}[")) {
            continue;
        }
        // CLIENT [DATE] FE BE/SRV TIMERS STATUS BYTES CC CS TSC ... "REQUEST"
        let f: Vec<&str> = rest.split_whitespace().collect();
        let Some(line) = rest.split('"').nth(1) else {
            continue;
        };
        for (i, p) in paths.iter().enumerate() {
            if line.split(' ').nth(1) == Some(p) && f.len() > 9 {
                found[i] = Some(format!("{} {}", f[3], f[9]));
            }
        }
    }
    found
        .into_iter()
        .map(|f| f.unwrap_or_else(|| "no log line".into()))
        .collect()
}

#[test]
fn insert_indirect_nocache_matches_haproxy() {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let global = format!("    log {} local0\n", log.local_addr().unwrap());
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    log global
    option httplog
    default_backend app

backend app
    balance roundrobin
    cookie SRV insert indirect nocache httponly domain .example.com attr SameSite=Lax
    server s1 "${S1}" cookie a
    server s2 "${S2}" cookie b
    server s3 "${S3}" cookie c disabled
"#;
    let t = Twins::start_with_global(
        &global,
        body,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("S3", Srv::Up("s3")),
        ],
    );
    let steps: [(&str, &str, &str); 15] = [
        ("GET", "/p1", ""),
        ("GET", "/p2", "Cookie: SRV=b\r\n"),
        ("GET", "/p3", "Cookie: other=1; SRV=b; more=2\r\n"),
        ("GET", "/p4", "Cookie: SRV=c\r\n"),
        ("GET", "/p5", "Cookie: SRV=stale\r\n"),
        ("POST", "/p6", ""),
        ("GET", "/status/302", ""),
        ("GET", "/p7", "x-respond-cache-control: private\r\n"),
        (
            "GET",
            "/p8",
            "Cookie: SRV=a\r\nx-respond-set-cookie: SRV=server; path=/x\r\n",
        ),
        ("GET", "/p9", "x-respond-set-cookie: app=1\r\n"),
        ("GET", "/p10", "Cookie: SRV=\r\n"),
        ("GET", "/p11", "x-respond-etag: \"v\"\r\n"),
        ("GET", "/p12", "x-respond-cache-control: max-age=60\r\n"),
        (
            "HEAD",
            "/p13",
            "x-respond-expires: Thu, 01 Jan 2037 00:00:00 GMT\r\n",
        ),
        (
            "GET",
            "/p14",
            "x-respond-cache-control: public, no-store\r\nx-respond-etag: \"v\"\r\n",
        ),
    ];
    let paths: Vec<&str> = steps.iter().map(|s| s.1).collect();
    t.same("requests with and without the persistence cookie", |s| {
        let seen: Vec<Seen> = steps
            .iter()
            .map(|(m, p, h)| ask(s, "web", m, p, h))
            .collect();
        let tag = if s.who == "haproxy" {
            "haproxy"
        } else {
            "ringlb"
        };
        (seen, log_states(&log, tag, &paths))
    });
}

#[test]
fn rewrite_prefix_and_dynamic_match_haproxy() {
    let body = r#"
frontend rw
    bind "127.0.0.1:${PORT1}"
    default_backend rewrite

frontend px
    bind "127.0.0.1:${PORT2}"
    default_backend prefix

frontend dy
    bind "127.0.0.1:${PORT3}"
    default_backend dyn

backend rewrite
    cookie SRV rewrite
    server r1 "${R1}" cookie one

backend prefix
    cookie JSESSIONID prefix
    server p1 "${P1}" cookie pre

backend dyn
    option persist
    cookie DC insert dynamic maxidle 30m maxlife 8h
    dynamic-cookie-key s3cr3t
    server d1 "${D1}"
"#;
    let t = Twins::start(
        body,
        &[("rw", "PORT1"), ("px", "PORT2"), ("dy", "PORT3")],
        &[
            ("R1", Srv::Up("r1")),
            ("P1", Srv::Up("p1")),
            ("D1", Srv::Up("d1")),
        ],
    );
    t.same("rewrite and prefix modes", |s| {
        vec![
            ask(
                s,
                "rw",
                "GET",
                "/",
                "x-respond-set-cookie: SRV=anything; path=/\r\n",
            ),
            ask(s, "rw", "GET", "/", "Cookie: SRV=one\r\n"),
            ask(s, "rw", "GET", "/", ""),
            ask(
                s,
                "px",
                "GET",
                "/",
                "x-respond-set-cookie: JSESSIONID=abc123; path=/\r\n",
            ),
            ask(
                s,
                "px",
                "GET",
                "/",
                "Cookie: JSESSIONID=pre~abc123; x=y\r\n",
            ),
            ask(s, "px", "GET", "/", "Cookie: JSESSIONID=abc123\r\n"),
        ]
    });
    // The dynamic value hashes the server's address, which differs between the
    // sides: each side's cookie must be the value computed for its own server, and
    // HAProxy's is checked against ringlb's formula.
    t.same("a dynamic cookie with dates", |s| {
        let d1 = s.backend("d1").addr();
        let want = ringlb::config::cookie::dynamic_value("s3cr3t", d1);
        let (status, server, set, cc, _) = ask(s, "dy", "GET", "/", "");
        let cookie = set.first().cloned().unwrap_or_default();
        let value = cookie
            .strip_prefix("DC=")
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .to_string();
        let mut parts = value.split('|');
        let server_part = parts.next().unwrap_or("").to_string();
        let dates: Vec<usize> = parts.map(str::len).collect();
        let attrs = cookie.split_once(';').map(|x| x.1.to_string());
        // The cookie brings the client back (its dates are fresh): no new Set-Cookie
        // within the same 4-second quantum is not guaranteed, so only the server is
        // compared.
        let back = ask(s, "dy", "GET", "/", &format!("Cookie: DC={value}\r\n"));
        (
            status,
            server,
            server_part == want,
            dates,
            attrs,
            cc,
            back.1,
            back.4 == Some(format!("DC={value}")),
        )
    });
}

#[test]
fn bad_cookie_lines_are_refused_with_their_line_as_haproxy_does() {
    use common::haproxy::{haproxy_check, ringlb_check, write_cfg};
    for bad in [
        "cookie",
        "cookie S insert rewrite",
        "cookie S insert bogus",
        "cookie S preserve",
        "cookie S insert maxidle",
        "cookie S insert domain",
        "cookie S insert attr a;b",
    ] {
        let text = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    {bad}\n    server s1 127.0.0.1:80 cookie a\n"
        );
        let cfg = write_cfg(&text);
        let hx = haproxy_check(cfg.path(), &[]);
        let lb = ringlb_check(cfg.path(), &[]);
        assert!(!hx.status.success(), "HAProxy accepted '{bad}'");
        assert!(!lb.status.success(), "ringlb accepted '{bad}'");
        let said = format!("{}{}", lb.stdout, lb.stderr);
        assert!(said.contains(":10:"), "'{bad}': no line 10 in {said}");
    }
}
