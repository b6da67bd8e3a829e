//! Differential tests: Debian's HAProxy 2.6 and ringlb run the same haproxy.cfg text
//! (each on its own port, stats socket and set of test servers with the same names),
//! get the same requests, and must answer alike: status codes, the server that
//! answered (`x-backend`), the X-Forwarded-For values the server saw, and the runtime
//! API's answers (`show stat` header, rows and `status` column, `show servers state`
//! header, error lines). Every config uses `nbthread 1`, so that round robin walks one
//! list in both. A mismatch panics with the config, the request and both answers.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::haproxy::{cli, render, ringlb_cfg, HaProxy};
use common::traffic::backend_of;
use common::*;

/// What every diff config starts with: one thread, the stats socket, short timeouts.
const HEAD: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin

defaults
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
"#;

/// A server of a diff config: a `TestBackend` of that name on each side, or an
/// address where nothing listens.
#[derive(Clone, Copy)]
enum Srv {
    Up(&'static str),
    Dead,
}

/// One of the two balancers under test, with its own servers.
struct Side {
    who: &'static str,
    frontends: BTreeMap<String, SocketAddr>,
    sock: PathBuf,
    backends: Vec<TestBackend>,
}

impl Side {
    fn addr(&self, frontend: &str) -> SocketAddr {
        self.frontends[frontend]
    }

    fn backend(&self, name: &str) -> &TestBackend {
        self.backends
            .iter()
            .find(|b| b.name() == name)
            .unwrap_or_else(|| panic!("no test server {name}"))
    }

    fn cli(&self, line: &str) -> String {
        cli(&self.sock, line)
    }
}

/// HAProxy and ringlb on the same config.
struct Twins {
    config: String,
    hx: Side,
    lb: Side,
    _haproxy: HaProxy,
    _ringlb: common::RingLb,
    _dir: tempfile::TempDir,
}

impl Twins {
    /// Starts both on `HEAD` + `body`, where each frontend of `frontends` binds
    /// `"127.0.0.1:${VAR}"` (name, VAR) and each server address is `"${VAR}"`.
    fn start(body: &str, frontends: &[(&str, &str)], servers: &[(&str, Srv)]) -> Twins {
        let config = format!("{HEAD}\n{body}");
        let dir = tempfile::tempdir().unwrap();
        let mut sides = Vec::new();
        for who in ["haproxy", "ringlb"] {
            let sock = dir.path().join(format!("{who}.sock"));
            let mut vars: Vec<(&str, String)> = vec![("SOCK", sock.display().to_string())];
            let mut backends = Vec::new();
            for &(var, srv) in servers {
                let addr = match srv {
                    Srv::Up(name) => {
                        let b = TestBackend::start(name);
                        let a = b.addr();
                        backends.push(b);
                        a
                    }
                    Srv::Dead => dead_addr(),
                };
                vars.push((var, addr.to_string()));
            }
            let mut ports = BTreeMap::new();
            for &(fe, var) in frontends {
                let port = if who == "haproxy" { free_port() } else { 0 };
                ports.insert(fe.to_string(), port);
                vars.push((var, port.to_string()));
            }
            sides.push((who, render(&config, &vars), sock, backends, ports));
        }
        let (lb_who, lb_text, lb_sock, lb_backends, _) = sides.pop().unwrap();
        let (hx_who, hx_text, hx_sock, hx_backends, hx_ports) = sides.pop().unwrap();
        let hx_addrs: BTreeMap<String, SocketAddr> = hx_ports
            .iter()
            .map(|(fe, p)| (fe.clone(), SocketAddr::from(([127, 0, 0, 1], *p))))
            .collect();
        let waits: Vec<SocketAddr> = hx_addrs.values().copied().collect();
        let haproxy = HaProxy::start(&hx_text, &waits, Some(&hx_sock));
        let ringlb = ringlb_cfg(&lb_text);
        let lb_addrs = frontends
            .iter()
            .map(|&(fe, _)| (fe.to_string(), ringlb.addr(fe)))
            .collect();
        Twins {
            config,
            hx: Side {
                who: hx_who,
                frontends: hx_addrs,
                sock: hx_sock,
                backends: hx_backends,
            },
            lb: Side {
                who: lb_who,
                frontends: lb_addrs,
                sock: lb_sock,
                backends: lb_backends,
            },
            _haproxy: haproxy,
            _ringlb: ringlb,
            _dir: dir,
        }
    }

    /// `f` on HAProxy, then on ringlb.
    fn both<T>(&self, f: impl Fn(&Side) -> T) -> (T, T) {
        (f(&self.hx), f(&self.lb))
    }

    /// The panic message for answers that differ.
    fn differs(&self, what: &str, hx: &dyn Debug, lb: &dyn Debug) -> String {
        format!(
            "ringlb differs from HAProxy 2.6\n--- config ---\n{}\n--- request ---\n{what}\n--- haproxy ---\n{hx:#?}\n--- ringlb ---\n{lb:#?}",
            self.config
        )
    }

    /// Asserts that `f` gives the same answer on both sides.
    fn same<T: PartialEq + Debug>(&self, what: &str, f: impl Fn(&Side) -> T) -> T {
        let (a, b) = self.both(f);
        assert!(a == b, "{}", self.differs(what, &a, &b));
        a
    }

    /// Runs every request on both sides and asserts every answer is the same; all
    /// differences are listed at once.
    fn same_all<R: Debug, T: PartialEq + Debug>(&self, requests: &[R], f: impl Fn(&Side, &R) -> T) {
        let mut diffs = Vec::new();
        for r in requests {
            let (a, b) = self.both(|s| f(s, r));
            if a != b {
                let mut shown = format!("{r:?}");
                if shown.len() > 200 {
                    shown = format!("{}... ({} bytes)", &shown[..160], shown.len());
                }
                diffs.push(format!("{shown}\n    haproxy: {a:?}\n    ringlb:  {b:?}"));
            }
        }
        assert!(
            diffs.is_empty(),
            "ringlb differs from HAProxy 2.6 on {} of {} requests\n--- config ---\n{}\n--- differences ---\n{}",
            diffs.len(),
            requests.len(),
            self.config,
            diffs.join("\n")
        );
    }

    /// Polls until `cond` holds on both sides; panics after `timeout` with both
    /// `show stat` tables.
    fn wait_both(&self, what: &str, timeout: Duration, cond: impl Fn(&Side) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let (a, b) = self.both(&cond);
            if a && b {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} (haproxy: {a}, ringlb: {b})\n--- haproxy show stat ---\n{}\n--- ringlb show stat ---\n{}",
                    self.hx.cli("show stat"),
                    self.lb.cli("show stat")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One request on a fresh connection: (status, the server that answered or "-").
fn ask(addr: SocketAddr, raw: &str) -> (u16, String) {
    match HttpClient::connect(addr).try_request(raw) {
        Ok(r) => (r.status, r.header("x-backend").unwrap_or("-").to_string()),
        Err(e) => (0, format!("no response: {e}")),
    }
}

fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

/// `show stat` as rows of named columns.
fn stat_rows(csv: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| panic!("no `# ` header in show stat: {csv:?}"))
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

/// (pxname, svname, the chosen columns) of every `show stat` row, in order.
fn stat_view(s: &Side, columns: &[&str]) -> Vec<(String, String, Vec<String>)> {
    stat_rows(&s.cli("show stat"))
        .into_iter()
        .map(|r| {
            let get = |c: &str| r.get(c).cloned().unwrap_or_default();
            (
                get("pxname"),
                get("svname"),
                columns.iter().map(|c| get(c)).collect(),
            )
        })
        .collect()
}

/// The `status` column of server `sv` in `show stat`.
fn status_of(s: &Side, px: &str, sv: &str) -> String {
    stat_rows(&s.cli("show stat"))
        .into_iter()
        .find(|r| r["pxname"] == px && r["svname"] == sv)
        .map(|r| r["status"].clone())
        .unwrap_or_else(|| panic!("{}: no {px}/{sv} row", s.who))
}

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

#[test]
fn roundrobin_over_two_servers_takes_turns_in_the_same_order() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    balance roundrobin
    server s1 "${S1}"
    server s2 "${S2}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    t.same("6 GETs, each on a new connection", |s| {
        (0..6)
            .map(|_| ask(s.addr("web"), &get("h", "/")).1)
            .collect::<Vec<_>>()
    });
    t.same("6 GETs on one keep-alive connection", |s| {
        let mut c = HttpClient::connect(s.addr("web"));
        (0..6).map(|_| backend_of(&c.get("/"))).collect::<Vec<_>>()
    });
}

#[test]
fn weighted_roundrobin_gives_the_same_shares() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    balance roundrobin
    server s1 "${S1}" weight 3
    server s2 "${S2}" weight 1
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    t.same(
        "8 GETs (two turns of weights 3:1): requests per server",
        |s| {
            let mut tally = BTreeMap::new();
            for _ in 0..8 {
                *tally
                    .entry(ask(s.addr("web"), &get("h", "/")).1)
                    .or_insert(0) += 1;
            }
            tally
        },
    );
}

#[test]
fn backup_servers_take_over_when_the_primary_is_down() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

frontend all
    bind "127.0.0.1:${PORT2}"
    default_backend app_all

backend app
    option httpchk GET /health
    default-server inter 100ms fall 2 rise 2
    server s1 "${S1}" check
    server b1 "${B1}" check backup
    server b2 "${B2}" check backup

backend app_all
    option allbackups
    server d1 "${D1}" check inter 100ms fall 1
    server b3 "${B3}" backup
    server b4 "${B4}" backup
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT"), ("all", "PORT2")],
        &[
            ("S1", Srv::Up("s1")),
            ("B1", Srv::Up("b1")),
            ("B2", Srv::Up("b2")),
            ("D1", Srv::Dead),
            ("B3", Srv::Up("b3")),
            ("B4", Srv::Up("b4")),
        ],
    );
    let four = |s: &Side, fe: &str| -> Vec<(u16, String)> {
        (0..4).map(|_| ask(s.addr(fe), &get("h", "/"))).collect()
    };
    t.same("4 GETs while s1 is up", |s| four(s, "web"));

    t.both(|s| s.backend("s1").set_health_status(503));
    t.wait_both("s1 DOWN", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "DOWN"
    });
    t.same("4 GETs while s1 is down: the first backup only", |s| {
        four(s, "web")
    });

    t.wait_both("d1 DOWN", Duration::from_secs(10), |s| {
        status_of(s, "app_all", "d1") == "DOWN"
    });
    t.same(
        "4 GETs with option allbackups, the primary down: every backup",
        |s| four(s, "all"),
    );

    t.both(|s| s.backend("s1").set_health_status(200));
    t.wait_both("s1 UP again", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "UP"
    });
    t.same("4 GETs once s1 is back", |s| four(s, "web"));
}

#[test]
fn all_servers_dead_is_503() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

frontend checked
    bind "127.0.0.1:${PORT2}"
    default_backend app_checked

backend app
    retries 1
    server s1 "${D1}"
    server s2 "${D2}"

backend app_checked
    server s3 "${D3}" check inter 100ms fall 1
    server s4 "${D4}" check inter 100ms fall 1
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT"), ("checked", "PORT2")],
        &[
            ("D1", Srv::Dead),
            ("D2", Srv::Dead),
            ("D3", Srv::Dead),
            ("D4", Srv::Dead),
        ],
    );
    t.same("GET / with every server refusing connections", |s| {
        (0..2)
            .map(|_| ask(s.addr("web"), &get("h", "/")).0)
            .collect::<Vec<_>>()
    });
    t.wait_both("every checked server DOWN", Duration::from_secs(10), |s| {
        status_of(s, "app_checked", "BACKEND") == "DOWN"
    });
    t.same("GET / with every server DOWN by its check", |s| {
        ask(s.addr("checked"), &get("h", "/")).0
    });
}

#[test]
fn a_failing_http_check_takes_a_server_out_and_back() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    option httpchk GET /health
    http-check expect status 200
    server s1 "${S1}" check inter 100ms fall 2 rise 2
    server s2 "${S2}" check inter 100ms fall 2 rise 2
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    let cols = ["status", "check_status", "check_code"];
    t.wait_both("both servers checked", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "UP"
            && stat_view(s, &cols)
                .iter()
                .all(|r| r.1 == "BACKEND" || r.1 == "FRONTEND" || r.2[1] == "L7OK")
    });
    t.same("show stat while both pass", |s| stat_view(s, &cols));

    t.both(|s| s.backend("s1").set_health_status(500));
    t.wait_both("s1 DOWN", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "DOWN"
    });
    t.same("show stat once s1's check answers 500", |s| {
        stat_view(s, &cols)
    });
    t.same("6 GETs while s1 is down", |s| {
        (0..6)
            .map(|_| ask(s.addr("web"), &get("h", "/")))
            .collect::<Vec<_>>()
    });

    t.both(|s| s.backend("s1").set_health_status(200));
    t.wait_both("s1 UP again", Duration::from_secs(10), |s| {
        status_of(s, "app", "s1") == "UP"
    });
    t.same("show stat once s1 passes again", |s| {
        stat_view(s, &["status", "check_status"])
    });
}

/// The X-Forwarded-For values the server saw for a request.
fn xff_seen(
    s: &Side,
    server: &str,
    addr: SocketAddr,
    local: Option<IpAddr>,
    raw: &str,
) -> Vec<String> {
    let mut c = match local {
        Some(ip) => HttpClient::connect_from(addr, ip),
        None => HttpClient::connect(addr),
    };
    let r = c.request(raw);
    assert_eq!(r.status, 200, "{}: {r:?}", s.who);
    s.backend(server)
        .last_headers()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn x_forwarded_for_values_match() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    option forwardfor
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let lo7: IpAddr = "127.0.0.7".parse().unwrap();
    let cases: Vec<(Option<IpAddr>, String)> = vec![
        (None, get("h", "/")),
        (Some(lo7), get("h", "/")),
        (
            None,
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n".into(),
        ),
        (
            Some(lo7),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.1.1.1, 10.2.2.2\r\nX-Forwarded-For: 10.3.3.3\r\n\r\n"
                .into(),
        ),
        (None, "GET / HTTP/1.0\r\n\r\n".into()),
    ];
    t.same_all(&cases, |s, (local, raw)| {
        xff_seen(s, "s1", s.addr("web"), *local, raw)
    });
}

/// The manual: "This option may be specified either in the frontend or in the
/// backend. If at least one of them uses it, the header will be added."
#[test]
fn x_forwarded_for_from_the_backend_only() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    use_backend with_xff if { path_beg /xff/ }
    default_backend app

backend app
    server s1 "${S1}"

backend with_xff
    option forwardfor
    server s2 "${S2}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    t.same("GET / (backend without forwardfor)", |s| {
        xff_seen(s, "s1", s.addr("web"), None, &get("h", "/"))
    });
    t.same("GET /xff/ (option forwardfor in the backend only)", |s| {
        xff_seen(s, "s2", s.addr("web"), None, &get("h", "/xff/"))
    });
}

/// A backend with a server of each kind `show stat` tells apart: UP (checked), DOWN
/// (its check fails), `no check`, MAINT (set by the operator) and MAINT (`disabled`).
const STATES: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    default-server inter 100ms fall 1 rise 1
    server up1 "${UP1}" check
    server dead1 "${D1}" check
    server nochk "${UP2}"
    server maint1 "${UP3}" check
    server off1 "${UP4}" disabled

backend other
    balance leastconn
    server o1 "${UP5}"
"#;

fn states() -> Twins {
    let t = Twins::start(
        STATES,
        &[("web", "PORT")],
        &[
            ("UP1", Srv::Up("up1")),
            ("D1", Srv::Dead),
            ("UP2", Srv::Up("nochk")),
            ("UP3", Srv::Up("maint1")),
            ("UP4", Srv::Up("off1")),
            ("UP5", Srv::Up("o1")),
        ],
    );
    let (a, b) = t.both(|s| s.cli("set server app/maint1 state maint"));
    assert_eq!((a.as_str(), b.as_str()), ("\n", "\n"));
    t.wait_both(
        "dead1 DOWN and maint1 MAINT",
        Duration::from_secs(10),
        |s| status_of(s, "app", "dead1") == "DOWN" && status_of(s, "app", "maint1") == "MAINT",
    );
    t
}

#[test]
fn runtime_api_show_stat_header_rows_and_status() {
    let t = states();
    t.same("the `show stat` header line", |s| {
        s.cli("show stat").lines().next().unwrap_or("").to_string()
    });
    t.same(
        "show stat: pxname, svname and status of every row, in order",
        |s| stat_view(s, &["status"]),
    );
}

#[test]
fn runtime_api_show_servers_state_header() {
    let t = states();
    t.same("the `show servers state` header (first two lines)", |s| {
        s.cli("show servers state")
            .lines()
            .take(2)
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
}

#[test]
fn runtime_api_show_servers_state_rows() {
    let t = states();
    t.same(
        "show servers state: be_name srv_name srv_op_state srv_admin_state srv_uweight srv_iweight",
        |s| {
            s.cli("show servers state")
                .lines()
                .skip(2)
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let w: Vec<&str> = l.split(' ').collect();
                    [1, 3, 5, 6, 7, 8]
                        .iter()
                        .map(|&i| w.get(i).copied().unwrap_or("?"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
        },
    );
}

#[test]
fn runtime_api_error_lines() {
    let t = states();
    let commands = [
        "set server app/zz state ready",
        "set server nope/up1 state ready",
        "set server app/up1 state foo",
        "set server app/up1 weight 300",
        "set weight app/up1",
        "get weight app/up1",
        "get weight app/zz",
        "set maxconn server app/up1 x",
        "show servers state nope",
        "disable server app/zz",
        "enable server nope/x",
    ];
    t.same_all(&commands, |s, cmd| s.cli(cmd));
}

#[test]
fn runtime_api_state_changes() {
    let t = states();
    let commands = [
        "set server app/maint1 state ready",
        "set server app/up1 state drain",
        "set server app/up1 weight 50%",
        "get weight app/up1",
        "set weight app/nochk 0",
        "get weight app/nochk",
        "disable server app/nochk",
        "enable server app/nochk",
    ];
    t.same_all(&commands, |s, cmd| s.cli(cmd));
    t.wait_both("maint1 back UP", Duration::from_secs(10), |s| {
        status_of(s, "app", "maint1") == "UP"
    });
    t.same("show stat status and weight after the changes", |s| {
        stat_view(s, &["status", "weight"])
    });
}

#[test]
fn other_algorithms_pick_the_same_servers() {
    let body = r#"
frontend rr
    bind "127.0.0.1:${P1}"
    default_backend static

frontend lc
    bind "127.0.0.1:${P2}"
    default_backend leastconn

frontend first
    bind "127.0.0.1:${P3}"
    default_backend first

backend static
    balance static-rr
    server s1 "${S1}"
    server s2 "${S2}"
    server s3 "${S3}"

backend leastconn
    balance leastconn
    server l1 "${L1}"
    server l2 "${L2}"
    server l3 "${L3}"

backend first
    balance first
    server f1 "${F1}" maxconn 1
    server f2 "${F2}" maxconn 1
"#;
    let t = Twins::start(
        body,
        &[("rr", "P1"), ("lc", "P2"), ("first", "P3")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("S3", Srv::Up("s3")),
            ("L1", Srv::Up("l1")),
            ("L2", Srv::Up("l2")),
            ("L3", Srv::Up("l3")),
            ("F1", Srv::Up("f1")),
            ("F2", Srv::Up("f2")),
        ],
    );
    for fe in ["rr", "lc", "first"] {
        t.same(&format!("6 GETs in a row to frontend {fe}"), |s| {
            (0..6)
                .map(|_| ask(s.addr(fe), &get("h", "/")).1)
                .collect::<Vec<_>>()
        });
    }
}

#[test]
fn weighted_roundrobin_order() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app
    balance roundrobin
    server s1 "${S1}" weight 3
    server s2 "${S2}" weight 1
    server s3 "${S3}" weight 2
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[
            ("S1", Srv::Up("s1")),
            ("S2", Srv::Up("s2")),
            ("S3", Srv::Up("s3")),
        ],
    );
    t.same("12 GETs (two turns of weights 3:1:2), in order", |s| {
        (0..12)
            .map(|_| ask(s.addr("web"), &get("h", "/")).1)
            .collect::<Vec<_>>()
    });
}

#[test]
fn local_replies_have_the_same_status() {
    let body = r#"
defaults short
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 400ms
    timeout http-request 400ms

frontend web from short
    bind "127.0.0.1:${PORT}"
    default_backend app

backend app from short
    server s1 "${S1}"
"#;
    let t = Twins::start(body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let big = "a".repeat(20_000);
    let requests: Vec<String> = vec![
        get("h", "/"),
        get("h", "/garbage"),
        get("h", "/close"),
        get("h", "/sleep/1500"),
        get("h", "/status/503"),
        "NOT HTTP AT ALL\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx".into(),
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n".into(),
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
        format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n"),
        // An incomplete head: `timeout http-request`.
        "GET / HTTP/1.1\r\nHost: h\r\n".into(),
        "GET / HTTP/1.1\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".into(),
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: h\r\nX-Bad Header: 1\r\n\r\n".into(),
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n".into(),
        "GET /\r\n\r\n".into(),
    ];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw).0);
}
