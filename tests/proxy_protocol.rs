//! PROXY protocol: accepted on `accept_proxy` frontends (the carried client address is
//! the one X-Forwarded-For and the servers see; a missing or malformed header closes
//! the connection), and sent to `send_proxy` servers (v1 text, v2 binary), in HTTP and
//! TCP mode, health checks included.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

fn config(frontend_extra: &str, mode: &str, server: &str) -> String {
    format!(
        "[runtime]\nshards = 2\n[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"{mode}\"\ndefault_backend = \"app\"\n{frontend_extra}\n[backend.app]\n[[backend.app.server]]\n{server}\n"
    )
}

fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    for a in [src, dst] {
        if let std::net::IpAddr::V4(v4) = a.ip() {
            h.extend_from_slice(&v4.octets());
        }
    }
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h
}

#[test]
fn accepted_header_sets_the_client_address() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&config(
        "accept_proxy = true\nforward_for = true",
        "http",
        &format!("addr = \"{}\"", b.addr()),
    ));
    let addr = lb.addr("web");
    let mut c = HttpClient::connect(addr);
    c.send(b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\n");
    let r = c.get("/headers");
    assert_eq!(r.status, 200);
    assert!(
        r.body_str()
            .to_ascii_lowercase()
            .contains("x-forwarded-for: 203.0.113.7"),
        "{}",
        r.body_str()
    );
    // The header comes once: later requests on the connection keep the address.
    let r = c.get("/headers");
    assert!(r
        .body_str()
        .to_ascii_lowercase()
        .contains("x-forwarded-for: 203.0.113.7"));

    let mut c = HttpClient::connect(addr);
    c.send(v2_header(
        "198.51.100.9:5555".parse().unwrap(),
        "10.0.0.1:80".parse().unwrap(),
    ));
    let r = c.get("/headers");
    assert!(
        r.body_str()
            .to_ascii_lowercase()
            .contains("x-forwarded-for: 198.51.100.9"),
        "{}",
        r.body_str()
    );
}

#[test]
fn missing_or_malformed_header_closes_the_connection() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&config(
        "accept_proxy = true",
        "http",
        &format!("addr = \"{}\"", b.addr()),
    ));
    let addr = lb.addr("web");
    for bad in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".as_slice(),
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PROXY TCP9 junk\r\n",
    ] {
        let mut c = HttpClient::connect(addr);
        c.send(bad);
        assert!(
            c.closed_by_peer(Duration::from_secs(5)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(b.requests(), 0, "nothing reached the server");
    // Others are unaffected.
    let mut c = HttpClient::connect(addr);
    c.send(b"PROXY UNKNOWN\r\n");
    assert_eq!(c.get("/").status, 200);
}

/// A server that records the first bytes of each connection (the PROXY header) and
/// answers one HTTP request per connection, or echoes in `echo` mode.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start(echo: bool) -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(conn, s, echo));
            }
        });
        Recorder { addr, seen }
    }

    fn headers(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut conn: TcpStream, seen: Arc<Mutex<Vec<Vec<u8>>>>, echo: bool) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if echo {
            if got.windows(4).any(|w| w == b"ping") {
                break;
            }
        } else if got.ends_with(b"\r\n\r\n") && got.len() > 16 {
            // (The v2 signature itself starts with CRLF CRLF.)
            break;
        }
    }
    seen.lock().unwrap().push(got.clone());
    if echo {
        let _ = conn.write_all(b"pong");
    } else if !got.is_empty() {
        let _ =
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    }
}

#[test]
fn send_proxy_v1_and_v2_announce_the_client() {
    for (version, v2) in [("v1", false), ("v2", true)] {
        let rec = Recorder::start(false);
        let lb = RingLb::start(&config(
            "",
            "http",
            &format!("addr = \"{}\"\nsend_proxy = \"{version}\"", rec.addr),
        ));
        let addr = lb.addr("web");
        let mut c = HttpClient::connect(addr);
        let client = c.local_addr();
        let r = c.get("/");
        assert_eq!(r.status, 200);
        let got = rec.headers().pop().expect("the server saw a connection");
        if v2 {
            let want = v2_header(client, addr);
            assert_eq!(&got[..want.len()], &want[..], "v2 bytes");
            assert!(got[want.len()..].starts_with(b"GET / HTTP/1.1\r\n"));
        } else {
            let want = format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\nGET / HTTP/1.1\r\n",
                client.port(),
                addr.port()
            );
            assert!(
                got.starts_with(want.as_bytes()),
                "{:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }
}

#[test]
fn tcp_mode_passes_the_carried_client_on() {
    let rec = Recorder::start(true);
    let lb = RingLb::start(&config(
        "accept_proxy = true",
        "tcp",
        &format!("addr = \"{}\"\nsend_proxy = \"v1\"", rec.addr),
    ));
    let mut s = TcpStream::connect(lb.addr("web")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 1111 2222\r\nping")
        .unwrap();
    let mut pong = [0u8; 4];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"pong");
    let got = rec.headers().pop().unwrap();
    assert_eq!(got, b"PROXY TCP4 192.0.2.1 192.0.2.2 1111 2222\r\nping");
}

#[test]
fn health_checks_speak_proxy_too() {
    let rec = Recorder::start(false);
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 1\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[backend.app.health]\ntype = \"http\"\ninterval = \"200ms\"\n[[backend.app.server]]\naddr = \"{}\"\nsend_proxy = \"v2\"\n",
        rec.addr
    ));
    wait_for("a health check", Duration::from_secs(5), || {
        !rec.headers().is_empty()
    });
    let first = rec.headers()[0].clone();
    // Our own connection: a v2 LOCAL header, then the check request.
    assert_eq!(&first[..16], b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    assert!(
        first[16..].starts_with(b"GET / HTTP/1.1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    drop(lb);
}

/// The same from haproxy.cfg: server `send-proxy` (v1) and `send-proxy-v2` announce the
/// client on each connection; `check-send-proxy` alone makes the health checks of a
/// server without `send-proxy` start with a PROXY v1 header (as HAProxy's do).
#[test]
fn haproxy_cfg_send_proxy_and_check_send_proxy_announce_the_client() {
    let cfg = |backend: &str| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n{backend}"
        )
    };
    for (keyword, v2) in [("send-proxy", false), ("send-proxy-v2", true)] {
        let rec = Recorder::start(false);
        let lb =
            common::haproxy::ringlb_cfg(&cfg(&format!("    server s1 {} {keyword}\n", rec.addr)));
        let addr = lb.addr("web");
        let mut c = HttpClient::connect(addr);
        let client = c.local_addr();
        assert_eq!(c.get("/").status, 200);
        let got = rec.headers().pop().expect("the server saw a connection");
        let want = match v2 {
            true => v2_header(client, addr),
            false => format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
                client.port(),
                addr.port()
            )
            .into_bytes(),
        };
        assert!(
            got.starts_with(&want) && got[want.len()..].starts_with(b"GET / HTTP/1.1\r\n"),
            "{keyword}: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let rec = Recorder::start(false);
    let _lb = common::haproxy::ringlb_cfg(&cfg(&format!(
        "    option httpchk GET /health\n    server s1 {} check check-send-proxy inter 200ms\n",
        rec.addr
    )));
    wait_for("a health check", Duration::from_secs(5), || {
        !rec.headers().is_empty()
    });
    let first = rec.headers()[0].clone();
    let text = String::from_utf8_lossy(&first);
    assert!(text.starts_with("PROXY "), "check-send-proxy: {text:?}");
    let request = &text[text.find("\r\n").expect("a header line") + 2..];
    assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{text:?}");
}
