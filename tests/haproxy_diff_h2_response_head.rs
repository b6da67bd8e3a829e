//! Differential test of the HTTP/1.1 response heads made from a `proto h2` server's
//! responses: Debian's HAProxy 2.6 and ringlb run the same haproxy.cfg, each in front
//! of its own Python h2 server (tests/fixtures/h2/status_server.py, whose answer is
//! written in the request path), and the same raw requests go to both, HTTP/1.1 and
//! HTTP/1.0, kept alive or closed. Each response head must be the same, byte for byte
//! (status line without a reason phrase, field order and case, `connection` and the
//! framing added, interim `103` heads before it), and so must the body, its trailers
//! and whether the connection answers a next request.
//!
//! Not compared here: how the body is cut into chunks (HAProxy writes what it has at
//! hand, which depends on timing), a chunked answer to an HTTP/1.0 client asking for
//! keep-alive (ringlb closes it, HAProxy does not: README), and an interim response
//! to an HTTP/1.0 client (ringlb sends none, as RFC 9110 §15.2 has it: README).

use crate::common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::haproxy::{render, ringlb_cfg, HaProxy};
use common::seen::SeenServer;
use common::tcp::ReservedPort;
use common::wire::{parse_response_head, response_framing, Wire};

const CFG: &str = r#"global
    nbthread 1

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind "127.0.0.1:${H1}"
    default_backend be

backend be
    server s1 "${SRV}" proto h2
"#;

/// (method, path: status and shape for the server, version, extra request field).
const CASES: &[(&str, &str, &str, &str)] = &[
    ("GET", "/200/len", "HTTP/1.1", ""),
    ("GET", "/204/none", "HTTP/1.1", ""),
    ("GET", "/404/open", "HTTP/1.1", ""),
    ("GET", "/413/len", "HTTP/1.1", ""),
    ("GET", "/503/none", "HTTP/1.1", ""),
    // A status without a standard reason phrase.
    ("GET", "/299/len", "HTTP/1.1", ""),
    ("GET", "/200/zero", "HTTP/1.1", ""),
    ("GET", "/200/trailers", "HTTP/1.1", ""),
    ("GET", "/304/none", "HTTP/1.1", ""),
    // `set-cookie` and `x-b` repeated after other names.
    ("GET", "/200/dups", "HTTP/1.1", ""),
    // A `103 Early Hints` before the answer.
    ("GET", "/200/hints", "HTTP/1.1", ""),
    ("HEAD", "/200/len", "HTTP/1.1", ""),
    ("HEAD", "/200/open", "HTTP/1.1", ""),
    ("HEAD", "/200/none", "HTTP/1.1", ""),
    ("GET", "/200/len", "HTTP/1.1", "Connection: close\r\n"),
    ("GET", "/404/open", "HTTP/1.1", "Connection: close\r\n"),
    ("GET", "/503/none", "HTTP/1.1", "Connection: close\r\n"),
    ("GET", "/200/len", "HTTP/1.0", ""),
    ("GET", "/200/open", "HTTP/1.0", ""),
    ("GET", "/204/none", "HTTP/1.0", ""),
    ("GET", "/200/len", "HTTP/1.0", "Connection: keep-alive\r\n"),
];

/// What a client saw of one exchange.
#[derive(Debug, PartialEq)]
struct Seen {
    head: String,
    body: String,
    trailers: Vec<(String, String)>,
    /// The status of a next request on the same connection; `None`: closed.
    next: Option<u16>,
}

/// Sends `raw` on a fresh connection and reads the answer as sent.
fn exchange(addr: SocketAddr, method: &str, raw: &str) -> Seen {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = Wire::new(s);
    w.stream.write_all(raw.as_bytes()).unwrap();
    // Interim heads (1xx) first, then the final one.
    let mut head = Vec::new();
    let (status, fields) = loop {
        let h = w.read_head(1 << 16).unwrap().expect("a response head");
        head.extend_from_slice(&h);
        let (_, status, _, fields) = parse_response_head(&h).expect("a valid head");
        if !(100..200).contains(&status) {
            break (status, fields);
        }
    };
    let framing = response_framing(method, status, &fields).unwrap();
    let mut body = Vec::new();
    let trailers = w
        .read_body(framing, &mut |b| body.extend_from_slice(b))
        .expect("a whole body");
    // Whether the connection serves on.
    let next = w
        .stream
        .write_all(b"GET /200/len HTTP/1.1\r\nHost: next.test\r\nConnection: close\r\n\r\n")
        .ok()
        .and_then(|_| w.read_head(1 << 16).ok().flatten())
        .and_then(|h| parse_response_head(&h).ok())
        .map(|(_, status, _, _)| status);
    Seen {
        head: String::from_utf8_lossy(&head).into_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
        trailers,
        next,
    }
}

#[test]
fn http1_clients_get_proto_h2_responses_with_haproxys_heads() {
    let [Some(hx_srv), Some(lb_srv)] =
        [(); 2].map(|_| SeenServer::start_fixture("status_server.py", None))
    else {
        eprintln!("python3 with the h2 package missing; scripts/test-all installs it");
        return;
    };
    let port = ReservedPort::new();
    let hx_text = render(
        CFG,
        &[
            ("H1", port.port().to_string()),
            ("SRV", hx_srv.addr.to_string()),
        ],
    );
    let lb_text = render(CFG, &[("H1", "0".into()), ("SRV", lb_srv.addr.to_string())]);
    let _haproxy = HaProxy::start(&hx_text, &[port.addr()], None);
    let ringlb = ringlb_cfg(&lb_text);
    let mut differ = Vec::new();
    for &(method, path, version, extra) in CASES {
        let raw = format!("{method} {path} {version}\r\nHost: status.test\r\n{extra}\r\n");
        let [a, b] = [port.addr(), ringlb.addrs("web")[0]].map(|addr| exchange(addr, method, &raw));
        if a != b {
            differ.push(format!("{raw:?}\n  haproxy: {a:?}\n  ringlb:  {b:?}"));
        }
    }
    assert!(differ.is_empty(), "answers differ:\n{}", differ.join("\n"));
}
