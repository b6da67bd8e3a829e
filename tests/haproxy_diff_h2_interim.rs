//! Interim responses to HTTP/2 clients against HAProxy 2.6 on the same haproxy.cfg: a
//! server's `103 Early Hints` and `100 Continue` reach an HTTP/2 client as HEADERS
//! frames of their own before the final response, as HAProxy passes them (ringlb
//! dropped them before). Real curl (`--http2-prior-knowledge -v`) against the real
//! binary and Debian's HAProxy; compared: the status lines and the `link` field curl
//! saw, in order, and the body.

use crate::common;

use std::process::{Command, Stdio};

use common::twins::{Side, Srv, Twins};

const BODY: &str = "frontend fe
    bind 127.0.0.1:${P} proto h2
    default_backend be
backend be
    server app ${APP}
";

/// curl's view of one exchange: the response heads' status lines and `link` fields,
/// in order, then the body.
fn curl(side: &Side, args: &[&str], path: &str) -> (Vec<String>, String) {
    let out = Command::new("curl")
        .args(["-sS", "-v", "--http2-prior-knowledge", "--max-time", "20"])
        .args(args)
        .arg(format!("http://{}{path}", side.addr("fe")))
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}: curl {args:?} {path}: {}",
        side.who,
        String::from_utf8_lossy(&out.stderr)
    );
    let heads = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("< HTTP/") || l.to_ascii_lowercase().starts_with("< link:"))
        .map(|l| l.trim_end().to_string())
        .collect();
    (heads, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn interim_responses_reach_http2_clients_as_from_haproxy() {
    let t = Twins::start(BODY, &[("fe", "P")], &[("APP", Srv::Up("app"))]);
    let (heads, body) = t.same("GET /hints over HTTP/2", |s| curl(s, &[], "/hints"));
    assert_eq!(
        heads,
        [
            "< HTTP/2 103",
            "< link: </a.css>; rel=preload",
            "< HTTP/2 200"
        ]
    );
    assert_eq!(body, "backend=app");
    // `Expect: 100-continue`: the server's `100 Continue`, then the echo.
    let (heads, body) = t.same("POST /echo with Expect: 100-continue over HTTP/2", |s| {
        curl(
            s,
            &[
                "-H",
                "Expect: 100-continue",
                "--data-binary",
                "sent after the 100",
            ],
            "/echo",
        )
    });
    assert_eq!(heads, ["< HTTP/2 100", "< HTTP/2 200"]);
    assert_eq!(body, "sent after the 100");
}
