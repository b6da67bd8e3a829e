//! Differential test of HTTP/2 with prior knowledge (`bind ... proto h2`): Debian's
//! HAProxy 2.6 and ringlb run the same haproxy.cfg, curl sends the same HTTP/2
//! requests to both, and each answer (status, the backend that served it, the body:
//! for `/headers`, the request head as the server saw it after the h2 → HTTP/1.1
//! translation, fields in the order sent) must be the same.

use crate::common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::twins::{Srv, Twins};

/// One HTTP/2 request by curl: the status, the `x-backend` header, the body.
fn h2(addr: SocketAddr, args: &[&str], path: &str) -> (String, String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "--max-time",
            "20",
            "-D",
            "/dev/stderr",
        ])
        .args(args)
        .arg(format!("http://{addr}{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let head = String::from_utf8_lossy(&out.stderr).to_lowercase();
    let status = head.lines().next().unwrap_or("").trim().to_string();
    let backend = head
        .lines()
        .find_map(|l| l.strip_prefix("x-backend: "))
        .unwrap_or("")
        .trim()
        .to_string();
    (
        status,
        backend,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn http2_streams_get_the_same_answers_as_from_haproxy() {
    let body = r#"
frontend web
    bind "127.0.0.1:${PORT}" proto h2
    acl is_api hdr(host) -i api.test
    acl is_static path_beg /static/
    http-request set-header x-ver %[req.ver]
    use_backend api if is_api
    use_backend static if is_static
    default_backend app

backend app
    server app1 "${APP1}"

backend api
    server api1 "${API1}"

backend static
    server static1 "${STATIC1}"
"#;
    let t = Twins::start(
        body,
        &[("web", "PORT")],
        &[
            ("APP1", Srv::Up("app1")),
            ("API1", Srv::Up("api1")),
            ("STATIC1", Srv::Up("static1")),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, common::wire::pattern(70_000)).unwrap();
    let upload = format!("@{}", file.display());
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("by host", vec!["-H", "host: api.test"], "/"),
        ("by path", vec![], "/static/a.css"),
        ("default", vec![], "/"),
        (
            "headers seen",
            vec![
                "-H",
                "host: h.test",
                "-H",
                "cookie: a=1",
                "-H",
                "cookie: b=2",
                "-H",
                "x-c: 3",
            ],
            "/headers",
        ),
        // A name repeated after another reaches the server in the order sent.
        (
            "interleaved",
            vec![
                "-H",
                "host: h.test",
                "-H",
                "x-a: 1",
                "-H",
                "x-b: 2",
                "-H",
                "x-a: 3",
            ],
            "/headers",
        ),
        ("status", vec![], "/status/404"),
        ("no body", vec![], "/status/204"),
        ("HEAD", vec!["-I"], "/bytes/10"),
        ("length body", vec![], "/bytes/200000"),
        ("chunked body", vec![], "/bytes-chunked/200000"),
        ("upload", vec!["--data-binary", &upload], "/sha256"),
        ("echo", vec!["--data-binary", &upload], "/echo"),
    ];
    for (what, args, path) in &cases {
        let (status, _, body) = t.same(what, |s| h2(s.addr("web"), args, path));
        assert!(status.starts_with("http/2 "), "{what}: {status}");
        if *what == "interleaved" {
            assert!(body.contains("x-a: 1\nx-b: 2\nx-a: 3\n"), "{body}");
        }
        if *what == "headers seen" {
            let body = body.to_lowercase();
            assert!(
                body.contains("cookie: a=1; b=2") && body.contains("x-ver: 2.0"),
                "{body}"
            );
        }
    }
}
