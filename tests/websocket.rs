//! Upgrades: a WebSocket handshake through the balancer becomes a byte tunnel (a real
//! exchange with `tungstenite` on both ends); nothing the client sends after its head
//! reaches the server before the 101; a half-close crosses the tunnel; an idle tunnel
//! closes after `timeout.tunnel`; a 101 nobody asked for is a 502.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::raw::{read_head, read_to_end};
use common::{http_config, HttpClient, RawServer, RingLb};
use tungstenite::Message;

const SWITCH: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

fn upgrade_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
}

/// A WebSocket echo server.
fn echo_server() -> RawServer {
    RawServer::start(|s| {
        let Ok(mut ws) = tungstenite::accept(s) else {
            return;
        };
        while let Ok(m) = ws.read() {
            if let Message::Close(_) = m {
                let _ = ws.flush();
                return;
            }
            let echo = matches!(m, Message::Text(_) | Message::Binary(_));
            if echo && ws.send(m).is_err() {
                return;
            }
        }
    })
}

#[test]
fn websocket_exchange_through_the_tunnel() {
    let server = echo_server();
    let lb = RingLb::start(&http_config(&[server.addr()], ""));
    let stream = TcpStream::connect(lb.addr("web")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, resp) =
        tungstenite::client::client("ws://t/chat", stream).expect("WebSocket handshake");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    // Large frames cross in pieces.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(big));
    for i in 0..100 {
        ws.send(Message::text(format!("m{i}"))).unwrap();
    }
    for i in 0..100 {
        assert_eq!(ws.read().unwrap(), Message::text(format!("m{i}")));
    }
    ws.close(None).unwrap();
    // The close handshake completes, then the connection ends.
    while ws.read().is_ok() {}
}

#[test]
fn nothing_is_forwarded_before_the_101() {
    // The server looks for bytes after the request head before it answers 101.
    // What the server read before it answered 101, and right after.
    type Seen = Option<(Vec<u8>, Vec<u8>)>;
    let early: Arc<Mutex<Seen>> = Arc::default();
    let seen = early.clone();
    let server = RawServer::start(move |mut s| {
        let Some(_) = read_head(&mut s) else { return };
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut before = vec![0u8; 64];
        let n = s.read(&mut before).unwrap_or(0);
        before.truncate(n);
        s.write_all(SWITCH).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut after = vec![0u8; 64];
        let n = s.read(&mut after).unwrap_or(0);
        after.truncate(n);
        *seen.lock().unwrap() = Some((before, after));
        let _ = s.write_all(b"server-bytes");
    });
    let lb = RingLb::start(&http_config(&[server.addr()], ""));
    let mut c = TcpStream::connect(lb.addr("web")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(format!("{}EARLY", upgrade_request("/ws")).as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    while !got.ends_with(b"server-bytes") {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    let (before, after) = early.lock().unwrap().clone().expect("the server ran");
    assert!(before.is_empty(), "forwarded before the 101: {before:?}");
    assert_eq!(after, b"EARLY", "held-back bytes go through after the 101");
}

#[test]
fn half_close_crosses_the_tunnel() {
    let server = RawServer::start(|mut s| {
        let Some(_) = read_head(&mut s) else { return };
        s.write_all(SWITCH).unwrap();
        // Everything the client sends, until its half-close; then answer and close.
        let got = read_to_end(&mut s);
        let _ = s.write_all(format!("got {} bytes", got.len()).as_bytes());
        let _ = s.shutdown(Shutdown::Write);
    });
    let lb = RingLb::start(&http_config(&[server.addr()], ""));
    let mut c = TcpStream::connect(lb.addr("web")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(upgrade_request("/ws").as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut b).unwrap(), 1);
        head.push(b[0]);
    }
    c.write_all(&[7u8; 1000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let rest = read_to_end(&mut c);
    assert_eq!(String::from_utf8_lossy(&rest), "got 1000 bytes");
}

#[test]
fn idle_tunnel_closes_after_timeout_tunnel() {
    let server = RawServer::start(|mut s| {
        let Some(_) = read_head(&mut s) else { return };
        s.write_all(SWITCH).unwrap();
        read_to_end(&mut s);
    });
    let lb = RingLb::start(&http_config(
        &[server.addr()],
        "[timeout]\ntunnel = \"300ms\"\nclient = \"30s\"\n",
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send(upgrade_request("/ws"));
    let (_, status, _, _) = c.read_head().unwrap();
    assert_eq!(status, 101);
    let began = Instant::now();
    assert!(c.closed_by_peer(Duration::from_secs(10)), "still open");
    assert!(began.elapsed() < Duration::from_secs(10));
    common::wait_for("the server side to close", Duration::from_secs(5), || {
        server.live() == 0
    });
}

#[test]
fn unsolicited_101_is_a_502() {
    let server = RawServer::start(|mut s| {
        while read_head(&mut s).is_some() {
            if s.write_all(SWITCH).is_err() {
                return;
            }
        }
    });
    let lb = RingLb::start(&http_config(&[server.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.get("/plain");
    assert_eq!(r.status, 502);
}

#[test]
fn declined_upgrade_stays_http() {
    // The server answers the upgrade request with a plain response: no tunnel, the
    // connection goes on with the next request.
    let server = RawServer::start(|mut s| {
        while let Some(head) = read_head(&mut s) {
            let text = String::from_utf8_lossy(&head).to_lowercase();
            let upgrade = text.contains("upgrade: websocket");
            let body = if upgrade { "no upgrade" } else { "plain" };
            let r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(r.as_bytes()).is_err() {
                return;
            }
        }
    });
    let lb = RingLb::start(&http_config(&[server.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let r = c.request(upgrade_request("/ws"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "no upgrade"));
    let r = c.get("/next");
    assert_eq!((r.status, r.body_str().as_str()), (200, "plain"));
}
