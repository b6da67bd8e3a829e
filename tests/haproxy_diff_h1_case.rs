//! Differential test of `h1-case-adjust FROM TO` with `option
//! h1-case-adjust-bogus-server` (request heads to servers) and `-bogus-client`
//! (response heads to clients): HAProxy 2.6 and ringlb run the same haproxy.cfg in
//! front of a server that records the request head and answers with mixed-case
//! headers; the names of the map reach the server and the client with the map's case
//! on both. Also: the map's errors, as HAProxy's.

use crate::common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::haproxy::{haproxy_check, render, ringlb_cfg, ringlb_check, write_cfg, HaProxy};
use common::raw::{read_head, RawServer};
use common::tcp::ReservedPort;

const CONFIG: &str = r#"global
    nbthread 1
    h1-case-adjust x-foo X-FOO
    h1-case-adjust x-bar x-BaR

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend adjusted
    bind "${FE1}"
    option h1-case-adjust-bogus-client
    default_backend adjusted

frontend plain
    bind "${FE2}"
    default_backend plain

backend adjusted
    option h1-case-adjust-bogus-server
    server s "${S}"

backend plain
    server s "${S}"
"#;

/// Names of the `x-*` header lines of `head`, as written.
fn x_names(head: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
        .filter(|n| n.to_ascii_lowercase().starts_with("x-"))
        .collect()
}

/// A request with `x-foo` and `X-Bar` to `fe`: the `x-*` names the server saw and the
/// client got.
fn exchange(fe: SocketAddr, seen: &Mutex<Vec<Vec<u8>>>) -> (Vec<String>, Vec<String>) {
    seen.lock().unwrap().clear();
    let mut c = std::net::TcpStream::connect(fe).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: h\r\nx-foo: 1\r\nX-Bar: 2\r\nX-Other: 3\r\n\r\n")
        .unwrap();
    let answer = read_head(&mut c).expect("a response head");
    let to_server = seen.lock().unwrap().first().cloned().expect("a request");
    (x_names(&to_server), x_names(&answer))
}

#[test]
fn h1_case_adjust_recases_the_names_of_its_map_as_haproxy() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let server = RawServer::start(move |mut s| {
        while let Some(head) = read_head(&mut s) {
            rec.lock().unwrap().push(head);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nx-foo: a\r\nX-BAR: b\r\nx-other: c\r\ncontent-length: 0\r\n\r\n",
            );
        }
    });
    let ports = [ReservedPort::new(), ReservedPort::new()];
    let hx_fe = [ports[0].addr(), ports[1].addr()];
    let vars = |fe: [String; 2]| {
        vec![
            ("FE1", fe[0].clone()),
            ("FE2", fe[1].clone()),
            ("S", server.addr().to_string()),
        ]
    };
    let _hx = HaProxy::start(
        &render(CONFIG, &vars(hx_fe.map(|a| a.to_string()))),
        &hx_fe,
        None,
    );
    let zero = || "127.0.0.1:0".to_string();
    let lb = ringlb_cfg(&render(CONFIG, &vars([zero(), zero()])));
    let lb_fe = [lb.addr("adjusted"), lb.addr("plain")];

    let (hx_req, hx_res) = exchange(hx_fe[0], &seen);
    let (lb_req, lb_res) = exchange(lb_fe[0], &seen);
    let adjusted = |names: &[String]| {
        names
            .iter()
            .filter(|n| n.eq_ignore_ascii_case("x-foo") || n.eq_ignore_ascii_case("x-bar"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        adjusted(&hx_req),
        ["X-FOO", "x-BaR"],
        "HAProxy to the server"
    );
    assert_eq!(adjusted(&lb_req), adjusted(&hx_req), "ringlb to the server");
    assert_eq!(
        adjusted(&hx_res),
        ["X-FOO", "x-BaR"],
        "HAProxy to the client"
    );
    assert_eq!(adjusted(&lb_res), adjusted(&hx_res), "ringlb to the client");

    // Without the options, the map is not applied (HAProxy lower-cases every name on
    // HTTP/1; ringlb passes them as they came).
    let (req, res) = exchange(lb_fe[1], &seen);
    assert_eq!(adjusted(&req), ["x-foo", "X-Bar"]);
    assert_eq!(adjusted(&res), ["x-foo", "X-BAR"]);
    let (req, res) = exchange(hx_fe[1], &seen);
    assert_eq!(adjusted(&req), ["x-foo", "x-bar"]);
    assert_eq!(adjusted(&res), ["x-foo", "x-bar"]);
}

#[test]
fn h1_case_adjust_errors_are_haproxys() {
    for (line, says) in [
        (
            "h1-case-adjust content-type Content-Typo",
            "<from> and <to> must not differ execpt the case",
        ),
        (
            "h1-case-adjust content-type",
            "'h1-case-adjust' expects <from> and <to> as argument.",
        ),
        (
            "h1-case-adjust a A b",
            "'h1-case-adjust' cannot handle unexpected argument 'b'",
        ),
    ] {
        let cfg = write_cfg(&format!(
            "global\n    {line}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend fe\n    bind 127.0.0.1:0\n"
        ));
        let ours = ringlb_check(cfg.path(), &[]);
        assert_eq!(ours.code(), Some(1), "{line}: {ours:?}");
        assert!(
            ours.stderr.contains(&format!(":2: {says}")),
            "{line}: {ours:?}"
        );
        let theirs = haproxy_check(cfg.path(), &[]);
        assert_eq!(theirs.code(), Some(1), "HAProxy {line}: {theirs:?}");
        assert!(theirs.stderr.contains(says), "HAProxy {line}: {theirs:?}");
    }
}
