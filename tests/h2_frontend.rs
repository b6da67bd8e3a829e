//! HTTP/2 to clients on `bind ... proto h2` (cleartext, prior knowledge), translated
//! to HTTP/1.1 for the servers: real clients (curl, h2load, nghttp) against the real
//! binary and real backends. Routing and rules apply to a stream as to an HTTP/1
//! request (the same host and path ACLs send both to the same backend), the server
//! sees the request as an HTTP/1.1 client would send it (`:authority` as Host, cookie
//! crumbs joined), bodies pass whole in both directions under flow control, the log
//! says `HTTP/2.0`, and an HTTP/1 client on the frontend's other bind is unaffected.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::haproxy::ringlb_cfg;
use common::*;
use sha2::{Digest, Sha256};

struct Setup {
    lb: RingLb,
    app: TestBackend,
    api: TestBackend,
    stat: TestBackend,
}

impl Setup {
    /// The `proto h2` bind.
    fn h2(&self) -> std::net::SocketAddr {
        self.lb.addrs("web")[0]
    }

    /// The frontend's plain HTTP/1 bind.
    fn h1(&self) -> std::net::SocketAddr {
        self.lb.addrs("web")[1]
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.h2())
    }
}

fn setup(global: &str) -> Setup {
    let app = TestBackend::start("app");
    let api = TestBackend::start("api");
    let stat = TestBackend::start("static");
    let cfg = format!(
        "global\n    nbthread 2\n    log stdout format raw local0\n{global}\n\
defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\n\
frontend web\n    bind 127.0.0.1:0 proto h2\n    bind 127.0.0.1:0\n    option forwardfor\n\
    acl is_api hdr(host) -i api.test\n    acl is_static path_beg /static/\n\
    http-request set-header x-proto-seen %[req.hdr(host)]\n\
    http-request set-header x-ver %[req.ver]\n\
    use_backend api if is_api\n    use_backend static if is_static\n    default_backend app\n\n\
backend app\n    server s1 {}\n\nbackend api\n    server s1 {}\n\nbackend static\n    server s1 {}\n",
        app.addr(),
        api.addr(),
        stat.addr()
    );
    Setup {
        lb: ringlb_cfg(&cfg),
        app,
        api,
        stat,
    }
}

/// curl with `args`, HTTP/2 with prior knowledge; its stdout (the body) and exit code.
fn curl(args: &[&str]) -> (Vec<u8>, Option<i32>, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--http2-prior-knowledge", "--max-time", "60"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    (
        out.stdout,
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `x-backend` header of an HTTP/2 GET with `:authority` `host`, and the
/// protocol curl used (`-w %{http_version}`).
fn h2_backend(s: &Setup, host: &str, path: &str) -> (String, String) {
    let url = s.url(path);
    // curl sends a Host header as `:authority` over HTTP/2.
    let host_header = format!("host: {host}");
    let (out, code, err) = curl(&[
        "-H",
        &host_header,
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-w",
        "proto=%{http_version}\n",
        &url,
    ]);
    assert_eq!(code, Some(0), "curl {url}: {err}");
    let text = String::from_utf8_lossy(&out).into_owned();
    let header = text
        .lines()
        .find_map(|l| l.strip_prefix("x-backend: "))
        .unwrap_or("")
        .trim()
        .to_string();
    let proto = text
        .lines()
        .find_map(|l| l.strip_prefix("proto="))
        .unwrap_or("")
        .to_string();
    (header, proto)
}

#[test]
fn streams_are_routed_by_host_and_path_as_http1_requests_are() {
    let s = setup("");
    for (host, path, want) in [
        ("api.test", "/x", "api"),
        ("www.test", "/static/a.css", "static"),
        ("www.test", "/", "app"),
    ] {
        let (got, proto) = h2_backend(&s, host, path);
        assert_eq!(proto, "2", "{host}{path} was not HTTP/2");
        assert_eq!(got, want, "HTTP/2 {host}{path}");
        let r = http_get_host(s.h1(), host, path);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-backend"), Some(want), "HTTP/1 {host}{path}");
    }
    assert_eq!(s.api.requests_to("/x"), 2);
    assert_eq!(s.stat.requests_to("/static/a.css"), 2);
    // The access log shows the stream's version as HAProxy writes it.
    wait_for("the log lines", Duration::from_secs(5), || {
        s.lb.stdout_lines()
            .iter()
            .filter(|l| l.contains("\"GET /x HTTP/"))
            .count()
            == 2
    });
    let lines = s.lb.stdout_lines();
    let x: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"GET /x HTTP/"))
        .collect();
    assert!(
        x.iter()
            .any(|l| l.contains("\"GET /x HTTP/2.0\"") && l.contains(" web api/s1 ")),
        "{x:?}"
    );
    assert!(x.iter().any(|l| l.contains("\"GET /x HTTP/1.1\"")), "{x:?}");
}

#[test]
fn the_server_sees_authority_as_host_and_joined_cookies() {
    let s = setup("");
    let url = format!("http://h.test:{}/headers", s.h2().port());
    let resolve = format!("h.test:{}:127.0.0.1", s.h2().port());
    let (out, code, err) = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "cookie: a=1",
        "-H",
        "cookie: b=2",
        "-H",
        "x-custom: v1",
        &url,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let seen = String::from_utf8_lossy(&out).to_lowercase();
    let host = format!("host: h.test:{}", s.h2().port());
    assert!(seen.contains(&host), "{seen}");
    assert!(seen.contains("cookie: a=1; b=2"), "{seen}");
    assert!(seen.contains("x-custom: v1"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1"), "{seen}");
    // An http-request rule ran on the stream's request.
    assert!(
        seen.contains(&format!("x-proto-seen: h.test:{}", s.h2().port())),
        "{seen}"
    );
    assert!(seen.contains("x-ver: 2.0"), "{seen}");
    assert!(!seen.contains("te:"), "{seen}");
    let last = s.app.last_request().expect("a request reached the server");
    assert_eq!(last.target, "/headers");
    // `req.ver` of an HTTP/1.1 request on the other bind.
    let r = get_with(s.h1(), "x-a: 1");
    assert_eq!(r.status, 200);
    assert_eq!(wire::header_values(&s.app.last_headers(), "x-ver"), ["1.1"]);
}

/// `n` pattern bytes through `/bytes/`, `/bytes-chunked/` and `/bytes-close/`: each
/// arrives whole, in order.
#[test]
fn multi_mib_response_bodies_arrive_whole_in_every_framing() {
    let s = setup("");
    let n = 8 << 20;
    let want = wire::pattern_sha256(n as u64);
    for framing in ["bytes", "bytes-chunked", "bytes-close"] {
        let (out, code, err) = curl(&[&s.url(&format!("/{framing}/{n}"))]);
        assert_eq!(code, Some(0), "{framing}: {err}");
        assert_eq!(out.len(), n, "{framing}");
        assert_eq!(hex(&Sha256::digest(&out)), want, "{framing}");
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 3 MiB upload with a Content-Length, and one without (chunked to the server), each
/// hashed by the server as it streams.
#[test]
fn request_bodies_stream_whole_to_the_server() {
    let s = setup("");
    let body = wire::pattern(3 << 20);
    let want = hex(&Sha256::digest(&body));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, &body).unwrap();
    let at = format!("@{}", file.display());
    let (out, code, err) = curl(&["--data-binary", &at, &s.url("/sha256")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out).trim(), want, "with a length");
    // From stdin (`-T -`): curl knows no length, so over HTTP/2 it sends none, and
    // ringlb chunks the body to the server.
    let mut child = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--http2-prior-knowledge",
            "--max-time",
            "60",
            "-X",
            "POST",
        ])
        .args(["-T", "-", &s.url("/sha256")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut stdin = child.stdin.take().unwrap();
    let feed = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &body));
    let out = child.wait_with_output().unwrap();
    feed.join().unwrap().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "chunked");
    assert_eq!(s.app.requests_with_method("POST"), 2);
    // And back: the echo of a body the client sends.
    let small = wire::pattern(100_000);
    std::fs::write(&file, &small).unwrap();
    let (out, code, err) = curl(&["--data-binary", &at, &s.url("/echo-chunked")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out == small, "echo differs ({} bytes back)", out.len());
}

#[test]
fn h2load_many_streams_over_few_connections_all_succeed() {
    let s = setup("");
    let out = Command::new("h2load")
        .args([
            "-n",
            "20000",
            "-c",
            "16",
            "-m",
            "10",
            "-T",
            "30",
            &s.url("/"),
        ])
        .output()
        .expect("h2load runs (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{text}"
    );
    assert!(text.contains("status codes: 20000 2xx"), "{text}");
    assert_eq!(s.app.requests_to("/"), 20000);
    // The plain bind is unaffected.
    let r = http_get(s.h1(), "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("app"));
}

/// A bind without `proto h2` serves a connection that opens with the HTTP/2 preface
/// as HTTP/2 (HAProxy 2.6 does so on every HTTP bind), and HTTP/1 clients of the same
/// bind as before, on the same keep-alive path.
#[test]
fn the_preface_on_a_plain_bind_is_served_as_http2() {
    let s = setup("");
    let url = format!("http://{}/headers", s.h1());
    let (out, code, err) = curl(&["-H", "host: api.test", "-w", "proto=%{http_version}", &url]);
    assert_eq!(code, Some(0), "curl {url}: {err}");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.ends_with("proto=2"), "{text}");
    assert!(text.to_lowercase().contains("x-ver: 2.0"), "{text}");
    assert_eq!(s.api.requests_to("/headers"), 1, "routed by :authority");
    // Many streams on one sniffed connection, and several connections at once.
    let out = Command::new("h2load")
        .args(["-n", "2000", "-c", "4", "-m", "10", "-T", "30"])
        .arg(format!("http://{}/", s.h1()))
        .output()
        .expect("h2load runs (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{text}"
    );
    // HTTP/1 on the same bind: keep-alive requests, then a request line HTTP/1 cannot
    // parse is still a 400 (only the preface is handed to HTTP/2).
    let mut c = HttpClient::connect(s.h1());
    for _ in 0..3 {
        let r = c.get("/");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-backend"), Some("app"));
    }
    let r = http_get(s.h1(), "/ x");
    assert_eq!(r.status, 400);
}

/// SETTINGS as nghttp sees them: `tune.h2.max-concurrent-streams`, and HEAD and 204
/// answers end with their HEADERS frame.
#[test]
fn settings_carry_the_stream_limit() {
    let s = setup("    tune.h2.max-concurrent-streams 7\n");
    let out = Command::new("nghttp")
        .args(["-nv", "-t", "20", &s.url("/status/204")])
        .output()
        .expect("nghttp runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):7]"),
        "{text}"
    );
    assert!(text.contains(":status: 204"), "{text}");
    let (out, code, err) = curl(&["-I", &s.url("/bytes/1000")]);
    assert_eq!(code, Some(0), "{err}");
    let head = String::from_utf8_lossy(&out).to_lowercase();
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("content-length: 1000"), "{head}");
}

/// `proto h2` where this slice cannot honour it is refused with its line (`ringlb
/// -c`), as is a protocol name ringlb does not serve; the TOML form too.
#[test]
fn proto_h2_is_refused_where_it_cannot_be_served() {
    let cases = [
        (
            "frontend t\n    mode tcp\n    bind 127.0.0.1:0 proto h2\n    default_backend b\nbackend b\n    mode tcp\n    server s 127.0.0.1:1\n",
            ":3:",
            "needs 'mode http'",
        ),
        (
            "frontend w\n    mode http\n    bind 127.0.0.1:0 proto h3\n    default_backend b\nbackend b\n    mode http\n    server s 127.0.0.1:1\n",
            ":3:",
            "only 'proto h2'",
        ),
        (
            "global\n    tune.h2.max-concurrent-streams 0\nfrontend w\n    mode http\n    bind 127.0.0.1:0 proto h2\n    default_backend b\nbackend b\n    mode http\n    server s 127.0.0.1:1\n",
            ":2:",
            "tune.h2.max-concurrent-streams",
        ),
    ];
    common::haproxy::assert_refused(&cases);
    let toml = "[frontend.web]\nmode = \"tcp\"\nbind = [{ addr = \"127.0.0.1:0\", proto = \"h2\" }]\ndefault_backend = \"app\"\n\n[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:1\"\n";
    let out = check_config(toml);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("frontend.web.bind[0]") && out.stderr.contains("h2"),
        "{}",
        out.stderr
    );
}

/// The TOML form of the bind serves HTTP/2 as the haproxy.cfg one does.
#[test]
fn a_toml_bind_with_proto_h2_serves_http2() {
    let app = TestBackend::start("app");
    let lb = RingLb::start(&format!(
        "[frontend.web]\nbind = [{{ addr = \"127.0.0.1:0\", proto = \"h2\" }}]\nmode = \"http\"\ndefault_backend = \"app\"\n\n[backend.app]\n{}",
        servers_toml("app", &[app.addr()])
    ));
    let (out, code, err) = curl(&[&format!("http://{}/", lb.addr("web"))]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "backend=app");
}
