//! Differential test of HTTP Basic authentication: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg with a `userlist` (a user per crypt(3) scheme: SHA-512, SHA-256, MD5,
//! bcrypt, and an insecure password; groups declared both ways), `http-request auth
//! [realm R]` behind `http_auth(L)` and `http_auth_group(L) G`, and the user name
//! `http_auth_group` fetches; the 401 (its `WWW-Authenticate`, the custom 401 page of
//! the backend), the 200s and the connection's fate must be the same bytes on both.
//! Bad userlists are refused by both, ringlb with their line.

use crate::common;

use std::time::Duration;

use base64::Engine;
use common::haproxy::{haproxy_check, ringlb_check, write_cfg};
use common::twins::{Srv, Twins};

/// How long a quiet connection is taken to have stayed open.
const QUIET: Duration = Duration::from_millis(400);

// Made by Debian's crypt(3) (libxcrypt) for the password "s3cret".
const SHA512: &str = "$6$nyky5Pfx5Jq6Js1G$F4yfMjlyoLhfu6aGW0yZ.YKa4hPeUqSw.2Bv23w4jVU/IzFxXY5KnBgWnnUU74tRvdAgqAX.8XzGfdtM9dMue0";
const SHA256: &str = "$5$rounds=1000$abcdefgh$n8nZhSnM6g4q4nRlzPasS.1BNBdVFR97b0op5SkmOM9";
const MD5: &str = "$1$qZ1bd4hl$uBJjlRFZQoA.i0V2WjoXX1";
const BCRYPT: &str = "$2b$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG";

fn req(path: &str, creds: Option<&str>) -> String {
    let auth = creds.map_or(String::new(), |c| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(c)
        )
    });
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n{auth}\r\n")
}

#[test]
fn basic_auth_matches_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("401.http");
    std::fs::write(
        &page,
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nwho are you",
    )
    .unwrap();
    let body = format!(
        r#"
userlist L
    group admins users alice
    group ops
    user alice password {SHA512}
    user bob password {MD5} groups ops
    user carol password {BCRYPT} groups ops,admins
    user erin password {SHA256}
    user dave insecure-password plain

frontend web
    bind "127.0.0.1:${{PORT}}"
    http-request auth realm "My Realm" if {{ path_beg /a }} !{{ http_auth(L) }}
    http-request auth if {{ path_beg /g }} !{{ http_auth_group(L) admins }}
    http-request return status 200 content-type text/plain lf-string "user=%[http_auth_group(L)]" if {{ path_beg /who }}
    http-request return status 200 content-type text/plain string "ok" if {{ path_beg /a }} || {{ path_beg /g }}
    default_backend app

backend app
    errorfile 401 {}
    http-request auth realm app if !{{ http_auth(L) }}
    server s1 "${{S1}}"
"#,
        page.display()
    );
    let t = Twins::start(&body, &[("web", "PORT")], &[("S1", Srv::Up("s1"))]);
    let mut requests = Vec::new();
    for path in ["/a", "/g", "/who", "/app"] {
        for creds in [
            None,
            Some("alice:s3cret"),
            Some("alice:wrong"),
            Some("bob:s3cret"),
            Some("carol:s3cret"),
            Some("erin:s3cret"),
            Some("dave:plain"),
            Some("dave:s3cret"),
            Some("nobody:s3cret"),
            Some("no-colon"),
        ] {
            requests.push(req(path, creds));
        }
    }
    // A scheme that is not Basic, a header that is not base64, and an HTTP/1.0 client
    // (the 401 then closes the connection).
    requests.push("GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer abc\r\n\r\n".into());
    requests.push("GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: Basic !!!!\r\n\r\n".into());
    requests.push("GET /a HTTP/1.0\r\n\r\n".into());
    t.same_all_at_once(&requests, |s, raw| {
        // The server's own answer names its side: compared up to that.
        common::client::raw_answers(s.addr("web"), raw, QUIET)
            .replace(&s.backend("s1").addr().to_string(), "S1")
    });
}

#[test]
fn bad_userlists_are_refused_with_their_line() {
    for (userlist, rule) in [
        ("user u insecure-password p groups nogroup", ""),
        ("group g users nouser", ""),
        (
            "user u insecure-password p",
            "http-request auth if !{ http_auth(nolist) }",
        ),
        (
            "user u insecure-password p",
            "http-request auth if !{ http_auth_group(L) nogroup }",
        ),
        ("user u insecure-password p", "http-response auth"),
    ] {
        let text = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nuserlist L\n    {userlist}\nfrontend web\n    bind 127.0.0.1:0\n    {rule}\n    default_backend app\nbackend app\n    server s1 127.0.0.1:80\n"
        );
        let cfg = write_cfg(&text);
        assert!(
            !haproxy_check(cfg.path(), &[]).status.success(),
            "HAProxy accepted '{userlist}' / '{rule}'"
        );
        let lb = ringlb_check(cfg.path(), &[]);
        let said = format!("{}{}", lb.stdout, lb.stderr);
        assert!(
            !lb.status.success(),
            "ringlb accepted '{userlist}' / '{rule}'"
        );
        let line = if rule.is_empty() {
            ".cfg:7:"
        } else {
            ".cfg:10:"
        };
        assert!(
            said.contains(line),
            "'{userlist}' / '{rule}': no {line} in {said}"
        );
    }
    // A hash ringlb cannot check (yescrypt, Debian's mkpasswd default) is refused
    // with its line rather than never matching.
    let text = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nuserlist L\n    user u password $y$j9T$abc$def\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 127.0.0.1:80\n";
    let cfg = write_cfg(text);
    let lb = ringlb_check(cfg.path(), &[]);
    let said = format!("{}{}", lb.stdout, lb.stderr);
    assert!(
        !lb.status.success()
            && said.contains(".cfg:7:")
            && said.contains("unsupported password hash"),
        "{said}"
    );
}
