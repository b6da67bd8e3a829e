//! CONNECT, where a frontend allows it (`allow_connect = true`; haproxy.cfg frontends
//! do, as HAProxy forwards CONNECT): the request goes to the server (a forward proxy),
//! and a 2xx answer turns the connection into a byte tunnel; nothing the client sent
//! after its head moves before that answer. Refused with 400 elsewhere.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::raw::{read_head, read_to_end};
use common::{http_config, http_get, metric, wait_for, HttpClient, RawServer, RingLb};

const CONNECT: &str = "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n";

/// A forward proxy: answers CONNECT with 200 once it checked that no byte followed the
/// head, then echoes until EOF and closes; anything else gets a 403.
fn forward_proxy() -> RawServer {
    RawServer::start(|mut s| {
        while let Some(head) = read_head(&mut s) {
            if !head.starts_with(b"CONNECT origin.test:443 HTTP/1.1\r\n") {
                let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno");
                continue;
            }
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut b = [0u8; 64];
            if let Ok(n) = s.read(&mut b) {
                if n > 0 {
                    let _ = s.write_all(b"HTTP/1.1 500 Early\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
            }
            s.set_read_timeout(None).unwrap();
            let _ = s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            let got = read_to_end(&mut s);
            let _ = s.write_all(&got);
            let _ = s.shutdown(Shutdown::Write);
            return;
        }
    })
}

fn allowed() -> (RawServer, RingLb) {
    let s = forward_proxy();
    let lb = RingLb::start(&http_config(&[s.addr()], "").replace(
        "mode = \"http\"\n",
        "mode = \"http\"\nallow_connect = true\n",
    ));
    (s, lb)
}

#[test]
fn connect_becomes_a_tunnel_after_a_2xx() {
    let (_s, lb) = allowed();
    let mut c = TcpStream::connect(lb.addr("web")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Bytes right behind the head wait for the 200.
    c.write_all(format!("{CONNECT}EARLY").as_bytes()).unwrap();
    c.write_all(b" and more").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let all = String::from_utf8(read_to_end(&mut c)).unwrap();
    assert_eq!(
        all, "HTTP/1.1 200 Connection established\r\n\r\nEARLY and more",
        "the tunnel echoes what the client sent, then passes the close on"
    );
}

#[test]
fn declined_connect_stays_http() {
    let (_s, lb) = allowed();
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request("CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n");
    assert_eq!((r.status, r.body_str().as_str()), (403, "no"));
    let r = c.get("/next");
    assert_eq!(r.status, 403);
}

#[test]
fn connect_with_a_mismatched_host_or_no_port_is_refused() {
    let (_s, lb) = allowed();
    for raw in [
        "CONNECT origin.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n",
        "CONNECT origin.test HTTP/1.1\r\nHost: origin.test\r\n\r\n",
        "CONNECT /path HTTP/1.1\r\nHost: origin.test\r\n\r\n",
        "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nContent-Length: 3\r\n\r\nabc",
    ] {
        let mut c = HttpClient::connect(lb.addr("web"));
        assert_eq!(c.request(raw).status, 400, "{raw:?}");
    }
}

#[test]
fn connect_is_refused_where_not_allowed() {
    let s = forward_proxy();
    let lb = RingLb::start(&http_config(&[s.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.request(CONNECT).status, 400);
    assert_eq!(s.accepts(), 0);
}

/// A tunnel's bytes count in the traffic statistics, both ways, as HAProxy's do.
#[test]
fn tunnel_bytes_are_counted_in_the_stats() {
    let s = forward_proxy();
    let lb = RingLb::start(
        &http_config(&[s.addr()], "[admin]\nlisten = \"127.0.0.1:0\"\n").replace(
            "mode = \"http\"\n",
            "mode = \"http\"\nallow_connect = true\n",
        ),
    );
    let admin = lb.admin_addr();
    let payload = vec![b'x'; 100_000];
    let mut c = TcpStream::connect(lb.addr("web")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(CONNECT.as_bytes()).unwrap();
    let head = read_head(&mut c).expect("the 200");
    assert!(head.starts_with(b"HTTP/1.1 200"));
    c.write_all(&payload).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c).len(), payload.len(), "the echo");
    let sample = |m: &str, series: &str| metric(m, series).unwrap_or(0.0);
    wait_for(
        "the tunnel's bytes in the metrics",
        Duration::from_secs(5),
        || {
            let m = http_get(admin, "/metrics").body_str().to_string();
            sample(&m, "haproxy_frontend_bytes_in_total{proxy=\"web\"}") >= 100_000.0
                && sample(&m, "haproxy_frontend_bytes_out_total{proxy=\"web\"}") >= 100_000.0
                && sample(
                    &m,
                    "haproxy_server_bytes_in_total{proxy=\"app\",server=\"s1\"}",
                ) >= 100_000.0
        },
    );
}

/// A soft stop (SIGUSR1) waits for an open tunnel as for any connection in flight: the
/// tunnel keeps working, and the process exits once it ended.
#[test]
fn soft_stop_waits_for_an_open_tunnel() {
    let (_s, mut lb) = allowed();
    let mut c = TcpStream::connect(lb.addr("web")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(CONNECT.as_bytes()).unwrap();
    assert!(read_head(&mut c)
        .expect("the 200")
        .starts_with(b"HTTP/1.1 200"));
    lb.signal(libc::SIGUSR1);
    // Longer than the default shutdown grace would matter for: the tunnel still carries.
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        lb.wait_exit(Duration::from_millis(10)).is_none(),
        "exited with a tunnel open"
    );
    c.write_all(b"still there").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"still there");
    let status = lb
        .wait_exit(Duration::from_secs(10))
        .expect("exits once the tunnel ended");
    assert_eq!(status.code(), Some(0), "{}", lb.stderr());
}
