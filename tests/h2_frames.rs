//! RFC 9113 §8 malformed requests on `bind ... proto h2`, written frame by frame:
//! each is refused with a stream error (RST_STREAM) or, where the h2 crate treats it
//! as a connection error, GOAWAY, and none of them reaches the server; a well-formed
//! request on the next connection still does. Also frame by frame: a body shorter than
//! its `content-length` resets the stream, a quiet connection gets GOAWAY, and a stream
//! opened after a reload is served by the new config.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::h2::{block_bytes as block, frame, END_HEADERS, END_STREAM, PREFACE};
use common::haproxy::ringlb_cfg;
use common::*;

/// What the server answered stream 1 with: its first frame for it (`1` HEADERS, `3`
/// RST_STREAM) or a GOAWAY (`7`) of the connection.
fn answer(addr: std::net::SocketAddr, frames: &[Vec<u8>]) -> u8 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(4, 0, 0, &[]));
    for f in frames {
        out.extend_from_slice(f);
    }
    s.write_all(&out).unwrap();
    loop {
        let mut h = [0u8; 9];
        s.read_exact(&mut h).expect("a frame before the deadline");
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).unwrap();
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        match h[3] {
            7 => return 7,
            1 | 3 if stream == 1 => return h[3],
            _ => {}
        }
    }
}

/// The pseudo-headers of a well-formed GET.
fn request() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"t.test"),
    ]
}

fn start(app: &TestBackend, timeouts: &str) -> RingLb {
    ringlb_cfg(&format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n{timeouts}\n\
frontend web\n    bind 127.0.0.1:0 proto h2\n    default_backend app\n\nbackend app\n    server s1 {}\n",
        app.addr()
    ))
}

#[test]
fn a_body_shorter_than_its_content_length_resets_the_stream() {
    let app = TestBackend::start("app");
    let lb = start(&app, "");
    let mut fields = request();
    fields[0] = (b":method", b"POST");
    fields[2] = (b":path", b"/echo");
    fields.push((b"content-length", b"10"));
    let frames = vec![
        frame(1, END_HEADERS, 1, &block(&fields)),
        frame(0, END_STREAM, 1, b"abc"),
    ];
    let got = answer(lb.addr("web"), &frames);
    assert!(got == 3 || got == 7, "answered with frame type {got}");
}

#[test]
fn a_quiet_connection_gets_goaway_after_the_keep_alive_timeout() {
    let app = TestBackend::start("app");
    let lb = start(&app, "    timeout http-keep-alive 300ms\n");
    let started = std::time::Instant::now();
    assert_eq!(answer(lb.addr("web"), &[]), 7);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn malformed_requests_are_refused_and_never_reach_the_server() {
    let app = TestBackend::start("app");
    let lb = start(&app, "");
    let addr = lb.addr("web");
    let base = request();
    let with = |extra: &[(&'static [u8], &'static [u8])]| {
        let mut f = base.clone();
        f.extend_from_slice(extra);
        vec![frame(1, END_STREAM | END_HEADERS, 1, &block(&f))]
    };
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("connection", with(&[(b"connection", b"keep-alive")])),
        (
            "transfer-encoding",
            with(&[(b"transfer-encoding", b"chunked")]),
        ),
        ("keep-alive", with(&[(b"keep-alive", b"timeout=5")])),
        ("upgrade", with(&[(b"upgrade", b"websocket")])),
        ("proxy-connection", with(&[(b"proxy-connection", b"close")])),
        ("te: gzip", with(&[(b"te", b"gzip")])),
        ("uppercase name", with(&[(b"X-Upper", b"1")])),
        ("CR LF in a value", with(&[(b"x-a", b"a\r\nx-b: b")])),
        ("NUL in a value", with(&[(b"x-a", b"a\0b")])),
        ("duplicate :path", with(&[(b":path", b"/again")])),
        (
            "pseudo-header after a field",
            vec![frame(
                1,
                END_STREAM | END_HEADERS,
                1,
                &block(&[
                    (b":method", b"GET"),
                    (b":scheme", b"http"),
                    (b"x-a", b"1"),
                    (b":path", b"/"),
                ]),
            )],
        ),
        (
            "no :method",
            vec![frame(
                1,
                END_STREAM | END_HEADERS,
                1,
                &block(&[(b":scheme", b"http"), (b":path", b"/")]),
            )],
        ),
        ("a response pseudo-header", with(&[(b":status", b"200")])),
    ];
    for (what, frames) in cases {
        let got = answer(addr, &frames);
        assert!(
            got == 3 || got == 7,
            "{what}: answered with frame type {got}"
        );
    }
    assert_eq!(app.requests(), 0, "a malformed request reached the server");
    // A well-formed request on a fresh connection is answered.
    assert_eq!(answer(addr, &with(&[(b"x-fine", b"yes")])), 1);
    assert_eq!(app.requests(), 1);
}

/// The body of stream `id`'s response (its DATA frames up to END_STREAM).
fn body_of(s: &mut TcpStream, id: u32) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut h = [0u8; 9];
        s.read_exact(&mut h).expect("a frame before the deadline");
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).unwrap();
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        assert!(
            h[3] != 7 && !(h[3] == 3 && stream == id),
            "stream {id} refused"
        );
        if h[3] == 0 && stream == id {
            body.extend_from_slice(&payload);
            if h[4] & END_STREAM != 0 {
                return body;
            }
        }
    }
}

/// A stream opened after a reload, on a connection opened before it, is served by the
/// new config (as an HTTP/1 request after a reload is), not the one the connection
/// began under.
#[test]
fn streams_after_a_reload_are_served_by_the_config_in_force() {
    let old = TestBackend::start("old");
    let new = TestBackend::start("new");
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let config = |port: u16, server: std::net::SocketAddr| {
        format!(
            "[runtime]\nshards = 1\n[frontend.web]\nbind = [{{ addr = \"127.0.0.1:{port}\", proto = \"h2\" }}]\nmode = \"http\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{server}\"\n"
        )
    };
    std::fs::write(&path, config(0, old.addr())).unwrap();
    let lb = RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"));
    let addr = lb.addr("web");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let get = block(&request());
    let mut out = PREFACE.to_vec();
    out.extend(frame(4, 0, 0, &[]));
    out.extend(frame(1, END_STREAM | END_HEADERS, 1, &get));
    s.write_all(&out).unwrap();
    assert_eq!(body_of(&mut s, 1), b"backend=old");
    std::fs::write(&path, config(addr.port(), new.addr())).unwrap();
    lb.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(5), || {
        lb.stdout_lines().iter().any(|l| l == "reloaded")
    });
    s.write_all(&frame(1, END_STREAM | END_HEADERS, 3, &get))
        .unwrap();
    assert_eq!(body_of(&mut s, 3), b"backend=new");
    drop(file);
}

/// A soft stop (SIGUSR1) with an HTTP/2 connection holding a slow stream: the
/// connection gets GOAWAY at once (naming stream 1 as the last it takes, once its
/// PING is answered), the stream completes, the connection closes, and the process
/// exits. A second connection, idle, gets GOAWAY and is closed too.
#[test]
fn a_soft_stop_sends_goaway_and_lets_the_open_stream_finish() {
    let app = TestBackend::start("app");
    let mut lb = start(&app, "");
    let addr = lb.addr("web");
    let connect = || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = PREFACE.to_vec();
        out.extend(frame(4, 0, 0, &[]));
        s.write_all(&out).unwrap();
        s
    };
    let mut idle = connect();
    let mut s = connect();
    let mut fields = request();
    fields[2] = (b":path", b"/sleep/1500");
    s.write_all(&frame(1, END_STREAM | END_HEADERS, 1, &block(&fields)))
        .unwrap();
    wait_for(
        "the slow request at the server",
        Duration::from_secs(5),
        || app.in_flight() == 1,
    );
    lb.signal(libc::SIGUSR1);
    // Frames until the connection closes: GOAWAYs (their last stream ids), stream 1's
    // body and whether it ended, PINGs answered.
    let mut goaway_last = Vec::new();
    let mut body = Vec::new();
    let mut ended = false;
    let mut body_after_goaway = false;
    loop {
        let mut h = [0u8; 9];
        match s.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading frames: {e}"),
        }
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).unwrap();
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        match h[3] {
            7 => {
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                assert_eq!(code, 0, "GOAWAY(NO_ERROR)");
                goaway_last.push(last & 0x7fff_ffff);
            }
            // A PING: answered, as any client does.
            6 if h[4] & 1 == 0 => s.write_all(&frame(6, 1, 0, &payload)).unwrap(),
            0 if stream == 1 => {
                body.extend_from_slice(&payload);
                body_after_goaway |= !goaway_last.is_empty();
                ended |= h[4] & END_STREAM != 0;
            }
            3 if stream == 1 => panic!("stream 1 reset"),
            _ => {}
        }
    }
    assert!(!goaway_last.is_empty(), "no GOAWAY");
    assert_eq!(*goaway_last.last().unwrap(), 1, "{goaway_last:?}");
    assert!(body_after_goaway, "the stream finished after the GOAWAY");
    assert!(ended, "stream 1 ended");
    assert_eq!(body, b"slept 1500");
    // The idle connection was told too, and closed.
    let mut saw_goaway = false;
    loop {
        let mut h = [0u8; 9];
        if idle.read_exact(&mut h).is_err() {
            break;
        }
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        let mut payload = vec![0u8; len];
        idle.read_exact(&mut payload).unwrap();
        match h[3] {
            7 => saw_goaway = true,
            6 if h[4] & 1 == 0 => {
                let _ = idle.write_all(&frame(6, 1, 0, &payload));
            }
            _ => {}
        }
    }
    assert!(saw_goaway, "the idle connection got GOAWAY");
    let status = lb
        .wait_exit(Duration::from_secs(10))
        .expect("the process exits after its streams finished");
    assert!(status.success(), "{status:?}");
}
